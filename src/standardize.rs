//! Feature standardisation: `x' = (x − μ) / σ` per column, with `μ` and `σ`
//! measured on the training data only and stored with the model.

use ndarray::{Array2, ArrayView2};

use crate::error::{Error, Result};
use crate::kernels;
use crate::source::{Batch, DataSource};

/// Rows read per call when measuring a [`DataSource`].
const FIT_ROWS: usize = 1024;

/// Per-column mean and standard deviation of the training features.
#[derive(Debug, Clone, PartialEq)]
pub struct Standardizer {
    /// Column means `μ`.
    pub mean: Vec<f32>,
    /// Column standard deviations `σ` (population); 1 for a constant column, so
    /// that it maps to 0 instead of dividing by zero.
    pub std: Vec<f32>,
}

impl Standardizer {
    /// Measures `x`'s columns (in `f64`).
    ///
    /// ```
    /// use feedforward::Standardizer;
    /// let x = ndarray::array![[1.0f32, 5.0], [3.0, 5.0]];
    /// let s = Standardizer::fit(x.view())?;
    /// assert_eq!((s.mean.clone(), s.std.clone()), (vec![2.0, 5.0], vec![1.0, 1.0]));
    /// assert_eq!(s.transform(x.view())?, ndarray::array![[-1.0, 0.0], [1.0, 0.0]]);
    /// # Ok::<(), feedforward::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Empty`] for no rows; [`Error::NonFinite`] at the first NaN or
    /// infinite value.
    pub fn fit(x: ArrayView2<'_, f32>) -> Result<Standardizer> {
        let n = x.nrows();
        if n == 0 {
            return Err(Error::Empty("standardize: features"));
        }
        if let Some(at) = kernels::first_non_finite_in(&x) {
            return Err(non_finite(at));
        }
        let mut mean = vec![0.0f64; x.ncols()];
        add_rows(&mut mean, x);
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut var = vec![0.0f64; x.ncols()];
        add_squared_deviations(&mut var, &mean, x);
        Ok(Self::from_sums(&mean, &var, n))
    }

