//! The pure-Rust gemm: packed, cache-blocked, SIMD, parallel over output blocks.
//!
//! The loop nest is the five loops of BLIS (Van Zee & van de Geijn, 2015):
//!
//! ```text
//! loop 5  for jc in 0..n step NC     a column panel of B and C       (B panel in L3)
//! loop 4    for pc in 0..k step kc   pack B[pc.., jc..] (kc × nc, kc ≤ KC)
//! loop 3      for ic in 0..m step MC pack A[ic.., pc..] (mc × kc)     (A block in L2)
//! loop 2        for jr in 0..nc step NR                              (B sliver in L1)
//! loop 1          for ir in 0..mc step MR   micro-kernel: MR × NR tile of C
//! ```
//!
//! A column-major A (a transposed view, as `Xᵀ` in a weight gradient) is not
//! packed in loop 3: its steps already hold `MR` row values side by side, and the
//! micro-kernel reads them in place, a column stride apart.
//!
//! With an [`Epilogue`] (a dense layer's bias and ReLU), loop 1 applies it to each
//! tile right after the tile's last block of `k` is stored, while it is in L1.
//!
//! Loops 3 and 2 together are split into independent tasks over output blocks and
//! run on rayon; `k` is never split, so every element of C is accumulated in the same
//! order whatever the thread count: results are bit-identical for 1 or N threads.

mod kernel;
mod pack;
mod small;

use std::cell::RefCell;
use std::thread::LocalKey;

use ndarray::{ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

use kernel::{ASliver, LANES, V};
pub use kernel::{MR, NR};

use super::{Epilogue, MatMut, MatRef, Parallelism};
use crate::error::Result;

/// Depth of a packed block (`k` per pass): an A sliver (`MR·KC`) and a B sliver
/// (`NR·KC`) together stay well inside L1.
pub const KC: usize = 256;
/// The depth of each of `k`'s blocks: at most [`KC`], and all of the same size
/// but the last (784 = 4 × 196 rather than 3 × 256 + 16, whose thin last block
/// would load and store every C tile for 16 steps of work). Depends on `k` only,
/// so every path (and every thread count) sums in the same blocks.
pub(crate) fn depth_block(k: usize) -> usize {
    k.div_ceil(k.div_ceil(KC).max(1))
}

/// Rows of A per packed block: `MC·KC` floats (192 KiB with AVX-512) sit in L2.
pub const MC: usize = MR * 16;
/// Columns of B per packed panel: `KC·NC` floats (4 MiB) sit in L3.
pub const NC: usize = NR * 128;

/// Products smaller than this many multiply-adds run on one thread: below it,
/// waking a second thread costs more than it saves.
pub const PARALLEL_THRESHOLD: usize = 1 << 19;

/// Floats in a B panel from which it is packed in parallel.
const PARALLEL_PACK: usize = 1 << 16;

thread_local! {
    static PACK_A: RefCell<Vec<V>> = const { RefCell::new(Vec::new()) };
    static PACK_B: RefCell<Vec<V>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's packing buffer of at least `len` floats.
///
/// The buffer grows to the largest size ever asked for and is then reused, so a
/// steady stream of products allocates nothing. If the buffer is already borrowed
/// (a rayon task stolen while this thread waits inside another gemm), a temporary
/// buffer is used instead.
fn with_buffer<R>(
    key: &'static LocalKey<RefCell<Vec<V>>>,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    let vectors = len.div_ceil(LANES);
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < vectors {
                buf.resize(vectors, V::splat(0.0));
            }
            f(&mut bytemuck::cast_slice_mut::<V, f32>(&mut buf)[..len])
        }
        Err(_) => {
            let mut tmp = vec![V::splat(0.0); vectors];
            f(&mut bytemuck::cast_slice_mut::<V, f32>(&mut tmp)[..len])
        }
    })
}

