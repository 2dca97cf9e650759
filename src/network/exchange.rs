//! The gradients' exchange between processes, overlapped with the backward
//! pass.
//!
//! Backpropagation finishes the layers' gradients from the top down, so the
//! parameters are cut into **buckets**, runs of whole layers planned once from
//! the layer shapes (the same on every process). As soon as the backward pass
//! of a step's last chunk has made the weight gradient of a bucket's lowest
//! layer, the bucket goes to an exchange thread, which sums every process's
//! partial sum of it in the shards' tree (a reduce-scatter made of an
//! all-to-all and a fixed-order sum, then an all-gather), while the layers
//! below compute. The buckets travel in one order, top down, on every
//! process, so the collectives match; what is added, and in which order, is
//! what the exchange of the whole gradient at once would add: the same bits.

use std::ops::Range;
use std::sync::mpsc;

use super::shards::tree_sum_in_place;
use crate::distributed::Communicator;
use crate::layers::Layer;

/// Floats a bucket holds at least, unless it is the bottom one: big enough
/// that a bucket's latency is small beside its transfer (256 kB), small
/// enough that the top layers start early.
const MIN_BUCKET: usize = 1 << 16;

/// A run of whole layers whose gradients travel together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bucket {
    /// Its lowest layer: the bucket is complete when the backward pass has
    /// made this layer's weight gradient.
    pub lowest: usize,
    /// Its parameters (and gradients).
    pub params: Range<usize>,
}

/// Buckets of `layers` (`params` parameters in all), top down: each ends at
/// the first layer that brings it to [`MIN_BUCKET`] floats; the last takes
/// what is left. Together they cover `0..params`.
pub(crate) fn plan(layers: &[Layer], params: usize) -> Vec<Bucket> {
    let mut buckets = Vec::new();
    let mut end = params;
    for (l, layer) in layers.iter().enumerate().rev() {
        let start = layer.offset();
        if end - start >= MIN_BUCKET || l == 0 {
            buckets.push(Bucket {
                lowest: l,
                params: start..end,
            });
            end = start;
        }
    }
    buckets
}

/// Floats of scratch [`exchange_buckets`] needs for `buckets` on `processes`.
pub(crate) fn scratch_len(buckets: &[Bucket], processes: usize) -> usize {
    let largest = buckets.iter().map(|b| b.params.len()).max().unwrap_or(0);
    3 * processes * largest.div_ceil(processes.max(1))
}

/// Runs on the exchange thread: each bucket received (this process's partial
/// sum there, top bucket first) becomes the sum of every process's, added in
/// the shards' tree. A reduce-scatter by hand, then an all-gather: the bucket
/// is cut into `N` equal blocks (the last padded with zeros); an all-to-all
/// gives process `r` every process's block `r`, which it adds in the tree;
/// an all-gather of the summed blocks gives everyone the whole sum. Each
/// process sends `2·(N − 1)/N` of the bucket, not `N − 1` times it.
/// `computing` tells whether the backward pass still runs beside it (see
/// [`Communicator::all_gather_beside`]); `scratch` holds
/// [`scratch_len`] floats.
pub(crate) fn exchange_buckets(
    comm: &dyn Communicator,
    buckets: mpsc::Receiver<&mut [f32]>,
    scratch: &mut [f32],
    computing: &dyn Fn() -> bool,
) {
    let n = comm.size();
    for part in buckets {
        let (len, block) = (part.len(), part.len().div_ceil(n));
        let (send, rest) = scratch.split_at_mut(n * block);
        let (blocks, rest) = rest.split_at_mut(n * block);
        let all = &mut rest[..n * block];
        send[..len].copy_from_slice(part);
        send[len..].fill(0.0);
        comm.all_to_all_beside(send, blocks, computing);
        tree_sum_in_place(blocks, n);
        comm.all_gather_beside(&blocks[..block], all, computing);
        part.copy_from_slice(&all[..len]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Activation, Network};

    #[test]
    fn buckets_cover_the_parameters_top_down() {
        let net = Network::builder(784)
            .dense(512, Activation::Relu)
            .batch_norm(Activation::Relu)
            .dense(256, Activation::Relu)
            .dropout(0.1)
            .dense(10, Activation::Softmax)
            .build()
            .unwrap();
        let p = net.parameters().len();
        let buckets = plan(net.layers(), p);
        // The top two dense layers (with dropout) make 133,898 floats: one
        // bucket; batch norm and the first layer the other.
        let top = net.layers()[2].offset();
        assert_eq!(
            buckets,
            vec![
                Bucket {
                    lowest: 2,
                    params: top..p
                },
                Bucket {
                    lowest: 0,
                    params: 0..top
                },
            ]
        );
        // Small networks are one bucket.
        let small = Network::builder(3)
            .dense(4, Activation::Relu)
            .dense(2, Activation::Identity)
            .build()
            .unwrap();
        let all = small.parameters().len();
        assert_eq!(
            plan(small.layers(), all),
            vec![Bucket {
                lowest: 0,
                params: 0..all
            }]
        );
    }
}
