//! How a data file is read: [`ReadOptions`] and the [`Column`]s that hold the
//! targets.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A column of a CSV file, by position (from 0) or by its header name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    /// Position from 0.
    Index(usize),
    /// Header name.
    Name(String),
}

impl std::str::FromStr for Column {
    type Err = std::convert::Infallible;
    /// A number is a position, anything else a name.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(match s.trim().parse::<usize>() {
            Ok(i) => Column::Index(i),
            Err(_) => Column::Name(s.trim().to_string()),
        })
    }
}

/// How [`read_dataset`](super::read_dataset) reads a file.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadOptions {
    /// CSV: the target columns (default: the first column). Empty: features only.
    pub label: Vec<Column>,
    /// CSV: whether the first row is a header (`None`: a first row with a
    /// non-numeric cell is a header).
    pub header: Option<bool>,
    /// CSV: the field delimiter (default `,`).
    pub delimiter: u8,
    /// IDX and NPY: the file holding the targets (IDX: guessed from an MNIST-style
    /// name, `...-images-idx3-...` → `...-labels-idx1-...`, when it exists).
    pub labels: Option<PathBuf>,
    /// Accept empty cells and NaN/infinite values (the caller decides what to do
    /// with them, e.g. [`Dataset::drop_non_finite`](super::Dataset::drop_non_finite)); otherwise they are errors.
    pub allow_non_finite: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            label: vec![Column::Index(0)],
            header: None,
            delimiter: b',',
            labels: None,
            allow_non_finite: false,
        }
    }
}

/// The positions of the `label` columns in a file of `cols` columns whose
/// header row, if it has one, is `header`.
pub(crate) fn label_positions(
    path: &Path,
    label: &[Column],
    header: Option<&[String]>,
    cols: usize,
) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(label.len());
    for column in label {
        let index = match column {
            Column::Index(i) if *i < cols => *i,
            Column::Index(i) => {
                return Err(Error::parse(
                    path,
                    format!(
                        "label column {i} does not exist: the file has {cols} columns (0 to {})",
                        cols - 1
                    ),
                ));
            }
            Column::Name(name) => {
                let Some(names) = header else {
                    return Err(Error::parse(
                        path,
                        format!(
                            "label column {name:?} is given by name, but the file has no header"
                        ),
                    ));
                };
                names.iter().position(|n| n == name).ok_or_else(|| {
                    Error::parse(
                        path,
                        format!(
                            "no column named {name:?}; the header has {}",
                            names.join(", ")
                        ),
                    )
                })?
            }
        };
        if !out.contains(&index) {
            out.push(index);
        }
    }
    Ok(out)
}
