//! What `train` stores beside the network: its settings (in every checkpoint,
//! so that `--resume` shapes the batches as the first run did) and, in the
//! final model, the training record (the settings and where training ended).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use feedforward::io::model::{self, SaveOptions};
use feedforward::train::TrainingState;
use feedforward::{LrSchedule, Network, Standardizer};
use serde::{Deserialize, Serialize};

use super::args::TrainArgs;
use crate::Result;

/// Metadata key of the settings (checkpoints) and the training record (models).
pub const TRAINING_KEY: &str = "feedforward.training";

/// The options that shape the batches and the stopping rule: a resumed run
/// takes them from its checkpoint, not from the command line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub batch_size: usize,
    pub seed: u64,
    pub val_split: Option<f32>,
    pub early_stopping: Option<usize>,
    #[serde(default)]
    pub micro_batch: Option<usize>,
    #[serde(default)]
    pub ghost_batch_norm: bool,
    /// Shards per batch, their gradients summed in a fixed tree.
    #[serde(default = "one_shard")]
    pub shards: usize,
    /// The learning-rate schedule, its defaults resolved for this run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<LrSchedule>,
}

/// Checkpoints from before shards had one.
fn one_shard() -> usize {
    1
}

impl Settings {
    /// The settings the options give.
    pub fn of(args: &TrainArgs) -> Settings {
        Settings {
            batch_size: args.batch_size,
            seed: args.seed,
            val_split: args.val_split,
            early_stopping: args.early_stopping,
            micro_batch: args.micro_batch,
            ghost_batch_norm: args.ghost_batch_norm,
            shards: args.shards,
            schedule: None,
        }
    }

    /// The settings stored in a checkpoint's metadata (a checkpoint of an
    /// earlier version holds them in its training record).
    pub fn from_metadata(path: &Path, metadata: &BTreeMap<String, String>) -> Result<Settings> {
        metadata
            .get(TRAINING_KEY)
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or_else(|| {
                format!(
                    "{}: not a feedforward training checkpoint (no training record)",
                    path.display()
                )
                .into()
            })
    }

    /// Metadata for checkpoints: the settings as JSON.
    pub fn metadata(&self) -> Result<BTreeMap<String, String>> {
        Ok(BTreeMap::from([(
            TRAINING_KEY.to_string(),
            serde_json::to_string(self)?,
        )]))
    }
}

/// The training record in a model file: its fields in the order earlier
/// versions wrote them, so the same run writes the same bytes.
#[derive(Debug, Serialize)]
struct TrainingRecord {
    epochs_done: usize,
    batch_size: usize,
    seed: u64,
    val_split: Option<f32>,
    early_stopping: Option<usize>,
    best_loss: Option<f32>,
    epochs_since_best: usize,
    micro_batch: Option<usize>,
    ghost_batch_norm: bool,
    shards: usize,
    /// The epoch of best weights stored beside a checkpoint's own; a model holds none.
    best_epoch: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    schedule: Option<LrSchedule>,
}

/// Writes the trained model with its training record, atomically.
pub fn save_model(
    path: &Path,
    net: &Network,
    standardizer: Option<&Standardizer>,
    settings: &Settings,
    state: &TrainingState,
) -> Result<()> {
    let record = TrainingRecord {
        epochs_done: state.epochs_done,
        batch_size: settings.batch_size,
        seed: settings.seed,
        val_split: settings.val_split,
        early_stopping: settings.early_stopping,
        best_loss: state.best_loss,
        epochs_since_best: state.epochs_since_best,
        micro_batch: settings.micro_batch,
        ghost_batch_norm: settings.ghost_batch_norm,
        shards: settings.shards,
        best_epoch: None,
        schedule: settings.schedule.clone(),
    };
    let options = SaveOptions {
        standardizer,
        metadata: BTreeMap::from([(TRAINING_KEY.to_string(), serde_json::to_string(&record)?)]),
        ..SaveOptions::default()
    };
    model::save(path, net, &options)?;
    Ok(())
}

/// `model.safetensors` → `model.ckpt.safetensors`.
pub fn checkpoint_beside(out: &Path) -> PathBuf {
    let stem = out
        .file_stem()
        .map_or("model".into(), |s| s.to_string_lossy().into_owned());
    out.with_file_name(format!("{stem}.ckpt.safetensors"))
}
