//! The `feedforward` binary end to end: a full session, exact resume, and every
//! kind of bad input ending in one clear error line, never a panic.

mod common;

use common::npy;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use feedforward::io::model;

fn ff(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_feedforward"))
        .args(args)
        // A machine's own OPENBLAS_CORETYPE makes an OpenBLAS build warn on
        // every run (see `ensure_openblas_kernel` in main.rs); these checks count lines.
        .env_remove("OPENBLAS_CORETYPE")
        .output()
        .expect("the binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
fn succeeds(args: &[&str]) -> String {
    let out = ff(args);
    assert!(out.status.success(), "{args:?} failed: {}", stderr(&out));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Fails with exit code 1 and one `error:` line holding every piece of `expected`.
#[track_caller]
fn fails_with(args: &[&str], expected: &[&str]) {
    let out = ff(args);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?} should fail; stderr: {err}"
    );
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with("note:")).collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?}: expected one error line, got {err}"
    );
    assert!(lines[0].starts_with("error: "), "{err}");
    for piece in expected {
        assert!(err.contains(piece), "{args:?}: {err:?} lacks {piece:?}");
    }
}

/// One JSON value per line of `text` (`train --json` output).
fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn write(dir: &Path, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write test file");
    path
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Three separable classes in two features, label first, with a header.
fn small_csv() -> String {
    let mut text = String::from("label,a,b\n");
    for i in 0..30 {
        let c = i % 3;
        text += &format!("{c},{},{}\n", c as f32 + 0.01 * i as f32, 2.0 - c as f32);
    }
    text
}

#[test]
fn a_complete_session_trains_evaluates_and_predicts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("spiral.csv");
    let model = dir.path().join("spiral.safetensors");
    let preds = dir.path().join("preds.csv");
    succeeds(&["data", "spiral", "--out", s(&data)]);
    let out = succeeds(&[
        "train",
        "--data",
        s(&data),
        "--out",
        s(&model),
        "--hidden",
        "64",
        "--lr",
        "0.02",
        "--epochs",
        "40",
        "--standardize",
        "--val-split",
        "0.2",
        "--json",
    ]);
    let epochs = json_lines(&out);
    assert_eq!(epochs.len(), 40);
    assert!(
        epochs[39]["val_accuracy"].as_f64().unwrap() > 0.85,
        "{}",
        epochs[39]
    );

    let eval: serde_json::Value = serde_json::from_str(&succeeds(&[
        "eval",
        "--model",
        s(&model),
        "--data",
        s(&data),
        "--json",
    ]))
    .unwrap();
    assert!(eval["accuracy"].as_f64().unwrap() >= 0.9, "{eval}");
    assert!(eval["loss"].as_f64().unwrap() < 0.4, "{eval}");
    let confusion = eval["confusion"].as_array().unwrap();
    let total: u64 = confusion
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 300);

    let text = succeeds(&["eval", "--model", s(&model), "--data", s(&data)]);
    assert!(
        text.contains("confusion matrix") && text.contains("precision"),
        "{text}"
    );

    succeeds(&[
        "predict",
        "--model",
        s(&model),
        "--data",
        s(&data),
        "--out",
        s(&preds),
    ]);
    let rows: Vec<String> = std::fs::read_to_string(&preds)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(rows[0], "predicted,p0,p1,p2");
    assert_eq!(rows.len(), 301);
    let probs: f32 = rows[1]
        .split(',')
        .skip(1)
        .map(|v| v.parse::<f32>().unwrap())
        .sum();
    assert!((probs - 1.0).abs() < 1e-4, "{}", rows[1]);
}

#[test]
fn resume_after_checkpoint_gives_the_same_weights() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("blobs.csv");
    succeeds(&[
        "data",
        "blobs",
        "--points",
        "40",
        "--dims",
        "5",
        "--out",
        s(&data),
    ]);
    let common = [
        "--data",
        s(&data),
        "--hidden",
        "16",
        "--batch-norm",
        "--standardize",
        "--val-split",
        "0.25",
        "--quiet",
    ];
    let full = dir.path().join("full.safetensors");
    let part = dir.path().join("part.safetensors");
    let resumed = dir.path().join("resumed.safetensors");
    let run = |extra: &[&str]| {
        let mut args = vec!["train"];
        args.extend_from_slice(&common);
        args.extend_from_slice(extra);
        succeeds(&args);
    };
    run(&["--out", s(&full), "--epochs", "5"]);
    run(&[
        "--out",
        s(&part),
        "--epochs",
        "3",
        "--checkpoint-every",
        "1",
    ]);
    let ckpt = dir.path().join("part.ckpt.safetensors");
    assert!(model::load(&ckpt).unwrap().has_optimizer_state);
    run(&["--out", s(&resumed), "--epochs", "5", "--resume", s(&ckpt)]);

    let a = model::load(&full).unwrap();
    let b = model::load(&resumed).unwrap();
    let p = model::load(&part).unwrap();
    assert_eq!(a.network.parameters(), b.network.parameters());
    assert_ne!(a.network.parameters(), p.network.parameters());
    for (la, lb) in a.network.layers().iter().zip(b.network.layers()) {
        if let (feedforward::Layer::BatchNorm(x), feedforward::Layer::BatchNorm(y)) = (la, lb) {
            assert_eq!(
                (&x.running_mean, &x.running_var),
                (&y.running_mean, &y.running_var)
            );
        }
    }
    assert_eq!(a.standardizer, b.standardizer);
}

#[test]
fn reads_npy_npz_and_gzipped_idx() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let (n, d) = (40usize, 3usize);
    let x: Vec<f32> = (0..n * d)
        .map(|i| ((i * 7919) % 97) as f32 / 97.0)
        .collect();
    let y: Vec<i64> = (0..n).map(|i| (x[i * d] > 0.5) as i64).collect();
    let xb = npy(
        "<f4",
        &format!("({n}, {d})"),
        x.iter().flat_map(|v| v.to_le_bytes()).collect(),
    );
    let yb = npy(
        "<i8",
        &format!("({n},)"),
        y.iter().flat_map(|v| v.to_le_bytes()).collect(),
    );
    let xp = write(dir.path(), "x.npy", &xb);
    let yp = write(dir.path(), "y.npy", &yb);
    let m = dir.path().join("m.safetensors");
    succeeds(&[
        "train",
        "--data",
        s(&xp),
        "--labels",
        s(&yp),
        "--out",
        s(&m),
        "--epochs",
        "2",
        "--quiet",
    ]);
    assert_eq!(model::load(&m).unwrap().network.inputs(), 3);

    // The same arrays in an .npz archive (stored, as numpy.savez writes them).
    let npz = dir.path().join("d.npz");
    {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&npz).unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        zip.start_file("x.npy", opts).unwrap();
        zip.write_all(&xb).unwrap();
        zip.start_file("y.npy", opts).unwrap();
        zip.write_all(&yb).unwrap();
        zip.finish().unwrap();
    }
    let out = succeeds(&["eval", "--model", s(&m), "--data", s(&npz), "--json"]);
    assert!(out.contains("\"accuracy\""), "{out}");

    // MNIST-style IDX pair, gzip-compressed; labels found by name.
    let mut images = vec![0u8, 0, 0x08, 3];
    for dim in [n as u32, 1, 3] {
        images.extend_from_slice(&dim.to_be_bytes());
    }
    images.extend(x.iter().map(|v| (v * 255.0) as u8));
    let mut labels = vec![0u8, 0, 0x08, 1];
    labels.extend_from_slice(&(n as u32).to_be_bytes());
    labels.extend(y.iter().map(|&v| v as u8));
    let gz = |bytes: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    };
    let img = write(dir.path(), "t-images-idx3-ubyte.gz", gz(&images));
    write(dir.path(), "t-labels-idx1-ubyte.gz", gz(&labels));
    let out = succeeds(&["eval", "--model", s(&m), "--data", s(&img), "--json"]);
    assert!(out.contains("\"samples\":40"), "{out}");

    // An IDX header that promises more than the file holds.
    let bad = write(
        dir.path(),
        "bad-images-idx3-ubyte",
        &images[..images.len() - 5],
    );
    fails_with(
        &["eval", "--model", s(&m), "--data", s(&bad)],
        &[s(&bad), "header says 40 x 1 x 3", "115 bytes"],
    );
}

