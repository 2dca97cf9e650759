//! The decoders of `feedforward`, each as one function of arbitrary bytes: what
//! the fuzz targets in `fuzz_targets/` call, and what the main crate's
//! `tests/fuzz_corpus.rs` replays on `fuzz/corpus/<target>/` under `cargo test`.
//!
//! Every reader of the crate takes a path, so each function writes its input to
//! a file in a scratch directory of its own thread (set `TMPDIR=/dev/shm` to
//! keep that in memory) and calls the public reading function on it, the way a
//! user's file would be read. The first byte of the input chooses the reading
//! options (the rest is the file), so one corpus covers all of them.
//!
//! A function returns the crate's [`Error`] for bad input; it panics only when
//! the crate panics or when what was read breaks an invariant that `Ok`
//! promises (the asserts below), and that is what the fuzzer hunts for.

use std::cell::RefCell;
use std::io::Write;
use std::path::PathBuf;

use feedforward::io::model;
use feedforward::io::{
    Column, CsvSource, NpySource, ReadOptions, read_dataset, read_idx, read_npy,
};
use feedforward::source::{Batch, DataSource};
use feedforward::train::Checkpoint;
use feedforward::{Error, Network};

thread_local! {
    static SCRATCH: RefCell<Option<tempfile::TempDir>> = const { RefCell::new(None) };
}

/// The first byte (the options) and the rest (the file's bytes).
fn split(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((&control, rest)) => (control, rest),
        None => (0, data),
    }
}

/// Writes `bytes` (gzip-compressed first when `gzip`) to `name` in this
/// thread's scratch directory and returns its path.
fn scratch(name: &str, bytes: &[u8], gzip: bool) -> PathBuf {
    let dir = SCRATCH.with(|s| {
        s.borrow_mut()
            .get_or_insert_with(|| tempfile::tempdir().expect("a scratch directory"))
            .path()
            .to_path_buf()
    });
    let path = dir.join(name);
    if gzip {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).expect("in memory");
        std::fs::write(&path, encoder.finish().expect("in memory"))
    } else {
        std::fs::write(&path, bytes)
    }
    .expect("the scratch file is written");
    path
}

/// Reads every row of `source`, in batches of 7 (so a last partial batch is
/// read too), and checks each batch's shape.
fn read_all(source: &mut dyn DataSource) -> Result<(), Error> {
    let rows = source.rows();
    let mut batch = Batch::default();
    let mut start = 0;
    while start < rows {
        let idx: Vec<usize> = (start..rows.min(start + 7)).collect();
        source.read(&idx, &mut batch)?;
        assert_eq!(batch.rows(), idx.len());
        assert_eq!(batch.features().dim(), (idx.len(), source.features()));
        start += idx.len();
    }
    Ok(())
}

/// A CSV file. Options byte: bits 0–1 the label (column 0, column 2, the column
/// named `label`, none), bits 2–3 the header (guessed, yes, no), bit 4 `;` as
/// the delimiter, bit 5 non-finite values allowed, bit 6 gzip, bit 7 read by
/// the streaming [`CsvSource`] instead of [`read_dataset`].
pub fn csv(data: &[u8]) -> Result<(), Error> {
    let (control, content) = split(data);
    let label = match control & 3 {
        0 => vec![Column::Index(0)],
        1 => vec![Column::Index(2)],
        2 => vec![Column::Name("label".into())],
        _ => vec![],
    };
    let options = ReadOptions {
        header: match (control >> 2) & 3 {
            1 => Some(true),
            2 => Some(false),
            _ => None,
        },
        delimiter: if control & 16 != 0 { b';' } else { b',' },
        allow_non_finite: control & 32 != 0,
        label,
        labels: None,
    };
    let path = scratch("data.csv", content, control & 64 != 0);
    if control & 128 == 0 {
        let data = read_dataset(&path, &options)?;
        assert_eq!(data.features.nrows(), data.targets.nrows());
        assert_eq!(data.targets.ncols(), options.label.len());
        if !options.allow_non_finite {
            assert!(
                data.features
                    .iter()
                    .chain(&data.targets)
                    .all(|v| v.is_finite())
            );
        }
        let _ = data.class_labels(None);
    } else {
        let classes = options.label.len() == 1;
        let mut source = CsvSource::open(&path, &options, classes)?;
        read_all(&mut source)?;
    }
    Ok(())
}

/// An IDX file. Options byte: bit 0 gzip.
pub fn idx(data: &[u8]) -> Result<(), Error> {
    let (control, content) = split(data);
    let path = scratch("data.idx", content, control & 1 != 0);
    let array = read_idx(&path)?;
    // Every element takes at least one byte of the (uncompressed) file.
    assert!(array.len() <= content.len());
    Ok(())
}

/// An NPY file. Options byte: bit 0 gzip, bit 1 read by the streaming
/// [`NpySource`] (with the same file as its class targets when bit 2 is clear,
/// as value targets when it is set) instead of [`read_npy`].
pub fn npy(data: &[u8]) -> Result<(), Error> {
    let (control, content) = split(data);
    let path = scratch("data.npy", content, control & 1 != 0);
    if control & 2 == 0 {
        let array = read_npy(&path)?;
        let _ = array.into_matrix(&path)?;
    } else {
        let mut source = NpySource::open(&path, &path, control & 4 == 0)?;
        read_all(&mut source)?;
    }
    Ok(())
}

/// An NPZ archive (a zip of NPY members), read as a data set.
pub fn npz(data: &[u8]) -> Result<(), Error> {
    let path = scratch("data.npz", data, false);
    let data = read_dataset(&path, &ReadOptions::default())?;
    assert_eq!(data.features.nrows(), data.targets.nrows());
    Ok(())
}

/// Runs a loaded network on one row of zeros when it is small enough to be
/// quick: what loads must also run.
fn predict_one(network: &Network) -> Result<(), Error> {
    if network.parameter_count() <= 1 << 20 && network.inputs() <= 1 << 16 {
        let x = ndarray::Array2::<f32>::zeros((1, network.inputs()));
        let out = network.predict_proba(x.view())?;
        assert_eq!(out.dim(), (1, network.outputs()));
    }
    Ok(())
}

/// A model file (safetensors with the crate's metadata), loaded and run.
pub fn model(data: &[u8]) -> Result<(), Error> {
    let path = scratch("model.safetensors", data, false);
    let model = model::load(&path)?;
    predict_one(&model.network)
}

/// A training checkpoint, loaded and run.
pub fn checkpoint(data: &[u8]) -> Result<(), Error> {
    let path = scratch("checkpoint.safetensors", data, false);
    let checkpoint = Checkpoint::load(&path)?;
    predict_one(&checkpoint.model.network)
}

/// A replay manifest (`manifest.json` of the peers' dump) in a directory with
/// no arrays beside it: what is checked before any array is read.
pub fn replay(data: &[u8]) -> Result<(), Error> {
    let path = scratch("manifest.json", data, false);
    let dir = path.parent().expect("in the scratch directory");
    feedforward::replay::replay(dir)?;
    unreachable!("a replay without its arrays cannot succeed")
}
