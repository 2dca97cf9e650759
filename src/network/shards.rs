//! Shards: a batch split into a fixed number `S` of parts whose gradients are
//! summed in one fixed order, a pairwise tree over the shard indices.
//!
//! ```text
//! S = 4:   g = (g₀ + g₁) + (g₂ + g₃)
//! ```
//!
//! Each shard's gradient is summed from zero over its own rows (in
//! micro-batches, if asked), so it is the same wherever it is computed; the
//! tree then fixes how they are added. Processes that each own a run of
//! `S / N` shards (`S / N` a power of two) compute whole subtrees, and adding
//! their results in the same tree gives the same bits as one process: that is
//! what makes data-parallel training independent of the number of processes.
//! The batch's loss is likewise the sum of the shards' losses in shard order.

use std::ops::Range;

use rayon::prelude::*;

/// Rows of shard `s` of `len` rows split into `shards`: balanced, the first
/// `len % shards` shards one row longer.
pub(crate) fn shard_rows(len: usize, shards: usize, s: usize) -> Range<usize> {
    let shards = shards.max(1);
    let (base, extra) = (len / shards, len % shards);
    let start = s * base + s.min(extra);
    start..start + base + usize::from(s < extra)
}

/// The gradients of shards pushed in order, added in the pairwise tree.
///
/// A binary counter: the stack holds one partial sum per completed subtree,
/// its level beside it; a new shard's gradient merges with the top while the
/// levels match. For `S` a power of two this is the full tree; for others,
/// the leftover subtrees are added from the right at [`ShardSum::finish`].
#[derive(Debug, Clone, Default)]
pub(crate) struct ShardSum {
    /// Completed subtrees: (level, sum), lowest level on top.
    stack: Vec<(u32, Vec<f32>)>,
    /// Buffers to reuse, so that a step allocates nothing once warm.
    spare: Vec<Vec<f32>>,
}

impl ShardSum {
    /// Takes the next shard's gradient out of `grads` (leaving a buffer of the
    /// same length whose contents the next shard overwrites).
    pub(crate) fn push(&mut self, grads: &mut Vec<f32>) {
        let mut next = self.spare.pop().unwrap_or_default();
        next.resize(grads.len(), 0.0);
        std::mem::swap(grads, &mut next);
        let (mut sum, mut level) = (next, 0);
        while let Some((top, _)) = self.stack.last()
            && *top == level
        {
            let (_, mut left) = self.stack.pop().expect("a top");
            add_into(&mut left, &sum);
            self.spare.push(sum);
            (sum, level) = (left, level + 1);
        }
        self.stack.push((level, sum));
    }

    /// The sum of every shard pushed since the last call, into `grads`.
    pub(crate) fn finish(&mut self, grads: &mut Vec<f32>) {
        let Some((_, mut sum)) = self.stack.pop() else {
            return;
        };
        while let Some((_, mut left)) = self.stack.pop() {
            add_into(&mut left, &sum);
            self.spare.push(sum);
            sum = left;
        }
        std::mem::swap(grads, &mut sum);
        self.spare.push(sum);
    }

    /// [`ShardSum::push`] then [`ShardSum::finish`] of one more shard, over
    /// the parameters `range` only: `part` is that shard's gradient there, and
    /// becomes the sum of every shard there (the same bits, element by
    /// element). Lets the last shard's gradient be summed a layer at a time,
    /// as the backward pass finishes each; [`ShardSum::recycle`] ends the step.
    pub(crate) fn finish_range(&self, part: &mut [f32], range: Range<usize>) {
        // push and finish both add `left + sum` with the stack's entries from
        // the top down (`sum + left` is the same: IEEE addition commutes).
        for (_, left) in self.stack.iter().rev() {
            part.iter_mut()
                .zip(&left[range.clone()])
                .for_each(|(sum, l)| *sum += l);
        }
    }

    /// Drops the pushed shards (their buffers kept for reuse), after
    /// [`ShardSum::finish_range`] has used them.
    pub(crate) fn recycle(&mut self) {
        self.spare.extend(self.stack.drain(..).map(|(_, sum)| sum));
    }
}

/// Adds the `parts` (equal lengths, a power of two of them, one after the
/// other in `all`) in the pairwise tree, `((p₀ + p₁) + (p₂ + p₃)) + …`: the
/// sum lands in the first part. The same bits as pushing them in order into a
/// [`ShardSum`] and finishing. Runs on the calling thread alone (it is made
/// by the exchange thread, beside a backward pass that has the pool).
pub(crate) fn tree_sum_in_place(all: &mut [f32], parts: usize) {
    let len = all.len() / parts.max(1);
    let mut stride = 1;
    while stride < parts {
        for first in (0..parts).step_by(2 * stride) {
            let (left, right) = all.split_at_mut((first + stride) * len);
            left[first * len..(first + 1) * len]
                .iter_mut()
                .zip(&right[..len])
                .for_each(|(l, r)| *l += r);
        }
        stride *= 2;
    }
}

