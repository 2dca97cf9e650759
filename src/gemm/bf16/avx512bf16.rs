//! The bf16 product on `VDPBF16PS` (AVX512-BF16): 12 × 32 tiles, two steps of
//! `k` per instruction.
//!
//! A is converted once per product ([`super::operands::convert_a`]): a
//! row-major A as rows of pairs, read in place, any other packed in slivers of
//! 12 rows, whose values the tile broadcasts from one pointer; B in slivers of 32 columns ([`super::operands::pack_b`]), or
//! once for all calls ([`super::PackedWeights`]). The loops are those of the
//! `f32` kernel:
//!
//! ```text
//! for each task (a block of rows × a run of B slivers), on rayon:
//!   for each block of k (the f32 kernel's blocks, so the sums are the same)
//!     for each B sliver of the run              (kc/2 × 32 pairs, in L1)
//!       for each 12-row sliver of the block     (rows of A, in L2)
//!         tile: 24 accumulators, per pair of steps 2 loads of B,
//!               12 broadcasts of A, 24 VDPBF16PS
//! ```
//!
//! Every element is summed from zero over each block of `k` in the same order
//! whatever the thread count, then added to C; so the result is bit-identical
//! for any thread count, and equal to the emulation's.

use std::arch::x86_64::{
    __m512, __m512bh, __m512i, _mm512_add_ps, _mm512_dpbf16_ps, _mm512_loadu_ps,
    _mm512_loadu_si512, _mm512_set1_epi32, _mm512_setzero_ps, _mm512_storeu_ps,
};

use super::operands::{NR, padded_depth, pair_blocks};
use crate::gemm::loops::{RowBlocks, run_tasks};
use crate::gemm::{Epilogue, MatMut, Parallelism};

use super::operands::{ALayout, MR};
/// Rows per task block (its A rows stay in L2 across the B slivers).
const MC: usize = MR * 16;

/// A bf16 product as the tasks see it.
pub(crate) struct Product<'a> {
    /// A converted by [`super::operands::convert_a`], laid out as `a_layout` says.
    pub a: &'a [u32],
    pub a_layout: ALayout,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// B packed by [`super::operands::pack_b`].
    pub b: &'a [u32],
    pub accumulate: bool,
    pub c: MatMut,
    pub epilogue: Option<&'a Epilogue<'a>>,
}

