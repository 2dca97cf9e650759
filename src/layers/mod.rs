//! The layers a network is built from. Each is a transform followed by an activation.
//!
//! Parameters do not live in the layers: a network keeps all of them in one flat
//! buffer (and the gradients in another of the same layout), so the optimizer is a
//! single fused pass. A layer knows its offset into those buffers.

mod batch_norm;
mod dense;

pub use batch_norm::BatchNorm;
pub use dense::Dense;

use crate::activation::Activation;

/// One layer of a [`crate::Network`].
#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
    /// A fully connected layer: `Z = A·W + b`.
    Dense(Dense),
    /// Batch normalisation: `Z = γ ⊙ (A − μ)/√(σ² + ε) + β`.
    BatchNorm(BatchNorm),
}

impl Layer {
    /// Input width.
    pub fn inputs(&self) -> usize {
        match self {
            Layer::Dense(d) => d.inputs,
            Layer::BatchNorm(b) => b.width,
        }
    }

    /// Output width.
    pub fn outputs(&self) -> usize {
        match self {
            Layer::Dense(d) => d.outputs,
            Layer::BatchNorm(b) => b.width,
        }
    }

    /// The activation applied to the layer's output.
    pub fn activation(&self) -> Activation {
        match self {
            Layer::Dense(d) => d.activation,
            Layer::BatchNorm(b) => b.activation,
        }
    }

    /// Number of trainable parameters.
    pub fn parameter_count(&self) -> usize {
        match self {
            Layer::Dense(d) => d.parameter_count(),
            Layer::BatchNorm(b) => b.parameter_count(),
        }
    }

    /// Offset of this layer's parameters in the network's flat parameter buffer.
    pub fn offset(&self) -> usize {
        match self {
            Layer::Dense(d) => d.offset,
            Layer::BatchNorm(b) => b.offset,
        }
    }

    /// The input gradient `dX` for the rows `range` of a backward pass over `rows`
    /// rows, from this layer's `dz` (`rows × outputs`, through the activation) and
    /// what [`Layer`]'s backward left in `cache`; into `dx` (`range.len() × inputs`).
    ///
    /// Blocks of rows let the network turn `dX` straight into the layer below's
    /// `dZ` over that layer's outputs, with scratch for one block only.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn input_gradient(
        &self,
        params: &[f32],
        dz: &[f32],
        cache: &LayerCache,
        rows: usize,
        range: std::ops::Range<usize>,
        dx: &mut [f32],
        whole_batch: Option<usize>,
    ) {
        match self {
            Layer::Dense(d) => {
                let block = &dz[range.start * d.outputs..range.end * d.outputs];
                d.input_gradient(params, block, range.len(), dx);
            }
            Layer::BatchNorm(b) => {
                b.input_gradient(params, dz, cache, rows, range, dx, whole_batch);
            }
        }
    }

    /// Multiply-adds per sample in the forward pass (dense layers only).
    pub(crate) fn macs(&self) -> usize {
        match self {
            Layer::Dense(d) => d.inputs * d.outputs,
            Layer::BatchNorm(_) => 0,
        }
    }
}

/// What a layer keeps from its forward pass for its backward pass, besides its output.
#[derive(Debug, Clone, Default)]
pub(crate) struct LayerCache {
    /// Batch norm: the normalised input `x̂` (rows × width).
    pub x_hat: Vec<f32>,
    /// Batch norm: `1/√(σ² + ε)` per column.
    pub inv_std: Vec<f32>,
    /// Batch norm: batch mean per column (scratch for the statistics).
    pub mean: Vec<f32>,
    /// Batch norm: batch variance per column.
    pub var: Vec<f32>,
    /// Batch norm: this batch's `Σ dY` and `Σ dY ⊙ x̂` per column.
    pub sum_dy: Vec<f32>,
    /// See `sum_dy`.
    pub sum_dy_xhat: Vec<f32>,
    /// Batch norm under exact micro-batching: `Σ dY` over the whole logical batch.
    pub total_sum_dy: Vec<f32>,
    /// See `total_sum_dy`: `Σ dY ⊙ x̂` over the whole logical batch.
    pub total_sum_dy_xhat: Vec<f32>,
    /// Batch norm under exact micro-batching: rows, mean and `Σ (x − mean)²` of
    /// the whole batch so far, merged chunk by chunk (Chan et al.), in `f64`.
    pub stats_rows: usize,
    /// See `stats_rows`.
    pub stats_mean: Vec<f64>,
    /// See `stats_rows`.
    pub stats_m2: Vec<f64>,
    /// Scratch: the current chunk's mean and `Σ (x − mean)²`.
    pub chunk_mean: Vec<f64>,
    /// See `chunk_mean`.
    pub chunk_m2: Vec<f64>,
}

impl LayerCache {
    /// Sizes the cache for `rows` rows of `layer`.
    pub(crate) fn reserve(&mut self, layer: &Layer, rows: usize) {
        if let Layer::BatchNorm(b) = layer {
            resize(&mut self.x_hat, rows * b.width);
            for v in [
                &mut self.inv_std,
                &mut self.mean,
                &mut self.var,
                &mut self.sum_dy,
                &mut self.sum_dy_xhat,
                &mut self.total_sum_dy,
                &mut self.total_sum_dy_xhat,
            ] {
                resize(v, b.width);
            }
            for v in [
                &mut self.stats_mean,
                &mut self.stats_m2,
                &mut self.chunk_mean,
                &mut self.chunk_m2,
            ] {
                if v.len() < b.width {
                    v.resize(b.width, 0.0);
                }
            }
        }
    }
}

/// Grows `v` to at least `len` (never shrinks, so a smaller batch reuses the buffer).
pub(crate) fn resize(v: &mut Vec<f32>, len: usize) {
    if v.len() < len {
        v.resize(len, 0.0);
    }
}
