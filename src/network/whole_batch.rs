//! Exact batch norm over a batch computed in chunks, shards or processes:
//! each batch-norm layer's statistics and the sums its backward pass needs,
//! over the whole batch.
//!
//! Both are merged chunk by chunk in one global order: the chunks of shard 0,
//! then of shard 1, and so on. With several processes, each computes the
//! records of its own chunks (per chunk: its rows, per-column mean and
//! `Σ (x − mean)²`; or its `Σ dY` and `Σ dY ⊙ x̂`), every process gathers all
//! of them, and merges them in that same order; so the statistics, and every
//! later bit, do not depend on the number of processes.

use super::Network;
use super::step::Split;
use crate::distributed::Communicator;
use crate::layers::Layer;
use crate::targets::Targets;

impl Network {
    /// The statistics of every batch-norm layer over the whole batch `idx` of
    /// `x`, in layer order (each needs the layers below it normalised with
    /// theirs); the running statistics are updated with them.
    pub(super) fn whole_batch_statistics(&mut self, x: &[f32], idx: &[usize], split: Split<'_>) {
        let (own, processes) = split.own_shards();
        for b in 0..self.layers.len() {
            if !matches!(self.layers[b], Layer::BatchNorm(_)) {
                continue;
            }
            let width = self.layers[b].inputs();
            self.ws.norm(b).start_whole_batch();
            self.ws.records.clear();
            for (first, chunk) in split.chunks(idx, own.clone()) {
                let r = chunk.len();
                self.load_chunk(x, first, chunk);
                self.forward_finite(None, r, b, true);
                let ws = &mut self.ws;
                let below: &[f32] = if b == 0 {
                    &ws.input
                } else {
                    &ws.outputs[b - 1]
                };
                let cache = ws.norms[b].get_or_insert_with(Default::default);
                cache.chunk_statistics(below, width, r);
                if processes == 1 {
                    cache.merge_chunk_statistics(width, r);
                } else {
                    ws.records.push(r as f64);
                    ws.records.extend_from_slice(&cache.chunk_mean[..width]);
                    ws.records.extend_from_slice(&cache.chunk_m2[..width]);
                }
            }
            if let (Some(comm), true) = (split.comm, processes > 1) {
                let record = 1 + 2 * width;
                self.gather_records(comm, split, idx.len(), record);
                let cache = self.ws.norms[b].get_or_insert_with(Default::default);
                for rec in self.ws.all_records.chunks_exact(record) {
                    if rec[0] == 0.0 {
                        continue; // padding
                    }
                    cache.chunk_mean[..width].copy_from_slice(&rec[1..=width]);
                    cache.chunk_m2[..width].copy_from_slice(&rec[1 + width..]);
                    cache.merge_chunk_statistics(width, rec[0] as usize);
                }
            }
            let cache = self.ws.norms[b].get_or_insert_with(Default::default);
            cache.finish_whole_batch(idx.len());
            if let Layer::BatchNorm(bn) = &mut self.layers[b] {
                bn.set_statistics(cache, idx.len());
            }
        }
    }

    /// `Σ dy` and `Σ dy ⊙ x̂` of every batch-norm layer over the whole batch,
    /// from the top down (each needs the input gradients of those above).
    pub(super) fn whole_batch_sums(
        &mut self,
        x: &[f32],
        targets: &Targets<'_>,
        idx: &[usize],
        split: Split<'_>,
    ) {
        let (n_layers, m) = (self.layers.len(), idx.len());
        let (own, processes) = split.own_shards();
        for b in (0..n_layers).rev() {
            if !matches!(self.layers[b], Layer::BatchNorm(_)) {
                continue;
            }
            let width = self.layers[b].inputs();
            self.ws.norm(b).start_whole_batch_sums();
            self.ws.records.clear();
            for (first, chunk) in split.chunks(idx, own.clone()) {
                let r = chunk.len();
                self.load_chunk(x, first, chunk);
                self.ws.targets.gather(targets, Some(chunk));
                self.forward_finite(None, r, n_layers, true);
                self.loss_of(None, r, 1.0 / m as f32);
                self.backward_layers(None, r, false, b, Some(m));
                if processes == 1 {
                    self.ws.norm(b).add_chunk_sums();
                } else {
                    let ws = &mut self.ws;
                    let cache = ws.norms[b].get_or_insert_with(Default::default);
                    ws.records.push(1.0);
                    let sums = cache.sum_dy[..width]
                        .iter()
                        .chain(&cache.sum_dy_xhat[..width]);
                    ws.records.extend(sums.map(|&v| f64::from(v)));
                }
            }
            if let (Some(comm), true) = (split.comm, processes > 1) {
                let record = 1 + 2 * width;
                self.gather_records(comm, split, m, record);
                let cache = self.ws.norms[b].get_or_insert_with(Default::default);
                for rec in self.ws.all_records.chunks_exact(record) {
                    if rec[0] == 0.0 {
                        continue; // padding
                    }
                    // f32 → f64 → f32 is exact: the same additions as one process.
                    for (d, &v) in cache.sum_dy[..width].iter_mut().zip(&rec[1..=width]) {
                        *d = v as f32;
                    }
                    for (d, &v) in cache.sum_dy_xhat[..width].iter_mut().zip(&rec[1 + width..]) {
                        *d = v as f32;
                    }
                    cache.add_chunk_sums();
                }
            }
        }
    }

    /// Every process's records (`record` values each, this process's in
    /// `ws.records`) into `ws.all_records`, in rank order; each process's run
    /// padded with zeros to the most chunks any process has.
    fn gather_records(
        &mut self,
        comm: &dyn Communicator,
        split: Split<'_>,
        m: usize,
        record: usize,
    ) {
        let most = (0..comm.size())
            .map(|r| split.chunk_count(m, split.shards_of(r)))
            .max()
            .unwrap_or(0);
        let ws = &mut self.ws;
        ws.records.resize(most * record, 0.0);
        ws.all_records.resize(most * record * comm.size(), 0.0);
        comm.all_gather_f64(&ws.records, &mut ws.all_records);
    }
}
