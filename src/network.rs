//! The network: layers, their parameters, a loss, an optimizer and a workspace.
//!
//! All parameters live in one flat buffer and all gradients in another with the
//! same layout; each layer knows its offset. The workspace holds every buffer a
//! training step needs, sized for the largest batch seen so far, so once a network
//! has seen its batch size a training step allocates nothing.

use std::fmt;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

use crate::activation::Activation;
use crate::error::{Error, Result, shape_str};
use crate::init::Init;
use crate::kernels;
use crate::layers::{BatchNorm, Dense, Layer, LayerCache, resize};
use crate::loss::{Loss, argmax};
use crate::optim::{self, Optimizer, OptimizerState};
use crate::targets::{TargetBuffer, TargetRows, Targets};

/// Rows per pass in inference, so that predicting on a large set keeps memory flat.
const INFERENCE_ROWS: usize = 4096;

/// Floats of scratch for one block of an input gradient (8 MiB): large enough
/// that each block is an efficient product (512 rows of a 4096-wide layer), small
/// beside the activations it saves a copy of.
pub(crate) const DX_BLOCK_FLOATS: usize = 1 << 21;

/// The error for a NaN or infinity at `(row, col)` of the features.
fn non_finite(context: &'static str, (row, col, value): (usize, usize, f32)) -> Error {
    Error::NonFinite {
        context,
        row,
        col,
        value,
    }
}

impl Workspace {
    /// Rows per block of an input gradient `n_in` wide in a pass over `rows` rows.
    fn dx_block_rows(&self, rows: usize, n_in: usize) -> usize {
        let floats = self.dx_block_floats.unwrap_or(DX_BLOCK_FLOATS);
        (floats / n_in.max(1)).clamp(1, rows.max(1))
    }
}

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
    pub(crate) ws: Workspace,
    scratch: InferenceScratch,
}

/// Reusable buffers for inference, which runs on `&self`: taken under a lock when
/// free, otherwise a caller allocates its own.
#[derive(Debug, Default)]
struct InferenceScratch(std::sync::Mutex<Vec<f32>>);

impl Clone for InferenceScratch {
    fn clone(&self) -> Self {
        InferenceScratch::default()
    }
}

/// Buffers for one training step, sized for `capacity` rows.
#[derive(Debug, Clone, Default)]
pub(crate) struct Workspace {
    capacity: usize,
    pub(crate) input: Vec<f32>,
    pub(crate) outputs: Vec<Vec<f32>>,
    pub(crate) logits: Vec<f32>,
    pub(crate) caches: Vec<LayerCache>,
    /// `dZ` of the output layer (`rows × outputs`).
    pub(crate) grad_a: Vec<f32>,
    /// One block of rows of the input gradient being computed (see
    /// [`Workspace::dx_block_rows`]): it goes straight into the layer below's `dZ`.
    pub(crate) dx_block: Vec<f32>,
    /// Floats of `dx_block` (`None`: [`DX_BLOCK_FLOATS`]; tests set small blocks).
    pub(crate) dx_block_floats: Option<usize>,
    pub(crate) row_loss: Vec<f32>,
    pub(crate) targets: TargetBuffer,
    /// `0, 1, 2, …`: row indices for a step over a whole batch in order.
    pub(crate) row_order: Vec<usize>,
    /// Rows in the last forward pass, if it has not been consumed by a backward pass.
    pub(crate) forward_rows: Option<usize>,
    /// Whether `grads` hold gradients not yet applied by `step`.
    pub(crate) grads_ready: bool,
}

/// A layer as the builder records it, before offsets are assigned.
#[derive(Debug, Clone, Copy)]
enum LayerSpec {
    Dense(usize, Activation),
    BatchNorm(Activation),
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
        if let Some(c) = self.clip_grad_norm
            && !(c.is_finite() && c > 0.0)
        {
            return Err(Error::Config(format!(
                "gradient clipping norm must be > 0, got {c}"
            )));
        }
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
            }
        }
        let n = params.len();
        Ok(Network {
            inputs: self.inputs,
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
        })
    }
}

