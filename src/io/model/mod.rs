//! Model files: a network's weights as [safetensors], with everything needed to
//! use it again in the metadata.
//!
//! Tensors (all `f32`): `layers.{i}.weight` (`n_in × n_out`, as in `Z = A·W + b`)
//! and `layers.{i}.bias` for a dense layer; `layers.{i}.gamma`, `.beta`,
//! `.running_mean`, `.running_var` for batch normalisation; `standardize.mean` and
//! `standardize.std` when the inputs are standardised; and, in a checkpoint,
//! `optimizer.first`, `optimizer.second` and (RMSprop) `optimizer.third` (laid out like
//! [`Network::parameters`]), and any extra tensors the writer adds. Metadata: `feedforward.format` (`"1"`),
//! `feedforward.network` (JSON: inputs, layers, loss, optimizer and its step,
//! seed, clipping), plus any entries the writer adds (the CLI stores its
//! training settings under `feedforward.training`).
//!
//! Files are written atomically ([`write_atomically`]): to an unnamed file in
//! the same directory, flushed to disk, then renamed over the target, so a
//! reader (or a crash) never sees a half-written model, and a failed write
//! leaves an old file intact.
//!
//! [safetensors]: https://github.com/huggingface/safetensors

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::network::Network;
use crate::standardize::Standardizer;

mod optimizer;
mod reader;
mod tensors;
#[cfg(test)]
mod tests;

use optimizer::{OptimizerDesc, describe_optimizer};
use reader::Reader;
use tensors::{Tensors, sorted_header};

pub use super::atomic::{check_writable, write_atomically};

const FORMAT_KEY: &str = "feedforward.format";
const NETWORK_KEY: &str = "feedforward.network";
const FORMAT: &str = "1";

/// A network read from a model file, with what was stored beside it.
#[derive(Debug, Clone)]
pub struct Model {
    /// The network, its weights, batch-norm statistics and (from a checkpoint)
    /// optimizer state.
    pub network: Network,
    /// Input standardisation measured on the training data, if any.
    pub standardizer: Option<Standardizer>,
    /// Whether the file held optimizer state (a checkpoint).
    pub has_optimizer_state: bool,
    /// The writer's own metadata entries (those not used by this module).
    pub metadata: BTreeMap<String, String>,
    /// The writer's own tensors ([`SaveOptions::extra_tensors`]), flattened.
    pub extra_tensors: BTreeMap<String, Vec<f32>>,
}

/// What [`save`] writes besides the network's weights.
#[derive(Debug, Clone, Default)]
pub struct SaveOptions<'a> {
    /// Input standardisation to store.
    pub standardizer: Option<&'a Standardizer>,
    /// Store the optimizer's state too (a checkpoint to resume from).
    pub optimizer_state: bool,
    /// Extra metadata entries (keys must not start with `feedforward.format` or
    /// `feedforward.network`).
    pub metadata: BTreeMap<String, String>,
    /// Extra one-dimensional `f32` tensors, such as a training tool's own state
    /// (names must not start with `layers.`, `standardize.` or `optimizer.`).
    pub extra_tensors: Vec<(String, &'a [f32])>,
}

/// Name prefixes of the tensors this module writes itself.
const OWN_PREFIXES: [&str; 3] = ["layers.", "standardize.", "optimizer."];

#[derive(Serialize, Deserialize)]
struct Architecture {
    inputs: usize,
    layers: Vec<LayerDesc>,
    loss: String,
    optimizer: OptimizerDesc,
    clip_grad_norm: Option<f32>,
    seed: u64,
    /// L1 penalty on the weights (written only when not 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    l1: f32,
    /// L2 penalty on the weights (written only when not 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    l2: f32,
}

