//! Element-wise and row-wise kernels, and the rayon drivers that run them.
//!
//! Every kernel here works on whole rows of row-major buffers (one sample per
//! row), so it can be handed any contiguous run of rows. The drivers split a batch
//! into runs of rows and hand them to rayon when the batch is large enough to be
//! worth a second thread, or run the same code on the calling thread when not.
//! Element-wise results do not depend on the split; reductions across rows live in
//! [`reduce`] and use a split that does not depend on the thread count.

pub(crate) mod reduce;

use rayon::prelude::*;

/// Batches with fewer elements than this run on one thread.
pub(crate) const PARALLEL_MIN_ELEMENTS: usize = 1 << 15;

/// About this many elements per rayon task.
const ELEMENTS_PER_TASK: usize = 1 << 13;

/// Rows per task for rows `cols` wide.
fn rows_per_task(cols: usize) -> usize {
    (ELEMENTS_PER_TASK / cols.max(1)).max(1)
}

/// Whether a pass over `elements` values should use more than one thread.
pub(crate) fn worth_parallel(elements: usize) -> bool {
    elements >= PARALLEL_MIN_ELEMENTS && rayon::current_num_threads() > 1
}

/// Calls `f(first_row, rows)` on runs of whole rows of `data` (`cols` wide).
pub(crate) fn for_rows<F>(data: &mut [f32], cols: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync + Send,
{
    let cols = cols.max(1);
    let rows = rows_per_task(cols);
    if worth_parallel(data.len()) {
        data.par_chunks_mut(rows * cols)
            .enumerate()
            .for_each(|(t, chunk)| f(t * rows, chunk));
    } else {
        f(0, data);
    }
}

/// Like [`for_rows`] over two row-aligned buffers: `a` read-only (`a_cols` wide)
/// and `b` written (`b_cols` wide), both with the same number of rows.
pub(crate) fn for_rows_zip<F>(a: &[f32], a_cols: usize, b: &mut [f32], b_cols: usize, f: F)
where
    F: Fn(usize, &[f32], &mut [f32]) + Sync + Send,
{
    let (a_cols, b_cols) = (a_cols.max(1), b_cols.max(1));
    let rows = rows_per_task(a_cols.max(b_cols));
    if worth_parallel(a.len().max(b.len())) {
        a.par_chunks(rows * a_cols)
            .zip(b.par_chunks_mut(rows * b_cols))
            .enumerate()
            .for_each(|(t, (ca, cb))| f(t * rows, ca, cb));
    } else {
        f(0, a, b);
    }
}

/// Like [`for_rows_zip`] with three buffers: `a` and `b` read-only, `c` written.
#[allow(clippy::too_many_arguments)]
pub(crate) fn for_rows_zip3<F>(
    a: &[f32],
    a_cols: usize,
    b: &[f32],
    b_cols: usize,
    c: &mut [f32],
    c_cols: usize,
    f: F,
) where
    F: Fn(usize, &[f32], &[f32], &mut [f32]) + Sync + Send,
{
    let (a_cols, b_cols, c_cols) = (a_cols.max(1), b_cols.max(1), c_cols.max(1));
    let rows = rows_per_task(a_cols.max(b_cols).max(c_cols));
    if worth_parallel(a.len().max(c.len())) {
        a.par_chunks(rows * a_cols)
            .zip(b.par_chunks(rows * b_cols))
            .zip(c.par_chunks_mut(rows * c_cols))
            .enumerate()
            .for_each(|(t, ((ca, cb), cc))| f(t * rows, ca, cb, cc));
    } else {
        f(0, a, b, c);
    }
}

/// Scans a row-major buffer for NaN or infinity; returns the first `(row, col, value)`.
///
/// Blocks of values are tested with a branch-free reduction over their exponent
/// bits (all ones for NaN and ±∞), which vectorises; only a block that fails is
/// searched element by element. Blocks may be tested in parallel, but the
/// position reported is always the first one.
pub(crate) fn first_non_finite(data: &[f32], cols: usize) -> Option<(usize, usize, f32)> {
    const BLOCK: usize = 1 << 12;
    let cols = cols.max(1);
    let bad_block = |block: &[f32]| {
        block
            .iter()
            .fold(0u32, |acc, x| acc.max(x.to_bits() & EXPONENT))
            == EXPONENT
    };
    let block = if worth_parallel(data.len()) {
        data.par_chunks(BLOCK).position_first(bad_block)
    } else {
        data.chunks(BLOCK).position(bad_block)
    }?;
    let start = block * BLOCK;
    let end = (start + BLOCK).min(data.len());
    let index = start + data[start..end].iter().position(|x| !x.is_finite())?;
    Some((index / cols, index % cols, data[index]))
}

/// [`first_non_finite`] over a matrix of any layout: the block scan when it is
/// row-major and contiguous, else element by element in row order.
pub(crate) fn first_non_finite_in(x: &ndarray::ArrayView2<'_, f32>) -> Option<(usize, usize, f32)> {
    match x.as_slice() {
        Some(values) => first_non_finite(values, x.ncols()),
        None => x
            .indexed_iter()
            .find(|(_, v)| !v.is_finite())
            .map(|((r, c), &v)| (r, c, v)),
    }
}

/// The exponent bits of an `f32`: all set for NaN and the infinities only.
pub(crate) const EXPONENT: u32 = 0x7f80_0000;

/// Copies the rows `indices` of `src` (`cols` wide, row stride `stride`) into `dst`, in order.
pub(crate) fn gather_rows(
    src: &[f32],
    stride: usize,
    cols: usize,
    indices: &[usize],
    dst: &mut [f32],
) {
    let body = |first: usize, chunk: &mut [f32]| {
        for (r, row) in chunk.chunks_exact_mut(cols.max(1)).enumerate() {
            let s = indices[first + r] * stride;
            row.copy_from_slice(&src[s..s + cols]);
        }
    };
    for_rows(dst, cols, body);
}
