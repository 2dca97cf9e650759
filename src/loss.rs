//! Loss functions, fused with their output activation and computed from logits.
//!
//! With `m` rows in the batch, `k` output columns, logits `Z`, outputs `A = g(Z)`
//! and targets `Y`, each loss is a mean over the batch of a per-row loss `ℓ`:
//!
//! | loss                          | output  | `ℓ` for one row                                   | `dZ`                    |
//! |-------------------------------|---------|---------------------------------------------------|-------------------------|
//! | [`Loss::MeanSquaredError`]    | any     | `(1/k) Σ_j (a_j − y_j)²`                          | `g'(Z) ⊙ 2(A − Y)/(m k)` |
//! | [`Loss::BinaryCrossEntropy`]  | sigmoid, k = 1 | `max(z,0) − z·y + log(1 + e^(−|z|))`        | `(A − Y)/m`             |
//! | [`Loss::MultiLabelCrossEntropy`] | sigmoid | the same, averaged over the `k` labels        | `(A − Y)/(m k)`         |
//! | [`Loss::CategoricalCrossEntropy`] | softmax | `Σ_j y_j · (logsumexp(z) − z_j)`             | `(A·Σ_j y_j − Y)/m`     |
//!
//! So MSE and multi-label cross-entropy are means over all elements, as in
//! PyTorch's default reduction. The cross-entropies never take `log` of a
//! probability: `logsumexp` subtracts the row maximum, and the sigmoid form uses
//! `log(1 + e^(−|z|))`, so logits of ±1e4 give finite losses and gradients.
//! `(A·Σy − Y)` is `A − Y` for one-hot or probability rows, and stays exact for
//! rows that do not sum to one.

use std::fmt;

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use crate::activation::{Activation, log_sum_exp};
use crate::error::{Error, Result, shape_str};
use crate::kernels::{self, reduce};
use crate::targets::{TargetBuffer, TargetRows, Targets};

/// A training objective for a network's output layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Loss {
    /// Mean squared error over all elements (regression). Fits any output activation.
    MeanSquaredError,
    /// Binary cross-entropy from one sigmoid output; targets are 0/1 (or probabilities).
    BinaryCrossEntropy,
    /// Independent binary cross-entropies, one per sigmoid output (multi-label).
    MultiLabelCrossEntropy,
    /// Categorical cross-entropy from a softmax output; class-index or one-hot targets.
    CategoricalCrossEntropy,
}

