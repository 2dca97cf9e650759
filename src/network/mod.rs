//! The network: layers, their parameters, a loss, an optimizer and a workspace.
//!
//! All parameters live in one flat buffer and all gradients in another with the
//! same layout; each layer knows its offset. The workspace holds every buffer a
//! training step needs, sized for the largest batch seen so far, so once a network
//! has seen its batch size a training step allocates nothing.
//!
//! - [`builder`]: [`NetworkBuilder`], which checks a description and initialises weights;
//! - this file: [`Network`], its accessors, [`Snapshot`]s of its state;
//! - `workspace`: the training buffers and the one formula for their size;
//! - `step`: the training step (forward, loss, backward, update) over a whole
//!   batch or in micro-batches, and the state machine between those calls;
//! - `passes`: the layer-by-layer forward and backward passes the step runs;
//! - `whole_batch`: exact batch norm over chunks, shards and processes;
//! - `shards`: a batch's fixed split into shards and their gradients' sum in a
//!   fixed tree (the same bits on any number of processes);
//! - `infer`: inference (`predict`, `evaluate`);
//! - `checks`: the checks of user input and the errors they give.

use std::fmt;

use ndarray::{ArrayView1, ArrayView2};

use crate::error::{Error, Result, shape_str};
use crate::layers::Layer;
use crate::loss::Loss;
use crate::optim::{Optimizer, OptimizerState};
use crate::precision::Precision;

pub mod builder;
mod checks;
mod exchange;
mod infer;
mod passes;
mod penalty;
mod shards;
mod snapshot;
mod step;
mod whole_batch;
mod workspace;

pub use builder::{MAX_PARAMETERS, NetworkBuilder};
pub use infer::{Evaluation, Predictor};
pub use penalty::Penalty;
pub use snapshot::Snapshot;
pub use step::BatchNormMode;
pub(crate) use step::Split;

use infer::InferenceScratch;
use workspace::Workspace;

/// A multi-layer perceptron with its loss, optimizer and training buffers.
///
/// Build one with [`Network::builder`]. Inputs are `ArrayView2<f32>` with one
/// sample per row; outputs are `Array2<f32>`.
///
/// ```
/// use feedforward::{Activation::*, Network, Optimizer};
/// let mut net = Network::builder(2)
///     .dense(16, Relu)
///     .dense(3, Softmax)
///     .optimizer(Optimizer::adam(1e-2))
///     .seed(7)
///     .build()?;
/// let x = ndarray::array![[0.5f32, -1.0], [1.0, 0.25]];
/// let loss = net.train_step(x.view(), [2usize, 0].as_slice().into())?;
/// assert!(loss > 0.0);
/// assert_eq!(net.predict_proba(x.view())?.dim(), (2, 3));
/// # Ok::<(), feedforward::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Network {
    inputs: usize,
    layers: Vec<Layer>,
    loss: Loss,
    params: Vec<f32>,
    grads: Vec<f32>,
    optimizer: Optimizer,
    opt_state: OptimizerState,
    clip_grad_norm: Option<f32>,
    seed: u64,
    ws: Workspace,
    scratch: InferenceScratch,
    /// The parameters' layer-wise runs, for LARS, LAMB and the penalty.
    segments: Vec<crate::optim::Segment>,
    /// The gradients' buckets for the exchange between processes, top down.
    buckets: Vec<exchange::Bucket>,
    /// L1/L2 penalty on the weights.
    penalty_weights: Penalty,
    /// How the dense layers multiply.
    precision: Precision,
}

