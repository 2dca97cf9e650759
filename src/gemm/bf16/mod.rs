//! Matrix products with bfloat16 operands and `f32` sums: the products of
//! [`crate::Precision::Bf16`], the same bits on every CPU.
//!
//! [`gemm_bf16`] computes `C ← A·B` (or `C ← C + A·B`) where every element of
//! A and B is first rounded to bf16 ([`to_bf16`]: nearest even, magnitudes
//! below 2⁻⁵⁶ flushed to zero) and the products are summed in `f32`:
//!
//! ```text
//! C[i, j] = Σ over blocks of k of ( Σ over pairs p in the block, from 0:
//!             acc ← acc + a[i, 2p+1]·b[2p+1, j],  then  acc ← acc + a[i, 2p]·b[2p, j] )
//! ```
//!
//! each `←` one fused multiply-add rounded to nearest even: exactly what
//! `VDPBF16PS` does for a pair of steps ([`dot_pair`] states the instruction
//! in full, and its tests hold it to the hardware lane for lane). The blocks of
//! `k` are those of the `f32` kernel.
//!
//! - On [`Isa::Avx512Bf16`] (Zen 4, Cooper Lake, Sapphire Rapids) the products
//!   run on that instruction: 32 multiply-adds each, twice the `f32` rate on
//!   AMD's cores. Intel's issue it at half that rate
//!   ([`super::bf16_instruction_is_slow`]); there only products of fewer than
//!   [`FEW_ROWS`] rows use it, and the others are emulated, which is faster.
//! - On every other level the same sums run as an `f32` product of operands
//!   rounded to bf16, with the two steps of each pair swapped so that the odd
//!   one is added first: the emulation. The `f32` kernel rounds and swaps as it
//!   packs its blocks. Because the flush keeps every partial
//!   sum away from the denormal range, plain fused multiply-adds are exact
//!   there (see [`mod@round`]); so both paths give the same bits, which the
//!   tests check on this crate's own kernels at every level.
//!
//! NaN payloads are the one exception: a NaN in an operand comes out as a NaN
//! on every path, but which NaN may differ.
//!
//! Weights that are multiplied many times (inference) can be rounded and packed
//! once: [`PackedWeights`].
//!
//! # Example
//! ```
//! use feedforward::gemm::bf16::gemm_bf16;
//! use ndarray::{array, Array2};
//! let a = array![[1.0f32, 2.0, 3.0]];
//! let b = array![[1.0f32], [1.0 / 3.0], [0.5]];
//! let mut c = Array2::zeros((1, 1));
//! gemm_bf16(a.view(), b.view(), c.view_mut(), false)?;
//! // 1/3 is 0.333984375 in bf16: 1 + 2·0.333984375 + 1.5
//! assert_eq!(c[[0, 0]], 3.16796875);
//! # Ok::<(), feedforward::Error>(())
//! ```

#[cfg(target_arch = "x86_64")]
mod avx512bf16;
mod instruction;
mod operands;
pub mod round;

use std::cell::RefCell;
use std::thread::LocalKey;

use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};

pub use instruction::{dot_pair, dot_pairs_instruction};
pub use round::{FLUSH_BELOW, from_bf16, round_to_bf16, to_bf16};

use super::loops::{Operands, packed_product};
use super::pack::Packing;
use super::small::SMALL_M;
use super::{
    Epilogue, Isa, MatMut, MatRef, PARALLEL_THRESHOLD, Parallelism, check_bias, check_shapes,
    with_kernel,
};
use crate::error::{Error, Result};
use operands::{Depth, padded_depth};

/// Whether bf16 products may run on `VDPBF16PS` now ([`Isa::Avx512Bf16`] in
/// use), rather than emulated: all of them, or, on a CPU where the instruction
/// is slow ([`super::bf16_instruction_is_slow`]), those of fewer than
/// [`FEW_ROWS`] rows.
pub fn uses_instruction() -> bool {
    super::isa() == Isa::Avx512Bf16
}

