//! Optimizers: how gradients become parameter updates.
//!
//! All parameters of a network sit in one flat buffer, so an update is one fused
//! pass over parameters, gradients and optimizer state, split over rayon threads
//! in fixed chunks (element-wise, so the split never changes the result).
//! Optional gradient-norm clipping scales every gradient by
//! `min(1, max_norm / (‖g‖₂ + 1e-6))` inside that same pass.

mod adagrad;
mod adam;
mod lamb;
mod lars;
mod rmsprop;
pub mod schedule;
mod sgd;

pub use adagrad::AdagradConfig;
pub use adam::AdamConfig;
pub use lamb::LambConfig;
pub use lars::LarsConfig;
pub use rmsprop::RmsPropConfig;
pub use schedule::{Every, LrSchedule, PlateauState, Schedule};
pub use sgd::SgdConfig;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::kernels::{self, reduce};

/// Parameters per rayon task in an update.
const CHUNK: usize = 1 << 14;

/// The optimizer and its settings.
///
/// ```
/// use feedforward::{Optimizer, SgdConfig};
/// let adam = Optimizer::adam(1e-3);
/// let nesterov = Optimizer::Sgd(SgdConfig { lr: 0.1, momentum: 0.9, nesterov: true, ..Default::default() });
/// assert_eq!(nesterov.learning_rate(), 0.1);
/// # let _ = adam;
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Optimizer {
    /// Stochastic gradient descent (momentum, Nesterov, L2 weight decay).
    Sgd(SgdConfig),
    /// Adam with L2 weight decay added to the gradient.
    Adam(AdamConfig),
    /// Adam with decoupled weight decay.
    AdamW(AdamConfig),
    /// RMSprop (momentum, centred, L2 weight decay).
    RmsProp(RmsPropConfig),
    /// Adagrad (learning-rate decay, L2 weight decay).
    Adagrad(AdagradConfig),
    /// LARS: momentum SGD with a layer-wise trust ratio, for large batches.
    Lars(LarsConfig),
    /// LAMB: Adam with a layer-wise trust ratio, for large batches.
    Lamb(LambConfig),
}

/// A run of the flat parameters that a layer-wise optimizer treats as one
/// layer: a dense layer's weights (adapted), its bias, or a batch-norm
/// layer's γ and β (neither adapted nor decayed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    /// First parameter.
    pub start: usize,
    /// Parameters in it.
    pub len: usize,
    /// Whether the trust ratio and weight decay apply.
    pub adapt: bool,
}

impl Default for Optimizer {
    fn default() -> Self {
        Optimizer::Adam(AdamConfig::default())
    }
}

impl Optimizer {
    /// Plain SGD with learning rate `lr`.
    pub fn sgd(lr: f32) -> Self {
        Optimizer::Sgd(SgdConfig {
            lr,
            ..SgdConfig::default()
        })
    }

    /// SGD with momentum.
    pub fn sgd_momentum(lr: f32, momentum: f32) -> Self {
        Optimizer::Sgd(SgdConfig {
            lr,
            momentum,
            ..SgdConfig::default()
        })
    }

    /// Adam with the usual constants (β₁ = 0.9, β₂ = 0.999, ε = 1e-8).
    pub fn adam(lr: f32) -> Self {
        Optimizer::Adam(AdamConfig {
            lr,
            ..AdamConfig::default()
        })
    }

    /// AdamW with decoupled weight decay `weight_decay`.
    pub fn adamw(lr: f32, weight_decay: f32) -> Self {
        Optimizer::AdamW(AdamConfig {
            lr,
            weight_decay,
            ..AdamConfig::default()
        })
    }

    /// RMSprop with learning rate `lr` and PyTorch's other defaults.
    pub fn rmsprop(lr: f32) -> Self {
        Optimizer::RmsProp(RmsPropConfig {
            lr,
            ..RmsPropConfig::default()
        })
    }

    /// Adagrad with learning rate `lr` and PyTorch's other defaults.
    pub fn adagrad(lr: f32) -> Self {
        Optimizer::Adagrad(AdagradConfig {
            lr,
            ..AdagradConfig::default()
        })
    }

    /// LARS with global rate `lr` and the paper's other settings.
    pub fn lars(lr: f32) -> Self {
        Optimizer::Lars(LarsConfig {
            lr,
            ..LarsConfig::default()
        })
    }

    /// LAMB with rate `lr` and the reference implementations' other settings.
    pub fn lamb(lr: f32) -> Self {
        Optimizer::Lamb(LambConfig {
            lr,
            ..LambConfig::default()
        })
    }

