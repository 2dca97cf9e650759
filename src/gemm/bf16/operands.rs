//! The operands of a bf16 product, rounded and laid out for its kernels.
//!
//! `k` is padded to an even depth `k'` with zeros (a pair needs two steps).
//!
//! - For `VDPBF16PS` ([`pack_a`], [`pack_b`]): A in slivers of [`MR`] rows,
//!   each pair of steps (`2p`, `2p + 1`) one line of `MR` pairs; B in slivers
//!   of [`NR`] columns per block of `k`, each pair of steps one line of `NR` pairs.
//! - For the emulation ([`swapped_copy`]): `f32` copies of A and B rounded to
//!   bf16 with the two steps of every pair swapped, so that an ordinary `f32`
//!   product, summing in `k` order, adds the odd step before the even one, as
//!   the instruction does.

use super::round::{pair, round_to_bf16};
use crate::gemm::MatRef;
use crate::gemm::loops::depth_block;

/// Columns of a B sliver: two vectors of 16 lanes.
pub(crate) const NR: usize = 32;

/// Rows of an A sliver: the rows of a tile.
pub(crate) const MR: usize = 12;

/// `k` rounded up to even.
pub(crate) fn padded_depth(k: usize) -> usize {
    k + k % 2
}

/// The pairs of `k` steps in each block of `k'` (the blocks of [`depth_block`]).
pub(crate) fn pair_blocks(k: usize) -> impl Iterator<Item = (usize, usize)> {
    let depth = padded_depth(k);
    let block = depth_block(depth);
    (0..depth)
        .step_by(block.max(1))
        .map(move |start| (start / 2, block.min(depth - start) / 2))
}

/// Element `(i, j)` of `m`.
///
/// # Safety
/// `(i, j)` must lie inside `m`.
#[inline(always)]
unsafe fn at(m: MatRef, i: usize, j: usize) -> f32 {
    // SAFETY: inside the matrix, as the caller guarantees.
    unsafe { *m.ptr.offset(i as isize * m.rs + j as isize * m.cs) }
}

/// Element `(i, j)` of `m`, or 0 past its last row or column (the padding of `k`).
///
/// # Safety
/// As [`at`] for the elements inside `m`.
#[inline(always)]
unsafe fn at_or_zero(m: MatRef, i: usize, j: usize) -> f32 {
    if i < m.rows && j < m.cols {
        // SAFETY: inside the matrix.
        unsafe { at(m, i, j) }
    } else {
        0.0
    }
}

/// Elements of an operand from which its conversion is split over threads.
const PARALLEL_CONVERT: usize = 1 << 16;

/// Makes `out` at least `len` long (its old contents are overwritten, not cleared).
fn ensure_len<T: Copy + Default>(out: &mut Vec<T>, len: usize) {
    if out.len() < len {
        out.resize(len, T::default());
    }
}

/// Runs `f(index, chunk)` over `chunk`-sized pieces of `out`, on rayon when
/// the operand has `elements ≥ PARALLEL_CONVERT`.
fn for_chunks<T: Send>(
    out: &mut [T],
    chunk: usize,
    elements: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    use rayon::prelude::*;
    if elements >= PARALLEL_CONVERT && rayon::current_num_threads() > 1 {
        out.par_chunks_mut(chunk.max(1))
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    } else {
        out.chunks_mut(chunk.max(1))
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    }
}

/// Column `j` of `m` from row `from` to `to` (exclusive, at most `m.rows`), for
/// an `m` whose columns are contiguous (`rs = 1`).
///
/// # Safety
/// `m` must be valid, with `rs = 1`, and `from ≤ to ≤ m.rows`, `j < m.cols`.
unsafe fn column<'a>(m: MatRef, j: usize, from: usize, to: usize) -> &'a [f32] {
    // SAFETY: as the caller guarantees.
    unsafe {
        std::slice::from_raw_parts(m.ptr.offset(j as isize * m.cs + from as isize), to - from)
    }
}

/// How [`pack_a`] laid A out: element (row `i`, pair `p`) is at
/// `(i / MR)·sliver + (i % MR)·row + p·pair`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ALayout {
    /// Rows of pairs, `stride` pairs apart (`row = stride`, `pair = 1`): a
    /// row-major A converted in place, row by row, with no scatter.
    Rows { stride: usize },
    /// Slivers of [`MR`] rows, `sliver` pairs each (`row = 1`, `pair = MR`).
    Slivers { sliver: usize },
}

