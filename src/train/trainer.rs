//! [`Trainer`]: the epoch loop, with validation, callbacks, early stopping,
//! checkpoints and exact resume.

use std::time::Instant;

use ndarray::ArrayView2;
use rand::seq::SliceRandom;

use super::FitConfig;
use super::batches::{BatchRows, FromSource, InMemory, epoch_rng};
use super::callback::{Callback, Control};
use super::checkpoint::{Checkpoints, TrainingState};
use super::early_stopping::EarlyStopping;
use super::history::{EpochStats, History, Progress};
use crate::Precision;
use crate::distributed::{self, Communicator};
use crate::error::{Error, Result};
use crate::network::{Network, Snapshot};
use crate::optim::{Every, LrSchedule};
use crate::source::{Batch, DataSource};
use crate::targets::Targets;

/// Trains a [`Network`] epoch by epoch: mini-batches from arrays or a
/// [`DataSource`], validation after each epoch, [`Callback`]s around each step
/// and epoch, [`EarlyStopping`] that ends with the best epoch's weights,
/// [`Checkpoints`], and resuming from one with the same result, bit for bit, as
/// a run never interrupted.
///
/// The run ends after epoch `first_epoch − 1 + epochs` of its [`FitConfig`]
/// (epoch `epochs` by default); a resumed run continues up to the same epoch.
/// Each epoch shuffles the rows with a generator seeded from the seed and the
/// epoch's number alone, so a resumed run sees the batches an uninterrupted one
/// would.
///
/// A trainer holds its callbacks for the lifetime `'a` of the validation views
/// in its config (an ndarray view is invariant in its lifetime): to read a
/// callback lent as `&mut` after training, make the config after it.
///
/// ```
/// use feedforward::train::{Checkpoint, Checkpoints, EarlyStopping, Trainer};
/// use feedforward::{Activation::*, FitConfig, Network, data};
///
/// let (x, y) = data::spiral(60, 3, 0);
/// let (vx, vy) = data::spiral(20, 3, 1);
/// let config = FitConfig {
///     epochs: 12,
///     validation: Some((vx.view(), (&vy).into())),
///     ..Default::default()
/// };
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("run.ckpt");
/// let build = || Network::builder(2).dense(32, Relu).dense(3, Softmax).seed(5).build();
///
/// // Twelve epochs in one go.
/// let mut whole = build()?;
/// Trainer::new(config.clone())
///     .early_stopping(EarlyStopping::patience(3))
///     .fit(&mut whole, x.view(), (&y).into())?;
///
/// // Five epochs with a checkpoint, then the rest from the checkpoint.
/// let mut first = build()?;
/// Trainer::new(FitConfig { epochs: 5, ..config.clone() })
///     .early_stopping(EarlyStopping::patience(3))
///     .checkpoints(Checkpoints::every(5, &path))
///     .fit(&mut first, x.view(), (&y).into())?;
/// let checkpoint = Checkpoint::load(&path)?;
/// let mut resumed = checkpoint.model.network;
/// Trainer::new(config)
///     .early_stopping(EarlyStopping::patience(3))
///     .resume(checkpoint.state)
///     .fit(&mut resumed, x.view(), (&y).into())?;
/// assert_eq!(resumed.parameters(), whole.parameters());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Trainer<'a> {
    config: FitConfig<'a>,
    early_stopping: Option<EarlyStopping>,
    checkpoints: Option<Checkpoints<'a>>,
    callbacks: Vec<Box<dyn Callback + Send + 'a>>,
    schedule: Option<LrSchedule>,
    precision: Option<Precision>,
    comm: Option<&'a dyn Communicator>,
    /// With several processes: where each position of a batch is in the rows
    /// this process read (its own shards'), for the step.
    positions: Vec<usize>,
    state: TrainingState,
}

impl<'a> Trainer<'a> {
    /// A trainer with these settings, starting at epoch `config.first_epoch`.
    pub fn new(config: FitConfig<'a>) -> Self {
        let state = TrainingState {
            epochs_done: config.first_epoch.saturating_sub(1),
            ..TrainingState::default()
        };
        Trainer {
            config,
            early_stopping: None,
            checkpoints: None,
            callbacks: Vec::new(),
            schedule: None,
            precision: None,
            comm: None,
            positions: Vec::new(),
            state,
        }
    }

