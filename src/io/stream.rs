//! Data sources: training rows read a batch at a time, so that a data set larger
//! than memory (or than two copies of it) never has to be loaded whole.
//!
//! [`Network::fit_source`](crate::Network::fit_source) asks a [`DataSource`] for
//! the rows of each mini-batch. [`ArraySource`] serves arrays already in memory;
//! [`NpySource`] memory-maps an `.npy` feature file (the operating system pages
//! rows in and out; only the batch is copied); [`CsvSource`] reads a CSV file in
//! file order, a batch of rows at a time, after one validating pass.

use std::path::{Path, PathBuf};

use memmap2::Mmap;
use ndarray::{Array2, ArrayView2};

use super::csv::CsvRows;
use super::{ReadOptions, npy, read_npy};
use crate::error::{Error, Result};
use crate::standardize::Standardizer;
use crate::targets::Targets;

/// One mini-batch read from a [`DataSource`]; its buffers are reused.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    rows: usize,
    features: usize,
    x: Vec<f32>,
    classes: Vec<usize>,
    values: Vec<f32>,
    value_width: usize,
}

impl Batch {
    /// Starts a batch of `features` columns, with class-index targets
    /// (`value_width = None`) or rows of `value_width` values.
    fn clear(&mut self, features: usize, value_width: Option<usize>) {
        self.rows = 0;
        self.features = features;
        self.x.clear();
        self.classes.clear();
        self.values.clear();
        self.value_width = value_width.unwrap_or(0);
    }

    /// Rows in the batch.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The features, `rows × features`.
    pub fn features(&self) -> ArrayView2<'_, f32> {
        ArrayView2::from_shape(
            (self.rows, self.features),
            &self.x[..self.rows * self.features],
        )
        .expect("sized as filled")
    }

    /// The targets.
    pub fn targets(&self) -> Targets<'_> {
        if self.value_width == 0 {
            Targets::Classes(ndarray::ArrayView1::from(&self.classes[..self.rows]))
        } else {
            Targets::Values(
                ArrayView2::from_shape(
                    (self.rows, self.value_width),
                    &self.values[..self.rows * self.value_width],
                )
                .expect("sized as filled"),
            )
        }
    }

    /// The features, mutable (for standardising in place).
    pub fn features_mut(&mut self) -> &mut [f32] {
        &mut self.x[..self.rows * self.features]
    }
}

/// Where [`Network::fit_source`](crate::Network::fit_source) gets its rows.
pub trait DataSource {
    /// Number of rows.
    fn rows(&self) -> usize;
    /// Features per row.
    fn features(&self) -> usize;
    /// Whether rows can be read in any order (then each epoch is shuffled);
    /// otherwise they are read in order, `0..rows`, one batch after another.
    fn random_access(&self) -> bool {
        true
    }
    /// Reads rows `idx` into `batch` (for a source without random access, `idx`
    /// continues where the last call ended, or starts again at 0).
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Parse`] for a file that cannot be read.
    fn read(&mut self, idx: &[usize], batch: &mut Batch) -> Result<()>;
}

/// What a file source's targets hold, known once it is open (to size a
/// network's output layer, or check it, before training starts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// Class indices, the largest of them `max`.
    Classes {
        /// The largest class index.
        max: usize,
    },
    /// `width` target values per row.
    Values {
        /// Values per row.
        width: usize,
    },
}

/// A [`DataSource`] whose features are standardised as they are read, with
/// statistics measured beforehand (for example by
/// [`Standardizer::fit_source`] over the same source).
///
/// ```
/// use feedforward::io::{ArraySource, Batch, DataSource, StandardizedSource};
/// use feedforward::{Standardizer, Targets};
/// let x = ndarray::array![[1.0f32, 5.0], [3.0, 7.0]];
/// let y = ndarray::array![0usize, 1];
/// let mut source = ArraySource::new(x.view(), Targets::Classes(y.view()))?;
/// let s = Standardizer::fit_source(&mut source)?;
/// let mut source = StandardizedSource::new(source, s)?;
/// let mut batch = Batch::default();
/// source.read(&[1], &mut batch)?;
/// assert_eq!(batch.features(), ndarray::array![[1.0f32, 1.0]]);
/// # Ok::<(), feedforward::Error>(())
/// ```
#[derive(Debug)]
pub struct StandardizedSource<S> {
    inner: S,
    standardizer: Standardizer,
}

impl<S: DataSource> StandardizedSource<S> {
    /// `inner`'s rows standardised with `standardizer`.
    ///
    /// # Errors
    /// [`Error::Shape`] when the statistics are for another number of features.
    pub fn new(inner: S, standardizer: Standardizer) -> Result<Self> {
        if standardizer.width() != inner.features() {
            return Err(Error::Shape {
                context: "StandardizedSource",
                expected: format!("statistics for {} features", inner.features()),
                got: format!("{}", standardizer.width()),
            });
        }
        Ok(StandardizedSource {
            inner,
            standardizer,
        })
    }