#[test]
fn bad_data_files_give_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.safetensors");
    let m_s = s(&m).to_string();
    let train = |data: &Path, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--data",
            s(data),
            "--out",
            &m_s,
            "--epochs",
            "1",
            "--quiet",
        ];
        args.extend_from_slice(extra);
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let check = |args: Vec<String>, expected: &[&str]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails_with(&args, expected);
    };

    let missing = dir.path().join("missing.csv");
    check(train(&missing, &[]), &[s(&missing), "No such file"]);
    let empty = write(dir.path(), "empty.csv", "");
    check(train(&empty, &[]), &[s(&empty), "empty"]);
    let header_only = write(dir.path(), "header.csv", "label,a,b\n");
    check(train(&header_only, &[]), &[s(&header_only), "no data rows"]);
    let ragged = write(dir.path(), "ragged.csv", "label,a,b\n0,1,2\n1,3\n");
    check(
        train(&ragged, &[]),
        &[s(&ragged), "line 3", "expected 3 fields", "found 2"],
    );
    let text = write(dir.path(), "text.csv", "label,a,b\n0,1,2\n1,3,abc\n");
    check(
        train(&text, &[]),
        &[s(&text), "line 3, column 3", "not a number: \"abc\""],
    );
    let nan = write(dir.path(), "nan.csv", "label,a,b\n0,1,2\n1,NaN,3\n0,1,1\n");
    check(
        train(&nan, &[]),
        &[s(&nan), "line 3, column 2", "NaN", "--allow-nan"],
    );
    let inf = write(dir.path(), "inf.csv", "0,1,2\n1,3,inf\n");
    check(train(&inf, &[]), &[s(&inf), "line 2, column 3", "infinite"]);
    let blank = write(dir.path(), "blank.csv", "0,1,2\n1,,4\n");
    check(
        train(&blank, &[]),
        &[s(&blank), "line 2, column 2", "empty cell"],
    );
    // --allow-nan drops the row instead.
    let out = ff(&train(&nan, &["--hidden", "4"])
        .iter()
        .map(String::as_str)
        .chain(["--allow-nan"])
        .collect::<Vec<_>>());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("dropped 1 row"), "{}", stderr(&out));

    let labels = write(dir.path(), "labels.csv", "label,a,b\n0,1,2\n1,3,4\n7,5,6\n");
    check(
        train(&labels, &["--layers", "2,8,3"]),
        &[
            s(&labels),
            "line 4, column 1",
            "label 7 is out of range for 3 classes",
        ],
    );
    let fractional = write(dir.path(), "frac.csv", "0,1,2\n1.5,3,4\n");
    check(
        train(&fractional, &[]),
        &[s(&fractional), "line 2, column 1", "not a class index"],
    );
    let negative = write(dir.path(), "neg.csv", "0,1,2\n-1,3,4\n");
    check(
        train(&negative, &[]),
        &[s(&negative), "line 2", "not a class index"],
    );
    let good = write(dir.path(), "good.csv", small_csv());
    check(
        train(&good, &["--label", "nope"]),
        &["no column named \"nope\"", "label, a, b"],
    );
    check(
        train(&good, &["--layers", "5,8,3"]),
        &["--layers starts with 5 inputs", "2 feature column"],
    );
    check(
        train(&good, &["--batch-size", "0"]),
        &["--batch-size must be at least 1"],
    );
}

/// The small data set of [`small_csv`] and a model trained on it, in `dir`.
fn small_model(dir: &Path) -> (PathBuf, PathBuf) {
    let data = write(dir, "good.csv", small_csv());
    let model = dir.join("m.safetensors");
    succeeds(&[
        "train",
        "--data",
        s(&data),
        "--out",
        s(&model),
        "--hidden",
        "8",
        "--epochs",
        "2",
        "--quiet",
    ]);
    (data, model)
}

#[test]
fn bad_models_and_mismatched_data_give_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (data, m) = small_model(dir.path());

    let bytes = std::fs::read(&m).unwrap();
    let truncated = write(
        dir.path(),
        "truncated.safetensors",
        &bytes[..bytes.len() / 2],
    );
    fails_with(
        &["eval", "--model", s(&truncated), "--data", s(&data)],
        &[s(&truncated), "truncated or foreign"],
    );
    let foreign = write(dir.path(), "foreign.safetensors", "label,a,b\n1,2,3\n");
    fails_with(
        &["predict", "--model", s(&foreign), "--data", s(&data)],
        &[s(&foreign), "not a feedforward model"],
    );
    let no_meta = dir.path().join("plain.safetensors");
    let t =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1], &[0u8; 4]).unwrap();
    std::fs::write(&no_meta, safetensors::serialize([("w", t)], None).unwrap()).unwrap();
    fails_with(
        &["eval", "--model", s(&no_meta), "--data", s(&data)],
        &[s(&no_meta), "not a feedforward model"],
    );
    let missing = dir.path().join("none.safetensors");
    fails_with(
        &["eval", "--model", s(&missing), "--data", s(&data)],
        &[s(&missing)],
    );

    let wide = write(dir.path(), "wide.csv", "label,a,b,c\n0,1,2,3\n");
    fails_with(
        &["eval", "--model", s(&m), "--data", s(&wide)],
        &["takes 2 input features", "3 feature column"],
    );
    fails_with(
        &["predict", "--model", s(&m), "--data", s(&wide)],
        &["takes 2 input features", "4 feature column"],
    );
    // Predict accepts the training file (label column recognised) and a features-only file.
    let with_label = succeeds(&["predict", "--model", s(&m), "--data", s(&data)]);
    let features = write(dir.path(), "features.csv", "a,b\n0.5,2\n2,0\n");
    let without = succeeds(&["predict", "--model", s(&m), "--data", s(&features)]);
    assert_eq!(with_label.lines().count(), 31);
    assert_eq!(without.lines().count(), 3);
}

