//! Stochastic gradient descent with momentum, Nesterov momentum and weight decay.
//!
//! With gradient `g`, parameters `p`, velocity `v` (starting at 0), learning rate
//! `η`, momentum `μ` and weight decay `λ` (PyTorch's conventions, no dampening):
//!
//! ```text
//! g ← g + λ p
//! v ← μ v + g
//! p ← p − η (g + μ v)   Nesterov
//! p ← p − η v           otherwise (plain SGD when μ = 0)
//! ```

/// Settings of [`crate::Optimizer::Sgd`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdConfig {
    /// Learning rate `η`.
    pub lr: f32,
    /// Momentum `μ` in `[0, 1)`; 0 is plain SGD.
    pub momentum: f32,
    /// Use Nesterov's look-ahead form of momentum.
    pub nesterov: bool,
    /// L2 weight decay `λ`, added to the gradient.
    pub weight_decay: f32,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            lr: 0.01,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }
}

crate::cpu::per_isa! {
    /// One SGD update over a run of parameters; gradients are first multiplied by
    /// `grad_scale` (gradient clipping). `velocity` is untouched when `μ = 0`.
    pub(crate) fn update(
        c: &SgdConfig,
        p: &mut [f32],
        g: &[f32],
        velocity: &mut [f32],
        grad_scale: f32,
    ) {
        let (lr, mu, wd) = (c.lr, c.momentum, c.weight_decay);
        if mu == 0.0 {
            for (p, &g) in p.iter_mut().zip(g) {
                *p -= lr * (g * grad_scale + wd * *p);
            }
            return;
        }
        for ((p, &g), v) in p.iter_mut().zip(g).zip(velocity.iter_mut()) {
            let g = g * grad_scale + wd * *p;
            *v = mu * *v + g;
            let step = if c.nesterov { g + mu * *v } else { *v };
            *p -= lr * step;
        }
    }
}