/// The row stride, in pairs, of A as [`ALayout::Rows`]: `k'/2` and, when that
/// puts rows a multiple of 4 KiB apart (where the rows of a tile would share
/// cache sets), one line more.
fn pair_row_stride(k: usize) -> usize {
    let pairs = padded_depth(k) / 2;
    if (pairs * 4).is_multiple_of(4096) {
        pairs + 16
    } else {
        pairs
    }
}

/// A (`m × k`) for the kernel, into `out`: a row-major A as rows of pairs
/// ([`ALayout::Rows`]), any other as slivers ([`pack_a`]).
///
/// # Safety
/// `a` must be valid over its shape and strides.
pub(crate) unsafe fn convert_a(a: MatRef, out: &mut Vec<u32>) -> ALayout {
    if a.cs != 1 {
        // SAFETY: as the caller guarantees.
        return ALayout::Slivers {
            sliver: unsafe { pack_a(a, out) },
        };
    }
    let (m, k) = (a.rows, a.cols);
    let stride = pair_row_stride(k);
    let pairs = padded_depth(k) / 2;
    ensure_len(out, m * stride);
    for_chunks(&mut out[..m * stride], stride, m * k, |i, row_out| {
        let matrix = a; // the whole matrix (Sync), not its pointer field
        // SAFETY: row i holds k contiguous floats.
        let row =
            unsafe { std::slice::from_raw_parts(matrix.ptr.offset(i as isize * matrix.rs), k) };
        convert::row_pairs(row, &mut row_out[..pairs]);
    });
    ALayout::Rows { stride }
}

/// A (`m × k`) packed for the kernel, into `out`: slivers of [`MR`] rows
/// (the last one's missing rows left as they were: the kernels read exactly
/// the rows there are), each holding every pair of `k` in turn,
/// the `MR` rows' values of a pair side by side (pair `p` of row `r` of
/// sliver `s` at `s·k'/2·MR + p·MR + r`). Returns the pairs per sliver.
///
/// # Safety
/// `a` must be valid over its shape and strides.
unsafe fn pack_a(a: MatRef, out: &mut Vec<u32>) -> usize {
    let (m, k) = (a.rows, a.cols);
    let pairs = padded_depth(k) / 2;
    let sliver = pairs * MR;
    ensure_len(out, m.div_ceil(MR) * sliver);
    let out = &mut out[..m.div_ceil(MR) * sliver];
    for_chunks(out, sliver, m * k, |s, packed| {
        let matrix = a; // the whole matrix (Sync), not its pointer field
        let (i0, rows) = (s * MR, MR.min(m - s * MR));
        // SAFETY: rows i0..i0 + rows of the matrix, as the caller guarantees.
        unsafe { pack_a_sliver(matrix, i0, rows, pairs, packed) }
    });
    sliver
}

/// Rows `i0..i0 + rows` of A as one sliver of [`pack_a`].
///
/// # Safety
/// As [`pack_a`], for these rows.
unsafe fn pack_a_sliver(a: MatRef, i0: usize, rows: usize, pairs: usize, packed: &mut [u32]) {
    let k = a.cols;
    if a.rs == 1 && a.cs != 1 {
        // Steps 2p and 2p + 1 are columns of A, contiguous: interleave the
        // sliver's part of each two straight into the pair's line.
        let zeros = [0.0f32; MR];
        for p in 0..pairs {
            let line = &mut packed[p * MR..(p + 1) * MR];
            let step = 2 * p;
            // SAFETY: columns `step` (and `step + 1` when < k) of A, these rows.
            let (even, odd) = unsafe {
                let even = column(a, step, i0, i0 + rows);
                let odd = if step + 1 < k {
                    column(a, step + 1, i0, i0 + rows)
                } else {
                    &zeros[..rows]
                };
                (even, odd)
            };
            convert::interleave_pairs(even, odd, &mut line[..rows]);
        }
    } else {
        for p in 0..pairs {
            for r in 0..rows {
                let i = i0 + r;
                // SAFETY: (i, 2p) and (i, 2p + 1) lie inside A, or are padding.
                packed[p * MR + r] =
                    unsafe { pair(at_or_zero(a, i, 2 * p), at_or_zero(a, i, 2 * p + 1)) };
            }
        }
    }
}

