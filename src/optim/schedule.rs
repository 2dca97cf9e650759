//! Learning-rate schedules: the rate of each optimizer step as a function of
//! the epoch or step number, with an optional linear warm-up, and the one
//! stateful schedule, reduce-on-plateau.
//!
//! Each closed-form schedule follows the PyTorch scheduler of the same name
//! (`torch.optim.lr_scheduler`), counted in epochs or in steps as [`Every`]
//! says: the rate at count `t` (from 0) is `base × factor(t)`. A warm-up of `w`
//! counts runs first, as PyTorch's `LinearLR(start_factor, 1.0, w)` followed by
//! the schedule (`SequentialLR` with milestone `w`), so the schedule starts from
//! count 0 when the warm-up ends.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What a schedule counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Every {
    /// Epochs (PyTorch's usual `scheduler.step()` after each epoch).
    #[default]
    Epoch,
    /// Optimizer steps (mini-batches).
    Step,
}

/// The shape of a schedule; see each variant for its PyTorch (or
/// scikit-learn) counterpart.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub enum Schedule {
    /// The base rate throughout.
    #[default]
    Constant,
    /// `base × gamma^⌊t / size⌋` (`StepLR`).
    Step {
        /// Counts between decays.
        size: usize,
        /// Factor per decay.
        gamma: f32,
    },
    /// `base × gamma^(number of milestones ≤ t)` (`MultiStepLR`).
    MultiStep {
        /// Counts at which the rate decays.
        milestones: Vec<usize>,
        /// Factor per milestone.
        gamma: f32,
    },
    /// `base × gamma^t` (`ExponentialLR`).
    Exponential {
        /// Factor per count.
        gamma: f32,
    },
    /// `min + (base − min)(1 + cos(π t / period))/2` (`CosineAnnealingLR`); with
    /// `restarts`, the cosine starts again after each period, each period
    /// `mult` times the one before (`CosineAnnealingWarmRestarts`); without,
    /// it goes on as PyTorch's does past the period (rising again), so set the
    /// period to the run's length.
    Cosine {
        /// Counts of the first period.
        period: usize,
        /// The rate at the end of a period.
        min_lr: f32,
        /// Start again after each period.
        restarts: bool,
        /// Growth of the period at each restart (1: all equal).
        mult: usize,
    },
    /// One cycle (`OneCycleLR`, cosine annealing, `cycle_momentum=False`): from
    /// `max_lr / div_factor` up to `max_lr` over the first `pct_start` of
    /// `total` counts, then down to `max_lr / (div_factor · final_div_factor)`.
    /// The base rate is not used.
    OneCycle {
        /// Counts in the cycle.
        total: usize,
        /// The peak rate.
        max_lr: f32,
        /// Fraction of the cycle spent rising (PyTorch's default 0.3).
        pct_start: f32,
        /// Start rate = `max_lr / div_factor` (default 25).
        div_factor: f32,
        /// End rate = start rate / `final_div_factor` (default 1e4).
        final_div_factor: f32,
    },
    /// scikit-learn's `learning_rate='invscaling'`: `base / (s + 1)^power_t`,
    /// `s` the samples seen before the epoch (the rate changes once per epoch).
    InvScaling {
        /// The exponent (scikit-learn's default 0.5).
        power_t: f32,
    },
    /// Divide the rate by `1 / factor` when the monitored loss (validation
    /// loss, else training loss) has not improved by more than `threshold`
    /// (relative) for `patience` epochs (`ReduceLROnPlateau`, mode `min`).
    Plateau {
        /// Factor applied at each reduction (PyTorch's default 0.1).
        factor: f32,
        /// Epochs without improvement tolerated (default 10).
        patience: usize,
        /// Relative improvement that counts (default 1e-4).
        threshold: f32,
        /// Epochs to wait after a reduction before counting again (default 0).
        cooldown: usize,
        /// The rate is never reduced below this (default 0).
        min_lr: f32,
    },
}

