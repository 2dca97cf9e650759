//! The portable kernel: `wide`'s vectors as compiled for the build's target,
//! which runs on every CPU of it. On a plain x86-64 build that is SSE2 (4 lanes,
//! 4 × 8 tiles, multiply then add); on aarch64 NEON (4 lanes, fused); a build
//! with wider target features gets wider vectors here too:
//!
//! | target features | vector      | `MR × NR` |
//! |-----------------|-------------|-----------|
//! | AVX-512F        | `f32x16`    | 12 × 32   |
//! | AVX             | `f32x8`     | 6 × 16    |
//! | otherwise       | `f32x4`     | 4 × 8     |

use super::kernel::{Simd, kernel_entry_points};

/// The vector `wide` gives this target.
#[cfg(target_feature = "avx512f")]
type Vector = wide::f32x16;
/// The vector `wide` gives this target.
#[cfg(all(not(target_feature = "avx512f"), target_feature = "avx"))]
type Vector = wide::f32x8;
/// The vector `wide` gives this target.
#[cfg(not(any(target_feature = "avx512f", target_feature = "avx")))]
type Vector = wide::f32x4;

/// `f32` lanes in [`Vector`].
const LANES: usize = size_of::<Vector>() / size_of::<f32>();

/// Rows of C per tile: as many broadcast values as leave registers for the
/// `2·MR` accumulators and the B row.
const MR: usize = match LANES {
    16 => 12,
    8 => 6,
    _ => 4,
};

/// Whether `wide`'s `mul_add` is one rounding on this target (FMA or NEON).
const FUSED: bool = cfg!(any(
    all(target_feature = "sse2", target_feature = "fma"),
    all(target_arch = "aarch64", target_feature = "neon")
));

/// The build target's own vectors, through `wide`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Portable;

// SAFETY: compiled for the build's target, so every CPU of it runs these.
unsafe impl Simd for Portable {
    type V = Vector;
    const LANES: usize = LANES;

    #[inline(always)]
    unsafe fn splat(x: f32) -> Vector {
        Vector::splat(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Vector {
        // SAFETY: LANES readable floats at p, as the caller guarantees.
        unsafe { p.cast::<Vector>().read_unaligned() }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Vector) {
        // SAFETY: LANES writable floats at p, as the caller guarantees.
        unsafe { p.cast::<Vector>().write_unaligned(v) }
    }
    #[inline(always)]
    unsafe fn mul_add(a: Vector, b: Vector, c: Vector) -> Vector {
        a.mul_add(b, c)
    }
    #[inline(always)]
    unsafe fn mul(a: Vector, b: Vector) -> Vector {
        a * b
    }
    #[inline(always)]
    unsafe fn mul_add_one(a: f32, b: f32, c: f32) -> f32 {
        if FUSED { a.mul_add(b, c) } else { a * b + c }
    }
}

kernel_entry_points!(Portable, MR);