impl Loss {
    /// The snake-case name (`"categorical_cross_entropy"`), as used in model files.
    pub fn name(self) -> &'static str {
        match self {
            Loss::MeanSquaredError => "mse",
            Loss::BinaryCrossEntropy => "binary_cross_entropy",
            Loss::MultiLabelCrossEntropy => "multilabel_cross_entropy",
            Loss::CategoricalCrossEntropy => "categorical_cross_entropy",
        }
    }

    /// Parses a name as printed by [`Loss::name`], or a common alias.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().replace('-', "_").as_str() {
            "mse" | "mean_squared_error" => Loss::MeanSquaredError,
            "bce" | "binary" | "binary_cross_entropy" => Loss::BinaryCrossEntropy,
            "multilabel" | "multi_label" | "multilabel_cross_entropy" => {
                Loss::MultiLabelCrossEntropy
            }
            "ce" | "cross_entropy" | "categorical" | "categorical_cross_entropy" => {
                Loss::CategoricalCrossEntropy
            }
            _ => return None,
        })
    }

    /// The output activation this loss is fused with (`Identity` for MSE).
    pub fn output_activation(self) -> Activation {
        match self {
            Loss::MeanSquaredError => Activation::Identity,
            Loss::BinaryCrossEntropy | Loss::MultiLabelCrossEntropy => Activation::Sigmoid,
            Loss::CategoricalCrossEntropy => Activation::Softmax,
        }
    }

    /// The loss a network with this output layer uses when none is given.
    pub fn default_for(activation: Activation, width: usize) -> Option<Loss> {
        match activation {
            Activation::Softmax => Some(Loss::CategoricalCrossEntropy),
            Activation::Sigmoid if width == 1 => Some(Loss::BinaryCrossEntropy),
            Activation::Sigmoid => Some(Loss::MultiLabelCrossEntropy),
            Activation::Identity => Some(Loss::MeanSquaredError),
            Activation::Relu | Activation::Tanh => None,
        }
    }

    /// Checks that this loss can follow an output layer of `width` units with `activation`.
    ///
    /// # Errors
    /// [`Error::LossMismatch`] saying what would fit.
    pub fn check_output(self, activation: Activation, width: usize) -> Result<()> {
        let mismatch = |reason| {
            Err(Error::LossMismatch {
                loss: self.name(),
                activation: activation.name(),
                width,
                reason,
            })
        };
        match self {
            Loss::MeanSquaredError if activation == Activation::Softmax => mismatch(
                "MSE on softmax outputs is almost always a mistake; use categorical cross-entropy",
            ),
            Loss::MeanSquaredError => Ok(()),
            Loss::BinaryCrossEntropy if activation != Activation::Sigmoid => {
                mismatch("binary cross-entropy needs a sigmoid output layer")
            }
            Loss::BinaryCrossEntropy if width != 1 => mismatch(
                "binary cross-entropy needs exactly one output; use multi-label cross-entropy for several",
            ),
            Loss::MultiLabelCrossEntropy if activation != Activation::Sigmoid => {
                mismatch("multi-label cross-entropy needs a sigmoid output layer")
            }
            Loss::CategoricalCrossEntropy if activation != Activation::Softmax => {
                mismatch("categorical cross-entropy needs a softmax output layer")
            }
            Loss::CategoricalCrossEntropy if width < 2 => {
                mismatch("categorical cross-entropy needs at least two classes")
            }
            _ => Ok(()),
        }
    }

    /// Checks `targets` for this loss and an output `width`: row count, label
    /// range, finiteness, and the value range the loss accepts.
    ///
    /// # Errors
    /// [`Error::Shape`], [`Error::LabelOutOfRange`], [`Error::NonFinite`] or
    /// [`Error::InvalidTarget`], naming `context` and the offending row.
    pub fn check_targets(
        self,
        targets: &Targets<'_>,
        width: usize,
        rows: usize,
        context: &'static str,
    ) -> Result<()> {
        if targets.len() != rows {
            return Err(Error::Shape {
                context,
                expected: format!("{rows} targets (one per row of features)"),
                got: format!("{} targets", targets.len()),
            });
        }
        match targets {
            Targets::Classes(labels) => {
                let classes = if width == 1 { 2 } else { width };
                if let Some((row, &label)) = labels.iter().enumerate().find(|(_, l)| **l >= classes)
                {
                    return Err(Error::LabelOutOfRange {
                        context,
                        row,
                        label,
                        classes,
                    });
                }
            }
            Targets::Values(values) => {
                if values.ncols() != width {
                    return Err(Error::Shape {
                        context,
                        expected: shape_str(rows, width),
                        got: shape_str(values.nrows(), values.ncols()),
                    });
                }
                let probabilities = self != Loss::MeanSquaredError;
                for ((row, col), &value) in values.indexed_iter() {
                    if !value.is_finite() {
                        return Err(Error::NonFinite {
                            context,
                            row,
                            col,
                            value,
                        });
                    }
                    if probabilities && !(0.0..=1.0).contains(&value) {
                        return Err(Error::InvalidTarget {
                            context,
                            row,
                            col,
                            value,
                            reason: "cross-entropy targets must lie in [0, 1]",
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether accuracy is defined for this loss (every loss but MSE).
    pub fn is_classification(self) -> bool {
        self != Loss::MeanSquaredError
    }

    /// The loss and `dZ` from the logits `Z` of this loss's output activation
    /// (see [`Loss::output_activation`]), for the whole batch `Z`.
    ///
    /// This is the fused, numerically stable path the network trains with.
    ///
    /// # Errors
    /// [`Error::Shape`], [`Error::NonFinite`], [`Error::LabelOutOfRange`] or
    /// [`Error::InvalidTarget`] for bad inputs; [`Error::Empty`] for an empty batch.
    ///
    /// ```
    /// use feedforward::{Loss, Targets};
    /// let z = ndarray::array![[1e4f32, -1e4, 0.0]];
    /// let (loss, dz) = Loss::CategoricalCrossEntropy
    ///     .from_logits(z.view(), Targets::classes(&[1]))?;
    /// assert_eq!(loss, 2e4); // finite, no log(0)
    /// assert!(dz.iter().all(|g| g.is_finite()));
    /// # Ok::<(), feedforward::Error>(())
    /// ```
    pub fn from_logits(
        self,
        logits: ArrayView2<'_, f32>,
        targets: Targets<'_>,
    ) -> Result<(f32, Array2<f32>)> {
        let (m, k) = logits.dim();
        self.check_inputs(logits, targets, "Loss::from_logits")?;
        let act = self.output_activation();
        let z = logits.as_standard_layout().into_owned();
        let mut a = z.clone();
        act.forward_in_place(a.as_slice_mut().expect("standard layout"), k);
        let mut buf = TargetBuffer::default();
        buf.gather(&targets, None);
        let mut dz = Array2::zeros((m, k));
        let mut rows = vec![0.0; m];
        let loss = self.fused(
            act,
            z.as_slice().expect("standard layout"),
            a.as_slice().expect("standard layout"),
            buf.rows(),
            k,
            1.0 / m as f32,
            dz.as_slice_mut().expect("standard layout"),
            &mut rows,
        );
        Ok((loss as f32, dz))
    }

    /// The loss and `dA`, its gradient with respect to the outputs `A` themselves
    /// (probabilities for the cross-entropies), without fusing with an activation.
    ///
    /// Probabilities are clamped to `[1e-30, 1 − 1e-7]` before taking logs. Applying
    /// the output activation's backward to `dA` gives the fused `dZ` of
    /// [`Loss::from_logits`] up to rounding.
    ///
    /// # Errors
    /// As [`Loss::from_logits`].
    pub fn from_outputs(
        self,
        outputs: ArrayView2<'_, f32>,
        targets: Targets<'_>,
    ) -> Result<(f32, Array2<f32>)> {
        let (m, k) = outputs.dim();
        self.check_inputs(outputs, targets, "Loss::from_outputs")?;
        let mut buf = TargetBuffer::default();
        buf.gather(&targets, None);
        let y = buf.rows();
        let inv_m = 1.0 / m as f64;
        let (mut total, mut da) = (0.0f64, Array2::zeros((m, k)));
        for ((i, j), &a) in outputs.indexed_iter() {
            let (a, t) = (f64::from(a), f64::from(y.value(i, j, k)));
            let p = a.clamp(1e-30, 1.0 - 1e-7);
            let (l, g) = match self {
                Loss::MeanSquaredError => ((a - t).powi(2) / k as f64, 2.0 * (a - t) / k as f64),
                Loss::CategoricalCrossEntropy => (-t * p.ln(), -t / p),
                Loss::BinaryCrossEntropy | Loss::MultiLabelCrossEntropy => (
                    -(t * p.ln() + (1.0 - t) * (1.0 - p).ln()) / k as f64,
                    (p - t) / (p * (1.0 - p)) / k as f64,
                ),
            };
            total += l;
            da[[i, j]] = (g * inv_m) as f32;
        }
        Ok(((total * inv_m) as f32, da))
    }

    fn check_inputs(
        self,
        x: ArrayView2<'_, f32>,
        targets: Targets<'_>,
        context: &'static str,
    ) -> Result<()> {
        let (m, k) = x.dim();
        if m == 0 || k == 0 {
            return Err(Error::Empty(context));
        }
        if let Some(((row, col), &value)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(Error::NonFinite {
                context,
                row,
                col,
                value,
            });
        }
        self.check_output(self.output_activation(), k)
            .map_err(|_| Error::Shape {
                context,
                expected: format!("an output width that {} accepts", self.name()),
                got: shape_str(m, k),
            })?;
        self.check_targets(&targets, k, m, context)
    }

    /// The fused loss kernel: writes `dZ·` into `grad` (scaled by `inv_m`, the inverse
    /// of the number of rows the loss is averaged over) and returns the summed
    /// per-row losses times `inv_m`.
    ///
    /// `z` are the output layer's pre-activations and `a = act(z)` its outputs;
    /// `row_loss` is scratch with one slot per row. Deterministic: per-row losses
    /// are summed in row order.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn fused(
        self,
        act: Activation,
        z: &[f32],
        a: &[f32],
        y: TargetRows<'_>,
        width: usize,
        inv_m: f32,
        grad: &mut [f32],
        row_loss: &mut [f32],
    ) -> f64 {
        let k = width.max(1);
        let rows = grad.len() / k;
        let row_loss = &mut row_loss[..rows];
        let body = |first: usize, g: &mut [f32], l: &mut [f32]| {
            let n = l.len();
            let (z, a) = (
                &z[first * k..(first + n) * k],
                &a[first * k..(first + n) * k],
            );
            self.fused_rows(z, a, y.rows(first, n, k), k, inv_m, g, l);
        };
        let per_task = (1 << 13) / k + 1;
        if kernels::worth_parallel(grad.len()) {
            grad.par_chunks_mut(per_task * k)
                .zip(row_loss.par_chunks_mut(per_task))
                .enumerate()
                .for_each(|(t, (g, l))| body(t * per_task, g, l));
        } else {
            body(0, grad, row_loss);
        }
        if self == Loss::MeanSquaredError && act != Activation::Identity {
            act.backward_in_place(a, grad, k);
        }
        reduce::sum(row_loss) * f64::from(inv_m)
    }

    /// [`Loss::fused`] on a run of whole rows.
    #[allow(clippy::too_many_arguments)]
    fn fused_rows(
        self,
        z: &[f32],
        a: &[f32],
        y: TargetRows<'_>,
        k: usize,
        inv_m: f32,
        grad: &mut [f32],
        row_loss: &mut [f32],
    ) {
        let inv_k = 1.0 / k as f32;
        for (r, l) in row_loss.iter_mut().enumerate() {
            let (zr, ar) = (&z[r * k..(r + 1) * k], &a[r * k..(r + 1) * k]);
            let g = &mut grad[r * k..(r + 1) * k];
            match self {
                // The row's sum is taken in f64: k terms near f32::MAX (or
                // squares of differences past 1.8e19) would overflow in f32
                // where their mean does not.
                Loss::MeanSquaredError => {
                    let mut sum = 0.0f64;
                    for (j, (g, &a)) in g.iter_mut().zip(ar).enumerate() {
                        let d = a - y.value(r, j, k);
                        sum += f64::from(d) * f64::from(d);
                        // Scaled before doubling: 2·d overflows for |d| > f32::MAX / 2.
                        *g = d * inv_k * 2.0 * inv_m;
                    }
                    *l = (sum / k as f64) as f32;
                }
                Loss::BinaryCrossEntropy | Loss::MultiLabelCrossEntropy => {
                    let mut sum = 0.0f64;
                    for (j, ((g, &a), &z)) in g.iter_mut().zip(ar).zip(zr).enumerate() {
                        let t = y.value(r, j, k);
                        sum += f64::from(z.max(0.0) - z * t + (-z.abs()).exp().ln_1p());
                        *g = (a - t) * inv_k * inv_m;
                    }
                    *l = (sum / k as f64) as f32;
                }
                Loss::CategoricalCrossEntropy => {
                    let lse = log_sum_exp(zr);
                    match y {
                        TargetRows::Classes(c) => {
                            let c = c[r];
                            *l = lse - zr[c];
                            for (j, (g, &a)) in g.iter_mut().zip(ar).enumerate() {
                                *g = (a - f32::from(u8::from(j == c))) * inv_m;
                            }
                        }
                        TargetRows::Values(_) => {
                            let (mut sum, mut mass) = (0.0, 0.0);
                            for (j, &z) in zr.iter().enumerate() {
                                let t = y.value(r, j, k);
                                sum += t * (lse - z);
                                mass += t;
                            }
                            *l = sum;
                            for (j, (g, &a)) in g.iter_mut().zip(ar).enumerate() {
                                *g = (a * mass - y.value(r, j, k)) * inv_m;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Correct predictions and the number judged, for accuracy (`None` for MSE).
    ///
    /// Categorical: the arg-max class per row; binary: `a ≥ 0.5` per row;
    /// multi-label: `a ≥ 0.5` per element.
    pub(crate) fn correct(
        self,
        a: &[f32],
        y: TargetRows<'_>,
        width: usize,
    ) -> Option<(usize, usize)> {
        let k = width.max(1);
        let rows = a.len() / k;
        match self {
            Loss::MeanSquaredError => None,
            Loss::CategoricalCrossEntropy => {
                let hits = (0..rows)
                    .filter(|&r| {
                        let want = match y {
                            TargetRows::Classes(c) => c[r],
                            TargetRows::Values(v) => argmax(&v[r * k..(r + 1) * k]),
                        };
                        argmax(&a[r * k..(r + 1) * k]) == want
                    })
                    .count();
                Some((hits, rows))
            }
            Loss::BinaryCrossEntropy | Loss::MultiLabelCrossEntropy => {
                let mut hits = 0;
                for r in 0..rows {
                    for j in 0..k {
                        hits += usize::from((a[r * k + j] >= 0.5) == (y.value(r, j, k) >= 0.5));
                    }
                }
                Some((hits, rows * k))
            }
        }
    }
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Index of the largest value (the first, on ties).
pub(crate) fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = j;
        }
    }
    best
}