/// How a tile finds A's values: pair `p` of its row `i` at `ptr + offset(i, p)`.
trait ARead {
    /// `ptr` for row `i` (the first of a tile, a multiple of [`MR`]) at pair `first`.
    ///
    /// # Safety
    /// Row `i` and pair `first` must lie inside A.
    unsafe fn at(p: &Product<'_>, i: usize, first: usize) -> ARef;
}

/// A tile's view of A: its first value and, for rows of pairs, the row stride.
#[derive(Clone, Copy)]
struct ARef {
    ptr: *const u32,
    stride: usize,
}

/// [`ALayout::Slivers`]: the tile's rows' values of a pair side by side.
struct Slivers;
/// [`ALayout::Rows`]: each row's pairs side by side.
struct Rows;

impl ARead for Slivers {
    #[inline(always)]
    unsafe fn at(p: &Product<'_>, i: usize, first: usize) -> ARef {
        let ALayout::Slivers { sliver } = p.a_layout else {
            unreachable!("slivers")
        };
        // SAFETY: inside A, as the caller guarantees.
        let ptr = unsafe { p.a.as_ptr().add(i / MR * sliver + first * MR) };
        ARef { ptr, stride: 0 }
    }
}

impl ARead for Rows {
    #[inline(always)]
    unsafe fn at(p: &Product<'_>, i: usize, first: usize) -> ARef {
        let ALayout::Rows { stride } = p.a_layout else {
            unreachable!("rows")
        };
        // SAFETY: inside A, as the caller guarantees.
        let ptr = unsafe { p.a.as_ptr().add(i * stride + first) };
        ARef { ptr, stride }
    }
}

impl ARef {
    /// Pair `p` of row `i`.
    ///
    /// # Safety
    /// Inside A.
    #[inline(always)]
    unsafe fn get<const SLIVERS: bool>(self, i: usize, p: usize) -> u32 {
        // SAFETY: as the caller guarantees.
        unsafe {
            if SLIVERS {
                *self.ptr.add(p * MR + i)
            } else {
                *self.ptr.add(i * self.stride + p)
            }
        }
    }
}

/// `C ← A·B` (or `C ← C + A·B`), then the epilogue, on the threads `par` allows.
///
/// # Safety
/// The CPU must have AVX-512F and AVX512-BF16; `c` must be a writable `m × n`
/// matrix that aliases nothing else; the operands must match the shapes.
pub(crate) unsafe fn product(p: &Product<'_>, par: Parallelism) {
    let threads = par.threads();
    let rows = RowBlocks::with_tile(p.m, MR, MC, threads);
    let slivers = p.n.div_ceil(NR);
    let parts = if rows.count() < threads {
        threads.div_ceil(rows.count()).min(slivers)
    } else {
        1
    };
    let task = |t: usize| {
        let (i0, mc) = rows.block(t / parts);
        let part = t % parts;
        let run = (part * slivers / parts)..((part + 1) * slivers / parts);
        // SAFETY: each task writes its own block of C; the CPU has the features.
        unsafe {
            match p.a_layout {
                ALayout::Slivers { .. } => block::<Slivers, true>(p, i0, mc, run),
                ALayout::Rows { .. } => block::<Rows, false>(p, i0, mc, run),
            }
        };
    };
    run_tasks(par, rows.count() * parts, task);
}

/// Rows `i0..i0 + mc` of C over the B slivers `run`, every block of `k`.
///
/// # Safety
/// As [`product`], for this block of C.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn block<A: ARead, const SLIVERS: bool>(
    p: &Product<'_>,
    i0: usize,
    mc: usize,
    run: std::ops::Range<usize>,
) {
    let slivers = p.n.div_ceil(NR);
    let total = padded_depth(p.k) / 2;
    for (q, (first, pairs)) in pair_blocks(p.k).enumerate() {
        let last = first + pairs == total;
        let panel = &p.b[first * slivers * NR..(first + pairs) * slivers * NR];
        let add = p.accumulate || q > 0;
        // A few rows (batch-1 inference): several slivers per tile, so that
        // enough independent sums are in flight to hide the latency.
        let group = match mc {
            1 | 2 => 4,
            3 | 4 => 2,
            _ => 1,
        };
        let mut s = run.start;
        while s < run.end {
            if group > 1 && s + group <= run.end && (s + group) * NR <= p.n && p.c.cs == 1 {
                // SAFETY: rows i0..i0 + mc and the group's full slivers lie
                // inside the operands, as the caller guarantees.
                unsafe {
                    let a = A::at(p, i0, first);
                    let b = panel[s * pairs * NR..].as_ptr();
                    let c = p.c.offset(i0, s * NR);
                    few_rows::<SLIVERS>(mc, pairs, a, b, c, add);
                    if last && let Some(e) = p.epilogue {
                        e.apply_block(c, mc, group * NR, s * NR);
                    }
                }
                s += group;
                continue;
            }
            let b = panel[s * pairs * NR..].as_ptr();
            let (j0, nr) = (s * NR, NR.min(p.n - s * NR));
            for r0 in (0..mc).step_by(MR) {
                let mr = MR.min(mc - r0);
                let i = i0 + r0;
                // SAFETY: rows i..i + mr of A and C and the sliver's columns
                // lie inside the operands, as the caller guarantees.
                unsafe {
                    let a = A::at(p, i, first);
                    let c = p.c.offset(i, j0);
                    tile_rows::<SLIVERS>(mr, pairs, a, b, c, nr, add);
                    if last && let Some(e) = p.epilogue {
                        e.apply_block(c, mr, nr, j0);
                    }
                }
            }
            s += 1;
        }
    }
}

/// [`wide_tile`] for `rows ≤ 4` rows: 4 slivers for 1 or 2 rows, 2 for 3 or 4.
///
/// # Safety
/// As [`wide_tile`].
#[inline(always)]
unsafe fn few_rows<const SLIVERS: bool>(
    rows: usize,
    pairs: usize,
    a: ARef,
    b: *const u32,
    c: MatMut,
    add: bool,
) {
    // SAFETY (every arm): as the caller guarantees.
    unsafe {
        match rows {
            1 => wide_tile::<1, 4, SLIVERS>(pairs, a, b, c, add),
            2 => wide_tile::<2, 4, SLIVERS>(pairs, a, b, c, add),
            3 => wide_tile::<3, 2, SLIVERS>(pairs, a, b, c, add),
            4 => wide_tile::<4, 2, SLIVERS>(pairs, a, b, c, add),
            _ => unreachable!("few_rows takes at most 4 rows"),
        }
    }
}

