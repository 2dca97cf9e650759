//! Small synthetic data sets, generated from a seed.

use std::f32::consts::PI;

use ndarray::{Array1, Array2};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal};

/// The spiral data set of the CS231n neural-network case study: `classes` arms of
/// `points` points each in the plane, class `c` along an arm that turns by
/// 4 radians, with angular noise of standard deviation 0.2.
///
/// Returns features (`points·classes × 2`) and class indices.
///
/// ```
/// let (x, y) = feedforward::data::spiral(100, 3, 0);
/// assert_eq!(x.dim(), (300, 2));
/// assert_eq!(y.iter().filter(|&&c| c == 2).count(), 100);
/// ```
pub fn spiral(points: usize, classes: usize, seed: u64) -> (Array2<f32>, Array1<usize>) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let noise = Normal::new(0.0f32, 0.2).expect("valid normal");
    let n = points * classes;
    let mut x = Array2::zeros((n, 2));
    let mut y = Array1::zeros(n);
    for c in 0..classes {
        for i in 0..points {
            let row = c * points + i;
            let r = if points > 1 {
                i as f32 / (points - 1) as f32
            } else {
                0.0
            };
            let t = c as f32 * 4.0 + r * 4.0 + noise.sample(&mut rng);
            x[[row, 0]] = r * t.sin();
            x[[row, 1]] = r * t.cos();
            y[row] = c;
        }
    }
    (x, y)
}

/// A noisy sine regression: `x` uniform in `[−π, π]`, `y = sin x + noise`
/// (standard deviation `noise`). Returns `n × 1` features and `n × 1` targets.
pub fn sine(n: usize, noise: f32, seed: u64) -> (Array2<f32>, Array2<f32>) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let normal = Normal::new(0.0f32, noise.abs()).expect("valid normal");
    let x = Array2::from_shape_fn((n, 1), |_| rng.random_range(-PI..PI));
    let y = x.mapv(|v| v.sin() + normal.sample(&mut rng));
    (x, y)
}

/// Gaussian blobs: `classes` clusters of `points` points in `dims` dimensions,
/// centres uniform in `[−5, 5]`, unit standard deviation.
pub fn blobs(
    points: usize,
    classes: usize,
    dims: usize,
    seed: u64,
) -> (Array2<f32>, Array1<usize>) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let normal = Normal::new(0.0f32, 1.0).expect("valid normal");
    let centres = Array2::from_shape_fn((classes, dims), |_| rng.random_range(-5.0f32..5.0));
    let n = points * classes;
    let y = Array1::from_shape_fn(n, |i| i / points.max(1));
    let x = Array2::from_shape_fn((n, dims), |(i, j)| {
        centres[[y[i], j]] + normal.sample(&mut rng)
    });
    (x, y)
}
