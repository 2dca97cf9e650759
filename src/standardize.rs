//! Feature standardisation: `x' = (x − μ) / σ` per column, with `μ` and `σ`
//! measured on the training data only and stored with the model.

use ndarray::{Array2, ArrayView2};

use crate::error::{Error, Result};

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
    /// [`Error::Empty`] for no rows.
    pub fn fit(x: ArrayView2<'_, f32>) -> Result<Standardizer> {
        let n = x.nrows();
        if n == 0 {
            return Err(Error::Empty("standardize: features"));
        }
        let mut mean = vec![0.0f64; x.ncols()];
        for row in x.rows() {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += f64::from(v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut var = vec![0.0f64; x.ncols()];
        for row in x.rows() {
            for ((s, &m), &v) in var.iter_mut().zip(&mean).zip(row) {
                let d = f64::from(v) - m;
                *s += d * d;
            }
        }
        let std = var
            .iter()
            .map(|&s| {
                let sd = (s / n as f64).sqrt();
                if sd > 1e-12 { sd as f32 } else { 1.0 }
            })
            .collect();
        Ok(Standardizer {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            std,
        })
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
            for ((v, &m), &s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (*v - m) / s;
            }
        }
        Ok(())
    }
}