#[test]
fn a_failed_run_never_touches_an_existing_model() {
    let dir = tempfile::tempdir().unwrap();
    let (_, m) = small_model(dir.path());
    let before = std::fs::read(&m).unwrap();

    let bad = write(dir.path(), "bad.csv", "label,a,b\n0,1,2\n1,x,3\n");
    fails_with(
        &["train", "--data", s(&bad), "--out", s(&m), "--quiet"],
        &["not a number"],
    );
    // Divergence mid-run: an absurd learning rate on MSE.
    let reg = write(
        dir.path(),
        "reg.csv",
        "y,a\n1e30,1e30\n-1e30,-1e30\n1e30,1e30\n",
    );
    fails_with(
        &[
            "train",
            "--data",
            s(&reg),
            "--out",
            s(&m),
            "--loss",
            "mse",
            "--optimizer",
            "sgd",
            "--lr",
            "1e10",
            "--epochs",
            "5",
            "--quiet",
        ],
        &["diverged"],
    );
    assert_eq!(std::fs::read(&m).unwrap(), before, "the model file changed");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn data_command_writes_the_synthetic_sets() {
    let out = succeeds(&["data", "sine", "--points", "5"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "y,x0");
    assert_eq!(lines.len(), 6);
    let blobs = succeeds(&[
        "data",
        "blobs",
        "--points",
        "4",
        "--classes",
        "2",
        "--dims",
        "3",
    ]);
    assert_eq!(blobs.lines().next(), Some("label,x0,x1,x2"));
    assert_eq!(blobs.lines().count(), 9);
    fails_with(&["data", "spiral", "--points", "0"], &["at least 1"]);
}

#[test]
fn early_stopping_and_a_validation_file() {
    let dir = tempfile::tempdir().unwrap();
    let train = dir.path().join("train.csv");
    let val = dir.path().join("val.csv");
    succeeds(&[
        "data",
        "blobs",
        "--points",
        "30",
        "--seed",
        "1",
        "--out",
        s(&train),
    ]);
    succeeds(&[
        "data",
        "blobs",
        "--points",
        "10",
        "--seed",
        "1",
        "--out",
        s(&val),
    ]);
    let m = dir.path().join("m.safetensors");
    // A learning rate this small barely moves the validation loss, and a
    // patience of 1 stops at the first epoch that does not improve it.
    let out = succeeds(&[
        "train",
        "--data",
        s(&train),
        "--val",
        s(&val),
        "--out",
        s(&m),
        "--epochs",
        "200",
        "--optimizer",
        "sgd",
        "--lr",
        "1e-9",
        "--early-stopping",
        "1",
        "--json",
    ]);
    let epochs = json_lines(&out);
    assert!(
        epochs.len() < 200,
        "did not stop early ({} epochs)",
        epochs.len()
    );
    assert!(epochs.iter().all(|e| e["val_loss"].is_f64()), "{out}");
    assert!(m.exists());
}

#[test]
fn early_stopping_writes_the_best_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let train = dir.path().join("train.csv");
    let val = dir.path().join("val.csv");
    for (path, points, seed) in [(&train, "40", "1"), (&val, "20", "2")] {
        let p = s(path);
        succeeds(&[
            "data", "spiral", "--points", points, "--seed", seed, "--out", p,
        ]);
    }
    let (stopped, best_run) = (
        dir.path().join("a.safetensors"),
        dir.path().join("b.safetensors"),
    );
    let common = [
        "--data",
        s(&train),
        "--val",
        s(&val),
        "--lr",
        "0.05",
        "--json",
    ];
    let run = |out: &Path, extra: &[&str]| {
        let mut args = vec!["train", "--out", s(out)];
        args.extend(common);
        args.extend(extra);
        json_lines(&succeeds(&args))
    };
    // Adam at this rate makes the validation loss wander near its minimum.
    let epochs = run(&stopped, &["--epochs", "100", "--early-stopping", "3"]);
    let losses: Vec<f64> = epochs
        .iter()
        .map(|e| e["val_loss"].as_f64().unwrap())
        .collect();
    let best = (0..losses.len())
        .min_by(|&a, &b| losses[a].total_cmp(&losses[b]))
        .unwrap();
    assert!(
        best + 1 < losses.len(),
        "the last epoch was the best: {losses:?}"
    );
    // The model written is the one an uninterrupted run of `best + 1` epochs writes.
    run(&best_run, &["--epochs", &(best + 1).to_string()]);
    let (a, b) = (
        model::load(&stopped).unwrap(),
        model::load(&best_run).unwrap(),
    );
    assert_eq!(a.network.parameters(), b.network.parameters());

    // Interrupted one epoch after the best and resumed from the checkpoint, the
    // run still stops at the same epoch and writes the best epoch's weights: the
    // checkpoint carries them beside its own.
    let ckpt = dir.path().join("c.ckpt.safetensors");
    let (first, resumed) = (
        dir.path().join("c.safetensors"),
        dir.path().join("d.safetensors"),
    );
    let until = (best + 2).to_string();
    run(
        &first,
        &[
            "--epochs",
            &until,
            "--early-stopping",
            "3",
            "--checkpoint-every",
            "1",
            "--checkpoint",
            s(&ckpt),
        ],
    );
    let held = model::load(&ckpt).unwrap();
    assert_eq!(
        held.extra_tensors["training.best.parameters"],
        b.network.parameters()
    );
    let rest = run(
        &resumed,
        &[
            "--epochs",
            "100",
            "--early-stopping",
            "3",
            "--resume",
            s(&ckpt),
        ],
    );
    assert_eq!(best + 2 + rest.len(), losses.len());
    let c = model::load(&resumed).unwrap();
    assert_eq!(a.network.parameters(), c.network.parameters());
}

#[test]
fn micro_batches_train_like_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("blobs.csv");
    succeeds(&[
        "data",
        "blobs",
        "--points",
        "30",
        "--dims",
        "4",
        "--out",
        s(&data),
    ]);
    let train = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--data",
            s(&data),
            "--out",
            s(out),
            "--hidden",
            "16",
            "--batch-norm",
            "--optimizer",
            "sgd",
            "--lr",
            "0.05",
            "--batch-size",
            "30",
            "--epochs",
            "2",
            "--quiet",
        ];
        args.extend_from_slice(extra);
        succeeds(&args);
        model::load(out).unwrap().network
    };
    let whole = train(&dir.path().join("a.safetensors"), &[]);
    let chunked = train(&dir.path().join("b.safetensors"), &["--micro-batch", "7"]);
    let tiny = train(
        &dir.path().join("c.safetensors"),
        &["--memory-budget", "1KiB"],
    );
    for other in [&chunked, &tiny] {
        for (a, b) in whole.parameters().iter().zip(other.parameters()) {
            assert!((a - b).abs() <= 1e-5 * a.abs().max(0.1), "{a} vs {b}");
        }
    }
    // A bad option value is clap's usage error (exit code 2).
    let out = ff(&[
        "train",
        "--data",
        s(&data),
        "--out",
        "x.safetensors",
        "--memory-budget",
        "lots",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not a size"), "{}", stderr(&out));
}

#[test]
fn train_stream_reads_the_file_batch_by_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (n, d) = (90usize, 3usize);
    let x: Vec<f32> = (0..n * d)
        .map(|i| ((i * 7919) % 97) as f32 / 9.7 + (i % d) as f32 * 3.0)
        .collect();
    let y: Vec<i64> = (0..n).map(|i| (i % 3) as i64).collect();
    let xp = write(
        dir.path(),
        "x.npy",
        npy(
            "<f4",
            &format!("({n}, {d})"),
            x.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
    );
    let yp = write(
        dir.path(),
        "y.npy",
        npy(
            "<i8",
            &format!("({n},)"),
            y.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
    );
    let train = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--data",
            s(&xp),
            "--labels",
            s(&yp),
            "--out",
            s(out),
            "--hidden",
            "8",
            "--batch-norm",
            "--standardize",
            "--batch-size",
            "16",
            "--seed",
            "7",
            "--quiet",
        ];
        args.extend_from_slice(extra);
        succeeds(&args);
        model::load(out).unwrap()
    };
    let bits = |m: &model::Model| -> Vec<u32> {
        m.network.parameters().iter().map(|v| v.to_bits()).collect()
    };
    // NPY features are shuffled every epoch as in memory, and standardised with
    // statistics measured in two passes over the file: the same model, to the bit.
    let memory = train(&dir.path().join("a.safetensors"), &["--epochs", "3"]);
    let streamed = train(
        &dir.path().join("b.safetensors"),
        &["--epochs", "3", "--stream"],
    );
    assert_eq!(bits(&memory), bits(&streamed));
    assert_eq!(memory.standardizer, streamed.standardizer);
    assert!(memory.standardizer.is_some());

    // A validation split of a streamed NPY file reads only the held-out rows: the
    // same split, the same validation losses and the same model as in memory.
    let split = ["--epochs", "2", "--val-split", "0.25", "--json"];
    let (a, b) = (
        dir.path().join("s1.safetensors"),
        dir.path().join("s2.safetensors"),
    );
    let run = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--data",
            s(&xp),
            "--labels",
            s(&yp),
            "--out",
            s(out),
            "--hidden",
            "8",
            "--standardize",
            "--batch-size",
            "16",
        ];
        args.extend_from_slice(&split);
        args.extend_from_slice(extra);
        let lines = json_lines(&succeeds(&args));
        let val: Vec<f64> = lines
            .iter()
            .map(|l| l["val_loss"].as_f64().unwrap())
            .collect();
        (val, model::load(out).unwrap())
    };
    let (val_memory, memory_split) = run(&a, &[]);
    let (val_streamed, streamed_split) = run(&b, &["--stream"]);
    assert_eq!(val_memory, val_streamed);
    assert_eq!(bits(&memory_split), bits(&streamed_split));
    assert_eq!(memory_split.standardizer, streamed_split.standardizer);

    // Checkpoint and resume work the same way on a stream.
    let ckpt = dir.path().join("c.ckpt.safetensors");
    train(
        &dir.path().join("c.safetensors"),
        &[
            "--epochs",
            "2",
            "--stream",
            "--checkpoint-every",
            "1",
            "--checkpoint",
            s(&ckpt),
        ],
    );
    let resumed = train(
        &dir.path().join("c.safetensors"),
        &["--epochs", "3", "--stream", "--resume", s(&ckpt)],
    );
    assert_eq!(bits(&memory), bits(&resumed));

    // CSV is read in file order; a validation file is read whole.
    let csv = dir.path().join("d.csv");
    let mut text = String::from("label,a,b,c\n");
    for (row, label) in x.chunks(d).zip(&y) {
        text += &format!("{label},{},{},{}\n", row[0], row[1], row[2]);
    }
    std::fs::write(&csv, text).unwrap();
    let m = dir.path().join("e.safetensors");
    let out = succeeds(&[
        "train",
        "--data",
        s(&csv),
        "--val",
        s(&csv),
        "--out",
        s(&m),
        "--stream",
        "--epochs",
        "2",
        "--json",
    ]);
    let epochs = json_lines(&out);
    assert_eq!(epochs.len(), 2);
    assert!(epochs[1]["val_loss"].as_f64().is_some(), "{out}");

    // NPY validation data take a labels file of their own.
    let out = succeeds(&[
        "train",
        "--data",
        s(&xp),
        "--labels",
        s(&yp),
        "--val",
        s(&xp),
        "--val-labels",
        s(&yp),
        "--out",
        s(&m),
        "--stream",
        "--epochs",
        "1",
        "--json",
    ]);
    assert!(json_lines(&out)[0]["val_loss"].as_f64().is_some(), "{out}");

    // What a stream cannot do is refused up front, in one line.
    let o = dir.path().join("f.safetensors");
    fails_with(
        &[
            "train",
            "--data",
            s(&xp),
            "--labels",
            s(&yp),
            "--val",
            s(&xp),
            "--out",
            s(&o),
            "--stream",
        ],
        &["has no targets", "--val-labels"],
    );
    fails_with(
        &["train", "--data", s(&xp), "--out", s(&o), "--stream"],
        &["--stream with NPY features needs --labels"],
    );
    fails_with(
        &[
            "train",
            "--data",
            s(&xp),
            "--labels",
            s(&yp),
            "--out",
            s(&o),
            "--stream",
            "--layers",
            "3,8,2",
        ],
        &[
            s(&xp),
            "label 2 is out of range for a network with 2 classes",
        ],
    );
    let mut holed = x.clone();
    holed[40 * d + 1] = f32::NAN;
    let nan = write(
        dir.path(),
        "nan.npy",
        npy(
            "<f4",
            &format!("({n}, {d})"),
            holed.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
    );
    for extra in [&[][..], &["--standardize"][..]] {
        let mut args = vec![
            "train",
            "--data",
            s(&nan),
            "--labels",
            s(&yp),
            "--out",
            s(&o),
            "--stream",
        ];
        args.extend_from_slice(extra);
        fails_with(&args, &[s(&nan), "NaN", "row 40, column 1"]);
    }
    let npz = write(dir.path(), "d.npz", b"PK\x05\x06");
    fails_with(
        &["train", "--data", s(&npz), "--out", s(&o), "--stream"],
        &["--stream reads NPY features (with --labels) or CSV"],
    );
    fails_with(
        &[
            "train",
            "--data",
            s(&csv),
            "--out",
            s(&o),
            "--stream",
            "--val-split",
            "0.2",
        ],
        &[s(&csv), "--val-split with --stream needs NPY features"],
    );
    assert!(!o.exists());
}

