//! `feedforward train`: read a data set, train, write a model.
//!
//! The library's [`Trainer`] runs the epochs, validation, early stopping and
//! checkpoints; this command turns its options into one, reports through a
//! callback ([`report`]), and writes the model with its training record
//! ([`record`]). A checkpoint holds the weights, the batch-norm statistics, the
//! optimizer's state and the training state, so a run resumed from one ends with
//! the same weights as an uninterrupted one.

mod args;
mod record;
mod report;
mod schedule;

use feedforward::distributed::Communicator;
use feedforward::io::Dataset;
use feedforward::io::model::check_writable;
use feedforward::train::{Checkpoint, Checkpoints, EarlyStopping, History, Trainer, TrainingState};
use feedforward::{BatchNormMode, FitConfig, Loss, Network, Standardizer};
use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::SliceRandom;

pub use args::TrainArgs;
use args::build_network;
use record::{Settings, checkpoint_beside, save_model};
use report::Reporter;

use crate::Result;
use crate::dataset::{DataArgs, features_for, targets_for};
use crate::training_data::{FileSource, TrainingData, TrainingRows, takes_classes};
use feedforward::OwnedTargets;

/// Mixed into the seed for the validation split, so that it does not repeat the
/// first epoch's shuffle.
const SPLIT_SALT: u64 = 0x0005_1F7E_D5EE_D000;

/// A run resumed from a checkpoint: its network and standardisation, the
/// settings that shape the batches, and where training stood.
struct Resumed {
    network: Network,
    standardizer: Option<Standardizer>,
    settings: Settings,
    state: TrainingState,
}

/// Trains as the options say and writes the model.
///
/// With several processes (`comm`), each trains its share of every batch's
/// shards; process 0 alone reports and writes the model, checkpoints and
/// curves.
pub fn run(args: &TrainArgs, comm: &dyn Communicator) -> Result<()> {
    if let Some(t) = args.threads {
        feedforward::set_threads(t)?;
    }
    // A picture that cannot be drawn, or a file that cannot be written, is
    // refused before any training (by the process that writes them).
    if let Some(path) = &args.plot {
        crate::plot::prepare(path)?;
    }
    if comm.rank() == 0 {
        check_writable(&args.out)?;
        if args.checkpoint_every.is_some() {
            check_writable(&checkpoint_path(args))?;
        }
    }
    let resumed = resume(args)?;
    let mut settings = resumed
        .as_ref()
        .map_or_else(|| Settings::of(args), |r| r.settings.clone());
    check_counts(args, &settings)?;
    let loss = resumed
        .as_ref()
        .map_or(args.loss.loss(), |r| r.network.loss());
    let data = training_data(args, loss)?;
    // Softmax's width follows the labels of the whole file, counted before any
    // split: a class that only the held-out rows hold still gets its output.
    let classes = match (&resumed, loss, &args.layers) {
        (None, Loss::CategoricalCrossEntropy, None) => Some(data.class_count()?),
        _ => None,
    };
    let (mut data, val) = validation_data(args, &settings, data)?;
    let (mut net, standardizer, state) = match resumed {
        Some(r) => (r.network, r.standardizer, r.state),
        None => {
            let (net, standardizer) = fresh_network(args, &mut data, classes)?;
            (net, standardizer, TrainingState::default())
        }
    };
    let mut rows = data.into_rows(&net, standardizer.as_ref())?;
    let val = val
        .map(|v| validation_arrays(&v, &net, standardizer.as_ref()))
        .transpose()?;
    // Rows per chunk: as asked, else what the memory budget holds.
    if settings.schedule.is_none() {
        settings.schedule = schedule_of(args, &net, settings.batch_size, rows.rows())?;
    }
    settings.micro_batch = match settings.micro_batch {
        Some(0) => return Err("--micro-batch must be at least 1".into()),
        Some(c) => Some(c),
        None => Some(net.micro_batch_for_budget(args.memory_budget)),
    };
    let lead = comm.rank() == 0;
    let report = Reporter::new(
        args,
        settings.batch_size,
        state.epochs_done,
        rows.rows(),
        lead,
    );
    let run = Run {
        args,
        settings: &settings,
        standardizer: standardizer.as_ref(),
        report: &report,
        comm,
    };
    let (history, state) = run.train(&mut net, &mut rows, val.as_ref(), state)?;
    run.finish(&history, &state);
    if !lead {
        return Ok(());
    }
    save_model(&args.out, &net, standardizer.as_ref(), &settings, &state)?;
    report.note(&format!(
        "wrote {} ({} parameters)",
        args.out.display(),
        net.parameter_count()
    ));
    if let Some(path) = &args.plot {
        plot_history(path, &history, &args.out)?;
        report.note(&format!("wrote {}", path.display()));
    }
    Ok(())
}

