//! Networks in bf16: training reaches the f32 tests' thresholds, inference
//! agrees with f32, and the bits do not depend on the thread count, the
//! micro-batch split (up to summation order, as in f32) or the instruction set.

mod common;

use std::sync::Mutex;

use common::with_threads;
use feedforward::gemm::{self, Isa};
use feedforward::{
    Activation::*, BatchNormMode, FitConfig, Network, Optimizer, Precision, Targets, data,
    train::Trainer,
};

/// The instruction set is global: the tests of this file run one at a time.
static LEVEL: Mutex<()> = Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    LEVEL.lock().unwrap_or_else(|e| e.into_inner())
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn spiral_net(seed: u64) -> Network {
    Network::builder(2)
        .dense(100, Relu)
        .dense(3, Softmax)
        .optimizer(Optimizer::adam(0.01))
        .seed(seed)
        .build()
        .unwrap()
}

/// The f32 test's network, data and threshold (tests/training.rs), in bf16
/// through the trainer's precision setting.
#[test]
fn spiral_reaches_90_percent_in_bf16() {
    let _turn = turn();
    let (x, y) = data::spiral(100, 3, 0);
    let mut net = spiral_net(1);
    let cfg = FitConfig {
        epochs: 150,
        batch_size: 32,
        ..Default::default()
    };
    let history = Trainer::new(cfg)
        .precision(Precision::Bf16)
        .fit(&mut net, x.view(), (&y).into())
        .unwrap();
    assert_eq!(net.precision(), Precision::Bf16);
    assert!(history.epochs[149].loss < history.epochs[0].loss);
    let accuracy = net
        .evaluate(x.view(), (&y).into())
        .unwrap()
        .accuracy
        .unwrap();
    assert!(accuracy >= 0.90, "bf16 spiral accuracy {accuracy}");
}

#[test]
fn sine_regression_reaches_low_mse_in_bf16() {
    let _turn = turn();
    let (x, y) = data::sine(512, 0.05, 4);
    let mut net = Network::builder(1)
        .dense(32, Tanh)
        .dense(32, Tanh)
        .dense(1, Identity)
        .optimizer(Optimizer::adam(0.01))
        .seed(3)
        .build()
        .unwrap();
    net.set_precision(Precision::Bf16);
    let cfg = FitConfig {
        epochs: 150,
        batch_size: 32,
        ..Default::default()
    };
    net.fit(x.view(), (&y).into(), &cfg).unwrap();
    let mse = net.evaluate(x.view(), (&y).into()).unwrap().loss;
    assert!(mse < 0.01, "bf16 MSE {mse}");
}

/// Five steps of a three-layer network, as parameter bits.
fn five_steps(threads: usize) -> Vec<u32> {
    let (x, y) = data::blobs(150, 4, 37, 5);
    let mut net = Network::builder(37)
        .dense(70, Relu)
        .dense(33, Tanh)
        .dense(4, Softmax)
        .optimizer(Optimizer::adam(0.003))
        .seed(2)
        .build()
        .unwrap();
    net.set_precision(Precision::Bf16);
    with_threads(threads, || {
        for _ in 0..5 {
            net.train_step(x.view(), Targets::classes(y.as_slice().unwrap()))
                .unwrap();
        }
    });
    bits(net.parameters())
}

#[test]
fn the_same_bits_on_one_thread_and_two_and_on_every_level() {
    let _turn = turn();
    let reference = five_steps(1);
    assert_eq!(five_steps(2), reference, "1 vs 2 threads");
    let before = gemm::isa();
    for isa in Isa::supported() {
        gemm::set_isa(isa).unwrap();
        assert_eq!(five_steps(1), reference, "{isa} against {before}");
        assert_eq!(five_steps(2), reference, "{isa}, 2 threads");
    }
    gemm::set_isa(before).unwrap();
}

#[test]
fn micro_batches_match_the_whole_batch_in_bf16() {
    let _turn = turn();
    let (x, y) = data::blobs(32, 2, 5, 64);
    let t = Targets::classes(y.as_slice().unwrap());
    let build = || {
        let mut net = Network::builder(5)
            .dense(16, Relu)
            .dense(8, Tanh)
            .dense(2, Softmax)
            .optimizer(Optimizer::sgd_momentum(0.1, 0.9))
            .seed(7)
            .build()
            .unwrap();
        net.set_precision(Precision::Bf16);
        net
    };
    for c in [8, 16, 26] {
        let (mut whole, mut chunked) = (build(), build());
        for _ in 0..3 {
            whole.train_step(x.view(), t).unwrap();
            chunked
                .train_step_micro(x.view(), t, c, BatchNormMode::Exact)
                .unwrap();
        }
        for (i, (a, b)) in whole
            .parameters()
            .iter()
            .zip(chunked.parameters())
            .enumerate()
        {
            let tol = 1e-5 * a.abs().max(b.abs()).max(0.1);
            assert!((a - b).abs() <= tol, "c = {c}: parameter {i}: {a} vs {b}");
        }
    }
}

/// A network trained in f32, predicting held-out rows in bf16: the stated
/// accuracy cost (README, "bfloat16").
#[test]
fn bf16_inference_agrees_with_f32() {
    let _turn = turn();
    let (x, y) = data::spiral(300, 3, 11);
    let mut net = spiral_net(5);
    let cfg = FitConfig {
        epochs: 60,
        batch_size: 32,
        ..Default::default()
    };
    net.fit(x.view(), (&y).into(), &cfg).unwrap();
    let (held_out, _) = data::spiral(1000, 3, 12);
    let p32 = net.predict_proba(held_out.view()).unwrap();
    let c32 = net.predict(held_out.view()).unwrap();
    net.set_precision(Precision::Bf16);
    let predictor = net.predictor();
    let p16 = predictor.predict_proba(held_out.view()).unwrap();
    assert_eq!(
        bits(p16.as_slice().unwrap()),
        bits(
            net.predict_proba(held_out.view())
                .unwrap()
                .as_slice()
                .unwrap()
        )
    );
    let c16 = predictor.predict(held_out.view()).unwrap();
    let same = c32.iter().zip(&c16).filter(|(a, b)| a == b).count();
    let largest = p32
        .iter()
        .zip(&p16)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    eprintln!("bf16 vs f32: {same} / 3000 argmax agree, largest probability difference {largest}");
    assert!(same as f32 >= 0.995 * 3000.0, "{same} / 3000 argmax agree");
    assert!(largest <= 0.05, "largest probability difference {largest}");
}
