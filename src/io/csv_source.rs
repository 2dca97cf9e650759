//! [`CsvSource`]: a CSV file read in file order, a batch of rows at a time.

use std::path::{Path, PathBuf};

use super::csv::CsvRows;
use super::options::ReadOptions;
use crate::error::{Error, Result};
use crate::source::{Batch, DataSource, TargetKind};
use crate::targets::class_index;

/// A CSV file read in file order, a batch of rows at a time, as a [`DataSource`].
///
/// Opening it reads the file once to count and check every row (so a bad cell
/// stops training before it starts, with its line and column); each epoch then
/// reads it again from the top. Rows are not shuffled: shuffle the file once
/// beforehand, or convert it to `.npy` for shuffled streaming.
pub struct CsvSource {
    path: PathBuf,
    options: ReadOptions,
    rows: usize,
    target_columns: Vec<usize>,
    feature_columns: Vec<usize>,
    classes: bool,
    max_class: usize,
    reader: Option<(CsvRows, usize)>,
    scratch: Vec<f32>,
}

impl std::fmt::Debug for CsvSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvSource")
            .field("path", &self.path)
            .field("rows", &self.rows)
            .field("feature_columns", &self.feature_columns)
            .field("target_columns", &self.target_columns)
            .field("classes", &self.classes)
            .finish_non_exhaustive()
    }
}

impl CsvSource {
    /// Opens `path` with the target columns of `options.label`; with `classes`,
    /// the single target column holds class indices.
    ///
    /// # Errors
    /// As [`read_dataset`](super::read_dataset), found in the checking pass.
    pub fn open(path: &Path, options: &ReadOptions, classes: bool) -> Result<CsvSource> {
        let mut reader = CsvRows::open(path, options)?;
        let mut scratch = Vec::new();
        let (mut rows, mut max_class) = (0usize, 0usize);
        let (mut targets, mut features) = (Vec::new(), Vec::new());
        while let Some(line) = reader.next_row(&mut scratch)? {
            if rows == 0 {
                (targets, features) = reader.columns(&options.label)?;
                if classes && targets.len() != 1 {
                    return Err(Error::parse(
                        path,
                        "class labels need exactly one label column",
                    ));
                }
            }
            for &c in targets.iter().filter(|_| classes) {
                let v = scratch[c];
                let Some(label) = class_index(v) else {
                    return Err(Error::Parse {
                        path: path.display().to_string(),
                        line: Some(line),
                        column: Some(c + 1),
                        message: format!(
                            "label {v} is not a class index (an integer from 0 below 2^24)"
                        ),
                    });
                };
                max_class = max_class.max(label);
            }
            if !options.allow_non_finite
                && let Some(c) = scratch.iter().position(|v| !v.is_finite())
            {
                return Err(Error::Parse {
                    path: path.display().to_string(),
                    line: Some(line),
                    column: Some(c + 1),
                    message: "a NaN or infinite value".into(),
                });
            }
            scratch.clear();
            rows += 1;
        }
        if rows == 0 {
            reader.columns(&options.label)?;
            return Err(Error::parse(path, "the file has a header but no data rows"));
        }
        Ok(CsvSource {
            path: path.to_path_buf(),
            options: options.clone(),
            rows,
            target_columns: targets,
            feature_columns: features,
            classes,
            max_class,
            reader: None,
            scratch,
        })
    }

    /// What the targets hold.
    pub fn target_kind(&self) -> TargetKind {
        if self.classes {
            TargetKind::Classes {
                max: self.max_class,
            }
        } else {
            TargetKind::Values {
                width: self.target_columns.len(),
            }
        }
    }
}

impl DataSource for CsvSource {
    fn rows(&self) -> usize {
        self.rows
    }
    fn features(&self) -> usize {
        self.feature_columns.len()
    }
    fn random_access(&self) -> bool {
        false
    }
    fn read(&mut self, idx: &[usize], batch: &mut Batch) -> Result<()> {
        let first = idx.first().copied().unwrap_or(0);
        let restart = !matches!(&self.reader, Some((_, next)) if *next == first);
        if restart {
            if first != 0 {
                return Err(Error::Config(format!(
                    "{}: a CSV source reads rows in order; asked for row {first}",
                    self.path.display()
                )));
            }
            self.reader = Some((CsvRows::open(&self.path, &self.options)?, 0));
        }
        let width = (!self.classes).then_some(self.target_columns.len());
        batch.clear(self.feature_columns.len(), width);
        let (reader, next) = self.reader.as_mut().expect("opened above");
        for _ in idx {
            self.scratch.clear();
            if reader.next_row(&mut self.scratch)?.is_none() {
                return Err(Error::parse(
                    &self.path,
                    "the file became shorter while training",
                ));
            }
            batch
                .x
                .extend(self.feature_columns.iter().map(|&c| self.scratch[c]));
            if self.classes {
                batch
                    .classes
                    .push(self.scratch[self.target_columns[0]] as usize);
            } else {
                batch
                    .values
                    .extend(self.target_columns.iter().map(|&c| self.scratch[c]));
            }
            *next += 1;
        }
        batch.rows = idx.len();
        Ok(())
    }
}
