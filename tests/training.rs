//! Training end to end, with fixed seeds: these are correctness tests, not timings.

mod common;

use common::uniform;
use feedforward::{
    Activation::*, AdamConfig, FitConfig, Loss, Network, Optimizer, SgdConfig, Targets, data,
};
use ndarray::Array1;

#[test]
fn spiral_reaches_90_percent() {
    let (x, y) = data::spiral(100, 3, 0);
    let mut net = Network::builder(2)
        .dense(100, Relu)
        .dense(3, Softmax)
        .optimizer(Optimizer::adam(0.01))
        .seed(1)
        .build()
        .unwrap();
    let cfg = FitConfig {
        epochs: 150,
        batch_size: 32,
        ..Default::default()
    };
    let history = net.fit(x.view(), (&y).into(), &cfg).unwrap();
    assert_eq!(history.epochs.len(), 150);
    assert!(history.epochs[149].loss < history.epochs[0].loss);
    let eval = net.evaluate(x.view(), (&y).into()).unwrap();
    assert!(
        eval.accuracy.unwrap() >= 0.90,
        "spiral accuracy {:?}",
        eval.accuracy
    );
    let predicted = net.predict(x.view()).unwrap();
    let hits = predicted
        .iter()
        .zip(y.iter())
        .filter(|(p, t)| p == t)
        .count();
    assert_eq!(hits as f32 / 300.0, eval.accuracy.unwrap());
}

#[test]
fn spiral_with_sgd_momentum_and_one_hot_targets() {
    let (x, y) = data::spiral(100, 3, 3);
    let hot = ndarray::Array2::from_shape_fn((300, 3), |(i, j)| f32::from(u8::from(y[i] == j)));
    for opt in [
        Optimizer::Sgd(SgdConfig {
            lr: 0.05,
            momentum: 0.9,
            nesterov: true,
            ..Default::default()
        }),
        Optimizer::sgd_momentum(0.05, 0.9),
        Optimizer::adamw(0.01, 1e-4),
    ] {
        let mut net = Network::builder(2)
            .dense(64, Tanh)
            .dense(64, Relu)
            .dense(3, Softmax)
            .optimizer(opt)
            .seed(2)
            .build()
            .unwrap();
        let cfg = FitConfig {
            epochs: 150,
            batch_size: 30,
            ..Default::default()
        };
        net.fit(x.view(), Targets::Values(hot.view()), &cfg)
            .unwrap();
        let acc = net
            .evaluate(x.view(), (&y).into())
            .unwrap()
            .accuracy
            .unwrap();
        assert!(acc >= 0.90, "{}: accuracy {acc}", opt.name());
    }
}

#[test]
fn sine_regression_reaches_low_mse() {
    let (x, y) = data::sine(512, 0.05, 4);
    let mut net = Network::builder(1)
        .dense(32, Tanh)
        .dense(32, Tanh)
        .dense(1, Identity)
        .optimizer(Optimizer::adam(0.01))
        .seed(3)
        .build()
        .unwrap();
    assert_eq!(net.loss(), Loss::MeanSquaredError);
    let before = net.evaluate(x.view(), (&y).into()).unwrap().loss;
    let cfg = FitConfig {
        epochs: 150,
        batch_size: 32,
        ..Default::default()
    };
    net.fit(x.view(), (&y).into(), &cfg).unwrap();
    let eval = net.evaluate(x.view(), (&y).into()).unwrap();
    assert!(eval.accuracy.is_none());
    // The noise alone costs 0.0025.
    assert!(eval.loss < 0.01, "MSE {} (started at {before})", eval.loss);
}

#[test]
fn batch_norm_network_trains_and_infers_with_running_statistics() {
    let (x, y) = data::blobs(100, 4, 8, 5);
    // Features far from zero mean and unit scale: what batch norm is for.
    let x = x.mapv(|v| v * 30.0 + 100.0);
    let mut net = Network::builder(8)
        .dense(32, Identity)
        .batch_norm(Relu)
        .dense(4, Softmax)
        .optimizer(Optimizer::adam(0.01))
        .build()
        .unwrap();
    let cfg = FitConfig {
        epochs: 30,
        batch_size: 50,
        ..Default::default()
    };
    net.fit(x.view(), (&y).into(), &cfg).unwrap();
    // Inference uses the running statistics: close to the training-mode batch statistics.
    let eval = net.evaluate(x.view(), (&y).into()).unwrap();
    assert!(
        eval.accuracy.unwrap() > 0.95,
        "accuracy {:?}",
        eval.accuracy
    );
    if let feedforward::Layer::BatchNorm(bn) = &net.layers()[1] {
        assert!(
            bn.running_var.iter().any(|&v| (v - 1.0).abs() > 1e-3),
            "running variance never updated"
        );
    } else {
        panic!("layer 1 should be batch norm");
    }
    // A single row predicts the same in inference mode as in a batch.
    let one = net.predict_proba(x.slice(ndarray::s![0..1, ..])).unwrap();
    let all = net.predict_proba(x.view()).unwrap();
    for (a, b) in one.row(0).iter().zip(all.row(0).iter()) {
        assert!((a - b).abs() < 1e-6);
    }
}

