//! [`RowSubset`]: some rows of a source, in a given order, as a source.

use super::{Batch, DataSource};
use crate::error::{Error, Result};

/// Some rows of another [`DataSource`], in a given order, as a source of their
/// own: a training split of a file that is never loaded whole. Row `i` of the
/// subset is row `rows[i]` of the source underneath; rows named in errors are
/// the subset's.
///
/// ```
/// use feedforward::source::{ArraySource, Batch, DataSource, RowSubset};
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