    /// The lower-case name: `sgd`, `adam`, `adamw`, `rmsprop`, `adagrad`,
    /// `lars` or `lamb`.
    pub fn name(&self) -> &'static str {
        match self {
            Optimizer::Sgd(_) => "sgd",
            Optimizer::Adam(_) => "adam",
            Optimizer::AdamW(_) => "adamw",
            Optimizer::RmsProp(_) => "rmsprop",
            Optimizer::Adagrad(_) => "adagrad",
            Optimizer::Lars(_) => "lars",
            Optimizer::Lamb(_) => "lamb",
        }
    }

    /// The learning rate.
    pub fn learning_rate(&self) -> f32 {
        match self {
            Optimizer::Sgd(c) => c.lr,
            Optimizer::Adam(c) | Optimizer::AdamW(c) => c.lr,
            Optimizer::RmsProp(c) => c.lr,
            Optimizer::Adagrad(c) => c.lr,
            Optimizer::Lars(c) => c.lr,
            Optimizer::Lamb(c) => c.lr,
        }
    }

    /// Changes the learning rate (for schedules), keeping the optimizer's state.
    pub fn set_learning_rate(&mut self, lr: f32) {
        match self {
            Optimizer::Sgd(c) => c.lr = lr,
            Optimizer::Adam(c) | Optimizer::AdamW(c) => c.lr = lr,
            Optimizer::RmsProp(c) => c.lr = lr,
            Optimizer::Adagrad(c) => c.lr = lr,
            Optimizer::Lars(c) => c.lr = lr,
            Optimizer::Lamb(c) => c.lr = lr,
        }
    }

    /// Checks every setting's range.
    ///
    /// # Errors
    /// [`Error::Config`] naming the setting.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str, v: f32| {
            Err(Error::Config(format!(
                "{}: {what} = {v} is out of range",
                self.name()
            )))
        };
        let lr = self.learning_rate();
        if !(lr.is_finite() && lr > 0.0) {
            return bad("learning rate (must be > 0)", lr);
        }
        use Bound::{Fraction, NonNegative, Positive};
        let checks: &[(&str, f32, Bound)] = match self {
            Optimizer::Sgd(c) => &[
                ("momentum", c.momentum, Fraction),
                ("weight decay", c.weight_decay, NonNegative),
            ],
            Optimizer::Adam(c) | Optimizer::AdamW(c) => &[
                ("beta1", c.beta1, Fraction),
                ("beta2", c.beta2, Fraction),
                ("eps", c.eps, Positive),
                ("weight decay", c.weight_decay, NonNegative),
            ],
            Optimizer::RmsProp(c) => &[
                ("alpha", c.alpha, Fraction),
                ("momentum", c.momentum, Fraction),
                ("eps", c.eps, Positive),
                ("weight decay", c.weight_decay, NonNegative),
            ],
            Optimizer::Adagrad(c) => &[
                ("lr_decay", c.lr_decay, NonNegative),
                ("initial accumulator", c.initial_accumulator, NonNegative),
                ("eps", c.eps, Positive),
                ("weight decay", c.weight_decay, NonNegative),
            ],
            Optimizer::Lars(c) => &[
                ("momentum", c.momentum, Fraction),
                ("weight decay", c.weight_decay, NonNegative),
                ("trust coefficient", c.trust, NonNegative),
            ],
            Optimizer::Lamb(c) => &[
                ("beta1", c.beta1, Fraction),
                ("beta2", c.beta2, Fraction),
                ("eps", c.eps, Positive),
                ("weight decay", c.weight_decay, NonNegative),
            ],
        };
        for &(what, v, bound) in checks {
            if !bound.holds(v) {
                return bad(&format!("{what} ({})", bound.rule()), v);
            }
        }
        Ok(())
    }
}

/// The range a setting must lie in.
#[derive(Debug, Clone, Copy)]
enum Bound {
    /// In `[0, 1)`: momenta and decay rates.
    Fraction,
    /// Finite and `> 0`.
    Positive,
    /// Finite and `>= 0`.
    NonNegative,
}

impl Bound {
    fn holds(self, v: f32) -> bool {
        match self {
            Bound::Fraction => (0.0..1.0).contains(&v),
            Bound::Positive => v.is_finite() && v > 0.0,
            Bound::NonNegative => v.is_finite() && v >= 0.0,
        }
    }

