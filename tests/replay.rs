//! Replays of runs dumped by the peers' script (`bench.py --dump`, scaled down by
//! `tests/data/make_replays.py`): the same start and batches give PyTorch's final
//! loss, within 1e-4 relative, on whichever backend this build uses.

use std::path::Path;

fn check(dir: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(dir);
    let peer: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("peer.json")).unwrap()).unwrap();
    let expected = peer["final_loss"].as_f64().unwrap();
    let r = feedforward::replay::replay(&dir).unwrap();
    assert_eq!(r.steps, 12);
    let rel = (f64::from(r.final_loss) - expected).abs() / expected.abs();
    assert!(
        rel <= 1e-4,
        "{}: final loss {} vs PyTorch {expected} ({rel:.2e})",
        dir.display(),
        r.final_loss
    );
}

#[test]
fn adam_softmax_cross_entropy_run_matches_pytorch() {
    check("replay-mini-w1");
}

#[test]
fn sgd_mse_run_matches_pytorch() {
    check("replay-mini-w2");
}

#[test]
fn a_broken_dump_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = feedforward::replay::replay(dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("manifest.json"), "{err}");
    std::fs::write(dir.path().join("manifest.json"), "{\"workload\": 1}").unwrap();
    match feedforward::replay::replay(dir.path()) {
        Err(feedforward::Error::Parse { path, message, .. }) => {
            assert!(path.ends_with("manifest.json"), "{path}");
            assert!(message.contains("expected a string"), "{message}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

/// A manifest whose sizes disagree with its weight files is refused by the
/// layer, before a network of those sizes is allocated (here 32 × 10^9 floats).
#[test]
fn sizes_that_disagree_with_the_weights_are_refused_before_allocating() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/replay-mini-w1");
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    let manifest = dir.path().join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    m["sizes"][1] = 1_000_000_000.into();
    std::fs::write(&manifest, m.to_string()).unwrap();
    match feedforward::replay::replay(dir.path()) {
        Err(feedforward::Error::Parse { path, message, .. }) => {
            assert!(path.ends_with("W0.npy"), "{path}");
            assert_eq!(
                message,
                "layer 0 is 32 x 1000000000 in the manifest, but W0 is 32 x 24 and b0 holds 24"
            );
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}