    /// The source underneath.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: DataSource> DataSource for StandardizedSource<S> {
    fn rows(&self) -> usize {
        self.inner.rows()
    }
    fn features(&self) -> usize {
        self.inner.features()
    }
    fn random_access(&self) -> bool {
        self.inner.random_access()
    }
    fn read(&mut self, idx: &[usize], batch: &mut Batch) -> Result<()> {
        self.inner.read(idx, batch)?;
        if batch.rows() > 0 {
            self.standardizer.transform_rows(batch.features_mut())?;
        }
        Ok(())
    }
}

/// Some rows of another [`DataSource`], in a given order, as a source of their
/// own: a training split of a file that is never loaded whole. Row `i` of the
/// subset is row `rows[i]` of the source underneath; rows named in errors are
/// the subset's.
///
/// ```
/// use feedforward::io::{ArraySource, Batch, DataSource, RowSubset};
/// let x = ndarray::array![[0.0f32], [1.0], [2.0], [3.0]];
/// let y = ndarray::array![0usize, 1, 0, 1];
/// let source = ArraySource::new(x.view(), feedforward::Targets::Classes(y.view()))?;
/// let mut train = RowSubset::new(source, vec![3, 0, 2])?;
/// let mut batch = Batch::default();
/// train.read(&[0, 1], &mut batch)?;
/// assert_eq!(batch.features(), ndarray::array![[3.0f32], [0.0]]);
/// # Ok::<(), feedforward::Error>(())
/// ```
#[derive(Debug)]
pub struct RowSubset<S> {
    inner: S,
    rows: Vec<usize>,
    mapped: Vec<usize>,
}

impl<S: DataSource> RowSubset<S> {
    /// Rows `rows` of `inner`, in that order.
    ///
    /// # Errors
    /// [`Error::Config`] when `inner` cannot be read in any order (a CSV file),
    /// or a row is beyond its end.
    pub fn new(inner: S, rows: Vec<usize>) -> Result<Self> {
        if !inner.random_access() {
            return Err(Error::Config(
                "a subset of rows needs a source that can be read in any order".into(),
            ));
        }
        if let Some(&r) = rows.iter().find(|&&r| r >= inner.rows()) {
            return Err(Error::Config(format!(
                "row {r} of a subset is beyond the source's {} rows",
                inner.rows()
            )));
        }
        Ok(RowSubset {
            inner,
            rows,
            mapped: Vec::new(),
        })
    }

    /// The source underneath.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: DataSource> DataSource for RowSubset<S> {
    fn rows(&self) -> usize {
        self.rows.len()
    }
    fn features(&self) -> usize {
        self.inner.features()
    }
    fn read(&mut self, idx: &[usize], batch: &mut Batch) -> Result<()> {
        self.mapped.clear();
        for &i in idx {
            let row = self.rows.get(i).ok_or_else(|| {
                Error::Config(format!(
                    "row {i} is beyond the subset's {} rows",
                    self.rows.len()
                ))
            })?;
            self.mapped.push(*row);
        }
        self.inner.read(&self.mapped, batch)
    }
}

/// Arrays in memory as a [`DataSource`].
#[derive(Debug, Clone, Copy)]
pub struct ArraySource<'a> {
    x: ArrayView2<'a, f32>,
    y: Targets<'a>,
}

impl<'a> ArraySource<'a> {
    /// Features `x` (one row per sample) and their targets.
    ///
    /// # Errors
    /// [`Error::Shape`] when the row counts differ.
    pub fn new(x: ArrayView2<'a, f32>, y: Targets<'a>) -> Result<Self> {
        if y.len() != x.nrows() {
            return Err(Error::Shape {
                context: "ArraySource",
                expected: format!("{} targets", x.nrows()),
                got: format!("{}", y.len()),
            });
        }
        Ok(ArraySource { x, y })
    }
}

impl DataSource for ArraySource<'_> {
    fn rows(&self) -> usize {
        self.x.nrows()
    }
    fn features(&self) -> usize {
        self.x.ncols()
    }
    fn read(&mut self, idx: &[usize], batch: &mut Batch) -> Result<()> {
        let width = match self.y {
            Targets::Classes(_) => None,
            Targets::Values(v) => Some(v.ncols()),
        };
        batch.clear(self.x.ncols(), width);
        for &i in idx {
            batch.x.extend(self.x.row(i).iter());
            match self.y {
                Targets::Classes(c) => batch.classes.push(c[i]),
                Targets::Values(v) => batch.values.extend(v.row(i).iter()),
            }
        }
        batch.rows = idx.len();
        Ok(())
    }
}

