//! Training with a fixed seed gives the same weights, bit for bit.

mod common;

use common::with_threads;
use feedforward::{Activation::*, FitConfig, Network, Optimizer, data};

/// Trains a network big enough that gemm, the element-wise kernels and the
/// reductions all take their parallel paths, and returns its parameters.
fn train(threads: usize) -> Vec<f32> {
    train_chunked(threads, None)
}

/// [`train`] with micro-batches of `micro` rows (exact batch norm); the returned
/// values end with the batch-norm running statistics.
fn train_chunked(threads: usize, micro: Option<usize>) -> Vec<f32> {
    with_threads(threads, || {
        let (x, y) = data::blobs(128, 10, 64, 3);
        let mut net = Network::builder(64)
            .dense(256, Relu)
            .dense(128, Identity)
            .batch_norm(Tanh)
            .dense(10, Softmax)
            .optimizer(Optimizer::adam(1e-3))
            .clip_grad_norm(1.0)
            .seed(11)
            .build()
            .unwrap();
        let cfg = FitConfig {
            epochs: 2,
            batch_size: 256,
            micro_batch: micro,
            ..Default::default()
        };
        net.fit(x.view(), (&y).into(), &cfg).unwrap();
        let mut values = net.parameters().to_vec();
        for layer in net.layers() {
            if let feedforward::Layer::BatchNorm(b) = layer {
                values.extend(&b.running_mean);
                values.extend(&b.running_var);
            }
        }
        values
    })
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn same_run_twice_gives_identical_weights() {
    assert_eq!(bits(&train(2)), bits(&train(2)));
    assert_eq!(
        bits(&train_chunked(2, Some(100))),
        bits(&train_chunked(2, Some(100)))
    );
}

/// The default backend splits products over output blocks only and reduces in a
/// fixed order, so the thread count cannot change a single bit. (BLAS libraries
/// make no such promise across thread counts.)
#[cfg(not(feature = "blas"))]
#[test]
fn one_and_two_threads_give_identical_weights() {
    let one = train(1);
    let two = train(2);
    let differing = one
        .iter()
        .zip(&two)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    assert_eq!(
        differing,
        0,
        "{differing} of {} parameters differ",
        one.len()
    );
}

/// The same with micro-batching (balanced chunks, exact batch norm).
#[cfg(not(feature = "blas"))]
#[test]
fn micro_batched_training_is_identical_for_one_and_two_threads() {
    assert_eq!(
        bits(&train_chunked(1, Some(100))),
        bits(&train_chunked(2, Some(100)))
    );
}

/// Every optimizer, the layer-wise ones included (their per-layer norms are
/// fixed-order reductions), gives the same bits on 1 and 2 threads, on layers
/// large enough (64 × 256 weights) for the parallel paths. (The crate's own
/// kernels only: a BLAS library sums in its own order per thread count.)
#[cfg(not(feature = "blas"))]
#[test]
fn every_optimizer_is_bit_identical_across_thread_counts() {
    let optimizers = [
        Optimizer::lars(0.5),
        Optimizer::lamb(1e-3),
        Optimizer::rmsprop(1e-3),
        Optimizer::adagrad(1e-2),
        Optimizer::sgd_momentum(0.05, 0.9),
    ];
    for optimizer in optimizers {
        let run = |threads| {
            with_threads(threads, || {
                let (x, y) = data::blobs(64, 10, 64, 3);
                let mut net = Network::builder(64)
                    .dense(256, Relu)
                    .batch_norm(Tanh)
                    .dense(10, Softmax)
                    .optimizer(optimizer)
                    .seed(5)
                    .build()
                    .unwrap();
                let cfg = FitConfig {
                    epochs: 2,
                    batch_size: 128,
                    ..Default::default()
                };
                net.fit(x.view(), (&y).into(), &cfg).unwrap();
                net.snapshot()
            })
        };
        let one = run(1);
        assert_eq!(one, run(2), "{optimizer:?}");
        assert!(one.parameters().iter().all(|v| v.is_finite()));
    }
}
