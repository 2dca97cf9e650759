//! Data-parallel training under `mpirun` (feature `mpi`; needs Open MPI's
//! `mpirun` on the PATH, which `.ci/run` installs): 2 and 4 processes end with
//! the model file of one process, byte for byte; disagreeing or unusable
//! launches end with one clear error; a killed process ends the run.

mod common;

use common::npy;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const FF: &str = env!("CARGO_BIN_EXE_feedforward");

/// `mpirun` with the flags a test needs: as root if need be, more processes
/// than cores, over loopback and shared memory.
fn mpirun(np: usize) -> Command {
    let mut cmd = Command::new("mpirun");
    cmd.args(["-np", &np.to_string(), "--oversubscribe"])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env_remove("OPENBLAS_CORETYPE");
    cmd
}

fn run(mut cmd: Command) -> Output {
    cmd.output().expect("the command runs")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Trains with `args` (3 epochs) on 1 process (no mpirun) and under `mpirun`
/// with 2 and 4, and checks that the three model files are the same bytes,
/// and the three checkpoints of the last epoch (which add the optimizer's
/// state) too.
fn same_bytes_on_1_2_and_4(dir: &Path, name: &str, args: &[&str]) {
    let out = |n: usize| dir.join(format!("{name}-{n}.safetensors"));
    let ckpt = |n: usize| dir.join(format!("{name}-{n}.ckpt"));
    let files = |n: usize| {
        [
            "--out".to_string(),
            s(&out(n)).to_string(),
            "--checkpoint-every".to_string(),
            "3".to_string(),
            "--checkpoint".to_string(),
            s(&ckpt(n)).to_string(),
        ]
    };
    let single = run({
        let mut c = Command::new(FF);
        c.args(args).args(files(1));
        c
    });
    assert!(
        single.status.success(),
        "{}",
        String::from_utf8_lossy(&single.stderr)
    );
    for np in [2, 4] {
        let mut cmd = mpirun(np);
        cmd.arg(FF).args(args).args(files(np));
        let o = run(cmd);
        assert!(
            o.status.success(),
            "{np} processes: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        for (one, many) in [(out(1), out(np)), (ckpt(1), ckpt(np))] {
            assert_eq!(
                std::fs::read(&one).unwrap(),
                std::fs::read(&many).unwrap(),
                "{name}: 1 and {np} processes end with different {}",
                many.display()
            );
        }
    }
}

fn data(dir: &Path, kind: &str, points: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{kind}.csv"));
    let o = run({
        let mut c = Command::new(FF);
        c.args(["data", kind, "--points", points, "--out", s(&path)]);
        c
    });
    assert!(o.status.success());
    path
}

#[test]
fn softmax_with_adam_is_the_same_on_1_2_and_4_processes() {
    let dir = tempfile::tempdir().unwrap();
    let spiral = data(dir.path(), "spiral", "100");
    let args = [
        "train",
        "--data",
        s(&spiral),
        "--hidden",
        "32,16",
        "--epochs",
        "3",
        "--batch-size",
        "64",
        "--shards",
        "8",
        "--threads",
        "1",
        "--quiet",
        "--dropout",
        "0.1",
    ];
    same_bytes_on_1_2_and_4(dir.path(), "softmax", &args);
}

#[test]
fn regression_with_sgd_momentum_is_the_same_on_1_2_and_4_processes() {
    let dir = tempfile::tempdir().unwrap();
    let sine = data(dir.path(), "sine", "500");
    let args = [
        "train",
        "--data",
        s(&sine),
        "--loss",
        "mse",
        "--hidden",
        "24",
        "--activation",
        "tanh",
        "--optimizer",
        "sgd",
        "--momentum",
        "0.9",
        "--lr",
        "0.05",
        "--epochs",
        "3",
        "--batch-size",
        "100",
        "--shards",
        "4",
        "--micro-batch",
        "7",
        "--threads",
        "1",
        "--quiet",
    ];
    same_bytes_on_1_2_and_4(dir.path(), "mse", &args);
}

/// Exact batch norm: its statistics and backward sums are gathered chunk by
/// chunk and merged in one order, so they too are the same bits; shards of
/// unequal chunk counts (27 rows in 8 shards of 3 or 4, micro-batches of 3)
/// included.
#[test]
fn batch_norm_is_the_same_on_1_2_and_4_processes() {
    let dir = tempfile::tempdir().unwrap();
    let spiral = data(dir.path(), "spiral", "40");
    let args = [
        "train",
        "--data",
        s(&spiral),
        "--hidden",
        "16,8",
        "--batch-norm",
        "--epochs",
        "3",
        "--batch-size",
        "27",
        "--shards",
        "8",
        "--micro-batch",
        "3",
        "--threads",
        "1",
        "--quiet",
    ];
    same_bytes_on_1_2_and_4(dir.path(), "batch-norm", &args);
}

/// Layers wide enough to make three gradient buckets (each exchanged as the
/// backward pass finishes it, while the layers below compute), with exact
/// batch norm; the last batch (6 rows in 8 shards) leaves the last shards
/// empty, so some processes have no chunk to overlap and exchange their
/// buckets after the pass, beside processes that overlap.
#[test]
fn gradients_exchanged_in_buckets_are_the_same_on_1_2_and_4_processes() {
    let dir = tempfile::tempdir().unwrap();
    let spiral = data(dir.path(), "spiral", "100");
    let args = [
        "train",
        "--data",
        s(&spiral),
        "--hidden",
        "320,256,300",
        "--batch-norm",
        "--epochs",
        "3",
        "--batch-size",
        "98",
        "--shards",
        "8",
        "--micro-batch",
        "5",
        "--threads",
        "1",
        "--quiet",
    ];
    same_bytes_on_1_2_and_4(dir.path(), "buckets", &args);
}

/// One clear error, from every process that reports, and a failed run.
fn fails_with(cmd: Command, expected: &str) {
    let o = run(cmd);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "should fail: {err}");
    assert!(err.contains(expected), "{err:?} lacks {expected:?}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn launches_that_cannot_train_together_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let spiral = data(dir.path(), "spiral", "40");
    let model = dir.path().join("m.safetensors");
    let base = [
        "train",
        "--data",
        s(&spiral),
        "--hidden",
        "8",
        "--batch-size",
        "30",
        "--threads",
        "1",
        "--quiet",
        "--out",
        s(&model),
    ];
    let mut cmd = mpirun(3);
    cmd.arg(FF).args(base).args(["--shards", "4"]);
    fails_with(cmd, "3 processes cannot share 4 shards");
    // Processes given different options: the first difference is named.
    let mut cmd = Command::new("mpirun");
    cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .args(["-np", "1", FF])
        .args(base)
        .args(["--shards", "2", "--epochs", "3", ":", "-np", "1", FF])
        .args(base)
        .args(["--shards", "2", "--epochs", "4"]);
    fails_with(
        cmd,
        "the processes disagree on the epochs: 3 on rank 0, 4 on rank 1",
    );
    let mut cmd = mpirun(2);
    cmd.arg(FF)
        .args(base)
        .args(["--shards", "2", "--batch-norm", "--ghost-batch-norm"]);
    fails_with(cmd, "ghost batch norm across processes is not supported");
    assert!(!model.exists(), "a refused run wrote a model");
}

/// A process that fails alone (process 0, which alone writes, finds that its
/// checkpoint cannot be written, while the others wait for it in the start-up
/// checks) ends the run with its error within the 30 s bound, instead of
/// hanging in `MPI_Finalize`.
#[test]
fn a_process_that_fails_alone_ends_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let spiral = data(dir.path(), "spiral", "100");
    let checkpoint = dir.path().join("missing").join("run.ckpt");
    let mut cmd = mpirun(2);
    cmd.arg(FF).args([
        "train",
        "--data",
        s(&spiral),
        "--hidden",
        "16",
        "--epochs",
        "5",
        "--batch-size",
        "64",
        "--shards",
        "2",
        "--threads",
        "1",
        "--quiet",
        "--checkpoint-every",
        "1",
        "--checkpoint",
        s(&checkpoint),
        "--out",
        s(&dir.path().join("m.safetensors")),
    ]);
    let start = Instant::now();
    let o = run(cmd);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "should fail: {err}");
    assert!(
        err.contains("error: rank 0: ") && err.contains("run.ckpt"),
        "{err}"
    );
    assert!(start.elapsed() < Duration::from_secs(30), "{err}");
}

