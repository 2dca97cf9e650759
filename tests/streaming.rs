//! Training from data sources (arrays, memory-mapped NPY, CSV read in order)
//! gives the same weights as training on the arrays in memory.

use std::path::{Path, PathBuf};

use feedforward::io::{CsvSource, NpySource, ReadOptions};
use feedforward::source::{ArraySource, Batch, DataSource, RowSubset, TargetKind};
use feedforward::standardize::StandardizedSource;
use feedforward::{Activation::*, Error, FitConfig, Network, Optimizer, Standardizer, data};
use ndarray::Array2;

fn network() -> Network {
    Network::builder(3)
        .dense(16, Relu)
        .dense(8, Identity)
        .batch_norm(Tanh)
        .dense(4, Softmax)
        .optimizer(Optimizer::adam(0.01))
        .seed(5)
        .build()
        .unwrap()
}

fn bits(net: &Network) -> Vec<u32> {
    net.parameters().iter().map(|v| v.to_bits()).collect()
}

fn npy(path: &Path, descr: &str, shape: &str, data: Vec<u8>) {
    let header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Pad the header so that the data start at a multiple of 64 bytes, as numpy does.
    let pad = (64 - (10 + header.len() + 1) % 64) % 64;
    let header = format!("{header}{}\n", " ".repeat(pad));
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend(data);
    std::fs::write(path, out).unwrap();
}

fn write_npy(dir: &Path, x: &Array2<f32>, y: &[usize]) -> (PathBuf, PathBuf) {
    let (xp, yp) = (dir.join("x.npy"), dir.join("y.npy"));
    npy(
        &xp,
        "<f4",
        &format!("({}, {})", x.nrows(), x.ncols()),
        x.iter().flat_map(|v| v.to_le_bytes()).collect(),
    );
    npy(
        &yp,
        "<i8",
        &format!("({},)", y.len()),
        y.iter().flat_map(|&v| (v as i64).to_le_bytes()).collect(),
    );
    (xp, yp)
}

fn blobs() -> (Array2<f32>, Vec<usize>) {
    let (x, y) = data::blobs(25, 4, 3, 8);
    (x, y.to_vec())
}

#[test]
fn npy_source_matches_fit_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = blobs();
    let (xp, yp) = write_npy(dir.path(), &x, &y);
    let cfg = FitConfig {
        epochs: 4,
        batch_size: 16,
        ..Default::default()
    };
    let mut memory = network();
    memory.fit(x.view(), (&y[..]).into(), &cfg).unwrap();
    let mut streamed = network();
    let mut source = NpySource::open(&xp, &yp, true).unwrap();
    let history = streamed.fit_source(&mut source, &cfg).unwrap();
    assert_eq!(history.epochs.len(), 4);
    assert_eq!(bits(&memory), bits(&streamed));

    // The same through micro-batches on both sides.
    let chunked = FitConfig {
        micro_batch: Some(5),
        ..cfg.clone()
    };
    let (mut a, mut b) = (network(), network());
    a.fit(x.view(), (&y[..]).into(), &chunked).unwrap();
    b.fit_source(&mut NpySource::open(&xp, &yp, true).unwrap(), &chunked)
        .unwrap();
    assert_eq!(bits(&a), bits(&b));

    let mut arrays = network();
    arrays
        .fit_source(
            &mut ArraySource::new(x.view(), (&y[..]).into()).unwrap(),
            &cfg,
        )
        .unwrap();
    assert_eq!(bits(&memory), bits(&arrays));
}

#[test]
fn csv_source_reads_in_file_order() {
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = blobs();
    let path = dir.path().join("d.csv");
    let mut text = String::from("label,a,b,c\n");
    for (row, label) in x.rows().into_iter().zip(&y) {
        text += &format!("{label},{},{},{}\n", row[0], row[1], row[2]);
    }
    std::fs::write(&path, text).unwrap();
    let cfg = FitConfig {
        epochs: 3,
        batch_size: 16,
        shuffle: false,
        ..Default::default()
    };
    let mut memory = network();
    memory.fit(x.view(), (&y[..]).into(), &cfg).unwrap();
    let mut streamed = network();
    let mut source = CsvSource::open(&path, &ReadOptions::default(), true).unwrap();
    streamed.fit_source(&mut source, &cfg).unwrap();
    assert_eq!(bits(&memory), bits(&streamed));
}