/// `left ← left + right`, element by element (in parallel for long vectors:
/// each element's sum is the same whoever computes it).
fn add_into(left: &mut [f32], right: &[f32]) {
    const BLOCK: usize = 1 << 16;
    if left.len() > 2 * BLOCK {
        left.par_chunks_mut(BLOCK)
            .zip(right.par_chunks(BLOCK))
            .for_each(|(l, r)| l.iter_mut().zip(r).for_each(|(a, b)| *a += b));
    } else {
        left.iter_mut().zip(right).for_each(|(a, b)| *a += b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_balanced_and_cover_the_rows() {
        let rows: Vec<Range<usize>> = (0..4).map(|s| shard_rows(10, 4, s)).collect();
        assert_eq!(rows, vec![0..3, 3..6, 6..8, 8..10]);
        assert_eq!(shard_rows(2, 4, 3), 2..2);
        assert_eq!(shard_rows(7, 1, 0), 0..7);
    }

    /// Values whose sums round differently in different orders, so that the
    /// order is seen in the bits.
    fn shard(s: usize) -> Vec<f32> {
        (0..5)
            .map(|i: i32| {
                (1.0 + s as f32 * 0.1) * 10f32.powi(i * 3 - 6) + (s as i32 * i) as f32 * 1e7
            })
            .collect()
    }

    fn sum_of(shards: usize) -> Vec<f32> {
        let mut tree = ShardSum::default();
        let mut grads = vec![0.0; 5];
        for s in 0..shards {
            grads = shard(s);
            tree.push(&mut grads);
        }
        tree.finish(&mut grads);
        grads
    }

    #[test]
    fn the_sum_is_the_pairwise_tree() {
        let add =
            |a: &[f32], b: &[f32]| -> Vec<f32> { a.iter().zip(b).map(|(x, y)| x + y).collect() };
        let g: Vec<Vec<f32>> = (0..8).map(shard).collect();
        let pair = |i: usize| add(&g[i], &g[i + 1]);
        let four = |i: usize| add(&pair(i), &pair(i + 2));
        assert_eq!(sum_of(8), add(&four(0), &four(4)));
        assert_eq!(sum_of(4), four(0));
        assert_eq!(sum_of(1), g[0]);
        // Three: (g₀ + g₁) + g₂.
        assert_eq!(sum_of(3), add(&pair(0), &g[2]));
        // The tree is not the sequential sum (else the test would prove nothing).
        let sequential = (1..8).fold(g[0].clone(), |acc, i| add(&acc, &g[i]));
        assert_ne!(sum_of(8), sequential);
    }

    #[test]
    fn the_last_shard_summed_range_by_range_gives_the_same_bits() {
        for shards in [2, 3, 5, 8] {
            let mut tree = ShardSum::default();
            for s in 0..shards - 1 {
                tree.push(&mut shard(s));
            }
            let mut last = shard(shards - 1);
            for range in [3..5, 0..3] {
                tree.finish_range(&mut last[range.clone()], range);
            }
            tree.recycle();
            assert_eq!(last, sum_of(shards), "{shards} shards");
            assert!(tree.stack.is_empty());
        }
    }

    #[test]
    fn the_tree_in_place_is_the_shards_tree() {
        for parts in [1, 2, 4, 8] {
            let mut all: Vec<f32> = (0..parts).flat_map(shard).collect();
            tree_sum_in_place(&mut all, parts);
            assert_eq!(all[..5], sum_of(parts)[..], "{parts} parts");
        }
    }

    #[test]
    fn subtrees_summed_apart_then_together_give_the_same_bits() {
        // Two "processes" of 4 shards each, then their two sums.
        let half = |first: usize| {
            let mut tree = ShardSum::default();
            let mut grads = Vec::new();
            for s in first..first + 4 {
                grads = shard(s);
                tree.push(&mut grads);
            }
            tree.finish(&mut grads);
            grads
        };
        let mut tree = ShardSum::default();
        let mut grads = half(0);
        tree.push(&mut grads);
        grads = half(4);
        tree.push(&mut grads);
        tree.finish(&mut grads);
        assert_eq!(grads, sum_of(8));
    }
}
