//! Packing: copying blocks of A and B into the sliver layout the micro-kernel streams.
//!
//! A block of A (`mc × kc`) becomes `⌈mc/MR⌉` slivers, each `kc` steps of `MR`
//! consecutive row values; a panel of B (`kc × nc`) becomes `⌈nc/NR⌉` slivers, each
//! `kc` steps of `NR` consecutive column values. Slivers are zero-padded to full
//! width so the micro-kernel never needs a bounds check. Any strides are accepted,
//! which is how transposed operands come for free.

use rayon::prelude::*;

use super::MatRef;
use super::bf16::round_to_bf16;
use super::kernel::Kernel;

/// What packing does to the values it copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Packing {
    /// Copies them.
    Copy,
    /// For the emulated bf16 products ([`super::bf16`]): rounds them to bf16
    /// and swaps the two steps of every pair of `k` (`2p ↔ 2p + 1`), so that the
    /// `f32` kernel adds the odd step first, as `VDPBF16PS` does. A block's
    /// steps past the source's last (`k` padded to even) are zeros. Blocks start
    /// at even steps, so their pairs are the product's pairs.
    Bf16Swapped,
}

impl Packing {
    /// The destination of source step `p` is step `p ^ swap`.
    #[inline(always)]
    fn swap(self) -> usize {
        match self {
            Packing::Copy => 0,
            Packing::Bf16Swapped => 1,
        }
    }

    /// Finishes a sliver `width` wide into whose `kc` steps the first `steps`
    /// source steps were copied (step `p` to step `p ^ swap`): zeros the steps
    /// that received none and, for [`Packing::Bf16Swapped`] (where `kc` is
    /// even), rounds every value to bf16.
    #[inline(always)]
    fn finish(self, sliver: &mut [f32], width: usize, steps: usize, kc: usize) {
        let mut from = steps;
        if self.swap() == 1 && !steps.is_multiple_of(2) {
            // The last source step went to `steps`, its partner's place.
            sliver[(steps - 1) * width..steps * width].fill(0.0);
            from = steps + 1;
        }
        sliver[from * width..kc * width].fill(0.0);
        if self == Packing::Bf16Swapped {
            debug_assert!(kc.is_multiple_of(2), "the bf16 products pad k to even");
            for v in &mut sliver[..kc * width] {
                *v = round_to_bf16(*v);
            }
        }
    }

    /// How many of a block's `kc` steps come from a source with `available`
    /// steps left.
    #[inline(always)]
    fn steps(self, kc: usize, available: usize) -> usize {
        debug_assert!(self == Packing::Bf16Swapped || available >= kc);
        kc.min(available)
    }
}

/// Packs rows `[0, mc)` × columns `[0, kc)` of `a` into `out` (at least
/// `⌈mc/MR⌉·MR·kc` floats), as `packing` says. Compiled per instruction set in
/// [`Kernel::pack_a`].
///
/// # Safety
/// `a` must be readable over `mc × kc` elements (or its columns, if fewer, with
/// [`Packing::Bf16Swapped`]); the CPU must run `K`.
#[inline(always)]
pub(crate) unsafe fn pack_a<K: Kernel>(
    a: MatRef,
    mc: usize,
    kc: usize,
    out: &mut [f32],
    packing: Packing,
) {
    let steps = packing.steps(kc, a.cols);
    for (s, sliver) in out
        .chunks_exact_mut(K::MR * kc)
        .take(mc.div_ceil(K::MR))
        .enumerate()
    {
        let i0 = s * K::MR;
        // SAFETY: rows i0..i0 + MR.min(mc - i0), columns 0..steps lie inside a.
        unsafe {
            let src = a.ptr.offset(i0 as isize * a.rs);
            let rows = K::MR.min(mc - i0);
            pack_sliver::<K>(K::MR, src, a.cs, a.rs, rows, steps, packing.swap(), sliver);
        }
        packing.finish(sliver, K::MR, steps, kc);
    }
}