/// Sizes every pool thread's packing buffers to their maximum, so that later
/// products allocate nothing whichever thread runs them.
pub fn reserve_buffers() {
    rayon::broadcast(|_| {
        with_buffer(&PACK_A, MC * KC, |_| ());
        with_buffer(&PACK_B, KC * NC, |_| ());
    });
    with_buffer(&PACK_A, MC * KC, |_| ());
    with_buffer(&PACK_B, KC * NC, |_| ());
}

/// `C ← α·A·B + β·C` with this module's kernel, on the threads `par` allows.
///
/// Same contract as [`crate::gemm::gemm`]; available in every build so that the
/// kernel can be tested and benchmarked beside BLAS.
///
/// # Errors
/// [`crate::Error::Shape`] when the dimensions disagree.
pub fn gemm_with(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    c: ArrayViewMut2<'_, f32>,
    par: Parallelism,
) -> Result<()> {
    super::check_shapes(&a, &b, &c)?;
    gemm(alpha, a, b, beta, c, par, None);
    Ok(())
}

/// Whether a product is one of very few rows (at most four, as in batch-1
/// inference) with a row-major B: this module's few-rows kernel, which splits
/// B's columns over threads where BLAS libraries use one.
#[cfg(feature = "blas")]
pub(crate) fn is_few_rows(a: &ArrayView2<'_, f32>, b: &ArrayView2<'_, f32>) -> bool {
    (1..=small::SMALL_M).contains(&a.nrows()) && b.strides()[1] == 1
}

/// [`gemm_with`] without the shape check (the caller has done it), followed by
/// `epilogue` on each tile of C once its last block of `k` is in.
pub(crate) fn gemm(
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
        super::scale_c(beta, &mut c);
        if let Some(e) = epilogue {
            super::apply_epilogue(e, &mut c);
        }
        return;
    }
    // The small-m path streams B once, from memory or L2: splitting its columns
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
    // SAFETY: the views are valid for their shapes and borrowed for this call.
    unsafe {
        if m <= small::SMALL_M && b.cs == 1 {
            small::gemm(m, n, k, alpha, a, b, beta, c, par, epilogue);
        } else {
            loops(m, n, k, alpha, a, b, beta, c, par, epilogue);
        }
    }
}

