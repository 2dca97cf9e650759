//! Packing: copying blocks of A and B into the sliver layout the micro-kernel streams.
//!
//! A block of A (`mc × kc`) becomes `⌈mc/MR⌉` slivers, each `kc` steps of `MR`
//! consecutive row values; a panel of B (`kc × nc`) becomes `⌈nc/NR⌉` slivers, each
//! `kc` steps of `NR` consecutive column values. Slivers are zero-padded to full
//! width so the micro-kernel never needs a bounds check. Any strides are accepted,
//! which is how transposed operands come for free.

use super::kernel::{MR, NR};
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
            // Step through the MR rows together: contiguous writes, MR read streams.
            let mut src = [a.ptr; MR];
            for (i, s) in src.iter_mut().enumerate().take(rows) {
                // SAFETY: row i0 + i < mc, as the caller guarantees.
                *s = unsafe { a.ptr.offset((i0 + i) as isize * a.rs) };
            }
            for p in 0..kc {
                let dst = &mut sliver[p * MR..p * MR + rows];
                for (d, s) in dst.iter_mut().zip(&src) {
                    // SAFETY: column p < kc of a row inside a.
                    *d = unsafe { *s.offset(p as isize * a.cs) };
                }
            }
        }
        if rows < MR {
            for p in 0..kc {
                sliver[p * MR + rows..(p + 1) * MR].fill(0.0);
            }
        }
    }
}

/// Packs rows `[0, kc)` × columns `[0, nc)` of `b` into `out` (at least `⌈nc/NR⌉·NR·kc` floats).
///
/// # Safety
/// `b` must be readable over `kc × nc` elements.
pub(crate) unsafe fn pack_b(b: MatRef, kc: usize, nc: usize, out: &mut [f32]) {
    for (t, sliver) in out
        .chunks_exact_mut(NR * kc)
        .take(nc.div_ceil(NR))
        .enumerate()
    {
        let j0 = t * NR;
        let cols = NR.min(nc - j0);
        for p in 0..kc {
            let dst = &mut sliver[p * NR..(p + 1) * NR];
            // SAFETY: row p < kc, columns j0 + j < nc, as the caller guarantees.
            let src = unsafe { b.ptr.offset(p as isize * b.rs + j0 as isize * b.cs) };
            if b.cs == 1 {
                let row = unsafe { std::slice::from_raw_parts(src, cols) };
                dst[..cols].copy_from_slice(row);
            } else {
                for (j, d) in dst[..cols].iter_mut().enumerate() {
                    *d = unsafe { *src.offset(j as isize * b.cs) };
                }
            }
            dst[cols..].fill(0.0);
        }
    }
}
