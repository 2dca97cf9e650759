//! The AVX-512F kernel: 16-lane vectors, 12 × 32 tiles (24 of the 32 vector
//! registers accumulate, two hold the B row, one the broadcast A value).

use std::arch::x86_64::{
    __m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_mul_ps, _mm512_set1_ps, _mm512_storeu_ps,
};

use super::kernel::{Simd, kernel_entry_points};

/// AVX-512F (with AVX2 and FMA for the scalar edges).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx512;

// SAFETY: only reached through the entry points, on CPUs with AVX-512F.
unsafe impl Simd for Avx512 {
    type V = __m512;
    const LANES: usize = 16;

    #[inline(always)]
    unsafe fn splat(x: f32) -> __m512 {
        // SAFETY: the CPU has AVX-512F (the trait's contract).
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        // SAFETY: 16 readable floats at p, as the caller guarantees.
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        // SAFETY: 16 writable floats at p, as the caller guarantees.
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn mul_add(a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: the CPU has AVX-512F.
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn mul(a: __m512, b: __m512) -> __m512 {
        // SAFETY: the CPU has AVX-512F.
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn mul_add_one(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
    #[inline(always)]
    unsafe fn transpose8(src: *const f32, line_stride: isize, count: usize) -> [[f32; 8]; 8] {
        // SAFETY: as the caller guarantees; AVX-512F implies AVX.
        unsafe { super::avx2::transpose8(src, line_stride, count) }
    }
}

kernel_entry_points!(Avx512, 12, "avx512f,avx2,fma");
