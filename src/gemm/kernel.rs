//! The micro-kernel, written once for any instruction set: the [`Simd`] trait
//! names the few vector operations it needs, and the [`Kernel`] trait gives each
//! instruction set its tile (`MR × NR`) and its compiled entry points.
//!
//! An instruction set is one file (`avx512.rs`, `avx2.rs`, `portable.rs`): an
//! `impl Simd` over its vector type and one [`kernel_entry_points!`] line, which
//! compiles the generic bodies (loops 2 and 1, packing, the few-rows kernel)
//! inside `#[target_feature]` functions of that instruction set. The bodies are
//! `#[inline(always)]`, so the compiler builds each of them once per instruction
//! set, with that set's registers, and nothing on the hot path is a call
//! across instruction sets.
//!
//! The micro-kernel ([`tile`]) computes an `R × W·LANES` tile of C: each step of
//! the `k` loop loads one row of the B sliver (`W` vectors), broadcasts `R`
//! values of the A sliver and issues `R·W` multiply-adds into `R·W` accumulator
//! registers.

use super::MatMut;
use super::MatRef;
use super::epilogue::Epilogue;
use super::pack::Packing;

/// The vector operations the kernels use, for one instruction set.
///
/// # Safety
/// An implementation's functions may only run on a CPU with its instruction
/// set; the crate calls them only from its [`Kernel`] entry points, which
/// [`crate::cpu`] selects only when the CPU has it.
pub(crate) unsafe trait Simd: Copy + Send + Sync + 'static {
    /// A vector of [`Simd::LANES`] `f32`.
    type V: Copy;
    /// `f32` lanes per vector.
    const LANES: usize;

    /// Every lane `x`.
    unsafe fn splat(x: f32) -> Self::V;
    /// `LANES` floats from `p` (any alignment).
    unsafe fn load(p: *const f32) -> Self::V;
    /// `LANES` floats to `p` (any alignment).
    unsafe fn store(p: *mut f32, v: Self::V);
    /// `a·b + c` per lane: one rounding where the instruction set has FMA.
    unsafe fn mul_add(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `a·b` per lane.
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    /// `a·b + c` for one float, rounded as [`Simd::mul_add`] rounds each lane,
    /// so that the scalar edges of a product give the bits the vectors would.
    unsafe fn mul_add_one(a: f32, b: f32, c: f32) -> f32;

    /// The `count ≤ 8` lines of 8 floats at `src` (`line_stride` apart) as the
    /// columns of an 8 × 8 block: `out[q][r]` is value `q` of line `r`, and 0
    /// for `r ≥ count`. Packing uses it to copy a transposed operand. This
    /// version goes through `wide`'s `f32x8::transpose`.
    ///
    /// # Safety
    /// `count` lines of 8 readable floats at `src`.
    #[inline(always)]
    unsafe fn transpose8(src: *const f32, line_stride: isize, count: usize) -> [[f32; 8]; 8] {
        let mut rows = [wide::f32x8::ZERO; 8];
        for (r, row) in rows.iter_mut().enumerate().take(count) {
            // SAFETY: line r holds 8 readable floats, as the caller guarantees.
            *row = unsafe {
                src.offset(r as isize * line_stride)
                    .cast::<wide::f32x8>()
                    .read_unaligned()
            };
        }
        wide::f32x8::transpose(rows).map(|c| c.to_array())
    }
}

/// An instruction set's tile and its compiled entry points (made by [`kernel_entry_points!`]).
///
/// # Safety
/// As [`Simd`]: the entry points may only run on a CPU with the instruction set.
pub(crate) unsafe trait Kernel: Simd {
    /// Rows of C per tile (values of A broadcast per `k` step).
    const MR: usize;
    /// Columns of C per tile: two vectors.
    const NR: usize = 2 * Self::LANES;
    /// Rows of A per packed block (loop 3): `MC·KC` floats sit in L2.
    const MC: usize = Self::MR * 16;
    /// Columns of B per packed panel (loop 5): `KC·NC` floats sit in L3.
    const NC: usize = Self::NR * 128;

