//! The options of `feedforward train`, and the network they describe.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use feedforward::{
    Activation, AdagradConfig, AdamConfig, LambConfig, LarsConfig, Loss, Network, Optimizer,
    RmsPropConfig, SgdConfig,
};

use crate::Result;
use crate::dataset::DataArgs;
use crate::training_data::TrainingData;

/// Options of `feedforward train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub(super) data: DataArgs,
    /// Also draw the run's curves (loss, accuracy and learning rate per epoch,
    /// training and validation) to this .svg or .png file.
    #[arg(long, value_name = "FILE")]
    pub(super) plot: Option<PathBuf>,
    /// Where to write the trained model (safetensors). Written only when training
    /// succeeds, atomically: a failed run leaves an existing file as it was.
    #[arg(long)]
    pub(super) out: PathBuf,
    /// All layer widths from input to output, e.g. 784,512,256,10. The first must
    /// equal the number of features, the last the number of classes or targets.
    #[arg(long, value_delimiter = ',', conflicts_with = "hidden")]
    pub(super) layers: Option<Vec<usize>>,
    /// Hidden layer widths only; input and output widths follow from the data.
    #[arg(long, value_delimiter = ',', default_value = "64")]
    pub(super) hidden: Vec<usize>,
    /// Activation of the hidden layers.
    #[arg(long, value_enum, default_value_t = HiddenActivation::Relu)]
    pub(super) activation: HiddenActivation,
    /// Output layer and loss.
    #[arg(long, visible_alias = "output", value_enum, default_value_t = LossArg::Softmax)]
    pub(super) loss: LossArg,
    /// Optimizer.
    #[arg(long, value_enum, default_value_t = OptimizerArg::Adam)]
    pub(super) optimizer: OptimizerArg,
    /// Learning rate [default: 0.001 for Adam, AdamW and LAMB, 0.01 for SGD,
    /// RMSprop and Adagrad, 0.1 for LARS].
    #[arg(long)]
    pub(super) lr: Option<f32>,
    /// Learning-rate schedule: NAME[:KEY=VALUE,...] with NAME one of constant,
    /// step (size, gamma), multistep (milestones=A/B/C, gamma), exponential
    /// (gamma), cosine (period, min_lr), cosine-restarts (period, mult, min_lr),
    /// one-cycle (max_lr, total, pct_start, div_factor, final_div_factor),
    /// plateau (factor, patience, threshold, cooldown, min_lr; on the
    /// validation loss when there is one) or invscaling (power_t). As PyTorch's
    /// schedulers; e.g. step:size=10,gamma=0.5.
    #[arg(long, value_name = "SCHEDULE")]
    pub(super) schedule: Option<String>,
    /// What the schedule counts [default: epoch; step for one-cycle].
    #[arg(long, value_enum)]
    pub(super) schedule_every: Option<EveryArg>,
    /// Linear warm-up over this many of the schedule's counts before it.
    #[arg(long, default_value_t = 0, value_name = "COUNTS")]
    pub(super) warmup: usize,
    /// The linear scaling rule for large batches: the learning rate times
    /// batch size / 256.
    #[arg(long)]
    pub(super) scale_lr: bool,
    /// SGD, RMSprop or LARS momentum [LARS: 0.9 when not given].
    #[arg(long, default_value_t = 0.0)]
    pub(super) momentum: f32,
    /// RMSprop: normalise by the variance estimate (centred RMSprop).
    #[arg(long)]
    pub(super) centered: bool,
    /// SGD: Nesterov momentum.
    #[arg(long)]
    pub(super) nesterov: bool,
    /// Weight decay (L2 for SGD and Adam, decoupled for AdamW).
    #[arg(long, default_value_t = 0.0)]
    pub(super) weight_decay: f32,
    /// L1 penalty on the weights (not biases): λ₁ Σ|w| added to the loss.
    #[arg(long, default_value_t = 0.0)]
    pub(super) l1: f32,
    /// L2 penalty on the weights (not biases): λ₂ Σ w² added to the loss
    /// (unlike --weight-decay, it is reported apart from the data loss).
    #[arg(long, default_value_t = 0.0)]
    pub(super) l2: f32,
    /// Scale gradients down to this global L2 norm when it is exceeded.
    #[arg(long)]
    pub(super) clip_grad_norm: Option<f32>,
    /// Rows per mini-batch.
    #[arg(long, default_value_t = 32)]
    pub(super) batch_size: usize,
    /// Epochs to train (in all, counting those of a resumed checkpoint).
    #[arg(long, default_value_t = 10)]
    pub(super) epochs: usize,
    /// Batch normalisation before every hidden activation.
    #[arg(long)]
    pub(super) batch_norm: bool,
    /// Dropout rate after every hidden layer (one value), or one per hidden
    /// layer (a list, e.g. 0.2,0.5); 0 for none. Inverted dropout: identity in
    /// inference.
    #[arg(long, value_delimiter = ',', value_name = "P")]
    pub(super) dropout: Vec<f32>,
    /// Compute each batch in chunks of at most this many rows, accumulating
    /// gradients (one optimizer step per batch) [default: from --memory-budget].
    #[arg(long, value_name = "ROWS")]
    pub(super) micro_batch: Option<usize>,
    /// Memory for one chunk's activations and gradients (e.g. 512MiB, 2GiB); sets
    /// the micro-batch size when --micro-batch is not given.
    #[arg(long, default_value = "2GiB", value_parser = parse_size)]
    pub(super) memory_budget: usize,
    /// Split each batch into this many shards, whose gradients are summed in a
    /// fixed pairwise tree: the order data-parallel training uses, so that a
    /// run gives the same bits on any number of processes.
    #[arg(long, default_value_t = 1, value_name = "S")]
    pub(super) shards: usize,
    /// Under micro-batching, normalise each chunk with its own statistics (ghost
    /// batch norm) instead of the whole batch's (exact, the default).
    #[arg(long)]
    pub(super) ghost_batch_norm: bool,
    /// Hold out this fraction of the data (shuffled with the seed) for validation.
    #[arg(long, conflicts_with = "val")]
    pub(super) val_split: Option<f32>,
    /// Validation data file (read like --data).
    #[arg(long)]
    pub(super) val: Option<PathBuf>,
    /// Targets file for IDX or NPY validation data (beside MNIST images it is
    /// found by name).
    #[arg(long, requires = "val")]
    pub(super) val_labels: Option<PathBuf>,
    /// Standardise every feature with the training data's mean and standard
    /// deviation (stored in the model and applied by eval and predict).
    #[arg(long)]
    pub(super) standardize: bool,
    /// Seed for the initial weights, shuffling and the validation split.
    #[arg(long, default_value_t = 42)]
    pub(super) seed: u64,
    /// Threads for rayon and BLAS [default: all cores].
    #[arg(long)]
    pub(super) threads: Option<usize>,
    /// Precision of the dense layers' products: f32, or bf16 (bf16 operands,
    /// f32 sums; weights, gradients and optimizer state stay f32).
    #[arg(long, default_value = "f32")]
    pub(super) precision: feedforward::Precision,
    /// Stop when the validation loss (training loss without validation data) has
    /// not improved for this many epochs; the model written is then the best
    /// epoch's.
    #[arg(long, value_name = "PATIENCE")]
    pub(super) early_stopping: Option<usize>,
    /// Save a checkpoint (model and optimizer state, and with --early-stopping the
    /// best epoch's weights) every N epochs.
    #[arg(long, value_name = "N")]
    pub(super) checkpoint_every: Option<usize>,
    /// Checkpoint file [default: beside --out, `NAME.ckpt.safetensors`].
    #[arg(long)]
    pub(super) checkpoint: Option<PathBuf>,
    /// Continue from a checkpoint: its network, optimizer state, batch size, seed,
    /// validation split and standardisation replace the options above.
    #[arg(long, value_name = "FILE")]
    pub(super) resume: Option<PathBuf>,
    /// Start from the weights of this model file (warm start, fine-tuning): its
    /// layers must be those the options and the data describe; the optimizer
    /// starts afresh, and its standardisation, if it has one, is kept.
    #[arg(long, value_name = "MODEL", conflicts_with = "resume")]
    pub(super) init: Option<PathBuf>,
    /// Read the training rows from the data file a batch at a time instead of
    /// loading it whole: NPY features (float32, with --labels; shuffled every
    /// epoch, as in memory; --val-split reads only the held-out rows into
    /// memory) or CSV (read in file order: shuffle it once beforehand; validation
    /// data from --val).
    #[arg(long, conflicts_with = "allow_nan")]
    pub(super) stream: bool,
    /// Print nothing but errors.
    #[arg(long, short)]
    pub(super) quiet: bool,
    /// One JSON object per epoch on standard output, and no progress bar.
    #[arg(long)]
    pub(super) json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(super) enum HiddenActivation {
    Relu,
    Tanh,
    Sigmoid,
    Identity,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(super) enum LossArg {
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
    pub(super) fn loss(self) -> Loss {
        match self {
            LossArg::Softmax => Loss::CategoricalCrossEntropy,
            LossArg::Sigmoid => Loss::MultiLabelCrossEntropy,
            LossArg::Binary => Loss::BinaryCrossEntropy,
            LossArg::Mse => Loss::MeanSquaredError,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(super) enum EveryArg {
    Epoch,
    Step,
}

impl EveryArg {
    pub(super) fn every(self) -> feedforward::Every {
        match self {
            EveryArg::Epoch => feedforward::Every::Epoch,
            EveryArg::Step => feedforward::Every::Step,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(super) enum OptimizerArg {
    Sgd,
    Adam,
    Adamw,
    Rmsprop,
    Adagrad,
    Lars,
    Lamb,
}

/// The network the options describe for `data`; `classes` is the number of
/// classes in the whole file (softmax's width unless `--layers` gives it).
pub(super) fn build_network(
    args: &TrainArgs,
    data: &TrainingData,
    classes: Option<usize>,
) -> Result<Network> {
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
    let hidden = hidden_widths(args, data, outputs)?;
    let mut builder = Network::builder(features)
        .optimizer(optimizer(args))
        .loss(loss)
        .seed(args.seed)
        .penalty(feedforward::Penalty {
            l1: args.l1,
            l2: args.l2,
        });
    let activation = args.activation.activation();
    let rates = dropout_rates(&args.dropout, hidden.len())?;
    for (&units, rate) in hidden.iter().zip(rates) {
        builder = if args.batch_norm {
            builder
                .dense(units, Activation::Identity)
                .batch_norm(activation)
        } else {
            builder.dense(units, activation)
        };
        if rate != 0.0 {
            builder = builder.dropout(rate);
        }
    }
    builder = builder.dense(outputs, loss.output_activation());
    if let Some(c) = args.clip_grad_norm {
        builder = builder.clip_grad_norm(c);
    }
    Ok(builder.build()?)
}

/// The dropout rate after each of `hidden` hidden layers: none, one for all,
/// or one each.
fn dropout_rates(rates: &[f32], hidden: usize) -> Result<Vec<f32>> {
    match rates {
        [] => Ok(vec![0.0; hidden]),
        [rate] => Ok(vec![*rate; hidden]),
        list if list.len() == hidden => Ok(list.to_vec()),
        list => Err(format!(
            "--dropout takes one rate or one per hidden layer: {} given for {hidden} hidden layer(s)",
            list.len()
        )
        .into()),
    }
}

/// The hidden layers' widths: from `--layers` (checked against the data's
/// features and the loss's `outputs`), else `--hidden`.
fn hidden_widths(args: &TrainArgs, data: &TrainingData, outputs: usize) -> Result<Vec<usize>> {
    let (features, loss) = (data.features(), args.loss.loss());
    Ok(match &args.layers {
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
    })
}

impl HiddenActivation {
    fn activation(self) -> Activation {
        match self {
            HiddenActivation::Relu => Activation::Relu,
            HiddenActivation::Tanh => Activation::Tanh,
            HiddenActivation::Sigmoid => Activation::Sigmoid,
            HiddenActivation::Identity => Activation::Identity,
        }
    }
}

/// The optimizer the options describe; with `--scale-lr`, its rate × batch / 256.
fn optimizer(args: &TrainArgs) -> Optimizer {
    let mut optimizer = unscaled_optimizer(args);
    if args.scale_lr {
        let lr = optimizer.learning_rate() * args.batch_size as f32 / 256.0;
        optimizer.set_learning_rate(lr);
    }
    optimizer
}

fn unscaled_optimizer(args: &TrainArgs) -> Optimizer {
    let weight_decay = args.weight_decay;
    match args.optimizer {
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
        OptimizerArg::Rmsprop => Optimizer::RmsProp(RmsPropConfig {
            lr: args.lr.unwrap_or(0.01),
            momentum: args.momentum,
            centered: args.centered,
            weight_decay,
            ..RmsPropConfig::default()
        }),
        OptimizerArg::Adagrad => Optimizer::Adagrad(AdagradConfig {
            lr: args.lr.unwrap_or(0.01),
            weight_decay,
            ..AdagradConfig::default()
        }),
        OptimizerArg::Lars => Optimizer::Lars(LarsConfig {
            lr: args.lr.unwrap_or(0.1),
            momentum: if args.momentum > 0.0 {
                args.momentum
            } else {
                0.9
            },
            weight_decay,
            ..LarsConfig::default()
        }),
        OptimizerArg::Lamb => Optimizer::Lamb(LambConfig {
            lr: args.lr.unwrap_or(1e-3),
            weight_decay,
            ..LambConfig::default()
        }),
    }
}

/// A byte count such as `2GiB`, `512MiB`, `1.5G` or `1000000`.
pub(super) fn parse_size(text: &str) -> std::result::Result<usize, String> {
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
        let err = |text| parse_size(text).unwrap_err();
        assert!(err("lots").contains("not a size"), "{}", err("lots"));
        assert!(
            err("3 parsecs").contains("unknown size unit"),
            "{}",
            err("3 parsecs")
        );
        assert!(err("0").contains("must be positive"), "{}", err("0"));
    }
}
