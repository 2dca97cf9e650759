//! A data set read from a file, with the position of every value in that file.

use std::path::{Path, PathBuf};

use ndarray::{Array2, Axis};

use super::options::{Column, label_positions};
use crate::error::{Error, Result};
use crate::targets::class_index;

/// Features and targets read from a file, one sample per row.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// `n × d` features.
    pub features: Array2<f32>,
    /// `n × t` targets as read (class labels are one column); `t = 0` when the
    /// file has none.
    pub targets: Array2<f32>,
    /// Where the values came from, for error messages.
    pub origin: Origin,
}

/// Where a [`Dataset`]'s values came from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Origin {
    /// The features' file.
    pub path: PathBuf,
    /// The targets' file (the same file for CSV and NPZ).
    pub targets_path: PathBuf,
    /// Text files: the line (from 1) of every row.
    pub lines: Option<Vec<u64>>,
    /// Text files: the file column (from 0) of every feature column.
    pub feature_columns: Vec<usize>,
    /// Text files: the file column (from 0) of every target column.
    pub target_columns: Vec<usize>,
    /// Text files with a header: the names of the feature columns.
    pub feature_names: Vec<String>,
}

impl Dataset {
    /// Pairs features with targets read from arrays (IDX, NPY, NPZ), checking
    /// that they have one row each per sample.
    pub(crate) fn from_arrays(
        path: &Path,
        features: Array2<f32>,
        targets: Option<(PathBuf, Array2<f32>)>,
    ) -> Result<Dataset> {
        if features.nrows() == 0 || features.ncols() == 0 {
            return Err(Error::parse(path, "the features array is empty"));
        }
        let (targets_path, targets) = match targets {
            Some((p, t)) => {
                if t.nrows() != features.nrows() {
                    return Err(Error::parse(
                        &p,
                        format!(
                            "has {} target rows but {} has {} samples",
                            t.nrows(),
                            path.display(),
                            features.nrows()
                        ),
                    ));
                }
                (p, t)
            }
            None => (path.to_path_buf(), Array2::zeros((features.nrows(), 0))),
        };
        Ok(Dataset {
            features,
            targets,
            origin: Origin {
                path: path.to_path_buf(),
                targets_path,
                ..Origin::default()
            },
        })
    }

