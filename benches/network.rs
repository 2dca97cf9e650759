//! Whole-network throughput on the standard workloads: a W1 and a W2 training step,
//! W3 inference (batch 4096) and W3b latency (batch 1).
//!
//! `cargo bench --bench network`. For samples/s and GFLOP/s beside the peers, use
//! `feedforward bench`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use feedforward::Targets;
use feedforward::bench::{Workload, network};
use ndarray::{Array1, Array2};

fn features(rows: usize, cols: usize) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |(i, j)| {
        ((i * 13 + j * 5) % 17) as f32 / 8.5 - 1.0
    })
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("network");
    group.sample_size(10);
    for w in [Workload::W1, Workload::W2, Workload::W3, Workload::W3b] {
        let batch = w.batch();
        let widths = w.widths();
        let (n_in, n_out) = (widths[0], *widths.last().unwrap());
        let x = features(batch, n_in);
        let classes = Array1::from_shape_fn(batch, |i| i % n_out);
        let values = features(batch, n_out);
        let mut net = network(w, 0).unwrap();
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(w.name(), |b| {
            b.iter(|| {
                if w.is_training() {
                    let targets = if w == Workload::W2 {
                        Targets::Values(values.view())
                    } else {
                        Targets::Classes(classes.view())
                    };
                    net.train_step(x.view(), targets).unwrap();
                } else {
                    net.predict_proba(x.view()).unwrap();
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
