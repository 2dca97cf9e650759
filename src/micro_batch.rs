//! Micro-batching: one optimizer step over a logical batch of `m` rows, computed
//! in chunks of at most `c` rows so that activation memory is O(c), not O(m).
//!
//! Each chunk runs forward, loss and backward with the loss scaled by `1/m` (not
//! `1/c`), and gradients are added across chunks; the optimizer then steps once.
//! For dense layers, activations and the losses this is the whole-batch step up
//! to the order of float summation. Chunks are balanced: their sizes differ by at
//! most one row.
//!
//! Batch normalisation couples the rows of a batch through its mean and variance,
//! so chunking changes it unless handled; [`BatchNormMode`] chooses how.

use crate::layers::{Layer, resize};
use crate::network::{DX_BLOCK_FLOATS, Network};
use crate::targets::Targets;
use crate::{Error, Result, kernels};

/// How batch normalisation treats a batch that is split into micro-batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BatchNormMode {
    /// The statistics of the whole logical batch, exactly as without chunking
    /// (the default). Costs extra passes over the chunks: one forward pass up to
    /// each batch-norm layer for its mean and variance, and one forward and
    /// partial backward pass per batch-norm layer for the sums its input gradient
    /// needs (`Σ dy`, `Σ dy ⊙ x̂`), before the final pass that accumulates the
    /// gradients. A network without batch norm needs only the final pass.
    #[default]
    Exact,
    /// Ghost batch normalisation (Hoffer et al., 2017): every chunk is normalised
    /// with its own statistics, and the running statistics are updated per chunk.
    /// One pass; results depend on the chunk size.
    Ghost,
}

/// Splits `idx` into `ceil(len / max)` runs whose lengths differ by at most one.
pub(crate) fn balanced_chunks(idx: &[usize], max: usize) -> impl Iterator<Item = &[usize]> {
    let len = idx.len();
    let count = len.div_ceil(max.max(1)).max(1);
    let (base, extra) = (len / count, len % count);
    let mut start = 0;
    (0..count).map(move |i| {
        let n = base + usize::from(i < extra);
        let run = &idx[start..start + n];
        start += n;
        run
    })
}

impl Network {
    /// Rows per micro-batch that keep one training step's activation buffers
    /// within `bytes`: per row the input, every layer's output, the output
    /// layer's logits and gradient, and batch norm's `x̂`; plus the block of input
    /// gradient in flight (the widest layer input below the top, a row of it per
    /// row up to 8 MiB in all). All `f32`. At least 1.
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
            .layers()
            .iter()
            .skip(1)
            .map(Layer::inputs)
            .max()
            .unwrap_or(0);
        let bn: usize = self
            .layers()
            .iter()
            .map(|l| match l {
                Layer::BatchNorm(b) => b.width,
                Layer::Dense(_) => 0,
            })
            .sum();
        let outputs: usize = self.layers().iter().map(Layer::outputs).sum();
        let per_row = (self.inputs() + outputs + 2 * self.outputs() + bn).max(1);
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

