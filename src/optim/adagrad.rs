//! Adagrad (Duchi, Hazan & Singer, 2011), as PyTorch's `torch.optim.Adagrad`.
//!
//! At step `t` (from 1), with gradient `g`, learning rate `η`, decay `δ`,
//! weight decay `λ`:
//!
//! ```text
//! g ← g + λ p
//! s ← s + g²                 (s starts at the initial accumulator value)
//! p ← p − η / (1 + (t − 1) δ) · g / (√s + ε)
//! ```

/// Settings of [`crate::Optimizer::Adagrad`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdagradConfig {
    /// Learning rate `η`.
    pub lr: f32,
    /// Learning-rate decay `δ` per step (default 0).
    pub lr_decay: f32,
    /// Added to the denominator `ε` (PyTorch's default 1e-10).
    pub eps: f32,
    /// Where the sum of squares starts (default 0).
    pub initial_accumulator: f32,
    /// L2 weight decay `λ`, added to the gradient.
    pub weight_decay: f32,
}

impl Default for AdagradConfig {
    fn default() -> Self {
        AdagradConfig {
            lr: 0.01,
            lr_decay: 0.0,
            eps: 1e-10,
            initial_accumulator: 0.0,
            weight_decay: 0.0,
        }
    }
}

crate::cpu::per_isa! {
    /// One Adagrad update at step `t` over a run of parameters, with `sum` the
    /// running sum of squared gradients; gradients are first multiplied by
    /// `grad_scale` (gradient clipping).
    pub(crate) fn update(
        c: &AdagradConfig,
        t: u64,
        p: &mut [f32],
        g: &[f32],
        sum: &mut [f32],
        grad_scale: f32,
    ) {
        let clr = (f64::from(c.lr) / (1.0 + (t - 1) as f64 * f64::from(c.lr_decay))) as f32;
        let (eps, wd) = (c.eps, c.weight_decay);
        for ((p, &g), s) in p.iter_mut().zip(g).zip(sum.iter_mut()) {
            let g = g * grad_scale + wd * *p;
            *s += g * g;
            *p -= clr * (g / (s.sqrt() + eps));
        }
    }
}
