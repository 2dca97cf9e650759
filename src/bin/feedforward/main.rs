//! The `feedforward` command-line tool: train, evaluate and predict from data
//! files, generate synthetic data, draw training curves, and benchmark.

/// `println!` that ends the program quietly when standard output is closed
/// (`feedforward predict ... | head`) instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            $crate::stdout_failed(&e);
        }
    }};
}

mod bench;
mod data;
mod dataset;
mod eval;
mod plot;
mod predict;
mod train;
mod training_data;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use feedforward::distributed::{Communicator, SingleProcess};

/// Errors reach `main` as one message.
pub type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

/// Train and run multi-layer perceptrons on the CPU.
#[derive(Parser)]
#[command(name = "feedforward", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Train a network on a data file and write the model (safetensors).
    Train(Box<train::TrainArgs>),
    /// Loss, accuracy, per-class precision and recall, and the confusion matrix
    /// of a model on a labelled data file.
    Eval(eval::EvalArgs),
    /// Predicted classes and probabilities (or values) as CSV.
    Predict(predict::PredictArgs),
    /// Write a synthetic data set (spiral, blobs, sine) as CSV, label first.
    Data(data::SyntheticArgs),
    /// Draw the training curves of a `train --json` log (loss, accuracy and
    /// learning rate per epoch) as SVG or PNG.
    Plot(plot::PlotArgs),
    /// Run the standard benchmark workloads (W1, W2, W3, W3b, SGEMM) and print
    /// samples/s, GFLOP/s, the fraction of SGEMM and peak memory.
    Bench(bench::BenchArgs),
    /// Print the version, the matrix-multiply backend, and the instruction set
    /// the kernels run on (and those this CPU supports).
    Info,
}

/// `0.1.0, kernels simd avx2 (this CPU: avx2, sse2; ...)`: what `--version`
/// and `info` print, and `bench` in its header.
pub fn version_line() -> String {
    let supported: Vec<&str> = feedforward::gemm::Isa::supported()
        .into_iter()
        .map(|i| i.name())
        .collect();
    let isa = feedforward::gemm::Isa::Avx512Bf16;
    let slow = if isa.is_supported() && feedforward::gemm::bf16_instruction_is_slow() {
        "; VDPBF16PS is slower than the f32 FMAs here, so bf16 products of many rows are emulated"
    } else {
        ""
    };
    format!(
        "{}, kernels {} (this CPU: {}{slow}; choose with {})",
        env!("CARGO_PKG_VERSION"),
        feedforward::gemm::kernel_description(),
        supported.join(", "),
        feedforward::gemm::ISA_VARIABLE,
    )
}

/// Standard output failed: a closed pipe ends the program quietly, anything
/// else with a message.
pub fn stdout_failed(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: cannot write to standard output: {e}");
    std::process::exit(1);
}

/// An `f32` as the `f64` with the same shortest decimal form, so that JSON shows
/// `0.99`, not `0.9900000095367432`.
pub fn json_f32(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::NAN)
}

fn main() -> ExitCode {
    // An unusable FEEDFORWARD_ISA is a mistake to report, not to run past.
    if let Err(e) = feedforward::gemm::isa_from_env() {
        eprintln!("error: {}: {e}", feedforward::gemm::ISA_VARIABLE);
        return ExitCode::FAILURE;
    }
    let version: &'static str = Box::leak(version_line().into_boxed_str());
    let matches = Cli::command().version(version).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    #[cfg(feature = "openblas")]
    ensure_openblas_kernel();
    let result = match cli.command {
        Cmd::Train(args) => with_processes(|comm| train::run(&args, comm)),
        Cmd::Eval(args) => eval::run(&args),
        Cmd::Predict(args) => predict::run(&args),
        Cmd::Data(args) => data::run(&args),
        Cmd::Bench(args) => bench::run(&args),
        Cmd::Plot(args) => plot::run(&args),
        Cmd::Info => {
            outln!("feedforward {}", version_line());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `f` with the processes it was started with: under `mpirun` (feature
/// `mpi`), MPI's world; otherwise this process alone.
fn with_processes(f: impl FnOnce(&dyn Communicator) -> Result<()>) -> Result<()> {
    #[cfg(feature = "mpi")]
    if launched_by_mpi() {
        let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Serialized)
            .ok_or("MPI could not be initialised")?;
        let world = feedforward::distributed::MpiCommunicator::world(&universe)?;
        let result = f(&world);
        if let (Err(e), true) = (&result, world.size() > 1) {
            fail_together(world.rank(), e.as_ref(), universe);
        }
        return result;
    }
    f(&SingleProcess)
}

/// Ends a process of several that failed. The others may have failed alike
/// (a check they all made) and reach `MPI_Finalize` with it at once; or they
/// may be waiting for it inside a collective and never come, and finalising
/// would wait for ever. So the message goes out first, and if finalising takes
/// longer than [`FINALIZE_GRACE`] the process exits non-zero without it:
/// `mpirun` then stops the others.
#[cfg(feature = "mpi")]
fn fail_together(
    rank: usize,
    error: &dyn std::error::Error,
    universe: mpi::environment::Universe,
) -> ! {
    eprintln!("error: rank {rank}: {error}");
    std::thread::spawn(|| {
        std::thread::sleep(FINALIZE_GRACE);
        std::process::exit(2);
    });
    drop(universe);
    std::process::exit(1);
}

/// How long a failed process of several waits for the others at
/// `MPI_Finalize`.
#[cfg(feature = "mpi")]
const FINALIZE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether a process manager (Open MPI's, or a PMI one such as MPICH's and
/// Slurm's) started this process: MPI is initialised only then.
#[cfg(feature = "mpi")]
fn launched_by_mpi() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

/// Keeps OpenBLAS off its slow generic kernels on AVX-512 CPUs it does not
/// recognise: restarts this program with `OPENBLAS_CORETYPE=SkylakeX` (the
/// library reads it only when it loads), or warns when the user chose otherwise.
#[cfg(feature = "openblas")]
fn ensure_openblas_kernel() {
    use feedforward::gemm::blas;
    if !blas::is_fallback_kernel() {
        return;
    }
    let core = blas::core_name();
    if std::env::var_os("OPENBLAS_CORETYPE").is_some() {
        eprintln!(
            "warning: OpenBLAS runs its {core} kernels on this AVX-512 CPU (OPENBLAS_CORETYPE is set); \
             matrix products may be several times slower than with OPENBLAS_CORETYPE=SkylakeX"
        );
        return;
    }
    eprintln!(
        "note: OpenBLAS did not recognise this AVX-512 CPU ({core} kernels); restarting with OPENBLAS_CORETYPE=SkylakeX"
    );
    match std::env::current_exe() {
        Ok(exe) => {
            use std::os::unix::process::CommandExt;
            let err = std::process::Command::new(exe)
                .args(std::env::args_os().skip(1))
                .env("OPENBLAS_CORETYPE", "SkylakeX")
                .exec();
            eprintln!("warning: could not restart ({err}); continuing on the {core} kernels");
        }
        Err(e) => eprintln!("warning: could not restart ({e}); continuing on the {core} kernels"),
    }
}
