//! Data sources: training rows read a batch at a time, so that a data set larger
//! than memory (or than two copies of it) never has to be loaded whole.
//!
//! The [`Trainer`](crate::train::Trainer) asks a [`DataSource`] for the rows of
//! each mini-batch, into a [`Batch`] whose buffers are reused. Here:
//! [`ArraySource`] (arrays in memory) and [`RowSubset`] (some rows of another
//! source). Beside their readers in [`crate::io`]: [`NpySource`](crate::io::NpySource)
//! (a memory-mapped `.npy` file) and [`CsvSource`](crate::io::CsvSource) (a CSV
//! file read in order); beside the statistics it applies:
//! [`StandardizedSource`](crate::standardize::StandardizedSource).

use ndarray::ArrayView2;

use crate::error::Result;
use crate::targets::Targets;

mod array;
mod subset;

pub use array::ArraySource;
pub use subset::RowSubset;

/// One mini-batch read from a [`DataSource`]; its buffers are reused.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub(crate) rows: usize,
    features: usize,
    pub(crate) x: Vec<f32>,
    pub(crate) classes: Vec<usize>,
    pub(crate) values: Vec<f32>,
    value_width: usize,
}

impl Batch {
    /// Starts a batch of `features` columns, with class-index targets
    /// (`value_width = None`) or rows of `value_width` values.
    pub(crate) fn clear(&mut self, features: usize, value_width: Option<usize>) {
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

/// Where [`Trainer::fit_source`](crate::train::Trainer::fit_source) gets its rows.
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
    /// [`Error::Io`](crate::Error::Io) or [`Error::Parse`](crate::Error::Parse) for a file that cannot be read.
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
