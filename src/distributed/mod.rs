//! Data-parallel training across processes, with the same bits on any number
//! of them.
//!
//! A [`Communicator`] is what the [`Trainer`](crate::train::Trainer) needs of
//! a group of processes: its rank and size, a broadcast, all-gathers and an
//! all-to-all. [`SingleProcess`] is the group of one; with the feature `mpi`,
//! `MpiCommunicator` wraps an MPI communicator of the
//! [`mpi`](https://docs.rs/mpi) crate. [`ScalingModel`] predicts how
//! training scales over more processes than a test machine has.
//!
//! Each mini-batch is split into a fixed number `S` of shards
//! ([`FitConfig::shards`](crate::FitConfig::shards)). With `N` processes,
//! process `r` computes the gradients of shards `r·S/N .. (r+1)·S/N` and sums
//! them in the shards' pairwise tree; the `N` partial sums are then added in
//! the same tree, a block of the gradient per process (all-to-all, sum,
//! all-gather), bucket by bucket as the backward pass finishes the layers.
//! Because the tree is fixed by `S`
//! alone, `N = 1, 2, 4, …` (powers of two dividing `S`, with `S/N` a power of
//! two) give the same gradients, the same loss and so the same weights, to
//! the bit. The sum of MPI's `MPI_SUM`, whose order is the library's and
//! changes with `N`, is never used.

#[cfg(feature = "mpi")]
mod mpi;
mod scaling;

#[cfg(feature = "mpi")]
pub use mpi::MpiCommunicator;
pub use scaling::ScalingModel;

use crate::error::{Error, Result};

/// A group of processes training one network together.
///
/// Every call is collective: each process of the group makes it, in the same
/// order, with buffers of the same lengths. The trainer makes its calls from
/// one thread at a time, not always the same one (hence `Sync`).
pub trait Communicator: Sync {
    /// This process's index in the group, from 0.
    fn rank(&self) -> usize;

    /// Processes in the group.
    fn size(&self) -> usize;

    /// Replaces `data` on every process by process 0's.
    fn broadcast(&self, data: &mut [f32]);

    /// Every process's `mine` (all of one length), in rank order, into `all`
    /// (`size() × mine.len()`).
    fn all_gather(&self, mine: &[f32], all: &mut [f32]);

    /// [`Communicator::all_gather`] made beside a computation that shares
    /// the core: while `computing()` is true it should wait without spinning,
    /// so that the computation keeps the core; once it is false, nothing else
    /// runs and it may wait as fast as it can. The default is the plain
    /// all-gather.
    fn all_gather_beside(&self, mine: &[f32], all: &mut [f32], computing: &dyn Fn() -> bool) {
        let _ = computing;
        self.all_gather(mine, all);
    }

    /// All-to-all: `send` holds `size()` equal blocks, block `j` for process
    /// `j`; `recv` gets the blocks meant for this process, in rank order.
    /// Waits as [`Communicator::all_gather_beside`] does.
    fn all_to_all_beside(&self, send: &[f32], recv: &mut [f32], computing: &dyn Fn() -> bool);

    /// [`Communicator::all_gather`] for `f64`.
    fn all_gather_f64(&self, mine: &[f64], all: &mut [f64]);

    /// [`Communicator::all_gather`] for `u64`.
    fn all_gather_u64(&self, mine: &[u64], all: &mut [u64]);
}

/// The group of one process: training as without a communicator.
///
/// ```
/// use feedforward::distributed::{Communicator, SingleProcess};
/// let one = SingleProcess;
/// let mut all = [0.0; 2];
/// one.all_gather(&[1.5, 2.5], &mut all);
/// assert_eq!((one.rank(), one.size(), all), (0, 1, [1.5, 2.5]));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SingleProcess;

impl Communicator for SingleProcess {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        1
    }

    fn broadcast(&self, _data: &mut [f32]) {}

    fn all_gather(&self, mine: &[f32], all: &mut [f32]) {
        all.copy_from_slice(mine);
    }

    fn all_to_all_beside(&self, send: &[f32], recv: &mut [f32], _: &dyn Fn() -> bool) {
        recv.copy_from_slice(send);
    }

    fn all_gather_f64(&self, mine: &[f64], all: &mut [f64]) {
        all.copy_from_slice(mine);
    }

    fn all_gather_u64(&self, mine: &[u64], all: &mut [u64]) {
        all.copy_from_slice(mine);
    }
}

/// Checks that `shards` can be shared by the group: its size a power of two
/// dividing `shards`, and `shards / size` a power of two (so that each
/// process's shards are whole subtrees of the shards' tree).
///
/// # Errors
/// [`Error::Config`] naming both counts.
pub fn check_shards(shards: usize, processes: usize) -> Result<()> {
    let fits = processes.is_power_of_two()
        && shards.is_multiple_of(processes)
        && (shards / processes).is_power_of_two();
    if fits {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "{processes} processes cannot share {shards} shards: the shard count must be a \
             power of two that the number of processes (a power of two) divides"
        )))
    }
}

/// Checks that every process holds the same `values` (named by `names`, in
/// the same order): the first that differs is named, with its value on
/// process 0 and on the first process that disagrees.
///
/// # Errors
/// [`Error::Config`] on every process alike.
pub fn check_agreement(comm: &dyn Communicator, names: &[&str], values: &[u64]) -> Result<()> {
    let n = values.len();
    let mut all = vec![0; n * comm.size()];
    comm.all_gather_u64(values, &mut all);
    for (i, name) in names.iter().enumerate().take(n) {
        if let Some(r) = (1..comm.size()).find(|&r| all[r * n + i] != all[i]) {
            return Err(Error::Config(format!(
                "the processes disagree on the {name}: {} on rank 0, {} on rank {r}",
                all[i],
                all[r * n + i]
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_counts_that_processes_can_share() {
        for (s, n) in [(8, 1), (8, 2), (8, 4), (8, 8), (1, 1), (16, 4)] {
            assert!(check_shards(s, n).is_ok(), "{s} shards, {n} processes");
        }
        for (s, n) in [(8, 3), (6, 2), (4, 8), (12, 4), (8, 0)] {
            let Err(Error::Config(msg)) = check_shards(s, n) else {
                panic!("{s} shards, {n} processes accepted")
            };
            assert!(
                msg.starts_with(&format!("{n} processes cannot share {s} shards")),
                "{msg}"
            );
        }
    }

    #[test]
    fn one_process_always_agrees() {
        assert!(check_agreement(&SingleProcess, &["rows", "features"], &[10, 3]).is_ok());
    }
}
