//! LAMB (You et al., 2019): Adam's moments with a layer-wise trust ratio.
//!
//! At step `t` (from 1), for each layer's weights `w` with gradient `g`, rate
//! `η`, decay rates `β₁, β₂` and weight decay `λ` (the paper's Algorithm 2,
//! with the bias correction of its final version and the reference
//! implementations):
//!
//! ```text
//! m ← β₁ m + (1 − β₁) g          v ← β₂ v + (1 − β₂) g²
//! r = (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε) + λ w
//! w ← w − η · ‖w‖ / ‖r‖ · r      (ratio 1 when ‖w‖ or ‖r‖ is 0)
//! ```
//!
//! Biases and batch-norm parameters are left out of the ratio and the decay,
//! as the reference implementations do.

use rayon::prelude::*;

use crate::kernels::{self, reduce};

/// Settings of [`crate::Optimizer::Lamb`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LambConfig {
    /// Learning rate `η`.
    pub lr: f32,
    /// Decay of the first moment `β₁` (default 0.9).
    pub beta1: f32,
    /// Decay of the second moment `β₂` (default 0.999).
    pub beta2: f32,
    /// Added to the denominator `ε` (default 1e-6).
    pub eps: f32,
    /// Weight decay `λ` (default 0.01).
    pub weight_decay: f32,
}

impl Default for LambConfig {
    fn default() -> Self {
        LambConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-6,
            weight_decay: 0.01,
        }
    }
}

/// One chunk of parameters, gradients, first and second moments.
type Chunk<'a> = (((&'a mut [f32], &'a [f32]), &'a mut [f32]), &'a mut [f32]);

/// Elements per partial sum of `‖r‖²` (fixed, so the sum's order is).
const CHUNK: usize = reduce::SQUARES_CHUNK;

/// One LAMB update at step `t` of one layer's parameters `p` (adapted when
/// `adapt`) with `‖p‖` = `w_norm`; `partials` is scratch of
/// `p.len().div_ceil(SQUARES_CHUNK)` slots.
#[allow(clippy::too_many_arguments)]
pub(crate) fn update(
    c: &LambConfig,
    adapt: bool,
    t: u64,
    w_norm: f64,
    (p, g): (&mut [f32], &[f32]),
    (m, v): (&mut [f32], &mut [f32]),
    grad_scale: f32,
    partials: &mut [f64],
) {
    let t = i32::try_from(t).unwrap_or(i32::MAX);
    let bc1 = (1.0 - f64::from(c.beta1).powi(t)) as f32;
    let bc2 = (1.0 - f64::from(c.beta2).powi(t)) as f32;
    let wd = if adapt { c.weight_decay } else { 0.0 };
    let (b1, b2, eps) = (c.beta1, c.beta2, c.eps);
    let r = move |m: f32, v: f32, w: f32| (m / bc1) / ((v / bc2).sqrt() + eps) + wd * w;
    // Moments, and Σ r² over fixed chunks.
    let moments = |(((p, g), m), v): Chunk<'_>, s: &mut f64| {
        let mut sum = 0.0f64;
        for (((p, &g), m), v) in p.iter().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let g = g * grad_scale;
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            sum += f64::from(r(*m, *v, *p)).powi(2);
        }
        *s = sum;
    };
    let partials = &mut partials[..p.len().div_ceil(CHUNK)];
    let parallel = kernels::worth_parallel(p.len());
    if parallel {
        p.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .zip(partials.par_iter_mut())
            .for_each(|(c, s)| moments(c, s));
    } else {
        let chunks = p
            .chunks_mut(CHUNK)
            .zip(g.chunks(CHUNK))
            .zip(m.chunks_mut(CHUNK))
            .zip(v.chunks_mut(CHUNK));
        for (c, s) in chunks.zip(partials.iter_mut()) {
            moments(c, s);
        }
    }
    let r_norm = partials.iter().sum::<f64>().sqrt();
    let trust = if adapt && w_norm > 0.0 && r_norm > 0.0 {
        w_norm / r_norm
    } else {
        1.0
    };
    let rate = (f64::from(c.lr) * trust) as f32;
    let apply = |((p, m), v): ((&mut [f32], &[f32]), &[f32])| {
        for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
            *p -= rate * r(m, v, *p);
        }
    };
    if parallel {
        p.par_chunks_mut(CHUNK)
            .zip(m.par_chunks(CHUNK))
            .zip(v.par_chunks(CHUNK))
            .for_each(apply);
    } else {
        p.chunks_mut(CHUNK)
            .zip(m.chunks(CHUNK))
            .zip(v.chunks(CHUNK))
            .for_each(apply);
    }
}
