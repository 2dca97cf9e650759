//! Mini-batch training: [`Network::fit`].
//!
//! Each epoch shuffles the row order with a generator seeded from the seed and the
//! epoch's number alone, so that training resumed at epoch `e` (see
//! [`FitConfig::first_epoch`]) sees the same batches as an uninterrupted run. Then for every mini-batch gathers
//! its rows into the network's workspace and runs forward, loss, backward and the
//! optimizer update. The data are checked once, up front, not per batch.

use std::time::Instant;

use ndarray::ArrayView2;
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::SliceRandom;

use crate::error::{Error, Result};
use crate::io::stream::{Batch, DataSource};
use crate::network::BatchNormMode;
use crate::network::Network;
use crate::targets::Targets;

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
    /// Number of the first epoch (default 1). Resuming after `e` finished epochs
    /// with `first_epoch: e + 1` repeats the uninterrupted run's shuffles.
    pub first_epoch: usize,
}

/// What [`Network::fit_with_progress`] reports: a finished batch or epoch.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'s> {
    /// A mini-batch was trained on.
    Batch {
        /// Epoch number.
        epoch: usize,
        /// Batch within the epoch, from 1.
        batch: usize,
        /// Batches in the epoch.
        batches: usize,
        /// Rows in this batch.
        rows: usize,
        /// The batch's mean loss (before its update).
        loss: f32,
        /// Predictions right and predictions judged (before the update), for
        /// classification losses.
        correct: Option<(usize, usize)>,
    },
    /// An epoch finished.
    Epoch(&'s EpochStats),
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
        }
    }
}

/// What one epoch of [`Network::fit`] measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochStats {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches (weighted by batch size).
    pub loss: f32,
    /// Training accuracy over the epoch (measured before each batch's update).
    pub accuracy: Option<f32>,
    /// Loss on the validation data, if given.
    pub val_loss: Option<f32>,
    /// Accuracy on the validation data, if given and defined.
    pub val_accuracy: Option<f32>,
    /// Training samples processed per second.
    pub samples_per_sec: f64,
    /// Wall time of the epoch's training steps, in seconds.
    pub seconds: f64,
}

/// Per-epoch statistics of a [`Network::fit`] run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// One entry per completed epoch.
    pub epochs: Vec<EpochStats>,
}

impl History {
    /// The last epoch's statistics.
    pub fn last(&self) -> Option<&EpochStats> {
        self.epochs.last()
    }
}