    /// One optimizer step over the logical batch `x`, computed in micro-batches of
    /// at most `micro_batch` rows. Returns the batch's mean loss (before the update).
    ///
    /// The result equals [`Network::train_step`] on the whole batch up to float
    /// summation order (with [`BatchNormMode::Exact`]), while the training buffers
    /// hold only `micro_batch` rows.
    ///
    /// ```
    /// use feedforward::{Activation::*, BatchNormMode, Network, Optimizer, data};
    /// let (x, y) = data::blobs(50, 3, 4, 0);
    /// let build = || Network::builder(4).dense(16, Relu).dense(3, Softmax)
    ///     .optimizer(Optimizer::sgd(0.1)).seed(3).build();
    /// let (mut whole, mut chunked) = (build()?, build()?);
    /// whole.train_step(x.view(), (&y).into())?;
    /// chunked.train_step_micro(x.view(), (&y).into(), 16, BatchNormMode::Exact)?;
    /// for (a, b) in whole.parameters().iter().zip(chunked.parameters()) {
    ///     assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0));
    /// }
    /// # Ok::<(), feedforward::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Network::train_step`]; [`Error::Config`] for `micro_batch = 0`.
    pub fn train_step_micro(
        &mut self,
        x: ndarray::ArrayView2<'_, f32>,
        targets: Targets<'_>,
        micro_batch: usize,
        mode: BatchNormMode,
    ) -> Result<f32> {
        if micro_batch == 0 {
            return Err(Error::Config("micro-batch size must be at least 1".into()));
        }
        self.check_features(&x, "train_step_micro: features")?;
        targets.validate(
            self.loss(),
            self.outputs(),
            x.nrows(),
            "train_step_micro: targets",
        )?;
        let x = x.as_standard_layout();
        let x = x.as_slice().expect("standard layout");
        // The rows in order, from a buffer kept in the workspace (no allocation
        // once the batch size has been seen).
        let n = targets.len();
        let mut idx = std::mem::take(&mut self.ws.row_order);
        idx.extend(idx.len()..n);
        let result = rayon::scope(|_| {
            let (loss, _) = self.logical_batch_step(x, &targets, &idx[..n], micro_batch, mode);
            if !loss.is_finite() {
                self.ws.grads_ready = false;
                return Err(Error::Diverged {
                    loss: loss as f32,
                    epoch: 0,
                    batch: 0,
                });
            }
            self.step()?;
            Ok(loss as f32)
        });
        self.ws.row_order = idx;
        result
    }

    /// Forward, loss and backward over rows `idx` of `x` (row-major, `inputs`
    /// wide) in micro-batches of at most `micro` rows, leaving the whole batch's
    /// gradients in place for [`Network::step`]. Returns the mean loss and, for
    /// classification, (right, judged).
    pub(crate) fn logical_batch_step(
        &mut self,
        x: &[f32],
        targets: &Targets<'_>,
        idx: &[usize],
        micro: usize,
        mode: BatchNormMode,
    ) -> (f64, Option<(usize, usize)>) {
        let m = idx.len();
        let n_in = self.inputs();
        let n_layers = self.layers().len();
        let k = self.outputs();
        let largest = m.div_ceil(m.div_ceil(micro.max(1)).max(1));
        self.reserve(largest);
        resize(&mut self.ws.input, largest * n_in);
        let inv_m = 1.0 / m as f32;
        let has_bn = self
            .layers()
            .iter()
            .any(|l| matches!(l, Layer::BatchNorm(_)));
        let exact = has_bn && mode == BatchNormMode::Exact && largest < m;

        if exact {
            // Statistics of every batch-norm layer over the whole batch, in layer
            // order: each needs the layers below it normalised with theirs.
            for b in 0..n_layers {
                if !matches!(self.layers()[b], Layer::BatchNorm(_)) {
                    continue;
                }
                self.ws.caches[b].stats_rows = 0;
                for chunk in balanced_chunks(idx, micro) {
                    let r = chunk.len();
                    kernels::gather_rows(x, n_in, n_in, chunk, &mut self.ws.input[..r * n_in]);
                    self.forward_checked(None, r, b, true);
                    self.merge_chunk_statistics(b, r);
                }
                let cache = &mut self.ws.caches[b];
                for j in 0..cache.stats_mean.len().min(cache.mean.len()) {
                    cache.mean[j] = cache.stats_mean[j] as f32;
                    cache.var[j] = (cache.stats_m2[j] / m as f64) as f32;
                }
                let mut cache = std::mem::take(&mut self.ws.caches[b]);
                if let Layer::BatchNorm(bn) = &mut self.layers_mut()[b] {
                    bn.set_statistics(&mut cache, m);
                }
                self.ws.caches[b] = cache;
            }
            // Σ dy and Σ dy ⊙ x̂ of every batch-norm layer over the whole batch,
            // from the top down: each needs the input gradients of those above.
            for b in (0..n_layers).rev() {
                if !matches!(self.layers()[b], Layer::BatchNorm(_)) {
                    continue;
                }
                let cache = &mut self.ws.caches[b];
                cache.total_sum_dy.fill(0.0);
                cache.total_sum_dy_xhat.fill(0.0);
                for chunk in balanced_chunks(idx, micro) {
                    let r = chunk.len();
                    kernels::gather_rows(x, n_in, n_in, chunk, &mut self.ws.input[..r * n_in]);
                    self.ws.targets.gather(targets, Some(chunk));
                    self.forward_checked(None, r, n_layers, true);
                    self.loss_workspace(r, inv_m);
                    self.backward_layers(None, r, false, b, Some(m));
                    let c = &mut self.ws.caches[b];
                    for j in 0..c.sum_dy.len() {
                        c.total_sum_dy[j] += c.sum_dy[j];
                        c.total_sum_dy_xhat[j] += c.sum_dy_xhat[j];
                    }
                }
            }
        }

        // The final pass: loss and gradients, accumulated over the chunks.
        let (mut loss, mut right, mut judged, mut classified) = (0.0f64, 0, 0, false);
        for (i, chunk) in balanced_chunks(idx, micro).enumerate() {
            let r = chunk.len();
            kernels::gather_rows(x, n_in, n_in, chunk, &mut self.ws.input[..r * n_in]);
            self.ws.targets.gather(targets, Some(chunk));
            self.forward_checked(None, r, n_layers, exact);
            loss += self.loss_workspace(r, inv_m);
            let out = &self.ws.outputs[n_layers - 1][..r * k];
            if let Some((h, j)) = self.loss().correct(out, self.ws.targets.rows(), k) {
                (right, judged, classified) = (right + h, judged + j, true);
            }
            self.backward_layers(None, r, i > 0, 0, exact.then_some(m));
        }
        (loss, classified.then_some((right, judged)))
    }