/// The five loops. See the module docs.
///
/// # Safety
/// `a` (`m × k`), `b` (`k × n`) and `c` (`m × n`) must be valid, and `c` must not alias them.
#[allow(clippy::too_many_arguments)]
unsafe fn loops(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: MatRef,
    b: MatRef,
    beta: f32,
    c: MatMut,
    par: Parallelism,
    epilogue: Option<&Epilogue<'_>>,
) {
    let threads = par.threads();
    // Loop 3's blocks: a multiple of the thread count (3 blocks of MC on 2
    // threads would leave one idle a third of the time; 4 smaller ones do not).
    let row_blocks = RowBlocks::new(m, threads);
    let blocks_m = row_blocks.count;
    // A column-major A (a transposed row-major matrix, as in a weight gradient
    // Xᵀ·dY) already has each step's row values side by side, and a row-major A
    // has each row's steps: the kernel reads either where it is, with no copy,
    // unless the lines it walks are a multiple of 4 KiB apart.
    let a_in_place = match (a.rs, a.cs) {
        (1, step) => lines_spread_over_caches(step),
        (row, 1) => lines_spread_over_caches(row),
        _ => false,
    };

    // Loop 5: column panels of B and C.
    for jc in (0..n).step_by(NC) {
        let nc = NC.min(n - jc);
        let slivers_n = nc.div_ceil(NR);
        // When there are fewer row blocks than threads, also split the panel's columns.
        let parts_n = if blocks_m < threads {
            threads.div_ceil(blocks_m).min(slivers_n)
        } else {
            1
        };
        // Loop 4: the k dimension, in blocks of kb ≤ KC; only the first applies β.
        // When the panel's whole depth fits the packing buffer, all its blocks are
        // packed at once and each task runs loop 4 itself, so that its block of C
        // stays in cache across the k blocks instead of being re-read for each
        // (tall products such as 4096 × 784 · 784 × 512). Otherwise one block is
        // packed at a time. The blocks and their order are the same either way.
        let panel = slivers_n * NR;
        // A large panel is packed by all threads (it would otherwise be a serial
        // stretch before every k block).
        let kb = depth_block(k);
        let parallel_pack = threads > 1 && slivers_n > 1 && kb * panel >= PARALLEL_PACK;
        let span = if k * panel <= KC * NC { k } else { kb };
        for ps in (0..k).step_by(span) {
            let depth = span.min(k - ps);
            with_buffer(&PACK_B, depth * panel, |packed_b| {
                for pc in (ps..ps + depth).step_by(kb) {
                    let kc = kb.min(k - pc);
                    let at = (pc - ps) * panel;
                    // SAFETY: the B panel (kc × nc at (pc, jc)) lies inside b.
                    unsafe {
                        pack::pack_b(
                            b.offset(pc, jc),
                            kc,
                            nc,
                            &mut packed_b[at..at + kc * panel],
                            parallel_pack,
                        )
                    };
                }
                let packed_b: &[f32] = packed_b;
                // Loops 3 and 2 as independent tasks over blocks of C.
                let task = |t: usize| {
                    let (ic, mc) = row_blocks.block(t / parts_n);
                    let part = t % parts_n;
                    let rows = mc.div_ceil(MR) * MR;
                    let jr = (part * slivers_n / parts_n)..((part + 1) * slivers_n / parts_n);
                    let packed_len = if a_in_place { 0 } else { rows * kb.min(depth) };
                    with_buffer(&PACK_A, packed_len, |packed_a| {
                        for pc in (ps..ps + depth).step_by(kb) {
                            let kc = kb.min(k - pc);
                            let beta = if pc == 0 { beta } else { 1.0 };
                            let epilogue = if pc + kc == k { epilogue } else { None };
                            // SAFETY: the A block (mc × kc at (ic, pc)) lies inside a;
                            // the C block (ic.., jc..) is written by this task only.
                            unsafe {
                                let block = a.offset(ic, pc);
                                let slivers = if a_in_place {
                                    ASlivers::in_place(block)
                                } else {
                                    let packed_a = &mut packed_a[..rows * kc];
                                    pack::pack_a(block, mc, kc, packed_a);
                                    ASlivers::packed(packed_a, kc)
                                };
                                macro_kernel(
                                    mc,
                                    nc,
                                    kc,
                                    jr.clone(),
                                    alpha,
                                    slivers,
                                    &packed_b[(pc - ps) * panel..],
                                    beta,
                                    c.offset(ic, jc),
                                    epilogue.map(|e| (e, jc)),
                                );
                            }
                        }
                    });
                };
                run_tasks(par, blocks_m * parts_n, task);
            });
        }
    }
}

/// Whether [`MR`] lines of A `stride` floats apart (its rows, read in place
/// from a row-major A, or its steps from a column-major one) land in enough
/// different sets of a typical L1 data cache (64 sets of 64-byte lines) that no
/// set holds more than half of them.
///
/// A stride that is a multiple of 4 KiB puts them all in one set, in L1 and in
/// a few sets of L2, where they evict each other: measured 6-8% slower than
/// packing for a row-major A with 4 KiB rows, and W2's weight gradient
/// (`Hᵀ`, 16 KiB steps) slower too. 2 KiB (two sets) is as fast as packing.
fn lines_spread_over_caches(stride: isize) -> bool {
    const LINE: usize = 64;
    const SETS: usize = 64;
    let bytes = stride.unsigned_abs() * size_of::<f32>();
    let mut lines_in_set = [0usize; SETS];
    for i in 0..MR {
        lines_in_set[(i * bytes / LINE) % SETS] += 1;
    }
    lines_in_set.iter().all(|&r| r <= MR / 2)
}

/// Loop 3's blocks of rows: at most [`MC`] rows each, whole slivers of [`MR`]
/// rows but the last, as many blocks as make every thread's share equal, and
/// the slivers dealt out evenly over them (blocks differ by at most one
/// sliver). 4096 rows on 2 threads: 22 blocks of 180 or 192 rows, 2052 and
/// 2044 rows per thread, where blocks of 192 and a last of 64 gave 2112 and 1984.
#[derive(Debug, Clone, Copy)]
struct RowBlocks {
    m: usize,
    slivers: usize,
    count: usize,
}

