//! [`Callback`]: code of the caller's that the [`super::Trainer`] runs around
//! each step and after each epoch (progress bars, logs, a learning-rate
//! schedule, a custom stopping rule).

use std::path::Path;

use super::history::{EpochStats, Progress};
use crate::network::Network;

/// Whether training goes on after a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Control {
    /// Go on.
    #[default]
    Continue,
    /// Stop after this step or epoch (the epoch's statistics are still recorded
    /// when an epoch callback stops).
    Stop,
}

/// Hooks the [`super::Trainer`] calls; every method has a default that does
/// nothing, so an implementation writes only those it needs. They run on a
/// thread of the rayon pool, in order, never two at once.
///
/// ```
/// use feedforward::train::{Callback, Control, EpochStats, Trainer};
/// use feedforward::{Activation::*, FitConfig, Network, data};
///
/// /// Stops as soon as the training loss is below a target.
/// struct GoodEnough(f32);
/// impl Callback for GoodEnough {
///     fn on_epoch(&mut self, _: &Network, stats: &EpochStats) -> Control {
///         if stats.loss < self.0 { Control::Stop } else { Control::Continue }
///     }
/// }
///
/// let (x, y) = data::spiral(50, 3, 0);
/// let mut net = Network::builder(2).dense(32, Relu).dense(3, Softmax).build()?;
/// let mut trainer = Trainer::new(FitConfig { epochs: 500, ..Default::default() })
///     .callback(GoodEnough(0.9));
/// let history = trainer.fit(&mut net, x.view(), (&y).into())?;
/// assert!(history.epochs.len() < 500);
/// assert!(history.last().unwrap().loss < 0.9);
/// # Ok::<(), feedforward::Error>(())
/// ```
pub trait Callback {
    /// Before the step on batch `batch` (from 1) of epoch `epoch`, with the
    /// network mutable: where a learning-rate schedule sets the rate (through
    /// [`Network::set_optimizer`]).
    fn before_step(&mut self, _net: &mut Network, _epoch: usize, _batch: usize) {}

    /// After each step ([`Progress::Batch`]).
    fn on_step(&mut self, _net: &Network, _progress: &Progress<'_>) -> Control {
        Control::Continue
    }

    /// After each epoch, once its validation has run.
    fn on_epoch(&mut self, _net: &Network, _stats: &EpochStats) -> Control {
        Control::Continue
    }

    /// After a checkpoint of epoch `epoch` was written to `path`.
    fn on_checkpoint(&mut self, _path: &Path, _epoch: usize) {}
}

/// A callback lent to a trainer, to be read again after training.
impl<C: Callback + ?Sized> Callback for &mut C {
    fn before_step(&mut self, net: &mut Network, epoch: usize, batch: usize) {
        (**self).before_step(net, epoch, batch);
    }

    fn on_step(&mut self, net: &Network, progress: &Progress<'_>) -> Control {
        (**self).on_step(net, progress)
    }

    fn on_epoch(&mut self, net: &Network, stats: &EpochStats) -> Control {
        (**self).on_epoch(net, stats)
    }

    fn on_checkpoint(&mut self, path: &Path, epoch: usize) {
        (**self).on_checkpoint(path, epoch);
    }
}

/// A closure over [`Progress`] as a [`Callback`] (what
/// [`Network::fit_with_progress`] takes): `false` stops training.
pub(crate) struct ProgressFn<F>(pub F);

impl<F: FnMut(Progress<'_>) -> bool> Callback for ProgressFn<F> {
    fn on_step(&mut self, _: &Network, progress: &Progress<'_>) -> Control {
        if (self.0)(*progress) {
            Control::Continue
        } else {
            Control::Stop
        }
    }

    fn on_epoch(&mut self, _: &Network, stats: &EpochStats) -> Control {
        if (self.0)(Progress::Epoch(stats)) {
            Control::Continue
        } else {
            Control::Stop
        }
    }
}
