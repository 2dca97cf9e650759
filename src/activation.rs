//! Activation functions and their derivatives.
//!
//! Every derivative here is written in terms of the activation's *output*
//! `A = g(Z)`, so a layer can overwrite `Z` with `A` and keep one buffer:
//!
//! | activation | `g(z)`                 | `dZ` from `dA` and `A`              |
//! |------------|------------------------|-------------------------------------|
//! | identity   | `z`                    | `dA`                                |
//! | ReLU       | `max(z, 0)`            | `dA · [A > 0]`                      |
//! | sigmoid    | `1 / (1 + e^(−z))`     | `dA · A (1 − A)`                    |
//! | tanh       | `tanh z`               | `dA · (1 − A²)`                     |
//! | softmax    | `e^(z_j) / Σ e^(z_k)`  | `A ⊙ (dA − rowsum(dA ⊙ A))`         |
//!
//! Softmax's backward is the Jacobian-vector product, never the per-row Jacobian.

use std::fmt;

use ndarray::{Array2, ArrayView2};

use crate::cpu::per_isa;
use crate::error::{Error, Result, shape_str};
use crate::kernels;

/// An element-wise (or, for softmax, row-wise) activation function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activation {
    /// `g(z) = z`.
    Identity,
    /// `g(z) = max(z, 0)`.
    Relu,
    /// `g(z) = 1 / (1 + e^(−z))`.
    Sigmoid,
    /// `g(z) = tanh z`.
    Tanh,
    /// `g(z)_j = e^(z_j) / Σ_k e^(z_k)` over each row.
    Softmax,
}

impl Activation {
    /// The lower-case name (`"relu"`), as used in messages and model files.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Softmax => "softmax",
        }
    }

    /// Parses a name as printed by [`Activation::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "identity" | "linear" | "none" => Activation::Identity,
            "relu" => Activation::Relu,
            "sigmoid" | "logistic" => Activation::Sigmoid,
            "tanh" => Activation::Tanh,
            "softmax" => Activation::Softmax,
            _ => return None,
        })
    }

    /// `A = g(Z)` for a batch `Z` (one sample per row).
    ///
    /// ```
    /// use feedforward::Activation;
    /// let a = Activation::Relu.forward(ndarray::array![[-1.0f32, 2.0]].view());
    /// assert_eq!(a, ndarray::array![[0.0, 2.0]]);
    /// ```
    pub fn forward(self, z: ArrayView2<'_, f32>) -> Array2<f32> {
        let cols = z.ncols();
        let mut a = z.as_standard_layout().into_owned();
        if let Some(data) = a.as_slice_mut() {
            self.forward_in_place(data, cols);
        }
        a
    }

    /// `dZ` from the output `A = g(Z)` and the incoming gradient `dA` (same shapes).
    ///
    /// # Errors
    /// [`Error::Shape`] when `A` and `dA` differ in shape.
    pub fn backward(self, a: ArrayView2<'_, f32>, da: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        if a.dim() != da.dim() {
            return Err(Error::Shape {
                context: "Activation::backward: dA must have the shape of A",
                expected: shape_str(a.nrows(), a.ncols()),
                got: shape_str(da.nrows(), da.ncols()),
            });
        }
        let cols = a.ncols();
        let a = a.as_standard_layout();
        let mut dz = da.as_standard_layout().into_owned();
        if let (Some(a), Some(g)) = (a.as_slice(), dz.as_slice_mut()) {
            self.backward_in_place(a, g, cols);
        }
        Ok(dz)
    }

    /// Overwrites `z` (rows of `cols` values) with `g(z)`, in parallel over rows.
    pub(crate) fn forward_in_place(self, z: &mut [f32], cols: usize) {
        if self == Activation::Identity {
            return;
        }
        kernels::for_rows(z, cols, |_, rows| self.forward_rows(rows, cols));
    }

    /// Overwrites the incoming gradient `g` (`dA`) with `dZ`, given the output `a`.
    pub(crate) fn backward_in_place(self, a: &[f32], g: &mut [f32], cols: usize) {
        if self == Activation::Identity {
            return;
        }
        kernels::for_rows_zip(a, cols, g, cols, |_, a, g| self.backward_rows(a, g, cols));
    }

    /// `A ← dZ` from `A` and the incoming gradient `dA`, overwriting the outputs
    /// (which the backward pass needs no more), so that no separate buffer holds `dZ`.
    pub(crate) fn backward_over_outputs(self, a: &mut [f32], da: &[f32], cols: usize) {
        kernels::for_rows_zip(da, cols, a, cols, |_, da, a| {
            self.backward_rows_over(da, a, cols);
        });
    }

    /// [`Activation::backward_over_outputs`] on whole rows (the same arithmetic as
    /// `backward_rows`, so both give identical bits).
    fn backward_rows_over(self, da: &[f32], a: &mut [f32], cols: usize) {
        backward_rows_over(self, da, a, cols);
    }

    /// The forward kernel on whole rows.
    pub(crate) fn forward_rows(self, z: &mut [f32], cols: usize) {
        forward_rows(self, z, cols);
    }

    /// The backward kernel on whole rows: `g ← dZ` from `g = dA` and `a = A`.
    fn backward_rows(self, a: &[f32], g: &mut [f32], cols: usize) {
        backward_rows(self, a, g, cols);
    }
}

