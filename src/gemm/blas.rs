//! The BLAS backend: every product goes to `cblas_sgemm`.
//!
//! Views in row-major or column-major layout are passed through as they are (a
//! column-major view is a transposed row-major one); anything else is copied to a
//! contiguous array first. The thread count of OpenBLAS follows the current rayon
//! pool, so one setting drives both and they never oversubscribe the cores.

use cblas_sys::{CBLAS_LAYOUT, CBLAS_TRANSPOSE, cblas_sgemm};
use ndarray::{Array2, ArrayView2, ArrayViewMut2};

/// How a view can be described to BLAS: transpose flag and leading dimension.
fn layout(v: &ArrayView2<'_, f32>) -> Option<(CBLAS_TRANSPOSE, i32)> {
    let (r, c) = v.dim();
    let s = v.strides();
    if (s[1] == 1 || c <= 1) && (r <= 1 || s[0] >= c.max(1) as isize) {
        let ld = if r <= 1 { c.max(1) as isize } else { s[0] };
        return i32::try_from(ld)
            .ok()
            .map(|ld| (CBLAS_TRANSPOSE::CblasNoTrans, ld));
    }
    if (s[0] == 1 || r <= 1) && (c <= 1 || s[1] >= r.max(1) as isize) {
        let ld = if c <= 1 { r.max(1) as isize } else { s[1] };
        return i32::try_from(ld)
            .ok()
            .map(|ld| (CBLAS_TRANSPOSE::CblasTrans, ld));
    }
    None
}

/// `C ← α·A·B + β·C` through `cblas_sgemm` (shapes already checked).
pub(crate) fn sgemm(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    mut c: ArrayViewMut2<'_, f32>,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 || alpha == 0.0 {
        super::scale_c(beta, &mut c);
        return;
    }
    let too_big = [m, n, k].iter().any(|&d| i32::try_from(d).is_err());
    if too_big {
        super::own(alpha, a, b, beta, c, super::Parallelism::auto(), None);
        return;
    }
    sync_threads();
    let c_view = c.view();
    let c_row_major = matches!(layout(&c_view), Some((CBLAS_TRANSPOSE::CblasNoTrans, _)));
    let c_col_major = matches!(layout(&c_view), Some((CBLAS_TRANSPOSE::CblasTrans, _)));
    if c_row_major {
        row_major(alpha, a, b, beta, c);
    } else if c_col_major {
        // Cᵀ = Bᵀ·Aᵀ, and Cᵀ is row-major.
        row_major(alpha, b.t(), a.t(), beta, c.reversed_axes());
    } else {
        let mut tmp: Array2<f32> = if beta == 0.0 {
            Array2::zeros((m, n))
        } else {
            c.to_owned()
        };
        row_major(alpha, a, b, beta, tmp.view_mut());
        c.assign(&tmp);
    }
}

/// The call itself, for a row-major C.
fn row_major(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    mut c: ArrayViewMut2<'_, f32>,
) {
    let a_owned;
    let (a, (ta, lda)) = match layout(&a) {
        Some(l) => (a, l),
        None => {
            a_owned = a.as_standard_layout().into_owned();
            let l = (CBLAS_TRANSPOSE::CblasNoTrans, a_owned.ncols().max(1) as i32);
            (a_owned.view(), l)
        }
    };
    let b_owned;
    let (b, (tb, ldb)) = match layout(&b) {
        Some(l) => (b, l),
        None => {
            b_owned = b.as_standard_layout().into_owned();
            let l = (CBLAS_TRANSPOSE::CblasNoTrans, b_owned.ncols().max(1) as i32);
            (b_owned.view(), l)
        }
    };
    let (m, k) = a.dim();
    let n = b.ncols();
    let ldc = {
        let cv = c.view();
        match layout(&cv) {
            Some((_, ld)) => ld,
            None => n.max(1) as i32,
        }
    };
    // SAFETY: the layouts above describe the views exactly; dimensions fit in i32
    // (checked by the caller) and C does not alias A or B (it is borrowed mutably).
    unsafe {
        cblas_sgemm(
            CBLAS_LAYOUT::CblasRowMajor,
            ta,
            tb,
            m as i32,
            n as i32,
            k as i32,
            alpha,
            a.as_ptr(),
            lda,
            b.as_ptr(),
            ldb,
            beta,
            c.as_mut_ptr(),
            ldc,
        );
    }
}