/// Products of fewer rows than this run on `VDPBF16PS` even on a CPU where it
/// is slow: with few rows the emulation's copies and `f32` tiles cost more than
/// the instruction's lower rate. Measured on a Sapphire Rapids-class Xeon (the
/// W1 network's forward pass): the instruction is 3× faster at 1 to 12 rows,
/// level at 48, and the emulation 1.4× faster from 96.
pub const FEW_ROWS: usize = 48;

/// Whether a product of `m` rows runs on `VDPBF16PS` (the same bits either way).
fn on_instruction(m: usize) -> bool {
    uses_instruction() && (m < FEW_ROWS || !super::bf16_instruction_is_slow())
}

/// Whether products may be emulated now.
fn may_emulate() -> bool {
    !uses_instruction() || super::bf16_instruction_is_slow()
}

/// `C ← A·B`, or `C ← C + A·B` with `accumulate`, in bf16 with `f32` sums
/// (see the [module docs](self)).
///
/// Shapes: `A` is `m × k`, `B` is `k × n`, `C` is `m × n`; any operand may be
/// a transposed or strided view. Without `accumulate`, C is not read.
/// Bit-identical for any thread count and on every instruction set.
///
/// # Errors
/// [`Error::Shape`] when the dimensions disagree.
pub fn gemm_bf16(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    c: ArrayViewMut2<'_, f32>,
    accumulate: bool,
) -> Result<()> {
    check_shapes(&a, &b, &c)?;
    product(a, Weights::View(b), accumulate, c, None);
    Ok(())
}

/// `C ← g(A·B + bias)` in bf16 with `f32` sums: a dense layer's forward
/// product, as [`super::gemm_bias`] in `f32`. The bias and the activation are
/// applied in `f32`.
///
/// # Errors
/// [`Error::Shape`] when the dimensions disagree, or the bias is not one per column.
pub fn gemm_bf16_bias(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    c: ArrayViewMut2<'_, f32>,
    epilogue: &Epilogue<'_>,
) -> Result<()> {
    check_shapes(&a, &b, &c)?;
    check_bias(epilogue, &c, "gemm_bf16_bias: one bias per column of C")?;
    product(a, Weights::View(b), false, c, Some(epilogue));
    Ok(())
}

/// A `k × n` weight matrix rounded to bf16 and packed once for the products of
/// the instruction set in use, so that [`PackedWeights::gemm_bias`] neither
/// converts nor packs it again.
///
/// # Example
/// ```
/// use feedforward::gemm::{Epilogue, bf16::{PackedWeights, gemm_bf16_bias}};
/// use ndarray::{array, Array2};
/// let w = array![[0.5f32, -1.0], [0.25, 2.0]];
/// let x = array![[1.0f32, 3.0]];
/// let packed = PackedWeights::new(w.view());
/// let (mut once, mut again) = (Array2::zeros((1, 2)), Array2::zeros((1, 2)));
/// let relu = Epilogue::new(&[0.0, 0.0], true);
/// packed.gemm_bias(x.view(), once.view_mut(), &relu)?;
/// gemm_bf16_bias(x.view(), w.view(), again.view_mut(), &relu)?;
/// assert_eq!(once, again);
/// assert_eq!(once, array![[1.25, 5.0]]);
/// # Ok::<(), feedforward::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct PackedWeights {
    k: usize,
    n: usize,
    /// For `VDPBF16PS`: [`operands::pack_b`]'s slivers.
    pairs: Option<Vec<u32>>,
    /// For the emulation: the rounded, pair-swapped `k' × n` copy, row-major.
    swapped: Option<Vec<f32>>,
}

impl PackedWeights {
    /// Rounds and packs `b` (`k × n`, any strides) for the current instruction
    /// set: for the instruction, the emulation, or (where the instruction is
    /// slow and serves only products of few rows) both.
    pub fn new(b: ArrayView2<'_, f32>) -> Self {
        let (k, n) = b.dim();
        let b = MatRef::from_view(&b);
        // SAFETY (both): the view is valid over its shape and strides.
        let pairs = uses_instruction().then(|| unsafe {
            let mut out = Vec::new();
            operands::pack_b(b, &mut out);
            out
        });
        let swapped = may_emulate().then(|| unsafe {
            let mut out = Vec::new();
            operands::swapped_copy(b, Depth::Rows, &mut out);
            out
        });
        PackedWeights {
            k,
            n,
            pairs,
            swapped,
        }
    }

