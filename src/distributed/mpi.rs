//! [`Communicator`] on MPI (feature `mpi`): the `mpi` crate's broadcast and
//! all-gather, which move bytes and add nothing.

use mpi::Threading;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator as _, CommunicatorCollectives, Root};

use super::Communicator;
use crate::error::{Error, Result};

/// Tests `request` until it is done: Open MPI advances a transfer only inside
/// MPI calls. While the computation runs, the tests are [`QUIET_POLL`] apart,
/// since a blocking wait would spin on the core it uses; after it, back to
/// back.
fn wait_beside<'a, S: mpi::request::Scope<'a>>(
    mut request: mpi::request::Request<'a, [f32], S>,
    computing: &dyn Fn() -> bool,
) {
    loop {
        match request.test() {
            Ok(_) => return,
            Err(pending) => request = pending,
        }
        if computing() {
            std::thread::sleep(QUIET_POLL);
        }
    }
}

/// How long [`wait_beside`] sleeps between tests of
/// its request: short beside a transfer of a bucket (a 10 Gbit/s link moves
/// 62 kB in 50 µs), long beside the cost of a test.
const QUIET_POLL: std::time::Duration = std::time::Duration::from_micros(50);

/// An MPI communicator for the [`Trainer`](crate::train::Trainer).
///
/// The trainer may call it from any one thread of its pool (one call at a
/// time, every process in the same order), so MPI must have been initialised
/// with at least `MPI_THREAD_SERIALIZED`:
///
/// ```no_run
/// use feedforward::distributed::MpiCommunicator;
/// let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Serialized)
///     .expect("MPI initialises once");
/// let world = MpiCommunicator::world(&universe)?;
/// # Ok::<(), feedforward::Error>(())
/// ```
pub struct MpiCommunicator {
    comm: SimpleCommunicator,
}

// SAFETY: MPI runs at `MPI_THREAD_SERIALIZED` or above (checked in `world`),
// so calls from different threads are allowed as long as no two overlap; the
// trainer makes its calls one after the other from one thread at a time (while
// the exchange thread of a step makes its calls, the step's thread makes none,
// and joins it before its next), and
// `Communicator`'s calls are collective, so a program cannot usefully
// interleave them either.
unsafe impl Send for MpiCommunicator {}
// SAFETY: as above.
unsafe impl Sync for MpiCommunicator {}

impl MpiCommunicator {
    /// The communicator of every process of the job (`MPI_COMM_WORLD`).
    ///
    /// # Errors
    /// [`Error::Config`] when MPI gives less than `MPI_THREAD_SERIALIZED`.
    pub fn world(universe: &Universe) -> Result<Self> {
        let level = mpi::environment::threading_support();
        if level < Threading::Serialized {
            return Err(Error::Config(format!(
                "MPI gives thread support {level:?}; training needs Serialized or above \
                 (initialise with mpi::initialize_with_threading(Threading::Serialized))"
            )));
        }
        Ok(MpiCommunicator {
            comm: universe.world(),
        })
    }
}

impl Communicator for MpiCommunicator {
    fn rank(&self) -> usize {
        usize::try_from(self.comm.rank()).expect("a rank is not negative")
    }

    fn size(&self) -> usize {
        usize::try_from(self.comm.size()).expect("a size is positive")
    }

    fn broadcast(&self, data: &mut [f32]) {
        self.comm.process_at_rank(0).broadcast_into(data);
    }

    fn all_gather(&self, mine: &[f32], all: &mut [f32]) {
        self.comm.all_gather_into(mine, all);
    }

    /// A non-blocking all-gather, tested every 50 µs while `computing()`, then
    /// back to back.
    fn all_gather_beside(&self, mine: &[f32], all: &mut [f32], computing: &dyn Fn() -> bool) {
        mpi::request::scope(|scope| {
            let request = self.comm.immediate_all_gather_into(scope, mine, all);
            wait_beside(request, computing);
        });
    }

    /// A non-blocking all-to-all, waited for as the all-gather is.
    fn all_to_all_beside(&self, send: &[f32], recv: &mut [f32], computing: &dyn Fn() -> bool) {
        mpi::request::scope(|scope| {
            let request = self.comm.immediate_all_to_all_into(scope, send, recv);
            wait_beside(request, computing);
        });
    }

    fn all_gather_f64(&self, mine: &[f64], all: &mut [f64]) {
        self.comm.all_gather_into(mine, all);
    }

    fn all_gather_u64(&self, mine: &[u64], all: &mut [u64]) {
        self.comm.all_gather_into(mine, all);
    }
}
