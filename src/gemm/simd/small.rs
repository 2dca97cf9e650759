//! Products with very few rows of A (batch-1 inference): no packing.
//!
//! Packing B costs as much as the product when A has a single row, so for
//! `m ≤ SMALL_M` each row of C is computed straight from the rows of B (which must
//! be contiguous): `C[i, :] = α Σ_p A[i, p]·B[p, :] + β C[i, :]`.
//!
//! The arithmetic is the packed kernel's, step for step: `k` in blocks of
//! [`super::depth_block`], each block accumulated from zero by fused multiply-adds in `p`
//! order, then `C ← fma(C, β, α·acc)` (β = 1 after the first block). So a row gives
//! the same bits whether it is computed here or in a larger batch.

use rayon::prelude::*;

use super::depth_block;
use super::kernel::{LANES, V};
use crate::gemm::{Epilogue, MatMut, MatRef, Parallelism};

/// Largest `m` handled here.
pub(crate) const SMALL_M: usize = 4;

/// Vectors of C per column block (8 × 16 = 128 columns with AVX-512).
const VECTORS: usize = 8;
const BLOCK: usize = VECTORS * LANES;

/// Column blocks below this many multiply-adds each are not worth a thread.
const PARALLEL_MACS: usize = 1 << 17;

/// `C ← α·A·B + β·C` for `m ≤ SMALL_M`, with `b.cs == 1`; then `epilogue` on
/// each row's block of columns once it is complete.
///
/// # Safety
/// As [`super::loops`].
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: MatRef,
    b: MatRef,
    beta: f32,
    c: MatMut,
    par: Parallelism,
    epilogue: Option<&Epilogue<'_>>,
) {
    let blocks = n.div_ceil(BLOCK);
    // SAFETY: each block writes its own columns of C.
    let body = |blk: usize| unsafe {
        column_block(m, n, k, blk * BLOCK, alpha, a, b, beta, c, epilogue);
    };
    if par.threads() > 1 && worth_splitting(m, n, k) {
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

/// Whether an `m × k · k × n` product (`m ≤ SMALL_M`) is large enough to split
/// over threads (when there are several).
fn worth_splitting(m: usize, n: usize, k: usize) -> bool {
    n.div_ceil(BLOCK) > 1 && m * n * k >= PARALLEL_MACS * 2
}

#[allow(clippy::too_many_arguments)]
unsafe fn column_block(
    m: usize,
    n: usize,
    k: usize,
    j0: usize,
    alpha: f32,
    a: MatRef,
    b: MatRef,
    beta: f32,
    c: MatMut,
    epilogue: Option<&Epilogue<'_>>,
) {
    let width = BLOCK.min(n - j0);
    let kb = depth_block(k);
    let full = width / LANES;
    let va = V::splat(alpha);
    for i in 0..m {
        for pc in (0..k).step_by(kb) {
            let kc = kb.min(k - pc);
            let beta = if pc == 0 { beta } else { 1.0 };
            let mut acc = [V::splat(0.0); VECTORS];
            let mut tail = [0.0f32; LANES];
            for p in pc..pc + kc {
                // SAFETY: (i, p) and row p of B, columns j0..j0 + width, are inside the operands.
                unsafe {
                    let aip = *a.ptr.offset(i as isize * a.rs + p as isize * a.cs);
                    let av = V::splat(aip);
                    let row = b.ptr.offset(p as isize * b.rs + j0 as isize);
                    for (v, acc) in acc.iter_mut().enumerate().take(full) {
                        *acc = av.mul_add(row.add(v * LANES).cast::<V>().read_unaligned(), *acc);
                    }
                    for (j, t) in tail.iter_mut().enumerate().take(width - full * LANES) {
                        *t = aip.mul_add(*row.add(full * LANES + j), *t);
                    }
                }
            }
            // SAFETY: row i of C, columns j0..j0 + width.
            unsafe {
                let ci = c.ptr.offset(i as isize * c.rs + j0 as isize * c.cs);
                for (v, acc) in acc.iter().enumerate().take(full) {
                    let ab = (*acc * va).to_array();
                    for (l, &x) in ab.iter().enumerate() {
                        let p = ci.offset((v * LANES + l) as isize * c.cs);
                        *p = if beta == 0.0 {
                            x
                        } else {
                            (*p).mul_add(beta, x)
                        };
                    }
                }
                for (j, &t) in tail.iter().enumerate().take(width - full * LANES) {
                    let x = alpha * t;
                    let p = ci.offset((full * LANES + j) as isize * c.cs);
                    *p = if beta == 0.0 {
                        x
                    } else {
                        (*p).mul_add(beta, x)
                    };
                }
            }
        }
        if let Some(e) = epilogue {
            // SAFETY: row i of C, columns j0..j0 + width.
            unsafe { e.apply_block(c.offset(i, j0), 1, width, j0) };
        }
    }
}