    /// Loops 2 and 1 over one block: see [`super::loops::macro_kernel`].
    ///
    /// # Safety
    /// As [`super::loops::macro_kernel`].
    unsafe fn macro_kernel(block: &MacroBlock<'_>);

    /// Packs an `mc × kc` block of A: see [`super::pack::pack_a`].
    ///
    /// # Safety
    /// As [`super::pack::pack_a`].
    unsafe fn pack_a(a: MatRef, mc: usize, kc: usize, out: &mut [f32], packing: Packing);

    /// Packs sliver `t` of a `kc × nc` panel of B: see [`super::pack::pack_b_sliver`].
    ///
    /// # Safety
    /// As [`super::pack::pack_b_sliver`].
    unsafe fn pack_b_sliver(
        b: MatRef,
        kc: usize,
        nc: usize,
        t: usize,
        sliver: &mut [f32],
        packing: Packing,
    );

    /// One column block of a few-rows product: see [`super::small::column_block`].
    ///
    /// # Safety
    /// As [`super::small::column_block`].
    unsafe fn small_block(block: &SmallBlock<'_>, j0: usize);
}

/// Compiles the generic kernel bodies for one instruction set and implements
/// [`Kernel`] with them: `kernel_entry_points!(Type, MR, "feature,list")`, or
/// without the feature list for a kernel compiled for the build's own target.
macro_rules! kernel_entry_points {
    ($isa:ty, $mr:expr $(, $features:literal)?) => {
        // SAFETY: the entry points run `$isa`'s operations, which the dispatcher
        // selects only on CPUs that have its features.
        unsafe impl $crate::gemm::kernel::Kernel for $isa {
            const MR: usize = $mr;

            unsafe fn macro_kernel(block: &$crate::gemm::kernel::MacroBlock<'_>) {
                $(#[target_feature(enable = $features)])?
                unsafe fn compiled(block: &$crate::gemm::kernel::MacroBlock<'_>) {
                    // SAFETY: as the caller guarantees.
                    unsafe { $crate::gemm::loops::macro_kernel::<$isa>(block) }
                }
                // SAFETY: as the caller guarantees; the CPU has the features.
                unsafe { compiled(block) }
            }

            unsafe fn pack_a(
                a: $crate::gemm::MatRef,
                mc: usize,
                kc: usize,
                out: &mut [f32],
                packing: $crate::gemm::pack::Packing,
            ) {
                $(#[target_feature(enable = $features)])?
                unsafe fn compiled(
                    a: $crate::gemm::MatRef,
                    mc: usize,
                    kc: usize,
                    out: &mut [f32],
                    packing: $crate::gemm::pack::Packing,
                ) {
                    // SAFETY: as the caller guarantees.
                    unsafe { $crate::gemm::pack::pack_a::<$isa>(a, mc, kc, out, packing) }
                }
                // SAFETY: as the caller guarantees; the CPU has the features.
                unsafe { compiled(a, mc, kc, out, packing) }
            }

            unsafe fn pack_b_sliver(
                b: $crate::gemm::MatRef,
                kc: usize,
                nc: usize,
                t: usize,
                sliver: &mut [f32],
                packing: $crate::gemm::pack::Packing,
            ) {
                $(#[target_feature(enable = $features)])?
                unsafe fn compiled(
                    b: $crate::gemm::MatRef,
                    kc: usize,
                    nc: usize,
                    t: usize,
                    sliver: &mut [f32],
                    packing: $crate::gemm::pack::Packing,
                ) {
                    // SAFETY: as the caller guarantees.
                    unsafe {
                        $crate::gemm::pack::pack_b_sliver::<$isa>(b, kc, nc, t, sliver, packing)
                    }
                }
                // SAFETY: as the caller guarantees; the CPU has the features.
                unsafe { compiled(b, kc, nc, t, sliver, packing) }
            }

            unsafe fn small_block(block: &$crate::gemm::kernel::SmallBlock<'_>, j0: usize) {
                $(#[target_feature(enable = $features)])?
                unsafe fn compiled(block: &$crate::gemm::kernel::SmallBlock<'_>, j0: usize) {
                    // SAFETY: as the caller guarantees.
                    unsafe { $crate::gemm::small::column_block::<$isa>(block, j0) }
                }
                // SAFETY: as the caller guarantees; the CPU has the features.
                unsafe { compiled(block, j0) }
            }
        }
    };
}
pub(crate) use kernel_entry_points;

/// The largest tile of any instruction set (`MR·NR` floats): the size of the
/// local buffer an edge tile is computed in.
pub(crate) const MAX_TILE: usize = 12 * 32;

/// A few-rows product, as every column block of it sees it.
pub(crate) struct SmallBlock<'a> {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub alpha: f32,
    pub a: MatRef,
    pub b: MatRef,
    pub beta: f32,
    pub c: MatMut,
    pub epilogue: Option<&'a Epilogue<'a>>,
}

/// One block of loops 2 and 1: an `mc × kc` block of A (as slivers) times the
/// B slivers `slivers` of a packed `kc × nc` panel, into the `mc × nc` block `c`.
pub(crate) struct MacroBlock<'a> {
    pub mc: usize,
    pub nc: usize,
    pub kc: usize,
    /// The B slivers (of `NR` columns) this task computes.
    pub slivers: std::ops::Range<usize>,
    pub alpha: f32,
    pub a: ASlivers,
    /// The packed B panel at this block's depth (`kc·NR` floats per sliver).
    pub packed_b: &'a [f32],
    pub beta: f32,
    pub c: MatMut,
    /// The epilogue to apply to each tile, and the block's first column in C.
    pub epilogue: Option<(&'a Epilogue<'a>, usize)>,
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

/// Where loop 1 finds the A slivers of a block: packed, or in A itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ASlivers {
    /// The first sliver (rows `0..MR` of the block).
    pub first: ASliver,
    /// Floats from one sliver to the next.
    pub next: isize,
}

impl ASlivers {
    /// A block packed by [`super::pack::pack_a`] for tiles of `mr` rows at depth `kc`.
    pub(crate) fn packed(packed_a: &[f32], mr: usize, kc: usize) -> Self {
        let (ptr, step) = (packed_a.as_ptr(), mr as isize);
        let first = ASliver { ptr, row: 1, step };
        ASlivers {
            first,
            next: (mr * kc) as isize,
        }
    }

    /// A block of A read where it is, for tiles of `mr` rows.
    pub(crate) fn in_place(a: MatRef, mr: usize) -> Self {
        let first = ASliver {
            ptr: a.ptr,
            row: a.rs,
            step: a.cs,
        };
        ASlivers {
            first,
            next: mr as isize * a.rs,
        }
    }

    /// Sliver `ir` (rows `ir·MR..`).
    ///
    /// # Safety
    /// The sliver must lie inside the block.
    #[inline(always)]
    pub(crate) unsafe fn sliver(self, ir: usize) -> ASliver {
        ASliver {
            // SAFETY: inside the block, as the caller guarantees.
            ptr: unsafe { self.first.ptr.offset(ir as isize * self.next) },
            ..self.first
        }
    }
}

/// Hints the CPU to bring the `len` floats at `p` (one tile row) into L1.
#[inline(always)]
unsafe fn prefetch(p: *const f32, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: prefetches never fault, whatever the address.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>());
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(len - 1).cast::<i8>());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, len);
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
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn tile<K: Kernel, const R: usize, const W: usize, const ROW_STRIDED: bool>(
    kc: usize,
    a: ASliver,
    b: *const f32,
    c: *mut f32,
    rsc: isize,
    alpha: f32,
    beta: f32,
) {
    // SAFETY (whole body): every address is inside the slivers and the tile, as
    // the caller guarantees; the CPU runs K's instructions (K's entry points).
    unsafe {
        let c_read: *const f32 = c;
        // Ask for the C tile now, so that its rows arrive during the k loop
        // instead of stalling the stores at the end (C is re-read once per k block).
        for i in 0..R {
            prefetch(c_read.wrapping_offset(i as isize * rsc), W * K::LANES);
        }
        let zero = K::splat(0.0);
        let mut acc = [[zero; W]; R];
        // Two steps per turn of the loop, so that its counter and pointer
        // updates are spread over twice the multiply-adds (the order of the
        // steps, and so every sum, is unchanged).
        let (mut ap, mut b) = (a.ptr, b);
        for _ in 0..kc / 2 {
            step::<K, R, W, ROW_STRIDED>(&mut acc, ap, a.row, b);
            step::<K, R, W, ROW_STRIDED>(&mut acc, ap.offset(a.step), a.row, b.add(K::NR));
            ap = ap.offset(2 * a.step);
            b = b.add(2 * K::NR);
        }
        if kc % 2 == 1 {
            step::<K, R, W, ROW_STRIDED>(&mut acc, ap, a.row, b);
        }
        let va = K::splat(alpha);
        for (i, row) in acc.iter().enumerate() {
            for (w, &v) in row.iter().enumerate() {
                let ci = c.offset(i as isize * rsc).add(w * K::LANES);
                if beta == 0.0 {
                    K::store(ci, K::mul(v, va));
                } else {
                    K::store(ci, K::mul_add(K::load(ci), K::splat(beta), K::mul(v, va)));
                }
            }
        }
    }
}

/// One step of `k` in [`tile`]: `acc[i][w] += A[i, p]·B[p, w-th vector]`, with
/// `ap` at step `p` of the A sliver (rows `row` apart) and `b` at row `p` of the
/// B sliver.
///
/// A function, not a closure: a closure inside an `#[inline(always)]` body is
/// compiled on its own, without the caller's target features, and its vector
/// operations then become calls.
///
/// # Safety
/// As [`tile`], for the one step.
#[inline(always)]
unsafe fn step<K: Kernel, const R: usize, const W: usize, const ROW_STRIDED: bool>(
    acc: &mut [[K::V; W]; R],
    ap: *const f32,
    row: isize,
    b: *const f32,
) {
    // SAFETY: inside the slivers, as the caller guarantees; the CPU runs K.
    unsafe {
        let mut bv = [K::splat(0.0); W];
        for (w, v) in bv.iter_mut().enumerate() {
            *v = K::load(b.add(w * K::LANES));
        }
        for (i, acc_row) in acc.iter_mut().enumerate() {
            let ai = if ROW_STRIDED {
                K::splat(*ap.offset(i as isize * row))
            } else {
                K::splat(*ap.add(i))
            };
            for (acc, &bw) in acc_row.iter_mut().zip(&bv) {
                *acc = K::mul_add(ai, bw, *acc);
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
pub(crate) unsafe fn tile_rows<K: Kernel, const W: usize, const ROW_STRIDED: bool>(
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
                $($r if $r <= K::MR => unsafe {
                    tile::<K, $r, W, ROW_STRIDED>(kc, a, b, c, rsc, alpha, beta)
                },)*
                _ => unreachable!("a tile has at most MR rows"),
            }
        };
    }
    dispatch!(1 2 3 4 5 6 7 8 9 10 11 12)
}
