//! L1 and L2 penalties on the weights: `l1 Σ|w| + l2 Σ w²` over every dense
//! layer's weights (not biases, not batch norm's γ and β), added to the
//! gradients once per step and reported apart from the data loss. Unlike
//! AdamW's decoupled decay, they go through the optimizer like the data's
//! gradients (and like Keras's `regularizers.L1L2`).

use super::Network;

/// The penalty's weights (both 0 by default: none).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Penalty {
    /// `λ₁` of `λ₁ Σ|w|`; its gradient is `λ₁ sign(w)` (0 at `w = 0`).
    pub l1: f32,
    /// `λ₂` of `λ₂ Σ w²`; its gradient is `2 λ₂ w`.
    pub l2: f32,
}

impl Penalty {
    /// Whether there is any penalty.
    pub fn is_zero(self) -> bool {
        self.l1 == 0.0 && self.l2 == 0.0
    }
}

impl Network {
    /// The penalty (`l1 Σ|w| + l2 Σ w²` over the dense layers' weights) at the
    /// weights of the last backward pass, apart from the data loss; 0 without one.
    pub fn penalty(&self) -> f32 {
        self.ws.penalty
    }

    /// Adds the penalty's gradient to the weights' gradients and keeps its
    /// value (summed in `f64`, layer after layer in order).
    pub(super) fn add_penalty(&mut self) {
        let p = self.penalty_weights;
        if p.is_zero() {
            self.ws.penalty = 0.0;
            return;
        }
        let mut total = 0.0f64;
        for seg in self.segments.iter().filter(|s| s.adapt) {
            let range = seg.start..seg.start + seg.len;
            for (g, &w) in self.grads[range.clone()]
                .iter_mut()
                .zip(&self.params[range])
            {
                let sign = if w > 0.0 {
                    1.0
                } else if w < 0.0 {
                    -1.0
                } else {
                    0.0
                };
                *g += p.l1 * sign + 2.0 * p.l2 * w;
                total += f64::from(p.l1) * f64::from(w.abs())
                    + f64::from(p.l2) * f64::from(w) * f64::from(w);
            }
        }
        self.ws.penalty = total as f32;
    }
}
