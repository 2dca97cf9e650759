//! Dropout: active in training only, the same masks for micro-batches, thread
//! counts and resumed runs, gradients through a fixed mask, saved with the model.

mod common;

use common::{uniform, with_threads};
use feedforward::{
    Activation::*, BatchNormMode, Error, Layer, Network, Optimizer, Targets, data, io::model,
};
use ndarray::Array2;

fn build(rate: f32, seed: u64) -> Network {
    Network::builder(5)
        .dense(24, Relu)
        .dropout(rate)
        .dense(12, Tanh)
        .dropout(rate / 2.0)
        .dense(3, Softmax)
        .optimizer(Optimizer::adam(1e-2))
        .seed(seed)
        .build()
        .unwrap()
}

fn labels(rows: usize) -> Vec<usize> {
    (0..rows).map(|i| (i * 7 + i / 3) % 3).collect()
}

/// The parameters of `a` and `b` agree to `rel` (relative to 0.1 at least).
fn assert_close(a: &Network, b: &Network, rel: f32, what: &str) {
    for (i, (x, y)) in a.parameters().iter().zip(b.parameters()).enumerate() {
        assert!(
            (x - y).abs() <= rel * x.abs().max(0.1),
            "{what}: parameter {i}: {x} vs {y}"
        );
    }
}

#[test]
fn inference_does_not_depend_on_the_rate() {
    let x = uniform(40, 5, 1);
    let without = Network::builder(5)
        .dense(24, Relu)
        .dense(12, Tanh)
        .dense(3, Softmax)
        .seed(9)
        .build()
        .unwrap()
        .predict_proba(x.view())
        .unwrap();
    for rate in [0.0, 0.1, 0.5, 0.9] {
        let net = build(rate, 9);
        assert_eq!(net.predict_proba(x.view()).unwrap(), without, "rate {rate}");
    }
}

#[test]
fn training_passes_drop_and_scale() {
    let x = uniform(64, 5, 2);
    let mut net = Network::builder(5)
        .dense(32, Relu)
        .dropout(0.5)
        .dense(4, Identity)
        .seed(3)
        .build()
        .unwrap();
    let inference = net.predict_proba(x.view()).unwrap();
    let training = net.forward(x.view()).unwrap().to_owned();
    assert_ne!(training, inference);
    // The same step (no update in between) draws the same mask.
    assert_eq!(net.forward(x.view()).unwrap(), training);
    // Over many rows, the expected output is the inference output: compare
    // the column means of the two passes.
    let x = uniform(4000, 5, 4);
    let inference = net.predict_proba(x.view()).unwrap();
    let training = net.forward(x.view()).unwrap().to_owned();
    let scale = inference.mapv(f32::abs).mean().unwrap();
    for (t, i) in training
        .mean_axis(ndarray::Axis(0))
        .unwrap()
        .iter()
        .zip(inference.mean_axis(ndarray::Axis(0)).unwrap().iter())
    {
        assert!((t - i).abs() < 0.05 * scale, "mean {t} vs {i}");
    }
}

#[test]
fn masks_change_from_step_to_step() {
    let x = uniform(16, 5, 5);
    let y = labels(16);
    let mut net = build(0.5, 1);
    let first = net.forward(x.view()).unwrap().to_owned();
    net.backward(Targets::classes(&y)).unwrap();
    net.step().unwrap();
    // Undo the update: only the step count differs now.
    let mut undone = build(0.5, 1);
    undone
        .set_optimizer_state(net.optimizer_state().clone())
        .unwrap();
    let second = undone.forward(x.view()).unwrap().to_owned();
    assert_ne!(first, second);
}

#[test]
fn micro_batched_steps_equal_whole_batch_steps() {
    let (x, y) = data::blobs(30, 3, 5, 11);
    let y = y.to_vec();
    for c in [1, 7, 16, 45, 89] {
        let (mut whole, mut chunked) = (build(0.3, 2), build(0.3, 2));
        for _ in 0..3 {
            let lw = whole.train_step(x.view(), Targets::classes(&y)).unwrap();
            let lc = chunked
                .train_step_micro(x.view(), Targets::classes(&y), c, BatchNormMode::Exact)
                .unwrap();
            assert!(
                (lw - lc).abs() <= 1e-5 * lw.abs().max(1.0),
                "loss {lw} vs {lc}"
            );
        }
        assert_close(&whole, &chunked, 1e-5, &format!("c = {c}"));
    }
}

