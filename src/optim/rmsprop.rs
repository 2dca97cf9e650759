//! RMSprop (Tieleman & Hinton, 2012), as PyTorch's `torch.optim.RMSprop`.
//!
//! With gradient `g`, learning rate `η`, smoothing `α`, weight decay `λ`:
//!
//! ```text
//! g ← g + λ p
//! s ← α s + (1 − α) g²                       (square average)
//! centred:  a ← α a + (1 − α) g,  d = √(s − a²) + ε   (a as `torch.lerp`)
//! else:     d = √s + ε
//! momentum μ > 0:  b ← μ b + g / d,  p ← p − η b
//! else:            p ← p − η g / d
//! ```

/// Settings of [`crate::Optimizer::RmsProp`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RmsPropConfig {
    /// Learning rate `η`.
    pub lr: f32,
    /// Smoothing constant `α` of the square average (PyTorch's default 0.99).
    pub alpha: f32,
    /// Added to the denominator `ε` (default 1e-8).
    pub eps: f32,
    /// Momentum `μ` in `[0, 1)` (default 0).
    pub momentum: f32,
    /// Normalise by the variance estimate, `s − a²`, rather than `s`.
    pub centered: bool,
    /// L2 weight decay `λ`, added to the gradient.
    pub weight_decay: f32,
}

impl Default for RmsPropConfig {
    fn default() -> Self {
        RmsPropConfig {
            lr: 0.01,
            alpha: 0.99,
            eps: 1e-8,
            momentum: 0.0,
            centered: false,
            weight_decay: 0.0,
        }
    }
}

crate::cpu::per_isa! {
    /// One RMSprop update over a run of parameters: `square` is `s`, `buffer`
    /// the momentum buffer `b`, `average` the gradient average `a` (the last
    /// two untouched when not used); gradients are first multiplied by
    /// `grad_scale` (gradient clipping).
    pub(crate) fn update(
        c: &RmsPropConfig,
        p: &mut [f32],
        g: &[f32],
        square: &mut [f32],
        buffer: &mut [f32],
        average: &mut [f32],
        grad_scale: f32,
    ) {
        let (lr, alpha, eps, mu, wd) = (c.lr, c.alpha, c.eps, c.momentum, c.weight_decay);
        let state = square.iter_mut().zip(buffer.iter_mut()).zip(average.iter_mut());
        for ((p, &g), ((s, b), a)) in p.iter_mut().zip(g).zip(state) {
            let g = g * grad_scale + wd * *p;
            *s = alpha * *s + (1.0 - alpha) * g * g;
            let d = if c.centered {
                *a = lerp(*a, g, 1.0 - alpha);
                (*s - *a * *a).sqrt() + eps
            } else {
                s.sqrt() + eps
            };
            if mu > 0.0 {
                *b = mu * *b + g / d;
                *p -= lr * *b;
            } else {
                *p -= lr * (g / d);
            }
        }
    }
}

/// `start + weight·(end − start)`, evaluated as `torch.lerp` does (from the
/// nearer end), so the centred average has PyTorch's bits.
#[inline(always)]
fn lerp(start: f32, end: f32, weight: f32) -> f32 {
    if weight < 0.5 {
        start + weight * (end - start)
    } else {
        end - (end - start) * (1.0 - weight)
    }
}
