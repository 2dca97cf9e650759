use feedforward::gemm::{Parallelism, simd::gemm_with};
use ndarray::Array2;
use std::time::Instant;
fn main() {
    let shapes: &[(&str, usize, usize, usize, bool, bool)] = &[
        ("W3 l1 4096x784x512", 4096, 784, 512, false, false),
        ("W3 l1 At", 4096, 784, 512, true, false),
        ("W3 l2 4096x512x256", 4096, 512, 256, false, false),
        ("W1 f1 256x784x512", 256, 784, 512, false, false),
        ("W1 f2 256x512x256", 256, 512, 256, false, false),
        ("W1 dW1 784x256x512 (At)", 784, 256, 512, true, false),
        ("W1 dX2 256x256x512 (Bt)", 256, 256, 512, false, true),
    ];
    for t in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .unwrap();
        pool.install(|| {
            let mut total = 0.0;
            for &(name, m, k, n, at, bt) in shapes {
                let a = if at {
                    Array2::from_shape_fn((k, m), |(i, j)| ((i * 7 + j * 3) % 13) as f32 * 0.1)
                } else {
                    Array2::from_shape_fn((m, k), |(i, j)| ((i * 7 + j * 3) % 13) as f32 * 0.1)
                };
                let b = if bt {
                    Array2::from_shape_fn((n, k), |(i, j)| ((i * 5 + j) % 11) as f32 * 0.1)
                } else {
                    Array2::from_shape_fn((k, n), |(i, j)| ((i * 5 + j) % 11) as f32 * 0.1)
                };
                let av = if at { a.t() } else { a.view() };
                let bv = if bt { b.t() } else { b.view() };
                let mut c = Array2::<f32>::zeros((m, n));
                let par = if t == 1 {
                    Parallelism::None
                } else {
                    Parallelism::Rayon(t)
                };
                let reps = (2e9 / (2 * m * n * k) as f64).ceil() as usize;
                let mut best = f64::MAX;
                for _ in 0..7 {
                    let s = Instant::now();
                    for _ in 0..reps {
                        gemm_with(1.0, av, bv, 0.0, c.view_mut(), par).unwrap();
                    }
                    best = best.min(s.elapsed().as_secs_f64() / reps as f64);
                }
                total += best;
                println!(
                    "t{t} {name:28} {:7.1} GFLOP/s  {:8.1} us",
                    2.0 * (m * n * k) as f64 / best / 1e9,
                    best * 1e6
                );
            }
            println!("t{t} total {:.1} us", total * 1e6);
        });
    }
}
