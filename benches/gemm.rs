//! Matrix-multiply throughput: the crate's own kernel on every instruction set
//! this CPU runs (AVX-512, AVX2, SSE2, forced one after the other), and on a BLAS
//! build the `gemm` entry point (BLAS) beside them.
//!
//! `cargo bench --bench gemm` (set `RAYON_NUM_THREADS` for the thread count).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use feedforward::gemm::{self, Parallelism};
use ndarray::Array2;

fn matrix(rows: usize, cols: usize) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |(i, j)| {
        ((i * 7 + j * 3) % 11) as f32 * 0.1 - 0.5
    })
}

/// (name, m, n, k, A transposed, B transposed): squares, then the W1 and W2 layer
/// products (forward `X·W`, weight gradient `Xᵀ·dZ`, input gradient `dZ·Wᵀ`).
const SHAPES: &[(&str, usize, usize, usize, bool, bool)] = &[
    ("square", 256, 256, 256, false, false),
    ("square", 1024, 1024, 1024, false, false),
    ("W1 fwd L1", 256, 512, 784, false, false),
    ("W1 dW L1", 784, 512, 256, true, false),
    ("W1 dX L2", 256, 512, 256, false, true),
    ("W2 fwd L2", 4096, 4096, 4096, false, false),
    ("W2 dW L2", 4096, 4096, 4096, true, false),
    ("W2 dX L2", 4096, 4096, 4096, false, true),
    ("W3b L1", 1, 512, 784, false, false),
];

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm");
    group.sample_size(10);
    for &(name, m, n, k, ta, tb) in SHAPES {
        let a = if ta { matrix(k, m) } else { matrix(m, k) };
        let b = if tb { matrix(n, k) } else { matrix(k, n) };
        let (av, bv) = (
            if ta { a.t() } else { a.view() },
            if tb { b.t() } else { b.view() },
        );
        let mut out = Array2::zeros((m, n));
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        let id = format!("{name} {m}x{n}x{k}");
        if gemm::BACKEND != "simd" {
            group.bench_function(BenchmarkId::new(gemm::BACKEND, &id), |bench| {
                bench.iter(|| gemm::gemm(1.0, av, bv, 0.0, out.view_mut()).unwrap())
            });
        }
        for isa in gemm::Isa::supported() {
            gemm::set_isa(isa).unwrap();
            group.bench_function(BenchmarkId::new(isa.name(), &id), |bench| {
                bench.iter(|| {
                    gemm::gemm_with(1.0, av, bv, 0.0, out.view_mut(), Parallelism::auto()).unwrap()
                })
            });
        }
        gemm::set_isa(gemm::Isa::best()).unwrap();
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