/// Where checkpoints go: `--checkpoint`, or beside the model.
fn checkpoint_path(args: &TrainArgs) -> std::path::PathBuf {
    args.checkpoint
        .clone()
        .unwrap_or_else(|| checkpoint_beside(&args.out))
}

/// Draws this run's epochs (after a checkpoint's, when resumed) to `path`.
fn plot_history(path: &std::path::Path, history: &History, model: &std::path::Path) -> Result<()> {
    let points: Vec<_> = history.epochs.iter().map(crate::plot::Point::of).collect();
    if points.is_empty() {
        return Err(format!("{}: no epoch was trained, nothing to draw", path.display()).into());
    }
    let title = format!("feedforward train: {}", model.display());
    crate::plot::draw(&points, &title, path, crate::plot::Format::of(path)?)
}

/// The schedule `--schedule` asks for, resolved for a run of `rows` rows in
/// batches of `batch_size` up to `--epochs`.
fn schedule_of(
    args: &TrainArgs,
    net: &Network,
    batch_size: usize,
    rows: usize,
) -> Result<Option<feedforward::LrSchedule>> {
    // `--warmup` alone warms up to a constant rate.
    let text = match (&args.schedule, args.warmup) {
        (Some(text), _) => text.as_str(),
        (None, 0) => return Ok(None),
        (None, _) => "constant",
    };
    let batches = rows.div_ceil(batch_size.min(rows).max(1));
    let counts = |every| match every {
        feedforward::Every::Epoch => args.epochs,
        feedforward::Every::Step => args.epochs * batches,
    };
    let every = args.schedule_every.map(args::EveryArg::every);
    let lr = net.optimizer().learning_rate();
    schedule::parse(text, every, args.warmup, counts, lr).map(Some)
}

/// The network the options describe (with `--init`, that model's weights) and
/// its standardisation (`--init`'s, else measured with `--standardize`).
fn fresh_network(
    args: &TrainArgs,
    data: &mut TrainingData,
    classes: Option<usize>,
) -> Result<(Network, Option<Standardizer>)> {
    let mut net = build_network(args, data, classes)?;
    let init = args
        .init
        .as_ref()
        .map(|p| warm_start(p, &mut net))
        .transpose()?;
    let standardizer = match init.flatten() {
        Some(s) => Some(s),
        None => args.standardize.then(|| data.standardizer()).transpose()?,
    };
    Ok((net, standardizer))
}

