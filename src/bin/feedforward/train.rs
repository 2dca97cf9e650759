//! `feedforward train`: read a data set, train, write a model.
//!
//! Training runs one epoch per call of the library's `fit`, so that between
//! epochs the command can print, stop early, and checkpoint. Epoch `e` shuffles
//! with a generator seeded from the seed and `e` alone, and a checkpoint holds
//! the weights, the batch-norm statistics and the optimizer's state, so a run
//! resumed from a checkpoint ends with the same weights as an uninterrupted one.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use feedforward::io::model::{self, SaveOptions};
use feedforward::{
    Activation, AdamConfig, BatchNormMode, FitConfig, Layer, Loss, Network, Optimizer, Progress,
    SgdConfig, Standardizer,
};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::dataset::{DataArgs, targets_for};
use crate::training_data::{FileSource, TrainingData, takes_classes};
use crate::{Result, json_f32};

/// Metadata key of the training record in model and checkpoint files.
pub const TRAINING_KEY: &str = "feedforward.training";

/// Mixed into the seed for the validation split, so that it does not repeat the
/// first epoch's shuffle.
const SPLIT_SALT: u64 = 0x0005_1F7E_D5EE_D000;

/// Options of `feedforward train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Where to write the trained model (safetensors). Written only when training
    /// succeeds, atomically: a failed run leaves an existing file as it was.
    #[arg(long)]
    out: PathBuf,
    /// All layer widths from input to output, e.g. 784,512,256,10. The first must
    /// equal the number of features, the last the number of classes or targets.
    #[arg(long, value_delimiter = ',', conflicts_with = "hidden")]
    layers: Option<Vec<usize>>,
    /// Hidden layer widths only; input and output widths follow from the data.
    #[arg(long, value_delimiter = ',', default_value = "64")]
    hidden: Vec<usize>,
    /// Activation of the hidden layers.
    #[arg(long, value_enum, default_value_t = HiddenActivation::Relu)]
    activation: HiddenActivation,
    /// Output layer and loss.
    #[arg(long, visible_alias = "output", value_enum, default_value_t = LossArg::Softmax)]
    loss: LossArg,
    /// Optimizer.
    #[arg(long, value_enum, default_value_t = OptimizerArg::Adam)]
    optimizer: OptimizerArg,
    /// Learning rate [default: 0.001 for Adam and AdamW, 0.01 for SGD].
    #[arg(long)]
    lr: Option<f32>,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.0)]
    momentum: f32,
    /// SGD: Nesterov momentum.
    #[arg(long)]
    nesterov: bool,
    /// Weight decay (L2 for SGD and Adam, decoupled for AdamW).
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f32,
    /// Scale gradients down to this global L2 norm when it is exceeded.
    #[arg(long)]
    clip_grad_norm: Option<f32>,
    /// Rows per mini-batch.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Epochs to train (in all, counting those of a resumed checkpoint).
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Batch normalisation before every hidden activation.
    #[arg(long)]
    batch_norm: bool,
    /// Compute each batch in chunks of at most this many rows, accumulating
    /// gradients (one optimizer step per batch) [default: from --memory-budget].
    #[arg(long, value_name = "ROWS")]
    micro_batch: Option<usize>,
    /// Memory for one chunk's activations and gradients (e.g. 512MiB, 2GiB); sets
    /// the micro-batch size when --micro-batch is not given.
    #[arg(long, default_value = "2GiB", value_parser = parse_size)]
    memory_budget: usize,
    /// Under micro-batching, normalise each chunk with its own statistics (ghost
    /// batch norm) instead of the whole batch's (exact, the default).
    #[arg(long)]
    ghost_batch_norm: bool,
    /// Hold out this fraction of the data (shuffled with the seed) for validation.
    #[arg(long, conflicts_with = "val")]
    val_split: Option<f32>,
    /// Validation data file (read like --data).
    #[arg(long)]
    val: Option<PathBuf>,
    /// Targets file for IDX or NPY validation data (beside MNIST images it is
    /// found by name).
    #[arg(long, requires = "val")]
    val_labels: Option<PathBuf>,
    /// Standardise every feature with the training data's mean and standard
    /// deviation (stored in the model and applied by eval and predict).
    #[arg(long)]
    standardize: bool,
    /// Seed for the initial weights, shuffling and the validation split.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Threads for rayon and BLAS [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Stop when the validation loss (training loss without validation data) has
    /// not improved for this many epochs; the model written is then the best
    /// epoch's.
    #[arg(long, value_name = "PATIENCE")]
    early_stopping: Option<usize>,
    /// Save a checkpoint (model and optimizer state, and with --early-stopping the
    /// best epoch's weights) every N epochs.
    #[arg(long, value_name = "N")]
    checkpoint_every: Option<usize>,
    /// Checkpoint file [default: beside --out, `NAME.ckpt.safetensors`].
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Continue from a checkpoint: its network, optimizer state, batch size, seed,
    /// validation split and standardisation replace the options above.
    #[arg(long, value_name = "FILE")]
    resume: Option<PathBuf>,
    /// Read the training rows from the data file a batch at a time instead of
    /// loading it whole: NPY features (float32, with --labels; shuffled every
    /// epoch, as in memory; --val-split reads only the held-out rows into
    /// memory) or CSV (read in file order: shuffle it once beforehand; validation
    /// data from --val).
    #[arg(long, conflicts_with = "allow_nan")]
    stream: bool,
    /// Print nothing but errors.
    #[arg(long, short)]
    quiet: bool,
    /// One JSON object per epoch on standard output, and no progress bar.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum HiddenActivation {
    Relu,
    Tanh,
    Sigmoid,
    Identity,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LossArg {
    /// Softmax output, categorical cross-entropy; labels are class indices.
    #[value(alias = "ce", alias = "categorical")]
    Softmax,
    /// Sigmoid outputs, one binary cross-entropy per label (multi-label).
    #[value(alias = "multilabel", alias = "multi-label")]
    Sigmoid,
    /// One sigmoid output, binary cross-entropy; labels 0 or 1.
    #[value(alias = "bce")]
    Binary,
    /// Linear outputs, mean squared error (regression).
    #[value(alias = "regression")]
    Mse,
}