/// Softmax's width comes from every label in the file, not only the training
/// rows left by `--val-split`: a class held out entirely still has an output,
/// in memory and streamed alike.
#[test]
fn val_split_keeps_a_class_only_the_held_out_rows_hold() {
    let dir = tempfile::tempdir().unwrap();
    let n = 12usize;
    // Classes 0 and 1, and class 2 in row 5 only.
    let label = |i: usize| if i == 5 { 2 } else { i % 2 };
    let mut csv = String::from("label,a,b\n");
    for i in 0..n {
        csv += &format!(
            "{},{},{}\n",
            label(i),
            i as f32 * 0.1,
            1.0 - i as f32 * 0.05
        );
    }
    let csv = write(dir.path(), "d.csv", csv);
    let x: Vec<u8> = (0..n)
        .flat_map(|i| [i as f32 * 0.1, 1.0 - i as f32 * 0.05])
        .flat_map(f32::to_le_bytes)
        .collect();
    let y: Vec<u8> = (0..n)
        .flat_map(|i| (label(i) as i64).to_le_bytes())
        .collect();
    let xp = write(dir.path(), "x.npy", npy("<f4", &format!("({n}, 2)"), x));
    let yp = write(dir.path(), "y.npy", npy("<i8", &format!("({n},)"), y));
    let out = dir.path().join("m.safetensors");
    let runs: [&[&str]; 3] = [
        &["--data", s(&csv)],
        &["--data", s(&xp), "--labels", s(&yp)],
        &["--data", s(&xp), "--labels", s(&yp), "--stream"],
    ];
    // Half the rows held out: over these seeds, row 5 is among them in some
    // runs (which, before, stopped with "label 2 is out of range").
    for seed in 1..=6 {
        for data in runs {
            let mut args = vec!["train", "--out", s(&out), "--hidden", "4", "--epochs", "1"];
            args.extend_from_slice(&["--val-split", "0.5", "--quiet", "--seed"]);
            let seed = seed.to_string();
            args.push(&seed);
            args.extend_from_slice(data);
            succeeds(&args);
            let m = model::load(&out).unwrap();
            assert_eq!(m.network.outputs(), 3, "{args:?}");
        }
    }
}

