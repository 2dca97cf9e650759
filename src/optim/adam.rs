//! Adam (Kingma & Ba, 2015) and AdamW (Loshchilov & Hutter, 2019).
//!
//! At step `t` (from 1), with gradient `g`, learning rate `η`, decay rates `β₁, β₂`:
//!
//! ```text
//! Adam:   g ← g + λ p                  (L2 weight decay, coupled)
//! AdamW:  p ← p (1 − η λ)              (decoupled weight decay)
//!         m ← β₁ m + (1 − β₁) g
//!         v ← β₂ v + (1 − β₂) g²
//!         p ← p − (η / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
//! ```
//!
//! The last line is the paper's `m̂ / (√v̂ + ε)` arranged as PyTorch computes it.

/// Settings of [`crate::Optimizer::Adam`] and [`crate::Optimizer::AdamW`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Learning rate `η`.
    pub lr: f32,
    /// Decay of the first-moment estimate `β₁`.
    pub beta1: f32,
    /// Decay of the second-moment estimate `β₂`.
    pub beta2: f32,
    /// Added to the denominator `ε`.
    pub eps: f32,
    /// Weight decay `λ`: coupled (L2) for Adam, decoupled for AdamW.
    pub weight_decay: f32,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

crate::cpu::per_isa! {
    /// One Adam/AdamW update at step `t` over a run of parameters; gradients are first
    /// multiplied by `grad_scale` (gradient clipping).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn update(
        c: &AdamConfig,
        decoupled: bool,
        t: u64,
        p: &mut [f32],
        g: &[f32],
        m: &mut [f32],
        v: &mut [f32],
        grad_scale: f32,
    ) {
        let t = i32::try_from(t).unwrap_or(i32::MAX);
        let bc1 = 1.0 - f64::from(c.beta1).powi(t);
        let bc2 = 1.0 - f64::from(c.beta2).powi(t);
        let step_size = (f64::from(c.lr) / bc1) as f32;
        let inv_sqrt_bc2 = (1.0 / bc2.sqrt()) as f32;
        let (b1, b2, eps) = (c.beta1, c.beta2, c.eps);
        let (coupled_wd, shrink) = if decoupled {
            (0.0, 1.0 - c.lr * c.weight_decay)
        } else {
            (c.weight_decay, 1.0)
        };
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let g = g * grad_scale + coupled_wd * *p;
            *p *= shrink;
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *p -= step_size * *m / (v.sqrt() * inv_sqrt_bc2 + eps);
        }
    }
}