    fn rule(self) -> &'static str {
        match self {
            Bound::Fraction => "must be in [0, 1)",
            Bound::Positive => "must be > 0",
            Bound::NonNegative => "must be >= 0",
        }
    }
}

/// The optimizer's memory: step count and per-parameter moments.
///
/// Two states are equal when their step and moments are (scratch is not compared).
#[derive(Debug, Clone, Default)]
pub struct OptimizerState {
    /// Updates applied so far.
    pub step: u64,
    /// SGD velocity, Adam's first moment `m`, or RMSprop's momentum buffer
    /// (empty until needed).
    pub first: Vec<f32>,
    /// Adam's second moment `v`, RMSprop's square average or Adagrad's sum of
    /// squares (empty until needed).
    pub second: Vec<f32>,
    /// RMSprop's gradient average (centred form; empty until needed).
    pub third: Vec<f32>,
    /// Scratch for the gradient norm's partial sums.
    pub(crate) partials: Vec<f64>,
}

impl PartialEq for OptimizerState {
    fn eq(&self, other: &Self) -> bool {
        (self.step, &self.first, &self.second, &self.third)
            == (other.step, &other.first, &other.second, &other.third)
    }
}

impl OptimizerState {
    /// Sizes the state for `n` parameters (allocates only what `optimizer` uses).
    pub(crate) fn reserve(&mut self, optimizer: &Optimizer, n: usize) {
        let (first, second, third) = match optimizer {
            Optimizer::Sgd(c) => (c.momentum != 0.0, false, false),
            Optimizer::Adam(_) | Optimizer::AdamW(_) => (true, true, false),
            // All three, so that one pass zips them; unused ones stay 0.
            Optimizer::RmsProp(_) => (true, true, true),
            Optimizer::Adagrad(_) => (false, true, false),
            Optimizer::Lars(_) => (true, false, false),
            Optimizer::Lamb(_) => (true, true, false),
        };
        if first && self.first.len() != n {
            self.first = vec![0.0; n];
        }
        if second && self.second.len() != n {
            let start = match optimizer {
                Optimizer::Adagrad(c) => c.initial_accumulator,
                _ => 0.0,
            };
            self.second = vec![start; n];
        }
        if third && self.third.len() != n {
            self.third = vec![0.0; n];
        }
        self.partials.resize(n.div_ceil(reduce::SQUARES_CHUNK), 0.0);
    }

    /// `‖g‖₂`, deterministic.
    pub(crate) fn grad_norm(&mut self, grads: &[f32]) -> f64 {
        self.partials
            .resize(grads.len().div_ceil(reduce::SQUARES_CHUNK), 0.0);
        reduce::sum_of_squares(grads, &mut self.partials).sqrt()
    }
}