#[test]
fn info_and_bench_name_the_kernels_and_feedforward_isa_is_checked() {
    let best = feedforward::gemm::Isa::best().name();
    let info = succeeds(&["info"]);
    assert!(info.contains(&format!("simd {best} (this CPU: ")), "{info}");
    assert_eq!(succeeds(&["--version"]), info, "--version and info differ");

    // Forced to the portable level, every report says so.
    let forced = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_feedforward"))
            .args(args)
            .env("FEEDFORWARD_ISA", "sse2")
            .output()
            .expect("the binary runs");
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        String::from_utf8(out.stdout).expect("utf-8 output")
    };
    let portable = feedforward::gemm::Isa::Portable.name();
    assert!(forced(&["info"]).contains(&format!("simd {portable} (")));
    let run = forced(&[
        "bench",
        "--workload",
        "W3b",
        "--threads",
        "1",
        "--steps",
        "3",
        "--warmup",
        "0",
        "--json",
    ]);
    let line = &json_lines(&run)[0];
    assert_eq!(line["isa"], portable, "{run}");

    // A name that is no level, or a level this CPU lacks, stops the program.
    let refused = |value: &str, expected: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_feedforward"))
            .arg("info")
            .env("FEEDFORWARD_ISA", value)
            .output()
            .expect("the binary runs");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{value}: {err}");
        for piece in expected {
            assert!(err.contains(piece), "{value}: {err:?} lacks {piece:?}");
        }
    };
    refused(
        "avx3",
        &["error: FEEDFORWARD_ISA", "\"avx3\" is unknown", best],
    );
    for isa in feedforward::gemm::Isa::ALL {
        if !isa.is_supported() {
            refused(isa.name(), &["is not supported by this CPU", best]);
        }
    }
}

/// `--schedule` sets each epoch's rate (reported as `lr`), is stored with the
/// model, and a run resumed from a checkpoint goes on with the same rates to
/// the same bytes; a bad schedule is one clear error.
#[test]
fn schedules_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("spiral.csv");
    succeeds(&["data", "spiral", "--points", "30", "--out", s(&data)]);
    let (full, part, resumed) = (
        dir.path().join("full.safetensors"),
        dir.path().join("part.safetensors"),
        dir.path().join("resumed.safetensors"),
    );
    let ckpt = dir.path().join("run.ckpt");
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--data",
            s(&data),
            "--hidden",
            "16",
            "--lr",
            "0.02",
            "--json",
        ];
        args.extend_from_slice(extra);
        json_lines(&succeeds(&args))
    };
    let schedule = ["--schedule", "step:size=2,gamma=0.5", "--warmup", "1"];
    let epochs = train(&[&["--out", s(&full), "--epochs", "6"][..], &schedule].concat());
    let lrs: Vec<f64> = epochs.iter().map(|e| e["lr"].as_f64().unwrap()).collect();
    // A warm-up epoch at a third of the rate, then halving every 2 epochs.
    let want = [0.02 / 3.0, 0.02, 0.02, 0.01, 0.01, 0.005];
    for (got, want) in lrs.iter().zip(want) {
        assert!((got - want).abs() < 1e-6 * want, "{lrs:?}");
    }
    let record = &model::load(&full).unwrap().metadata["feedforward.training"];
    assert!(
        record.contains("\"Step\":{\"size\":2,\"gamma\":0.5}"),
        "{record}"
    );
    let first = [
        &[
            "--out",
            s(&part),
            "--epochs",
            "3",
            "--checkpoint-every",
            "3",
        ][..],
        &["--checkpoint", s(&ckpt)],
        &schedule,
    ]
    .concat();
    train(&first);
    // The schedule comes from the checkpoint; the command line does not repeat it.
    let rest = train(&["--out", s(&resumed), "--epochs", "6", "--resume", s(&ckpt)]);
    let rest_lrs: Vec<f64> = rest.iter().map(|e| e["lr"].as_f64().unwrap()).collect();
    assert_eq!(rest_lrs, lrs[3..]);
    assert_eq!(
        std::fs::read(&full).unwrap(),
        std::fs::read(&resumed).unwrap()
    );
    fails_with(
        &[
            "train",
            "--data",
            s(&data),
            "--out",
            s(&full),
            "--schedule",
            "cosinus",
        ],
        &["unknown schedule \"cosinus\""],
    );
    fails_with(
        &[
            "train",
            "--data",
            s(&data),
            "--out",
            s(&full),
            "--schedule",
            "step:gamma=3",
        ],
        &["step needs a size of at least 1 and a gamma in (0, 1]"],
    );
}

