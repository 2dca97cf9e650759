//! The training step: forward, fused loss, backward and the optimizer's update,
//! over a whole batch or in micro-batches of at most `c` rows, so that
//! activation memory is O(c), not O(m).
//!
//! A micro-batched step runs forward, loss and backward on each chunk with the
//! loss scaled by `1/m` (not `1/c`) and adds the gradients across chunks; the
//! optimizer then steps once. For dense layers, activations and the losses this
//! is the whole-batch step up to the order of float summation. Chunks are
//! balanced: their sizes differ by at most one row.
//!
//! Batch normalisation couples the rows of a batch through its mean and variance,
//! so chunking changes it unless handled; [`BatchNormMode`] chooses how.
//!
//! The public calls [`Network::forward`], [`Network::backward`] and
//! [`Network::step`] may be made one by one; [`Phase`] is where they stand.

use ndarray::ArrayView2;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use super::Network;
use super::checks::non_finite;
use super::exchange::{exchange_buckets, scratch_len};
use super::passes::Backward;
use super::shards::shard_rows;
use crate::distributed::Communicator;
use crate::error::{Error, Result};
use crate::kernels;
use crate::layers::resize;
use crate::optim;
use crate::targets::{TargetRows, Targets};

/// Where the calls of a training step stand: what [`Network::backward`] and
/// [`Network::step`] may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Phase {
    /// Nothing to use: no forward pass, or its results consumed.
    #[default]
    Idle,
    /// A forward pass over `rows` rows, ready for a backward pass.
    Forward {
        /// Rows of the pass.
        rows: usize,
    },
    /// Gradients not yet applied by an optimizer step.
    Gradients,
}

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

/// How a training step splits its batch: into `shards` (their gradients
/// summed in a fixed tree), each computed in chunks of at most `micro` rows.
#[derive(Clone, Copy)]
pub(crate) struct Split<'a> {
    /// Rows per chunk at most.
    pub micro: usize,
    /// Shards of the batch (1: none).
    pub shards: usize,
    /// Batch norm over chunks: exact or ghost.
    pub mode: BatchNormMode,
    /// The processes sharing the shards (`None`: this one alone). Checked by
    /// the caller with [`crate::distributed::check_shards`].
    pub comm: Option<&'a dyn Communicator>,
}

impl Split<'_> {
    /// This process's shards, and the number of processes.
    pub(super) fn own_shards(&self) -> (std::ops::Range<usize>, usize) {
        let (rank, size) = self.comm.map_or((0, 1), |c| (c.rank(), c.size()));
        (self.shards_of(rank), size)
    }

    /// Positions in a batch of `m` rows of this process's shards' rows.
    pub(crate) fn own_rows(&self, m: usize) -> std::ops::Range<usize> {
        let (own, _) = self.own_shards();
        let shards = self.shards.max(1);
        match (own.start, own.end.checked_sub(1)) {
            (first, Some(last)) if first <= last => {
                shard_rows(m, shards, first).start..shard_rows(m, shards, last).end
            }
            _ => 0..0,
        }
    }

    /// The shards of process `rank`.
    pub(super) fn shards_of(&self, rank: usize) -> std::ops::Range<usize> {
        let size = self.comm.map_or(1, |c| c.size());
        let per = self.shards.max(1) / size;
        rank * per..(rank + 1) * per
    }

    /// Rows of the largest chunk of a batch of `m` rows.
    fn largest_chunk(self, m: usize) -> usize {
        // Shards have ⌊m/S⌋ or ⌈m/S⌉ rows; a shorter one may be cut into
        // fewer, longer chunks (4 rows in chunks of 2, 3 rows in one of 3).
        let shards = self.shards.max(1);
        let chunk = |len: usize| len.div_ceil(len.div_ceil(self.micro.max(1)).max(1));
        chunk(m / shards).max(chunk(m.div_ceil(shards)))
    }

    /// Chunks of the shards `which` of a batch of `m` rows.
    pub(super) fn chunk_count(self, m: usize, which: std::ops::Range<usize>) -> usize {
        let shards = self.shards.max(1);
        which
            .map(|s| {
                let len = shard_rows(m, shards, s).len();
                // As `balanced_chunks` splits it; an empty shard has none.
                len.div_ceil(self.micro.max(1))
            })
            .sum()
    }

    /// Every chunk of the shards `which` of `idx`, shard after shard, each
    /// with its start in `idx`.
    pub(super) fn chunks(
        self,
        idx: &[usize],
        which: std::ops::Range<usize>,
    ) -> impl Iterator<Item = (usize, &[usize])> + use<'_> {
        let shards = self.shards.max(1);
        which.flat_map(move |s| {
            let rows = shard_rows(idx.len(), shards, s);
            let start = rows.start;
            balanced_chunks(&idx[rows], self.micro)
                .filter(|(_, c)| !c.is_empty())
                .map(move |(first, c)| (start + first, c))
        })
    }
}