/// `C[0..R, 0..S·NR] ← (C +) A_rows · (S consecutive B slivers)`: [`tile`]
/// over several slivers at once, each element summed in the same order.
///
/// # Safety
/// As [`tile`], with `S` full slivers of `pairs` lines each from `b`, and C
/// row-major over `R × S·NR`.
#[inline(always)]
unsafe fn wide_tile<const R: usize, const S: usize, const SLIVERS: bool>(
    pairs: usize,
    a: ARef,
    b: *const u32,
    c: MatMut,
    add: bool,
) {
    // SAFETY (whole body): inside the operands, as the caller guarantees.
    unsafe {
        let mut acc = [[[_mm512_setzero_ps(); 2]; S]; R];
        let sliver = pairs * NR;
        for p in 0..pairs {
            let mut bv: [[__m512bh; 2]; S] = std::mem::zeroed();
            for (t, v) in bv.iter_mut().enumerate() {
                let line = b.add(t * sliver + p * NR);
                v[0] = bh(_mm512_loadu_si512(line.cast()));
                v[1] = bh(_mm512_loadu_si512(line.add(16).cast()));
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = a.get::<SLIVERS>(i, p);
                let av: __m512bh = bh(_mm512_set1_epi32(ai as i32));
                for (t, pair) in row.iter_mut().enumerate() {
                    pair[0] = _mm512_dpbf16_ps(pair[0], av, bv[t][0]);
                    pair[1] = _mm512_dpbf16_ps(pair[1], av, bv[t][1]);
                }
            }
        }
        for (i, row) in acc.iter().enumerate() {
            let ci = c.ptr.offset(i as isize * c.rs);
            for (t, pair) in row.iter().enumerate() {
                for (w, &v) in pair.iter().enumerate() {
                    let cw = ci.add(t * NR + 16 * w);
                    let sum: __m512 = if add {
                        _mm512_add_ps(_mm512_loadu_ps(cw), v)
                    } else {
                        v
                    };
                    _mm512_storeu_ps(cw, sum);
                }
            }
        }
    }
}

/// 32 bf16 values as `VDPBF16PS` takes them, from 16 pairs.
#[inline(always)]
fn bh(v: __m512i) -> __m512bh {
    // SAFETY: both are 64 bytes of plain bits.
    unsafe { std::mem::transmute::<__m512i, __m512bh>(v) }
}

/// [`tile`] for `rows ≤ MR` rows, chosen at run time among the exact-size kernels.
///
/// # Safety
/// As [`tile`] with `R = rows`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_rows<const SLIVERS: bool>(
    rows: usize,
    pairs: usize,
    a: ARef,
    b: *const u32,
    c: MatMut,
    nr: usize,
    add: bool,
) {
    macro_rules! dispatch {
        ($($r:literal)*) => {
            match rows {
                // SAFETY (every arm): as the caller guarantees for `rows` rows.
                $($r => unsafe { tile::<$r, SLIVERS>(pairs, a, b, c, nr, add) },)*
                _ => unreachable!("a tile has at most MR rows"),
            }
        };
    }
    dispatch!(1 2 3 4 5 6 7 8 9 10 11 12)
}

/// `C[0..R, 0..nr] ← (C +) A_rows · B_sliver` over `pairs` pairs of steps.
///
/// Pair `p` of A's row `i` is [`ARef::get`]; the B sliver holds `pairs`
/// lines of [`NR`] pairs. A full-width tile of a row-major C is stored
/// straight from the registers; any other goes through a local buffer, with
/// the same additions.
///
/// # Safety
/// The CPU must have the features; A's rows, B's sliver and C's `R × nr` tile
/// must be readable (C writable) as described.
#[inline(always)]
unsafe fn tile<const R: usize, const SLIVERS: bool>(
    pairs: usize,
    a: ARef,
    b: *const u32,
    c: MatMut,
    nr: usize,
    add: bool,
) {
    // SAFETY (whole body): every address lies inside the operands, as the
    // caller guarantees; the CPU has AVX-512F and AVX512-BF16.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        for p in 0..pairs {
            let line = b.add(p * NR);
            let b0: __m512bh = bh(_mm512_loadu_si512(line.cast()));
            let b1: __m512bh = bh(_mm512_loadu_si512(line.add(16).cast()));
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = a.get::<SLIVERS>(i, p);
                let av: __m512bh = bh(_mm512_set1_epi32(ai as i32));
                row[0] = _mm512_dpbf16_ps(row[0], av, b0);
                row[1] = _mm512_dpbf16_ps(row[1], av, b1);
            }
        }
        if nr == NR && c.cs == 1 {
            for (i, row) in acc.iter().enumerate() {
                let ci = c.ptr.offset(i as isize * c.rs);
                for (w, &v) in row.iter().enumerate() {
                    let cw = ci.add(16 * w);
                    let sum: __m512 = if add {
                        _mm512_add_ps(_mm512_loadu_ps(cw), v)
                    } else {
                        v
                    };
                    _mm512_storeu_ps(cw, sum);
                }
            }
        } else {
            let mut local = [0.0f32; MR * NR];
            for (i, row) in acc.iter().enumerate() {
                for (w, &v) in row.iter().enumerate() {
                    _mm512_storeu_ps(local.as_mut_ptr().add(i * NR + 16 * w), v);
                }
            }
            for i in 0..R {
                for j in 0..nr {
                    let cij = c.ptr.offset(i as isize * c.rs + j as isize * c.cs);
                    let v = local[i * NR + j];
                    *cij = if add { *cij + v } else { v };
                }
            }
        }
    }
}
