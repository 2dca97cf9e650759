//! The gradients' exchange between processes, overlapped with the backward
//! pass.
//!
//! Backpropagation finishes the layers' gradients from the top down, so the
//! parameters are cut into **buckets**, runs of whole layers planned once from
//! the layer shapes (the same on every process). As soon as the backward pass
//! of a step's last chunk has made the weight gradient of a bucket's lowest
//! layer, the bucket goes to an exchange thread, which all-gathers every
//! process's partial sum of it and adds them in the shards' tree, while the
//! layers below compute. The buckets travel in one order, top down, on every
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

/// Runs on the exchange thread: for each bucket's gradient received (its
/// process's partial sum, top bucket first), every process's copy is
/// all-gathered into `gathered` (`processes ×` the parameters) and added in
/// the tree, into the bucket. `computing` tells whether the backward pass
/// still runs beside it (see [`Communicator::all_gather_beside`]).
pub(crate) fn exchange_buckets(
    comm: &dyn Communicator,
    buckets: mpsc::Receiver<&mut [f32]>,
    mut gathered: &mut [f32],
    computing: &dyn Fn() -> bool,
) {
    let processes = comm.size();
    for part in buckets {
        let rest = std::mem::take(&mut gathered);
        let (below, all) = rest.split_at_mut(rest.len() - processes * part.len());
        gathered = below;
        comm.all_gather_beside(part, all, computing);
        tree_sum_in_place(all, processes);
        part.copy_from_slice(&all[..part.len()]);
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