impl LossArg {
    fn loss(self) -> Loss {
        match self {
            LossArg::Softmax => Loss::CategoricalCrossEntropy,
            LossArg::Sigmoid => Loss::MultiLabelCrossEntropy,
            LossArg::Binary => Loss::BinaryCrossEntropy,
            LossArg::Mse => Loss::MeanSquaredError,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum OptimizerArg {
    Sgd,
    Adam,
    Adamw,
}

/// Where training stands: stored in checkpoints (and in the final model, for the record).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainingRecord {
    epochs_done: usize,
    batch_size: usize,
    seed: u64,
    val_split: Option<f32>,
    early_stopping: Option<usize>,
    best_loss: Option<f32>,
    epochs_since_best: usize,
    #[serde(default)]
    micro_batch: Option<usize>,
    #[serde(default)]
    ghost_batch_norm: bool,
    /// In a checkpoint, the epoch of the best weights stored beside its own.
    #[serde(default)]
    best_epoch: Option<usize>,
}

/// Trains as the options say and writes the model.
pub fn run(args: &TrainArgs) -> Result<()> {
    if let Some(t) = args.threads {
        feedforward::set_threads(t)?;
    }
    // A checkpoint supplies the network and the settings that shape the batches.
    let resumed = match &args.resume {
        Some(path) => {
            let m = model::load(path)?;
            if !m.has_optimizer_state && m.network.optimizer_state().step > 0 {
                return Err(format!("{}: a model without optimizer state cannot be resumed exactly; use a checkpoint", path.display()).into());
            }
            let record: TrainingRecord = m
                .metadata
                .get(TRAINING_KEY)
                .and_then(|s| serde_json::from_str(s).ok())
                .ok_or_else(|| {
                    format!(
                        "{}: not a feedforward training checkpoint (no training record)",
                        path.display()
                    )
                })?;
            if record.epochs_done >= args.epochs {
                return Err(format!(
                    "{} has already trained {} epochs; pass --epochs greater than that",
                    path.display(),
                    record.epochs_done
                )
                .into());
            }
            let best = BestWeights::from_checkpoint(&m, &record);
            Some((m.network, m.standardizer, record, best))
        }
        None => None,
    };
    let mut record = match &resumed {
        Some((_, _, r, _)) => r.clone(),
        None => TrainingRecord {
            epochs_done: 0,
            batch_size: args.batch_size,
            seed: args.seed,
            val_split: args.val_split,
            early_stopping: args.early_stopping,
            best_loss: None,
            epochs_since_best: 0,
            micro_batch: args.micro_batch,
            ghost_batch_norm: args.ghost_batch_norm,
            best_epoch: None,
        },
    };
    if record.batch_size == 0 {
        return Err("--batch-size must be at least 1".into());
    }
    let loss = match &resumed {
        Some((net, ..)) => net.loss(),
        None => args.loss.loss(),
    };
    let mut data = if args.stream {
        TrainingData::Streamed {
            source: FileSource::open(&args.data, takes_classes(loss))?,
            path: args.data.data.clone(),
        }
    } else {
        TrainingData::Loaded(args.data.read(&args.data.data)?)
    };

    // Softmax's width follows the labels of the whole file, counted before any
    // split: a class that only the held-out rows hold still gets its output.
    let classes = match (&resumed, loss, &args.layers) {
        (None, Loss::CategoricalCrossEntropy, None) => Some(data.class_count()?),
        _ => None,
    };

    // Validation data: a seeded split of the data, or a file of its own.
    let mut val = None;
    if let Some(fraction) = record.val_split {
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
            record.seed ^ SPLIT_SALT,
        ));
        let (train_rows, val_rows) = order.split_at(n - n_val);
        let (training, held_out) = data.split(train_rows, val_rows)?;
        data = training;
        val = Some(held_out);
    } else if let Some(path) = &args.val {
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
        val = Some(v);
    }