    /// `(k, n)`: the shape of the matrix it was made from.
    pub fn dim(&self) -> (usize, usize) {
        (self.k, self.n)
    }

    /// `C ← g(A·W + bias)` as [`gemm_bf16_bias`] with the weights this holds;
    /// the same bits. Weights packed for one instruction set and used on
    /// another (after [`super::set_isa`]) are repacked for the call.
    ///
    /// # Errors
    /// [`Error::Shape`] when the dimensions disagree, or the bias is not one per column.
    pub fn gemm_bias(
        &self,
        a: ArrayView2<'_, f32>,
        c: ArrayViewMut2<'_, f32>,
        epilogue: &Epilogue<'_>,
    ) -> Result<()> {
        if a.ncols() != self.k || c.dim() != (a.nrows(), self.n) {
            return Err(Error::Shape {
                context: "PackedWeights::gemm_bias: A is m × k, C is m × n for k × n weights",
                expected: format!("A ? × {}, C {} × {}", self.k, a.nrows(), self.n),
                got: format!(
                    "A {} × {}, C {} × {}",
                    a.nrows(),
                    a.ncols(),
                    c.nrows(),
                    c.ncols()
                ),
            });
        }
        check_bias(
            epilogue,
            &c,
            "PackedWeights::gemm_bias: one bias per column of C",
        )?;
        product(a, Weights::Packed(self), false, c, Some(epilogue));
        Ok(())
    }
}

/// The B operand of a product: a view, or weights packed beforehand.
enum Weights<'a> {
    View(ArrayView2<'a, f32>),
    Packed(&'a PackedWeights),
}

thread_local! {
    static A_PAIRS: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
    static B_PAIRS: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
    static A_SWAPPED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static B_SWAPPED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's scratch buffer `key` (kept between calls, so that
/// a steady stream of products allocates nothing), or on a new one if it is
/// in use (a product started inside another on the same thread).
fn with_scratch<T: 'static, R>(
    key: &'static LocalKey<RefCell<Vec<T>>>,
    f: impl FnOnce(&mut Vec<T>) -> R,
) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => f(&mut buf),
        Err(_) => f(&mut Vec::new()),
    })
}

/// The product after the shape checks, on the path [`uses_instruction`] names.
fn product(
    a: ArrayView2<'_, f32>,
    b: Weights<'_>,
    accumulate: bool,
    mut c: ArrayViewMut2<'_, f32>,
    epilogue: Option<&Epilogue<'_>>,
) {
    let (m, k) = a.dim();
    let n = c.ncols();
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(0.0);
        }
        if let Some(e) = epilogue {
            super::apply_epilogue(e, &mut c);
        }
        return;
    }
    let par = if m * n * k < PARALLEL_THRESHOLD && m > 4 {
        Parallelism::None
    } else {
        Parallelism::auto()
    };
    #[cfg(target_arch = "x86_64")]
    if on_instruction(m) {
        with_scratch(&A_PAIRS, |a_pairs| {
            // SAFETY: the view is valid over its shape and strides.
            let a_layout = unsafe { operands::convert_a(MatRef::from_view(&a), a_pairs) };
            let run = |packed_b: &[u32], c: MatMut| {
                let p = avx512bf16::Product {
                    a: a_pairs,
                    a_layout,
                    m,
                    k,
                    n,
                    b: packed_b,
                    accumulate,
                    c,
                    epilogue,
                };
                // SAFETY: the CPU has AVX512-BF16 (the level in use); C is
                // borrowed for the call and aliases neither operand.
                unsafe { avx512bf16::product(&p, par) };
            };
            let c = MatMut::from_view(&mut c);
            match b {
                Weights::Packed(PackedWeights {
                    pairs: Some(pairs), ..
                }) => run(pairs, c),
                Weights::Packed(w) => with_scratch(&B_PAIRS, |packed| {
                    let b = w.unpacked();
                    // SAFETY: the view is valid.
                    unsafe { operands::pack_b(MatRef::from_view(&b.view()), packed) };
                    run(packed, c)
                }),
                Weights::View(b) => with_scratch(&B_PAIRS, |packed| {
                    // SAFETY: the view is valid.
                    unsafe { operands::pack_b(MatRef::from_view(&b), packed) };
                    run(packed, c)
                }),
            }
        });
        return;
    }
    emulated(a, b, accumulate, c, par, epilogue);
}

