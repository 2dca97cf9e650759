//! The AVX2 kernel (with FMA): 8-lane vectors, 6 × 16 tiles (12 of the 16 vector
//! registers accumulate, two hold the B row, one the broadcast A value).

use std::arch::x86_64::{
    __m256, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_mul_ps, _mm256_set1_ps, _mm256_storeu_ps,
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
}

kernel_entry_points!(Avx2, 6, "avx2,fma");
