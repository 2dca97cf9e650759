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
//! Files are written atomically: to a temporary file in the same directory,
//! flushed to disk, then renamed over the target, so a reader (or a crash)
//! never sees a half-written model, and a failed write leaves an old file intact.
//!
//! [safetensors]: https://github.com/huggingface/safetensors

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::layers::Layer;
use crate::network::Network;
use crate::optim::{
    AdagradConfig, AdamConfig, LambConfig, LarsConfig, Optimizer, OptimizerState, RmsPropConfig,
    SgdConfig,
};
use crate::standardize::Standardizer;
use crate::{Activation, Loss};

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
}

#[derive(Serialize, Deserialize)]
struct OptimizerDesc {
    kind: String,
    lr: f32,
    #[serde(default)]
    momentum: f32,
    #[serde(default)]
    nesterov: bool,
    #[serde(default)]
    beta1: f32,
    #[serde(default)]
    beta2: f32,
    #[serde(default)]
    eps: f32,
    #[serde(default)]
    weight_decay: f32,
    #[serde(default)]
    step: u64,
    /// RMSprop's smoothing constant (written only for RMSprop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alpha: Option<f32>,
    /// RMSprop's centred form (written only for RMSprop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    centered: Option<bool>,
    /// Adagrad's learning-rate decay (written only for Adagrad).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lr_decay: Option<f32>,
    /// Adagrad's initial accumulator value (written only for Adagrad).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    initial_accumulator: Option<f32>,
    /// LARS's trust coefficient (written only for LARS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trust: Option<f32>,
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

/// The tensors of a model file, as little-endian `f32` bytes.
#[derive(Default)]
struct Tensors(Vec<(String, Vec<usize>, Vec<u8>)>);

impl Tensors {
    fn push(&mut self, name: String, shape: Vec<usize>, values: &[f32]) {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.0.push((name, shape, bytes));
    }

    /// Every layer's parameters (and batch-norm statistics); returns the layers'
    /// descriptions for the architecture.
    fn push_layers(&mut self, network: &Network) -> Vec<LayerDesc> {
        let params = network.parameters();
        let mut layers = Vec::new();
        for (i, layer) in network.layers().iter().enumerate() {
            match layer {
                Layer::Dense(d) => {
                    let (w, b) = d.split(params);
                    self.push(format!("layers.{i}.weight"), vec![d.inputs, d.outputs], w);
                    self.push(format!("layers.{i}.bias"), vec![d.outputs], b);
                    layers.push(LayerDesc::Dense {
                        units: d.outputs,
                        activation: d.activation.name().into(),
                    });
                }
                Layer::BatchNorm(b) => {
                    let w = b.width;
                    let (gamma, beta) = params[b.offset..b.offset + 2 * w].split_at(w);
                    self.push(format!("layers.{i}.gamma"), vec![w], gamma);
                    self.push(format!("layers.{i}.beta"), vec![w], beta);
                    self.push(format!("layers.{i}.running_mean"), vec![w], &b.running_mean);
                    self.push(format!("layers.{i}.running_var"), vec![w], &b.running_var);
                    layers.push(LayerDesc::BatchNorm {
                        activation: b.activation.name().into(),
                        momentum: b.momentum,
                        eps: b.eps,
                    });
                }
            }
        }
        layers
    }

    /// The safetensors file of these tensors and `metadata`.
    fn serialize(&self, metadata: HashMap<String, String>) -> std::result::Result<Vec<u8>, String> {
        let views = self
            .0
            .iter()
            .map(|(name, shape, bytes)| {
                TensorView::new(Dtype::F32, shape.clone(), bytes).map(|v| (name.as_str(), v))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        safetensors::serialize(views, Some(metadata)).map_err(|e| e.to_string())
    }
}

/// The same safetensors file with the keys of its JSON header in sorted order.
///
/// `safetensors::serialize` takes the metadata as a `HashMap` and writes it in
/// the map's iteration order, which changes from run to run; sorting makes the
/// same model the same bytes. Tensor offsets are relative to the end of the
/// header, so only the header's length field changes (padded to 8 bytes with
/// spaces, as safetensors pads it).
fn sorted_header(bytes: Vec<u8>) -> Vec<u8> {
    let parsed = bytes
        .get(..8)
        .and_then(|n| Some(u64::from_le_bytes(n.try_into().ok()?) as usize))
        .and_then(|n| Some((n, bytes.get(8..8 + n)?)))
        .and_then(|(n, header)| {
            // serde_json's maps are `BTreeMap`s: parsing sorts every object's keys.
            let value: serde_json::Value = serde_json::from_slice(header).ok()?;
            Some((n, serde_json::to_vec(&value).ok()?))
        });
    let Some((n, mut header)) = parsed else {
        return bytes; // not reached: safetensors wrote the header just now
    };
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + header.len() + bytes.len() - 8 - n);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&bytes[8 + n..]);
    out
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
///
/// # Errors
/// [`Error::Io`]; the temporary file is removed and `path` is untouched.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let io = |e: std::io::Error| Error::io(path, &e);
    let mut tmp = tempfile::Builder::new()
        .prefix(".feedforward-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// Reads a model file written by [`save`].
///
/// # Errors
/// [`Error::Io`] when it cannot be read; [`Error::Parse`] for a truncated or
/// foreign file, or one whose tensors disagree with its architecture.
pub fn load(path: &Path) -> Result<Model> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, &e))?;
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

/// A model file being read: its tensors, and errors that name it.
struct Reader<'a> {
    path: &'a Path,
    file: SafeTensors<'a>,
}