/// `--l1` and `--l2` put a penalty on the weights: reported per epoch apart
/// from the loss, and stored with the model.
#[test]
fn penalties_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("spiral.csv");
    let out = dir.path().join("m.safetensors");
    succeeds(&["data", "spiral", "--points", "30", "--out", s(&data)]);
    let epochs = json_lines(&succeeds(&[
        "train",
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--epochs",
        "2",
        "--l1",
        "0.001",
        "--l2",
        "0.01",
        "--json",
    ]));
    assert!(
        epochs.iter().all(|e| e["penalty"].as_f64().unwrap() > 0.0),
        "{epochs:?}"
    );
    let m = model::load(&out).unwrap();
    let p = m.network.penalty_weights();
    assert_eq!((p.l1, p.l2), (0.001, 0.01));
    fails_with(
        &["train", "--data", s(&data), "--out", s(&out), "--l2=-1"],
        &["penalties must be >= 0"],
    );
}

/// `--init MODEL` starts from a model's weights when its layers are those the
/// options describe, and names the first difference otherwise.
#[test]
fn init_starts_from_a_models_weights() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("spiral.csv");
    let (first, tuned) = (
        dir.path().join("a.safetensors"),
        dir.path().join("b.safetensors"),
    );
    succeeds(&["data", "spiral", "--points", "30", "--out", s(&data)]);
    let common = [
        "--data",
        s(&data),
        "--hidden",
        "16",
        "--quiet",
        "--standardize",
    ];
    succeeds(&[&["train", "--out", s(&first), "--epochs", "5"][..], &common].concat());
    // One epoch at a rate too small to move a weight: the weights are the model's.
    succeeds(
        &[
            &[
                "train",
                "--out",
                s(&tuned),
                "--epochs",
                "1",
                "--init",
                s(&first),
            ][..],
            &["--optimizer", "sgd", "--lr", "1e-30"],
            &common,
        ]
        .concat(),
    );
    let (a, b) = (model::load(&first).unwrap(), model::load(&tuned).unwrap());
    assert_eq!(a.network.parameters(), b.network.parameters());
    assert_eq!(a.standardizer, b.standardizer);
    assert_eq!(b.network.optimizer().name(), "sgd");
    fails_with(
        &[
            "train",
            "--data",
            s(&data),
            "--out",
            s(&tuned),
            "--hidden",
            "32",
            "--init",
            s(&first),
        ],
        &[
            "--init needs the layers",
            "layer 0 is dense 2 -> 16 relu there, dense 2 -> 32 relu here",
        ],
    );
}

/// `--precision bf16` trains, evaluates, predicts and benchmarks with bf16
/// products; the same run gives the same model bytes whatever instruction set
/// computes them; an unknown precision is one clear error.
#[test]
fn bf16_precision_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("spiral.csv");
    succeeds(&["data", "spiral", "--points", "60", "--out", s(&data)]);
    let train = |out: &Path, isa: &str| {
        let status = Command::new(env!("CARGO_BIN_EXE_feedforward"))
            .args([
                "train",
                "--data",
                s(&data),
                "--out",
                s(out),
                "--epochs",
                "30",
            ])
            .args(["--hidden", "32", "--precision", "bf16", "--seed", "3"])
            .env("FEEDFORWARD_ISA", isa)
            .output()
            .unwrap();
        assert!(status.status.success(), "{isa}: {}", stderr(&status));
    };
    let best = dir.path().join("best.safetensors");
    train(&best, "avx512bf16");
    for isa in ["avx512", "avx2", "sse2"] {
        if !feedforward::gemm::Isa::from_name(isa)
            .unwrap()
            .is_supported()
        {
            continue;
        }
        let other = dir.path().join(format!("{isa}.safetensors"));
        train(&other, isa);
        assert_eq!(
            std::fs::read(&other).unwrap(),
            std::fs::read(&best).unwrap(),
            "bf16 training on {isa} gave other bytes"
        );
    }
    let eval = |precision: &str| {
        let out = succeeds(&[
            "eval",
            "--model",
            s(&best),
            "--data",
            s(&data),
            "--precision",
            precision,
            "--json",
        ]);
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["accuracy"]
            .as_f64()
            .unwrap()
    };
    let (a16, a32) = (eval("bf16"), eval("f32"));
    assert!(
        a16 > 0.5 && (a16 - a32).abs() <= 0.02,
        "bf16 {a16}, f32 {a32}"
    );
    let predicted = succeeds(&[
        "predict",
        "--model",
        s(&best),
        "--data",
        s(&data),
        "--precision",
        "bf16",
    ]);
    assert_eq!(predicted.lines().count(), 181);
    let bench = succeeds(&[
        "bench",
        "--workload",
        "W3b",
        "--threads",
        "1",
        "--steps",
        "5",
        "--warmup",
        "0",
        "--precision",
        "bf16",
        "--json",
    ]);
    let line: serde_json::Value = serde_json::from_str(bench.lines().last().unwrap()).unwrap();
    assert_eq!(line["precision"], "bf16");
    // A usage error, as clap reports them: exit code 2.
    let out = ff(&[
        "eval",
        "--model",
        s(&best),
        "--data",
        s(&data),
        "--precision",
        "fp8",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown precision \"fp8\": expected f32 or bf16"));
}

/// Trains `args` (`--data FILE` first) for 4 epochs in `dir`, and again for 2 with a checkpoint,
/// resumed (with no other option) to 4: both models must be the same bytes.
/// Returns the uninterrupted run's model.
fn resumes_to_the_same_bytes(dir: &Path, args: &[&str]) -> PathBuf {
    let (full, part, resumed, ckpt) = (
        dir.join("full.safetensors"),
        dir.join("part.safetensors"),
        dir.join("resumed.safetensors"),
        dir.join("run.ckpt"),
    );
    let train = |extra: &[&str]| succeeds(&[&["train"], args, extra].concat());
    train(&["--epochs", "4", "--out", s(&full)]);
    train(&[
        "--epochs",
        "2",
        "--checkpoint-every",
        "2",
        "--checkpoint",
        s(&ckpt),
        "--out",
        s(&part),
    ]);
    succeeds(&[
        "train",
        "--data",
        args[1],
        "--epochs",
        "4",
        "--resume",
        s(&ckpt),
        "--out",
        s(&resumed),
    ]);
    assert_eq!(
        std::fs::read(&full).unwrap(),
        std::fs::read(&resumed).unwrap(),
        "{args:?}"
    );
    full
}