/// Puts the weights of the model at `path` into `net` (built from the
/// options), when its layers are the same; returns its standardisation.
fn warm_start(path: &std::path::Path, net: &mut Network) -> Result<Option<Standardizer>> {
    let model = feedforward::io::model::load(path)?;
    let describe = |n: &Network| -> Vec<String> {
        n.layers()
            .iter()
            .map(|l| {
                let kind = match l {
                    feedforward::Layer::Dense(_) => "dense",
                    feedforward::Layer::BatchNorm(_) => "batch norm",
                    feedforward::Layer::Dropout(_) => "dropout",
                    _ => "layer",
                };
                format!(
                    "{kind} {} -> {} {}",
                    l.inputs(),
                    l.outputs(),
                    l.activation().name()
                )
            })
            .collect()
    };
    let (have, want) = (describe(&model.network), describe(net));
    if have != want {
        let at = have
            .iter()
            .zip(&want)
            .position(|(a, b)| a != b)
            .unwrap_or(have.len().min(want.len()));
        return Err(format!(
            "{}: --init needs the layers the options describe; layer {at} is {} there, {} here ({} layers there, {} here)",
            path.display(),
            have.get(at).map_or("missing", String::as_str),
            want.get(at).map_or("missing", String::as_str),
            have.len(),
            want.len()
        )
        .into());
    }
    if model.network.loss() != net.loss() {
        return Err(format!(
            "{}: --init needs a model trained with the {} loss, not {}",
            path.display(),
            net.loss().name(),
            model.network.loss().name()
        )
        .into());
    }
    let mut weights = feedforward::Snapshot::default();
    model.network.snapshot_weights_into(&mut weights);
    net.restore_weights(&weights)?;
    Ok(model.standardizer)
}

/// The counts that must be at least 1.
fn check_counts(args: &TrainArgs, settings: &Settings) -> Result<()> {
    if settings.batch_size == 0 {
        return Err("--batch-size must be at least 1".into());
    }
    if settings.shards == 0 {
        return Err("--shards must be at least 1".into());
    }
    if args.checkpoint_every == Some(0) {
        return Err("--checkpoint-every must be at least 1".into());
    }
    Ok(())
}

/// The data file, loaded whole or (`--stream`) opened to be read a batch at a time.
fn training_data(args: &TrainArgs, loss: Loss) -> Result<TrainingData> {
    Ok(if args.stream {
        TrainingData::Streamed {
            source: FileSource::open(&args.data, takes_classes(loss))?,
            path: args.data.data.clone(),
        }
    } else {
        TrainingData::Loaded(args.data.read(&args.data.data)?)
    })
}

/// Validation features (standardised as the training rows are) and targets for `net`.
fn validation_arrays(
    v: &Dataset,
    net: &Network,
    standardizer: Option<&Standardizer>,
) -> Result<(Array2<f32>, OwnedTargets)> {
    Ok((
        features_for(v, net, standardizer)?,
        targets_for(v, net.loss(), net.outputs())?,
    ))
}

/// The checkpoint `--resume` names, if any, checked against `--epochs`.
fn resume(args: &TrainArgs) -> Result<Option<Resumed>> {
    let Some(path) = &args.resume else {
        return Ok(None);
    };
    let checkpoint = Checkpoint::load(path)?;
    let settings = Settings::from_metadata(path, &checkpoint.model.metadata)?;
    let state = checkpoint.state;
    // Equal: the run was stopped after its last checkpoint, before (or while)
    // the model was written; resuming trains nothing and writes the model.
    if state.epochs_done > args.epochs {
        return Err(format!(
            "{} has already trained {} epochs; pass --epochs of at least that",
            path.display(),
            state.epochs_done
        )
        .into());
    }
    Ok(Some(Resumed {
        network: checkpoint.model.network,
        standardizer: checkpoint.model.standardizer,
        settings,
        state,
    }))
}

