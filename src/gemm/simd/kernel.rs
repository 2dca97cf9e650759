//! The register-blocked micro-kernel: an `MR × NR` tile of C from packed slivers of A and B.
//!
//! The vector type is chosen at compile time, because `wide` picks its instructions
//! from the target features the crate is compiled with:
//!
//! | target features | vector      | `MR × NR` | accumulator registers |
//! |-----------------|-------------|-----------|-----------------------|
//! | AVX-512F        | `f32x16`    | 12 × 32   | 24 of 32              |
//! | AVX (+FMA)      | `f32x8`     | 6 × 16    | 12 of 16              |
//! | otherwise       | `f32x4`     | 4 × 8     | 8 of 16               |
//!
//! Each step of the `k` loop loads one row of the B sliver (two vectors), broadcasts
//! `MR` values of the A sliver and issues `2·MR` fused multiply-adds.

/// The SIMD vector the kernel is built from.
#[cfg(target_feature = "avx512f")]
pub(crate) type V = wide::f32x16;
/// The SIMD vector the kernel is built from.
#[cfg(all(not(target_feature = "avx512f"), target_feature = "avx"))]
pub(crate) type V = wide::f32x8;
/// The SIMD vector the kernel is built from.
#[cfg(not(any(target_feature = "avx512f", target_feature = "avx")))]
pub(crate) type V = wide::f32x4;

/// `f32` lanes in [`V`].
pub(crate) const LANES: usize = size_of::<V>() / size_of::<f32>();

/// Rows of C per micro-tile (values of A broadcast per `k` step).
pub const MR: usize = if cfg!(target_feature = "avx512f") {
    12
} else if cfg!(target_feature = "avx") {
    6
} else {
    4
};

/// Columns of C per micro-tile: two vectors.
pub const NR: usize = 2 * LANES;

/// Hints the CPU to bring the `NR` floats at `p` (one tile row) into L1.
#[inline(always)]
unsafe fn prefetch(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: prefetches never fault, whatever the address.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>());
            _mm_prefetch::<_MM_HINT_T0>(p.add(NR - 1).cast::<i8>());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[inline(always)]
unsafe fn load(p: *const f32) -> V {
    // SAFETY: the caller guarantees LANES readable floats at `p`.
    unsafe { p.cast::<V>().read_unaligned() }
}

#[inline(always)]
unsafe fn store(p: *mut f32, v: V) {
    // SAFETY: the caller guarantees LANES writable floats at `p`.
    unsafe { p.cast::<V>().write_unaligned(v) }
}

/// An A sliver as the micro-kernel reads it: value `i` of step `p` (row `i`,
/// column `p` of the tile's rows of A) is at `ptr + p·step + i·row`.
///
/// A packed sliver, and a column-major A read in place, have each step's values
/// side by side (`row = 1`; `step` is `MR` or A's column stride). A row-major A
/// read in place has `step = 1` and `row` its row stride.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ASliver {
    pub ptr: *const f32,
    pub row: isize,
    pub step: isize,
}

/// `C[0..R, 0..W·LANES] ← α·(A_sliver · B_sliver) + β·C` over `kc` steps.
///
/// `a` is an A sliver; `ROW_STRIDED` says whether its `row` is other than 1 (the
/// instance for `row = 1` ignores it, and adds `i` to the address directly). `b`
/// is a packed B sliver (`kc × NR`). The full tile is `R = MR` rows by `W = 2`
/// vectors; edge tiles use exactly the rows (`R < MR`) or the one vector
/// (`W = 1`) they need, with the same arithmetic per element. C's rows are `rsc`
/// floats apart and each row is contiguous. With `β = 0`, C is written without
/// being read.
///
/// # Safety
/// `a` must be readable at every step `p < kc` and row `i < R`, `b` must hold
/// `kc·NR` floats, and C must be a writable `R × W·LANES` tile with row stride
/// `rsc` and unit column stride.
#[inline(always)]
pub(crate) unsafe fn tile<const R: usize, const W: usize, const ROW_STRIDED: bool>(
    kc: usize,
    a: ASliver,
    b: *const f32,
    c: *mut f32,
    rsc: isize,
    alpha: f32,
    beta: f32,
) {
    let c_read: *const f32 = c;
    // Ask for the C tile now, so that its rows arrive during the k loop instead
    // of stalling the stores at the end (C is re-read once per k block).
    for i in 0..R {
        // SAFETY: prefetching is a hint; the addresses are the tile's own rows.
        unsafe { prefetch(c_read.offset(i as isize * rsc)) };
    }
    let mut acc = [[V::splat(0.0); W]; R];
    let (mut ap, mut b) = (a.ptr, b);
    for _ in 0..kc {
        // SAFETY: within the packed slivers, as the caller guarantees.
        unsafe {
            let mut bv = [V::splat(0.0); W];
            for (w, v) in bv.iter_mut().enumerate() {
                *v = load(b.add(w * LANES));
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = if ROW_STRIDED {
                    V::splat(*ap.offset(i as isize * a.row))
                } else {
                    V::splat(*ap.add(i))
                };
                for (acc, &bw) in row.iter_mut().zip(&bv) {
                    *acc = ai.mul_add(bw, *acc);
                }
            }
            ap = ap.offset(a.step);
            b = b.add(NR);
        }
    }
    let va = V::splat(alpha);
    for (i, row) in acc.iter().enumerate() {
        for (w, &v) in row.iter().enumerate() {
            // SAFETY: vector w of row i of the C tile, as the caller guarantees.
            unsafe {
                let ci = c.offset(i as isize * rsc).add(w * LANES);
                if beta == 0.0 {
                    store(ci, v * va);
                } else {
                    store(ci, load(ci).mul_add(V::splat(beta), v * va));
                }
            }
        }
    }
}

/// [`tile`] for `rows ≤ MR` rows, chosen at run time among the exact-size kernels.
///
/// # Safety
/// As [`tile`] with `R = rows`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn tile_rows<const W: usize, const ROW_STRIDED: bool>(
    rows: usize,
    kc: usize,
    a: ASliver,
    b: *const f32,
    c: *mut f32,
    rsc: isize,
    alpha: f32,
    beta: f32,
) {
    macro_rules! dispatch {
        ($($r:literal)*) => {
            match rows {
                // SAFETY (every arm): as the caller guarantees for `rows` rows.
                $($r if $r <= MR => unsafe { tile::<$r, W, ROW_STRIDED>(kc, a, b, c, rsc, alpha, beta) },)*
                _ => unreachable!("a tile has at most MR rows"),
            }
        };
    }
    dispatch!(1 2 3 4 5 6 7 8 9 10 11 12)
}