/// Packs rows `[0, kc)` × columns `[0, nc)` of `b` into `out` (at least `⌈nc/NR⌉·NR·kc`
/// floats); with `parallel`, the slivers are shared out over rayon's threads.
///
/// # Safety
/// `b` must be readable over `kc × nc` elements.
pub(crate) unsafe fn pack_b<K: Kernel>(
    b: MatRef,
    kc: usize,
    nc: usize,
    out: &mut [f32],
    parallel: bool,
    packing: Packing,
) {
    let out = &mut out[..nc.div_ceil(K::NR) * K::NR * kc];
    // SAFETY (both arms): sliver t covers columns t·NR.. of b, inside nc.
    if parallel {
        out.par_chunks_exact_mut(K::NR * kc)
            .enumerate()
            .for_each(|(t, sliver)| unsafe { K::pack_b_sliver(b, kc, nc, t, sliver, packing) });
    } else {
        for (t, sliver) in out.chunks_exact_mut(K::NR * kc).enumerate() {
            unsafe { K::pack_b_sliver(b, kc, nc, t, sliver, packing) };
        }
    }
}

/// Packs sliver `t` (columns `t·NR..`) of a `kc × nc` panel of `b`, as
/// `packing` says. Compiled per instruction set in [`Kernel::pack_b_sliver`].
///
/// # Safety
/// As [`pack_b`]; the CPU must run `K`.
#[inline(always)]
pub(crate) unsafe fn pack_b_sliver<K: Kernel>(
    b: MatRef,
    kc: usize,
    nc: usize,
    t: usize,
    sliver: &mut [f32],
    packing: Packing,
) {
    let j0 = t * K::NR;
    let steps = packing.steps(kc, b.rows);
    // SAFETY: rows 0..steps, columns j0..j0 + NR.min(nc - j0) lie inside b.
    unsafe {
        let src = b.ptr.offset(j0 as isize * b.cs);
        pack_sliver::<K>(
            K::NR,
            src,
            b.rs,
            b.cs,
            K::NR.min(nc - j0),
            steps,
            packing.swap(),
            sliver,
        );
    }
    packing.finish(sliver, K::NR, steps, kc);
}

/// [`pack_sliver_of`] for a sliver `width` wide: a tile dimension of one of the
/// kernels (a constant once the kernel is chosen, so the match folds away).
///
/// # Safety
/// As [`pack_sliver_of`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn pack_sliver<K: Kernel>(
    width: usize,
    src: *const f32,
    step: isize,
    across: isize,
    count: usize,
    kc: usize,
    swap: usize,
    sliver: &mut [f32],
) {
    macro_rules! widths {
        ($($w:literal)*) => {
            match width {
                // SAFETY (every arm): as the caller guarantees.
                $($w => unsafe { pack_sliver_of::<K, $w>(src, step, across, count, kc, swap, sliver) },)*
                _ => unreachable!("no kernel has tiles {width} wide"),
            }
        };
    }
    widths!(4 6 8 12 16 32)
}