/// Splits `idx` into `ceil(len / max)` runs whose lengths differ by at most
/// one; yields each with its start in `idx`.
pub(super) fn balanced_chunks(
    idx: &[usize],
    max: usize,
) -> impl Iterator<Item = (usize, &[usize])> {
    let len = idx.len();
    let count = len.div_ceil(max.max(1)).max(1);
    let (base, extra) = (len / count, len % count);
    let mut start = 0;
    (0..count).map(move |i| {
        let n = base + usize::from(i < extra);
        let run = (start, &idx[start..start + n]);
        start += n;
        run
    })
}

impl Network {
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
        self.ws.first_row = 0;
        self.forward_finite(None, rows, self.layers.len(), false);
        let k = self.outputs();
        let out = &self.ws.outputs[self.layers.len() - 1][..rows * k];
        Ok(ArrayView2::from_shape((rows, k), out).expect("sized by the workspace"))
    }

    /// Computes the loss of the last [`Network::forward`] against `targets`, and the
    /// gradients of every parameter (see [`Network::gradients`]).
    ///
    /// # Errors
    /// [`Error::State`] without a preceding forward pass; target errors as in
    /// [`crate::Loss::check_targets`].
    pub fn backward(&mut self, targets: Targets<'_>) -> Result<f32> {
        let Phase::Forward { rows } = self.ws.phase else {
            return Err(Error::State("backward needs a forward pass first"));
        };
        self.loss
            .check_targets(&targets, self.outputs(), rows, "backward: targets")?;
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
        self.add_penalty();
        loss as f32
    }

    /// Applies the optimizer to the gradients of the last [`Network::backward`].
    ///
    /// # Errors
    /// [`Error::State`] when there are no fresh gradients.
    pub fn step(&mut self) -> Result<()> {
        if self.ws.phase != Phase::Gradients {
            return Err(Error::State("step needs gradients from backward first"));
        }
        optim::step(
            &self.optimizer,
            &mut self.opt_state,
            (&mut self.params, &self.grads),
            self.clip_grad_norm,
            &self.segments,
        );
        self.ws.phase = Phase::Idle;
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
        self.loss
            .check_targets(&targets, self.outputs(), rows, "backward: targets")?;
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
        self.ws.first_row = 0;
        if let Some(bad) = self.forward_layers(input, rows, self.layers.len(), false) {
            return Err(non_finite(FEATURES, bad));
        }
        let loss = self.loss_and_backward(input, &targets, rows);
        self.check_finite_loss(f64::from(loss), 0, 0)?;
        self.step()?;
        Ok(loss)
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
        self.loss().check_targets(
            &targets,
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
            let split = Split {
                micro: micro_batch,
                shards: 1,
                mode,
                comm: None,
            };
            let (loss, _) = self.batch_gradients(x, &targets, &idx[..n], split);
            self.check_finite_loss(loss, 0, 0)?;
            self.step()?;
            Ok(loss as f32)
        });
        self.ws.row_order = idx;
        result
    }

    /// Forward, loss and backward over rows `idx` of `x` (row-major, `inputs`
    /// wide) as `split` says, leaving the whole batch's gradients in place for
    /// [`Network::step`]. Returns the mean loss and, for classification,
    /// (right, judged).
    ///
    /// Each shard's gradient is summed over its chunks in order; with several
    /// shards, those are added in [`shards`](super::shards)' fixed tree and
    /// the loss is the sum of the shards' losses in shard order.
    pub(crate) fn batch_gradients(
        &mut self,
        x: &[f32],
        targets: &Targets<'_>,
        idx: &[usize],
        split: Split<'_>,
    ) -> (f64, Option<(usize, usize)>) {
        let m = idx.len();
        let n_in = self.inputs();
        let n_layers = self.layers().len();
        let k = self.outputs();
        let shards = split.shards.max(1);
        let largest = split.largest_chunk(m);
        self.reserve(largest);
        resize(&mut self.ws.input, largest * n_in);
        let inv_m = 1.0 / m as f32;
        let exact = self.has_batch_norm() && split.mode == BatchNormMode::Exact && largest < m;

        if exact {
            self.whole_batch_statistics(x, idx, split);
            self.whole_batch_sums(x, targets, idx, split);
        }

        // The final pass: loss and gradients, accumulated over each shard's
        // chunks, then over the shards (and, with several processes, over
        // theirs: overlapped with the backward pass of the last chunk).
        let (mut loss, mut right, mut judged, mut classified) = (0.0f64, 0, 0, false);
        let (own, processes) = split.own_shards();
        let comm = split.comm.filter(|_| processes > 1);
        let mut exchanged = false;
        self.ws.shard_losses.clear();
        for s in own.clone() {
            let rows = shard_rows(m, shards, s);
            let shard = &idx[rows.clone()];
            if shard.is_empty() {
                self.grads.fill(0.0);
            }
            let mut shard_loss = 0.0f64;
            for (i, (first, chunk)) in balanced_chunks(shard, split.micro).enumerate() {
                let r = chunk.len();
                if r == 0 {
                    continue;
                }
                self.load_chunk(x, rows.start + first, chunk);
                self.ws.targets.gather(targets, Some(chunk));
                self.forward_finite(None, r, n_layers, exact);
                shard_loss += self.loss_of(None, r, inv_m);
                let out = &self.ws.outputs[n_layers - 1][..r * k];
                if let Some((h, j)) = self.loss().correct(out, self.ws.targets.rows(), k) {
                    (right, judged, classified) = (right + h, judged + j, true);
                }
                let pass = Backward {
                    input: None,
                    rows: r,
                    accumulate: i > 0,
                    stop_at: 0,
                    whole_batch: exact.then_some(m),
                };
                let last = s + 1 == own.end && first + r == shard.len();
                match comm {
                    Some(comm) if last => {
                        self.backward_exchanging(comm, pass);
                        exchanged = true;
                    }
                    _ => self.backward_layers(None, r, i > 0, 0, exact.then_some(m)),
                }
            }
            loss += shard_loss;
            self.ws.shard_losses.push(shard_loss);
            if own.len() > 1 && !exchanged {
                self.ws.shard_sum.push(&mut self.grads);
            }
        }
        if !exchanged {
            if own.len() > 1 {
                self.ws.shard_sum.finish(&mut self.grads);
            }
            if let Some(comm) = comm {
                self.exchange_after(comm);
            }
        }
        if let Some(comm) = comm {
            loss = self.gather_losses(comm);
            (right, judged) = self.gather_counts(comm, right, judged);
        }
        self.add_penalty();
        // Set here too: a process whose shards of this batch have no rows ran
        // no backward pass, but holds the batch's gradients all the same.
        self.ws.phase = Phase::Gradients;
        (loss, classified.then_some((right, judged)))
    }

    /// The backward pass of this process's last chunk, its buckets exchanged
    /// with the other processes as they are finished (see
    /// [`exchange`](super::exchange)): each bucket, the sum of this process's
    /// shards there, goes to an exchange thread, which leaves every process's
    /// sum in it. Returns when all are exchanged.
    fn backward_exchanging(&mut self, comm: &dyn Communicator, pass: Backward<'_>) {
        let buckets = std::mem::take(&mut self.buckets);
        let mut shard_sum = std::mem::take(&mut self.ws.shard_sum);
        let mut gathered = std::mem::take(&mut self.ws.gathered);
        resize(&mut gathered, scratch_len(&buckets, comm.size()));
        let computing = AtomicBool::new(true);
        std::thread::scope(|scope| {
            let (send, receive) = mpsc::channel();
            let exchange = scope.spawn(|| {
                let computing = || computing.load(Ordering::Relaxed);
                exchange_buckets(comm, receive, &mut gathered, &computing);
            });
            let mut next = buckets.iter();
            self.backward_then(pass, &buckets, &mut |part| {
                let bucket = next.next().expect("one call per bucket");
                shard_sum.finish_range(part, bucket.params.clone());
                // Fails only if the exchange thread has panicked; join says why.
                let _ = send.send(part);
            });
            drop(send);
            computing.store(false, Ordering::Relaxed);
            if let Err(panic) = exchange.join() {
                std::panic::resume_unwind(panic);
            }
        });
        shard_sum.recycle();
        self.ws.shard_sum = shard_sum;
        self.ws.gathered = gathered;
        self.buckets = buckets;
    }

    /// The exchange of every bucket, top down, after the backward pass (when
    /// this process's last shard had no rows to overlap it with): the same
    /// collectives, and the same sums, as [`Network::backward_exchanging`].
    fn exchange_after(&mut self, comm: &dyn Communicator) {
        resize(
            &mut self.ws.gathered,
            scratch_len(&self.buckets, comm.size()),
        );
        let (send, receive) = mpsc::channel();
        let mut pending = &mut self.grads[..];
        for bucket in &self.buckets {
            let (below, part) = std::mem::take(&mut pending).split_at_mut(bucket.params.start);
            pending = below;
            let _ = send.send(part);
        }
        drop(send);
        exchange_buckets(comm, receive, &mut self.ws.gathered, &|| false);
    }

    /// With several processes: the loss, every process's shards' losses
    /// gathered and added in shard order.
    fn gather_losses(&mut self, comm: &dyn Communicator) -> f64 {
        let ws = &mut self.ws;
        let own = ws.shard_losses.len();
        ws.all_losses.resize(own * comm.size(), 0.0);
        comm.all_gather_f64(&ws.shard_losses, &mut ws.all_losses);
        ws.all_losses.iter().fold(0.0, |sum, l| sum + l)
    }

    /// Every process's (right, judged), summed (integers: exact in any order).
    fn gather_counts(
        &mut self,
        comm: &dyn Communicator,
        right: usize,
        judged: usize,
    ) -> (usize, usize) {
        let counts = &mut self.ws.all_counts;
        counts.resize(2 * comm.size(), 0);
        comm.all_gather_u64(&[right as u64, judged as u64], counts);
        let sum = |k: usize| counts.iter().skip(k).step_by(2).sum::<u64>() as usize;
        (sum(0), sum(1))
    }

    /// Gathers rows `chunk` of `x` into the workspace input; `first` is the
    /// chunk's start in the step's batch (where its dropout masks are drawn).
    pub(super) fn load_chunk(&mut self, x: &[f32], first: usize, chunk: &[usize]) {
        let n_in = self.inputs;
        let r = chunk.len();
        kernels::gather_rows(x, n_in, n_in, chunk, &mut self.ws.input[..r * n_in]);
        self.ws.first_row = first;
    }

    /// The one divergence check: a loss that is not finite ends the step before
    /// the update, with its gradients dropped.
    ///
    /// # Errors
    /// [`Error::Diverged`] with `loss`, `epoch` and `batch` (0 outside an epoch).
    pub(crate) fn check_finite_loss(
        &mut self,
        loss: f64,
        epoch: usize,
        batch: usize,
    ) -> Result<()> {
        if loss.is_finite() {
            return Ok(());
        }
        self.ws.phase = Phase::Idle;
        Err(Error::Diverged {
            loss: loss as f32,
            epoch,
            batch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::balanced_chunks;

    #[test]
    fn chunks_are_balanced_and_cover_everything() {
        let idx: Vec<usize> = (0..10).collect();
        let sizes: Vec<usize> = balanced_chunks(&idx, 4).map(|(_, c)| c.len()).collect();
        assert_eq!(sizes, vec![4, 3, 3]);
        let starts: Vec<usize> = balanced_chunks(&idx, 4).map(|(s, _)| s).collect();
        assert_eq!(starts, vec![0, 4, 7]);
        let all: Vec<usize> = balanced_chunks(&idx, 3)
            .flat_map(|(_, c)| c)
            .copied()
            .collect();
        assert_eq!(all, idx);
        assert_eq!(balanced_chunks(&idx, 100).count(), 1);
        assert_eq!(balanced_chunks(&idx, 1).count(), 10);
    }
}
