//! [`NetworkBuilder`]: a network described layer by layer, checked, and given
//! its initial weights.

use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

use super::{InferenceScratch, Network, Penalty, Workspace};
use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::init::Init;
use crate::layers::{BatchNorm, Dense, Dropout, Layer};
use crate::loss::Loss;
use crate::optim::{Optimizer, OptimizerState, Segment};

/// A layer as the builder records it, before offsets are assigned.
#[derive(Debug, Clone, Copy)]
enum LayerSpec {
    Dense(usize, Activation),
    BatchNorm(Activation),
    Dropout(f32),
}

/// Describes a network layer by layer; [`NetworkBuilder::build`] checks and creates it.
#[derive(Debug, Clone)]
#[must_use]
pub struct NetworkBuilder {
    inputs: usize,
    specs: Vec<LayerSpec>,
    loss: Option<Loss>,
    optimizer: Optimizer,
    clip_grad_norm: Option<f32>,
    seed: u64,
    init: Init,
    penalty: Penalty,
}

impl NetworkBuilder {
    /// Appends a dense layer of `units` outputs followed by `activation`.
    pub fn dense(mut self, units: usize, activation: Activation) -> Self {
        self.specs.push(LayerSpec::Dense(units, activation));
        self
    }

    /// Appends batch normalisation over the previous layer's outputs, followed by
    /// `activation`. For the usual `dense → batch norm → ReLU`, write
    /// `.dense(n, Identity).batch_norm(Relu)`.
    pub fn batch_norm(mut self, activation: Activation) -> Self {
        self.specs.push(LayerSpec::BatchNorm(activation));
        self
    }

    /// Appends inverted dropout over the previous layer's outputs: in training
    /// each is zeroed with probability `rate` and the rest scaled by
    /// `1/(1 − rate)`; in inference it passes them through (see
    /// [`crate::layers::Dropout`]). `rate` must be in `[0, 1)`, and dropout
    /// cannot be the output layer.
    ///
    /// ```
    /// use feedforward::{Activation::*, Network};
    /// let net = Network::builder(4)
    ///     .dense(32, Relu)
    ///     .dropout(0.2)
    ///     .dense(3, Softmax)
    ///     .build()?;
    /// assert_eq!(net.layers().len(), 3);
    /// # Ok::<(), feedforward::Error>(())
    /// ```
    pub fn dropout(mut self, rate: f32) -> Self {
        self.specs.push(LayerSpec::Dropout(rate));
        self
    }

    /// The loss to train with. Defaults to the one that fits the output layer:
    /// softmax → categorical cross-entropy, one sigmoid → binary cross-entropy,
    /// several sigmoids → multi-label cross-entropy, identity → MSE.
    pub fn loss(mut self, loss: Loss) -> Self {
        self.loss = Some(loss);
        self
    }

    /// The optimizer (default: Adam, learning rate 1e-3).
    pub fn optimizer(mut self, optimizer: Optimizer) -> Self {
        self.optimizer = optimizer;
        self
    }

    /// Scales gradients so that their global L2 norm is at most `max_norm`.
    pub fn clip_grad_norm(mut self, max_norm: f32) -> Self {
        self.clip_grad_norm = Some(max_norm);
        self
    }

    /// L1 and L2 penalties on the dense layers' weights (see [`Penalty`]).
    pub fn penalty(mut self, penalty: Penalty) -> Self {
        self.penalty = penalty;
        self
    }

    /// Seed for the initial weights and for shuffling in [`Network::fit`] (default 42).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Weight initialisation scheme (default [`Init::Auto`]).
    pub fn init(mut self, init: Init) -> Self {
        self.init = init;
        self
    }

    /// The parameters the network would have, counted without allocating.
    ///
    /// ```
    /// use feedforward::{Activation::*, Network};
    /// let b = Network::builder(784).dense(512, Relu).dense(10, Softmax);
    /// assert_eq!(b.parameter_count()?, 784 * 512 + 512 + 512 * 10 + 10);
    /// assert!(Network::builder(1 << 40).dense(1 << 30, Relu).parameter_count().is_err());
    /// # Ok::<(), feedforward::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] naming the first layer past [`MAX_PARAMETERS`].
    pub fn parameter_count(&self) -> Result<usize> {
        let (mut width, mut total) = (self.inputs, 0usize);
        for (i, spec) in self.specs.iter().enumerate() {
            let count = match *spec {
                LayerSpec::Dense(units, _) => {
                    let count = width.checked_mul(units).and_then(|w| w.checked_add(units));
                    width = units;
                    count
                }
                LayerSpec::BatchNorm(_) => width.checked_mul(2),
                LayerSpec::Dropout(_) => Some(0),
            };
            total = match count.and_then(|c| total.checked_add(c)) {
                Some(t) if t <= MAX_PARAMETERS => t,
                _ => {
                    return Err(Error::Config(format!(
                        "layer {i}: the network would have more than {MAX_PARAMETERS} parameters"
                    )));
                }
            };
        }
        Ok(total)
    }

