//! [`ArraySource`]: arrays in memory as a source.

use ndarray::ArrayView2;

use super::{Batch, DataSource};
use crate::error::{Error, Result};
use crate::targets::Targets;

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
