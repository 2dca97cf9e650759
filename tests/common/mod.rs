//! Helpers shared by the integration tests.
#![allow(dead_code)]

use ndarray::Array2;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

/// A seeded generator for test data.
pub fn rng(seed: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed)
}

/// A `rows × cols` matrix of uniform values in `[-1, 1)`.
pub fn uniform(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut r = rng(seed);
    Array2::from_shape_fn((rows, cols), |_| r.random_range(-1.0f32..1.0))
}

/// Runs `f` on a fresh rayon pool with `threads` threads.
pub fn with_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
        .install(f)
}

/// An `.npy` file's bytes: `data` (little-endian values of `descr`) under a
/// version 1.0 header for `descr` and `shape`.
pub fn npy(descr: &str, shape: &str, data: Vec<u8>) -> Vec<u8> {
    let header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}\n");
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend(data);
    out
}