impl RowBlocks {
    fn new(m: usize, threads: usize) -> Self {
        let slivers = m.div_ceil(MR);
        let max_slivers = MC / MR;
        let per_thread = slivers.div_ceil(max_slivers * threads);
        let count = (threads * per_thread).min(slivers).max(1);
        RowBlocks { m, slivers, count }
    }

    /// The first row and the row count of block `b`.
    fn block(self, b: usize) -> (usize, usize) {
        let first = b * self.slivers / self.count * MR;
        let end = ((b + 1) * self.slivers / self.count * MR).min(self.m);
        (first, end - first)
    }
}

/// Runs `task(0..tasks)` on rayon when `par` allows and there is more than one.
fn run_tasks(par: Parallelism, tasks: usize, task: impl Fn(usize) + Sync + Send) {
    match par {
        Parallelism::Rayon(_) if tasks > 1 => (0..tasks).into_par_iter().for_each(task),
        _ => (0..tasks).for_each(task),
    }
}

/// Where loop 1 finds the A slivers of a block: packed, or in A itself.
#[derive(Debug, Clone, Copy)]
struct ASlivers {
    /// The first sliver (rows `0..MR` of the block).
    first: ASliver,
    /// Floats from one sliver to the next.
    next: isize,
}

impl ASlivers {
    /// A block packed by [`pack::pack_a`] at depth `kc`.
    fn packed(packed_a: &[f32], kc: usize) -> Self {
        let (ptr, step) = (packed_a.as_ptr(), MR as isize);
        let first = ASliver { ptr, row: 1, step };
        ASlivers {
            first,
            next: (MR * kc) as isize,
        }
    }

    /// A block of A read where it is.
    fn in_place(a: MatRef) -> Self {
        let first = ASliver {
            ptr: a.ptr,
            row: a.rs,
            step: a.cs,
        };
        ASlivers {
            first,
            next: MR as isize * a.rs,
        }
    }

    /// Sliver `ir` (rows `ir·MR..`).
    ///
    /// # Safety
    /// The sliver must lie inside the block.
    unsafe fn sliver(self, ir: usize) -> ASliver {
        ASliver {
            // SAFETY: inside the block, as the caller guarantees.
            ptr: unsafe { self.first.ptr.offset(ir as isize * self.next) },
            ..self.first
        }
    }
}

