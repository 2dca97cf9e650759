//! The AVX2 kernel (with FMA): 8-lane vectors, 6 × 16 tiles (12 of the 16 vector
//! registers accumulate, two hold the B row, one the broadcast A value).

use std::arch::x86_64::{
    __m256, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_mul_ps, _mm256_permute2f128_ps,
    _mm256_set1_ps, _mm256_setzero_ps, _mm256_shuffle_ps, _mm256_storeu_ps, _mm256_unpackhi_ps,
    _mm256_unpacklo_ps,
};

use super::kernel::{Simd, kernel_entry_points};

/// AVX2 and FMA.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx2;

// SAFETY: only reached through the entry points, on CPUs with AVX2 and FMA.
unsafe impl Simd for Avx2 {
    type V = __m256;
    const LANES: usize = 8;

    #[inline(always)]
    unsafe fn splat(x: f32) -> __m256 {
        // SAFETY: the CPU has AVX2 and FMA (the trait's contract).
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        // SAFETY: 8 readable floats at p, as the caller guarantees.
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        // SAFETY: 8 writable floats at p, as the caller guarantees.
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn mul_add(a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: the CPU has AVX2 and FMA.
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn mul(a: __m256, b: __m256) -> __m256 {
        // SAFETY: the CPU has AVX2 and FMA.
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn mul_add_one(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
    #[inline(always)]
    unsafe fn transpose8(src: *const f32, line_stride: isize, count: usize) -> [[f32; 8]; 8] {
        // SAFETY: as the caller guarantees; the CPU has AVX.
        unsafe { transpose8(src, line_stride, count) }
    }
}

/// [`Simd::transpose8`] in AVX registers (the AVX-512 kernel uses it too):
/// interleave pairs of lines, then pairs of pairs within each 128-bit half,
/// then swap the halves.
///
/// # Safety
/// As [`Simd::transpose8`]; the CPU must have AVX.
#[inline(always)]
pub(crate) unsafe fn transpose8(
    src: *const f32,
    line_stride: isize,
    count: usize,
) -> [[f32; 8]; 8] {
    // SAFETY: `count` lines of 8 floats, as the caller guarantees; the CPU has AVX.
    unsafe {
        let mut r = [_mm256_setzero_ps(); 8];
        for (i, line) in r.iter_mut().enumerate().take(count) {
            *line = _mm256_loadu_ps(src.offset(i as isize * line_stride));
        }
        // Lines 2j and 2j+1 interleaved: (a0 b0 a1 b1 | a4 b4 a5 b5), (a2 b2 a3 b3 | ...).
        let t = [
            _mm256_unpacklo_ps(r[0], r[1]),
            _mm256_unpackhi_ps(r[0], r[1]),
            _mm256_unpacklo_ps(r[2], r[3]),
            _mm256_unpackhi_ps(r[2], r[3]),
            _mm256_unpacklo_ps(r[4], r[5]),
            _mm256_unpackhi_ps(r[4], r[5]),
            _mm256_unpacklo_ps(r[6], r[7]),
            _mm256_unpackhi_ps(r[6], r[7]),
        ];
        // Four lines' value q side by side in each half: (a0 b0 c0 d0 | a4 b4 c4 d4), ...
        let u = [
            _mm256_shuffle_ps::<0x44>(t[0], t[2]),
            _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
            _mm256_shuffle_ps::<0x44>(t[1], t[3]),
            _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
            _mm256_shuffle_ps::<0x44>(t[4], t[6]),
            _mm256_shuffle_ps::<0xEE>(t[4], t[6]),
            _mm256_shuffle_ps::<0x44>(t[5], t[7]),
            _mm256_shuffle_ps::<0xEE>(t[5], t[7]),
        ];
        // Low halves of lines 0-3 and 4-7 make values 0-3, the high halves 4-7.
        let columns = [
            _mm256_permute2f128_ps::<0x20>(u[0], u[4]),
            _mm256_permute2f128_ps::<0x20>(u[1], u[5]),
            _mm256_permute2f128_ps::<0x20>(u[2], u[6]),
            _mm256_permute2f128_ps::<0x20>(u[3], u[7]),
            _mm256_permute2f128_ps::<0x31>(u[0], u[4]),
            _mm256_permute2f128_ps::<0x31>(u[1], u[5]),
            _mm256_permute2f128_ps::<0x31>(u[2], u[6]),
            _mm256_permute2f128_ps::<0x31>(u[3], u[7]),
        ];
        let mut out = [[0.0f32; 8]; 8];
        for (o, c) in out.iter_mut().zip(columns) {
            _mm256_storeu_ps(o.as_mut_ptr(), c);
        }
        out
    }
}

kernel_entry_points!(Avx2, 6, "avx2,fma");
