//! The training workspace: every buffer a training step needs, sized for the
//! largest batch seen so far, so that a step on a batch size already seen
//! allocates nothing.
//!
//! [`Workspace::floats_per_row`] is the one statement of its size: what
//! [`Network::reserve`] allocates per row, and what
//! [`Network::micro_batch_for_budget`] divides a memory budget by.

use ndarray::ArrayView2;

use super::Network;
use super::step::Phase;
use crate::activation::Activation;
use crate::layers::{BatchNormCache, Layer, resize};
use crate::targets::TargetBuffer;

/// Floats of scratch for one block of an input gradient (8 MiB): large enough
/// that each block is an efficient product (512 rows of a 4096-wide layer), small
/// beside the activations it saves a copy of.
pub(super) const DX_BLOCK_FLOATS: usize = 1 << 21;

/// Buffers for one training step, sized for `capacity` rows.
#[derive(Debug, Clone, Default)]
pub(super) struct Workspace {
    capacity: usize,
    /// The batch's features, when they are gathered or copied (`rows × inputs`).
    pub(super) input: Vec<f32>,
    /// Each layer's output (`rows × outputs`); below the top, overwritten by
    /// that layer's `dZ` in the backward pass.
    pub(super) outputs: Vec<Vec<f32>>,
    /// The output layer's pre-activations, kept when its activation is not the
    /// identity (the fused losses read them).
    pub(super) logits: Vec<f32>,
    /// Per layer: what a batch-norm layer keeps for its backward pass (`None`
    /// for a dense layer).
    pub(super) norms: Vec<Option<BatchNormCache>>,
    /// `dZ` of the output layer (`rows × outputs`).
    pub(super) output_dz: Vec<f32>,
    /// One block of rows of the input gradient being computed (see
    /// [`Workspace::dx_block_rows`]): it goes straight into the layer below's `dZ`.
    pub(super) dx_block: Vec<f32>,
    /// Floats of `dx_block` (`None`: [`DX_BLOCK_FLOATS`]; tests set small blocks).
    pub(super) dx_block_floats: Option<usize>,
    /// Each row's loss.
    pub(super) row_loss: Vec<f32>,
    /// Targets gathered for the rows of a chunk.
    pub(super) targets: TargetBuffer,
    /// `0, 1, 2, …`: row indices for a step over a whole batch in order.
    pub(super) row_order: Vec<usize>,
    /// Where the calls of a training step stand.
    pub(super) phase: Phase,
    /// The penalty at the last backward pass's weights.
    pub(super) penalty: f32,
    /// The shards' gradients, summed in their tree.
    pub(super) shard_sum: super::shards::ShardSum,
    /// This process's shards' losses, in shard order.
    pub(super) shard_losses: Vec<f64>,
    /// With several processes: their partial gradients, in rank order.
    pub(super) gathered: Vec<f32>,
    /// With several processes: every shard's loss, in shard order.
    pub(super) all_losses: Vec<f64>,
    /// With several processes: their (right, judged) counts.
    pub(super) all_counts: Vec<u64>,
    /// With several processes: this process's chunks' batch-norm records.
    pub(super) records: Vec<f64>,
    /// With several processes: every process's records, in rank order.
    pub(super) all_records: Vec<f64>,
    /// Position in the step's batch of the first row in the buffers (a
    /// micro-batch's offset): dropout masks are drawn by that position.
    pub(super) first_row: usize,
}

/// Floats per row of each training buffer of a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FloatsPerRow {
    /// The features (gathered for each micro-batch).
    pub input: usize,
    /// Every layer's output.
    pub outputs: usize,
    /// The output layer's logits and its `dZ`.
    pub output_layer: usize,
    /// Batch norm's `x̂`.
    pub batch_norm: usize,
}

impl FloatsPerRow {
    /// All of them.
    pub fn total(self) -> usize {
        self.input + self.outputs + self.output_layer + self.batch_norm
    }
}

impl Workspace {
    /// Floats per row of a training step's buffers for `layers` over `inputs`
    /// features: the input, every layer's output, the output layer's logits and
    /// its `dZ` (both counted even when the identity output keeps no logits), and
    /// batch norm's `x̂`. The block of input gradient (see
    /// [`Workspace::dx_block_rows`]) and one float per row of loss come on top.
    pub(super) fn floats_per_row(inputs: usize, layers: &[Layer]) -> FloatsPerRow {
        let k = layers.last().map_or(0, Layer::outputs);
        FloatsPerRow {
            input: inputs,
            outputs: layers.iter().map(Layer::outputs).sum(),
            output_layer: 2 * k,
            batch_norm: layers
                .iter()
                .map(|l| match l {
                    Layer::BatchNorm(b) => b.width,
                    Layer::Dense(_) | Layer::Dropout(_) => 0,
                })
                .sum(),
        }
    }

    /// Rows per block of an input gradient `n_in` wide in a pass over `rows` rows.
    pub(super) fn dx_block_rows(&self, rows: usize, n_in: usize) -> usize {
        let floats = self.dx_block_floats.unwrap_or(DX_BLOCK_FLOATS);
        (floats / n_in.max(1)).clamp(1, rows.max(1))
    }

    /// The batch-norm cache of layer `l` (made on first use; [`Network::reserve`]
    /// makes them all).
    pub(super) fn norm(&mut self, l: usize) -> &mut BatchNormCache {
        self.norms[l].get_or_insert_with(BatchNormCache::default)
    }
}