fn is_zero(v: &f32) -> bool {
    *v == 0.0
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum LayerDesc {
    Dense {
        units: usize,
        activation: String,
    },
    BatchNorm {
        activation: String,
        momentum: f32,
        eps: f32,
    },
    Dropout {
        rate: f32,
    },
}

/// Writes `network` to `path` atomically (see the module docs for the layout).
///
/// ```
/// use feedforward::{Activation::*, Network, io::model};
/// let net = Network::builder(4).dense(8, Relu).dense(3, Softmax).build()?;
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("net.safetensors");
/// let notes = [1.5f32, -2.0];
/// let options = model::SaveOptions {
///     extra_tensors: vec![("my_tool.notes".into(), &notes[..])],
///     ..Default::default()
/// };
/// model::save(&path, &net, &options)?;
/// let back = model::load(&path)?;
/// assert_eq!(back.network.parameters(), net.parameters());
/// assert_eq!(back.extra_tensors["my_tool.notes"], notes);
///
/// // The model's own names are reserved.
/// let clash = model::SaveOptions {
///     extra_tensors: vec![("layers.0.weight".into(), &notes[..])],
///     ..Default::default()
/// };
/// let err = model::save(&path, &net, &clash).unwrap_err();
/// assert!(matches!(&err, feedforward::Error::Config(m) if m.contains("reserved")), "{err}");
/// # Ok::<(), feedforward::Error>(())
/// ```
///
/// # Errors
/// [`Error::Io`] when the file cannot be written (an existing file is then left
/// as it was); [`Error::Config`] for an extra tensor with a reserved name.
pub fn save(path: &Path, network: &Network, options: &SaveOptions<'_>) -> Result<()> {
    let mut tensors = Tensors::default();
    let layers = tensors.push_layers(network);
    if let Some(s) = options.standardizer {
        tensors.push("standardize.mean".into(), vec![s.width()], &s.mean);
        tensors.push("standardize.std".into(), vec![s.width()], &s.std);
    }
    let state = network.optimizer_state();
    if options.optimizer_state {
        for (name, v) in [
            ("optimizer.first", &state.first),
            ("optimizer.second", &state.second),
            ("optimizer.third", &state.third),
        ] {
            if !v.is_empty() {
                tensors.push(name.into(), vec![v.len()], v);
            }
        }
    }
    for (name, values) in &options.extra_tensors {
        if OWN_PREFIXES.iter().any(|p| name.starts_with(p)) {
            return Err(Error::Config(format!(
                "extra tensor {name:?}: the name is reserved for the model's own tensors"
            )));
        }
        tensors.push(name.clone(), vec![values.len()], values);
    }
    let arch = Architecture {
        inputs: network.inputs(),
        layers,
        loss: network.loss().name().into(),
        optimizer: describe_optimizer(network.optimizer(), state.step),
        clip_grad_norm: network.clip_grad_norm(),
        seed: network.seed(),
        l1: network.penalty_weights().l1,
        l2: network.penalty_weights().l2,
    };
    let mut metadata: HashMap<String, String> = options.metadata.clone().into_iter().collect();
    metadata.insert(FORMAT_KEY.into(), FORMAT.into());
    metadata.insert(
        NETWORK_KEY.into(),
        serde_json::to_string(&arch).expect("plain data serialises"),
    );
    let bytes = tensors.serialize(metadata).map_err(|message| Error::Io {
        path: path.display().to_string(),
        message,
    })?;
    write_atomically(path, &sorted_header(bytes))
}

/// The safetensors header length (the file's first 8 bytes, little-endian)
/// against the bytes that follow it, so that a hostile length is refused by
/// name rather than as the safetensors crate's "header too large".
fn check_header_length(path: &Path, bytes: &[u8]) -> Result<()> {
    let Some(field) = bytes.get(..8) else {
        return Err(Error::parse(
            path,
            format!(
                "not a feedforward model: {} bytes, shorter than the 8-byte header length",
                bytes.len()
            ),
        ));
    };
    let declared = u64::from_le_bytes(field.try_into().expect("8 bytes"));
    let held = bytes.len() as u64 - 8;
    if declared > held {
        return Err(Error::parse(
            path,
            format!(
                "not a feedforward model: the safetensors header length field says {declared} bytes, but the file holds {held} after it; truncated or foreign file?"
            ),
        ));
    }
    Ok(())
}

/// Reads a model file written by [`save`].
///
/// # Errors
/// [`Error::Io`] when it cannot be read; [`Error::Parse`] for a truncated or
/// foreign file, or one whose tensors disagree with its architecture.
pub fn load(path: &Path) -> Result<Model> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, &e))?;
    check_header_length(path, &bytes)?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| {
        Error::parse(
            path,
            format!("not a feedforward model (safetensors: {e}); truncated or foreign file?"),
        )
    })?;
    let reader = Reader { path, file };
    let (metadata, arch) = reader.header(&bytes)?;
    let mut network = reader.network(&arch)?;
    reader.weights(&mut network, &arch)?;
    let has_optimizer_state = reader.optimizer_state(&mut network, arch.optimizer.step)?;
    let standardizer = reader.standardizer(arch.inputs)?;
    let mut extra_tensors = BTreeMap::new();
    for name in reader.file.names() {
        if !OWN_PREFIXES.iter().any(|p| name.starts_with(p)) {
            let len = reader
                .file
                .tensor(name)
                .map_or(0, |t| t.shape().iter().product());
            extra_tensors.insert(name.to_string(), reader.tensor(name, &[len])?);
        }
    }
    Ok(Model {
        network,
        standardizer,
        has_optimizer_state,
        metadata,
        extra_tensors,
    })
}