/// Packs one sliver `W` wide: `kc` steps (`step` apart in the source) of `count`
/// values (`across` apart), each step's values contiguous in `sliver` and
/// zero-padded to `W`; source step `p` becomes step `p ^ swap` (`swap` is 0,
/// or 1 for the bf16 emulation's swapped pairs, with `kc` even or the caller
/// filling the hole).
///
/// A slice of A's rows is such a sliver with `step` = A's column stride, a slice
/// of B's columns with `step` = B's row stride. When the values of a step are
/// contiguous (`across` 1: B as stored, or A transposed) each step is one copy;
/// otherwise the sliver is a transposed block of lines (`transpose_rows`).
///
/// # Safety
/// Every addressed source value must be readable; `sliver` holds `kc·W` floats.
#[inline(always)]
unsafe fn pack_sliver_of<K: Kernel, const W: usize>(
    src: *const f32,
    step: isize,
    across: isize,
    count: usize,
    kc: usize,
    swap: usize,
    sliver: &mut [f32],
) {
    if across == 1 {
        let last = (kc - 1) | swap;
        for (d, dst) in sliver.chunks_exact_mut(W).take(last + 1).enumerate() {
            let p = d ^ swap;
            if p >= kc {
                continue; // the hole the caller fills
            }
            // SAFETY: `count` contiguous values of step p.
            let values = unsafe { src.offset(p as isize * step) };
            if count == W {
                // A fixed size: vector moves, not a memcpy call per step.
                // SAFETY: W values of step p.
                dst.copy_from_slice(&unsafe { values.cast::<[f32; W]>().read_unaligned() });
            } else {
                // SAFETY: `count` values of step p.
                dst[..count].copy_from_slice(unsafe { std::slice::from_raw_parts(values, count) });
            }
        }
    } else if count == W {
        // The same call with the line count a constant (the common case of a
        // full sliver), so that the compiler unrolls the blocks of lines.
        // SAFETY: W lines of `kc` values, as the caller guarantees.
        unsafe { transpose_rows::<K, W>(src, across, step, W, kc, swap, sliver) };
    } else {
        // SAFETY: `count` lines of `kc` values, as the caller guarantees.
        unsafe { transpose_rows::<K, W>(src, across, step, count, kc, swap, sliver) };
    }
    if count < W {
        for dst in sliver.chunks_exact_mut(W).take(kc + (kc & swap)) {
            dst[count..].fill(0.0);
        }
    }
}