impl Network {
    /// Trains on `x` (one sample per row) and `targets` for `config.epochs` epochs.
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
    /// Bad data or settings ([`Error::Shape`], [`Error::NonFinite`],
    /// [`Error::LabelOutOfRange`], [`Error::Empty`], [`Error::Config`]), or
    /// [`Error::Diverged`] if the loss stops being finite (training stops before
    /// that batch's update).
    pub fn fit(
        &mut self,
        x: ArrayView2<'_, f32>,
        targets: Targets<'_>,
        config: &FitConfig<'_>,
    ) -> Result<History> {
        self.fit_with(x, targets, config, |_| true)
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
        self.fit_with_progress(x, targets, config, |p| match p {
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
        mut on_progress: F,
    ) -> Result<History>
    where
        F: FnMut(Progress<'_>) -> bool + Send,
    {
        // Run the whole loop inside the thread pool: parallel kernels then start
        // from a worker thread and a training step allocates nothing.
        rayon::scope(|_| self.fit_in_pool(x, targets, config, &mut on_progress))
    }

    fn fit_in_pool(
        &mut self,
        x: ArrayView2<'_, f32>,
        targets: Targets<'_>,
        config: &FitConfig<'_>,
        on_progress: &mut (dyn FnMut(Progress<'_>) -> bool + Send),
    ) -> Result<History> {
        if config.batch_size == 0 {
            return Err(Error::Config("batch size must be at least 1".into()));
        }
        self.check_features(&x, "fit: features")?;
        let rows = x.nrows();
        targets.validate(self.loss(), self.outputs(), rows, "fit: targets")?;
        if let Some((vx, vy)) = &config.validation {
            self.check_features(vx, "fit: validation features")?;
            vy.validate(
                self.loss(),
                self.outputs(),
                vx.nrows(),
                "fit: validation targets",
            )?;
        }
        self.check_batch_norm_rows(rows)?;

        let x = x.as_standard_layout();
        let x = x.as_slice().expect("standard layout");
        let mut rows_in = InMemory { x, y: targets };
        self.epochs(&mut rows_in, rows, config, on_progress)
    }

    /// Trains on the rows of `source`, read a mini-batch at a time (see
    /// [`crate::io::stream`]), with the settings of `config`. A source with random
    /// access is shuffled every epoch exactly as [`Network::fit`] shuffles an
    /// array, so both give the same weights; other sources are read in order.
    /// Each batch is checked as it is read.
    ///
    /// ```
    /// use feedforward::io::ArraySource;
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
    /// As [`Network::fit`], plus the source's own read errors.
    pub fn fit_source<S: DataSource + Send>(
        &mut self,
        source: &mut S,
        config: &FitConfig<'_>,
    ) -> Result<History> {
        self.fit_source_with_progress(source, config, |_| true)
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
        mut on_progress: F,
    ) -> Result<History>
    where
        S: DataSource + Send,
        F: FnMut(Progress<'_>) -> bool + Send,
    {
        if config.batch_size == 0 {
            return Err(Error::Config("batch size must be at least 1".into()));
        }
        let rows = source.rows();
        if rows == 0 {
            return Err(Error::Empty("fit_source: source"));
        }
        if source.features() != self.inputs() {
            return Err(Error::Shape {
                context: "fit_source: features",
                expected: format!("{} columns (the network's inputs)", self.inputs()),
                got: format!("{} columns", source.features()),
            });
        }
        if let Some((vx, vy)) = &config.validation {
            self.check_features(vx, "fit: validation features")?;
            vy.validate(
                self.loss(),
                self.outputs(),
                vx.nrows(),
                "fit: validation targets",
            )?;
        }
        let mut rows_in = FromSource {
            source,
            batch: Batch::default(),
            local: Vec::new(),
        };
        // As in `fit`, the loop runs on a thread of the pool.
        rayon::scope(|_| self.epochs(&mut rows_in, rows, config, &mut on_progress))
    }

    /// The epoch loop shared by [`Network::fit`] and [`Network::fit_source`].
    fn epochs<R: BatchRows>(
        &mut self,
        data: &mut R,
        rows: usize,
        config: &FitConfig<'_>,
        on_progress: &mut (dyn FnMut(Progress<'_>) -> bool + Send),
    ) -> Result<History> {
        self.check_batch_norm_rows(rows)?;
        let has_bn = self.has_batch_norm();
        let batch = config.batch_size.min(rows);
        let micro = match config.micro_batch {
            Some(0) => return Err(Error::Config("micro-batch size must be at least 1".into())),
            Some(c) => c.min(batch),
            None => batch,
        };
        self.reserve(micro);
        let mut order: Vec<usize> = (0..rows).collect();
        let seed = config.seed.unwrap_or(self.seed());
        let mut history = History::default();
        let batches = rows.div_ceil(batch);

        for epoch in config.first_epoch..config.first_epoch + config.epochs {
            if config.shuffle && data.random_access() {
                order.iter_mut().enumerate().for_each(|(i, o)| *o = i);
                order.shuffle(&mut epoch_rng(seed, epoch));
            }
            let start = Instant::now();
            let (mut loss_sum, mut seen) = (0.0f64, 0usize);
            let (mut hits, mut judged) = (0usize, 0usize);
            for (b, idx) in order.chunks(batch).enumerate() {
                // Batch norm cannot normalise a single row; skip such a trailing batch.
                if has_bn && idx.len() < 2 {
                    continue;
                }
                let m = idx.len();
                let (loss, correct) = {
                    let (x, targets, local) = data.load(idx, self)?;
                    self.batch_gradients(x, &targets, local, micro, config.batch_norm_mode)
                };
                self.check_finite_loss(loss, epoch, b + 1)?;
                if let Some((h, j)) = correct {
                    hits += h;
                    judged += j;
                }
                self.step()?;
                loss_sum += loss * m as f64;
                seen += m;
                let progress = Progress::Batch {
                    epoch,
                    batch: b + 1,
                    batches,
                    rows: m,
                    loss: loss as f32,
                    correct,
                };
                if !on_progress(progress) {
                    return Ok(history);
                }
            }
            let seconds = start.elapsed().as_secs_f64();
            let (val_loss, val_accuracy) = match &config.validation {
                Some((vx, vy)) => {
                    let e = self.evaluate(vx.view(), *vy)?;
                    (Some(e.loss), e.accuracy)
                }
                None => (None, None),
            };
            let stats = EpochStats {
                epoch,
                loss: (loss_sum / seen.max(1) as f64) as f32,
                accuracy: (judged > 0).then(|| hits as f32 / judged as f32),
                val_loss,
                val_accuracy,
                samples_per_sec: seen as f64 / seconds.max(1e-9),
                seconds,
            };
            history.epochs.push(stats);
            if !on_progress(Progress::Epoch(&stats)) {
                break;
            }
        }
        Ok(history)
    }
}

/// Where the epoch loop gets a mini-batch: the features (row-major), the
/// targets, and the indices of the batch's rows in them.
trait BatchRows {
    /// Whether rows may be visited in shuffled order.
    fn random_access(&self) -> bool;
    /// The batch of rows `idx`, checked against `net` where not checked up front.
    fn load<'b>(
        &'b mut self,
        idx: &'b [usize],
        net: &Network,
    ) -> Result<(&'b [f32], Targets<'b>, &'b [usize])>;
}

/// Arrays in memory, checked once before training.
struct InMemory<'x, 'y> {
    x: &'x [f32],
    y: Targets<'y>,
}

impl BatchRows for InMemory<'_, '_> {
    fn random_access(&self) -> bool {
        true
    }
    fn load<'b>(
        &'b mut self,
        idx: &'b [usize],
        _: &Network,
    ) -> Result<(&'b [f32], Targets<'b>, &'b [usize])> {
        let y = match &self.y {
            Targets::Classes(c) => Targets::Classes(c.view()),
            Targets::Values(v) => Targets::Values(v.view()),
        };
        Ok((self.x, y, idx))
    }
}

/// A [`DataSource`]: each batch is read into a buffer and checked.
struct FromSource<'s, S> {
    source: &'s mut S,
    batch: Batch,
    local: Vec<usize>,
}

impl<S: DataSource> BatchRows for FromSource<'_, S> {
    fn random_access(&self) -> bool {
        self.source.random_access()
    }
    fn load<'b>(
        &'b mut self,
        idx: &'b [usize],
        net: &Network,
    ) -> Result<(&'b [f32], Targets<'b>, &'b [usize])> {
        self.source.read(idx, &mut self.batch)?;
        // Errors name the row in the whole data set, not in the batch.
        let whole = |e: Error| match e {
            Error::NonFinite {
                context,
                row,
                col,
                value,
            } => Error::NonFinite {
                context,
                row: idx[row],
                col,
                value,
            },
            Error::LabelOutOfRange {
                context,
                row,
                label,
                classes,
            } => Error::LabelOutOfRange {
                context,
                row: idx[row],
                label,
                classes,
            },
            Error::InvalidTarget {
                context,
                row,
                col,
                value,
                reason,
            } => Error::InvalidTarget {
                context,
                row: idx[row],
                col,
                value,
                reason,
            },
            other => other,
        };
        net.check_features(&self.batch.features(), "fit_source: features")
            .map_err(whole)?;
        let m = idx.len();
        self.batch
            .targets()
            .validate(net.loss(), net.outputs(), m, "fit_source: targets")
            .map_err(whole)?;
        if self.local.len() < m {
            self.local.extend(self.local.len()..m);
        }
        let x = self.batch.features();
        let x = x.to_slice().expect("a batch is contiguous");
        Ok((x, self.batch.targets(), &self.local[..m]))
    }
}

/// The shuffling generator of epoch `epoch`: a function of the seed and the
/// epoch's number only.
fn epoch_rng(seed: u64, epoch: usize) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}
