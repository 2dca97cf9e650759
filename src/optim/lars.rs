//! LARS (You, Gitman & Ginsburg, 2017): SGD with momentum whose rate is scaled,
//! layer by layer, by a trust ratio.
//!
//! For each layer's weights `w` with gradient `g`, global rate `γ`, trust
//! coefficient `η`, weight decay `β` and momentum `μ` (the paper's Algorithm 1):
//!
//! ```text
//! λ = η ‖w‖ / (‖g‖ + β ‖w‖)          (1 when ‖w‖ or ‖g‖ is 0)
//! v ← μ v + γ λ (g + β w)
//! w ← w − v
//! ```
//!
//! Biases and batch-norm parameters are left out of the adaptation and the
//! decay (`λ = 1`, `β = 0`), as the paper's experiments do.

/// Settings of [`crate::Optimizer::Lars`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LarsConfig {
    /// Global learning rate `γ`.
    pub lr: f32,
    /// Momentum `μ` in `[0, 1)` (default 0.9).
    pub momentum: f32,
    /// Weight decay `β` (default 0).
    pub weight_decay: f32,
    /// Trust coefficient `η` (the paper's 0.001).
    pub trust: f32,
}

impl Default for LarsConfig {
    fn default() -> Self {
        LarsConfig {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 0.0,
            trust: 0.001,
        }
    }
}

/// One LARS update of one layer's parameters `p` (adapted when `adapt`), from
/// gradients `g` scaled by `grad_scale`; `norms` are `(‖p‖, ‖g‖)` before it,
/// `‖g‖` of the unscaled gradients.
pub(crate) fn update(
    c: &LarsConfig,
    adapt: bool,
    (w_norm, g_norm): (f64, f64),
    p: &mut [f32],
    g: &[f32],
    v: &mut [f32],
    grad_scale: f32,
) {
    let g_norm = g_norm * f64::from(grad_scale);
    let (trust, wd) = if adapt {
        let wd = f64::from(c.weight_decay);
        let t = if w_norm > 0.0 && g_norm > 0.0 {
            f64::from(c.trust) * w_norm / (g_norm + wd * w_norm)
        } else {
            1.0
        };
        (t, c.weight_decay)
    } else {
        (1.0, 0.0)
    };
    let rate = (f64::from(c.lr) * trust) as f32;
    let mu = c.momentum;
    for ((p, &g), v) in p.iter_mut().zip(g).zip(v.iter_mut()) {
        *v = mu * *v + rate * (g * grad_scale + wd * *p);
        *p -= *v;
    }
}