    /// Checks the description and creates the network with initialised weights.
    ///
    /// # Errors
    /// [`Error::Config`] for zero widths, no layers, bad optimizer settings or a
    /// loss that cannot be inferred; [`Error::LossMismatch`] when the loss does
    /// not fit the output layer.
    pub fn build(self) -> Result<Network> {
        if self.inputs == 0 {
            return Err(Error::Config("a network needs at least one input".into()));
        }
        if self.specs.is_empty() {
            return Err(Error::Config("a network needs at least one layer".into()));
        }
        self.optimizer.validate()?;
        let Penalty { l1, l2 } = self.penalty;
        if !(l1.is_finite() && l1 >= 0.0 && l2.is_finite() && l2 >= 0.0) {
            return Err(Error::Config(format!(
                "L1 and L2 penalties must be >= 0, got {l1} and {l2}"
            )));
        }
        if let Some(c) = self.clip_grad_norm
            && !(c.is_finite() && c > 0.0)
        {
            return Err(Error::Config(format!(
                "gradient clipping norm must be > 0, got {c}"
            )));
        }
        // Checked before anything is allocated: the widths may come from a
        // file written by a stranger. The sums below cannot overflow.
        self.parameter_count()?;
        let mut layers = Vec::with_capacity(self.specs.len());
        let (mut width, mut offset) = (self.inputs, 0);
        for (i, spec) in self.specs.iter().enumerate() {
            let layer = match *spec {
                LayerSpec::Dense(0, _) => {
                    return Err(Error::Config(format!(
                        "layer {i}: a dense layer needs at least one unit"
                    )));
                }
                LayerSpec::Dense(units, activation) => Layer::Dense(Dense {
                    inputs: width,
                    outputs: units,
                    activation,
                    offset,
                }),
                LayerSpec::BatchNorm(activation) => {
                    Layer::BatchNorm(BatchNorm::new(width, activation, offset))
                }
                LayerSpec::Dropout(rate) if !(0.0..1.0).contains(&rate) => {
                    return Err(Error::Config(format!(
                        "layer {i}: a dropout rate must be in [0, 1), got {rate}"
                    )));
                }
                LayerSpec::Dropout(_) if i + 1 == self.specs.len() => {
                    return Err(Error::Config(format!(
                        "layer {i}: dropout cannot be the output layer"
                    )));
                }
                LayerSpec::Dropout(rate) => Layer::Dropout(Dropout {
                    width,
                    rate,
                    offset,
                }),
            };
            width = layer.outputs();
            offset += layer.parameter_count();
            layers.push(layer);
        }
        let last = layers.last().expect("at least one layer");
        let (act, k) = (last.activation(), last.outputs());
        let loss = match self.loss {
            Some(l) => l,
            None => Loss::default_for(act, k).ok_or_else(|| {
                Error::Config(format!(
                    "no loss given, and none follows from a {act} output layer; call .loss(...)"
                ))
            })?,
        };
        loss.check_output(act, k)?;

        let mut params = vec![0.0; offset];
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(self.seed);
        for layer in &layers {
            match layer {
                Layer::Dense(d) => {
                    let w = &mut params[d.offset..d.offset + d.inputs * d.outputs];
                    self.init
                        .fill(w, d.inputs, d.outputs, d.activation, &mut rng);
                }
                Layer::BatchNorm(b) => params[b.offset..b.offset + b.width].fill(1.0),
                Layer::Dropout(_) => {}
            }
        }
        let n = params.len();
        Ok(Network {
            inputs: self.inputs,
            segments: segments(&layers),
            buckets: super::exchange::plan(&layers, n),
            penalty_weights: self.penalty,
            layers,
            loss,
            grads: vec![0.0; n],
            params,
            optimizer: self.optimizer,
            opt_state: OptimizerState::default(),
            clip_grad_norm: self.clip_grad_norm,
            seed: self.seed,
            ws: Workspace::default(),
            scratch: InferenceScratch::default(),
            precision: crate::Precision::F32,
        })
    }
}

/// The most parameters a network may have: their bytes must be addressable
/// (`isize::MAX`), with room for the gradients and optimizer moments beside.
pub const MAX_PARAMETERS: usize = isize::MAX as usize / 16;

/// The layer-wise runs of the parameters: each dense layer's weights
/// (adapted by LARS and LAMB) and bias, each batch-norm layer's γ and β.
fn segments(layers: &[Layer]) -> Vec<Segment> {
    let mut out = Vec::new();
    for layer in layers {
        match layer {
            Layer::Dense(d) => {
                let w = d.inputs * d.outputs;
                out.push(Segment {
                    start: d.offset,
                    len: w,
                    adapt: true,
                });
                out.push(Segment {
                    start: d.offset + w,
                    len: d.outputs,
                    adapt: false,
                });
            }
            Layer::BatchNorm(b) => {
                out.push(Segment {
                    start: b.offset,
                    len: 2 * b.width,
                    adapt: false,
                });
            }
            Layer::Dropout(_) => {}
        }
    }
    out
}

impl Network {
    /// Starts describing a network whose samples have `inputs` features.
    pub fn builder(inputs: usize) -> NetworkBuilder {
        NetworkBuilder {
            inputs,
            specs: Vec::new(),
            loss: None,
            optimizer: Optimizer::default(),
            clip_grad_norm: None,
            seed: 42,
            init: Init::Auto,
            penalty: Penalty::default(),
        }
    }
}