impl Network {
    /// Sizes the workspace for `rows` rows (grows only): the buffers of
    /// [`Workspace::floats_per_row`] but the input, which is sized when a batch
    /// is gathered or copied into it.
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
        ws.norms.resize_with(self.layers.len(), || None);
        for ((out, norm), layer) in ws.outputs.iter_mut().zip(&mut ws.norms).zip(&self.layers) {
            resize(out, rows * layer.outputs());
            if let Layer::BatchNorm(b) = layer {
                norm.get_or_insert_with(BatchNormCache::default)
                    .reserve(b, rows);
            }
        }
        if keeps_logits {
            resize(&mut ws.logits, rows * k);
        }
        resize(&mut ws.output_dz, rows * k);
        resize(&mut ws.dx_block, dx_block);
        resize(&mut ws.row_loss, rows);
        self.opt_state.reserve(&self.optimizer, self.params.len());
        #[cfg(not(feature = "blas"))]
        crate::gemm::reserve_buffers();
    }

    /// Whether the output layer's activation is applied after keeping its logits.
    pub(super) fn keeps_logits(&self) -> bool {
        self.layers
            .last()
            .is_some_and(|l| l.activation() != Activation::Identity)
    }

    /// Copies `x` into the workspace input (sized on first use).
    pub(super) fn copy_input(&mut self, x: &ArrayView2<'_, f32>) {
        let len = x.nrows() * self.inputs;
        resize(&mut self.ws.input, len);
        let dst = &mut self.ws.input[..len];
        match x.as_slice() {
            Some(s) => dst.copy_from_slice(s),
            None => dst.iter_mut().zip(x.iter()).for_each(|(d, s)| *d = *s),
        }
    }

    /// Rows per micro-batch that keep one training step's activation buffers
    /// within `bytes`. Per row: the input, every layer's output, the output
    /// layer's logits and `dZ`, and batch norm's `x̂` (the same formula the
    /// workspace is sized by); plus the block of input gradient in flight (the
    /// widest layer input below the top, a row of it per row up to 8 MiB in
    /// all). All `f32`. At least 1.
    ///
    /// ```
    /// use feedforward::{Activation::*, Network};
    /// let net = Network::builder(1024).dense(4096, Relu).dense(10, Softmax).build()?;
    /// // (1024 + 4096 + 10 + 10 + 10) floats per row, and 4096 of input gradient.
    /// assert_eq!(net.micro_batch_for_budget(9_246 * 4 * 100), 100);
    /// # Ok::<(), feedforward::Error>(())
    /// ```
    pub fn micro_batch_for_budget(&self, bytes: usize) -> usize {
        let widest_dx = self
            .layers
            .iter()
            .skip(1)
            .map(Layer::inputs)
            .max()
            .unwrap_or(0);
        let per_row = Workspace::floats_per_row(self.inputs, &self.layers)
            .total()
            .max(1);
        let floats = bytes / 4;
        // While a whole chunk's input gradient fits one block, it costs a row per row.
        let rows = floats / (per_row + widest_dx);
        let rows = if rows * widest_dx <= DX_BLOCK_FLOATS {
            rows
        } else {
            floats.saturating_sub(DX_BLOCK_FLOATS.max(widest_dx)) / per_row
        };
        rows.max(1)
    }

    /// Floats the workspace holds now in the buffers that
    /// [`Workspace::floats_per_row`] counts, and in the input-gradient block.
    #[cfg(test)]
    pub(super) fn workspace_floats(&self) -> (usize, usize) {
        let ws = &self.ws;
        let norms: usize = ws.norms.iter().flatten().map(|c| c.x_hat.len()).sum();
        let outputs: usize = ws.outputs.iter().map(Vec::len).sum();
        let counted = ws.input.len() + outputs + ws.logits.len() + ws.output_dz.len() + norms;
        (counted, ws.dx_block.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Activation;
    use crate::loss::Loss;
    use crate::targets::Targets;
    use crate::{BatchNormMode, Optimizer};
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

    /// What `reserve` allocates is what the budget formula counts, row for row,
    /// for a micro-batched step on a network with batch norm and a softmax
    /// output (which keeps its logits): the budget cannot drift from the buffers.
    #[test]
    fn the_budget_formula_is_what_reserve_allocates() {
        let mut net = Network::builder(13)
            .dense(40, Activation::Identity)
            .batch_norm(Activation::Relu)
            .dense(24, Activation::Tanh)
            .dense(6, Activation::Softmax)
            .optimizer(Optimizer::sgd(0.1))
            .build()
            .unwrap();
        let per_row = Workspace::floats_per_row(13, net.layers()).total();
        assert_eq!(per_row, 13 + (40 + 40 + 24 + 6) + 2 * 6 + 40);
        let x = Array2::from_shape_fn((90, 13), |(i, j)| ((i * 7 + j * 3) % 11) as f32 / 5.0 - 1.0);
        let labels: Vec<usize> = (0..90).map(|i| i % 6).collect();
        for micro in [30, 45] {
            net.train_step_micro(
                x.view(),
                Targets::classes(&labels),
                micro,
                BatchNormMode::Exact,
            )
            .unwrap();
            let (counted, dx) = net.workspace_floats();
            assert_eq!(counted, micro * per_row, "micro-batch {micro}");
            assert_eq!(dx, micro * 40, "input-gradient block, micro-batch {micro}");
        }
        // And the budget that holds exactly 45 rows gives 45.
        let bytes = 4 * 45 * (per_row + 40);
        assert_eq!(net.micro_batch_for_budget(bytes), 45);
        assert_eq!(net.micro_batch_for_budget(bytes - 4), 44);
    }
}
