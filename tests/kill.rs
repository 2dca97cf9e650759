//! Training killed with SIGKILL (which runs no clean-up) at 20 points, 12 of
//! them inside a checkpoint write: what is left is always the previous good
//! checkpoint or the new one, never a truncated file or a stray temporary, and
//! `--resume` from it ends with the same model, byte for byte, as a run that
//! was never interrupted.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use feedforward::train::Checkpoint;

const EPOCHS: usize = 10;
/// [`EPOCHS`] as the command line takes it.
const EPOCHS_ARG: &str = "10";

fn command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_feedforward"));
    c.args(args)
        .env_remove("OPENBLAS_CORETYPE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The training run: big enough layers that a checkpoint (weights and both
/// Adam moments, about 7 MB) takes a while to write, a checkpoint every epoch.
fn train_args<'a>(data: &'a Path, ckpt: &'a Path, out: &'a Path) -> Vec<&'a str> {
    vec![
        "train",
        "--data",
        s(data),
        "--hidden",
        "768,768",
        "--batch-size",
        "32",
        "--epochs",
        EPOCHS_ARG,
        "--checkpoint-every",
        "1",
        "--checkpoint",
        s(ckpt),
        "--out",
        s(out),
        "--threads",
        "1",
        "--quiet",
    ]
}

fn finish(child: Child) {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether `pid` has an unnamed file open in `dir` (an `O_TMPFILE` file shows
/// as `dir/#inode (deleted)`): a checkpoint or model write in progress.
fn writing(pid: u32, dir: &Path) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| {
            target.starts_with(dir) && target.to_string_lossy().ends_with("(deleted)")
        })
    })
}

/// Where a kill lands.
#[derive(Debug, Clone, Copy)]
enum KillPoint {
    /// While a checkpoint is being written (the `n`th write seen, from 1).
    InsideWrite(usize),
    /// After this long.
    After(Duration),
}

/// Starts the run in `dir` and kills it at `point`; returns whether it was
/// killed before it finished (a run can end before the point comes).
fn run_and_kill(args: &[&str], dir: &Path, point: KillPoint) -> bool {
    let mut child = command(args).spawn().unwrap();
    let pid = child.id();
    let start = Instant::now();
    let mut writes_seen = 0;
    let mut in_write = false;
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        let now_writing = writing(pid, dir);
        let hit = match point {
            KillPoint::InsideWrite(n) => {
                if now_writing && !in_write {
                    writes_seen += 1;
                }
                now_writing && writes_seen == n
            }
            KillPoint::After(t) => start.elapsed() >= t,
        };
        in_write = now_writing;
        if hit {
            child.kill().unwrap();
            child.wait().unwrap();
            return true;
        }
        if let KillPoint::After(_) = point {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

#[test]
fn sigkill_at_20_points_leaves_a_good_checkpoint_and_resume_ends_the_same() {
    assert_eq!(EPOCHS_ARG.parse(), Ok(EPOCHS));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("blobs.csv");
    let out = command(&[
        "data",
        "blobs",
        "--points",
        "320",
        "--dims",
        "32",
        "--out",
        s(&data),
    ])
    .output()
    .unwrap();
    assert!(out.status.success());

    // The uninterrupted run, timed.
    let whole = tempfile::tempdir().unwrap();
    let (ckpt, model) = (
        whole.path().join("run.ckpt"),
        whole.path().join("model.safetensors"),
    );
    let start = Instant::now();
    finish(command(&train_args(&data, &ckpt, &model)).spawn().unwrap());
    let duration = start.elapsed();
    let expected = std::fs::read(&model).unwrap();

    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut random = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut killed_in_write = 0;
    for k in 0..20 {
        let run = tempfile::tempdir().unwrap();
        let (ckpt, model) = (
            run.path().join("run.ckpt"),
            run.path().join("model.safetensors"),
        );
        let args = train_args(&data, &ckpt, &model);
        let point = if k < 12 {
            // Writes 1 to EPOCHS are checkpoints, EPOCHS+1 is the model.
            KillPoint::InsideWrite(1 + (random() as usize) % (EPOCHS + 1))
        } else {
            let fraction = (random() % 1000) as f64 / 1000.0;
            KillPoint::After(duration.mul_f64(fraction * 0.9))
        };
        let killed = run_and_kill(&args, run.path(), point);
        if killed && matches!(point, KillPoint::InsideWrite(_)) {
            killed_in_write += 1;
        }

        // Nothing but the checkpoint (old or new), and the model if the run
        // had got that far: no temporary, nothing truncated.
        let left: Vec<PathBuf> = std::fs::read_dir(run.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        for path in &left {
            assert!(
                path == &ckpt || path == &model,
                "point {k} ({point:?}): {} left behind",
                path.display()
            );
        }
        if ckpt.exists() {
            let state = Checkpoint::load(&ckpt)
                .unwrap_or_else(|e| panic!("point {k} ({point:?}): {e}"))
                .state;
            // Killed inside the write of epoch n's checkpoint: epoch n−1's
            // (the previous good one) or epoch n's (the new one), whole.
            if let (true, KillPoint::InsideWrite(n)) = (killed, point) {
                assert!(
                    state.epochs_done == n - 1 || state.epochs_done == n,
                    "point {k}: killed writing epoch {n}, the checkpoint holds {}",
                    state.epochs_done
                );
            }
            assert!((1..=EPOCHS).contains(&state.epochs_done), "point {k}");
            finish(
                command(&[
                    "train",
                    "--data",
                    s(&data),
                    "--epochs",
                    EPOCHS_ARG,
                    "--resume",
                    s(&ckpt),
                    "--out",
                    s(&model),
                    "--quiet",
                ])
                .spawn()
                .unwrap(),
            );
        } else {
            finish(command(&args).spawn().unwrap());
        }
        assert!(
            std::fs::read(&model).unwrap() == expected,
            "point {k} ({point:?}): the resumed run ends with another model"
        );
    }
    assert!(
        killed_in_write >= 10,
        "only {killed_in_write} kills inside a write"
    );
}