#[test]
fn bad_sources_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (mut x, y) = blobs();
    // float64 features cannot be mapped as float32.
    let f64p = dir.path().join("x64.npy");
    npy(&f64p, "<f8", "(2, 3)", vec![0; 48]);
    let (_, yp) = write_npy(dir.path(), &x, &y);
    let err = NpySource::open(&f64p, &yp, true).unwrap_err().to_string();
    assert!(err.contains("astype('<f4')"), "{err}");
    // A NaN in row 17 is reported at row 17 of the file, not of its batch.
    x[[17, 2]] = f32::NAN;
    let (xp, yp) = write_npy(dir.path(), &x, &y);
    let mut source = NpySource::open(&xp, &yp, true).unwrap();
    let cfg = FitConfig {
        epochs: 1,
        batch_size: 8,
        shuffle: false,
        ..Default::default()
    };
    match network().fit_source(&mut source, &cfg) {
        Err(Error::NonFinite {
            row: 17, col: 2, ..
        }) => {}
        other => panic!("expected a NaN at row 17, column 2: {other:?}"),
    }
    // Standardisation statistics over it are refused at the same place (they
    // would be NaN for the whole column), through a source and in memory.
    for result in [
        Standardizer::fit_source(&mut source),
        Standardizer::fit(x.view()),
    ] {
        match result {
            Err(Error::NonFinite {
                row: 17, col: 2, ..
            }) => {}
            other => panic!("expected a NaN at row 17, column 2: {other:?}"),
        }
    }
    // A CSV source checks every row when it opens.
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "0,1,2,3\n1,2,x,4\n").unwrap();
    let err = CsvSource::open(&bad, &ReadOptions::default(), true)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("line 2, column 3") && err.contains("not a number"),
        "{err}"
    );
    let wrong = dir.path().join("wide.csv");
    std::fs::write(&wrong, "0,1,2,3,4\n").unwrap();
    let mut source = CsvSource::open(&wrong, &ReadOptions::default(), true).unwrap();
    assert!(matches!(
        network().fit_source(&mut source, &cfg),
        Err(Error::Shape { .. })
    ));
}

#[test]
fn standardized_sources_match_standardized_arrays() {
    let dir = tempfile::tempdir().unwrap();
    // More rows than one block of the statistics' reads (1024), and not a multiple of it.
    let (x, y) = data::blobs(834, 3, 3, 11);
    let x = x.mapv(|v| 40.0 * v + 7.0);
    let y = y.to_vec();
    assert_eq!(x.nrows(), 2502);
    let (xp, yp) = write_npy(dir.path(), &x, &y);
    let csv = dir.path().join("d.csv");
    let mut text = String::new();
    for (row, label) in x.rows().into_iter().zip(&y) {
        text += &format!("{label},{},{},{}\n", row[0], row[1], row[2]);
    }
    std::fs::write(&csv, text).unwrap();

    // The statistics measured through a source are `fit`'s, to the bit.
    let expected = Standardizer::fit(x.view()).unwrap();
    let mut npy_source = NpySource::open(&xp, &yp, true).unwrap();
    assert_eq!(Standardizer::fit_source(&mut npy_source).unwrap(), expected);
    let csv_options = ReadOptions {
        header: Some(false),
        ..ReadOptions::default()
    };
    let mut csv_source = CsvSource::open(&csv, &csv_options, true).unwrap();
    assert_eq!(Standardizer::fit_source(&mut csv_source).unwrap(), expected);
    assert_eq!(npy_source.target_kind(), TargetKind::Classes { max: 2 });
    assert_eq!(csv_source.target_kind(), TargetKind::Classes { max: 2 });

    // Training on the standardised stream is training on the standardised arrays.
    let cfg = FitConfig {
        epochs: 2,
        batch_size: 64,
        ..Default::default()
    };
    let xs = expected.transform(x.view()).unwrap();
    let mut memory = network();
    memory.fit(xs.view(), (&y[..]).into(), &cfg).unwrap();
    let mut streamed = network();
    let mut source = StandardizedSource::new(npy_source, expected.clone()).unwrap();
    streamed.fit_source(&mut source, &cfg).unwrap();
    assert_eq!(bits(&memory), bits(&streamed));
    // The CSV source, read after its two statistics passes, starts again at row 0.
    let in_order = FitConfig {
        shuffle: false,
        ..cfg.clone()
    };
    let mut memory = network();
    memory.fit(xs.view(), (&y[..]).into(), &in_order).unwrap();
    let mut streamed = network();
    let mut source = StandardizedSource::new(csv_source, expected).unwrap();
    streamed.fit_source(&mut source, &in_order).unwrap();
    assert_eq!(bits(&memory), bits(&streamed));

    // Statistics of another width are refused.
    let narrow = Standardizer::fit(x.slice(ndarray::s![.., ..2])).unwrap();
    let err = StandardizedSource::new(NpySource::open(&xp, &yp, true).unwrap(), narrow)
        .unwrap_err()
        .to_string();
    assert!(err.contains("statistics for 3 features"), "{err}");
    // Values targets report their width.
    let values = NpySource::open(&xp, &xp, false).unwrap();
    assert_eq!(values.target_kind(), TargetKind::Values { width: 3 });
}

