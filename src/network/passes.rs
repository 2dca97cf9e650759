//! The layer-by-layer passes a training step runs: forward with batch
//! statistics, the fused loss and the output layer's `dZ`, and backward down
//! the layers, the input gradient a block of rows at a time.

use super::Network;
use super::step::Phase;
use crate::kernels;
use crate::layers::{Layer, MaskKey};
use crate::targets::TargetRows;

/// What a backward pass runs over: see [`Network::backward_layers`].
#[derive(Clone, Copy)]
pub(super) struct Backward<'a> {
    /// The forward pass's input (`None`: the workspace input).
    pub input: Option<&'a [f32]>,
    /// Rows of the pass.
    pub rows: usize,
    /// Add the gradients to the existing ones.
    pub accumulate: bool,
    /// The lowest layer reached (its input gradient is not computed).
    pub stop_at: usize,
    /// `Some(m)`: batch norm uses the whole batch's sums (exact micro-batching).
    pub whole_batch: Option<usize>,
}

impl Network {
    ///
    /// Returns the first NaN or infinity of the input, `(row, col, value)`, if
    /// there is one and a dense first layer found it; the pass then stops after
    /// that layer, before any layer that keeps statistics.
    #[must_use]
    pub(super) fn forward_layers(
        &mut self,
        input: Option<&[f32]>,
        rows: usize,
        upto: usize,
        fixed_stats: bool,
    ) -> Option<(usize, usize, f32)> {
        let n_in = self.inputs;
        let keep_logits = self.keeps_logits();
        let n_layers = self.layers.len();
        let precision = self.precision;
        let mask_key = self.mask_key();
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
                Layer::Dense(d) => d.forward(params, x, out, rows, activate, precision),
                Layer::BatchNorm(b) => {
                    let cache = ws.norms[l].get_or_insert_with(Default::default);
                    b.forward(params, x, out, rows, cache, activate, fixed_stats);
                    true
                }
                Layer::Dropout(d) => {
                    d.apply(mask_key(l, 0), x, out, rows);
                    true
                }
            };
            // Not finite: a NaN or ∞ in the input, or an overflow (which is not
            // an input error); only the scan tells them apart.
            if l == 0 && !finite {
                let bad = kernels::first_non_finite(&input[..rows * n_in], n_in);
                if bad.is_some() {
                    ws.phase = Phase::Idle;
                    return bad;
                }
            }
            if last && keep_logits {
                let k = layer.outputs();
                ws.logits[..rows * k].copy_from_slice(&out[..rows * k]);
                layer.activation().forward_in_place(&mut out[..rows * k], k);
            }
        }
        if upto == n_layers {
            ws.phase = Phase::Forward { rows };
        }
        None
    }

    /// [`Network::forward_layers`] on features known to be finite (checked up
    /// front, or gathered from rows that were).
    pub(super) fn forward_finite(
        &mut self,
        input: Option<&[f32]>,
        rows: usize,
        upto: usize,
        fixed_stats: bool,
    ) {
        let bad = self.forward_layers(input, rows, upto, fixed_stats);
        debug_assert!(bad.is_none(), "the features are finite");
    }

    /// The loss of the last forward pass over `rows` rows against `targets`
    /// (`None`: those gathered in the workspace), and `dZ` of the output layer
    /// (scaled by `inv_m`) into `output_dz`.
    pub(super) fn loss_of(
        &mut self,
        targets: Option<TargetRows<'_>>,
        rows: usize,
        inv_m: f32,
    ) -> f64 {
        let last = self.layers.last().expect("at least one layer");
        let (act, k) = (last.activation(), last.outputs());
        let keeps_logits = self.keeps_logits();
        let ws = &mut self.ws;
        let a = &ws.outputs[self.layers.len() - 1][..rows * k];
        let z = if keeps_logits {
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
            &mut ws.output_dz[..rows * k],
            &mut ws.row_loss,
        )
    }

    /// Backward pass from `dZ` of the output layer in `output_dz` down to layer
    /// `stop_at` (whose input gradient is not computed); `input` is the forward
    /// pass's (`None`: the workspace input). With `accumulate`, gradients are added
    /// to the existing ones. With `whole_batch = Some(m)`, batch norm's input
    /// gradient uses the sums over a whole batch of `m` rows kept in its cache
    /// (exact micro-batching).
    pub(super) fn backward_layers(
        &mut self,
        input: Option<&[f32]>,
        rows: usize,
        accumulate: bool,
        stop_at: usize,
        whole_batch: Option<usize>,
    ) {
        let pass = Backward {
            input,
            rows,
            accumulate,
            stop_at,
            whole_batch,
        };
        self.backward_then(pass, &[], &mut |_| {});
    }

    /// [`Network::backward_layers`], handing each of `buckets` (top down) to
    /// `done` as soon as the weight gradient of its lowest layer is made: the
    /// bucket's gradients are final, and the pass goes on below without
    /// touching them.
    pub(super) fn backward_then<'g>(
        &'g mut self,
        pass: Backward<'_>,
        buckets: &[super::exchange::Bucket],
        done: &mut dyn FnMut(&'g mut [f32]),
    ) {
        let Backward {
            input,
            rows,
            accumulate,
            stop_at,
            whole_batch,
        } = pass;
        let n_layers = self.layers.len();
        let precision = self.precision;
        let mask_key = self.mask_key();
        let Network {
            layers,
            params,
            grads,
            ws,
            ..
        } = self;
        // The gradients not yet handed over: the buckets above are cut off.
        let mut pending: &'g mut [f32] = grads;
        let mut buckets = buckets.iter().peekable();
        // dZ of the output layer is in `output_dz`. Below it, each layer's dZ
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
                &ws.output_dz[..rows * n_out]
            } else {
                &here[0][..rows * n_out]
            };
            match layer {
                Layer::Dense(d) => {
                    let x: &[f32] = if l == 0 { input } else { &below[l - 1] };
                    d.backward(x, dz, rows, pending, accumulate, precision);
                }
                Layer::BatchNorm(b) => {
                    let cache = ws.norms[l].get_or_insert_with(Default::default);
                    b.backward(dz, rows, pending, cache, accumulate);
                }
                Layer::Dropout(_) => {}
            }
            if let Some(bucket) = buckets.next_if(|b| b.lowest == l) {
                let (below, bucket) =
                    std::mem::take(&mut pending).split_at_mut(bucket.params.start);
                pending = below;
                done(bucket);
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
                match layer {
                    Layer::Dense(d) => {
                        let block = &dz[start * n_out..end * n_out];
                        d.input_gradient(params, block, end - start, dx, precision);
                    }
                    Layer::BatchNorm(b) => {
                        let cache = ws.norms[l].as_ref().expect("made by the forward pass");
                        b.input_gradient(params, dz, cache, rows, start..end, dx, whole_batch);
                    }
                    Layer::Dropout(d) => {
                        let block = &dz[start * n_out..end * n_out];
                        d.apply(mask_key(l, start), block, dx, end - start);
                    }
                }
                below_activation.backward_over_outputs(&mut a[start * n_in..end * n_in], dx, n_in);
            }
        }
        ws.phase = Phase::Gradients;
    }

    /// The dropout masks' key for layer `l`, rows from `start` of the
    /// workspace: this step's masks, at the rows' positions in its batch.
    fn mask_key(&self) -> impl Fn(usize, usize) -> MaskKey + use<> {
        let (seed, step, first_row) = (self.seed, self.opt_state.step, self.ws.first_row);
        move |layer, start| MaskKey {
            seed,
            step,
            layer,
            first_row: first_row + start,
        }
    }
}
