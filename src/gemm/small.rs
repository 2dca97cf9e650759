//! Products with very few rows of A (batch-1 inference): no packing.
//!
//! Packing B costs as much as the product when A has a single row, so for
//! `m ≤ SMALL_M` each row of C is computed straight from the rows of B (which must
//! be contiguous): `C[i, :] = α Σ_p A[i, p]·B[p, :] + β C[i, :]`.
//!
//! The arithmetic is the packed kernel's, step for step: `k` in blocks of
//! [`depth_block`], each block accumulated from zero by fused multiply-adds in `p`
//! order, then `C ← fma(C, β, α·acc)` (β = 1 after the first block). So a row gives
//! the same bits whether it is computed here or in a larger batch.

use rayon::prelude::*;

use super::Parallelism;
use super::kernel::{Kernel, SmallBlock};
use super::loops::depth_block;

/// Largest `m` handled here.
pub(crate) const SMALL_M: usize = 4;

/// Vectors of C per column block (8 × 16 = 128 columns with AVX-512).
const VECTORS: usize = 8;

/// Column blocks below this many multiply-adds each are not worth a thread.
const PARALLEL_MACS: usize = 1 << 17;

/// `C ← α·A·B + β·C` for `m ≤ SMALL_M`, with `b.cs == 1`; then `epilogue` on
/// each row's block of columns once it is complete.
///
/// # Safety
/// As [`super::loops::packed_product`].
pub(crate) unsafe fn few_rows_product<K: Kernel>(product: &SmallBlock<'_>, par: Parallelism) {
    let width = VECTORS * K::LANES;
    let (m, n, k) = (product.m, product.n, product.k);
    let blocks = n.div_ceil(width);
    // SAFETY: each block writes its own columns of C.
    let body = |blk: usize| unsafe { K::small_block(product, blk * width) };
    if par.threads() > 1 && worth_splitting(m, n, k, width) {
        // One contiguous run of column blocks per thread, the same run every call,
        // so that each thread's share of B stays in its core's cache.
        let runs = par.threads().min(blocks);
        (0..runs).into_par_iter().for_each(|r| {
            (r * blocks / runs..(r + 1) * blocks / runs).for_each(body);
        });
    } else {
        (0..blocks).for_each(body);
    }
}

/// Whether an `m × k · k × n` product (`m ≤ SMALL_M`) in column blocks
/// `width` wide is large enough to split over threads (when there are several).
fn worth_splitting(m: usize, n: usize, k: usize, width: usize) -> bool {
    n.div_ceil(width) > 1 && m * n * k >= PARALLEL_MACS * 2
}

/// The columns `j0..j0 + VECTORS·LANES` (or to the end) of every row of the
/// product. Compiled per instruction set in [`Kernel::small_block`].
///
/// # Safety
/// As [`gemm`]; `j0 < n`; the CPU must run `K`.
#[inline(always)]
pub(crate) unsafe fn column_block<K: Kernel>(p: &SmallBlock<'_>, j0: usize) {
    let SmallBlock {
        m,
        n,
        k,
        alpha,
        a,
        b,
        beta,
        c,
        epilogue,
    } = *p;
    let lanes = K::LANES;
    let width = (VECTORS * lanes).min(n - j0);
    let kb = depth_block(k);
    let full = width / lanes;
    // SAFETY (whole body): every address is inside the operands, as the caller
    // guarantees; the CPU runs K.
    unsafe {
        let va = K::splat(alpha);
        for i in 0..m {
            for pc in (0..k).step_by(kb) {
                let kc = kb.min(k - pc);
                let beta = if pc == 0 { beta } else { 1.0 };
                let mut acc = [K::splat(0.0); VECTORS];
                let mut tail = [0.0f32; 16];
                let a_row = a.ptr.offset(i as isize * a.rs);
                let b_cols = b.ptr.add(j0);
                let (steps, rest) = (pc..pc + kc, width - full * lanes);
                // A whole block gets its own copy of the loop, with the vector
                // count a constant: the accumulators then live in registers.
                if full == VECTORS {
                    accumulate::<K>(
                        &mut acc, &mut tail, a_row, a.cs, b_cols, b.rs, steps, VECTORS, 0,
                    );
                } else {
                    accumulate::<K>(
                        &mut acc, &mut tail, a_row, a.cs, b_cols, b.rs, steps, full, rest,
                    );
                }
                let ci = c.ptr.offset(i as isize * c.rs + j0 as isize * c.cs);
                let mut ab = [0.0f32; 16];
                for (v, acc) in acc.iter().enumerate().take(full) {
                    K::store(ab.as_mut_ptr(), K::mul(*acc, va));
                    for (l, &x) in ab.iter().enumerate().take(lanes) {
                        let p = ci.offset((v * lanes + l) as isize * c.cs);
                        *p = if beta == 0.0 {
                            x
                        } else {
                            K::mul_add_one(*p, beta, x)
                        };
                    }
                }
                for (j, &t) in tail.iter().enumerate().take(width - full * lanes) {
                    let x = alpha * t;
                    let p = ci.offset((full * lanes + j) as isize * c.cs);
                    *p = if beta == 0.0 {
                        x
                    } else {
                        K::mul_add_one(*p, beta, x)
                    };
                }
            }
            if let Some(e) = epilogue {
                e.apply_block(c.offset(i, j0), 1, width, j0);
            }
        }
    }
}

/// `acc[v] += A[i, p]·B[p, v·LANES..]` for the first `full` vectors of the
/// block, and `tail[j] += A[i, p]·B[p, full·LANES + j]` for the `rest` columns
/// after them, for every step `p` of `steps` in order. `a_row` is row `i` of A
/// (steps `a_cs` apart), `b` the block's first column of B (rows `b_rs` apart).
///
/// # Safety
/// Every addressed value must be readable; `full ≤ VECTORS`, `rest < LANES`;
/// the CPU must run `K`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn accumulate<K: Kernel>(
    acc: &mut [K::V; VECTORS],
    tail: &mut [f32; 16],
    a_row: *const f32,
    a_cs: isize,
    b: *const f32,
    b_rs: isize,
    steps: std::ops::Range<usize>,
    full: usize,
    rest: usize,
) {
    // SAFETY: as the caller guarantees.
    unsafe {
        for p in steps {
            let aip = *a_row.offset(p as isize * a_cs);
            let av = K::splat(aip);
            let row = b.offset(p as isize * b_rs);
            for (v, acc) in acc.iter_mut().enumerate().take(full) {
                *acc = K::mul_add(av, K::load(row.add(v * K::LANES)), *acc);
            }
            for (j, t) in tail.iter_mut().enumerate().take(rest) {
                *t = K::mul_add_one(aip, *row.add(full * K::LANES + j), *t);
            }
        }
    }
}