    // With early stopping, the weights of the best epoch so far.
    let mut best: Option<BestWeights> = None;
    let (mut net, standardizer) = match resumed {
        Some((net, s, _, b)) => {
            best = b;
            (net, s)
        }
        None => {
            let standardizer = if args.standardize {
                Some(data.standardizer()?)
            } else {
                None
            };
            (build_network(args, &data, classes)?, standardizer)
        }
    };
    let inputs_of =
        |d: &feedforward::io::Dataset| crate::dataset::features_for(d, &net, standardizer.as_ref());
    let mut rows = data.into_rows(&net, standardizer.as_ref())?;
    let val = match &val {
        Some(v) => Some((inputs_of(v)?, targets_for(v, net.loss(), net.outputs())?)),
        None => None,
    };

    // Rows per chunk: as asked, else what the memory budget holds.
    let micro = match record.micro_batch {
        Some(0) => return Err("--micro-batch must be at least 1".into()),
        Some(c) => c,
        None => net.micro_batch_for_budget(args.memory_budget),
    };
    record.micro_batch = Some(micro);
    let checkpoint_path = args
        .checkpoint
        .clone()
        .unwrap_or_else(|| checkpoint_beside(&args.out));
    if args.checkpoint_every == Some(0) {
        return Err("--checkpoint-every must be at least 1".into());
    }
    let report = Reporter::new(args, &record, rows.rows());
    let first = record.epochs_done + 1;
    if record.early_stopping.is_some() && record.epochs_done > 0 && record.epochs_since_best == 0 {
        // Resumed at the best epoch so far: the checkpoint's own weights are it.
        best = Some(BestWeights::of(&net, record.epochs_done));
    }
    // Only a checkpoint's copy of the best weights is described by it.
    record.best_epoch = None;
    for epoch in first..=args.epochs {
        let config = FitConfig {
            epochs: 1,
            first_epoch: epoch,
            batch_size: record.batch_size,
            seed: Some(record.seed),
            validation: val.as_ref().map(|(vx, vy)| (vx.view(), vy.view())),
            micro_batch: (micro < record.batch_size).then_some(micro),
            batch_norm_mode: if record.ghost_batch_norm {
                BatchNormMode::Ghost
            } else {
                BatchNormMode::Exact
            },
            ..FitConfig::default()
        };
        let history = rows.fit(&mut net, &config, |p| {
            report.progress(&p);
            true
        })?;
        let stats = *history.last().ok_or("training ran no epoch")?;
        record.epochs_done = epoch;
        report.epoch(&stats, args.epochs);

        let monitored = stats.val_loss.unwrap_or(stats.loss);
        if record.best_loss.is_none_or(|b| monitored < b) {
            record.best_loss = Some(monitored);
            record.epochs_since_best = 0;
            if record.early_stopping.is_some() {
                best = Some(BestWeights::of(&net, epoch));
            }
        } else {
            record.epochs_since_best += 1;
        }
        if let Some(n) = args.checkpoint_every
            && epoch % n == 0
        {
            // The best epoch's weights go with the checkpoint when they are not
            // its own, so that a resumed run can still restore them.
            let best = best.as_ref().filter(|_| record.epochs_since_best > 0);
            save_checkpoint(&checkpoint_path, &net, standardizer.as_ref(), &record, best)?;
            report.note(&format!(
                "checkpoint: {} (epoch {epoch})",
                checkpoint_path.display()
            ));
        }
        if let Some(patience) = record.early_stopping
            && record.epochs_since_best >= patience
        {
            report.note(&format!(
                "early stopping: no improvement for {patience} epoch(s); best loss {:.5}",
                record.best_loss.unwrap_or(f32::NAN)
            ));
            break;
        }
    }
    report.finish();
    if record.early_stopping.is_some() && record.epochs_since_best > 0 {
        match &best {
            Some(b) => {
                b.restore(&mut net)?;
                report.note(&format!(
                    "restored the weights of epoch {} (the best loss, {:.5})",
                    b.epoch,
                    record.best_loss.unwrap_or(f32::NAN)
                ));
            }
            None => report.note(
                "the checkpoint does not hold the best epoch's weights (written by an older version): keeping the last epoch's weights",
            ),
        }
    }
    save(
        &args.out,
        &net,
        &SaveOptions {
            standardizer: standardizer.as_ref(),
            ..SaveOptions::default()
        },
        &record,
    )?;
    report.note(&format!(
        "wrote {} ({} parameters)",
        args.out.display(),
        net.parameter_count()
    ));
    Ok(())
}