#[test]
fn a_killed_process_ends_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let spiral = data(dir.path(), "spiral", "3000");
    let model = dir.path().join("m.safetensors");
    let mut cmd = mpirun(2);
    cmd.arg(FF)
        .args([
            "train",
            "--data",
            s(&spiral),
            "--hidden",
            "256,256",
            "--epochs",
            "1000",
            "--batch-size",
            "64",
            "--shards",
            "2",
            "--threads",
            "1",
            "--quiet",
            "--out",
            s(&model),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut job = cmd.spawn().unwrap();
    // Find one of the training processes and kill it once it is working.
    std::thread::sleep(Duration::from_secs(3));
    let pids = Command::new("pgrep")
        // Anchored: mpirun's own command line holds the same words after "mpirun".
        .args(["-f", &format!("^{FF} train --data {}", s(&spiral))])
        .output()
        .unwrap();
    let pids = String::from_utf8_lossy(&pids.stdout);
    let pids: Vec<&str> = pids.lines().collect();
    assert_eq!(pids.len(), 2, "two training processes: {pids:?}");
    let victim = pids[1];
    Command::new("kill").args(["-9", victim]).status().unwrap();
    let killed = Instant::now();
    let status = loop {
        if let Some(status) = job.try_wait().unwrap() {
            break status;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "the run went on 30 s after a process was killed"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success());
    assert!(!model.exists(), "a killed run wrote a model");
}

/// A checkpoint written by 2 processes, resumed by 4, ends with the model of
/// one process trained straight through.
#[test]
fn a_checkpoint_of_2_processes_resumes_on_4_to_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let spiral = data(dir.path(), "spiral", "60");
    let path = |name: &str| dir.path().join(name);
    let args = [
        "train",
        "--data",
        s(&spiral),
        "--hidden",
        "16",
        "--batch-size",
        "40",
        "--shards",
        "4",
        "--threads",
        "1",
        "--quiet",
    ];
    let straight = run({
        let mut c = Command::new(FF);
        c.args(args)
            .args(["--epochs", "4", "--out", s(&path("straight.safetensors"))]);
        c
    });
    assert!(straight.status.success());
    let mut first = mpirun(2);
    first.arg(FF).args(args).args([
        "--epochs",
        "2",
        "--checkpoint-every",
        "2",
        "--checkpoint",
        s(&path("run.ckpt")),
        "--out",
        s(&path("part.safetensors")),
    ]);
    assert!(run(first).status.success());
    let mut rest = mpirun(4);
    rest.arg(FF).args([
        "train",
        "--data",
        s(&spiral),
        "--threads",
        "1",
        "--quiet",
        "--epochs",
        "4",
        "--resume",
        s(&path("run.ckpt")),
        "--out",
        s(&path("resumed.safetensors")),
    ]);
    let o = run(rest);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read(path("straight.safetensors")).unwrap(),
        std::fs::read(path("resumed.safetensors")).unwrap()
    );
}

