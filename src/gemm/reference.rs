//! The naive triple loop that the fast kernels are tested against.

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::error::Result;

/// `C ← α·A·B + β·C` by the textbook triple loop, accumulating in `f64`.
///
/// Slow and simple on purpose: the yardstick for [`super::gemm`]. Same shape
/// contract and `β = 0` convention.
///
/// # Errors
/// [`crate::Error::Shape`] when the dimensions disagree.
pub fn naive_gemm(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    mut c: ArrayViewMut2<'_, f32>,
) -> Result<()> {
    super::check_shapes(&a, &b, &c)?;
    let (m, k) = a.dim();
    let n = b.ncols();
    for i in 0..m {
        for j in 0..n {
            let mut sum = 0.0f64;
            for p in 0..k {
                sum += f64::from(a[[i, p]]) * f64::from(b[[p, j]]);
            }
            let ab = (f64::from(alpha) * sum) as f32;
            c[[i, j]] = if beta == 0.0 {
                ab
            } else {
                ab + beta * c[[i, j]]
            };
        }
    }
    Ok(())
}
