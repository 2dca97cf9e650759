//! Checkpoints: the model with its optimizer state and the [`TrainingState`],
//! written atomically every few epochs, so that a run resumed from one ends with
//! the same weights, bit for bit, as a run that was never interrupted.
//!
//! A checkpoint is a model file ([`crate::io::model`]) with the optimizer's
//! moments, the training state as JSON under `feedforward.trainer`, and, when
//! early stopping's best epoch is not the checkpoint's own, that epoch's
//! weights as `training.best.parameters`, `training.best.running_mean.{j}` and
//! `training.best.running_var.{j}` (batch-norm layer `j`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::io::model::{self, Model, SaveOptions};
use crate::layers::Layer;
use crate::network::{Network, Snapshot};
use crate::optim::OptimizerState;
use crate::standardize::Standardizer;

/// Metadata key of the [`TrainingState`] in a checkpoint.
pub const STATE_KEY: &str = "feedforward.trainer";

/// Where the command line of earlier versions kept the same fields.
const LEGACY_STATE_KEY: &str = "feedforward.training";

const BEST_PARAMETERS: &str = "training.best.parameters";

/// Where a training run stands between epochs: what a checkpoint stores
/// beside the model so that the run can be resumed exactly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingState {
    /// Epochs finished.
    pub epochs_done: usize,
    /// The lowest monitored loss so far (validation loss, else training loss).
    pub best_loss: Option<f32>,
    /// The epoch that had it.
    #[serde(default)]
    pub best_epoch: Option<usize>,
    /// Epochs since then.
    pub epochs_since_best: usize,
    /// With a learning-rate schedule: the base rate it scales (the optimizer's
    /// rate when training first started; the model holds the last scheduled one).
    #[serde(default)]
    pub base_lr: Option<f32>,
    /// With [`crate::Schedule::Plateau`]: where it stands.
    #[serde(default)]
    pub plateau: crate::optim::PlateauState,
    /// With early stopping: the best epoch's weights, when they are not the
    /// network's own (not serialised as JSON; a checkpoint stores them as tensors).
    #[serde(skip)]
    pub best_weights: Option<Snapshot>,
}

impl TrainingState {
    /// Records epoch `epoch`'s monitored `loss`; returns whether it improved on
    /// the best by more than `min_delta`.
    pub(crate) fn record(&mut self, epoch: usize, loss: f32, min_delta: f32) -> bool {
        self.epochs_done = epoch;
        if self.best_loss.is_none_or(|b| loss < b - min_delta) {
            self.best_loss = Some(loss);
            self.best_epoch = Some(epoch);
            self.epochs_since_best = 0;
            true
        } else {
            self.epochs_since_best += 1;
            false
        }
    }
}

/// When and where the [`super::Trainer`] writes checkpoints, and what else
/// goes into them.
#[derive(Debug, Clone, Default)]
pub struct Checkpoints<'a> {
    /// The checkpoint file, replaced atomically at each write.
    pub path: PathBuf,
    /// Write after every `every` epochs (epoch numbers divisible by it).
    pub every: usize,
    /// Input standardisation to store with the model.
    pub standardizer: Option<&'a Standardizer>,
    /// The caller's own metadata entries.
    pub metadata: BTreeMap<String, String>,
}

impl Checkpoints<'_> {
    /// A checkpoint at `path` every `every` epochs.
    pub fn every(every: usize, path: impl Into<PathBuf>) -> Self {
        Checkpoints {
            path: path.into(),
            every,
            ..Checkpoints::default()
        }
    }

    /// Writes `net`, `state` and the `best` weights to the checkpoint file.
    pub(crate) fn write(
        &self,
        net: &Network,
        state: &TrainingState,
        best: Option<&Snapshot>,
    ) -> Result<()> {
        let mut metadata = self.metadata.clone();
        let json = serde_json::to_string(state).map_err(|e| Error::Config(e.to_string()))?;
        metadata.insert(STATE_KEY.into(), json);
        let mut extra_tensors = Vec::new();
        if let Some(best) = best {
            extra_tensors.push((BEST_PARAMETERS.to_string(), best.parameters()));
            for (j, (mean, var)) in best.running_statistics().iter().enumerate() {
                let (mean_name, var_name) = best_running_names(j);
                extra_tensors.push((mean_name, &mean[..]));
                extra_tensors.push((var_name, &var[..]));
            }
        }
        let options = SaveOptions {
            standardizer: self.standardizer,
            optimizer_state: true,
            metadata,
            extra_tensors,
        };
        model::save(&self.path, net, &options)
    }
}

/// A checkpoint read back: the model (network, optimizer state, standardiser,
/// the writer's own metadata) and the training state to resume with
/// [`super::Trainer::resume`].
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The model; its `metadata` and `extra_tensors` hold only the writer's own.
    pub model: Model,
    /// Where training stood.
    pub state: TrainingState,
}

impl Checkpoint {
    /// Reads a checkpoint written by the [`super::Trainer`] (or by the command
    /// line of earlier versions).
    ///
    /// # Errors
    /// As [`model::load`]; [`Error::Parse`] for a model file that is not a
    /// checkpoint (no training state, or no optimizer state after training).
    pub fn load(path: &Path) -> Result<Checkpoint> {
        let mut model = model::load(path)?;
        let json = match model.metadata.remove(STATE_KEY) {
            Some(json) => json,
            None => model
                .metadata
                .get(LEGACY_STATE_KEY)
                .cloned()
                .ok_or_else(|| {
                    Error::parse(
                        path,
                        "not a feedforward training checkpoint (no training state)",
                    )
                })?,
        };
        let mut state: TrainingState = serde_json::from_str(&json)
            .map_err(|e| Error::parse(path, format!("{STATE_KEY}: {e}")))?;
        if !model.has_optimizer_state && model.network.optimizer_state().step > 0 {
            return Err(Error::parse(
                path,
                "a model without optimizer state cannot be resumed exactly; use a checkpoint",
            ));
        }
        state.best_weights = take_best_weights(&mut model);
        Ok(Checkpoint { model, state })
    }
}

/// Tensor names of the best epoch's running mean and variance of batch-norm layer `j`.
fn best_running_names(j: usize) -> (String, String) {
    (
        format!("training.best.running_mean.{j}"),
        format!("training.best.running_var.{j}"),
    )
}

/// The best epoch's weights stored beside a checkpoint's own, if it holds them.
fn take_best_weights(model: &mut Model) -> Option<Snapshot> {
    let norms = model
        .network
        .layers()
        .iter()
        .filter(|l| matches!(l, Layer::BatchNorm(_)))
        .count();
    let tensors = &mut model.extra_tensors;
    let parameters = tensors.remove(BEST_PARAMETERS)?;
    let running = (0..norms)
        .map(|j| {
            let (mean_name, var_name) = best_running_names(j);
            Some((tensors.remove(&mean_name)?, tensors.remove(&var_name)?))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Snapshot::from_parts(
        parameters,
        running,
        OptimizerState::default(),
    ))
}