/// Targets held in memory for a file source (they are small beside the features).
#[derive(Debug, Clone)]
enum OwnedTargets {
    Classes(Vec<usize>),
    Values(Array2<f32>),
}

/// A memory-mapped `.npy` feature file (little-endian `float32`, C order) and its
/// targets, as a [`DataSource`]: only the rows of the current batch are copied.
#[derive(Debug)]
pub struct NpySource {
    map: Mmap,
    offset: usize,
    rows: usize,
    cols: usize,
    targets: OwnedTargets,
}

impl NpySource {
    /// Maps `features` and reads `targets` (an `.npy` of class indices when
    /// `classes` is true, else one row of values per sample).
    ///
    /// # Errors
    /// [`Error::Io`] for files that cannot be opened; [`Error::Parse`] for a
    /// feature file that is not `<f4` in C order (convert it with
    /// `x.astype('<f4')`), a size that disagrees with its header, or targets that
    /// are not class indices or do not have one row per sample.
    pub fn open(features: &Path, targets: &Path, classes: bool) -> Result<NpySource> {
        let file = std::fs::File::open(features).map_err(|e| Error::io(features, &e))?;
        // SAFETY: the map is read-only; a file truncated by another process while
        // mapped is outside what this library can guard against.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(features, &e))?;
        let h = npy::parse_header(&map).map_err(|m| Error::parse(features, m))?;
        let little = h.order == '<' || (h.order == '=' && cfg!(target_endian = "little"));
        if h.kind != 'f' || h.size != 4 || !little || h.fortran {
            return Err(Error::parse(
                features,
                "streaming needs little-endian float32 features in C order; convert with x.astype('<f4')",
            ));
        }
        let (rows, cols) = match h.shape.as_slice() {
            [r, rest @ ..] if !rest.is_empty() => (*r, rest.iter().product::<usize>()),
            [r] => (*r, 1),
            _ => return Err(Error::parse(features, "a scalar array cannot hold samples")),
        };
        if map.len() != h.data_offset + rows * cols * 4 {
            return Err(Error::parse(
                features,
                format!(
                    "the header says {rows} x {cols} float32 values ({} bytes), the file holds {}",
                    rows * cols * 4,
                    map.len().saturating_sub(h.data_offset)
                ),
            ));
        }
        let t = read_npy(targets)?.into_matrix(targets)?;
        if t.nrows() != rows {
            return Err(Error::parse(
                targets,
                format!(
                    "has {} rows but {} has {rows}",
                    t.nrows(),
                    features.display()
                ),
            ));
        }
        let targets = if classes {
            let labels = t
                .column(0)
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    if t.ncols() == 1 && v >= 0.0 && v.fract() == 0.0 {
                        Ok(v as usize)
                    } else {
                        Err(Error::parse(
                            targets,
                            format!("row {i}: {v} is not a class index"),
                        ))
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            OwnedTargets::Classes(labels)
        } else {
            OwnedTargets::Values(t)
        };
        Ok(NpySource {
            map,
            offset: h.data_offset,
            rows,
            cols,
            targets,
        })
    }
}

impl NpySource {
    /// What the targets hold.
    pub fn target_kind(&self) -> TargetKind {
        match &self.targets {
            OwnedTargets::Classes(c) => TargetKind::Classes {
                max: c.iter().copied().max().unwrap_or(0),
            },
            OwnedTargets::Values(v) => TargetKind::Values { width: v.ncols() },
        }
    }
}

impl DataSource for NpySource {
    fn rows(&self) -> usize {
        self.rows
    }
    fn features(&self) -> usize {
        self.cols
    }
    fn read(&mut self, idx: &[usize], batch: &mut Batch) -> Result<()> {
        let width = match &self.targets {
            OwnedTargets::Classes(_) => None,
            OwnedTargets::Values(v) => Some(v.ncols()),
        };
        batch.clear(self.cols, width);
        let row_bytes = self.cols * 4;
        for &i in idx {
            let start = self.offset + i * row_bytes;
            let bytes = &self.map[start..start + row_bytes];
            batch.x.extend(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            );
            match &self.targets {
                OwnedTargets::Classes(c) => batch.classes.push(c[i]),
                OwnedTargets::Values(v) => batch.values.extend(v.row(i).iter()),
            }
        }
        batch.rows = idx.len();
        Ok(())
    }
}

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
            for &c in &targets {
                let v = scratch[c];
                if classes && !(v >= 0.0 && v.fract() == 0.0) {
                    return Err(Error::Parse {
                        path: path.display().to_string(),
                        line: Some(line),
                        column: Some(c + 1),
                        message: format!("label {v} is not a class index (an integer from 0)"),
                    });
                }
                if classes {
                    max_class = max_class.max(v as usize);
                }
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