/// Loops 2 and 1 over one block of A and the B slivers in `slivers`; then
/// `epilogue` on each tile, given the block's first column in the whole C.
///
/// # Safety
/// `c` must be a writable `mc × nc` block; `a` must describe an `mc × kc`
/// block, and the packed B buffer must match `nc` and `kc`.
#[allow(clippy::too_many_arguments)]
unsafe fn macro_kernel(
    mc: usize,
    nc: usize,
    kc: usize,
    slivers: std::ops::Range<usize>,
    alpha: f32,
    a: ASlivers,
    packed_b: &[f32],
    beta: f32,
    c: MatMut,
    epilogue: Option<(&Epilogue<'_>, usize)>,
) {
    // SAFETY: as the caller guarantees.
    unsafe {
        if a.first.row == 1 {
            macro_kernel_for::<false>(mc, nc, kc, slivers, alpha, a, packed_b, beta, c, epilogue)
        } else {
            macro_kernel_for::<true>(mc, nc, kc, slivers, alpha, a, packed_b, beta, c, epilogue)
        }
    }
}

/// [`macro_kernel`] with the micro-kernel instance for `a`'s row stride
/// (`ROW_STRIDED` unless its row stride is 1).
///
/// # Safety
/// As [`macro_kernel`].
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn macro_kernel_for<const ROW_STRIDED: bool>(
    mc: usize,
    nc: usize,
    kc: usize,
    slivers: std::ops::Range<usize>,
    alpha: f32,
    a: ASlivers,
    packed_b: &[f32],
    beta: f32,
    c: MatMut,
    epilogue: Option<(&Epilogue<'_>, usize)>,
) {
    // Loop 2: B slivers (each stays in L1 while loop 1 sweeps the A block).
    for jr in slivers {
        let j0 = jr * NR;
        let nr = NR.min(nc - j0);
        let b = packed_b[jr * NR * kc..].as_ptr();
        // Loop 1: A slivers.
        for ir in 0..mc.div_ceil(MR) {
            let i0 = ir * MR;
            let mr = MR.min(mc - i0);
            // SAFETY: the tile (i0.., j0..) lies inside the C block, the sliver
            // (rows i0.., kc steps) inside the A block.
            unsafe {
                let ct = c.offset(i0, j0);
                let (a, rs) = (a.sliver(ir), c.rs);
                match (nr, c.cs) {
                    (NR, 1) => {
                        kernel::tile_rows::<2, ROW_STRIDED>(mr, kc, a, b, ct.ptr, rs, alpha, beta)
                    }
                    (LANES, 1) => {
                        kernel::tile_rows::<1, ROW_STRIDED>(mr, kc, a, b, ct.ptr, rs, alpha, beta)
                    }
                    _ => edge_tile::<ROW_STRIDED>(kc, a, b, ct, mr, nr, alpha, beta),
                }
                // The tile has just been stored: still in L1.
                if let Some((e, first_col)) = epilogue {
                    e.apply_block(ct, mr, nr, first_col + j0);
                }
            }
        }
    }
}

/// A tile of partial width (or non-unit column stride): compute its rows, one
/// vector wide or two, into a local buffer, then write back the `mr × nr`
/// corner with the same arithmetic as the fast path.
///
/// # Safety
/// As [`kernel::tile`], with C valid over `mr × nr` at its own strides.
#[allow(clippy::too_many_arguments)]
unsafe fn edge_tile<const ROW_STRIDED: bool>(
    kc: usize,
    a: ASliver,
    b: *const f32,
    c: MatMut,
    mr: usize,
    nr: usize,
    alpha: f32,
    beta: f32,
) {
    let mut local = [0.0f32; MR * NR];
    let local_c = local.as_mut_ptr();
    // SAFETY: `local` is a full MR × NR tile with row stride NR.
    unsafe {
        if nr <= LANES {
            kernel::tile_rows::<1, ROW_STRIDED>(mr, kc, a, b, local_c, NR as isize, 1.0, 0.0);
        } else {
            kernel::tile_rows::<2, ROW_STRIDED>(mr, kc, a, b, local_c, NR as isize, 1.0, 0.0);
        }
    }
    for i in 0..mr {
        for j in 0..nr {
            let ab = alpha * local[i * NR + j];
            // SAFETY: (i, j) lies inside the tile.
            unsafe {
                let cij = c.ptr.offset(i as isize * c.rs + j as isize * c.cs);
                *cij = if beta == 0.0 {
                    ab
                } else {
                    (*cij).mul_add(beta, ab)
                };
            }
        }
    }
}

impl MatRef {
    /// The sub-matrix starting at `(i, j)`.
    ///
    /// # Safety
    /// `(i, j)` must lie inside the matrix.
    unsafe fn offset(self, i: usize, j: usize) -> MatRef {
        MatRef {
            // SAFETY: inside the matrix, as the caller guarantees.
            ptr: unsafe { self.ptr.offset(i as isize * self.rs + j as isize * self.cs) },
            rows: self.rows - i,
            cols: self.cols - j,
            ..self
        }
    }
}

impl MatMut {
    /// The sub-matrix starting at `(i, j)`.
    ///
    /// # Safety
    /// `(i, j)` must lie inside the matrix.
    unsafe fn offset(self, i: usize, j: usize) -> MatMut {
        MatMut {
            // SAFETY: inside the matrix, as the caller guarantees.
            ptr: unsafe { self.ptr.offset(i as isize * self.rs + j as isize * self.cs) },
            rows: self.rows - i,
            cols: self.cols - j,
            ..self
        }
    }
}