    /// Turns the feature columns `label` (by file position, or by header name) into
    /// the targets, for a text file read with no label columns.
    ///
    /// # Errors
    /// [`Error::Config`] when the data already have targets or are not from a
    /// text file; [`Error::Parse`] for a column that does not exist.
    pub fn split_targets(&mut self, label: &[Column]) -> Result<()> {
        let o = &self.origin;
        if self.targets.ncols() != 0 || o.lines.is_none() {
            return Err(Error::Config(format!(
                "{}: label columns can only be split off a text file read without them",
                o.path.display()
            )));
        }
        let names = (!o.feature_names.is_empty()).then_some(o.feature_names.as_slice());
        let targets = label_positions(&o.path, label, names, self.features.ncols())?;
        let features: Vec<usize> = (0..self.features.ncols())
            .filter(|c| !targets.contains(c))
            .collect();
        let column_of =
            |positions: &[usize]| positions.iter().map(|&c| o.feature_columns[c]).collect();
        let origin = Origin {
            target_columns: column_of(&targets),
            feature_columns: column_of(&features),
            feature_names: features
                .iter()
                .filter_map(|&c| o.feature_names.get(c).cloned())
                .collect(),
            ..o.clone()
        };
        self.targets = self.features.select(Axis(1), &targets);
        self.features = self.features.select(Axis(1), &features);
        self.origin = origin;
        Ok(())
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.features.nrows()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An [`Error::Parse`] pointing at feature (`target = false`) or target
    /// column `col` of row `row`.
    pub fn error_at(&self, row: usize, col: usize, target: bool, message: &str) -> Error {
        let o = &self.origin;
        let path = if target { &o.targets_path } else { &o.path };
        let columns = if target {
            &o.target_columns
        } else {
            &o.feature_columns
        };
        match &o.lines {
            Some(lines) => Error::Parse {
                path: path.display().to_string(),
                line: lines.get(row).copied(),
                column: columns.get(col).map(|c| c + 1),
                message: message.to_string(),
            },
            None => Error::parse(path, format!("at [{row}, {col}]: {message}")),
        }
    }

    /// Checks that every feature and target is finite.
    ///
    /// # Errors
    /// [`Error::Parse`] at the first NaN or infinite value.
    pub fn check_finite(&self) -> Result<()> {
        for (target, array) in [(false, &self.features), (true, &self.targets)] {
            if let Some((r, c, v)) = crate::kernels::first_non_finite_in(&array.view()) {
                let what = if v.is_nan() {
                    "a missing or NaN value"
                } else {
                    "an infinite value"
                };
                return Err(self.error_at(
                    r,
                    c,
                    target,
                    &format!("{what}; clean the data or pass --allow-nan to drop such rows"),
                ));
            }
        }
        Ok(())
    }

    /// Removes every row holding a NaN or infinite value; returns how many.
    pub fn drop_non_finite(&mut self) -> usize {
        let keep: Vec<usize> = (0..self.len())
            .filter(|&r| {
                self.features.row(r).iter().all(|v| v.is_finite())
                    && self.targets.row(r).iter().all(|v| v.is_finite())
            })
            .collect();
        let dropped = self.len() - keep.len();
        if dropped > 0 {
            *self = self.select(&keep);
        }
        dropped
    }

    /// The rows `rows`, in that order.
    pub fn select(&self, rows: &[usize]) -> Dataset {
        let mut origin = self.origin.clone();
        origin.lines = self
            .origin
            .lines
            .as_ref()
            .map(|l| rows.iter().map(|&r| l[r]).collect());
        Dataset {
            features: self.features.select(Axis(0), rows),
            targets: self.targets.select(Axis(0), rows),
            origin,
        }
    }

    /// Splits the rows into `train` (in that order) and a copy of `held_out`,
    /// which together must name every row once. The training rows are
    /// reordered in place, so that the peak memory is the data and the held-out
    /// copy rather than two copies of the data.
    ///
    /// ```
    /// use feedforward::io::Dataset;
    /// let data = Dataset {
    ///     features: ndarray::array![[0.0f32, 0.5], [1.0, 1.5], [2.0, 2.5]],
    ///     targets: ndarray::array![[0.0f32], [1.0], [0.0]],
    ///     origin: Default::default(),
    /// };
    /// let (train, held_out) = data.split_rows(&[2, 0], &[1])?;
    /// assert_eq!(train.features, ndarray::array![[2.0f32, 2.5], [0.0, 0.5]]);
    /// assert_eq!(held_out.targets, ndarray::array![[1.0f32]]);
    /// # Ok::<(), feedforward::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] unless `train` and `held_out` name every row exactly once.
    pub fn split_rows(mut self, train: &[usize], held_out: &[usize]) -> Result<(Dataset, Dataset)> {
        let n = self.len();
        let order: Vec<usize> = train.iter().chain(held_out).copied().collect();
        let mut named = vec![false; n];
        let partition = order.len() == n
            && order
                .iter()
                .all(|&r| r < n && !std::mem::replace(&mut named[r], true));
        if !partition {
            return Err(Error::Config(format!(
                "a split of {n} rows must name each once; got {} training and {} held-out rows",
                train.len(),
                held_out.len()
            )));
        }
        let held = self.select(held_out);
        permute_rows(&mut self.features, &order);
        permute_rows(&mut self.targets, &order);
        if let Some(lines) = &self.origin.lines {
            self.origin.lines = Some(train.iter().map(|&r| lines[r]).collect());
        }
        let k = train.len();
        self.features = self.features.slice_move(ndarray::s![..k, ..]);
        self.targets = self.targets.slice_move(ndarray::s![..k, ..]);
        Ok((self, held))
    }

    /// The single target column as class indices, each below `classes` when given.
    ///
    /// # Errors
    /// [`Error::Config`] when there is not exactly one target column;
    /// [`Error::Parse`] at a label that is negative, not an integer, or not below
    /// `classes`.
    pub fn class_labels(&self, classes: Option<usize>) -> Result<Vec<usize>> {
        if self.targets.ncols() != 1 {
            return Err(Error::Config(format!(
                "{}: class labels need exactly one target column, found {}",
                self.origin.targets_path.display(),
                self.targets.ncols()
            )));
        }
        self.targets
            .column(0)
            .iter()
            .enumerate()
            .map(|(r, &v)| {
                let Some(label) = class_index(v) else {
                    return Err(self.error_at(
                        r,
                        0,
                        true,
                        &format!("label {v} is not a class index (an integer from 0 below 2^24)"),
                    ));
                };
                match classes {
                    Some(k) if label >= k => Err(self.error_at(
                        r,
                        0,
                        true,
                        &format!(
                            "label {label} is out of range for {k} classes (0 to {})",
                            k - 1
                        ),
                    )),
                    _ => Ok(label),
                }
            })
            .collect()
    }

    /// The number of classes the labels imply: the largest label plus one.
    ///
    /// # Errors
    /// As [`Dataset::class_labels`].
    pub fn infer_classes(&self) -> Result<usize> {
        Ok(self
            .class_labels(None)?
            .into_iter()
            .max()
            .map_or(0, |m| m + 1))
    }
}

/// Reorders the rows of `a` in place so that row `i` holds what row `order[i]`
/// held (`order` a permutation of the rows), following each cycle of the
/// permutation with one row of scratch.
fn permute_rows(a: &mut Array2<f32>, order: &[usize]) {
    let width = a.ncols();
    let Some(data) = a.as_slice_mut().filter(|_| width > 0) else {
        if width > 0 {
            *a = a.select(Axis(0), order);
        }
        return;
    };
    let row = |i: usize| i * width..(i + 1) * width;
    let mut placed = vec![false; order.len()];
    let mut held = vec![0.0f32; width];
    for start in 0..order.len() {
        if placed[start] {
            continue;
        }
        held.copy_from_slice(&data[row(start)]);
        let mut i = start;
        loop {
            placed[i] = true;
            let from = order[i];
            if from == start {
                data[row(i)].copy_from_slice(&held);
                break;
            }
            data.copy_within(row(from), i * width);
            i = from;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_rows_is_select_without_the_second_copy() {
        let n = 37;
        let data = Dataset {
            features: Array2::from_shape_fn((n, 3), |(i, j)| (i * 3 + j) as f32),
            targets: Array2::from_shape_fn((n, 1), |(i, _)| (i % 4) as f32),
            origin: Origin {
                lines: Some((0..n as u64).map(|l| l + 2).collect()),
                ..Origin::default()
            },
        };
        // A permutation with several cycles, split 30 / 7.
        let order: Vec<usize> = (0..n).map(|i| (i * 10 + 3) % n).collect();
        let (train, held_out) = order.split_at(30);
        let expected = (data.select(train), data.select(held_out));
        let (a, b) = data.clone().split_rows(train, held_out).unwrap();
        assert_eq!(
            (a.features, a.targets, a.origin.lines),
            (
                expected.0.features,
                expected.0.targets,
                expected.0.origin.lines
            )
        );
        assert_eq!(
            (b.features, b.targets),
            (expected.1.features, expected.1.targets)
        );
        // Not a partition of the rows.
        for (t, h) in [
            (&[0, 1][..], &[1][..]),
            (&[0][..], &[n][..]),
            (&[0][..], &[][..]),
        ] {
            match data.clone().split_rows(t, h) {
                Err(Error::Config(m)) => assert!(m.contains("rows"), "{m}"),
                other => panic!("{t:?} / {h:?}: expected a config error, got {other:?}"),
            }
        }
    }
}
