//! Training targets: class indices or rows of values.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

/// What a network is trained to output, one entry per sample.
///
/// - `Classes`: one class index per row. For a softmax (or multi-column) output it
///   means the one-hot row with a 1 at that index; for a single sigmoid output
///   (binary cross-entropy) the index *is* the target, 0 or 1.
/// - `Values`: one row of target values per sample: one-hot rows, class
///   probabilities, multi-label 0/1 rows, or regression targets.
#[derive(Debug, Clone, Copy)]
pub enum Targets<'a> {
    /// One class index per sample.
    Classes(ArrayView1<'a, usize>),
    /// One row of values per sample.
    Values(ArrayView2<'a, f32>),
}

impl<'a> Targets<'a> {
    /// Class-index targets from a slice.
    pub fn classes(labels: &'a [usize]) -> Self {
        Targets::Classes(ArrayView1::from(labels))
    }

    /// The number of samples.
    pub fn len(&self) -> usize {
        match self {
            Targets::Classes(c) => c.len(),
            Targets::Values(v) => v.nrows(),
        }
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The largest class index a label file may hold, exclusive: `2^24`, the
/// first integer above which an `f32` (as labels are read) no longer holds
/// every integer exactly.
pub const CLASS_INDEX_LIMIT: usize = 1 << 24;

/// A label read as a number, as a class index: an integer from 0 below
/// [`CLASS_INDEX_LIMIT`]; `None` otherwise. The one check every reader of class
/// labels makes.
///
/// ```
/// use feedforward::targets::class_index;
/// assert_eq!(class_index(3.0), Some(3));
/// assert_eq!(class_index(2.5), None);
/// assert_eq!(class_index(-1.0), None);
/// assert_eq!(class_index(f32::NAN), None);
/// assert_eq!(class_index(16_777_216.0), None);
/// ```
pub fn class_index(value: f32) -> Option<usize> {
    (value >= 0.0 && value.fract() == 0.0 && value < CLASS_INDEX_LIMIT as f32)
        .then_some(value as usize)
}

/// Targets that own their data: what a data source or a program keeps, and
/// lends as [`Targets`] with [`OwnedTargets::view`].
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedTargets {
    /// One class index per sample.
    Classes(Array1<usize>),
    /// One row of values per sample.
    Values(Array2<f32>),
}

impl OwnedTargets {
    /// A view, as the network's calls take targets.
    pub fn view(&self) -> Targets<'_> {
        match self {
            OwnedTargets::Classes(c) => Targets::Classes(c.view()),
            OwnedTargets::Values(v) => Targets::Values(v.view()),
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.view().len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The class indices, if these are classes.
    pub fn classes(&self) -> Option<&Array1<usize>> {
        match self {
            OwnedTargets::Classes(c) => Some(c),
            OwnedTargets::Values(_) => None,
        }
    }
}

impl<'a> From<ArrayView1<'a, usize>> for Targets<'a> {
    fn from(v: ArrayView1<'a, usize>) -> Self {
        Targets::Classes(v)
    }
}

impl<'a> From<&'a Array1<usize>> for Targets<'a> {
    fn from(v: &'a Array1<usize>) -> Self {
        Targets::Classes(v.view())
    }
}

impl<'a> From<&'a [usize]> for Targets<'a> {
    fn from(v: &'a [usize]) -> Self {
        Targets::classes(v)
    }
}

impl<'a> From<ArrayView2<'a, f32>> for Targets<'a> {
    fn from(v: ArrayView2<'a, f32>) -> Self {
        Targets::Values(v)
    }
}

impl<'a> From<&'a Array2<f32>> for Targets<'a> {
    fn from(v: &'a Array2<f32>) -> Self {
        Targets::Values(v.view())
    }
}

/// Targets gathered into contiguous rows (the form the loss kernels read).
#[derive(Debug, Clone, Copy)]
pub(crate) enum TargetRows<'a> {
    /// One class index per row.
    Classes(&'a [usize]),
    /// Row-major values, `width` per row.
    Values(&'a [f32]),
}

impl<'a> TargetRows<'a> {
    /// `targets` read in place, when they are laid out as the loss kernels read them.
    pub(crate) fn in_place(targets: &Targets<'a>) -> Option<Self> {
        match targets {
            Targets::Classes(c) => c.to_slice().map(TargetRows::Classes),
            Targets::Values(v) => v.to_slice().map(TargetRows::Values),
        }
    }

    /// The rows `[first, first + n)`.
    pub(crate) fn rows(&self, first: usize, n: usize, width: usize) -> Self {
        match *self {
            TargetRows::Classes(c) => TargetRows::Classes(&c[first..first + n]),
            TargetRows::Values(v) => TargetRows::Values(&v[first * width..(first + n) * width]),
        }
    }

    /// The target value at `(row, col)` for an output `width` columns wide.
    #[inline]
    pub(crate) fn value(&self, row: usize, col: usize, width: usize) -> f32 {
        match *self {
            TargetRows::Classes(c) if width == 1 => c[row] as f32,
            TargetRows::Classes(c) => f32::from(u8::from(c[row] == col)),
            TargetRows::Values(v) => v[row * width + col],
        }
    }
}

/// Owned, reusable storage for gathered targets.
#[derive(Debug, Clone, Default)]
pub(crate) struct TargetBuffer {
    classes: Vec<usize>,
    values: Vec<f32>,
    is_classes: bool,
}

impl TargetBuffer {
    /// Copies the rows `indices` of `targets` (or all rows, in order, when `None`).
    pub(crate) fn gather(&mut self, targets: &Targets<'_>, indices: Option<&[usize]>) {
        match targets {
            Targets::Classes(c) => {
                self.is_classes = true;
                self.classes.clear();
                match indices {
                    Some(ix) => self.classes.extend(ix.iter().map(|&i| c[i])),
                    None => self.classes.extend(c.iter().copied()),
                }
            }
            Targets::Values(v) => {
                self.is_classes = false;
                self.values.clear();
                match indices {
                    Some(ix) => {
                        for &i in ix {
                            self.values.extend(v.row(i).iter().copied());
                        }
                    }
                    None => self.values.extend(v.iter().copied()),
                }
            }
        }
    }

    /// The gathered rows.
    pub(crate) fn rows(&self) -> TargetRows<'_> {
        if self.is_classes {
            TargetRows::Classes(&self.classes)
        } else {
            TargetRows::Values(&self.values)
        }
    }
}