/// A schedule with what it counts and its warm-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    /// The shape.
    pub schedule: Schedule,
    /// What `t` counts.
    pub every: Every,
    /// Counts of linear warm-up before the schedule (0: none).
    pub warmup: usize,
    /// The warm-up's first factor (PyTorch `LinearLR`'s `start_factor`, default 1/3).
    pub warmup_start: f32,
}

impl Default for LrSchedule {
    /// The constant schedule, counted in epochs, no warm-up (start factor 1/3).
    fn default() -> Self {
        LrSchedule::new(Schedule::Constant, Every::Epoch)
    }
}

impl LrSchedule {
    /// `schedule` counted in `every`, with no warm-up.
    pub fn new(schedule: Schedule, every: Every) -> Self {
        LrSchedule {
            schedule,
            every,
            warmup: 0,
            warmup_start: 1.0 / 3.0,
        }
    }

    /// The same with a linear warm-up of `counts`.
    #[must_use]
    pub fn with_warmup(mut self, counts: usize) -> Self {
        self.warmup = counts;
        self
    }

    /// Checks the settings' ranges.
    ///
    /// # Errors
    /// [`Error::Config`] naming the setting.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::Config(format!("learning-rate schedule: {what}")));
        let unit = |v: f32| v.is_finite() && v > 0.0 && v <= 1.0;
        if !(self.warmup_start.is_finite() && self.warmup_start > 0.0 && self.warmup_start <= 1.0) {
            return bad("the warm-up's start factor must be in (0, 1]");
        }
        match &self.schedule {
            Schedule::Constant => {}
            Schedule::Step { size, gamma } if *size == 0 || !unit(*gamma) => {
                return bad("step needs a size of at least 1 and a gamma in (0, 1]");
            }
            Schedule::MultiStep { gamma, .. } | Schedule::Exponential { gamma }
                if !unit(*gamma) =>
            {
                return bad("gamma must be in (0, 1]");
            }
            Schedule::Cosine {
                period,
                min_lr,
                mult,
                ..
            } if *period == 0 || *mult == 0 || !(min_lr.is_finite() && *min_lr >= 0.0) => {
                return bad("cosine needs a period and a mult of at least 1 and a min_lr >= 0");
            }
            Schedule::OneCycle {
                total,
                max_lr,
                pct_start,
                div_factor,
                final_div_factor,
            } if *total < 2
                || !(max_lr.is_finite() && *max_lr > 0.0)
                || !(*pct_start > 0.0 && *pct_start < 1.0)
                || !(div_factor.is_finite() && *div_factor > 0.0)
                || !(final_div_factor.is_finite() && *final_div_factor > 0.0) =>
            {
                return bad(
                    "one-cycle needs total >= 2, max_lr > 0, pct_start in (0, 1) and positive divisors",
                );
            }
            Schedule::InvScaling { power_t } if !(power_t.is_finite() && *power_t >= 0.0) => {
                return bad("invscaling needs power_t >= 0");
            }
            Schedule::Plateau {
                factor,
                min_lr,
                threshold,
                ..
            } if !(*factor > 0.0
                && *factor < 1.0
                && at_least_zero(*min_lr)
                && at_least_zero(*threshold)) =>
            {
                return bad("plateau needs a factor in (0, 1), min_lr >= 0 and threshold >= 0");
            }
            _ => {}
        }
        Ok(())
    }

    /// The rate at count `t` (from 0) for base rate `base`; `samples` is the
    /// number of samples seen before this count (for [`Schedule::InvScaling`])
    /// and `plateau` the current factor of [`Schedule::Plateau`].
    pub fn rate(&self, base: f32, t: usize, samples: usize, plateau: f32) -> f32 {
        if t < self.warmup {
            let f = self.warmup_start + (1.0 - self.warmup_start) * t as f32 / self.warmup as f32;
            return base * f;
        }
        let t = t - self.warmup;
        let b = f64::from(base);
        let rate = match &self.schedule {
            Schedule::Constant => b,
            Schedule::Step { size, gamma } => b * f64::from(*gamma).powi((t / size) as i32),
            Schedule::MultiStep { milestones, gamma } => {
                let passed = milestones.iter().filter(|&&m| m <= t).count();
                b * f64::from(*gamma).powi(passed as i32)
            }
            Schedule::Exponential { gamma } => b * f64::from(*gamma).powi(t as i32),
            Schedule::Cosine {
                period,
                min_lr,
                restarts,
                mult,
            } => {
                let (t_cur, t_i) = cosine_position(t, *period, *restarts, *mult);
                let min = f64::from(*min_lr);
                min + (b - min) * (1.0 + (std::f64::consts::PI * t_cur / t_i).cos()) / 2.0
            }
            Schedule::OneCycle {
                total,
                max_lr,
                pct_start,
                div_factor,
                final_div_factor,
            } => one_cycle(
                t,
                *total,
                *max_lr,
                *pct_start,
                *div_factor,
                *final_div_factor,
            ),
            Schedule::InvScaling { power_t } => {
                b / ((samples + 1) as f64).powf(f64::from(*power_t))
            }
            Schedule::Plateau { .. } => b * f64::from(plateau),
        };
        rate as f32
    }
}