    /// [`Standardizer::fit`] over a [`DataSource`], read twice in row order a
    /// block at a time (the mean, then the variance), so that a file larger than
    /// memory can be measured. The sums are `fit`'s, in the same order: the
    /// result is bit-identical to `fit` on the same rows in memory.
    ///
    /// ```
    /// use feedforward::Standardizer;
    /// use feedforward::source::ArraySource;
    /// let x = ndarray::array![[1.0f32, 5.0], [3.0, 5.0]];
    /// let y = ndarray::array![0usize, 1];
    /// let mut source = ArraySource::new(x.view(), feedforward::Targets::Classes(y.view()))?;
    /// assert_eq!(Standardizer::fit_source(&mut source)?, Standardizer::fit(x.view())?);
    /// # Ok::<(), feedforward::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Empty`] for no rows; [`Error::NonFinite`] at the first NaN or
    /// infinite feature (row and column in the source); the source's own read
    /// errors.
    pub fn fit_source<S: DataSource + ?Sized>(source: &mut S) -> Result<Standardizer> {
        let (n, width) = (source.rows(), source.features());
        if n == 0 {
            return Err(Error::Empty("standardize: features"));
        }
        let mut batch = Batch::default();
        let mut idx = Vec::with_capacity(FIT_ROWS);
        let mut mean = vec![0.0f64; width];
        let mut first_bad = None;
        for_each_block(source, &mut batch, &mut idx, |start, x| {
            if first_bad.is_none() {
                first_bad = kernels::first_non_finite_in(&x)
                    .map(|(row, col, value)| (start + row, col, value));
            }
            add_rows(&mut mean, x);
        })?;
        if let Some(at) = first_bad {
            return Err(non_finite(at));
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut var = vec![0.0f64; width];
        for_each_block(source, &mut batch, &mut idx, |_, x| {
            add_squared_deviations(&mut var, &mean, x);
        })?;
        Ok(Self::from_sums(&mean, &var, n))
    }

    /// The statistics from column means and sums of squared deviations over `n` rows.
    fn from_sums(mean: &[f64], var: &[f64], n: usize) -> Standardizer {
        let std = var
            .iter()
            .map(|&s| {
                let sd = (s / n as f64).sqrt();
                if sd > 1e-12 { sd as f32 } else { 1.0 }
            })
            .collect();
        Standardizer {
            mean: mean.iter().map(|&m| m as f32).collect(),
            std,
        }
    }

    /// Number of columns.
    pub fn width(&self) -> usize {
        self.mean.len()
    }

    /// `(x − μ) / σ`, column by column.
    ///
    /// # Errors
    /// [`Error::Shape`] when `x` has a different number of columns.
    pub fn transform(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        let mut out = x.to_owned();
        self.transform_in_place(&mut out)?;
        Ok(out)
    }

    /// [`Standardizer::transform`] without a copy.
    ///
    /// # Errors
    /// [`Error::Shape`] when `x` has a different number of columns.
    pub fn transform_in_place(&self, x: &mut Array2<f32>) -> Result<()> {
        if x.ncols() != self.width() {
            return Err(Error::Shape {
                context: "standardize",
                expected: format!("{} columns", self.width()),
                got: format!("{} columns", x.ncols()),
            });
        }
        for mut row in x.rows_mut() {
            self.standardize_row(row.iter_mut());
        }
        Ok(())
    }

    /// [`Standardizer::transform_in_place`] on row-major rows of
    /// [`Standardizer::width`] values each.
    ///
    /// # Errors
    /// [`Error::Shape`] when `rows` is not a whole number of rows.
    pub fn transform_rows(&self, rows: &mut [f32]) -> Result<()> {
        let width = self.width();
        if width == 0 || !rows.len().is_multiple_of(width) {
            return Err(Error::Shape {
                context: "standardize",
                expected: format!("rows of {width} values"),
                got: format!("{} values", rows.len()),
            });
        }
        for row in rows.chunks_exact_mut(width) {
            self.standardize_row(row.iter_mut());
        }
        Ok(())
    }

    /// `(x − μ) / σ` over one row's values.
    fn standardize_row<'a>(&self, row: impl Iterator<Item = &'a mut f32>) {
        for ((v, &m), &s) in row.zip(&self.mean).zip(&self.std) {
            *v = (*v - m) / s;
        }
    }
}

/// The error for a NaN or infinity at `(row, col)`: statistics measured over it
/// would be NaN and spread it over the whole column.
fn non_finite((row, col, value): (usize, usize, f32)) -> Error {
    Error::NonFinite {
        context: "standardize: features",
        row,
        col,
        value,
    }
}

/// Adds each row of `x` to `sums`, column by column, in `f64`.
fn add_rows(sums: &mut [f64], x: ArrayView2<'_, f32>) {
    for row in x.rows() {
        for (m, &v) in sums.iter_mut().zip(row) {
            *m += f64::from(v);
        }
    }
}

/// Adds `(x − mean)²` of each row of `x` to `sums`, column by column, in `f64`.
fn add_squared_deviations(sums: &mut [f64], mean: &[f64], x: ArrayView2<'_, f32>) {
    for row in x.rows() {
        for ((s, &m), &v) in sums.iter_mut().zip(mean).zip(row) {
            let d = f64::from(v) - m;
            *s += d * d;
        }
    }
}

/// Reads all of `source` in row order, [`FIT_ROWS`] at a time, handing each
/// block's first row and features to `f`.
fn for_each_block<S: DataSource + ?Sized>(
    source: &mut S,
    batch: &mut Batch,
    idx: &mut Vec<usize>,
    mut f: impl FnMut(usize, ArrayView2<'_, f32>),
) -> Result<()> {
    let rows = source.rows();
    for start in (0..rows).step_by(FIT_ROWS) {
        idx.clear();
        idx.extend(start..rows.min(start + FIT_ROWS));
        source.read(idx, batch)?;
        f(start, batch.features());
    }
    Ok(())
}

/// A [`DataSource`] whose features are standardised as they are read, with
/// statistics measured beforehand (for example by
/// [`Standardizer::fit_source`] over the same source).
///
/// ```
/// use feedforward::source::{ArraySource, Batch, DataSource};
/// use feedforward::standardize::StandardizedSource;
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
