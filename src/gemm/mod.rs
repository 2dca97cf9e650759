//! Matrix multiplication: the one entry point for every dense product in the crate.
//!
//! [`gemm`] computes `C ← α·A·B + β·C` for row-major `ndarray` views. A transposed
//! operand is simply a transposed view (`a.t()`): both backends read any strides.
//!
//! - Default build: the crate's own packed, cache-blocked kernel: the five BLIS
//!   loops, packing, and a micro-kernel per instruction set (AVX-512F, AVX2 + FMA, and the portable `wide` one: SSE2 on
//!   x86-64, NEON on aarch64), the best the CPU has chosen once at run time
//!   ([`isa`], [`set_isa`], `FEEDFORWARD_ISA`).
//! - Feature `blas` (or a provider feature: `openblas`, `blis`): `blas.rs`, which
//!   hands the product to `cblas_sgemm` (except products of at most four rows,
//!   such as batch-1 inference, which BLAS runs on one thread: those go to the
//!   crate's few-rows kernel).
//!
//! [`mod@reference`] is a plain triple loop that the tests compare both against.
//!
//! [`bf16`] holds the products with bfloat16 operands and `f32` sums
//! ([`crate::Precision::Bf16`]), the same bits on every instruction set.
//!
//! # The crate's own kernel
//!
//! `loops.rs` holds the five loops, `pack.rs` the packing, `small.rs` the
//! few-rows kernel, `kernel.rs` the micro-kernel written once over a `Simd`
//! vector trait, and `avx512.rs`, `avx2.rs`, `portable.rs` one instruction set
//! each: its vector operations and its tile. `crate::cpu` detects the CPU's
//! features once and caches the choice; `FEEDFORWARD_ISA` or [`set_isa`]
//! choose a lower level.
//!
//! Within one instruction set, results are bit-identical for any thread count
//! and run to run. AVX-512 and AVX2 compute every element with the same fused
//! multiply-adds in the same order, so they agree with each other too; the SSE2
//! kernel multiplies and adds separately, and differs in the last bits.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
pub mod bf16;
#[cfg(feature = "blas")]
pub mod blas;
mod epilogue;
mod kernel;
mod loops;
mod pack;
mod portable;
pub mod reference;
mod small;

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::error::{Error, Result, shape_str};

pub use crate::cpu::{ISA_VARIABLE, Isa, bf16_instruction_is_slow, isa, isa_from_env, set_isa};
pub use epilogue::Epilogue;
pub use loops::{KC, PARALLEL_THRESHOLD, reserve_buffers};

/// Runs `$body` with the type `$k` naming the [`kernel::Kernel`] of the
/// instruction set in use ([`isa`]): the one place the choice is read.
macro_rules! with_kernel {
    ($k:ident => $body:expr) => {
        match $crate::gemm::isa() {
            #[cfg(target_arch = "x86_64")]
            $crate::gemm::Isa::Avx512 | $crate::gemm::Isa::Avx512Bf16 => {
                type $k = $crate::gemm::avx512::Avx512;
                $body
            }
            #[cfg(target_arch = "x86_64")]
            $crate::gemm::Isa::Avx2 => {
                type $k = $crate::gemm::avx2::Avx2;
                $body
            }
            _ => {
                type $k = $crate::gemm::portable::Portable;
                $body
            }
        }
    };
}
pub(crate) use with_kernel;

/// Which implementation [`gemm`] dispatches to in this build: `"simd"` (the
/// crate's own kernel, on [`isa`]) or `"blas"`.
pub const BACKEND: &str = if cfg!(feature = "blas") {
    "blas"
} else {
    "simd"
};

/// What computes the products, for reports: `"simd avx2"`, or on a BLAS build
/// the library (`"blas openblas Haswell"`) and then the crate's own kernel,
/// which takes the few-rows products (`"blas openblas Haswell, simd avx2"`).
///
/// ```
/// let report = feedforward::gemm::kernel_description();
/// assert!(report.contains(feedforward::gemm::isa().name()));
/// ```
pub fn kernel_description() -> String {
    #[cfg(feature = "blas")]
    return format!("blas {}, simd {}", blas::provider(), isa());
    #[cfg(not(feature = "blas"))]
    format!("simd {}", isa())
}