/// Loss and accuracy of a network on a data set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Mean loss over the samples.
    pub loss: f32,
    /// Fraction classified correctly (`None` for regression).
    pub accuracy: Option<f32>,
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
        }
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

    /// Mutable access to the layers (e.g. to restore batch-norm running statistics).
    pub fn layers_mut(&mut self) -> &mut [Layer] {
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

    /// Checks a feature matrix's shape: `inputs` columns, at least one row.
    fn check_feature_shape(&self, x: &ArrayView2<'_, f32>, context: &'static str) -> Result<()> {
        if x.nrows() == 0 {
            return Err(Error::Empty(context));
        }
        if x.ncols() != self.inputs {
            return Err(Error::Shape {
                context,
                expected: format!("{} columns (the network's inputs)", self.inputs),
                got: shape_str(x.nrows(), x.ncols()),
            });
        }
        Ok(())
    }

    /// Checks a feature matrix: `inputs` columns, at least one row, all finite.
    pub(crate) fn check_features(
        &self,
        x: &ArrayView2<'_, f32>,
        context: &'static str,
    ) -> Result<()> {
        self.check_feature_shape(x, context)?;
        match kernels::first_non_finite_in(x) {
            Some(bad) => Err(non_finite(context, bad)),
            None => Ok(()),
        }
    }

    /// Whether the first layer's product vouches for its input being finite, so
    /// that the input need only be scanned when the product says otherwise (see
    /// [`crate::gemm::Epilogue`]): a dense first layer. The scan would otherwise read
    /// the whole batch from memory once more before the product reads it.
    fn scans_input_lazily(&self) -> bool {
        matches!(self.layers.first(), Some(Layer::Dense(_)))
    }

    /// The checks of a feature matrix that a pass must make before it starts:
    /// its shape, and its values too unless the first layer vouches for them.
    fn check_features_up_front(
        &self,
        x: &ArrayView2<'_, f32>,
        context: &'static str,
    ) -> Result<()> {
        if self.scans_input_lazily() {
            self.check_feature_shape(x, context)
        } else {
            self.check_features(x, context)
        }
    }

    /// Sizes the workspace for `rows` rows (grows only).
    pub(crate) fn reserve(&mut self, rows: usize) {
        let k = self.outputs();
        if rows <= self.ws.capacity {
            return;
        }
        self.ws.capacity = rows;
        // Input gradients are needed for every layer but the first, a block of
        // rows at a time.
        let dx_block = self
            .layers
            .iter()
            .skip(1)
            .map(|l| self.ws.dx_block_rows(rows, l.inputs()) * l.inputs())
            .max()
            .unwrap_or(0);
        let keeps_logits = self.keeps_logits();
        let ws = &mut self.ws;
        ws.outputs.resize_with(self.layers.len(), Vec::new);
        ws.caches
            .resize_with(self.layers.len(), LayerCache::default);
        for ((out, cache), layer) in ws.outputs.iter_mut().zip(&mut ws.caches).zip(&self.layers) {
            resize(out, rows * layer.outputs());
            cache.reserve(layer, rows);
        }
        if keeps_logits {
            resize(&mut ws.logits, rows * k);
        }
        resize(&mut ws.grad_a, rows * k);
        resize(&mut ws.dx_block, dx_block);
        resize(&mut ws.row_loss, rows);
        self.opt_state.reserve(&self.optimizer, self.params.len());
        #[cfg(not(feature = "blas"))]
        crate::gemm::reserve_buffers();
    }

    /// Whether the output layer's activation is applied after keeping its logits.
    fn keeps_logits(&self) -> bool {
        self.layers
            .last()
            .is_some_and(|l| l.activation() != Activation::Identity)
    }

    /// Copies `x` into the workspace input (sized on first use).
    pub(crate) fn copy_input(&mut self, x: &ArrayView2<'_, f32>) {
        let len = x.nrows() * self.inputs;
        resize(&mut self.ws.input, len);
        let dst = &mut self.ws.input[..len];
        match x.as_slice() {
            Some(s) => dst.copy_from_slice(s),
            None => dst.iter_mut().zip(x.iter()).for_each(|(d, s)| *d = *s),
        }
    }

    /// Training-mode forward pass through layers `0..upto` over `rows` rows of
    /// `input` (`None`: the workspace input). With `fixed_stats`, batch norm uses
    /// the whole-batch statistics already in its cache.
    ///
    /// Returns the first NaN or infinity of the input, `(row, col, value)`, if
    /// there is one and a dense first layer found it; the pass then stops after
    /// that layer, before any layer that keeps statistics.
    #[must_use]
    pub(crate) fn forward_layers(
        &mut self,
        input: Option<&[f32]>,
        rows: usize,
        upto: usize,
        fixed_stats: bool,
    ) -> Option<(usize, usize, f32)> {
        let n_in = self.inputs;
        let keep_logits = self.keeps_logits();
        let n_layers = self.layers.len();
        let Network {
            layers, params, ws, ..
        } = self;
        let input = input.unwrap_or(&ws.input);
        for (l, layer) in layers.iter_mut().enumerate().take(upto) {
            let (before, after) = ws.outputs.split_at_mut(l);
            let x: &[f32] = if l == 0 { input } else { &before[l - 1] };
            let out = &mut after[0];
            let last = l + 1 == n_layers;
            let activate = !(last && keep_logits);
            let finite = match layer {
                Layer::Dense(d) => d.forward(params, x, out, rows, activate),
                Layer::BatchNorm(b) => {
                    b.forward(
                        params,
                        x,
                        out,
                        rows,
                        &mut ws.caches[l],
                        activate,
                        fixed_stats,
                    );
                    true
                }
            };
            // Not finite: a NaN or ∞ in the input, or an overflow (which is not
            // an input error); only the scan tells them apart.
            if l == 0 && !finite {
                let bad = kernels::first_non_finite(&input[..rows * n_in], n_in);
                if bad.is_some() {
                    ws.forward_rows = None;
                    return bad;
                }
            }
            if last && keep_logits {
                let k = layer.outputs();
                ws.logits[..rows * k].copy_from_slice(&out[..rows * k]);
                layer.activation().forward_in_place(&mut out[..rows * k], k);
            }
        }
        ws.forward_rows = (upto == n_layers).then_some(rows);
        None
    }

    /// [`Network::forward_layers`] on features already checked for NaN and infinity.
    pub(crate) fn forward_checked(
        &mut self,
        input: Option<&[f32]>,
        rows: usize,
        upto: usize,
        fixed_stats: bool,
    ) {
        let bad = self.forward_layers(input, rows, upto, fixed_stats);
        debug_assert!(bad.is_none(), "the features were checked");
    }

    /// The loss of the last forward pass against the targets in the workspace, and
    /// `dZ` of the output layer (scaled by `inv_m`) into `grad_a`.
    pub(crate) fn loss_workspace(&mut self, rows: usize, inv_m: f32) -> f64 {
        self.loss_of(None, rows, inv_m)
    }

    /// [`Network::loss_workspace`] against `targets` (`None`: those gathered in
    /// the workspace).
    fn loss_of(&mut self, targets: Option<TargetRows<'_>>, rows: usize, inv_m: f32) -> f64 {
        let last = self.layers.last().expect("at least one layer");
        let (act, k) = (last.activation(), last.outputs());
        let ws = &mut self.ws;
        let a = &ws.outputs[self.layers.len() - 1][..rows * k];
        let z = if self
            .layers
            .last()
            .is_some_and(|l| l.activation() != Activation::Identity)
        {
            &ws.logits[..rows * k]
        } else {
            a
        };
        self.loss.fused(
            act,
            z,
            a,
            targets.unwrap_or_else(|| ws.targets.rows()),
            k,
            inv_m,
            &mut ws.grad_a[..rows * k],
            &mut ws.row_loss,
        )
    }

    /// Backward pass from `dZ` of the output layer in `grad_a` down to layer
    /// `stop_at` (whose input gradient is not computed); `input` is the forward
    /// pass's (`None`: the workspace input). With `accumulate`, gradients are added
    /// to the existing ones. With `whole_batch = Some(m)`, batch norm's input
    /// gradient uses the sums over a whole batch of `m` rows kept in its cache
    /// (exact micro-batching).
    pub(crate) fn backward_layers(
        &mut self,
        input: Option<&[f32]>,
        rows: usize,
        accumulate: bool,
        stop_at: usize,
        whole_batch: Option<usize>,
    ) {
        let n_layers = self.layers.len();
        let Network {
            layers,
            params,
            grads,
            ws,
            ..
        } = self;
        // dZ of the output layer is in `grad_a`. Below it, each layer's dZ
        // overwrites its own outputs: once the layer above has its weight
        // gradient, those outputs are needed only for the activation's derivative,
        // which reads each element just before it is replaced. So the input
        // gradient is made a block of rows at a time, and each block turned into
        // dZ of the layer below at once: scratch for one block, not a batch.
        let input = input.unwrap_or(&ws.input);
        for l in (stop_at..n_layers).rev() {
            let layer = &layers[l];
            let (n_in, n_out) = (layer.inputs(), layer.outputs());
            let block = ws.dx_block_rows(rows, n_in);
            let (below, here) = ws.outputs.split_at_mut(l);
            let dz: &[f32] = if l + 1 == n_layers {
                &ws.grad_a[..rows * n_out]
            } else {
                &here[0][..rows * n_out]
            };
            match layer {
                Layer::Dense(d) => {
                    let x: &[f32] = if l == 0 { input } else { &below[l - 1] };
                    d.backward(x, dz, rows, grads, accumulate);
                }
                Layer::BatchNorm(b) => b.backward(dz, rows, grads, &mut ws.caches[l], accumulate),
            }
            // The lowest layer's input gradient is never needed.
            if l == stop_at {
                continue;
            }
            let below_activation = layers[l - 1].activation();
            let a = &mut below[l - 1];
            for start in (0..rows).step_by(block) {
                let end = (start + block).min(rows);
                let dx = &mut ws.dx_block[..(end - start) * n_in];
                layer.input_gradient(params, dz, &ws.caches[l], rows, start..end, dx, whole_batch);
                below_activation.backward_over_outputs(&mut a[start * n_in..end * n_in], dx, n_in);
            }
        }
        ws.forward_rows = None;
        ws.grads_ready = true;
    }

    /// Training-mode forward pass: batch statistics in batch norm (whose running
    /// statistics are updated). Returns the output activations (`rows × outputs`).
    ///
    /// # Errors
    /// [`Error::Shape`], [`Error::Empty`] or [`Error::NonFinite`] for a bad `x`.
    pub fn forward(&mut self, x: ArrayView2<'_, f32>) -> Result<ArrayView2<'_, f32>> {
        self.check_features(&x, "forward: features")?;
        let rows = x.nrows();
        self.reserve(rows);
        self.copy_input(&x);
        self.forward_checked(None, rows, self.layers.len(), false);
        let k = self.outputs();
        let out = &self.ws.outputs[self.layers.len() - 1][..rows * k];
        Ok(ArrayView2::from_shape((rows, k), out).expect("sized by the workspace"))
    }

    /// Computes the loss of the last [`Network::forward`] against `targets`, and the
    /// gradients of every parameter (see [`Network::gradients`]).
    ///
    /// # Errors
    /// [`Error::State`] without a preceding forward pass; target errors as in
    /// [`Targets::validate`].
    pub fn backward(&mut self, targets: Targets<'_>) -> Result<f32> {
        let rows = self
            .ws
            .forward_rows
            .ok_or(Error::State("backward needs a forward pass first"))?;
        targets.validate(self.loss, self.outputs(), rows, "backward: targets")?;
        Ok(self.loss_and_backward(None, &targets, rows))
    }

    /// The loss of the forward pass just made over `rows` rows of `input`
    /// (`None`: the workspace input) against checked `targets`, and every
    /// gradient. Targets laid out as the loss reads them are read in place.
    fn loss_and_backward(
        &mut self,
        input: Option<&[f32]>,
        targets: &Targets<'_>,
        rows: usize,
    ) -> f32 {
        let in_place = TargetRows::in_place(targets);
        if in_place.is_none() {
            self.ws.targets.gather(targets, None);
        }
        let loss = self.loss_of(in_place, rows, 1.0 / rows as f32);
        self.backward_layers(input, rows, false, 0, None);
        loss as f32
    }

    /// Applies the optimizer to the gradients of the last [`Network::backward`].
    ///
    /// # Errors
    /// [`Error::State`] when there are no fresh gradients.
    pub fn step(&mut self) -> Result<()> {
        if !self.ws.grads_ready {
            return Err(Error::State("step needs gradients from backward first"));
        }
        optim::step(
            &self.optimizer,
            &mut self.opt_state,
            &mut self.params,
            &self.grads,
            self.clip_grad_norm,
        );
        self.ws.grads_ready = false;
        Ok(())
    }

    /// One training step on a mini-batch: forward, loss, backward, update. Returns
    /// the batch's loss (before the update).
    ///
    /// Once the network has seen this batch size, a step allocates nothing when it
    /// runs on a thread of the rayon pool (as [`Network::fit`] does). Called from
    /// any other thread, rayon's queue may allocate one small block every few
    /// dozen steps to hand the step to the pool.
    ///
    /// # Errors
    /// Bad features or targets; [`Error::Diverged`] (with the weights untouched)
    /// when the loss is not finite.
    pub fn train_step(&mut self, x: ArrayView2<'_, f32>, targets: Targets<'_>) -> Result<f32> {
        // Enter the thread pool once, so that the step's parallel kernels start from
        // a worker thread (whose local queue needs no allocation) rather than each
        // being injected from outside.
        rayon::scope(|_| self.train_step_in_pool(x, targets))
    }

    fn train_step_in_pool(&mut self, x: ArrayView2<'_, f32>, targets: Targets<'_>) -> Result<f32> {
        const FEATURES: &str = "forward: features";
        self.check_features_up_front(&x, FEATURES)?;
        let rows = x.nrows();
        targets.validate(self.loss, self.outputs(), rows, "backward: targets")?;
        self.reserve(rows);
        // A contiguous batch is read where it is, not copied: one batch of
        // inputs in memory, not two.
        let input = match x.as_slice() {
            Some(s) => Some(s),
            None => {
                self.copy_input(&x);
                None
            }
        };
        if let Some(bad) = self.forward_layers(input, rows, self.layers.len(), false) {
            return Err(non_finite(FEATURES, bad));
        }
        let loss = self.loss_and_backward(input, &targets, rows);
        if !loss.is_finite() {
            self.ws.grads_ready = false;
            return Err(Error::Diverged {
                loss,
                epoch: 0,
                batch: 0,
            });
        }
        self.step()?;
        Ok(loss)
    }

    /// Inference-mode pass (batch norm uses running statistics) in chunks of rows;
    /// returns the output layer's activations, or its logits when `activate_last` is false.
    ///
    /// `x` has passed [`Network::check_features_up_front`]; a NaN or infinity
    /// found by a dense first layer is reported with `context`.
    fn infer(
        &self,
        x: ArrayView2<'_, f32>,
        activate_last: bool,
        context: &'static str,
    ) -> Result<Array2<f32>> {
        let (rows, k) = (x.nrows(), self.outputs());
        let x = x.as_standard_layout();
        let x = x.as_slice().expect("standard layout");
        let chunk = rows.min(INFERENCE_ROWS);
        let max_width = self.layers.iter().map(Layer::outputs).max().unwrap_or(0);
        let mut guard = self.scratch.0.try_lock();
        let mut own = Vec::new();
        let scratch: &mut Vec<f32> = match guard {
            Ok(ref mut g) => g,
            Err(_) => &mut own,
        };
        resize(scratch, 2 * chunk * max_width + max_width);
        let (b0, rest) = scratch.split_at_mut(chunk * max_width);
        let (b1, inv_std) = rest.split_at_mut(chunk * max_width);
        let mut bufs = [b0, b1];
        let mut out = Array2::zeros((rows, k));
        let out_slice = out.as_slice_mut().expect("standard layout");
        let n_layers = self.layers.len();
        for (c, out_chunk) in out_slice.chunks_mut(chunk * k).enumerate() {
            let r = out_chunk.len() / k.max(1);
            let input = &x[c * chunk * self.inputs..(c * chunk + r) * self.inputs];
            for (l, layer) in self.layers.iter().enumerate() {
                let last = l + 1 == n_layers;
                let activate = !last || activate_last;
                let [b0, b1] = &mut bufs;
                let (src, dst): (&[f32], &mut [f32]) = match (l == 0, l % 2 == 0) {
                    (true, _) => (input, &mut **b0),
                    (false, true) => (&**b1, &mut **b0),
                    (false, false) => (&**b0, &mut **b1),
                };
                let dst: &mut [f32] = if last { out_chunk } else { dst };
                let finite = match layer {
                    Layer::Dense(d) => d.forward(&self.params, src, dst, r, activate),
                    Layer::BatchNorm(b) => {
                        b.infer(&self.params, src, dst, r, inv_std, activate);
                        true
                    }
                };
                if l == 0
                    && !finite
                    && let Some((row, col, value)) = kernels::first_non_finite(input, self.inputs)
                {
                    return Err(non_finite(context, (c * chunk + row, col, value)));
                }
                if last {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Output activations in inference mode (class probabilities for softmax and
    /// sigmoid outputs), one row per sample.
    ///
    /// # Errors
    /// [`Error::Shape`], [`Error::Empty`] or [`Error::NonFinite`] for a bad `x`.
    pub fn predict_proba(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        const FEATURES: &str = "predict: features";
        self.check_features_up_front(&x, FEATURES)?;
        self.infer(x, true, FEATURES)
    }

    /// Predicted class per sample: the arg-max output, or `output ≥ 0.5` for a
    /// single sigmoid output. (For regression use [`Network::predict_proba`].)
    ///
    /// # Errors
    /// As [`Network::predict_proba`].
    pub fn predict(&self, x: ArrayView2<'_, f32>) -> Result<Array1<usize>> {
        let p = self.predict_proba(x)?;
        Ok(if p.ncols() == 1 {
            p.column(0).mapv(|v| usize::from(v >= 0.5))
        } else {
            p.rows()
                .into_iter()
                .map(|r| argmax(r.as_slice().expect("standard layout")))
                .collect()
        })
    }

    /// Mean loss and accuracy on a data set, in inference mode.
    ///
    /// # Errors
    /// Bad features or targets.
    pub fn evaluate(&self, x: ArrayView2<'_, f32>, targets: Targets<'_>) -> Result<Evaluation> {
        const FEATURES: &str = "evaluate: features";
        self.check_features_up_front(&x, FEATURES)?;
        let (rows, k) = (x.nrows(), self.outputs());
        targets.validate(self.loss, k, rows, "evaluate: targets")?;
        let z = self.infer(x, false, FEATURES)?;
        let mut a = z.clone();
        let act = self.layers.last().expect("at least one layer").activation();
        act.forward_in_place(a.as_slice_mut().expect("standard layout"), k);
        let mut buf = TargetBuffer::default();
        buf.gather(&targets, None);
        let mut grad = vec![0.0; rows * k];
        let mut row_loss = vec![0.0; rows];
        let (z, a) = (
            z.as_slice().expect("standard"),
            a.as_slice().expect("standard"),
        );
        let loss = self.loss.fused(
            act,
            z,
            a,
            buf.rows(),
            k,
            1.0 / rows as f32,
            &mut grad,
            &mut row_loss,
        );
        let accuracy = self
            .loss
            .correct(a, buf.rows(), k)
            .map(|(hits, total)| hits as f32 / total.max(1) as f32);
        Ok(Evaluation {
            loss: loss as f32,
            accuracy,
        })
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "input: {} features", self.inputs)?;
        for (i, layer) in self.layers.iter().enumerate() {
            let kind = match layer {
                Layer::Dense(_) => "dense",
                Layer::BatchNorm(_) => "batch_norm",
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

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// Input gradients made a few rows at a time (uneven last block, batch norm
    /// and three activations below them) give the gradients of one whole block.
    #[test]
    fn blocked_input_gradients_match_whole_batch() {
        let mut whole = Network::builder(7)
            .dense(33, Activation::Relu)
            .batch_norm(Activation::Tanh)
            .dense(17, Activation::Sigmoid)
            .dense(5, Activation::Softmax)
            .loss(Loss::CategoricalCrossEntropy)
            .seed(3)
            .build()
            .unwrap();
        let mut blocked = whole.clone();
        blocked.ws.dx_block_floats = Some(33 * 3);
        let x = Array2::from_shape_fn((50, 7), |(i, j)| ((i * 13 + j * 7) % 17) as f32 / 8.0 - 1.0);
        let labels: Vec<usize> = (0..50).map(|i| (i * 7) % 5).collect();
        for net in [&mut whole, &mut blocked] {
            net.forward(x.view()).unwrap();
            net.backward(Targets::classes(&labels)).unwrap();
        }
        assert_eq!(blocked.ws.dx_block_rows(50, 33), 3);
        assert!(blocked.ws.dx_block.len() < 50 * 33);
        for (i, (a, b)) in whole
            .gradients()
            .iter()
            .zip(blocked.gradients())
            .enumerate()
        {
            assert!(
                (a - b).abs() <= 1e-6 * (1.0 + a.abs()),
                "gradient {i}: whole {a}, blocked {b}"
            );
        }
    }
}