/// The emulation: an `f32` product of the operands rounded to bf16, with the
/// two steps of every pair swapped. Beyond a few rows the `f32` kernel's
/// packing rounds and swaps them as it packs ([`Packing::Bf16Swapped`]);
/// otherwise (the few-rows kernel reads its operands where they are) the product
/// runs on rounded, pair-swapped copies.
fn emulated(
    a: ArrayView2<'_, f32>,
    b: Weights<'_>,
    accumulate: bool,
    mut c: ArrayViewMut2<'_, f32>,
    par: Parallelism,
    epilogue: Option<&Epilogue<'_>>,
) {
    let beta = if accumulate { 1.0 } else { 0.0 };
    let (m, k) = a.dim();
    if m > SMALL_M {
        let n = c.ncols();
        let packed;
        let (b, b_packing) = match b {
            Weights::View(b) => (MatRef::from_view(&b), Packing::Bf16Swapped),
            Weights::Packed(PackedWeights {
                swapped: Some(b2), ..
            }) => (
                MatRef::from_view(
                    &ArrayView2::from_shape((padded_depth(k), n), &b2[..]).expect("packed k' × n"),
                ),
                Packing::Copy,
            ),
            Weights::Packed(w) => {
                packed = w.unpacked();
                (MatRef::from_view(&packed.view()), Packing::Bf16Swapped)
            }
        };
        let operands = Operands {
            a: Packing::Bf16Swapped,
            b: b_packing,
        };
        let (a, c) = (MatRef::from_view(&a), MatMut::from_view(&mut c));
        // SAFETY: the operands are valid for their shapes and borrowed for
        // the call, C aliases neither; the kernel is one this CPU runs. A (and
        // B unless already swapped) have k ≤ k' steps, padded as they are packed.
        with_kernel!(K => unsafe {
            packed_product::<K>(m, n, padded_depth(k), 1.0, a, b, beta, c, par, epilogue, operands)
        });
        return;
    }
    with_scratch(&A_SWAPPED, |a_buf| {
        // SAFETY: the view is valid; the copy lives in `a_buf` for the call.
        let a2 = unsafe {
            view_of(operands::swapped_copy(
                MatRef::from_view(&a),
                Depth::Columns,
                a_buf,
            ))
        };
        let (k2, n) = (a2.ncols(), c.ncols());
        match b {
            Weights::Packed(PackedWeights {
                swapped: Some(b2), ..
            }) => {
                let b2 = ArrayView2::from_shape((k2, n), &b2[..]).expect("packed k' × n");
                super::own(1.0, a2, b2, beta, c, par, epilogue);
            }
            Weights::Packed(w) => {
                let b = w.unpacked();
                with_scratch(&B_SWAPPED, |b_buf| {
                    // SAFETY: as above.
                    let b2 = unsafe {
                        view_of(operands::swapped_copy(
                            MatRef::from_view(&b.view()),
                            Depth::Rows,
                            b_buf,
                        ))
                    };
                    super::own(1.0, a2, b2, beta, c, par, epilogue);
                })
            }
            Weights::View(b) => with_scratch(&B_SWAPPED, |b_buf| {
                // SAFETY: as above.
                let b2 = unsafe {
                    view_of(operands::swapped_copy(
                        MatRef::from_view(&b),
                        Depth::Rows,
                        b_buf,
                    ))
                };
                super::own(1.0, a2, b2, beta, c, par, epilogue);
            }),
        }
    });
}