/// Computes `C ← α·A·B + β·C`.
///
/// Shapes: `A` is `m × k`, `B` is `k × n`, `C` is `m × n`. Any operand may be a
/// transposed or strided view. When `β = 0`, `C` is not read (it may hold NaN).
///
/// Runs on the current rayon pool's threads when the product is large enough to
/// be worth it; the result is bit-identical for any thread count on the default
/// backend (work is split over output blocks only, never over `k`).
///
/// # Errors
/// [`Error::Shape`] when the inner or outer dimensions disagree.
///
/// # Example
/// ```
/// use ndarray::{array, Array2};
/// let a = array![[1.0f32, 2.0], [3.0, 4.0]];
/// let b = array![[5.0f32, 6.0], [7.0, 8.0]];
/// let mut c = Array2::zeros((2, 2));
/// // C = Aᵀ·B
/// feedforward::gemm::gemm(1.0, a.t(), b.view(), 0.0, c.view_mut())?;
/// assert_eq!(c, array![[26.0, 30.0], [38.0, 44.0]]);
/// # Ok::<(), feedforward::Error>(())
/// ```
pub fn gemm(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    c: ArrayViewMut2<'_, f32>,
) -> Result<()> {
    check_shapes(&a, &b, &c)?;
    #[cfg(feature = "blas")]
    {
        // A product of a few rows (batch-1 inference) runs on one thread in
        // OpenBLAS; the crate's own few-rows kernel splits B's columns over the
        // pool instead, so each core streams only its share of the weights. All
        // such products go there, so that OpenBLAS's own threads are not woken
        // between them to compete with rayon's for the cores.
        if is_few_rows(&a, &b) {
            own(alpha, a, b, beta, c, Parallelism::auto(), None);
        } else {
            blas::sgemm(alpha, a, b, beta, c);
        }
    }
    #[cfg(not(feature = "blas"))]
    {
        own(alpha, a, b, beta, c, Parallelism::auto(), None);
    }
    Ok(())
}

/// Computes `C ← A·B`, then `C[i, j] ← g(C[i, j] + bias[j])` by `epilogue`: a
/// dense layer's forward product, with its bias and (for ReLU) its activation.
///
/// Shapes as in [`gemm`]; the epilogue has one bias per column of C. The default
/// backend applies the epilogue to each tile of C as soon as it is complete, while
/// it is still in cache; BLAS builds apply it in one pass after the product. The
/// results are the same bits either way as a product followed by that pass.
/// Afterwards [`Epilogue::saw_non_finite`] tells whether any `C + bias` was NaN or
/// infinite.
///
/// # Errors
/// [`Error::Shape`] when the dimensions disagree, or the bias is not one per column.
///
/// # Example
/// ```
/// use ndarray::{array, Array2};
/// use feedforward::gemm::{gemm_bias, Epilogue};
/// let x = array![[1.0f32, 2.0]];
/// let w = array![[1.0f32, -1.0], [1.0, -1.0]];
/// let mut z = Array2::zeros((1, 2));
/// let relu = Epilogue::new(&[0.5, 0.5], true);
/// gemm_bias(x.view(), w.view(), z.view_mut(), &relu)?;
/// assert_eq!(z, array![[3.5, 0.0]]); // max(3 + 0.5, 0), max(-3 + 0.5, 0)
/// assert!(!relu.saw_non_finite());
/// # Ok::<(), feedforward::Error>(())
/// ```
pub fn gemm_bias(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    c: ArrayViewMut2<'_, f32>,
    epilogue: &Epilogue<'_>,
) -> Result<()> {
    check_shapes(&a, &b, &c)?;
    check_bias(epilogue, &c, "gemm_bias: one bias per column of C")?;
    #[cfg(feature = "blas")]
    {
        if is_few_rows(&a, &b) {
            own(1.0, a, b, 0.0, c, Parallelism::auto(), Some(epilogue));
        } else {
            let mut c = c;
            blas::sgemm(1.0, a, b, 0.0, c.view_mut());
            apply_epilogue(epilogue, &mut c);
        }
    }
    #[cfg(not(feature = "blas"))]
    {
        own(1.0, a, b, 0.0, c, Parallelism::auto(), Some(epilogue));
    }
    Ok(())
}

