//! Reductions across rows, with results that do not depend on the thread count.
//!
//! Column reductions are split over blocks of columns, never over rows: each
//! column is summed by one task, top row to bottom row, so the order of additions
//! is fixed and the result is bit-identical for any number of threads.

use rayon::prelude::*;

use super::worth_parallel;
use crate::cpu::per_isa;

/// Columns per task in a column reduction (a multiple of every SIMD width).
const COLUMN_BLOCK: usize = 64;

/// Runs `f(first_col, out_block)` over blocks of `out` (one value per column).
fn for_column_blocks<F>(out: &mut [f32], rows: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync + Send,
{
    if worth_parallel(rows * out.len()) && out.len() > COLUMN_BLOCK {
        out.par_chunks_mut(COLUMN_BLOCK)
            .enumerate()
            .for_each(|(b, blk)| f(b * COLUMN_BLOCK, blk));
    } else {
        f(0, out);
    }
}

/// `out[j] (+)= Σᵢ x[i, j]` for a row-major `x` with `out.len()` columns.
/// With `accumulate` the sums are added to `out`, otherwise they replace it.
pub(crate) fn column_sums(x: &[f32], out: &mut [f32], accumulate: bool) {
    reduce_columns(x.len(), out, accumulate, |cols, j0, blk| {
        add_columns(x, cols, j0, blk);
    });
}

/// `out (+)=` what `add(cols, j0, block)` adds to each block of columns of a
/// row-major matrix of `len` elements and `out.len()` columns, the blocks
/// shared out over threads.
fn reduce_columns(
    len: usize,
    out: &mut [f32],
    accumulate: bool,
    add: impl Fn(usize, usize, &mut [f32]) + Sync,
) {
    let cols = out.len();
    if cols == 0 {
        return;
    }
    for_column_blocks(out, len / cols, |j0, blk| {
        if !accumulate {
            blk.fill(0.0);
        }
        add(cols, j0, blk);
    });
}

per_isa! {
    /// `blk[j] += Σᵢ x[i, j0 + j]`, rows top to bottom.
    fn add_columns(x: &[f32], cols: usize, j0: usize, blk: &mut [f32]) {
        let w = blk.len();
        for row in x.chunks_exact(cols) {
            for (o, v) in blk.iter_mut().zip(&row[j0..j0 + w]) {
                *o += v;
            }
        }
    }
}

/// `out[j] (+)= Σᵢ x[i, j]·y[i, j]` (column-wise dot products).
pub(crate) fn column_dots(x: &[f32], y: &[f32], out: &mut [f32], accumulate: bool) {
    reduce_columns(x.len(), out, accumulate, |cols, j0, blk| {
        add_column_dots(x, y, cols, j0, blk);
    });
}

per_isa! {
    /// `blk[j] += Σᵢ x[i, j0 + j]·y[i, j0 + j]`, rows top to bottom.
    fn add_column_dots(x: &[f32], y: &[f32], cols: usize, j0: usize, blk: &mut [f32]) {
        for (rx, ry) in x.chunks_exact(cols).zip(y.chunks_exact(cols)) {
            let (rx, ry) = (&rx[j0..j0 + blk.len()], &ry[j0..j0 + blk.len()]);
            for ((o, a), b) in blk.iter_mut().zip(rx).zip(ry) {
                *o += a * b;
            }
        }
    }
}

/// Column means and biased variances of `x`, the latter as `Σ (x − mean)² / rows`
/// (two passes: no cancellation from `E[x²] − E[x]²`).
pub(crate) fn column_mean_var(x: &[f32], mean: &mut [f32], var: &mut [f32]) {
    let cols = mean.len();
    if cols == 0 {
        return;
    }
    let rows = x.len() / cols;
    let inv = 1.0 / rows.max(1) as f32;
    column_sums(x, mean, false);
    mean.iter_mut().for_each(|m| *m *= inv);
    let mean: &[f32] = mean;
    for_column_blocks(var, rows, |j0, blk| {
        blk.fill(0.0);
        let w = blk.len();
        let mu = &mean[j0..j0 + w];
        for row in x.chunks_exact(cols) {
            for ((o, v), m) in blk.iter_mut().zip(&row[j0..j0 + w]).zip(mu) {
                let d = v - m;
                *o += d * d;
            }
        }
        blk.iter_mut().for_each(|o| *o *= inv);
    });
}

/// `Σ x` in a fixed order (pairwise over fixed blocks), as `f64` for accuracy.
pub(crate) fn sum(x: &[f32]) -> f64 {
    x.chunks(256)
        .map(|c| c.iter().map(|&v| f64::from(v)).sum::<f64>())
        .sum()
}

/// Elements per partial sum in [`sum_of_squares`].
pub(crate) const SQUARES_CHUNK: usize = 1 << 14;

/// `Σ x²` as `f64`: partial sums over fixed chunks of [`SQUARES_CHUNK`] (in
/// parallel when large) written to `partials`, then added in order, so the result
/// is deterministic. `partials` needs `x.len().div_ceil(SQUARES_CHUNK)` slots.
pub(crate) fn sum_of_squares(x: &[f32], partials: &mut [f64]) -> f64 {
    let part = |c: &[f32]| c.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>();
    let partials = &mut partials[..x.len().div_ceil(SQUARES_CHUNK)];
    if worth_parallel(x.len()) {
        x.par_chunks(SQUARES_CHUNK)
            .zip(partials.par_iter_mut())
            .for_each(|(c, p)| *p = part(c));
    } else {
        for (c, p) in x.chunks(SQUARES_CHUNK).zip(partials.iter_mut()) {
            *p = part(c);
        }
    }
    partials.iter().sum()
}
