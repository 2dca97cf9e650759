//! Packing: copying blocks of A and B into the sliver layout the micro-kernel streams.
//!
//! A block of A (`mc × kc`) becomes `⌈mc/MR⌉` slivers, each `kc` steps of `MR`
//! consecutive row values; a panel of B (`kc × nc`) becomes `⌈nc/NR⌉` slivers, each
//! `kc` steps of `NR` consecutive column values. Slivers are zero-padded to full
//! width so the micro-kernel never needs a bounds check. Any strides are accepted,
//! which is how transposed operands come for free.

use super::kernel::{MR, NR};
use rayon::prelude::*;

use crate::gemm::MatRef;

/// Packs rows `[0, mc)` × columns `[0, kc)` of `a` into `out` (at least `⌈mc/MR⌉·MR·kc` floats).
///
/// # Safety
/// `a` must be readable over `mc × kc` elements.
pub(crate) unsafe fn pack_a(a: MatRef, mc: usize, kc: usize, out: &mut [f32]) {
    for (s, sliver) in out
        .chunks_exact_mut(MR * kc)
        .take(mc.div_ceil(MR))
        .enumerate()
    {
        let i0 = s * MR;
        let rows = MR.min(mc - i0);
        if a.rs == 1 {
            // A transposed (as in `Aᵀ·dZ`): a step's MR values are contiguous.
            for p in 0..kc {
                // SAFETY: rows i0..i0 + rows at column p lie inside a.
                let src = unsafe {
                    std::slice::from_raw_parts(a.ptr.offset(i0 as isize + p as isize * a.cs), rows)
                };
                sliver[p * MR..p * MR + rows].copy_from_slice(src);
            }
        } else {
            // SAFETY: rows i0..i0 + rows, columns 0..kc lie inside a.
            unsafe {
                transpose_rows(
                    a.ptr.offset(i0 as isize * a.rs),
                    a.rs,
                    a.cs,
                    rows,
                    kc,
                    MR,
                    sliver,
                )
            };
        }
        if rows < MR {
            for p in 0..kc {
                sliver[p * MR + rows..(p + 1) * MR].fill(0.0);
            }
        }
    }
}

/// Packs rows `[0, kc)` × columns `[0, nc)` of `b` into `out` (at least `⌈nc/NR⌉·NR·kc`
/// floats); with `parallel`, the slivers are shared out over rayon's threads.
///
/// # Safety
/// `b` must be readable over `kc × nc` elements.
pub(crate) unsafe fn pack_b(b: MatRef, kc: usize, nc: usize, out: &mut [f32], parallel: bool) {
    let out = &mut out[..nc.div_ceil(NR) * NR * kc];
    // SAFETY (both arms): sliver t covers columns t·NR.. of b, inside nc.
    if parallel {
        out.par_chunks_exact_mut(NR * kc)
            .enumerate()
            .for_each(|(t, sliver)| unsafe { pack_b_sliver(b, kc, nc, t, sliver) });
    } else {
        for (t, sliver) in out.chunks_exact_mut(NR * kc).enumerate() {
            unsafe { pack_b_sliver(b, kc, nc, t, sliver) };
        }
    }
}

/// Packs sliver `t` (columns `t·NR..`) of a `kc × nc` panel of `b`.
///
/// # Safety
/// As [`pack_b`].
unsafe fn pack_b_sliver(b: MatRef, kc: usize, nc: usize, t: usize, sliver: &mut [f32]) {
    let j0 = t * NR;
    let cols = NR.min(nc - j0);
    // SAFETY: rows 0..kc, columns j0..j0 + cols lie inside b.
    let src = unsafe { b.ptr.offset(j0 as isize * b.cs) };
    if b.cs == 1 {
        for p in 0..kc {
            // SAFETY: row p < kc, columns j0..j0 + cols, as the caller guarantees.
            let row = unsafe { std::slice::from_raw_parts(src.offset(p as isize * b.rs), cols) };
            sliver[p * NR..p * NR + cols].copy_from_slice(row);
        }
    } else {
        // B transposed (as in `dZ·Wᵀ`): a sliver is NR rows of W, transposed.
        // SAFETY: as above.
        unsafe { transpose_rows(src, b.cs, b.rs, cols, kc, NR, sliver) };
    }
    if cols < NR {
        for p in 0..kc {
            sliver[p * NR + cols..(p + 1) * NR].fill(0.0);
        }
    }
}

/// Writes `lines` strided sequences of `len` values (line `i` starts at
/// `src + i·line_stride`, its values `step` apart) transposed into `out`:
/// value `p` of line `i` goes to `out[p·width + i]`.
///
/// Line by line, so that each is read as one forward stream (a row of a
/// row-major matrix when `step` is 1) while the writes land in `out`, a sliver
/// small enough for L1. Reading all lines a step at a time instead touches
/// `lines` cache lines and pages per step and runs several times slower.
///
/// # Safety
/// Every addressed source value must be readable; `out` holds `len·width` floats.
unsafe fn transpose_rows(
    src: *const f32,
    line_stride: isize,
    step: isize,
    lines: usize,
    len: usize,
    width: usize,
    out: &mut [f32],
) {
    let out = &mut out[..len * width];
    // In column blocks of TILE steps, so that the part of `out` being written
    // (TILE·width floats) stays in L1 while every line passes through it.
    const TILE: usize = 8;
    for (t, block) in out.chunks_mut(TILE * width).enumerate() {
        let p0 = t * TILE;
        let steps = block.len() / width;
        for i in 0..lines {
            // SAFETY: line i < lines, values p0..p0 + steps < len, as the caller guarantees.
            let line = unsafe { src.offset(i as isize * line_stride + p0 as isize * step) };
            if step == 1 {
                // SAFETY: `steps` contiguous values of line i.
                let values = unsafe { std::slice::from_raw_parts(line, steps) };
                for (dst, &v) in block.chunks_exact_mut(width).zip(values) {
                    dst[i] = v;
                }
            } else {
                for (p, dst) in block.chunks_exact_mut(width).enumerate() {
                    // SAFETY: value p0 + p < len of line i.
                    dst[i] = unsafe { *line.offset(p as isize * step) };
                }
            }
        }
    }
}
