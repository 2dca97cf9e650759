//! What a dense layer does to each element of its product once it is complete:
//! add the bias, and clamp at zero for ReLU.
//!
//! Applied by the default backend to each tile of C right after its last store,
//! while the tile is still in L1, instead of in a later pass that reads the whole
//! output back from memory. The same arithmetic as that separate pass
//! (`c + b`, then `max(c, 0)`), so the bits do not change.
//!
//! It also notes whether any `c + b` was NaN or infinite. A NaN or infinity in a
//! row of A makes every element of that row of `A·B` NaN or infinite (each is a
//! sum over the whole row of products, and `∞·0` is NaN), so a product whose
//! results are all finite had finite inputs: the caller need only scan its input
//! for the culprit when this flag is raised.

use std::sync::atomic::{AtomicBool, Ordering};

use super::MatMut;
use crate::kernels::EXPONENT;

/// `c ← c + bias[j]`, then `c ← max(c, 0)` when `relu`, element `(i, j)` of C.
#[derive(Debug)]
pub struct Epilogue<'a> {
    bias: &'a [f32],
    relu: bool,
    non_finite: AtomicBool,
}

impl<'a> Epilogue<'a> {
    /// Adds `bias` (one value per column of C), then clamps at zero when `relu`.
    pub fn new(bias: &'a [f32], relu: bool) -> Self {
        Epilogue {
            bias,
            relu,
            non_finite: AtomicBool::new(false),
        }
    }

    /// The number of columns of C this epilogue is for.
    pub fn cols(&self) -> usize {
        self.bias.len()
    }

    /// Whether any `c + bias[j]` it has produced was NaN or infinite (before the
    /// clamp, which would turn a NaN into 0).
    pub fn saw_non_finite(&self) -> bool {
        self.non_finite.load(Ordering::Relaxed)
    }

    /// Applies the epilogue to one row segment: `row[j]` is column `first_col + j`.
    #[inline(always)]
    fn apply_row(&self, row: &mut [f32], first_col: usize) -> u32 {
        let bias = &self.bias[first_col..first_col + row.len()];
        let mut exponent = 0u32;
        if self.relu {
            for (v, b) in row.iter_mut().zip(bias) {
                let z = *v + b;
                exponent = exponent.max(z.to_bits() & EXPONENT);
                *v = z.max(0.0);
            }
        } else {
            for (v, b) in row.iter_mut().zip(bias) {
                *v += b;
                exponent = exponent.max(v.to_bits() & EXPONENT);
            }
        }
        exponent
    }

    /// Records a block's largest exponent field.
    #[inline(always)]
    fn note(&self, exponent: u32) {
        if exponent == EXPONENT {
            self.non_finite.store(true, Ordering::Relaxed);
        }
    }

    /// Applies the epilogue to a whole row-major matrix of [`Epilogue::cols`] columns.
    pub(crate) fn apply(&self, c: &mut [f32]) {
        let cols = self.cols();
        crate::kernels::for_rows(c, cols, |_, rows| {
            let exponent = rows
                .chunks_exact_mut(cols.max(1))
                .fold(0, |e, row| e.max(self.apply_row(row, 0)));
            self.note(exponent);
        });
    }

    /// Applies the epilogue to the `rows × cols` block of `c` whose first column
    /// is column `first_col` of the whole C.
    ///
    /// Inlined into the kernels' per-instruction-set entry points, so that it
    /// is vectorised with their registers.
    ///
    /// # Safety
    /// The block must be valid and writable at `c`'s strides, and
    /// `first_col + cols ≤` [`Epilogue::cols`].
    #[inline(always)]
    pub(crate) unsafe fn apply_block(&self, c: MatMut, rows: usize, cols: usize, first_col: usize) {
        let mut exponent = 0;
        for i in 0..rows {
            // SAFETY: row i of the block, as the caller guarantees.
            let row_start = unsafe { c.ptr.offset(i as isize * c.rs) };
            if c.cs == 1 {
                // SAFETY: a contiguous row of `cols` floats inside the block.
                let row = unsafe { std::slice::from_raw_parts_mut(row_start, cols) };
                exponent = exponent.max(self.apply_row(row, first_col));
            } else {
                for j in 0..cols {
                    // SAFETY: element (i, j) of the block.
                    let v = unsafe { &mut *row_start.offset(j as isize * c.cs) };
                    exponent = exponent.max(self.apply_row(std::slice::from_mut(v), first_col + j));
                }
            }
        }
        self.note(exponent);
    }
}