/// B (`k × n`) packed for the kernel, into `out`: block by block of `k`
/// ([`pair_blocks`]), sliver by sliver of [`NR`] columns, pair by pair;
/// `out` holds `k'/2 · slivers · NR` pairs. The last sliver's columns past
/// `n` hold whatever was there: the kernel computes them but never stores them.
///
/// # Safety
/// `b` must be valid over its shape and strides.
pub(crate) unsafe fn pack_b(b: MatRef, out: &mut Vec<u32>) {
    let (k, n) = (b.rows, b.cols);
    let slivers = n.div_ceil(NR);
    let len = padded_depth(k) / 2 * slivers * NR;
    ensure_len(out, len);
    let mut at_pair = 0;
    for (first, pairs) in pair_blocks(k) {
        let block = &mut out[at_pair * slivers * NR..(at_pair + pairs) * slivers * NR];
        for_chunks(block, pairs * NR, k * n, |s, sliver| {
            let matrix = b; // the whole matrix (Sync), not its pointer field
            // SAFETY: as the caller guarantees.
            unsafe { pack_b_sliver(matrix, first, pairs, s, sliver) }
        });
        at_pair += pairs;
    }
}

/// Sliver `s` of the block of `pairs` pairs from pair `first` (see [`pack_b`]).
///
/// # Safety
/// As [`pack_b`].
unsafe fn pack_b_sliver(b: MatRef, first: usize, pairs: usize, s: usize, sliver: &mut [u32]) {
    let (k, n) = (b.rows, b.cols);
    let (j0, width) = (s * NR, NR.min(n - s * NR));
    if b.rs == 1 && b.cs != 1 {
        // Bᵀ is row-major (B = Wᵀ): each column of B is a row of pairs.
        // Convert the sliver's columns over the block, then transpose them
        // into lines of NR pairs.
        let mut columns = [0u32; NR * 128];
        let (from, to) = (2 * first, (2 * (first + pairs)).min(k));
        for p0 in (0..pairs).step_by(128) {
            let count = 128.min(pairs - p0);
            let (lo, hi) = (from + 2 * p0, (from + 2 * (p0 + count)).min(to));
            for jj in 0..width {
                // SAFETY: column j0 + jj of B, rows lo..hi.
                let col = unsafe { column(b, j0 + jj, lo, hi) };
                convert::row_pairs(col, &mut columns[jj * 128..jj * 128 + count]);
            }
            for p in 0..count {
                let line = &mut sliver[(p0 + p) * NR..(p0 + p) * NR + width];
                for (jj, v) in line.iter_mut().enumerate() {
                    *v = columns[jj * 128 + p];
                }
            }
        }
        return;
    }
    for p in 0..pairs {
        let line = &mut sliver[p * NR..p * NR + width];
        let step = 2 * (first + p);
        if b.cs == 1 && step + 1 < k {
            // SAFETY: rows `step` and `step + 1` hold n contiguous floats.
            let (even, odd) = unsafe {
                let even = b.ptr.offset(step as isize * b.rs + j0 as isize);
                let odd = even.offset(b.rs);
                (
                    std::slice::from_raw_parts(even, width),
                    std::slice::from_raw_parts(odd, width),
                )
            };
            convert::interleave_pairs(even, odd, line);
        } else {
            for (j, v) in line.iter_mut().enumerate() {
                // SAFETY: inside B, or padding.
                *v = unsafe { pair(at_or_zero(b, step, j0 + j), at_or_zero(b, step + 1, j0 + j)) };
            }
        }
    }
}

/// Which axis of a matrix is `k`: the columns of A, the rows of B.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Depth {
    Columns,
    Rows,
}