/// `C ← α·A·B + β·C` with the crate's own kernel on [`isa`], on the threads
/// `par` allows: in every build, so that it can be tested and benchmarked beside
/// BLAS, and with an explicit thread choice.
///
/// Same contract as [`gemm`].
///
/// # Errors
/// [`Error::Shape`] when the dimensions disagree.
///
/// # Example
/// ```
/// use feedforward::gemm::{gemm_with, Parallelism};
/// use ndarray::{array, Array2};
/// let a = array![[1.0f32, 2.0]];
/// let b = array![[3.0f32], [4.0]];
/// let mut c = Array2::zeros((1, 1));
/// gemm_with(1.0, a.view(), b.view(), 0.0, c.view_mut(), Parallelism::None)?;
/// assert_eq!(c[[0, 0]], 11.0);
/// # Ok::<(), feedforward::Error>(())
/// ```
pub fn gemm_with(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    c: ArrayViewMut2<'_, f32>,
    par: Parallelism,
) -> Result<()> {
    check_shapes(&a, &b, &c)?;
    own(alpha, a, b, beta, c, par, None);
    Ok(())
}

/// Whether a product is one of very few rows (at most four, as in batch-1
/// inference) with a row-major B: the crate's few-rows kernel, which splits
/// B's columns over threads where BLAS libraries use one.
#[cfg(feature = "blas")]
pub(crate) fn is_few_rows(a: &ArrayView2<'_, f32>, b: &ArrayView2<'_, f32>) -> bool {
    (1..=small::SMALL_M).contains(&a.nrows()) && b.strides()[1] == 1
}

/// The crate's own kernel without the shape check (the caller has done it),
/// followed by `epilogue` on each tile of C once its last block of `k` is in.
pub(crate) fn own(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    mut c: ArrayViewMut2<'_, f32>,
    par: Parallelism,
    epilogue: Option<&Epilogue<'_>>,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 || alpha == 0.0 {
        scale_c(beta, &mut c);
        if let Some(e) = epilogue {
            apply_epilogue(e, &mut c);
        }
        return;
    }
    // The few-rows path streams B once, from memory or L2: splitting its columns
    // over threads pays off earlier (each core then keeps its share of B in its
    // own L2), so it applies its own threshold.
    let par = if m * n * k < PARALLEL_THRESHOLD && m > small::SMALL_M {
        Parallelism::None
    } else {
        par
    };
    let (a, b, c) = (
        MatRef::from_view(&a),
        MatRef::from_view(&b),
        MatMut::from_view(&mut c),
    );
    // SAFETY: the views are valid for their shapes and borrowed for this call;
    // `with_kernel!` picks a kernel this CPU runs.
    with_kernel!(K => unsafe {
        if m <= small::SMALL_M && b.cs == 1 {
            let product = kernel::SmallBlock { m, n, k, alpha, a, b, beta, c, epilogue };
            small::few_rows_product::<K>(&product, par);
        } else {
            loops::packed_product::<K>(m, n, k, alpha, a, b, beta, c, par, epilogue, loops::Operands::F32);
        }
    })
}

/// Applies `epilogue` to the whole of C in one pass (in parallel when C is contiguous).
pub(crate) fn apply_epilogue(epilogue: &Epilogue<'_>, c: &mut ArrayViewMut2<'_, f32>) {
    let (rows, cols) = c.dim();
    match c.as_slice_mut() {
        Some(s) => epilogue.apply(s),
        // SAFETY: the view is valid and writable over its shape and strides.
        None => unsafe { epilogue.apply_block(MatMut::from_view(c), rows, cols, 0) },
    }
}

/// Checks that `epilogue` has one bias per column of C (`context` names the caller).
pub(crate) fn check_bias(
    epilogue: &Epilogue<'_>,
    c: &ArrayViewMut2<'_, f32>,
    context: &'static str,
) -> Result<()> {
    if epilogue.cols() != c.ncols() {
        return Err(Error::Shape {
            context,
            expected: format!("{} biases", c.ncols()),
            got: format!("{} biases", epilogue.cols()),
        });
    }
    Ok(())
}