/// The training rows and the validation data: a seeded split of `data`, or
/// all of `data` and a file of its own.
fn validation_data(
    args: &TrainArgs,
    settings: &Settings,
    data: TrainingData,
) -> Result<(TrainingData, Option<Dataset>)> {
    if let Some(fraction) = settings.val_split {
        if !(fraction > 0.0 && fraction < 1.0) {
            return Err(format!("--val-split must be between 0 and 1, got {fraction}").into());
        }
        let n = data.rows();
        let n_val = ((n as f64 * f64::from(fraction)).round() as usize)
            .clamp(1, n.saturating_sub(1).max(1));
        if n < 2 {
            return Err(format!(
                "{} has {n} row(s): too few to split off validation data",
                data.path().display()
            )
            .into());
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut Xoshiro256PlusPlus::seed_from_u64(
            settings.seed ^ SPLIT_SALT,
        ));
        let (train_rows, val_rows) = order.split_at(n - n_val);
        let (training, held_out) = data.split(train_rows, val_rows)?;
        return Ok((training, Some(held_out)));
    }
    let Some(path) = &args.val else {
        return Ok((data, None));
    };
    let options = DataArgs {
        labels: args.val_labels.clone(),
        ..args.data.clone()
    };
    let v = options.read(path)?;
    if v.targets.ncols() == 0 {
        return Err(format!(
            "{} has no targets (pass --val-labels for IDX or NPY validation data, --label for CSV)",
            v.origin.targets_path.display()
        )
        .into());
    }
    Ok((data, Some(v)))
}

/// One training run's settings and reporter.
struct Run<'r> {
    args: &'r TrainArgs,
    settings: &'r Settings,
    standardizer: Option<&'r Standardizer>,
    report: &'r Reporter,
    comm: &'r dyn Communicator,
}

impl Run<'_> {
    /// Trains `net` on `rows` from `state` up to `--epochs`; returns what the
    /// run measured and where it ended.
    fn train(
        &self,
        net: &mut Network,
        rows: &mut TrainingRows,
        val: Option<&(Array2<f32>, OwnedTargets)>,
        state: TrainingState,
    ) -> Result<(History, TrainingState)> {
        let (settings, micro) = (self.settings, self.settings.micro_batch.unwrap_or(1));
        let config = FitConfig {
            epochs: self.args.epochs,
            batch_size: settings.batch_size,
            seed: Some(settings.seed),
            validation: val.map(|(vx, vy)| (vx.view(), vy.view())),
            micro_batch: (micro < settings.batch_size).then_some(micro),
            batch_norm_mode: if settings.ghost_batch_norm {
                BatchNormMode::Ghost
            } else {
                BatchNormMode::Exact
            },
            shards: settings.shards,
            ..FitConfig::default()
        };
        let mut trainer = Trainer::new(config)
            .precision(self.args.precision)
            .resume(state)
            .communicator(self.comm)
            .callback(self.report);
        if let Some(schedule) = &settings.schedule {
            trainer = trainer.schedule(schedule.clone());
        }
        if let Some(patience) = settings.early_stopping {
            trainer = trainer.early_stopping(EarlyStopping::patience(patience));
        }
        if let (Some(every), 0) = (self.args.checkpoint_every, self.comm.rank()) {
            trainer = trainer.checkpoints(Checkpoints {
                path: checkpoint_path(self.args),
                every,
                standardizer: self.standardizer,
                metadata: settings.metadata()?,
            });
        }
        let history = rows.train(net, &mut trainer)?;
        Ok((history, trainer.state().clone()))
    }

    /// Reports how the run ended: early stopping, and whose weights are kept.
    fn finish(&self, history: &History, state: &TrainingState) {
        let best_loss = state.best_loss.unwrap_or(f32::NAN);
        if let (true, Some(patience)) = (history.stopped_early, self.settings.early_stopping) {
            self.report.note(&format!(
                "early stopping: no improvement for {patience} epoch(s); best loss {best_loss:.5}"
            ));
        }
        self.report.finish();
        if self.settings.early_stopping.is_none() || state.epochs_since_best == 0 {
            return;
        }
        match history.restored_epoch {
            Some(epoch) => self.report.note(&format!(
                "restored the weights of epoch {epoch} (the best loss, {best_loss:.5})"
            )),
            None => self.report.note(
                "the checkpoint does not hold the best epoch's weights (written by an older version): keeping the last epoch's weights",
            ),
        }
    }
}