/// A contiguous `f32` copy of `m` rounded to bf16 with `k` padded to `k'` and
/// the two steps of every pair swapped, laid out along `m`'s own unit-stride
/// axis (row-major otherwise), into `out`; returns the copy as a [`MatRef`].
///
/// # Safety
/// `m` must be valid over its shape and strides; the result points into `out`.
pub(crate) unsafe fn swapped_copy(m: MatRef, depth: Depth, out: &mut Vec<f32>) -> MatRef {
    let (rows, cols) = match depth {
        Depth::Columns => (m.rows, padded_depth(m.cols)),
        Depth::Rows => (padded_depth(m.rows), m.cols),
    };
    let column_major = m.rs == 1 && m.cs != 1;
    // Every element is written below, padding included.
    ensure_len(out, rows * cols);
    let (rs, cs) = if column_major { (1, rows) } else { (cols, 1) };
    // The step each copied step comes from: 2p ↔ 2p + 1.
    let partner = |x: usize| x ^ 1;
    // The copy's lines (its columns if column-major, else its rows), on rayon
    // for a large operand; each line is written by one closure call.
    let (lines, len) = if column_major {
        (cols, rows)
    } else {
        (rows, cols)
    };
    for_chunks(&mut out[..lines * len], len, lines * len, |l, line| {
        let matrix = m; // the whole matrix (Sync), not its pointer field
        if column_major {
            let j = l;
            match depth {
                // Column j of the copy is column j of m, its pairs swapped.
                // SAFETY: column j of m, all its rows.
                Depth::Rows => {
                    convert::swapped_row(unsafe { column(matrix, j, 0, matrix.rows) }, line)
                }
                // Column j of the copy is column partner(j) of m (or padding).
                Depth::Columns if partner(j) < matrix.cols => {
                    // SAFETY: column partner(j) of matrix.
                    convert::rounded_row(
                        unsafe { column(matrix, partner(j), 0, matrix.rows) },
                        line,
                    )
                }
                Depth::Columns => line.fill(0.0),
            }
        } else {
            let i = l;
            if depth == Depth::Columns && matrix.cs == 1 {
                // SAFETY: row i holds matrix.cols contiguous floats.
                let src = unsafe {
                    std::slice::from_raw_parts(
                        matrix.ptr.offset(i as isize * matrix.rs),
                        matrix.cols,
                    )
                };
                convert::swapped_row(src, line);
            } else if depth == Depth::Rows && matrix.cs == 1 && partner(i) < matrix.rows {
                // SAFETY: as above, for row partner(i).
                let src = unsafe {
                    std::slice::from_raw_parts(
                        matrix.ptr.offset(partner(i) as isize * matrix.rs),
                        matrix.cols,
                    )
                };
                convert::rounded_row(src, line);
            } else {
                for (j, v) in line.iter_mut().enumerate() {
                    let (si, sj) = if depth == Depth::Rows {
                        (partner(i), j)
                    } else {
                        (i, partner(j))
                    };
                    // SAFETY: inside m, or padding.
                    *v = round_to_bf16(unsafe { at_or_zero(matrix, si, sj) });
                }
            }
        }
    });
    MatRef {
        ptr: out.as_ptr(),
        rows,
        cols,
        rs: rs as isize,
        cs: cs as isize,
    }
}

/// The conversion loops over contiguous lines, compiled per instruction set
/// so that the compiler vectorises them for the widest registers.
mod convert {
    use super::super::round::{pair, round_to_bf16};

    crate::cpu::per_isa! {
        /// `out[p] = pair(row[2p], row[2p + 1])`, the last step padded with 0.
        pub(super) fn row_pairs(row: &[f32], out: &mut [u32]) {
            let whole = row.len() / 2;
            for (o, two) in out.iter_mut().zip(row.chunks_exact(2)) {
                *o = pair(two[0], two[1]);
            }
            if row.len() % 2 == 1 {
                out[whole] = pair(row[row.len() - 1], 0.0);
            }
        }
    }

    crate::cpu::per_isa! {
        /// `out[j] = pair(even[j], odd[j])`.
        pub(super) fn interleave_pairs(even: &[f32], odd: &[f32], out: &mut [u32]) {
            for ((o, &e), &d) in out.iter_mut().zip(even).zip(odd) {
                *o = pair(e, d);
            }
        }
    }

    crate::cpu::per_isa! {
        /// `out[2p] = bf16(src[2p + 1])`, `out[2p + 1] = bf16(src[2p])`, zero past `src`.
        pub(super) fn swapped_row(src: &[f32], out: &mut [f32]) {
            for (o, two) in out.chunks_exact_mut(2).zip(src.chunks_exact(2)) {
                o[0] = round_to_bf16(two[1]);
                o[1] = round_to_bf16(two[0]);
            }
            if src.len() % 2 == 1 {
                let last = src.len() - 1;
                out[last] = 0.0;
                out[last + 1] = round_to_bf16(src[last]);
            }
        }
    }

    crate::cpu::per_isa! {
        /// `out[j] = bf16(src[j])`.
        pub(super) fn rounded_row(src: &[f32], out: &mut [f32]) {
            for (o, &s) in out.iter_mut().zip(src) {
                *o = round_to_bf16(s);
            }
        }
    }
}