/// Checks `A: m × k`, `B: k × n`, `C: m × n`.
pub(crate) fn check_shapes(
    a: &ArrayView2<'_, f32>,
    b: &ArrayView2<'_, f32>,
    c: &ArrayViewMut2<'_, f32>,
) -> Result<()> {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    if k != k2 {
        return Err(Error::Shape {
            context: "gemm: B must have as many rows as A has columns",
            expected: shape_str(k, n),
            got: shape_str(k2, n),
        });
    }
    if c.dim() != (m, n) {
        return Err(Error::Shape {
            context: "gemm: C must be rows(A) x cols(B)",
            expected: shape_str(m, n),
            got: shape_str(c.nrows(), c.ncols()),
        });
    }
    Ok(())
}

/// Each instruction set's tile, as its kernel states it.
impl crate::cpu::Isa {
    /// The micro-kernel's tile, `(MR, NR)`: rows × columns of C per register block.
    pub fn tile(self) -> (usize, usize) {
        use kernel::Kernel;
        fn of<K: Kernel>() -> (usize, usize) {
            (K::MR, K::NR)
        }
        match self {
            #[cfg(target_arch = "x86_64")]
            crate::cpu::Isa::Avx512 | crate::cpu::Isa::Avx512Bf16 => of::<avx512::Avx512>(),
            #[cfg(target_arch = "x86_64")]
            crate::cpu::Isa::Avx2 => of::<avx2::Avx2>(),
            // Not compiled for other targets: the tiles they would have.
            #[cfg(not(target_arch = "x86_64"))]
            crate::cpu::Isa::Avx512 | crate::cpu::Isa::Avx512Bf16 => (12, 32),
            #[cfg(not(target_arch = "x86_64"))]
            crate::cpu::Isa::Avx2 => (6, 16),
            crate::cpu::Isa::Portable => of::<portable::Portable>(),
        }
    }
}

/// How many threads a kernel may use: the explicit form of the "is it worth it" decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parallelism {
    /// Run on the calling thread only.
    None,
    /// Split the work into blocks for `n` threads and run them as rayon tasks
    /// on the current pool. `n` sets how the work is divided, not how many
    /// threads the pool has (run inside a pool of `n` threads for that); the
    /// result does not depend on it.
    Split(usize),
}

impl Parallelism {
    /// `Split(n)` with the current pool's thread count, or `None` when it has one thread.
    pub fn auto() -> Self {
        match rayon::current_num_threads() {
            0 | 1 => Parallelism::None,
            n => Parallelism::Split(n),
        }
    }

    /// The number of threads this allows.
    pub fn threads(self) -> usize {
        match self {
            Parallelism::None => 1,
            Parallelism::Split(n) => n.max(1),
        }
    }
}

/// A read-only strided matrix: element `(i, j)` lives at `ptr + i·rs + j·cs`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MatRef {
    pub ptr: *const f32,
    pub rows: usize,
    pub cols: usize,
    pub rs: isize,
    pub cs: isize,
}

/// A writable strided matrix, laid out like [`MatRef`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct MatMut {
    pub ptr: *mut f32,
    pub rows: usize,
    pub cols: usize,
    pub rs: isize,
    pub cs: isize,
}

// SAFETY: the pointers are only dereferenced inside `gemm` calls, which borrow the
// underlying views for their whole duration; parallel tasks write disjoint blocks of C.
unsafe impl Send for MatRef {}
unsafe impl Sync for MatRef {}
unsafe impl Send for MatMut {}
unsafe impl Sync for MatMut {}

impl MatRef {
    pub(crate) fn from_view(v: &ArrayView2<'_, f32>) -> Self {
        let s = v.strides();
        MatRef {
            ptr: v.as_ptr(),
            rows: v.nrows(),
            cols: v.ncols(),
            rs: s[0],
            cs: s[1],
        }
    }
}

impl MatMut {
    pub(crate) fn from_view(v: &mut ArrayViewMut2<'_, f32>) -> Self {
        let s = v.strides();
        let (rs, cs) = (s[0], s[1]);
        MatMut {
            ptr: v.as_mut_ptr(),
            rows: v.nrows(),
            cols: v.ncols(),
            rs,
            cs,
        }
    }
}

/// `C ← β·C` (with `β = 0` writing zeros without reading): the whole product when `k = 0` or `α = 0`.
pub(crate) fn scale_c(beta: f32, c: &mut ArrayViewMut2<'_, f32>) {
    if beta == 0.0 {
        c.fill(0.0);
    } else if beta != 1.0 {
        c.map_inplace(|x| *x *= beta);
    }
}

#[cfg(test)]
mod geometry_tests;
