//! The layers a network is built from. Each is a transform followed by an activation
//! (dropout's is the identity).
//!
//! Parameters do not live in the layers: a network keeps all of them in one flat
//! buffer (and the gradients in another of the same layout), so the optimizer is a
//! single fused pass. A layer knows its offset into those buffers.

mod batch_norm;
mod dense;
mod dropout;

pub use batch_norm::BatchNorm;
pub(crate) use batch_norm::BatchNormCache;
pub use dense::Dense;
pub use dropout::Dropout;
pub(crate) use dropout::MaskKey;

use crate::activation::Activation;

/// One layer of a [`crate::Network`]. New kinds of layer may be added, so a
/// `match` outside the crate needs a `_` arm.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Layer {
    /// A fully connected layer: `Z = A·W + b`.
    Dense(Dense),
    /// Batch normalisation: `Z = γ ⊙ (A − μ)/√(σ² + ε) + β`.
    BatchNorm(BatchNorm),
    /// Inverted dropout: `Z = X ⊙ M / (1 − p)` in training, `Z = X` in inference.
    Dropout(Dropout),
}

impl Layer {
    /// Input width.
    pub fn inputs(&self) -> usize {
        match self {
            Layer::Dense(d) => d.inputs,
            Layer::BatchNorm(b) => b.width,
            Layer::Dropout(d) => d.width,
        }
    }

    /// Output width.
    pub fn outputs(&self) -> usize {
        match self {
            Layer::Dense(d) => d.outputs,
            Layer::BatchNorm(b) => b.width,
            Layer::Dropout(d) => d.width,
        }
    }

    /// The activation applied to the layer's output.
    pub fn activation(&self) -> Activation {
        match self {
            Layer::Dense(d) => d.activation,
            Layer::BatchNorm(b) => b.activation,
            Layer::Dropout(_) => Activation::Identity,
        }
    }

    /// Number of trainable parameters.
    pub fn parameter_count(&self) -> usize {
        match self {
            Layer::Dense(d) => d.parameter_count(),
            Layer::BatchNorm(b) => b.parameter_count(),
            Layer::Dropout(_) => 0,
        }
    }

    /// Offset of this layer's parameters in the network's flat parameter buffer.
    pub fn offset(&self) -> usize {
        match self {
            Layer::Dense(d) => d.offset,
            Layer::BatchNorm(b) => b.offset,
            Layer::Dropout(d) => d.offset,
        }
    }

    /// Multiply-adds per sample in the forward pass (dense layers only).
    pub(crate) fn macs(&self) -> usize {
        match self {
            Layer::Dense(d) => d.inputs * d.outputs,
            Layer::BatchNorm(_) | Layer::Dropout(_) => 0,
        }
    }
}

/// Grows `v` to at least `len` (never shrinks, so a smaller batch reuses the buffer).
pub(crate) fn resize(v: &mut Vec<f32>, len: usize) {
    if v.len() < len {
        v.resize(len, 0.0);
    }
}