/// The parameters and batch-norm running statistics after one epoch, kept so
/// that early stopping writes the best epoch's model rather than the last.
struct BestWeights {
    epoch: usize,
    parameters: Vec<f32>,
    running: Vec<(Vec<f32>, Vec<f32>)>,
}

impl BestWeights {
    fn of(net: &Network, epoch: usize) -> Self {
        let running = net
            .layers()
            .iter()
            .filter_map(|l| match l {
                Layer::BatchNorm(b) => Some((b.running_mean.clone(), b.running_var.clone())),
                Layer::Dense(_) => None,
            })
            .collect();
        BestWeights {
            epoch,
            parameters: net.parameters().to_vec(),
            running,
        }
    }

    /// Tensor name of the best parameters in a checkpoint (the epoch is in the
    /// training record); the running statistics follow as
    /// `training.best.running_mean.{j}` and `.running_var.{j}` for batch-norm layer `j`.
    const PARAMETERS: &'static str = "training.best.parameters";

    /// The best weights a checkpoint holds beside its own, if it holds any.
    fn from_checkpoint(m: &model::Model, record: &TrainingRecord) -> Option<BestWeights> {
        let epoch = record.best_epoch?;
        let parameters = m.extra_tensors.get(Self::PARAMETERS)?.clone();
        let norms = m
            .network
            .layers()
            .iter()
            .filter(|l| matches!(l, Layer::BatchNorm(_)))
            .count();
        let running = (0..norms)
            .map(|j| {
                let mean = m
                    .extra_tensors
                    .get(&format!("training.best.running_mean.{j}"))?;
                let var = m
                    .extra_tensors
                    .get(&format!("training.best.running_var.{j}"))?;
                Some((mean.clone(), var.clone()))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(BestWeights {
            epoch,
            parameters,
            running,
        })
    }

    /// The weights as named tensors for a checkpoint.
    fn tensors(&self) -> Vec<(String, &[f32])> {
        let mut t = vec![(Self::PARAMETERS.to_string(), &self.parameters[..])];
        for (j, (mean, var)) in self.running.iter().enumerate() {
            t.push((format!("training.best.running_mean.{j}"), &mean[..]));
            t.push((format!("training.best.running_var.{j}"), &var[..]));
        }
        t
    }

    fn restore(&self, net: &mut Network) -> Result<()> {
        let snapshot = feedforward::Snapshot::from_parts(
            self.parameters.clone(),
            self.running.clone(),
            feedforward::OptimizerState::default(),
        );
        net.restore_weights(&snapshot)?;
        Ok(())
    }
}

/// The network the options describe for `data`; `classes` is the number of
/// classes in the whole file (softmax's width unless `--layers` gives it).
fn build_network(args: &TrainArgs, data: &TrainingData, classes: Option<usize>) -> Result<Network> {
    let loss = args.loss.loss();
    let features = data.features();
    let outputs = match loss {
        Loss::CategoricalCrossEntropy => match (&args.layers, classes) {
            (Some(l), _) => *l.last().unwrap_or(&0),
            (None, Some(classes)) => classes.max(2),
            (None, None) => data.class_count()?.max(2),
        },
        Loss::BinaryCrossEntropy => 1,
        Loss::MultiLabelCrossEntropy | Loss::MeanSquaredError => data.target_columns(),
    };
    let hidden: Vec<usize> = match &args.layers {
        Some(l) => {
            if l.len() < 2 {
                return Err(
                    "--layers needs at least the input and output widths, e.g. 64,32,10".into(),
                );
            }
            if l[0] != features {
                return Err(format!(
                    "--layers starts with {} inputs but {} has {features} feature column(s)",
                    l[0],
                    data.path().display()
                )
                .into());
            }
            let last = *l.last().expect("two or more");
            if last != outputs {
                return Err(format!(
                    "--layers ends with {last} outputs but the {} loss needs {outputs} here",
                    loss.name()
                )
                .into());
            }
            l[1..l.len() - 1].to_vec()
        }
        None => args.hidden.clone(),
    };
    let activation = match args.activation {
        HiddenActivation::Relu => Activation::Relu,
        HiddenActivation::Tanh => Activation::Tanh,
        HiddenActivation::Sigmoid => Activation::Sigmoid,
        HiddenActivation::Identity => Activation::Identity,
    };
    let weight_decay = args.weight_decay;
    let optimizer = match args.optimizer {
        OptimizerArg::Sgd => Optimizer::Sgd(SgdConfig {
            lr: args.lr.unwrap_or(0.01),
            momentum: args.momentum,
            nesterov: args.nesterov,
            weight_decay,
        }),
        OptimizerArg::Adam => Optimizer::Adam(AdamConfig {
            lr: args.lr.unwrap_or(1e-3),
            weight_decay,
            ..AdamConfig::default()
        }),
        OptimizerArg::Adamw => Optimizer::AdamW(AdamConfig {
            lr: args.lr.unwrap_or(1e-3),
            weight_decay,
            ..AdamConfig::default()
        }),
    };
    let mut builder = Network::builder(features)
        .optimizer(optimizer)
        .loss(loss)
        .seed(args.seed);
    for &units in &hidden {
        builder = if args.batch_norm {
            builder
                .dense(units, Activation::Identity)
                .batch_norm(activation)
        } else {
            builder.dense(units, activation)
        };
    }
    builder = builder.dense(outputs, loss.output_activation());
    if let Some(c) = args.clip_grad_norm {
        builder = builder.clip_grad_norm(c);
    }
    Ok(builder.build()?)
}

/// Writes a model with the training record in its metadata.
fn save(
    path: &Path,
    net: &Network,
    options: &SaveOptions<'_>,
    record: &TrainingRecord,
) -> Result<()> {
    let mut options = options.clone();
    options
        .metadata
        .insert(TRAINING_KEY.to_string(), serde_json::to_string(record)?);
    model::save(path, net, &options)?;
    Ok(())
}

/// Writes a checkpoint: the model, the optimizer's state, and the best epoch's
/// weights when early stopping may still need them.
fn save_checkpoint(
    path: &Path,
    net: &Network,
    standardizer: Option<&Standardizer>,
    record: &TrainingRecord,
    best: Option<&BestWeights>,
) -> Result<()> {
    let mut record = record.clone();
    record.best_epoch = best.map(|b| b.epoch);
    let options = SaveOptions {
        standardizer,
        optimizer_state: true,
        extra_tensors: best.map(BestWeights::tensors).unwrap_or_default(),
        ..SaveOptions::default()
    };
    save(path, net, &options, &record)
}

/// `model.safetensors` → `model.ckpt.safetensors`.
fn checkpoint_beside(out: &Path) -> PathBuf {
    let stem = out
        .file_stem()
        .map_or("model".into(), |s| s.to_string_lossy().into_owned());
    out.with_file_name(format!("{stem}.ckpt.safetensors"))
}

/// Progress bar, epoch lines and JSON, as the options ask.
struct Reporter {
    bar: Option<ProgressBar>,
    json: bool,
    quiet: bool,
    state: std::sync::Mutex<BarState>,
}

struct BarState {
    epoch_start: Instant,
    last_draw: Instant,
    rows: usize,
    loss_sum: f64,
    right: usize,
    judged: usize,
}

impl Reporter {
    fn new(args: &TrainArgs, record: &TrainingRecord, rows: usize) -> Reporter {
        let quiet = args.quiet;
        let bar = (!quiet && !args.json).then(|| {
            let batches = rows.div_ceil(record.batch_size.min(rows).max(1));
            let total = (args.epochs.saturating_sub(record.epochs_done) * batches) as u64;
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} batches  {msg}  eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar
        });
        let now = Instant::now();
        Reporter {
            bar,
            json: args.json,
            quiet,
            state: std::sync::Mutex::new(BarState {
                epoch_start: now,
                last_draw: now,
                rows: 0,
                loss_sum: 0.0,
                right: 0,
                judged: 0,
            }),
        }
    }

    fn progress(&self, p: &Progress<'_>) {
        let (
            Some(bar),
            Progress::Batch {
                epoch,
                batch,
                rows,
                loss,
                correct,
                ..
            },
        ) = (&self.bar, p)
        else {
            return;
        };
        let mut s = self.state.lock().expect("not poisoned");
        if *batch == 1 {
            *s = BarState {
                epoch_start: Instant::now(),
                last_draw: s.last_draw,
                rows: 0,
                loss_sum: 0.0,
                right: 0,
                judged: 0,
            };
            bar.set_prefix(format!("epoch {epoch}"));
        }
        s.rows += rows;
        s.loss_sum += f64::from(*loss) * *rows as f64;
        if let Some((r, j)) = correct {
            s.right += r;
            s.judged += j;
        }
        bar.inc(1);
        if s.last_draw.elapsed() > Duration::from_millis(100) {
            s.last_draw = Instant::now();
            let rate = s.rows as f64 / s.epoch_start.elapsed().as_secs_f64().max(1e-9);
            let mut msg = format!("loss {:.4}", s.loss_sum / s.rows.max(1) as f64);
            if s.judged > 0 {
                msg += &format!("  acc {:.4}", s.right as f64 / s.judged as f64);
            }
            msg += &format!("  {rate:.0} samples/s");
            bar.set_message(msg);
        }
    }

    fn epoch(&self, e: &feedforward::EpochStats, epochs: usize) {
        if self.quiet {
            return;
        }
        if self.json {
            let line = serde_json::json!({
                "epoch": e.epoch,
                "loss": json_f32(e.loss),
                "accuracy": e.accuracy.map(json_f32),
                "val_loss": e.val_loss.map(json_f32),
                "val_accuracy": e.val_accuracy.map(json_f32),
                "samples_per_s": e.samples_per_sec,
                "seconds": e.seconds,
            });
            outln!("{line}");
            return;
        }
        let mut line = format!("epoch {:>3}/{epochs}  loss {:.5}", e.epoch, e.loss);
        if let Some(a) = e.accuracy {
            line += &format!("  acc {a:.4}");
        }
        if let Some(v) = e.val_loss {
            line += &format!("  val_loss {v:.5}");
        }
        if let Some(a) = e.val_accuracy {
            line += &format!("  val_acc {a:.4}");
        }
        line += &format!("  {:.0} samples/s  {:.2} s", e.samples_per_sec, e.seconds);
        match &self.bar {
            Some(bar) => bar.suspend(|| outln!("{line}")),
            None => outln!("{line}"),
        }
    }

    fn note(&self, text: &str) {
        if !self.quiet && !self.json {
            match &self.bar {
                Some(bar) => bar.suspend(|| eprintln!("{text}")),
                None => eprintln!("{text}"),
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A byte count such as `2GiB`, `512MiB`, `1.5G` or `1000000`.
fn parse_size(text: &str) -> std::result::Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 2GiB or 512MiB"))?;
    let scale: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "unknown size unit {unit:?} (use B, KiB, MiB, GiB, KB, MB or GB)"
            ));
        }
    };
    if !(value.is_finite() && value > 0.0) {
        return Err(format!("{text:?}: a size must be positive"));
    }
    Ok((value * scale) as usize)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1.5G"), Ok(1_500_000_000));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("3 parsecs").is_err());
        assert!(parse_size("0").is_err());
    }
}