impl Reader<'_> {
    fn bad(&self, message: String) -> Error {
        Error::parse(self.path, message)
    }

    /// The writer's metadata entries, and the architecture.
    fn header(&self, bytes: &[u8]) -> Result<(BTreeMap<String, String>, Architecture)> {
        let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| self.bad(e.to_string()))?;
        let mut metadata: BTreeMap<String, String> = meta
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        if metadata.remove(FORMAT_KEY).as_deref() != Some(FORMAT) {
            return Err(self.bad(
                "a safetensors file, but not a feedforward model (no feedforward.format entry)"
                    .into(),
            ));
        }
        let arch = metadata
            .remove(NETWORK_KEY)
            .ok_or_else(|| self.bad("the model has no feedforward.network entry".into()))
            .and_then(|s| {
                serde_json::from_str(&s).map_err(|e| self.bad(format!("feedforward.network: {e}")))
            })?;
        Ok((metadata, arch))
    }

    /// The `f32` tensor `name`, which must have `shape`.
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let t = self
            .file
            .tensor(name)
            .map_err(|_| self.bad(format!("tensor {name} is missing")))?;
        if t.dtype() != Dtype::F32 || t.shape() != shape {
            return Err(self.bad(format!(
                "tensor {name} is {:?} {:?}, expected F32 {shape:?}",
                t.dtype(),
                t.shape()
            )));
        }
        Ok(t.data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    /// The tensor `name` of `len` values, if the file has it.
    fn optional(&self, name: &str, len: usize) -> Result<Option<Vec<f32>>> {
        self.file
            .tensor(name)
            .is_ok()
            .then(|| self.tensor(name, &[len]))
            .transpose()
    }

    /// The network the architecture describes, with fresh weights.
    fn network(&self, arch: &Architecture) -> Result<Network> {
        let optimizer = parse_optimizer(&arch.optimizer).map_err(|m| self.bad(m))?;
        let loss = Loss::from_name(&arch.loss)
            .ok_or_else(|| self.bad(format!("unknown loss {:?}", arch.loss)))?;
        let activation = |name: &str| {
            Activation::from_name(name)
                .ok_or_else(|| self.bad(format!("unknown activation {name:?}")))
        };
        let mut builder = Network::builder(arch.inputs)
            .loss(loss)
            .optimizer(optimizer)
            .seed(arch.seed)
            .penalty(crate::Penalty {
                l1: arch.l1,
                l2: arch.l2,
            });
        if let Some(c) = arch.clip_grad_norm {
            builder = builder.clip_grad_norm(c);
        }
        for layer in &arch.layers {
            builder = match layer {
                LayerDesc::Dense {
                    units,
                    activation: a,
                } => builder.dense(*units, activation(a)?),
                LayerDesc::BatchNorm { activation: a, .. } => builder.batch_norm(activation(a)?),
            };
        }
        builder
            .build()
            .map_err(|e| self.bad(format!("architecture: {e}")))
    }

    /// Every layer's parameters and batch-norm statistics into `network`.
    fn weights(&self, network: &mut Network, arch: &Architecture) -> Result<()> {
        let mut params = vec![0.0f32; network.parameter_count()];
        let layers = network.layers_mut().iter_mut().zip(&arch.layers);
        for (i, (layer, desc)) in layers.enumerate() {
            match layer {
                Layer::Dense(d) => {
                    let w = self.tensor(&format!("layers.{i}.weight"), &[d.inputs, d.outputs])?;
                    let b = self.tensor(&format!("layers.{i}.bias"), &[d.outputs])?;
                    let n = w.len();
                    params[d.offset..d.offset + n].copy_from_slice(&w);
                    params[d.offset + n..d.offset + n + b.len()].copy_from_slice(&b);
                }
                Layer::BatchNorm(b) => {
                    let w = b.width;
                    let gamma = self.tensor(&format!("layers.{i}.gamma"), &[w])?;
                    let beta = self.tensor(&format!("layers.{i}.beta"), &[w])?;
                    params[b.offset..b.offset + w].copy_from_slice(&gamma);
                    params[b.offset + w..b.offset + 2 * w].copy_from_slice(&beta);
                    b.running_mean = self.tensor(&format!("layers.{i}.running_mean"), &[w])?;
                    b.running_var = self.tensor(&format!("layers.{i}.running_var"), &[w])?;
                    if let LayerDesc::BatchNorm { momentum, eps, .. } = desc {
                        b.momentum = *momentum;
                        b.eps = *eps;
                    }
                }
            }
        }
        if let Some(i) = params.iter().position(|v| !v.is_finite()) {
            return Err(self.bad(format!("parameter {i} is not finite")));
        }
        network.parameters_mut().copy_from_slice(&params);
        Ok(())
    }

    /// The optimizer's step and moments into `network`; whether the file held moments.
    fn optimizer_state(&self, network: &mut Network, step: u64) -> Result<bool> {
        let n = network.parameter_count();
        let first = self.optional("optimizer.first", n)?;
        let second = self.optional("optimizer.second", n)?;
        let third = self.optional("optimizer.third", n)?;
        let has_moments = first.is_some() || second.is_some() || third.is_some();
        network
            .set_optimizer_state(OptimizerState {
                step,
                first: first.unwrap_or_default(),
                second: second.unwrap_or_default(),
                third: third.unwrap_or_default(),
                ..OptimizerState::default()
            })
            .map_err(|e| self.bad(e.to_string()))?;
        Ok(has_moments)
    }

    /// The input standardisation of `width` features, if the file has one.
    fn standardizer(&self, width: usize) -> Result<Option<Standardizer>> {
        let Some(mean) = self.optional("standardize.mean", width)? else {
            return Ok(None);
        };
        let std = self.tensor("standardize.std", &[width])?;
        if std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(self.bad("standardize.std holds a value that is not positive".into()));
        }
        Ok(Some(Standardizer { mean, std }))
    }
}