/// `--dropout` puts a dropout layer after each hidden layer (one rate for all,
/// or one each), stored in the model; a resumed run draws the same masks and
/// ends with the same bytes; a wrong count or rate is one clear error.
#[test]
fn dropout_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("spiral.csv");
    succeeds(&["data", "spiral", "--points", "30", "--out", s(&data)]);
    let out = |name: &str| dir.path().join(name);
    let train = |extra: &[&str]| {
        let mut args = vec!["train", "--data", s(&data), "--hidden", "16,8"];
        args.extend_from_slice(extra);
        succeeds(&args);
    };
    let rates = |path: &std::path::Path| -> Vec<f32> {
        model::load(path)
            .unwrap()
            .network
            .layers()
            .iter()
            .filter_map(|l| match l {
                feedforward::Layer::Dropout(d) => Some(d.rate),
                _ => None,
            })
            .collect()
    };
    let (part, each) = (out("part.safetensors"), out("each.safetensors"));
    let full = resumes_to_the_same_bytes(
        dir.path(),
        &["--data", s(&data), "--hidden", "16,8", "--dropout", "0.3"],
    );
    assert_eq!(rates(&full), vec![0.3, 0.3]);
    train(&["--dropout", "0.2,0.4", "--epochs", "1", "--out", s(&each)]);
    assert_eq!(rates(&each), vec![0.2, 0.4]);
    let base = [
        "train",
        "--data",
        s(&data),
        "--out",
        s(&part),
        "--hidden",
        "16,8",
    ];
    fails_with(
        &[&base[..], &["--dropout", "0.1,0.2,0.3"]].concat(),
        &["--dropout takes one rate or one per hidden layer: 3 given for 2 hidden layer(s)"],
    );
    fails_with(
        &[&base[..], &["--dropout", "1.5"]].concat(),
        &["dropout rate must be in [0, 1), got 1.5"],
    );
}

/// Pixels of `png` (RGB, 8 bits) in the training line's colour, and its size.
fn png_pixels_of_first_line(png_bytes: &[u8]) -> (usize, (u32, u32)) {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().expect("a PNG header");
    let mut buf = vec![0; reader.output_buffer_size().expect("a size")];
    let info = reader.next_frame(&mut buf).expect("PNG data");
    assert_eq!(info.color_type, png::ColorType::Rgb);
    let blue = buf[..info.buffer_size()]
        .chunks(3)
        .filter(|p| p == &[31, 119, 180])
        .count();
    (blue, (info.width, info.height))
}

/// `train --plot` draws the run's curves, `plot` draws a `--json` log: a
/// valid SVG with a line per curve, a PNG with the lines' pixels; a picture
/// that cannot be drawn is refused before training.
///
/// The text needs a TrueType font from the system. On a machine without one
/// the test checks the error that says so instead, and says it did; in CI
/// (`CI` set, where `.ci/run` installs fonts-dejavu-core) that fails.
#[test]
fn training_curves_as_svg_and_png() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("spiral.csv");
    succeeds(&["data", "spiral", "--points", "60", "--out", s(&data)]);
    let probe = dir.path().join("probe.jsonl");
    std::fs::write(&probe, "{\"epoch\":1,\"loss\":0.5,\"lr\":0.1}\n").unwrap();
    let probe_svg = dir.path().join("probe.svg");
    let out = ff(&["plot", s(&probe), "-o", s(&probe_svg)]);
    if !out.status.success() {
        let err = stderr(&out);
        assert!(
            err.contains("no TrueType font to draw the curves' text with")
                && err.contains("fonts-dejavu-core"),
            "{err}"
        );
        assert!(!probe_svg.exists());
        assert!(
            std::env::var_os("CI").is_none(),
            "CI installs a font, yet: {err}"
        );
        eprintln!("note: no TrueType font on this machine; checked its error, drew no curves");
        return;
    }
    let (svg, png_path, model) = (
        dir.path().join("curves.svg"),
        dir.path().join("curves.png"),
        dir.path().join("m.safetensors"),
    );
    let log = succeeds(&[
        "train",
        "--data",
        s(&data),
        "--hidden",
        "16",
        "--epochs",
        "5",
        "--val-split",
        "0.2",
        "--out",
        s(&model),
        "--plot",
        s(&svg),
        "--json",
    ]);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"));
    for label in [
        "loss",
        "accuracy",
        "learning rate",
        "training",
        "validation",
    ] {
        assert!(
            text.contains(&format!(">\n{label}\n<")),
            "no {label:?} in the SVG"
        );
    }
    // Each curve is a line and a legend mark: training loss, accuracy and the
    // learning rate in the first colour, validation loss and accuracy in the second.
    let lines = |colour: &str| {
        text.matches(&format!("stroke=\"{colour}\" stroke-width=\"2\""))
            .count()
    };
    assert_eq!((lines("#1F77B4"), lines("#FF7F0E")), (6, 4));
    let log_path = write(dir.path(), "run.jsonl", &log);
    succeeds(&["plot", s(&log_path), "-o", s(&png_path)]);
    let (blue, size) = png_pixels_of_first_line(&std::fs::read(&png_path).unwrap());
    assert_eq!(size, (900, 3 * 300 + 40));
    assert!(blue > 1000, "only {blue} pixels of the training lines");
    fails_with(
        &[
            "train",
            "--data",
            s(&data),
            "--out",
            s(&model),
            "--plot",
            "c.jpg",
        ],
        &["c.jpg: curves are drawn as .svg or .png"],
    );
    fails_with(
        &["plot", s(&data), "-o", s(&png_path)],
        &["spiral.csv: line 1: not JSON"],
    );
    let empty = write(dir.path(), "empty.jsonl", "{\"x\": 1}\n");
    fails_with(
        &["plot", s(&empty), "-o", s(&png_path)],
        &["empty.jsonl: no epochs in it"],
    );
    let out = Command::new(env!("CARGO_BIN_EXE_feedforward"))
        .args(["plot", s(&log_path), "-o", s(&png_path)])
        .env("FEEDFORWARD_FONT", dir.path().join("none.ttf"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("none.ttf: cannot read it"),
        "{}",
        stderr(&out)
    );
    // The picture from before is whole.
    let (again, _) = png_pixels_of_first_line(&std::fs::read(&png_path).unwrap());
    assert_eq!(again, blue);
}

/// `--warmup` without `--schedule` warms up to the constant rate (it used to
/// be ignored).
#[test]
fn warmup_alone_warms_up_to_the_rate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("spiral.csv");
    succeeds(&["data", "spiral", "--points", "20", "--out", s(&data)]);
    let model = dir.path().join("m.safetensors");
    let epochs = json_lines(&succeeds(&[
        "train",
        "--data",
        s(&data),
        "--hidden",
        "8",
        "--epochs",
        "4",
        "--lr",
        "0.03",
        "--warmup",
        "2",
        "--json",
        "--out",
        s(&model),
    ]));
    let lrs: Vec<f64> = epochs.iter().map(|e| e["lr"].as_f64().unwrap()).collect();
    let want = [0.01, 0.02, 0.03, 0.03];
    for (got, want) in lrs.iter().zip(want) {
        assert!((got - want).abs() < 1e-6, "{lrs:?}");
    }
}