    /// Trains data-parallel with the processes of `comm`: each computes the
    /// gradients of its share of every batch's [`FitConfig::shards`], and they
    /// are summed in the shards' fixed tree, so the weights are the same bits
    /// as one process training alone (see [`crate::distributed`]). Every
    /// process calls `fit` with the same data, network and settings; at the
    /// start they check that they agree (rows, widths, parameters, settings)
    /// and take process 0's weights.
    ///
    /// Callbacks, checkpoints and early stopping run on every process; a
    /// program lets process 0 alone write files.
    ///
    /// ```
    /// use feedforward::distributed::SingleProcess;
    /// use feedforward::train::Trainer;
    /// use feedforward::{Activation::*, FitConfig, Network, data};
    /// let (x, y) = data::spiral(50, 3, 0);
    /// let build = || Network::builder(2).dense(16, Relu).dense(3, Softmax).seed(1).build();
    /// let config = || FitConfig { epochs: 2, batch_size: 40, shards: 4, ..Default::default() };
    /// let (mut alone, mut grouped) = (build()?, build()?);
    /// Trainer::new(config()).fit(&mut alone, x.view(), (&y).into())?;
    /// // Under mpirun, `MpiCommunicator::world(&universe)?` (feature `mpi`)
    /// // in its place gives these same bits on every process.
    /// Trainer::new(config())
    ///     .communicator(&SingleProcess)
    ///     .fit(&mut grouped, x.view(), (&y).into())?;
    /// assert_eq!(alone.parameters(), grouped.parameters());
    /// # Ok::<(), feedforward::Error>(())
    /// ```
    #[must_use]
    pub fn communicator(mut self, comm: &'a dyn Communicator) -> Self {
        self.comm = Some(comm);
        self
    }

    /// Trains with the dense layers' products in `precision` (the network
    /// keeps it afterwards, for its inference). Without this, the network's own
    /// [`Network::precision`] is used. See [`Precision`]: in
    /// [`Precision::Bf16`] the three products of each dense layer take bf16
    /// operands; weights, gradients, optimizer state and losses stay `f32`.
    pub fn precision(mut self, precision: Precision) -> Self {
        self.precision = Some(precision);
        self
    }

    /// Sets the learning rate before every step as `schedule` says, scaling the
    /// optimizer's rate when training first starts (kept in the training state,
    /// so a resumed run goes on with the same rates).
    #[must_use]
    pub fn schedule(mut self, schedule: LrSchedule) -> Self {
        self.schedule = Some(schedule);
        self
    }

    /// Stops early as `early_stopping` says.
    #[must_use]
    pub fn early_stopping(mut self, early_stopping: EarlyStopping) -> Self {
        self.early_stopping = Some(early_stopping);
        self
    }

    /// Writes checkpoints as `checkpoints` says.
    #[must_use]
    pub fn checkpoints(mut self, checkpoints: Checkpoints<'a>) -> Self {
        self.checkpoints = Some(checkpoints);
        self
    }

    /// Adds a callback (called after those added before it).
    #[must_use]
    pub fn callback(mut self, callback: impl Callback + Send + 'a) -> Self {
        self.callbacks.push(Box::new(callback));
        self
    }

    /// Continues from `state` (a [`super::Checkpoint`]'s): the next epoch is
    /// `state.epochs_done + 1`, and early stopping goes on counting from the
    /// best loss so far. Train the checkpoint's network.
    #[must_use]
    pub fn resume(mut self, state: TrainingState) -> Self {
        self.state = state;
        self
    }

    /// Where training stands: epochs done, the best loss and its epoch.
    pub fn state(&self) -> &TrainingState {
        &self.state
    }

    /// Trains `net` on `x` (one sample per row) and `targets`, checked once up front.
    ///
    /// # Errors
    /// Bad data or settings ([`Error::Shape`], [`Error::NonFinite`],
    /// [`Error::LabelOutOfRange`], [`Error::Empty`], [`Error::Config`]);
    /// [`Error::Diverged`] if the loss stops being finite (training stops
    /// before that batch's update); a checkpoint's [`Error::Io`].
    pub fn fit(
        &mut self,
        net: &mut Network,
        x: ArrayView2<'_, f32>,
        targets: Targets<'_>,
    ) -> Result<History> {
        self.fit_calling(net, x, targets, &mut NoCallback)
    }