#[test]
fn exact_batch_norm_micro_batches_see_the_same_masks() {
    let (x, y) = data::blobs(20, 3, 5, 12);
    let y = y.to_vec();
    let build = || {
        Network::builder(5)
            .dense(16, Identity)
            .batch_norm(Relu)
            .dropout(0.4)
            .dense(8, Identity)
            .batch_norm(Tanh)
            .dense(3, Softmax)
            // Not Adam: the biases before batch norm have gradients of
            // rounding noise only, which Adam would scale up to full steps.
            .optimizer(Optimizer::sgd(0.1))
            .seed(4)
            .build()
            .unwrap()
    };
    let (mut whole, mut chunked) = (build(), build());
    for _ in 0..2 {
        whole.train_step(x.view(), Targets::classes(&y)).unwrap();
        chunked
            .train_step_micro(x.view(), Targets::classes(&y), 13, BatchNormMode::Exact)
            .unwrap();
    }
    assert_close(&whole, &chunked, 2e-5, "exact batch norm");
}

#[test]
fn one_thread_equals_two() {
    let x = uniform(600, 5, 6);
    let y = labels(600);
    let run = || {
        let mut net = Network::builder(5)
            .dense(300, Relu)
            .dropout(0.3)
            .dense(200, Relu)
            .dropout(0.2)
            .dense(3, Softmax)
            .seed(8)
            .build()
            .unwrap();
        for _ in 0..3 {
            net.train_step(x.view(), Targets::classes(&y)).unwrap();
        }
        net.parameters().to_vec()
    };
    let one = with_threads(1, run);
    let two = with_threads(2, run);
    // The default backend's products do not depend on the thread count, so
    // nothing may differ; a BLAS library's may, by rounding, but a mask drawn
    // differently would move parameters by far more.
    #[cfg(not(feature = "blas"))]
    assert!(one == two, "parameters differ between 1 and 2 threads");
    #[cfg(feature = "blas")]
    for (i, (a, b)) in one.iter().zip(&two).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * a.abs().max(0.1),
            "parameter {i}: {a} vs {b}"
        );
    }
}

#[test]
fn a_restored_snapshot_draws_the_masks_of_the_uninterrupted_run() {
    let x = uniform(32, 5, 7);
    let y = labels(32);
    let mut straight = build(0.4, 5);
    let mut interrupted = build(0.4, 5);
    for _ in 0..3 {
        straight.train_step(x.view(), Targets::classes(&y)).unwrap();
        interrupted
            .train_step(x.view(), Targets::classes(&y))
            .unwrap();
    }
    let saved = interrupted.snapshot();
    let mut resumed = build(0.4, 5);
    resumed.restore(&saved).unwrap();
    for _ in 0..3 {
        straight.train_step(x.view(), Targets::classes(&y)).unwrap();
        resumed.train_step(x.view(), Targets::classes(&y)).unwrap();
    }
    assert!(straight.parameters() == resumed.parameters());
}

#[test]
fn rates_outside_zero_to_one_and_a_dropout_output_are_refused() {
    for rate in [-0.1, 1.0, 1.5, f32::NAN] {
        let err = Network::builder(3)
            .dense(4, Relu)
            .dropout(rate)
            .dense(2, Softmax)
            .build()
            .unwrap_err();
        let Error::Config(msg) = err else {
            panic!("rate {rate}: {err:?}")
        };
        assert!(
            msg.contains("layer 1") && msg.contains("dropout rate must be in [0, 1)"),
            "{msg}"
        );
    }
    let err = Network::builder(3)
        .dense(4, Identity)
        .dropout(0.5)
        .loss(feedforward::Loss::MeanSquaredError)
        .build()
        .unwrap_err();
    let Error::Config(msg) = err else {
        panic!("{err:?}")
    };
    assert_eq!(msg, "layer 1: dropout cannot be the output layer");
}

#[test]
fn the_model_file_keeps_the_dropout_layers() {
    let mut net = build(0.25, 6);
    let x = uniform(20, 5, 8);
    net.train_step(x.view(), Targets::classes(&labels(20)))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("net.safetensors");
    model::save(&path, &net, &Default::default()).unwrap();
    let back = model::load(&path).unwrap().network;
    let rates: Vec<f32> = back
        .layers()
        .iter()
        .filter_map(|l| match l {
            Layer::Dropout(d) => Some(d.rate),
            _ => None,
        })
        .collect();
    assert_eq!(rates, vec![0.25, 0.125]);
    assert_eq!(back.layers(), net.layers());
    assert_eq!(
        back.predict_proba(x.view()).unwrap(),
        net.predict_proba(x.view()).unwrap()
    );
}

#[test]
fn dropout_still_learns_separable_blobs() {
    let (x, y) = data::blobs(100, 3, 5, 21);
    let y = y.to_vec();
    let mut net = build(0.2, 7);
    for _ in 0..60 {
        net.train_step(x.view(), Targets::classes(&y)).unwrap();
    }
    let predicted = net.predict(x.view()).unwrap();
    let right = predicted.iter().zip(&y).filter(|(p, t)| p == t).count();
    assert!(right as f64 / y.len() as f64 > 0.9, "accuracy {right}/300");
    let _: Array2<f32> = net.predict_proba(x.view()).unwrap();
}
