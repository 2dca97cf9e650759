//! Shards: a batch split into a fixed number of parts whose gradients are
//! summed in a fixed tree. The step is the whole-batch step up to rounding,
//! and its bits depend on the shard count only (not on threads or on empty
//! shards); the tree itself is checked in `network::shards`' unit tests.

mod common;

use common::with_threads;
use feedforward::train::Trainer;
use feedforward::{
    Activation::*, BatchNormMode, Error, FitConfig, Network, Optimizer, Targets, data,
};

fn network(seed: u64) -> Network {
    Network::builder(5)
        .dense(32, Identity)
        .batch_norm(Relu)
        .dropout(0.2)
        .dense(16, Tanh)
        .dense(3, Softmax)
        .optimizer(Optimizer::sgd_momentum(0.05, 0.9))
        .seed(seed)
        .build()
        .unwrap()
}

fn train(shards: usize, micro: Option<usize>, mode: BatchNormMode) -> Network {
    let (x, y) = data::blobs(64, 3, 5, 4);
    let mut net = network(2);
    let config = FitConfig {
        epochs: 3,
        batch_size: 45,
        shards,
        micro_batch: micro,
        batch_norm_mode: mode,
        ..FitConfig::default()
    };
    Trainer::new(config)
        .fit(&mut net, x.view(), Targets::Classes(y.view()))
        .unwrap();
    net
}

fn assert_close(a: &Network, b: &Network, what: &str) {
    for (i, (x, y)) in a.parameters().iter().zip(b.parameters()).enumerate() {
        assert!(
            (x - y).abs() <= 2e-4 * x.abs().max(0.1),
            "{what}: parameter {i}: {x} vs {y}"
        );
    }
}

#[test]
fn sharded_steps_are_whole_batch_steps_up_to_rounding() {
    let whole = train(1, None, BatchNormMode::Exact);
    // Batches of 45 rows; (12, Some(3)): shards of 4 rows in 2 chunks of 2
    // beside shards of 3 rows in one chunk of 3, longer than the longest
    // shard's chunks.
    for (shards, micro) in [
        (2, None),
        (4, None),
        (8, Some(5)),
        (3, Some(7)),
        (12, Some(3)),
    ] {
        let sharded = train(shards, micro, BatchNormMode::Exact);
        assert_close(
            &whole,
            &sharded,
            &format!("{shards} shards, micro {micro:?}"),
        );
        // Rounding does differ: the shards are really summed apart.
        assert_ne!(whole.parameters(), sharded.parameters(), "{shards} shards");
    }
}

#[test]
fn the_bits_do_not_depend_on_the_thread_count() {
    let one = with_threads(1, || train(4, Some(5), BatchNormMode::Exact));
    let two = with_threads(2, || train(4, Some(5), BatchNormMode::Exact));
    #[cfg(not(feature = "blas"))]
    assert!(one.snapshot() == two.snapshot());
    #[cfg(feature = "blas")]
    assert_close(&one, &two, "1 and 2 threads");
}

#[test]
fn more_shards_than_rows_leaves_the_extra_ones_empty() {
    let (x, y) = data::blobs(2, 3, 5, 6);
    let mut net = Network::builder(5)
        .dense(8, Relu)
        .dense(3, Softmax)
        .optimizer(Optimizer::sgd(0.1))
        .build()
        .unwrap();
    let mut reference = net.clone();
    let fit = |net: &mut Network, shards| {
        let config = FitConfig {
            epochs: 1,
            batch_size: 6,
            shuffle: false,
            shards,
            ..FitConfig::default()
        };
        Trainer::new(config)
            .fit(net, x.view(), Targets::Classes(y.view()))
            .unwrap();
    };
    fit(&mut net, 16);
    fit(&mut reference, 1);
    assert_close(&net, &reference, "16 shards of 6 rows");
}

#[test]
fn zero_shards_is_refused() {
    let (x, y) = data::blobs(4, 3, 5, 6);
    let mut net = network(1);
    let before = net.snapshot();
    let config = FitConfig {
        shards: 0,
        ..FitConfig::default()
    };
    let err = Trainer::new(config)
        .fit(&mut net, x.view(), Targets::Classes(y.view()))
        .unwrap_err();
    let Error::Config(msg) = err else {
        panic!("{err:?}")
    };
    assert_eq!(msg, "a batch needs at least one shard");
    assert!(net.snapshot() == before);
}

/// The trainer with the group of one process trains exactly as without one.
#[test]
fn a_single_process_communicator_changes_nothing() {
    let (x, y) = data::blobs(64, 3, 5, 4);
    let build = || {
        Network::builder(5)
            .dense(16, Relu)
            .dropout(0.1)
            .dense(3, Softmax)
            .seed(5)
            .build()
            .unwrap()
    };
    let config = || FitConfig {
        epochs: 2,
        batch_size: 40,
        shards: 4,
        ..FitConfig::default()
    };
    let (mut alone, mut grouped) = (build(), build());
    Trainer::new(config())
        .fit(&mut alone, x.view(), Targets::Classes(y.view()))
        .unwrap();
    Trainer::new(config())
        .communicator(&feedforward::distributed::SingleProcess)
        .fit(&mut grouped, x.view(), Targets::Classes(y.view()))
        .unwrap();
    assert!(alone.snapshot() == grouped.snapshot());
}