    /// [`Trainer::fit`] calling `extra` after the trainer's own callbacks
    /// (whose lifetime need not be the trainer's).
    pub(crate) fn fit_calling(
        &mut self,
        net: &mut Network,
        x: ArrayView2<'_, f32>,
        targets: Targets<'_>,
        extra: &mut (dyn Callback + Send),
    ) -> Result<History> {
        self.check_settings()?;
        net.check_features(&x, "fit: features")?;
        if let Some(p) = self.precision {
            net.set_precision(p);
        }
        let rows = x.nrows();
        net.loss()
            .check_targets(&targets, net.outputs(), rows, "fit: targets")?;
        self.check_validation(net)?;
        net.check_batch_norm_rows(rows)?;
        let x = x.as_standard_layout();
        let x = x.as_slice().expect("standard layout");
        let mut data = InMemory { x, y: targets };
        // The whole loop runs inside the thread pool: parallel kernels then
        // start from a worker thread, and a training step allocates nothing.
        rayon::scope(|_| self.run(net, &mut data, rows, extra))
    }

    /// Trains `net` on the rows of `source`, read a mini-batch at a time and
    /// checked as each is read. A source with random access is shuffled every
    /// epoch exactly as arrays are, so both give the same weights; other
    /// sources are read in order.
    ///
    /// # Errors
    /// As [`Trainer::fit`], plus the source's own read errors.
    pub fn fit_source<S: DataSource + Send>(
        &mut self,
        net: &mut Network,
        source: &mut S,
    ) -> Result<History> {
        self.fit_source_calling(net, source, &mut NoCallback)
    }

    /// [`Trainer::fit_source`] calling `extra` as [`Trainer::fit_calling`] does.
    pub(crate) fn fit_source_calling<S: DataSource + Send>(
        &mut self,
        net: &mut Network,
        source: &mut S,
        extra: &mut (dyn Callback + Send),
    ) -> Result<History> {
        self.check_settings()?;
        let rows = source.rows();
        if rows == 0 {
            return Err(Error::Empty("fit_source: source"));
        }
        if source.features() != net.inputs() {
            return Err(Error::Shape {
                context: "fit_source: features",
                expected: format!("{} columns (the network's inputs)", net.inputs()),
                got: format!("{} columns", source.features()),
            });
        }
        self.check_validation(net)?;
        if let Some(p) = self.precision {
            net.set_precision(p);
        }
        let mut data = FromSource {
            source,
            batch: Batch::default(),
            local: Vec::new(),
        };
        rayon::scope(|_| self.run(net, &mut data, rows, extra))
    }

    /// The settings' ranges: batch and micro-batch sizes, the schedule, the
    /// checkpoint interval.
    fn check_settings(&self) -> Result<()> {
        if let Some(s) = &self.schedule {
            s.validate()?;
        }
        if self.config.batch_size == 0 {
            return Err(Error::Config("batch size must be at least 1".into()));
        }
        if self.config.shards == 0 {
            return Err(Error::Config("a batch needs at least one shard".into()));
        }
        if self.config.micro_batch == Some(0) {
            return Err(Error::Config("micro-batch size must be at least 1".into()));
        }
        if let Some(c) = &self.checkpoints
            && c.every == 0
        {
            return Err(Error::Config(
                "checkpoint interval must be at least 1 epoch".into(),
            ));
        }
        Ok(())
    }

    /// With several processes: checks that they can share the shards and
    /// agree on the data, the network and the settings, then gives every one
    /// process 0's weights.
    fn join_processes(
        &self,
        comm: &dyn Communicator,
        net: &mut Network,
        rows: usize,
        micro: usize,
    ) -> Result<()> {
        let shards = self.config.shards;
        distributed::check_shards(shards, comm.size())?;
        let names = [
            "training rows",
            "features",
            "outputs",
            "layers",
            "parameters",
            "shards",
            "batch size",
            "micro-batch size",
            "epochs",
            "shuffling seed",
            "optimizer steps taken",
        ];
        let seed = self.config.seed.unwrap_or(net.seed());
        let values = [
            rows,
            net.inputs(),
            net.outputs(),
            net.layers().len(),
            net.parameter_count(),
            shards,
            self.config.batch_size,
            micro,
            self.config.epochs,
        ]
        .map(|v| v as u64);
        let values = [&values[..], &[seed, net.optimizer_state().step]].concat();
        distributed::check_agreement(comm, &names, &values)?;
        if comm.size() > 1
            && net.has_batch_norm()
            && self.config.batch_norm_mode == crate::BatchNormMode::Ghost
        {
            // Each process would update the running statistics with its own
            // chunks only.
            return Err(Error::Config(
                "ghost batch norm across processes is not supported: use exact batch norm \
                 (the default), whose statistics are the whole batch's on every process"
                    .into(),
            ));
        }
        comm.broadcast(net.parameters_mut());
        Ok(())
    }

