//! Training: the [`Trainer`] that owns the epoch loop, and [`Network::fit`],
//! the one-call convenience over it.
//!
//! - [`Trainer`] (`trainer.rs`): epochs of mini-batches from arrays or a
//!   [`DataSource`], validation, [`Callback`]s, [`EarlyStopping`],
//!   [`Checkpoints`] and exact resume;
//! - `callback.rs`, `early_stopping.rs`, `checkpoint.rs`: those three;
//! - `history.rs`: what a run reports ([`Progress`], [`EpochStats`], [`History`]);
//! - `batches.rs`: where the loop's mini-batches come from, and each epoch's shuffle.
//!
//! Each epoch shuffles the row order with a generator seeded from the seed and the
//! epoch's number alone, so that training resumed at epoch `e` (see
//! [`Trainer::resume`] and [`FitConfig::first_epoch`]) sees the same batches as
//! an uninterrupted run. The data are checked once, up front, not per batch.

use ndarray::ArrayView2;

use crate::error::Result;
use crate::network::{BatchNormMode, Network};
use crate::source::DataSource;
use crate::targets::Targets;

mod batches;
mod callback;
mod checkpoint;
mod early_stopping;
mod history;
mod trainer;

pub use callback::{Callback, Control};
pub use checkpoint::{Checkpoint, Checkpoints, STATE_KEY, TrainingState};
pub use early_stopping::EarlyStopping;
pub use history::{EpochStats, History, Progress};
pub use trainer::Trainer;

use callback::ProgressFn;

/// Settings of [`Network::fit`].
#[derive(Debug, Clone)]
pub struct FitConfig<'a> {
    /// Passes over the training data (default 10).
    pub epochs: usize,
    /// Rows per mini-batch (default 32); the last batch of an epoch may be smaller.
    pub batch_size: usize,
    /// Shuffle the rows every epoch (default true).
    pub shuffle: bool,
    /// Seed for shuffling (default: the network's seed).
    pub seed: Option<u64>,
    /// Data to evaluate after every epoch (inference mode).
    pub validation: Option<(ArrayView2<'a, f32>, Targets<'a>)>,
    /// Rows per micro-batch (default `None`: the whole mini-batch at once). Each
    /// mini-batch of `batch_size` rows is computed in chunks of at most this many
    /// rows with gradients accumulated, and the optimizer steps once per
    /// mini-batch; see [`Network::train_step_micro`](crate::Network::train_step_micro).
    pub micro_batch: Option<usize>,
    /// How batch normalisation treats micro-batches (default exact).
    pub batch_norm_mode: BatchNormMode,
    /// Shards each mini-batch is split into (default 1): each shard's gradient
    /// is summed over its own rows, and the shards' gradients are added in a
    /// fixed pairwise tree over their indices. The result is the step of the
    /// whole batch up to float summation order, and is the same bits however
    /// many processes share the shards (a power of two of them dividing a
    /// power-of-two shard count), which is what data-parallel training needs.
    pub shards: usize,
    /// Number of the first epoch (default 1). Resuming after `e` finished epochs
    /// with `first_epoch: e + 1` repeats the uninterrupted run's shuffles.
    pub first_epoch: usize,
}

impl Default for FitConfig<'_> {
    fn default() -> Self {
        FitConfig {
            epochs: 10,
            batch_size: 32,
            shuffle: true,
            seed: None,
            validation: None,
            first_epoch: 1,
            micro_batch: None,
            batch_norm_mode: BatchNormMode::Exact,
            shards: 1,
        }
    }
}

impl Network {
    /// Trains on `x` (one sample per row) and `targets` for `config.epochs`
    /// epochs: a [`Trainer`] with no callbacks, early stopping or checkpoints.
    ///
    /// ```
    /// use feedforward::{Activation::*, FitConfig, Network, Optimizer, data};
    /// let (x, y) = data::spiral(50, 3, 0);
    /// let mut net = Network::builder(2)
    ///     .dense(32, Relu)
    ///     .dense(3, Softmax)
    ///     .optimizer(Optimizer::adam(0.01))
    ///     .build()?;
    /// let history = net.fit(x.view(), (&y).into(), &FitConfig { epochs: 5, ..Default::default() })?;
    /// assert_eq!(history.epochs.len(), 5);
    /// # Ok::<(), feedforward::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Trainer::fit`].
    pub fn fit(
        &mut self,
        x: ArrayView2<'_, f32>,
        targets: Targets<'_>,
        config: &FitConfig<'_>,
    ) -> Result<History> {
        Trainer::new(config.clone()).fit(self, x, targets)
    }

    /// [`Network::fit`] calling `on_epoch` after every epoch; training stops early
    /// when it returns `false`. The callback runs on a thread of the rayon pool.
    ///
    /// # Errors
    /// As [`Network::fit`].
    pub fn fit_with<F>(
        &mut self,
        x: ArrayView2<'_, f32>,
        targets: Targets<'_>,
        config: &FitConfig<'_>,
        mut on_epoch: F,
    ) -> Result<History>
    where
        F: FnMut(&EpochStats) -> bool + Send,
    {
        self.fit_with_progress(x, targets, config, move |p| match p {
            Progress::Epoch(stats) => on_epoch(stats),
            Progress::Batch { .. } => true,
        })
    }

    /// [`Network::fit`] calling `on_progress` after every batch and every epoch
    /// (for progress bars); training stops when it returns `false`.
    ///
    /// # Errors
    /// As [`Network::fit`].
    pub fn fit_with_progress<F>(
        &mut self,
        x: ArrayView2<'_, f32>,
        targets: Targets<'_>,
        config: &FitConfig<'_>,
        on_progress: F,
    ) -> Result<History>
    where
        F: FnMut(Progress<'_>) -> bool + Send,
    {
        Trainer::new(config.clone()).fit_calling(self, x, targets, &mut ProgressFn(on_progress))
    }

    /// Trains on the rows of `source`, read a mini-batch at a time (see
    /// [`crate::source`]), with the settings of `config`: as
    /// [`Trainer::fit_source`].
    ///
    /// ```
    /// use feedforward::source::ArraySource;
    /// use feedforward::{Activation::*, FitConfig, Network, data};
    /// let (x, y) = data::spiral(50, 3, 0);
    /// let mut net = Network::builder(2).dense(16, Relu).dense(3, Softmax).build()?;
    /// let mut source = ArraySource::new(x.view(), (&y).into())?;
    /// let history = net.fit_source(&mut source, &FitConfig { epochs: 3, ..Default::default() })?;
    /// assert_eq!(history.epochs.len(), 3);
    /// # Ok::<(), feedforward::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Trainer::fit_source`].
    pub fn fit_source<S: DataSource + Send>(
        &mut self,
        source: &mut S,
        config: &FitConfig<'_>,
    ) -> Result<History> {
        Trainer::new(config.clone()).fit_source(self, source)
    }

    /// [`Network::fit_source`] with a progress callback as in
    /// [`Network::fit_with_progress`].
    ///
    /// # Errors
    /// As [`Network::fit_source`].
    pub fn fit_source_with_progress<S, F>(
        &mut self,
        source: &mut S,
        config: &FitConfig<'_>,
        on_progress: F,
    ) -> Result<History>
    where
        S: DataSource + Send,
        F: FnMut(Progress<'_>) -> bool + Send,
    {
        Trainer::new(config.clone()).fit_source_calling(self, source, &mut ProgressFn(on_progress))
    }
}