/// Streaming a memory-mapped NPY file, each process reads only the rows of
/// its own shards, and the model is still the one process's, byte for byte.
#[test]
fn streamed_npy_is_the_same_on_1_2_and_4_processes() {
    let dir = tempfile::tempdir().unwrap();
    let rows = 300;
    let x: Vec<u8> = (0..rows * 3)
        .flat_map(|i| (((i * 37) % 101) as f32 / 50.0 - 1.0).to_le_bytes())
        .collect();
    let y: Vec<u8> = (0..rows)
        .flat_map(|i| (((i * 7) % 3) as i64).to_le_bytes())
        .collect();
    let (xp, yp) = (dir.path().join("x.npy"), dir.path().join("y.npy"));
    std::fs::write(&xp, npy("<f4", &format!("({rows}, 3)"), x)).unwrap();
    std::fs::write(&yp, npy("<i8", &format!("({rows},)"), y)).unwrap();
    let args = [
        "train",
        "--data",
        s(&xp),
        "--labels",
        s(&yp),
        "--stream",
        "--hidden",
        "16",
        "--epochs",
        "3",
        "--batch-size",
        "50",
        "--shards",
        "4",
        "--threads",
        "1",
        "--quiet",
    ];
    same_bytes_on_1_2_and_4(dir.path(), "streamed", &args);
}
