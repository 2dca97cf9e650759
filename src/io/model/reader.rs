//! Reading a model file back: the header, the network it describes, its
//! weights, optimizer state and standardisation, with errors that name the file.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use super::optimizer::parse_optimizer;
use super::{Architecture, FORMAT, FORMAT_KEY, LayerDesc, NETWORK_KEY};
use crate::error::{Error, Result};
use crate::layers::Layer;
use crate::network::Network;
use crate::optim::OptimizerState;
use crate::standardize::Standardizer;
use crate::{Activation, Loss};

/// A model file being read: its tensors, and errors that name it.
pub(super) struct Reader<'a> {
    pub(super) path: &'a Path,
    pub(super) file: SafeTensors<'a>,
}

impl Reader<'_> {
    fn bad(&self, message: String) -> Error {
        Error::parse(self.path, message)
    }

    /// The writer's metadata entries, and the architecture.
    pub(super) fn header(&self, bytes: &[u8]) -> Result<(BTreeMap<String, String>, Architecture)> {
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
    pub(super) fn tensor(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
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
    pub(super) fn optional(&self, name: &str, len: usize) -> Result<Option<Vec<f32>>> {
        self.file
            .tensor(name)
            .is_ok()
            .then(|| self.tensor(name, &[len]))
            .transpose()
    }

    /// The network the architecture describes, with fresh weights.
    pub(super) fn network(&self, arch: &Architecture) -> Result<Network> {
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
                LayerDesc::Dropout { rate } => builder.dropout(*rate),
            };
        }
        // The architecture is a stranger's allocation request: it must fit the
        // tensors the file holds before the network is made.
        let count = builder
            .parameter_count()
            .map_err(|e| self.bad(format!("architecture: {e}")))?;
        let held: usize = self
            .file
            .tensors()
            .iter()
            .map(|(_, t)| t.data().len())
            .sum();
        if count > held / 4 {
            return Err(self.bad(format!(
                "the architecture declares {count} parameters, but the file's tensors hold \
                 {held} bytes ({} floats)",
                held / 4
            )));
        }
        builder
            .build()
            .map_err(|e| self.bad(format!("architecture: {e}")))
    }

    /// Every layer's parameters and batch-norm statistics into `network`.
    pub(super) fn weights(&self, network: &mut Network, arch: &Architecture) -> Result<()> {
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
                Layer::Dropout(_) => {}
            }
        }
        if let Some(i) = params.iter().position(|v| !v.is_finite()) {
            return Err(self.bad(format!("parameter {i} is not finite")));
        }
        network.parameters_mut().copy_from_slice(&params);
        Ok(())
    }

    /// The optimizer's step and moments into `network`; whether the file held moments.
    pub(super) fn optimizer_state(&self, network: &mut Network, step: u64) -> Result<bool> {
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
    pub(super) fn standardizer(&self, width: usize) -> Result<Option<Standardizer>> {
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