    /// Adds the mean and `Σ (x − mean)²` of the `rows` rows entering layer `b`
    /// (in the workspace) to the running whole-batch statistics in its cache.
    fn merge_chunk_statistics(&mut self, b: usize, rows: usize) {
        let width = self.layers()[b].inputs();
        let ws = &mut self.ws;
        let x: &[f32] = if b == 0 {
            &ws.input
        } else {
            &ws.outputs[b - 1]
        };
        let x = &x[..rows * width];
        let cache = &mut ws.caches[b];
        let seen = cache.stats_rows as f64;
        let r = rows as f64;
        // Row by row (the buffer's order), one f64 accumulator per column.
        let (mean, m2) = (&mut cache.chunk_mean[..width], &mut cache.chunk_m2[..width]);
        mean.fill(0.0);
        m2.fill(0.0);
        for row in x.chunks_exact(width) {
            for (s, &v) in mean.iter_mut().zip(row) {
                *s += f64::from(v);
            }
        }
        mean.iter_mut().for_each(|s| *s /= r);
        for row in x.chunks_exact(width) {
            for ((s, &mu), &v) in m2.iter_mut().zip(mean.iter()).zip(row) {
                *s += (f64::from(v) - mu).powi(2);
            }
        }
        for j in 0..width {
            if cache.stats_rows == 0 {
                cache.stats_mean[j] = mean[j];
                cache.stats_m2[j] = m2[j];
            } else {
                // Chan, Golub and LeVeque's pairwise update.
                let delta = mean[j] - cache.stats_mean[j];
                let total = seen + r;
                cache.stats_mean[j] += delta * r / total;
                cache.stats_m2[j] += m2[j] + delta * delta * seen * r / total;
            }
        }
        cache.stats_rows += rows;
    }
}

#[cfg(test)]
mod tests {
    use super::balanced_chunks;

    #[test]
    fn chunks_are_balanced_and_cover_everything() {
        let idx: Vec<usize> = (0..10).collect();
        let sizes: Vec<usize> = balanced_chunks(&idx, 4).map(<[usize]>::len).collect();
        assert_eq!(sizes, vec![4, 3, 3]);
        let all: Vec<usize> = balanced_chunks(&idx, 3).flatten().copied().collect();
        assert_eq!(all, idx);
        assert_eq!(balanced_chunks(&idx, 100).count(), 1);
        assert_eq!(balanced_chunks(&idx, 1).count(), 10);
    }
}