impl Network {
    /// How the dense layers' products are computed ([`Precision::F32`] unless set).
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Makes every later product (training and inference) run in `precision`.
    /// The parameters stay `f32`; see [`Precision`].
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
    }

    /// Input width.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Output width.
    pub fn outputs(&self) -> usize {
        self.layers.last().map_or(0, Layer::outputs)
    }

    /// The layers, input to output.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Mutable access to the layers, for the model reader.
    pub(crate) fn layers_mut(&mut self) -> &mut [Layer] {
        &mut self.layers
    }

    /// The loss the network trains with.
    pub fn loss(&self) -> Loss {
        self.loss
    }

    /// The optimizer.
    pub fn optimizer(&self) -> &Optimizer {
        &self.optimizer
    }

    /// Replaces the optimizer; its state is reset when the kind changes.
    ///
    /// # Errors
    /// [`Error::Config`] for out-of-range settings.
    pub fn set_optimizer(&mut self, optimizer: Optimizer) -> Result<()> {
        optimizer.validate()?;
        if std::mem::discriminant(&optimizer) != std::mem::discriminant(&self.optimizer) {
            self.opt_state = OptimizerState::default();
        }
        self.optimizer = optimizer;
        Ok(())
    }

    /// Sets the learning rate and keeps the optimizer's state (what a schedule
    /// does before each step). 0 is allowed: a schedule may reach it.
    ///
    /// # Errors
    /// [`Error::Config`] for a rate that is negative or not finite.
    pub fn set_learning_rate(&mut self, lr: f32) -> Result<()> {
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(Error::Config(format!(
                "learning rate must be finite and >= 0, got {lr}"
            )));
        }
        self.optimizer.set_learning_rate(lr);
        Ok(())
    }

    /// The optimizer's state (step count and moments).
    pub fn optimizer_state(&self) -> &OptimizerState {
        &self.opt_state
    }

    /// Replaces the optimizer's state (to resume training).
    ///
    /// # Errors
    /// [`Error::Shape`] when the moments do not have one value per parameter.
    pub fn set_optimizer_state(&mut self, state: OptimizerState) -> Result<()> {
        let n = self.params.len();
        for (what, v) in [
            ("first moment", &state.first),
            ("second moment", &state.second),
            ("third moment", &state.third),
        ] {
            if !v.is_empty() && v.len() != n {
                return Err(Error::Shape {
                    context: "set_optimizer_state",
                    expected: format!("{n} values ({what})"),
                    got: format!("{}", v.len()),
                });
            }
        }
        self.opt_state = state;
        Ok(())
    }

    /// The L1/L2 penalty on the weights (none by default).
    pub fn penalty_weights(&self) -> Penalty {
        self.penalty_weights
    }

    /// Gradient-norm clipping threshold, if any.
    pub fn clip_grad_norm(&self) -> Option<f32> {
        self.clip_grad_norm
    }

    /// The seed the network was built with.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Number of trainable parameters.
    pub fn parameter_count(&self) -> usize {
        self.params.len()
    }

    /// All parameters, layer after layer (`W` row-major then `b`; `γ` then `β`).
    pub fn parameters(&self) -> &[f32] {
        &self.params
    }

    /// Mutable access to all parameters.
    pub fn parameters_mut(&mut self) -> &mut [f32] {
        &mut self.params
    }

    /// The gradients of the last [`Network::backward`], laid out like [`Network::parameters`].
    pub fn gradients(&self) -> &[f32] {
        &self.grads
    }

    /// Multiply-adds per sample of one forward pass through the dense layers.
    pub fn macs_per_sample(&self) -> usize {
        self.layers.iter().map(Layer::macs).sum()
    }

    /// The weights `W` (`n_in × n_out`) and bias `b` of dense layer `layer`.
    ///
    /// # Errors
    /// [`Error::Config`] when `layer` is out of range or not a dense layer.
    pub fn dense_parameters(
        &self,
        layer: usize,
    ) -> Result<(ArrayView2<'_, f32>, ArrayView1<'_, f32>)> {
        match self.layers.get(layer) {
            Some(Layer::Dense(d)) => {
                let (w, b) = d.split(&self.params);
                let w = ArrayView2::from_shape((d.inputs, d.outputs), w)
                    .expect("sized by construction");
                Ok((w, ArrayView1::from(b)))
            }
            _ => Err(Error::Config(format!("layer {layer} is not a dense layer"))),
        }
    }

    /// Sets the weights (`n_in × n_out`) and bias of dense layer `layer`.
    ///
    /// # Errors
    /// [`Error::Config`] for a layer that is not dense, [`Error::Shape`] for
    /// wrong shapes, [`Error::NonFinite`] for NaN or infinite values.
    pub fn set_dense_parameters(
        &mut self,
        layer: usize,
        w: ArrayView2<'_, f32>,
        b: ArrayView1<'_, f32>,
    ) -> Result<()> {
        let d = match self.layers.get(layer) {
            Some(Layer::Dense(d)) => d.clone(),
            _ => return Err(Error::Config(format!("layer {layer} is not a dense layer"))),
        };
        if w.dim() != (d.inputs, d.outputs) || b.len() != d.outputs {
            return Err(Error::Shape {
                context: "set_dense_parameters",
                expected: format!(
                    "W {} and b of {}",
                    shape_str(d.inputs, d.outputs),
                    d.outputs
                ),
                got: format!("W {} and b of {}", shape_str(w.nrows(), w.ncols()), b.len()),
            });
        }
        if let Some(((row, col), &value)) = w.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(Error::NonFinite {
                context: "set_dense_parameters: W",
                row,
                col,
                value,
            });
        }
        if let Some((col, &value)) = b.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(Error::NonFinite {
                context: "set_dense_parameters: b",
                row: 0,
                col,
                value,
            });
        }
        let (ws, bs) = d.split_mut(&mut self.params);
        for (dst, src) in ws.iter_mut().zip(w.iter()) {
            *dst = *src;
        }
        for (dst, src) in bs.iter_mut().zip(b.iter()) {
            *dst = *src;
        }
        Ok(())
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "input: {} features", self.inputs)?;
        for (i, layer) in self.layers.iter().enumerate() {
            let kind = match layer {
                Layer::Dense(_) => "dense",
                Layer::BatchNorm(_) => "batch_norm",
                Layer::Dropout(_) => "dropout",
            };
            writeln!(
                f,
                "layer {i}: {kind:<10} {:>6} -> {:<6} {:<8} {} parameters",
                layer.inputs(),
                layer.outputs(),
                layer.activation().name(),
                layer.parameter_count()
            )?;
        }
        write!(
            f,
            "loss: {}; optimizer: {}; {} parameters",
            self.loss,
            self.optimizer.name(),
            self.parameter_count()
        )
    }
}