#[test]
fn binary_and_multilabel_classification() {
    let (x, y) = data::blobs(100, 2, 3, 6);
    let mut net = Network::builder(3)
        .dense(8, Relu)
        .dense(1, Sigmoid)
        .optimizer(Optimizer::adam(0.02))
        .build()
        .unwrap();
    assert_eq!(net.loss(), Loss::BinaryCrossEntropy);
    net.fit(
        x.view(),
        (&y).into(),
        &FitConfig {
            epochs: 30,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(
        net.evaluate(x.view(), (&y).into())
            .unwrap()
            .accuracy
            .unwrap()
            > 0.95
    );
    assert!(net.predict(x.view()).unwrap().iter().all(|&c| c < 2));

    // Two independent labels: "class is 0 or 1" and "class is 1 or 2".
    let (x, y) = data::blobs(80, 3, 4, 7);
    let labels = ndarray::Array2::from_shape_fn((240, 2), |(i, j)| {
        f32::from(u8::from(y[i] == j || y[i] == j + 1))
    });
    let mut net = Network::builder(4)
        .dense(16, Relu)
        .dense(2, Sigmoid)
        .optimizer(Optimizer::adam(0.02))
        .build()
        .unwrap();
    assert_eq!(net.loss(), Loss::MultiLabelCrossEntropy);
    net.fit(
        x.view(),
        Targets::Values(labels.view()),
        &FitConfig {
            epochs: 40,
            ..Default::default()
        },
    )
    .unwrap();
    let acc = net
        .evaluate(x.view(), Targets::Values(labels.view()))
        .unwrap()
        .accuracy
        .unwrap();
    assert!(acc > 0.95, "multi-label accuracy {acc}");
}

/// One update of each optimizer against its formula, on real gradients.
#[test]
fn optimizer_updates_follow_their_formulas() {
    let x = uniform(5, 3, 20);
    let y = Array1::from(vec![0usize, 1, 1, 0, 1]);
    let lr = 0.05;
    let run = |opt: Optimizer, clip: Option<f32>, steps: usize| {
        let mut b = Network::builder(3)
            .dense(4, Tanh)
            .dense(2, Softmax)
            .optimizer(opt)
            .seed(9);
        if let Some(c) = clip {
            b = b.clip_grad_norm(c);
        }
        let mut net = b.build().unwrap();
        let mut history = vec![net.parameters().to_vec()];
        let mut grads = Vec::new();
        for _ in 0..steps {
            net.forward(x.view()).unwrap();
            net.backward((&y).into()).unwrap();
            grads.push(net.gradients().to_vec());
            net.step().unwrap();
            history.push(net.parameters().to_vec());
        }
        (history, grads)
    };
    let close = |a: f32, b: f32| (a - b).abs() <= 1e-6 + 1e-5 * b.abs();

    // SGD: p1 = p0 − lr·g.
    let (p, g) = run(Optimizer::sgd(lr), None, 1);
    for i in 0..g[0].len() {
        assert!(close(p[1][i], p[0][i] - lr * g[0][i]));
    }
    // Momentum 0.9: v1 = g0, v2 = 0.9·g0 + g1; p2 = p1 − lr·v2. Nesterov: p1 = p0 − lr·(g0 + 0.9·g0).
    let (p, g) = run(Optimizer::sgd_momentum(lr, 0.9), None, 2);
    for i in 0..g[0].len() {
        assert!(close(p[2][i], p[1][i] - lr * (0.9 * g[0][i] + g[1][i])));
    }
    let nesterov = Optimizer::Sgd(SgdConfig {
        lr,
        momentum: 0.9,
        nesterov: true,
        ..Default::default()
    });
    let (p, g) = run(nesterov, None, 1);
    for i in 0..g[0].len() {
        assert!(close(p[1][i], p[0][i] - lr * 1.9 * g[0][i]));
    }
    // Adam, step 1: m̂ = g, v̂ = g², so p1 = p0 − lr·g/(|g| + ε).
    let (p, g) = run(Optimizer::adam(lr), None, 1);
    for i in 0..g[0].len() {
        let want = p[0][i] - lr * g[0][i] / (g[0][i].abs() + 1e-8);
        assert!(close(p[1][i], want), "adam {i}: {} vs {want}", p[1][i]);
    }
    // AdamW: the same, after shrinking the weights by (1 − lr·λ).
    let wd = 0.1;
    let (p, g) = run(
        Optimizer::AdamW(AdamConfig {
            lr,
            weight_decay: wd,
            ..Default::default()
        }),
        None,
        1,
    );
    for i in 0..g[0].len() {
        let want = p[0][i] * (1.0 - lr * wd) - lr * g[0][i] / (g[0][i].abs() + 1e-8);
        assert!(close(p[1][i], want));
    }
    // Clipping: the applied gradient has norm max_norm.
    let (p, g) = run(Optimizer::sgd(lr), Some(1e-3), 1);
    let norm = g[0].iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!(norm > 1e-3, "test needs a gradient larger than the clip");
    let step: f32 = p[1]
        .iter()
        .zip(&p[0])
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f32>()
        .sqrt();
    assert!((step - lr * 1e-3).abs() < 1e-6, "clipped step {step}");
}

#[test]
fn early_stopping_through_the_callback() {
    let (x, y) = data::spiral(30, 3, 8);
    let mut net = Network::builder(2)
        .dense(16, Relu)
        .dense(3, Softmax)
        .build()
        .unwrap();
    let cfg = FitConfig {
        epochs: 50,
        validation: Some((x.view(), (&y).into())),
        ..Default::default()
    };
    let history = net
        .fit_with(x.view(), (&y).into(), &cfg, |e| e.epoch < 4)
        .unwrap();
    assert_eq!(history.epochs.len(), 4);
    assert!(
        history
            .epochs
            .iter()
            .all(|e| e.val_loss.is_some() && e.val_accuracy.is_some())
    );
}