/// `--shards S` is stored with the run, so a resumed run sums its batches'
/// shards as the uninterrupted one did (the same bytes); 0 is refused.
#[test]
fn shards_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("spiral.csv");
    succeeds(&["data", "spiral", "--points", "30", "--out", s(&data)]);
    let args = [
        "--data",
        s(&data),
        "--hidden",
        "16",
        "--batch-size",
        "40",
        "--shards",
        "4",
    ];
    let full = resumes_to_the_same_bytes(dir.path(), &args);
    let one = dir.path().join("one.safetensors");
    succeeds(&[&["train"], &args[..6], &["--epochs", "4", "--out", s(&one)]].concat());
    assert_ne!(std::fs::read(&full).unwrap(), std::fs::read(&one).unwrap());
    let record = &model::load(&full).unwrap().metadata["feedforward.training"];
    assert!(record.contains("\"shards\":4"), "{record}");
    let part = dir.path().join("part.safetensors");
    fails_with(
        &[
            "train",
            "--data",
            s(&data),
            "--out",
            s(&part),
            "--shards",
            "0",
        ],
        &["--shards must be at least 1"],
    );
}

/// Outputs that cannot be written are refused before any training: a model
/// or checkpoint path that is a directory, or in a directory that does not
/// exist. One error line naming the path, no epoch run, nothing left behind.
#[test]
fn outputs_that_cannot_be_written_are_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("spiral.csv");
    succeeds(&["data", "spiral", "--points", "50", "--out", s(&data)]);
    let model = dir.path().join("m.safetensors");
    let missing = dir.path().join("missing").join("m.safetensors");
    let train = |out: &str, extra: &[&str]| -> Vec<String> {
        let mut args = vec!["train", "--data", s(&data), "--epochs", "2", "--out", out];
        args.extend_from_slice(extra);
        args.into_iter().map(String::from).collect()
    };
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (
            train(s(dir.path()), &[]),
            vec![s(dir.path()), "is a directory"],
        ),
        (
            train(s(&missing), &[]),
            vec!["missing/m.safetensors", "cannot make a file in"],
        ),
        (
            train(
                s(&model),
                &["--checkpoint-every", "1", "--checkpoint", s(dir.path())],
            ),
            vec!["is a directory"],
        ),
    ];
    for (args, expected) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails_with(&args, &expected);
        let out = ff(&args);
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("epoch"),
            "{args:?} trained before failing"
        );
    }
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("spiral.csv")]);
}

/// A full disk: the output directory is a 64 kB tmpfs holding a good model;
/// a run whose model does not fit ends with one "No space left" error, the
/// old model byte for byte as it was, and no temporary file left. Mounting
/// needs root (as CI runs): where it cannot mount, the test says so on
/// standard error and checks nothing else.
#[test]
fn a_full_disk_keeps_the_old_model() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("spiral.csv");
    succeeds(&["data", "spiral", "--points", "50", "--out", s(&data)]);
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let mount = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs", s(&small)])
        .output();
    match &mount {
        Ok(o) if o.status.success() => {}
        _ => {
            let why = mount.map_or_else(|e| e.to_string(), |o| stderr(&o));
            eprintln!(
                "note: cannot mount a tmpfs ({}): the full-disk case was not run",
                why.trim()
            );
            return;
        }
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&small);
    let model = small.join("m.safetensors");
    let base = ["train", "--data", s(&data), "--epochs", "1", "--quiet"];
    let mut fits = base.to_vec();
    fits.extend(["--hidden", "8", "--out", s(&model)]);
    succeeds(&fits);
    let before = std::fs::read(&model).unwrap();
    // 2-200-200-3: 41,403 parameters, 165 kB of weights, more than the disk.
    let mut too_big = base.to_vec();
    too_big.extend(["--hidden", "200,200", "--out", s(&model)]);
    fails_with(&too_big, &[s(&model), "No space left on device"]);
    assert_eq!(std::fs::read(&model).unwrap(), before);
    let left: Vec<_> = std::fs::read_dir(&small)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("m.safetensors")]);
}

/// A read-only output directory (a read-only tmpfs: root ignores file
/// modes) is refused before training, with one error naming the path and
/// the cause. Where the test cannot mount, it says so and checks nothing else.
#[test]
fn a_read_only_output_directory_is_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("spiral.csv");
    succeeds(&["data", "spiral", "--points", "50", "--out", s(&data)]);
    let frozen = dir.path().join("frozen");
    std::fs::create_dir(&frozen).unwrap();
    let mount = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", s(&frozen)])
        .output();
    match &mount {
        Ok(o) if o.status.success() => {}
        _ => {
            let why = mount.map_or_else(|e| e.to_string(), |o| stderr(&o));
            eprintln!(
                "note: cannot mount a tmpfs ({}): the read-only case was not run",
                why.trim()
            );
            return;
        }
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&frozen);
    let model = frozen.join("m.safetensors");
    let args = [
        "train",
        "--data",
        s(&data),
        "--epochs",
        "2",
        "--out",
        s(&model),
    ];
    fails_with(&args, &[s(&model), "Read-only file system"]);
    assert!(!String::from_utf8_lossy(&ff(&args).stdout).contains("epoch"));
}

/// A run stopped after its last checkpoint but before its model was written
/// (killed while writing it, say) resumes to the model the whole run writes,
/// training nothing: with early stopping, the best epoch's weights restored.
/// Asking for fewer epochs than the checkpoint holds is one clear error.
#[test]
fn resuming_a_finished_checkpoint_writes_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let data = write(dir.path(), "d.csv", small_csv());
    let (full, resumed, ckpt) = (
        dir.path().join("full.safetensors"),
        dir.path().join("resumed.safetensors"),
        dir.path().join("run.ckpt"),
    );
    succeeds(&[
        "train",
        "--data",
        s(&data),
        "--hidden",
        "8",
        "--epochs",
        "6",
        "--val-split",
        "0.3",
        "--early-stopping",
        "20",
        "--lr",
        "0.3",
        "--checkpoint-every",
        "1",
        "--checkpoint",
        s(&ckpt),
        "--out",
        s(&full),
        "--quiet",
    ]);
    let args = |epochs: &'static str, out: &Path| {
        vec![
            "train".to_string(),
            "--data".into(),
            s(&data).into(),
            "--epochs".into(),
            epochs.into(),
            "--resume".into(),
            s(&ckpt).into(),
            "--out".into(),
            s(out).into(),
        ]
    };
    let six = args("6", &resumed);
    succeeds(&six.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        std::fs::read(&full).unwrap(),
        std::fs::read(&resumed).unwrap()
    );
    let five = args("5", &dir.path().join("never.safetensors"));
    fails_with(
        &five.iter().map(String::as_str).collect::<Vec<_>>(),
        &["run.ckpt has already trained 6 epochs; pass --epochs of at least that"],
    );
}