/// Writes `lines` strided sequences of `len` values (line `i` starts at
/// `src + i·line_stride`, its values `step` apart) transposed into `out`:
/// value `p` of line `i` goes to `out[(p ^ swap)·W + i]`.
///
/// Contiguous lines (`step` 1: rows of a row-major matrix) go through 8 × 8
/// register transposes ([`super::kernel::Simd::transpose8`]), eight steps of every line at a time, so that `out` is
/// written front to back. Other strides go element by element, line by line.
///
/// # Safety
/// Every addressed source value must be readable; `lines ≤ W`; `out` holds `len·W` floats.
#[inline(always)]
unsafe fn transpose_rows<K: Kernel, const W: usize>(
    src: *const f32,
    line_stride: isize,
    step: isize,
    lines: usize,
    len: usize,
    swap: usize,
    out: &mut [f32],
) {
    let out = &mut out[..(len + (len & swap)) * W];
    let dst = out.as_mut_ptr();
    // SAFETY (whole body): line i < lines, value p < len, as the caller
    // guarantees; every write is at step p ^ swap ≤ len (len itself only when
    // it is odd and swap 1, where `out` holds that step), lane i < lines ≤ W.
    unsafe {
        let at = |i: usize, p: usize| src.offset(i as isize * line_stride + p as isize * step);
        let vector_steps = if step == 1 { len / 8 * 8 } else { 0 };
        for p0 in (0..vector_steps).step_by(8) {
            for i0 in (0..lines).step_by(8) {
                let count = 8.min(lines - i0);
                let columns = K::transpose8(at(i0, p0), line_stride, count);
                for (q, c) in columns.iter().enumerate() {
                    let to = dst.add(((p0 + q) ^ swap) * W + i0);
                    match count {
                        8 => to.cast::<[f32; 8]>().write_unaligned(*c),
                        4 => to
                            .cast::<[f32; 4]>()
                            .write_unaligned([c[0], c[1], c[2], c[3]]),
                        _ => to.copy_from_nonoverlapping(c.as_ptr(), count),
                    }
                }
            }
        }
        for i in 0..lines {
            for p in vector_steps..len {
                *dst.add((p ^ swap) * W + i) = *at(i, p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::portable::Portable;

    /// Awkward values: ties of bf16 rounding, tiny ones that flush, signs.
    fn value(i: usize, j: usize) -> f32 {
        match (i * 7 + j * 3) % 5 {
            0 => 1.0 + 1.0 / 256.0,
            1 => -3.0e-18,
            2 => (i as f32 - j as f32) / 3.0,
            3 => 0.0,
            _ => 1.0e6 / (1 + i + j) as f32,
        }
    }

    /// A `rows × cols` matrix of [`value`]s, row-major or column-major, and a
    /// view of it (valid while the returned data lives).
    fn matrix(rows: usize, cols: usize, column_major: bool) -> (Vec<f32>, MatRef) {
        let mut data = vec![0.0; rows * cols];
        let (rs, cs) = if column_major {
            (1, rows as isize)
        } else {
            (cols as isize, 1)
        };
        for i in 0..rows {
            for j in 0..cols {
                data[(i as isize * rs + j as isize * cs) as usize] = value(i, j);
            }
        }
        let view = MatRef {
            ptr: data.as_ptr(),
            rows,
            cols,
            rs,
            cs,
        };
        (data, view)
    }

    /// What a packed sliver holds at step `d`, lane `lane`, for a source whose
    /// values along `k` are `at(p)` for `p < steps`: with the bf16 packing, the
    /// partner step's value rounded (zero past the source), else the value.
    fn expected(packing: Packing, d: usize, steps: usize, at: impl Fn(usize) -> f32) -> f32 {
        let p = d ^ packing.swap();
        if p < steps {
            match packing {
                Packing::Copy => at(p),
                Packing::Bf16Swapped => round_to_bf16(at(p)),
            }
        } else {
            0.0
        }
    }

    /// Checks a packed sliver against [`expected`]. `layout` is (width, first
    /// line, lines, kc, steps): lane `l` holds line `first + l` (zeros past
    /// `lines`), whose value at source step `p` is `at(line, p)`.
    fn check_sliver(
        sliver: &[f32],
        (width, first, lines, kc, steps): (usize, usize, usize, usize, usize),
        packing: Packing,
        at: impl Fn(usize, usize) -> f32,
        what: &str,
    ) {
        for d in 0..kc {
            for lane in 0..width {
                let line = first + lane;
                let want = if line < lines {
                    expected(packing, d, steps, |p| at(line, p))
                } else {
                    0.0
                };
                let got = sliver[d * width + lane];
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "{what}: step {d}, line {line}"
                );
            }
        }
    }

    /// `pack_a` and `pack_b_sliver`, on both layouts, full and partial slivers,
    /// and an odd number of source steps in an even block (the padding of `k`).
    #[test]
    fn bf16_packing_rounds_swaps_and_pads() {
        let cases = [
            (12, 7, 8),
            (5, 8, 8),
            (13, 255, 256),
            (3, 1, 2),
            (4, 16, 16),
        ];
        for (lines, steps, kc) in cases {
            for column_major in [false, true] {
                for packing in [Packing::Copy, Packing::Bf16Swapped] {
                    if packing == Packing::Copy && steps != kc {
                        continue; // the f32 products never pad
                    }
                    // A: `lines` rows, `steps` columns.
                    let (_data, a) = matrix(lines, steps, column_major);
                    let mr = <Portable as Kernel>::MR;
                    let mut out = vec![f32::NAN; lines.div_ceil(mr) * mr * kc];
                    // SAFETY: `a` covers its data; the portable kernel runs anywhere.
                    unsafe { pack_a::<Portable>(a, lines, kc, &mut out, packing) };
                    let what =
                        format!("A {lines}×{steps} in {kc}, col-major {column_major}, {packing:?}");
                    for (s, sliver) in out.chunks_exact(mr * kc).enumerate() {
                        let layout = (mr, s * mr, lines, kc, steps);
                        check_sliver(sliver, layout, packing, value, &what);
                    }
                    // B: `steps` rows, `lines` columns.
                    let (_data, b) = matrix(steps, lines, column_major);
                    let nr = <Portable as Kernel>::NR;
                    let mut sliver = vec![f32::NAN; nr * kc];
                    // SAFETY: as above.
                    unsafe { pack_b_sliver::<Portable>(b, kc, lines, 0, &mut sliver, packing) };
                    let what =
                        format!("B {steps}×{lines} in {kc}, col-major {column_major}, {packing:?}");
                    let layout = (nr, 0, lines, kc, steps);
                    check_sliver(&sliver, layout, packing, |j, p| value(p, j), &what);
                }
            }
        }
    }
}
