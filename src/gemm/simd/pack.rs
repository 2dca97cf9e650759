//! Packing: copying blocks of A and B into the sliver layout the micro-kernel streams.
//!
//! A block of A (`mc × kc`) becomes `⌈mc/MR⌉` slivers, each `kc` steps of `MR`
//! consecutive row values; a panel of B (`kc × nc`) becomes `⌈nc/NR⌉` slivers, each
//! `kc` steps of `NR` consecutive column values. Slivers are zero-padded to full
//! width so the micro-kernel never needs a bounds check. Any strides are accepted,
//! which is how transposed operands come for free.

use super::kernel::{MR, NR};
use rayon::prelude::*;
use wide::f32x8;

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
            for (p, dst) in sliver.chunks_exact_mut(MR).enumerate() {
                // SAFETY: rows i0..i0 + rows at column p lie inside a.
                let src = unsafe { a.ptr.offset(i0 as isize + p as isize * a.cs) };
                if rows == MR {
                    // A fixed size: vector moves, not a memcpy call per step.
                    // SAFETY: MR values of column p.
                    dst.copy_from_slice(&unsafe { src.cast::<[f32; MR]>().read_unaligned() });
                } else {
                    // SAFETY: `rows` values of column p.
                    dst[..rows].copy_from_slice(unsafe { std::slice::from_raw_parts(src, rows) });
                }
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
    if b.cs == 1 && cols == NR {
        // Whole slivers copy NR floats a step (a fixed size: vector moves, no memcpy call).
        for (p, dst) in sliver.chunks_exact_mut(NR).enumerate() {
            // SAFETY: row p < kc, columns j0..j0 + NR, as the caller guarantees.
            let row = unsafe {
                src.offset(p as isize * b.rs)
                    .cast::<[f32; NR]>()
                    .read_unaligned()
            };
            dst.copy_from_slice(&row);
        }
    } else if b.cs == 1 {
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
/// Contiguous lines (`step` 1: rows of a row-major matrix) go through 8 × 8
/// register transposes, eight steps of every line at a time, so that `out` is
/// written front to back. Other strides go element by element, line by line.
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
    // SAFETY (all blocks): line i < lines, value p < len, as the caller guarantees.
    let at =
        |i: usize, p: usize| unsafe { src.offset(i as isize * line_stride + p as isize * step) };
    let vector_steps = if step == 1 { len / 8 * 8 } else { 0 };
    for p0 in (0..vector_steps).step_by(8) {
        for i0 in (0..lines).step_by(8) {
            let count = 8.min(lines - i0);
            let mut rows = [f32x8::ZERO; 8];
            for (r, row) in rows.iter_mut().enumerate().take(count) {
                // SAFETY: values p0..p0 + 8 of line i0 + r are contiguous.
                *row = unsafe { at(i0 + r, p0).cast::<f32x8>().read_unaligned() };
            }
            for (q, column) in f32x8::transpose(rows).iter().enumerate() {
                let dst = &mut out[(p0 + q) * width + i0..][..count];
                if count == 8 {
                    // SAFETY: `dst` holds 8 floats.
                    unsafe { dst.as_mut_ptr().cast::<f32x8>().write_unaligned(*column) };
                } else {
                    for (d, &v) in dst.iter_mut().zip(column.as_array()) {
                        *d = v;
                    }
                }
            }
        }
    }
    for i in 0..lines {
        for (p, dst) in out.chunks_exact_mut(width).enumerate().skip(vector_steps) {
            // SAFETY: value p of line i.
            dst[i] = unsafe { *at(i, p) };
        }
    }
}