fn describe_optimizer(optimizer: &Optimizer, step: u64) -> OptimizerDesc {
    let mut d = OptimizerDesc {
        kind: optimizer.name().into(),
        lr: optimizer.learning_rate(),
        momentum: 0.0,
        nesterov: false,
        beta1: 0.0,
        beta2: 0.0,
        eps: 0.0,
        weight_decay: 0.0,
        step,
        alpha: None,
        centered: None,
        lr_decay: None,
        initial_accumulator: None,
        trust: None,
    };
    match optimizer {
        Optimizer::Sgd(c) => {
            d.momentum = c.momentum;
            d.nesterov = c.nesterov;
            d.weight_decay = c.weight_decay;
        }
        Optimizer::Adam(c) | Optimizer::AdamW(c) => {
            d.beta1 = c.beta1;
            d.beta2 = c.beta2;
            d.eps = c.eps;
            d.weight_decay = c.weight_decay;
        }
        Optimizer::RmsProp(c) => {
            d.momentum = c.momentum;
            d.eps = c.eps;
            d.weight_decay = c.weight_decay;
            d.alpha = Some(c.alpha);
            d.centered = Some(c.centered);
        }
        Optimizer::Adagrad(c) => {
            d.eps = c.eps;
            d.weight_decay = c.weight_decay;
            d.lr_decay = Some(c.lr_decay);
            d.initial_accumulator = Some(c.initial_accumulator);
        }
        Optimizer::Lars(c) => {
            d.momentum = c.momentum;
            d.weight_decay = c.weight_decay;
            d.trust = Some(c.trust);
        }
        Optimizer::Lamb(c) => {
            d.beta1 = c.beta1;
            d.beta2 = c.beta2;
            d.eps = c.eps;
            d.weight_decay = c.weight_decay;
        }
    }
    d
}