#[cfg(feature = "openblas")]
mod openblas {
    use std::sync::atomic::{AtomicUsize, Ordering};

    unsafe extern "C" {
        fn openblas_set_num_threads(num_threads: std::ffi::c_int);
        fn openblas_get_corename() -> *const std::ffi::c_char;
    }

    static THREADS: AtomicUsize = AtomicUsize::new(0);

    /// Makes OpenBLAS use as many threads as the current rayon pool.
    pub(crate) fn sync_threads() {
        let want = rayon::current_num_threads().max(1);
        if THREADS.swap(want, Ordering::Relaxed) != want {
            // SAFETY: a plain setter in OpenBLAS.
            unsafe { openblas_set_num_threads(want as std::ffi::c_int) };
        }
    }

    /// Whether this CPU runs AVX-512 but OpenBLAS chose kernels without it.
    ///
    /// Older OpenBLAS releases (Debian 12 ships 0.3.21) do not recognise newer
    /// Xeons and fall back to generic kernels at about a fifth of the speed;
    /// `OPENBLAS_CORETYPE=SkylakeX`, read when the library loads, restores them.
    pub fn is_fallback_kernel() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            if !std::arch::is_x86_feature_detected!("avx512f") {
                return false;
            }
            let core = core_name().to_ascii_lowercase();
            !["skylakex", "cooperlake", "sapphirerapids"]
                .iter()
                .any(|c| core.contains(c))
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    /// The name of the kernel set OpenBLAS chose for this CPU (e.g. `"SkylakeX"`).
    pub fn core_name() -> String {
        // SAFETY: OpenBLAS returns a static NUL-terminated string.
        unsafe {
            let p = openblas_get_corename();
            if p.is_null() {
                return String::from("unknown");
            }
            std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

#[cfg(feature = "openblas")]
use openblas::sync_threads;
#[cfg(feature = "openblas")]
pub use openblas::{core_name, is_fallback_kernel};

/// The library and the kernels it chose for this CPU, for reports:
/// `"openblas Haswell"`, `"blis zen3"`, or `"blas"` when the provider is the
/// final binary's choice.
pub fn provider() -> String {
    #[cfg(feature = "openblas")]
    return format!("openblas {}", openblas::core_name());
    #[cfg(feature = "blis")]
    return format!("blis {}", blis::core_name());
    #[cfg(not(any(feature = "openblas", feature = "blis")))]
    String::from("blas")
}

#[cfg(feature = "blis")]
mod blis {
    use std::sync::atomic::{AtomicUsize, Ordering};

    unsafe extern "C" {
        /// `dim_t` is BLIS's 64-bit integer (its default build, and Debian's).
        fn bli_thread_set_num_threads(threads: i64);
        fn bli_arch_query_id() -> std::ffi::c_int;
        fn bli_arch_string(id: std::ffi::c_int) -> *const std::ffi::c_char;
    }

    static THREADS: AtomicUsize = AtomicUsize::new(0);

    /// Makes BLIS use as many threads as the current rayon pool.
    pub(crate) fn sync_threads() {
        let want = rayon::current_num_threads().max(1);
        if THREADS.swap(want, Ordering::Relaxed) != want {
            // SAFETY: a plain setter in BLIS.
            unsafe { bli_thread_set_num_threads(want as i64) };
        }
    }

    /// The name of the sub-configuration BLIS chose for this CPU (e.g. `"zen3"`).
    pub(crate) fn core_name() -> String {
        // SAFETY: BLIS returns a static NUL-terminated string for its own id.
        unsafe {
            let p = bli_arch_string(bli_arch_query_id());
            if p.is_null() {
                return String::from("unknown");
            }
            std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

#[cfg(feature = "blis")]
use blis::sync_threads;

/// A BLAS chosen by the final binary has no thread setting we can reach; it
/// keeps its own.
#[cfg(not(any(feature = "openblas", feature = "blis")))]
fn sync_threads() {}
