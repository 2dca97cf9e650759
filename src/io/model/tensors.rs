//! Writing a model's tensors: little-endian `f32` bytes in a safetensors file
//! whose header's keys are sorted.

use std::collections::HashMap;

use safetensors::{Dtype, tensor::TensorView};

use super::LayerDesc;
use crate::layers::Layer;
use crate::network::Network;

/// The tensors of a model file, as little-endian `f32` bytes.
#[derive(Default)]
pub(super) struct Tensors(Vec<(String, Vec<usize>, Vec<u8>)>);

impl Tensors {
    pub(super) fn push(&mut self, name: String, shape: Vec<usize>, values: &[f32]) {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.0.push((name, shape, bytes));
    }

    /// Every layer's parameters (and batch-norm statistics); returns the layers'
    /// descriptions for the architecture.
    pub(super) fn push_layers(&mut self, network: &Network) -> Vec<LayerDesc> {
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
                Layer::Dropout(d) => layers.push(LayerDesc::Dropout { rate: d.rate }),
            }
        }
        layers
    }

    /// The safetensors file of these tensors and `metadata`.
    pub(super) fn serialize(
        &self,
        metadata: HashMap<String, String>,
    ) -> std::result::Result<Vec<u8>, String> {
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
pub(super) fn sorted_header(bytes: Vec<u8>) -> Vec<u8> {
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
