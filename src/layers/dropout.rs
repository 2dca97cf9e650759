//! Inverted dropout (Srivastava et al., 2014).
//!
//! ```text
//! training   A = X ⊙ M / (1 − p)     M[r, j] = 1 with probability 1 − p, else 0
//! inference  A = X
//! backward   dX = dA ⊙ M / (1 − p)
//! ```
//!
//! Scaling the survivors by `1/(1 − p)` keeps each output's expectation equal
//! to its input, so inference needs no correction.
//!
//! The mask is a function, not a random stream: `M[r, j]` is a hash of the
//! network's seed, the optimizer step, the layer's index, the row's position
//! `r` in the step's batch and the column `j`. So a run is reproducible; a
//! micro-batched step draws, row for row, the mask of the whole-batch step; a
//! resumed run draws the masks an uninterrupted one would; and the backward
//! pass recomputes the mask instead of storing it.

use crate::kernels;

/// Dropout over the previous layer's outputs: each is zeroed with probability
/// `rate` in training and the rest scaled by `1/(1 − rate)`; the identity in
/// inference. No parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Dropout {
    /// Width of its input and output.
    pub width: usize,
    /// Probability `p` that an element is dropped, in `[0, 1)`.
    pub rate: f32,
    /// Where its (zero) parameters would start: the offset of the next layer's.
    pub offset: usize,
}

/// What a training pass's masks depend on besides the row and column.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MaskKey {
    /// The network's seed.
    pub seed: u64,
    /// The optimizer step the pass belongs to (updates applied before it).
    pub step: u64,
    /// The layer's index in the network.
    pub layer: usize,
    /// Position in the step's batch of the pass's first row.
    pub first_row: usize,
}

impl Dropout {
    /// The training pass: `dst = src ⊙ M / (1 − p)` for `rows` rows (the forward
    /// pass, and the backward pass's `dX` from `dA`: the same map).
    pub(crate) fn apply(&self, key: MaskKey, src: &[f32], dst: &mut [f32], rows: usize) {
        let w = self.width;
        let (src, dst) = (&src[..rows * w], &mut dst[..rows * w]);
        if self.rate == 0.0 {
            dst.copy_from_slice(src);
            return;
        }
        let threshold = self.threshold();
        let scale = 1.0 / (1.0 - self.rate);
        let base = mix(mix(mix(key.seed ^ SALT) ^ key.step) ^ key.layer as u64);
        kernels::for_rows_zip(src, w, dst, w, |first, src, dst| {
            for (r, (s, d)) in src.chunks(w).zip(dst.chunks_mut(w)).enumerate() {
                let row = mix(base ^ (key.first_row + first + r) as u64);
                for (j, (&x, y)) in s.iter().zip(d.iter_mut()).enumerate() {
                    *y = if keeps(row, j, threshold) {
                        x * scale
                    } else {
                        0.0
                    };
                }
            }
        });
    }

    /// `p` as a 32-bit threshold: an element is kept when its hash's top 32
    /// bits are at least `p·2^32`, which happens with probability `1 − p`
    /// (to within 2^-32).
    fn threshold(&self) -> u32 {
        (f64::from(self.rate) * 4_294_967_296.0)
            .round()
            .min(u32::MAX as f64) as u32
    }
}

/// Keeps the seed 0 from mixing to 0 at the first step.
const SALT: u64 = 0x6a09_e667_f3bc_c909;

/// Whether column `j` of the row whose hash is `row` survives.
#[inline(always)]
fn keeps(row: u64, j: usize, threshold: u32) -> bool {
    (mix(row ^ (j as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)) >> 32) as u32 >= threshold
}

/// SplitMix64's finaliser (Steele, Lea and Flood, 2014): a bijection of `u64`
/// whose every output bit depends on every input bit.
#[inline(always)]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(first_row: usize) -> MaskKey {
        MaskKey {
            seed: 7,
            step: 3,
            layer: 1,
            first_row,
        }
    }

    #[test]
    fn drops_about_the_rate_and_scales_the_rest() {
        let d = Dropout {
            width: 100,
            rate: 0.3,
            offset: 0,
        };
        let rows = 2000;
        let x = vec![2.0f32; rows * 100];
        let mut y = vec![f32::NAN; rows * 100];
        d.apply(key(0), &x, &mut y, rows);
        let dropped = y.iter().filter(|&&v| v == 0.0).count() as f64 / y.len() as f64;
        // 200,000 draws: the standard error of the fraction is about 0.001.
        assert!((dropped - 0.3).abs() < 0.005, "dropped {dropped}");
        let kept = 2.0 / 0.7f32;
        assert!(y.iter().all(|&v| v == 0.0 || v == kept));
        let mean = y.iter().map(|&v| f64::from(v)).sum::<f64>() / y.len() as f64;
        assert!((mean - 2.0).abs() < 0.02, "mean {mean}");
    }

    #[test]
    fn a_block_of_rows_draws_the_rows_of_the_whole() {
        let d = Dropout {
            width: 37,
            rate: 0.5,
            offset: 0,
        };
        let x: Vec<f32> = (0..50 * 37).map(|i| i as f32 + 1.0).collect();
        let mut whole = vec![0.0; x.len()];
        d.apply(key(0), &x, &mut whole, 50);
        let mut part = vec![0.0; 20 * 37];
        d.apply(key(30), &x[30 * 37..], &mut part, 20);
        assert_eq!(part, whole[30 * 37..]);
        let mut other_step = vec![0.0; x.len()];
        d.apply(MaskKey { step: 4, ..key(0) }, &x, &mut other_step, 50);
        assert_ne!(other_step, whole);
    }

    #[test]
    fn rate_zero_is_the_identity() {
        let d = Dropout {
            width: 3,
            rate: 0.0,
            offset: 0,
        };
        let x = [1.0, -2.0, 3.5, 0.25, 5.0, -6.0];
        let mut y = [0.0; 6];
        d.apply(key(0), &x, &mut y, 2);
        assert_eq!(y, x);
    }
}
