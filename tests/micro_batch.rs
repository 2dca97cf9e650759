//! Micro-batching: a step over a logical batch computed in chunks equals the
//! step over the whole batch (up to float summation order).

use feedforward::{Activation::*, BatchNormMode, Layer, Network, Optimizer, Targets, data};
use ndarray::Array2;

fn assert_close(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let tol = 1e-5 * x.abs().max(y.abs()).max(0.1);
        assert!(
            (x - y).abs() <= tol,
            "{what}: value {i} differs: {x} vs {y}"
        );
    }
}

/// Three steps on the whole batch, and three in chunks of `c`, from the same start.
fn compare(
    build: &dyn Fn() -> Network,
    x: &Array2<f32>,
    t: Targets<'_>,
    c: usize,
    mode: BatchNormMode,
) -> (Network, Network) {
    let (mut whole, mut chunked) = (build(), build());
    for _ in 0..3 {
        let lw = whole.train_step(x.view(), t).unwrap();
        let lc = chunked.train_step_micro(x.view(), t, c, mode).unwrap();
        assert!(
            (lw - lc).abs() <= 1e-5 * lw.abs().max(1.0),
            "loss {lw} vs {lc} (c = {c})"
        );
    }
    (whole, chunked)
}

fn bn_stats(net: &Network) -> Vec<f32> {
    net.layers()
        .iter()
        .flat_map(|l| match l {
            Layer::BatchNorm(b) => [b.running_mean.clone(), b.running_var.clone()].concat(),
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn dense_relu_softmax_cross_entropy() {
    for (b, cs) in [
        (12usize, vec![1, 4, 5, 12]),
        (50, vec![7, 16, 25, 49]),
        (64, vec![8, 13]),
    ] {
        let (x, y) = data::blobs(b / 2, 2, 5, b as u64);
        let x = x.slice(ndarray::s![..b, ..]).to_owned();
        let y: Vec<usize> = y.iter().take(b).copied().collect();
        let build = || {
            Network::builder(5)
                .dense(16, Relu)
                .dense(8, Tanh)
                .dense(2, Softmax)
                .optimizer(Optimizer::sgd_momentum(0.1, 0.9))
                .seed(7)
                .build()
                .unwrap()
        };
        for c in cs {
            let (w, ch) = compare(&build, &x, Targets::classes(&y), c, BatchNormMode::Exact);
            assert_close(
                w.parameters(),
                ch.parameters(),
                &format!("softmax B={b} c={c}"),
            );
        }
    }
}

#[test]
fn mean_squared_error_regression() {
    let (x, y) = data::sine(45, 0.1, 2);
    let build = || {
        Network::builder(1)
            .dense(12, Tanh)
            .dense(1, Identity)
            .optimizer(Optimizer::adam(0.01))
            .seed(5)
            .build()
            .unwrap()
    };
    for c in [1, 4, 9, 10, 44] {
        let (w, ch) = compare(&build, &x, (&y).into(), c, BatchNormMode::Exact);
        assert_close(w.parameters(), ch.parameters(), &format!("mse c={c}"));
    }
}

#[test]
fn batch_norm_exact_mode_matches_the_whole_batch() {
    let (x, y) = data::blobs(20, 3, 6, 9);
    let build = || {
        Network::builder(6)
            .dense(16, Identity)
            .batch_norm(Relu)
            .dense(8, Identity)
            .batch_norm(Tanh)
            .dense(3, Softmax)
            .optimizer(Optimizer::sgd(0.2))
            .seed(11)
            .build()
            .unwrap()
    };
    for c in [2, 7, 16, 30, 59] {
        let (w, ch) = compare(&build, &x, (&y).into(), c, BatchNormMode::Exact);
        assert_close(
            w.parameters(),
            ch.parameters(),
            &format!("batch norm c={c}"),
        );
        assert_close(
            &bn_stats(&w),
            &bn_stats(&ch),
            &format!("running statistics c={c}"),
        );
    }
    // Ghost batch norm normalises each chunk by itself: a different step.
    let (w, ghost) = compare_ghost(&build, &x, &y);
    let differs = w
        .parameters()
        .iter()
        .zip(ghost.parameters())
        .any(|(a, b)| (a - b).abs() > 1e-3);
    assert!(
        differs,
        "ghost batch norm should differ from the whole-batch step"
    );
}

fn compare_ghost(
    build: &dyn Fn() -> Network,
    x: &Array2<f32>,
    y: &ndarray::Array1<usize>,
) -> (Network, Network) {
    let (mut whole, mut ghost) = (build(), build());
    whole.train_step(x.view(), y.into()).unwrap();
    ghost
        .train_step_micro(x.view(), y.into(), 10, BatchNormMode::Ghost)
        .unwrap();
    (whole, ghost)
}

#[test]
fn fit_with_micro_batches_matches_fit_without() {
    let (x, y) = data::spiral(40, 3, 1);
    let build = || {
        // SGD, not Adam: the bias before batch norm has a gradient of pure
        // rounding noise, which Adam would scale up to full-size steps.
        Network::builder(2)
            .dense(32, Identity)
            .batch_norm(Relu)
            .dense(3, Softmax)
            .optimizer(Optimizer::sgd_momentum(0.1, 0.9))
            .seed(2)
            .build()
            .unwrap()
    };
    let (mut a, mut b) = (build(), build());
    let base = feedforward::FitConfig {
        epochs: 3,
        batch_size: 40,
        ..Default::default()
    };
    let ha = a.fit(x.view(), (&y).into(), &base).unwrap();
    let chunked = feedforward::FitConfig {
        micro_batch: Some(9),
        ..base.clone()
    };
    let hb = b.fit(x.view(), (&y).into(), &chunked).unwrap();
    assert_close(a.parameters(), b.parameters(), "fit");
    assert!((ha.last().unwrap().loss - hb.last().unwrap().loss).abs() < 1e-5);
    assert_eq!(ha.last().unwrap().accuracy, hb.last().unwrap().accuracy);
    let before = b.parameters().to_vec();
    match b.train_step_micro(x.view(), (&y).into(), 0, BatchNormMode::Exact) {
        Err(feedforward::Error::Config(m)) => assert!(m.contains("micro-batch"), "{m}"),
        other => panic!("expected a config error, got {other:?}"),
    }
    assert_eq!(b.parameters(), &before[..]);
}

/// The penalty's gradient is added once per step, not once per chunk: a
/// micro-batched step with L1 and L2 penalties is the whole-batch step.
#[test]
fn penalties_are_added_once_per_step() {
    let (x, y) = feedforward::data::blobs(30, 3, 4, 2);
    let build = || {
        Network::builder(4)
            .dense(12, Relu)
            .dense(3, Softmax)
            .penalty(feedforward::Penalty { l1: 0.01, l2: 0.1 })
            .optimizer(feedforward::Optimizer::sgd(0.1))
            .seed(4)
            .build()
            .unwrap()
    };
    let (mut whole, mut chunked) = (build(), build());
    whole.train_step(x.view(), (&y).into()).unwrap();
    chunked
        .train_step_micro(x.view(), (&y).into(), 7, BatchNormMode::Exact)
        .unwrap();
    assert_close(whole.parameters(), chunked.parameters(), "penalty");
    assert_eq!(whole.penalty(), chunked.penalty());
    assert!(whole.penalty() > 0.0);
}