    fn check_validation(&self, net: &Network) -> Result<()> {
        if let Some((vx, vy)) = &self.config.validation {
            net.check_features(vx, "fit: validation features")?;
            net.loss()
                .check_targets(vy, net.outputs(), vx.nrows(), "fit: validation targets")?;
        }
        Ok(())
    }

    /// The epoch loop over `rows` rows of `data`.
    fn run<R: BatchRows>(
        &mut self,
        net: &mut Network,
        data: &mut R,
        rows: usize,
        extra: &mut (dyn Callback + Send),
    ) -> Result<History> {
        net.check_batch_norm_rows(rows)?;
        let batch = self.config.batch_size.min(rows);
        let micro = self.config.micro_batch.map_or(batch, |c| c.min(batch));
        if let Some(comm) = self.comm {
            self.join_processes(comm, net, rows, micro)?;
        }
        net.reserve(micro);
        let mut order: Vec<usize> = (0..rows).collect();
        let mut history = History::default();
        let keeps_best = self.early_stopping.is_some_and(|e| e.restore_best);
        if keeps_best && self.state.epochs_done > 0 && self.state.epochs_since_best == 0 {
            // Resumed at the best epoch so far: the network's own weights are it.
            let mut best = Snapshot::default();
            net.snapshot_weights_into(&mut best);
            self.state.best_weights = Some(best);
        }
        if self.schedule.is_some() && self.state.base_lr.is_none() {
            self.state.base_lr = Some(net.optimizer().learning_rate());
        }
        let last = self.config.first_epoch.saturating_sub(1) + self.config.epochs;
        for epoch in self.state.epochs_done + 1..=last {
            let Some(stats) = self.epoch(net, data, &mut order, (epoch, batch, micro), extra)?
            else {
                return Ok(history);
            };
            history.epochs.push(stats);
            let mut stop = self.after_epoch(net, &stats, extra)?;
            if let Some(e) = self.early_stopping
                && self.state.epochs_since_best >= e.patience
            {
                history.stopped_early = true;
                stop = true;
            }
            if stop {
                break;
            }
        }
        if keeps_best
            && self.state.epochs_since_best > 0
            && let Some(best) = &self.state.best_weights
        {
            net.restore_weights(best)?;
            history.restored_epoch = self.state.best_epoch;
        }
        Ok(history)
    }