fn parse_optimizer(d: &OptimizerDesc) -> std::result::Result<Optimizer, String> {
    let adam = AdamConfig {
        lr: d.lr,
        beta1: d.beta1,
        beta2: d.beta2,
        eps: d.eps,
        weight_decay: d.weight_decay,
    };
    Ok(match d.kind.as_str() {
        "sgd" => Optimizer::Sgd(SgdConfig {
            lr: d.lr,
            momentum: d.momentum,
            nesterov: d.nesterov,
            weight_decay: d.weight_decay,
        }),
        "adam" => Optimizer::Adam(adam),
        "adamw" => Optimizer::AdamW(adam),
        "rmsprop" => Optimizer::RmsProp(RmsPropConfig {
            lr: d.lr,
            alpha: d.alpha.unwrap_or(0.99),
            eps: d.eps,
            momentum: d.momentum,
            centered: d.centered.unwrap_or(false),
            weight_decay: d.weight_decay,
        }),
        "lars" => Optimizer::Lars(LarsConfig {
            lr: d.lr,
            momentum: d.momentum,
            weight_decay: d.weight_decay,
            trust: d.trust.unwrap_or(0.001),
        }),
        "lamb" => Optimizer::Lamb(LambConfig {
            lr: d.lr,
            beta1: d.beta1,
            beta2: d.beta2,
            eps: d.eps,
            weight_decay: d.weight_decay,
        }),
        "adagrad" => Optimizer::Adagrad(AdagradConfig {
            lr: d.lr,
            lr_decay: d.lr_decay.unwrap_or(0.0),
            eps: d.eps,
            initial_accumulator: d.initial_accumulator.unwrap_or(0.0),
            weight_decay: d.weight_decay,
        }),
        other => return Err(format!("unknown optimizer {other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Activation::{Relu, Softmax};

    /// Many metadata entries, so that a `HashMap`'s order would differ between
    /// two maps (each has its own random hasher): the files must not.
    #[test]
    fn the_same_model_is_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut net = Network::builder(3)
            .dense(5, Relu)
            .dense(2, Softmax)
            .build()
            .unwrap();
        let x = ndarray::array![[0.5f32, -1.0, 2.0], [1.0, 0.25, -0.5]];
        net.train_step(x.view(), [1usize, 0].as_slice().into())
            .unwrap();
        let metadata: BTreeMap<String, String> = (0..40)
            .map(|i| (format!("user.key{i}"), format!("value {i}")))
            .collect();
        let options = SaveOptions {
            metadata,
            optimizer_state: true,
            ..SaveOptions::default()
        };
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        save(&a, &net, &options).unwrap();
        save(&b, &net, &options).unwrap();
        let (bytes_a, bytes_b) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert_eq!(bytes_a, bytes_b);
        let n = u64::from_le_bytes(bytes_a[..8].try_into().unwrap()) as usize;
        assert_eq!(n % 8, 0, "header length {n} is padded to 8 bytes");
        let back = load(&a).unwrap();
        assert_eq!(back.network.parameters(), net.parameters());
        assert_eq!(back.metadata["user.key17"], "value 17");
        let (read, written) = (back.network.optimizer_state(), net.optimizer_state());
        assert_eq!(
            (read.step, &read.first, &read.second),
            (written.step, &written.first, &written.second)
        );
    }

    /// RMSprop (all three state buffers) and Adagrad (its settings in the
    /// metadata) come back from a checkpoint as they were written.
    #[test]
    fn new_optimizers_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let x = ndarray::array![[0.5f32, -1.0, 2.0], [1.0, 0.25, -0.5]];
        for optimizer in [
            Optimizer::RmsProp(RmsPropConfig {
                lr: 0.01,
                momentum: 0.5,
                centered: true,
                alpha: 0.9,
                eps: 1e-6,
                weight_decay: 0.1,
            }),
            Optimizer::Adagrad(AdagradConfig {
                lr: 0.1,
                lr_decay: 0.01,
                eps: 1e-8,
                initial_accumulator: 0.2,
                weight_decay: 0.0,
            }),
        ] {
            let mut net = Network::builder(3)
                .dense(5, Relu)
                .dense(2, Softmax)
                .optimizer(optimizer)
                .build()
                .unwrap();
            for _ in 0..3 {
                net.train_step(x.view(), [1usize, 0].as_slice().into())
                    .unwrap();
            }
            let path = dir.path().join("ckpt");
            let options = SaveOptions {
                optimizer_state: true,
                ..SaveOptions::default()
            };
            save(&path, &net, &options).unwrap();
            let back = load(&path).unwrap();
            assert_eq!(back.network.optimizer(), net.optimizer());
            assert_eq!(back.network.snapshot(), net.snapshot());
        }
    }
}