/// A [`MatRef`] with non-negative strides as a view.
///
/// # Safety
/// The matrix must stay valid and unchanged for the view's lifetime.
unsafe fn view_of<'a>(m: MatRef) -> ArrayView2<'a, f32> {
    let shape = (m.rows, m.cols).strides((m.rs as usize, m.cs as usize));
    // SAFETY: as the caller guarantees; the strides are non-negative.
    unsafe { ArrayView2::from_shape_ptr(shape, m.ptr) }
}

impl PackedWeights {
    /// The rounded weights as a `k × n` matrix, from either packing (for a
    /// call on an instruction set other than the one they were packed for).
    fn unpacked(&self) -> ndarray::Array2<f32> {
        let (k, n) = (self.k, self.n);
        let mut out = ndarray::Array2::zeros((k, n));
        match (&self.swapped, &self.pairs) {
            (Some(b2), _) => {
                for p in 0..k {
                    out.row_mut(p).assign(&ndarray::ArrayView1::from(
                        &b2[(p ^ 1) * n..(p ^ 1) * n + n],
                    ));
                }
            }
            (None, Some(pairs)) => {
                let slivers = n.div_ceil(operands::NR);
                let nr = operands::NR;
                for (first, count) in operands::pair_blocks(k) {
                    let block = &pairs[first * slivers * nr..];
                    for s in 0..slivers {
                        for p in 0..count {
                            for jj in 0..nr.min(n - s * nr) {
                                let v = block[s * count * nr + p * nr + jj];
                                let step = 2 * (first + p);
                                out[[step, s * nr + jj]] = from_bf16(v as u16);
                                if step + 1 < k {
                                    out[[step + 1, s * nr + jj]] = from_bf16((v >> 16) as u16);
                                }
                            }
                        }
                    }
                }
            }
            (None, None) => unreachable!("PackedWeights::new makes at least one form"),
        }
        out
    }
}

/// `C ← A·B` (or `C + A·B`) in bf16 by plain loops over [`dot_pair`], the
/// instruction's model, in the blocks of `k` the kernels use: what every path
/// of [`gemm_bf16`] must equal bit for bit. For tests; slow.
///
/// # Errors
/// [`Error::Shape`] when the dimensions disagree.
///
/// ```
/// use feedforward::gemm::bf16::{gemm_bf16, reference};
/// use ndarray::Array2;
/// let a = Array2::from_shape_fn((5, 301), |(i, j)| ((i * 7 + j) % 13) as f32 / 7.0 - 0.9);
/// let b = Array2::from_shape_fn((301, 9), |(i, j)| ((i + 3 * j) % 11) as f32 / 3.0 - 1.7);
/// let (mut fast, mut slow) = (Array2::zeros((5, 9)), Array2::zeros((5, 9)));
/// gemm_bf16(a.view(), b.view(), fast.view_mut(), false)?;
/// reference(a.view(), b.view(), slow.view_mut(), false)?;
/// assert_eq!(fast, slow);
/// # Ok::<(), feedforward::Error>(())
/// ```
pub fn reference(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    mut c: ArrayViewMut2<'_, f32>,
    accumulate: bool,
) -> Result<()> {
    check_shapes(&a, &b, &c)?;
    let (m, k) = a.dim();
    let n = b.ncols();
    let at = |x: &ArrayView2<'_, f32>, i: usize, j: usize| {
        if i < x.nrows() && j < x.ncols() {
            x[[i, j]]
        } else {
            0.0
        }
    };
    for i in 0..m {
        for j in 0..n {
            let mut cij = if accumulate { c[[i, j]] } else { 0.0 };
            for (q, (first, pairs)) in operands::pair_blocks(k).enumerate() {
                let mut acc = 0.0f32;
                for p in first..first + pairs {
                    let ap = round::pair(at(&a, i, 2 * p), at(&a, i, 2 * p + 1));
                    let bp = round::pair(at(&b, 2 * p, j), at(&b, 2 * p + 1, j));
                    acc = dot_pair(acc, ap, bp);
                }
                cij = if q == 0 && !accumulate {
                    acc
                } else {
                    cij + acc
                };
            }
            c[[i, j]] = cij;
        }
    }
    Ok(())
}
