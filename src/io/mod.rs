//! Data sets from files (CSV, IDX, NPY/NPZ) and model files (safetensors).
//!
//! [`read_dataset`] picks the format from the file name (or, failing that, from
//! the first bytes), reads features and targets into a [`Dataset`], and remembers
//! where every value came from, so that a bad value is reported by file, line and
//! column. [`model`] saves and loads a trained network with everything `predict`
//! needs, written atomically.

mod atomic;
mod csv;
mod csv_source;
mod dataset;
mod idx;
pub mod model;
mod npy;
mod npy_source;
mod open;
mod options;

pub use atomic::{check_writable, write_atomically};
pub use csv::MAX_LINE_BYTES as MAX_CSV_LINE_BYTES;
pub use csv_source::CsvSource;
pub use dataset::{Dataset, Origin};
pub use idx::read_idx;
pub use npy::{MAX_HEADER_BYTES as MAX_NPY_HEADER_BYTES, NpyArray, read_npy, read_npz};
pub use npy_source::NpySource;
pub use options::{Column, ReadOptions};

use std::path::Path;

use crate::error::{Error, Result};

/// A data file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values (optionally gzip-compressed).
    Csv,
    /// The IDX format of MNIST (optionally gzip-compressed).
    Idx,
    /// A NumPy `.npy` array.
    Npy,
    /// A NumPy `.npz` archive with features `x` and targets `y`.
    Npz,
}

impl Format {
    /// The format a file name suggests, else the one its first bytes show, else CSV.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be opened.
    pub fn detect(path: &Path) -> Result<Format> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        if name.ends_with(".npy") {
            return Ok(Format::Npy);
        }
        if name.ends_with(".npz") {
            return Ok(Format::Npz);
        }
        if name.ends_with(".csv") || name.ends_with(".tsv") || name.ends_with(".txt") {
            return Ok(Format::Csv);
        }
        if name.contains("idx") || name.ends_with("-ubyte") {
            return Ok(Format::Idx);
        }
        let head = open::peek(path, 6)?;
        Ok(if head.starts_with(b"\x93NUMPY") {
            Format::Npy
        } else if head.starts_with(b"PK\x03\x04") {
            Format::Npz
        } else if head.len() >= 4 && head[0] == 0 && head[1] == 0 && (8..=0x0e).contains(&head[2]) {
            Format::Idx
        } else {
            Format::Csv
        })
    }
}

/// Reads a data set: features, and targets when the file (or `options.labels`)
/// has them.
///
/// ```
/// use feedforward::io::{read_dataset, ReadOptions};
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("d.csv");
/// std::fs::write(&path, "label,a,b\n1,0.5,2\n0,1.5,-1\n").unwrap();
/// let data = read_dataset(&path, &ReadOptions::default())?;
/// assert_eq!(data.features.dim(), (2, 2));
/// assert_eq!(data.class_labels(None)?, vec![1, 0]);
/// # Ok::<(), feedforward::Error>(())
/// ```
///
/// # Errors
/// [`Error::Io`] for a missing or unreadable file; [`Error::Parse`] naming the
/// file, line and column for malformed content (wrong field count, non-numeric
/// or non-finite cells, headers that disagree with the data); [`Error::Empty`]
/// for a file without data rows.
pub fn read_dataset(path: &Path, options: &ReadOptions) -> Result<Dataset> {
    let data = match Format::detect(path)? {
        Format::Csv => csv::read(path, options)?,
        Format::Idx => {
            let features = idx::read_idx(path)?;
            let labels = options.labels.clone().or_else(|| idx::guess_labels(path));
            let targets = labels
                .map(|p| idx::read_idx(&p).map(|t| (p, t)))
                .transpose()?;
            Dataset::from_arrays(path, features, targets)?
        }
        Format::Npy => {
            let features = read_npy(path)?.into_matrix(path)?;
            let targets = match &options.labels {
                Some(p) => Some((p.clone(), read_npy(p)?.into_matrix(p)?)),
                None => None,
            };
            Dataset::from_arrays(path, features, targets)?
        }
        Format::Npz => {
            let mut arrays = read_npz(path)?;
            let mut take = |names: &[&str]| {
                arrays
                    .iter()
                    .position(|(n, _)| names.contains(&n.as_str()))
                    .map(|i| arrays.swap_remove(i).1)
            };
            let features = take(&["x", "X", "features", "data", "arr_0"]).ok_or_else(|| {
                Error::parse(
                    path,
                    "no features array (expected one named x, features or arr_0)",
                )
            })?;
            let targets = take(&["y", "Y", "labels", "targets", "arr_1"]);
            let features = features.into_matrix(path)?;
            let targets = targets
                .map(|t| t.into_matrix(path).map(|t| (path.to_path_buf(), t)))
                .transpose()?;
            Dataset::from_arrays(path, features, targets)?
        }
    };
    if !options.allow_non_finite {
        data.check_finite()?;
    }
    Ok(data)
}
