//! Replays the fuzzers' corpus (`fuzz/corpus/<target>/`: the checked-in seeds,
//! what `cargo fuzz` kept, and every input that once crashed) through the same
//! functions the fuzz targets call (`fuzz/src/lib.rs`), so that a regression
//! fails here without a fuzzer installed.
//!
//! A file named `ok-…` must read without error and one named `err-…` must be
//! refused with the crate's error; every other file must only not panic.

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod decoders;

use std::path::Path;

type Decoder = fn(&[u8]) -> Result<(), feedforward::Error>;

/// Replays `fuzz/corpus/<target>` through `decode`; returns (inputs, Ok count).
fn replay(target: &str, decode: Decoder) -> (usize, usize) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    let mut ok = 0;
    for path in &entries {
        let bytes = std::fs::read(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy();
        let result = std::panic::catch_unwind(|| decode(&bytes))
            .unwrap_or_else(|_| panic!("{target}: {name} panicked"));
        if name.starts_with("ok-") {
            assert!(result.is_ok(), "{target}: {name}: {}", result.unwrap_err());
        }
        if name.starts_with("err-") {
            assert!(result.is_err(), "{target}: {name} was accepted");
        }
        ok += usize::from(result.is_ok());
    }
    (entries.len(), ok)
}

/// Every target's corpus replays, holds seeds, and some of them read.
fn check(target: &str, decode: Decoder) {
    let (inputs, ok) = replay(target, decode);
    assert!(inputs >= 3, "{target}: only {inputs} inputs in the corpus");
    assert!(ok >= 1, "{target}: no input of the corpus reads");
}

#[test]
fn csv_corpus() {
    check("csv", decoders::csv);
}

#[test]
fn idx_corpus() {
    check("idx", decoders::idx);
}

#[test]
fn npy_corpus() {
    check("npy", decoders::npy);
}

#[test]
fn npz_corpus() {
    check("npz", decoders::npz);
}

#[test]
fn model_corpus() {
    check("model", decoders::model);
}

#[test]
fn checkpoint_corpus() {
    check("checkpoint", decoders::checkpoint);
}

/// A replay needs its arrays, which the corpus does not hold: every manifest is
/// refused, none panics.
#[test]
fn replay_corpus() {
    let (inputs, ok) = replay("replay", decoders::replay);
    assert!(inputs >= 3);
    assert_eq!(ok, 0);
}