/// Finite and not negative.
fn at_least_zero(v: f32) -> bool {
    v.is_finite() && v >= 0.0
}

/// Where count `t` falls in a cosine schedule: counts into the current period,
/// and that period's length.
fn cosine_position(t: usize, period: usize, restarts: bool, mult: usize) -> (f64, f64) {
    if !restarts {
        return (t as f64, period as f64);
    }
    let (mut start, mut len) = (0usize, period);
    while t >= start + len {
        start += len;
        len *= mult;
    }
    ((t - start) as f64, len as f64)
}

/// `OneCycleLR` with cosine annealing at step `t` (from 0).
fn one_cycle(t: usize, total: usize, max_lr: f32, pct_start: f32, div: f32, final_div: f32) -> f64 {
    let max = f64::from(max_lr);
    let initial = max / f64::from(div);
    let min = initial / f64::from(final_div);
    // PyTorch's phase ends: step pct_start·total − 1, then total − 1.
    let peak = f64::from(pct_start) * total as f64 - 1.0;
    let end = total as f64 - 1.0;
    let t = (t as f64).min(end);
    let cos = |start: f64, stop: f64, pct: f64| {
        stop + (start - stop) / 2.0 * ((std::f64::consts::PI * pct).cos() + 1.0)
    };
    if t <= peak {
        cos(initial, max, t / peak)
    } else {
        cos(max, min, (t - peak) / (end - peak))
    }
}

/// The running state of [`Schedule::Plateau`], kept in checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlateauState {
    /// The factor on the base rate now.
    pub factor: f32,
    /// The best monitored loss so far.
    pub best: Option<f32>,
    /// Epochs since it improved.
    pub bad_epochs: usize,
    /// Epochs of cool-down left.
    pub cooldown_left: usize,
}

impl Default for PlateauState {
    fn default() -> Self {
        PlateauState {
            factor: 1.0,
            best: None,
            bad_epochs: 0,
            cooldown_left: 0,
        }
    }
}

impl PlateauState {
    /// Records an epoch's monitored `loss` under `schedule` (a no-op for other
    /// schedules), reducing the factor as `ReduceLROnPlateau` would for base
    /// rate `base`.
    pub fn record(&mut self, schedule: &Schedule, base: f32, loss: f32) {
        let Schedule::Plateau {
            factor,
            patience,
            threshold,
            cooldown,
            min_lr,
        } = schedule
        else {
            return;
        };
        let better = self
            .best
            .is_none_or(|b| f64::from(loss) < f64::from(b) * (1.0 - f64::from(*threshold)));
        if better {
            self.best = Some(loss);
            self.bad_epochs = 0;
        } else {
            self.bad_epochs += 1;
        }
        if self.cooldown_left > 0 {
            self.cooldown_left -= 1;
            self.bad_epochs = 0;
        }
        if self.bad_epochs > *patience {
            let old = base * self.factor;
            let new = (old * factor).max(*min_lr);
            // PyTorch's eps: changes smaller than 1e-8 are not made.
            if old - new > 1e-8 {
                self.factor = new / base;
            }
            self.cooldown_left = *cooldown;
            self.bad_epochs = 0;
        }
    }
}
