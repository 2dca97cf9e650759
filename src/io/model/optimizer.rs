//! How a model file describes its optimizer: the kind, its settings and its
//! step, as JSON in the network's metadata. Settings of the newer optimizers
//! are written only for them, so older models keep their bytes.

use serde::{Deserialize, Serialize};

use crate::optim::{
    AdagradConfig, AdamConfig, LambConfig, LarsConfig, Optimizer, RmsPropConfig, SgdConfig,
};

#[derive(Serialize, Deserialize)]
pub(super) struct OptimizerDesc {
    pub(super) kind: String,
    pub(super) lr: f32,
    #[serde(default)]
    pub(super) momentum: f32,
    #[serde(default)]
    pub(super) nesterov: bool,
    #[serde(default)]
    beta1: f32,
    #[serde(default)]
    beta2: f32,
    #[serde(default)]
    pub(super) eps: f32,
    #[serde(default)]
    pub(super) weight_decay: f32,
    #[serde(default)]
    pub(super) step: u64,
    /// RMSprop's smoothing constant (written only for RMSprop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) alpha: Option<f32>,
    /// RMSprop's centred form (written only for RMSprop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) centered: Option<bool>,
    /// Adagrad's learning-rate decay (written only for Adagrad).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) lr_decay: Option<f32>,
    /// Adagrad's initial accumulator value (written only for Adagrad).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) initial_accumulator: Option<f32>,
    /// LARS's trust coefficient (written only for LARS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) trust: Option<f32>,
}

pub(super) fn describe_optimizer(optimizer: &Optimizer, step: u64) -> OptimizerDesc {
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

pub(super) fn parse_optimizer(d: &OptimizerDesc) -> std::result::Result<Optimizer, String> {
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