    /// One epoch's steps; `None` when a callback stopped training mid-epoch.
    fn epoch<R: BatchRows>(
        &mut self,
        net: &mut Network,
        data: &mut R,
        order: &mut [usize],
        (epoch, batch, micro): (usize, usize, usize),
        extra: &mut (dyn Callback + Send),
    ) -> Result<Option<EpochStats>> {
        if self.config.shuffle && data.random_access() {
            order.iter_mut().enumerate().for_each(|(i, o)| *o = i);
            order.shuffle(&mut epoch_rng(
                self.config.seed.unwrap_or(net.seed()),
                epoch,
            ));
        }
        let has_bn = net.has_batch_norm();
        let batches = order.len().div_ceil(batch);
        let start = Instant::now();
        let (mut loss_sum, mut seen, mut hits, mut judged) = (0.0f64, 0usize, 0usize, 0usize);
        let mut penalty_sum = 0.0f64;
        for (b, idx) in order.chunks(batch).enumerate() {
            // Batch norm cannot normalise a single row; skip such a trailing batch.
            if has_bn && idx.len() < 2 {
                continue;
            }
            self.set_scheduled_rate(net, epoch, order.len())?;
            for c in self.callbacks.iter_mut() {
                c.before_step(net, epoch, b + 1);
            }
            extra.before_step(net, epoch, b + 1);
            let split = crate::network::Split {
                micro,
                shards: self.config.shards,
                mode: self.config.batch_norm_mode,
                comm: self.comm,
            };
            let own = split.own_rows(idx.len());
            let (loss, correct) = if own.len() < idx.len() && data.random_access() {
                // One of several processes: read only the rows of its own
                // shards. The other positions of the batch are never visited.
                let (x, targets, local) = data.load(&idx[own.clone()], net)?;
                self.positions.clear();
                self.positions.resize(idx.len(), 0);
                self.positions[own].copy_from_slice(local);
                net.batch_gradients(x, &targets, &self.positions, split)
            } else {
                let (x, targets, local) = data.load(idx, net)?;
                net.batch_gradients(x, &targets, local, split)
            };
            net.check_finite_loss(loss, epoch, b + 1)?;
            net.step()?;
            if let Some((h, j)) = correct {
                (hits, judged) = (hits + h, judged + j);
            }
            loss_sum += loss * idx.len() as f64;
            penalty_sum += f64::from(net.penalty()) * idx.len() as f64;
            seen += idx.len();
            let progress = Progress::Batch {
                epoch,
                batch: b + 1,
                batches,
                rows: idx.len(),
                loss: loss as f32,
                correct,
            };
            let mut stop = extra.on_step(net, &progress) == Control::Stop;
            for c in self.callbacks.iter_mut() {
                stop |= c.on_step(net, &progress) == Control::Stop;
            }
            if stop {
                return Ok(None);
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        let (val_loss, val_accuracy) = match &self.config.validation {
            Some((vx, vy)) => {
                let e = net.evaluate(vx.view(), *vy)?;
                (Some(e.loss), e.accuracy)
            }
            None => (None, None),
        };
        Ok(Some(EpochStats {
            epoch,
            loss: (loss_sum / seen.max(1) as f64) as f32,
            accuracy: (judged > 0).then(|| hits as f32 / judged as f32),
            val_loss,
            val_accuracy,
            samples_per_sec: seen as f64 / seconds.max(1e-9),
            seconds,
            learning_rate: net.optimizer().learning_rate(),
            penalty: (penalty_sum / seen.max(1) as f64) as f32,
        }))
    }

    /// The scheduled rate of the next step of epoch `epoch` (of `rows` rows).
    fn set_scheduled_rate(&self, net: &mut Network, epoch: usize, rows: usize) -> Result<()> {
        let (Some(schedule), Some(base)) = (&self.schedule, self.state.base_lr) else {
            return Ok(());
        };
        let t = match schedule.every {
            Every::Epoch => epoch - 1,
            Every::Step => usize::try_from(net.optimizer_state().step).unwrap_or(usize::MAX),
        };
        let samples = (epoch - 1) * rows;
        net.set_learning_rate(schedule.rate(base, t, samples, self.state.plateau.factor))
    }

    /// Records the epoch in the training state (and the best weights), runs the
    /// epoch callbacks and writes a checkpoint when one is due. Returns whether
    /// a callback asked to stop.
    fn after_epoch(
        &mut self,
        net: &Network,
        stats: &EpochStats,
        extra: &mut (dyn Callback + Send),
    ) -> Result<bool> {
        let monitored = stats.val_loss.unwrap_or(stats.loss);
        let min_delta = self.early_stopping.map_or(0.0, |e| e.min_delta);
        let improved = self.state.record(stats.epoch, monitored, min_delta);
        if let (Some(schedule), Some(base)) = (&self.schedule, self.state.base_lr) {
            self.state
                .plateau
                .record(&schedule.schedule, base, monitored);
        }
        if improved && self.early_stopping.is_some_and(|e| e.restore_best) {
            let best = self
                .state
                .best_weights
                .get_or_insert_with(Snapshot::default);
            net.snapshot_weights_into(best);
        }
        let mut stop = extra.on_epoch(net, stats) == Control::Stop;
        for c in self.callbacks.iter_mut() {
            stop |= c.on_epoch(net, stats) == Control::Stop;
        }
        if let Some(checkpoints) = &self.checkpoints
            && stats.epoch.is_multiple_of(checkpoints.every)
        {
            // The best weights go into the checkpoint only when they are not its own.
            let best = (self.state.epochs_since_best > 0)
                .then_some(self.state.best_weights.as_ref())
                .flatten();
            checkpoints.write(net, &self.state, best)?;
            for c in self.callbacks.iter_mut() {
                c.on_checkpoint(&checkpoints.path, stats.epoch);
            }
            extra.on_checkpoint(&checkpoints.path, stats.epoch);
        }
        Ok(stop)
    }
}

/// The callback that does nothing.
struct NoCallback;

impl Callback for NoCallback {}
