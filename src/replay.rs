//! Replaying a run dumped by the peers' benchmark script (`bench.py --dump DIR`):
//! the same initial weights, the same batches, the same number of steps, so that
//! the final loss can be compared with PyTorch's.
//!
//! The directory holds `manifest.json` (layer sizes, batch, `"train"`, the loss,
//! the optimizer and its constants, `n_batches`, `steps_total`), the weights
//! `W{i}.npy` (`n_in × n_out`, `y = x·W + b`) and biases `b{i}.npy`, and the
//! batches `x{k}.npy` / `y{k}.npy`; step `t` uses batch `t mod n_batches`. The
//! final loss is the loss of step `steps_total − 1`, before its update. Only the
//! batches the steps use are read.

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::io::read_npy;
use crate::targets::{OwnedTargets, class_index};
use crate::{Activation, AdamConfig, Loss, Network, Optimizer};

#[derive(Deserialize)]
struct Manifest {
    workload: String,
    sizes: Vec<usize>,
    batch: usize,
    mode: String,
    output: String,
    optimizer: String,
    lr: f32,
    adam: Option<AdamConstants>,
    n_batches: usize,
    steps_total: usize,
    #[serde(default = "relu")]
    hidden_activation: String,
}

fn relu() -> String {
    "relu".into()
}

#[derive(Deserialize)]
struct AdamConstants {
    beta1: f32,
    beta2: f32,
    eps: f32,
}

/// One dense layer's parameters as dumped, and where its weights came from.
struct LayerFiles {
    w: Array2<f32>,
    b: Array1<f32>,
    path: PathBuf,
}

impl Manifest {
    /// The network of the dumped run, with its loss and optimizer (weights to be set).
    fn network(&self, path: &Path) -> Result<Network> {
        let hidden = Activation::from_name(&self.hidden_activation).ok_or_else(|| {
            Error::parse(
                path,
                format!("unknown activation {:?}", self.hidden_activation),
            )
        })?;
        let (out_act, loss) = if self.output.contains("cross-entropy") {
            (Activation::Softmax, Loss::CategoricalCrossEntropy)
        } else if self.output.contains("MSE") {
            (Activation::Identity, Loss::MeanSquaredError)
        } else {
            return Err(Error::Config(format!(
                "{}: unknown output {:?}",
                path.display(),
                self.output
            )));
        };
        let optimizer = match (self.optimizer.as_str(), &self.adam) {
            ("adam", Some(a)) => Optimizer::Adam(AdamConfig {
                lr: self.lr,
                beta1: a.beta1,
                beta2: a.beta2,
                eps: a.eps,
                weight_decay: 0.0,
            }),
            ("sgd", _) => Optimizer::sgd(self.lr),
            (other, _) => {
                return Err(Error::Config(format!(
                    "{}: cannot replay optimizer {other:?}",
                    path.display()
                )));
            }
        };
        let mut builder = Network::builder(self.sizes[0])
            .loss(loss)
            .optimizer(optimizer);
        let last = self.sizes.len() - 2;
        for (i, &units) in self.sizes[1..].iter().enumerate() {
            builder = builder.dense(units, if i == last { out_act } else { hidden });
        }
        builder.build()
    }

    /// Each layer's weights `W{i}.npy` and bias `b{i}.npy`, checked against
    /// `sizes`.
    fn weights(&self, dir: &Path) -> Result<Vec<LayerFiles>> {
        let mut out = Vec::new();
        for (i, pair) in self.sizes.windows(2).enumerate() {
            let (wp, bp) = (dir.join(format!("W{i}.npy")), dir.join(format!("b{i}.npy")));
            let w = read_npy(&wp)?.into_matrix(&wp)?;
            let b = read_npy(&bp)?.into_matrix(&bp)?;
            if w.dim() != (pair[0], pair[1]) || b.len() != pair[1] {
                return Err(Error::parse(
                    &wp,
                    format!(
                        "layer {i} is {} x {} in the manifest, but W{i} is {} x {} and b{i} holds {}",
                        pair[0],
                        pair[1],
                        w.nrows(),
                        w.ncols(),
                        b.len()
                    ),
                ));
            }
            let b = Array1::from_iter(b.iter().copied());
            out.push(LayerFiles { w, b, path: wp });
        }
        Ok(out)
    }

    /// The batches the steps use, read once each: features and targets
    /// (class indices when `classes`).
    fn batches(&self, dir: &Path, classes: bool) -> Result<(Vec<Array2<f32>>, Vec<OwnedTargets>)> {
        let used = self.n_batches.min(self.steps_total);
        // Grown as the files are read: `used` is the manifest's word, not a size.
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for k in 0..used {
            let (xp, yp) = (dir.join(format!("x{k}.npy")), dir.join(format!("y{k}.npy")));
            let x = read_npy(&xp)?.into_matrix(&xp)?;
            let y = read_npy(&yp)?.into_matrix(&yp)?;
            if x.nrows() != self.batch || y.nrows() != self.batch {
                return Err(Error::parse(
                    &xp,
                    format!("expected {} rows per batch", self.batch),
                ));
            }
            xs.push(x);
            ys.push(if classes {
                let labels = y.iter().map(|&v| {
                    class_index(v)
                        .ok_or_else(|| Error::parse(&yp, format!("label {v} is not a class index")))
                });
                OwnedTargets::Classes(labels.collect::<Result<Array1<usize>>>()?)
            } else {
                OwnedTargets::Values(y)
            });
        }
        Ok((xs, ys))
    }
}

/// What a replay computed.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    /// The workload's name in the manifest.
    pub workload: String,
    /// Training steps run.
    pub steps: usize,
    /// Loss of the last step, before its update.
    pub final_loss: f32,
}

/// Replays the dumped run in `dir` with this crate's training step.
///
/// # Errors
/// [`Error::Io`] or [`Error::Parse`] for missing or malformed files, and
/// [`Error::Config`] for a run this crate cannot replay (inference runs, unknown
/// losses or optimizers).
pub fn replay(dir: &Path) -> Result<Replay> {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, &e))?;
    let m: Manifest =
        serde_json::from_str(&text).map_err(|e| Error::parse(&path, e.to_string()))?;
    if m.mode != "train" {
        return Err(Error::Config(format!(
            "{}: only training runs can be replayed, not {:?}",
            path.display(),
            m.mode
        )));
    }
    if m.sizes.len() < 2 || m.n_batches == 0 || m.steps_total == 0 {
        return Err(Error::parse(
            &path,
            "needs two or more sizes, batches and steps",
        ));
    }
    // The weight files first: sizes that disagree with them are refused before
    // a network of those sizes is allocated.
    let weights = m.weights(dir)?;
    let mut net = m.network(&path)?;
    for (i, layer) in weights.iter().enumerate() {
        net.set_dense_parameters(i, layer.w.view(), layer.b.view())
            .map_err(|e| Error::parse(&layer.path, e.to_string()))?;
    }
    let (xs, ys) = m.batches(dir, net.loss() == Loss::CategoricalCrossEntropy)?;
    let mut final_loss = f32::NAN;
    for t in 0..m.steps_total {
        let k = t % m.n_batches;
        final_loss = net.train_step(xs[k].view(), ys[k].view())?;
    }
    Ok(Replay {
        workload: m.workload,
        steps: m.steps_total,
        final_loss,
    })
}