#[test]
fn a_row_subset_trains_like_the_selected_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = blobs();
    let (xp, yp) = write_npy(dir.path(), &x, &y);
    // Every third row but the first, backwards.
    let rows: Vec<usize> = (1..x.nrows()).rev().filter(|r| r % 3 != 0).collect();
    let xs = x.select(ndarray::Axis(0), &rows);
    let ys: Vec<usize> = rows.iter().map(|&r| y[r]).collect();
    let cfg = FitConfig {
        epochs: 3,
        batch_size: 8,
        ..Default::default()
    };
    let mut memory = network();
    memory.fit(xs.view(), (&ys[..]).into(), &cfg).unwrap();
    let mut subset = RowSubset::new(NpySource::open(&xp, &yp, true).unwrap(), rows).unwrap();
    assert_eq!(
        Standardizer::fit_source(&mut subset).unwrap(),
        Standardizer::fit(xs.view()).unwrap()
    );
    let mut streamed = network();
    streamed.fit_source(&mut subset, &cfg).unwrap();
    assert_eq!(bits(&memory), bits(&streamed));

    // Rows beyond the source, a source read in order, and reads beyond the subset.
    let err = RowSubset::new(NpySource::open(&xp, &yp, true).unwrap(), vec![0, x.nrows()])
        .unwrap_err()
        .to_string();
    let n = x.nrows();
    assert!(
        err.contains(&format!(
            "row {n} of a subset is beyond the source's {n} rows"
        )),
        "{err}"
    );
    let csv = dir.path().join("d.csv");
    std::fs::write(&csv, "0,1,2,3\n1,2,3,4\n").unwrap();
    let source = CsvSource::open(&csv, &ReadOptions::default(), true).unwrap();
    let err = RowSubset::new(source, vec![1]).unwrap_err().to_string();
    assert!(err.contains("any order"), "{err}");
    let mut two = RowSubset::new(NpySource::open(&xp, &yp, true).unwrap(), vec![4, 2]).unwrap();
    let err = two
        .read(&[2], &mut Batch::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("row 2 is beyond the subset's 2 rows"), "{err}");
}

/// Class labels from a file go through one check, with one bound: an integer
/// from 0 below 2^24 (beyond it an `f32` no longer holds every integer), in an
/// NPY source, a CSV source and a data set read whole alike.
#[test]
fn class_labels_have_one_bound_in_every_reader() {
    let dir = tempfile::tempdir().unwrap();
    let (x, mut y) = blobs();
    y[5] = 1 << 24;
    let (xp, yp) = write_npy(dir.path(), &x, &y);
    match NpySource::open(&xp, &yp, true) {
        Err(Error::Parse { path, message, .. }) => {
            assert!(path.ends_with("y.npy"), "{path}");
            assert!(
                message.contains("row 5") && message.contains("2^24"),
                "{message}"
            );
        }
        other => panic!("expected a parse error at row 5, got {other:?}"),
    }
    let csv = dir.path().join("big.csv");
    std::fs::write(&csv, "0,1,2,3\n16777216,1,2,3\n").unwrap();
    match CsvSource::open(&csv, &ReadOptions::default(), true) {
        Err(Error::Parse {
            line: Some(2),
            column: Some(1),
            message,
            ..
        }) => assert!(message.contains("2^24"), "{message}"),
        other => panic!("expected a parse error at line 2, column 1, got {other:?}"),
    }
    let whole = feedforward::io::read_dataset(&csv, &ReadOptions::default()).unwrap();
    match whole.class_labels(None) {
        Err(Error::Parse {
            line: Some(2),
            message,
            ..
        }) => assert!(message.contains("2^24"), "{message}"),
        other => panic!("expected a parse error at line 2, got {other:?}"),
    }
    // The largest index that passes, 2^24 - 1, is read as it is.
    std::fs::write(&csv, "0,1,2,3\n16777215,1,2,3\n").unwrap();
    let source = CsvSource::open(&csv, &ReadOptions::default(), true).unwrap();
    assert_eq!(
        source.target_kind(),
        TargetKind::Classes { max: (1 << 24) - 1 }
    );
}

/// Found by the fuzzer: class targets of shape (4, 0) (no column) panicked
/// while taking their first column; they are an error naming the file.
#[test]
fn class_targets_without_a_column_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (xp, yp) = (dir.path().join("x.npy"), dir.path().join("y.npy"));
    npy(&xp, "<f4", "(4, 2)", vec![0; 32]);
    npy(&yp, "<f4", "(4, 0)", vec![]);
    match NpySource::open(&xp, &yp, true) {
        Err(Error::Parse { path, message, .. }) => {
            assert!(path.ends_with("y.npy"), "{path}");
            assert_eq!(
                message,
                "class labels need one column per row, the file has 0"
            );
        }
        other => panic!("expected a parse error, got {:?}", other.map(|_| ())),
    }
}