per_isa! {
    /// The body of [`Activation::backward_rows_over`], compiled per instruction set.
    fn backward_rows_over(act: Activation, da: &[f32], a: &mut [f32], cols: usize) {
        match act {
            Activation::Identity => a.copy_from_slice(da),
            Activation::Relu => a.iter_mut().zip(da).for_each(|(a, &g)| {
                *a = if *a <= 0.0 { 0.0 } else { g };
            }),
            Activation::Sigmoid => a
                .iter_mut()
                .zip(da)
                .for_each(|(a, &g)| *a = g * (*a * (1.0 - *a))),
            Activation::Tanh => a
                .iter_mut()
                .zip(da)
                .for_each(|(a, &g)| *a = g * (1.0 - *a * *a)),
            Activation::Softmax => {
                let cols = cols.max(1);
                for (a, g) in a.chunks_exact_mut(cols).zip(da.chunks_exact(cols)) {
                    let dot: f32 = g.iter().zip(a.iter()).map(|(g, a)| g * a).sum();
                    a.iter_mut().zip(g).for_each(|(a, &g)| *a *= g - dot);
                }
            }
        }
    }
}

per_isa! {
    /// The body of [`Activation::forward_rows`], compiled per instruction set.
    fn forward_rows(act: Activation, z: &mut [f32], cols: usize) {
        match act {
            Activation::Identity => {}
            Activation::Relu => z.iter_mut().for_each(|v| *v = v.max(0.0)),
            Activation::Sigmoid => z.iter_mut().for_each(|v| *v = sigmoid(*v)),
            Activation::Tanh => z.iter_mut().for_each(|v| *v = v.tanh()),
            Activation::Softmax => {
                for row in z.chunks_exact_mut(cols.max(1)) {
                    softmax_row(row);
                }
            }
        }
    }
}

per_isa! {
    /// The body of [`Activation::backward_rows`], compiled per instruction set.
    fn backward_rows(act: Activation, a: &[f32], g: &mut [f32], cols: usize) {
        match act {
            Activation::Identity => {}
            Activation::Relu => g.iter_mut().zip(a).for_each(|(g, &a)| {
                if a <= 0.0 {
                    *g = 0.0;
                }
            }),
            Activation::Sigmoid => g.iter_mut().zip(a).for_each(|(g, &a)| *g *= a * (1.0 - a)),
            Activation::Tanh => g.iter_mut().zip(a).for_each(|(g, &a)| *g *= 1.0 - a * a),
            Activation::Softmax => {
                let cols = cols.max(1);
                for (g, a) in g.chunks_exact_mut(cols).zip(a.chunks_exact(cols)) {
                    let dot: f32 = g.iter().zip(a).map(|(g, a)| g * a).sum();
                    g.iter_mut().zip(a).for_each(|(g, &a)| *g = a * (*g - dot));
                }
            }
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `1 / (1 + e^(−z))`, finite for every finite `z` (saturates to 0 or 1).
#[inline]
pub(crate) fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// Softmax of one row in place, with the row maximum subtracted first so that
/// `exp` never overflows.
#[inline]
pub(crate) fn softmax_row(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|v| *v *= inv);
}

/// `log Σ_j e^(z_j)` of one row, computed as `max + log Σ e^(z_j − max)`.
#[inline]
pub(crate) fn log_sum_exp(row: &[f32]) -> f32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = row.iter().map(|&v| (v - max).exp()).sum();
    max + sum.ln()
}