/// Applies one update: `params` from `grads`, clipping the gradient norm to `clip` if given.
pub(crate) fn step(
    optimizer: &Optimizer,
    state: &mut OptimizerState,
    (params, grads): (&mut [f32], &[f32]),
    clip: Option<f32>,
    segments: &[Segment],
) {
    state.reserve(optimizer, params.len());
    let grad_scale = match clip {
        Some(max) => {
            let norm = state.grad_norm(grads);
            (f64::from(max) / (norm + 1e-6)).min(1.0) as f32
        }
        None => 1.0,
    };
    state.step += 1;
    let t = state.step;
    let parallel = kernels::worth_parallel(params.len());
    match optimizer {
        Optimizer::Sgd(c) => {
            let v = &mut state.first;
            if v.is_empty() {
                // No momentum: velocity is never read.
                if parallel {
                    params
                        .par_chunks_mut(CHUNK)
                        .zip(grads.par_chunks(CHUNK))
                        .for_each(|(p, g)| {
                            sgd::update(c, p, g, &mut [], grad_scale);
                        });
                } else {
                    sgd::update(c, params, grads, &mut [], grad_scale);
                }
            } else if parallel {
                params
                    .par_chunks_mut(CHUNK)
                    .zip(grads.par_chunks(CHUNK))
                    .zip(v.par_chunks_mut(CHUNK))
                    .for_each(|((p, g), v)| sgd::update(c, p, g, v, grad_scale));
            } else {
                sgd::update(c, params, grads, v, grad_scale);
            }
        }
        Optimizer::Adam(c) | Optimizer::AdamW(c) => {
            let decoupled = matches!(optimizer, Optimizer::AdamW(_));
            let (m, v) = (&mut state.first, &mut state.second);
            if parallel {
                params
                    .par_chunks_mut(CHUNK)
                    .zip(grads.par_chunks(CHUNK))
                    .zip(m.par_chunks_mut(CHUNK))
                    .zip(v.par_chunks_mut(CHUNK))
                    .for_each(|(((p, g), m), v)| {
                        adam::update(c, decoupled, t, p, g, m, v, grad_scale)
                    });
            } else {
                adam::update(c, decoupled, t, params, grads, m, v, grad_scale);
            }
        }
        Optimizer::RmsProp(c) => {
            let (b, s, a) = (&mut state.first, &mut state.second, &mut state.third);
            if parallel {
                params
                    .par_chunks_mut(CHUNK)
                    .zip(grads.par_chunks(CHUNK))
                    .zip(s.par_chunks_mut(CHUNK))
                    .zip(b.par_chunks_mut(CHUNK))
                    .zip(a.par_chunks_mut(CHUNK))
                    .for_each(|((((p, g), s), b), a)| {
                        rmsprop::update(c, p, g, s, b, a, grad_scale)
                    });
            } else {
                rmsprop::update(c, params, grads, s, b, a, grad_scale);
            }
        }
        Optimizer::Lars(c) => {
            for seg in segments {
                let range = seg.start..seg.start + seg.len;
                let partials = &mut state.partials;
                let w_norm = reduce::sum_of_squares(&params[range.clone()], partials).sqrt();
                let g_norm = reduce::sum_of_squares(&grads[range.clone()], partials).sqrt();
                let (p, g, v) = (
                    &mut params[range.clone()],
                    &grads[range.clone()],
                    &mut state.first[range],
                );
                lars::update(c, seg.adapt, (w_norm, g_norm), p, g, v, grad_scale);
            }
        }
        Optimizer::Lamb(c) => {
            for seg in segments {
                let range = seg.start..seg.start + seg.len;
                let partials = &mut state.partials;
                let w_norm = reduce::sum_of_squares(&params[range.clone()], partials).sqrt();
                let (p, g) = (&mut params[range.clone()], &grads[range.clone()]);
                let (m, v) = (&mut state.first[range.clone()], &mut state.second[range]);
                lamb::update(
                    c,
                    seg.adapt,
                    t,
                    w_norm,
                    (p, g),
                    (m, v),
                    grad_scale,
                    partials,
                );
            }
        }
        Optimizer::Adagrad(c) => {
            let s = &mut state.second;
            if parallel {
                params
                    .par_chunks_mut(CHUNK)
                    .zip(grads.par_chunks(CHUNK))
                    .zip(s.par_chunks_mut(CHUNK))
                    .for_each(|((p, g), s)| adagrad::update(c, t, p, g, s, grad_scale));
            } else {
                adagrad::update(c, t, params, grads, s, grad_scale);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each optimizer names the setting that is out of range, and its rule.
    #[test]
    fn bad_settings_are_named() {
        let cases = [
            (
                Optimizer::sgd_momentum(0.1, 1.0),
                "sgd: momentum (must be in [0, 1)) = 1",
            ),
            (
                Optimizer::Adam(AdamConfig {
                    eps: 0.0,
                    ..AdamConfig::default()
                }),
                "adam: eps (must be > 0) = 0",
            ),
            (
                Optimizer::RmsProp(RmsPropConfig {
                    alpha: -0.5,
                    ..RmsPropConfig::default()
                }),
                "rmsprop: alpha (must be in [0, 1)) = -0.5",
            ),
            (
                Optimizer::Adagrad(AdagradConfig {
                    lr_decay: f32::NAN,
                    ..AdagradConfig::default()
                }),
                "adagrad: lr_decay (must be >= 0) = NaN",
            ),
            (
                Optimizer::Lars(LarsConfig {
                    trust: -1.0,
                    ..LarsConfig::default()
                }),
                "lars: trust coefficient (must be >= 0) = -1",
            ),
            (
                Optimizer::lamb(0.0),
                "lamb: learning rate (must be > 0) = 0",
            ),
        ];
        for (optimizer, message) in cases {
            match optimizer.validate() {
                Err(Error::Config(m)) => assert!(m.starts_with(message), "{m}"),
                other => panic!("{optimizer:?}: expected {message:?}, got {other:?}"),
            }
        }
        for ok in [
            Optimizer::rmsprop(0.01),
            Optimizer::adagrad(0.01),
            Optimizer::lars(0.1),
            Optimizer::lamb(1e-3),
        ] {
            assert_eq!(ok.validate(), Ok(()), "{ok:?}");
        }
    }
}
