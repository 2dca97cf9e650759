//! The five loops of BLIS (Van Zee & van de Geijn, 2015), for any [`Kernel`]:
//!
//! ```text
//! loop 5  for jc in 0..n step NC     a column panel of B and C       (B panel in L3)
//! loop 4    for pc in 0..k step kc   pack B[pc.., jc..] (kc × nc, kc ≤ KC)
//! loop 3      for ic in 0..m step MC pack A[ic.., pc..] (mc × kc)     (A block in L2)
//! loop 2        for jr in 0..nc step NR                              (B sliver in L1)
//! loop 1          for ir in 0..mc step MR   micro-kernel: MR × NR tile of C
//! ```
//!
//! Loops 5 to 3 are plain generic code: they size blocks, pack and hand out
//! tasks. Loops 2 and 1 ([`macro_kernel`]) and the packing run inside the
//! kernel's `#[target_feature]` entry points.
//!
//! A is read where it is, without packing, when its lines are not a multiple of
//! 4 KiB apart (see [`lines_spread_over_caches`]): a column-major A (a
//! transposed view, as `Xᵀ` in a weight gradient) already holds each step's `MR`
//! row values side by side, and a row-major A each row's steps.
//!
//! With an [`Epilogue`] (a dense layer's bias and ReLU), loop 1 applies it to each
//! tile right after the tile's last block of `k` is stored, while it is in L1.
//!
//! Loops 3 and 2 together are split into independent tasks over output blocks and
//! run on rayon; `k` is never split, so every element of C is accumulated in the same
//! order whatever the thread count: results are bit-identical for 1 or N threads.

use std::cell::RefCell;
use std::thread::LocalKey;

use rayon::prelude::*;

use super::kernel::{self, ASlivers, Kernel, MAX_TILE, MacroBlock};
use super::pack::Packing;
use super::{Epilogue, MatMut, MatRef, Parallelism};

/// How [`packed_product`] packs each operand: copies for the `f32` products,
/// rounded to bf16 with the pairs of steps swapped for the emulated bf16 ones
/// (see [`Packing`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Operands {
    pub a: Packing,
    pub b: Packing,
}

impl Operands {
    /// Both operands copied as they are: the `f32` products.
    pub(crate) const F32: Operands = Operands {
        a: Packing::Copy,
        b: Packing::Copy,
    };
}

/// Depth of a packed block (`k` per pass): an A sliver (`MR·KC`) and a B sliver
/// (`NR·KC`) together stay well inside L1.
pub const KC: usize = 256;

/// The depth of each of `k`'s blocks: at most [`KC`], and all of the same size
/// but the last (784 = 4 × 196 rather than 3 × 256 + 16, whose thin last block
/// would load and store every C tile for 16 steps of work), and even when
/// there are several, so that no block splits a pair of steps of a bf16 product
/// (one `VDPBF16PS` takes two; see [`super::bf16`]). Depends on `k` only, so
/// every path (and every thread count) sums in the same blocks.
pub(crate) fn depth_block(k: usize) -> usize {
    let blocks = k.div_ceil(KC).max(1);
    let depth = k.div_ceil(blocks);
    if blocks > 1 { depth + depth % 2 } else { depth }
}

/// Products smaller than this many multiply-adds run on one thread: below it,
/// waking a second thread costs more than it saves.
pub const PARALLEL_THRESHOLD: usize = 1 << 19;

/// Floats in a B panel from which it is packed in parallel.
const PARALLEL_PACK: usize = 1 << 16;

/// 64 bytes, aligned to a cache line: the unit of the packing buffers, so that
/// every packed sliver starts on a line and vector loads never split one.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

// SAFETY: sixteen `f32` and no padding (size 64 = alignment 64).
unsafe impl bytemuck::Zeroable for Line {}
// SAFETY: as above; any bit pattern is a valid `[f32; 16]`.
unsafe impl bytemuck::Pod for Line {}

const LINE_FLOATS: usize = 16;

thread_local! {
    static PACK_A: RefCell<Vec<Line>> = const { RefCell::new(Vec::new()) };
    static PACK_B: RefCell<Vec<Line>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's packing buffer of at least `len` floats.
///
/// The buffer grows to the largest size ever asked for and is then reused, so a
/// steady stream of products allocates nothing. If the buffer is already borrowed
/// (a rayon task stolen while this thread waits inside another gemm), a temporary
/// buffer is used instead.
fn with_buffer<R>(
    key: &'static LocalKey<RefCell<Vec<Line>>>,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    let lines = len.div_ceil(LINE_FLOATS);
    let zero = Line([0.0; LINE_FLOATS]);
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < lines {
                buf.resize(lines, zero);
            }
            f(&mut bytemuck::cast_slice_mut::<Line, f32>(&mut buf)[..len])
        }
        Err(_) => {
            let mut tmp = vec![zero; lines];
            f(&mut bytemuck::cast_slice_mut::<Line, f32>(&mut tmp)[..len])
        }
    })
}

/// Sizes this thread's packing buffers for the largest blocks of `K`.
fn reserve_for<K: Kernel>() {
    with_buffer(&PACK_A, K::MC * KC, |_| ());
    with_buffer(&PACK_B, KC * K::NC, |_| ());
}

/// Sizes every pool thread's packing buffers for the largest blocks of the
/// instruction set in use, so that later products allocate nothing whichever
/// thread runs them.
pub fn reserve_buffers() {
    fn reserve() {
        super::with_kernel!(K => reserve_for::<K>());
    }
    rayon::broadcast(|_| reserve());
    reserve();
}

/// `C ← α·A·B + β·C` by the five loops with kernel `K`, then `epilogue` on each
/// tile of C once its last block of `k` is in; the operands packed as
/// `operands` says.
///
/// # Safety
/// `a` (`m × k`), `b` (`k × n`) and `c` (`m × n`) must be valid, `c` must not
/// alias them, and the CPU must run `K` (the dispatcher's choice). An operand
/// packed with [`Packing::Bf16Swapped`] may have one step fewer than `k`
/// (which must then be even): the padding.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn packed_product<K: Kernel>(
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
    operands: Operands,
) {
    let threads = par.threads();
    // Loop 3's blocks: a multiple of the thread count (3 blocks of MC on 2
    // threads would leave one idle a third of the time; 4 smaller ones do not).
    let row_blocks = RowBlocks::new::<K>(m, threads);
    let blocks_m = row_blocks.count;
    let a_in_place = operands.a == Packing::Copy
        && match (a.rs, a.cs) {
            (1, step) => lines_spread_over_caches(step, K::MR),
            (row, 1) => lines_spread_over_caches(row, K::MR),
            _ => false,
        };

    // Loop 5: column panels of B and C.
    for jc in (0..n).step_by(K::NC) {
        let nc = K::NC.min(n - jc);
        let slivers_n = nc.div_ceil(K::NR);
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
        let panel = slivers_n * K::NR;
        // A large panel is packed by all threads (it would otherwise be a serial
        // stretch before every k block).
        let kb = depth_block(k);
        let parallel_pack = threads > 1 && slivers_n > 1 && kb * panel >= PARALLEL_PACK;
        let span = if k * panel <= KC * K::NC { k } else { kb };
        for ps in (0..k).step_by(span) {
            let depth = span.min(k - ps);
            with_buffer(&PACK_B, depth * panel, |packed_b| {
                for pc in (ps..ps + depth).step_by(kb) {
                    let kc = kb.min(k - pc);
                    let at = (pc - ps) * panel;
                    // SAFETY: the B panel (kc × nc at (pc, jc)) lies inside b.
                    unsafe {
                        super::pack::pack_b::<K>(
                            b.offset(pc, jc),
                            kc,
                            nc,
                            &mut packed_b[at..at + kc * panel],
                            parallel_pack,
                            operands.b,
                        )
                    };
                }
                let packed_b: &[f32] = packed_b;
                // Loops 3 and 2 as independent tasks over blocks of C.
                let task = |t: usize| {
                    let (ic, mc) = row_blocks.block(t / parts_n);
                    let part = t % parts_n;
                    let rows = mc.div_ceil(K::MR) * K::MR;
                    let jr = (part * slivers_n / parts_n)..((part + 1) * slivers_n / parts_n);
                    let packed_len = if a_in_place { 0 } else { rows * kb.min(depth) };
                    with_buffer(&PACK_A, packed_len, |packed_a| {
                        for pc in (ps..ps + depth).step_by(kb) {
                            let kc = kb.min(k - pc);
                            // SAFETY: the A block (mc × kc at (ic, pc)) lies inside a;
                            // the C block (ic.., jc..) is written by this task only.
                            unsafe {
                                let block = a.offset(ic, pc);
                                let slivers = if a_in_place {
                                    ASlivers::in_place(block, K::MR)
                                } else {
                                    let packed_a = &mut packed_a[..rows * kc];
                                    K::pack_a(block, mc, kc, packed_a, operands.a);
                                    ASlivers::packed(packed_a, K::MR, kc)
                                };
                                K::macro_kernel(&MacroBlock {
                                    mc,
                                    nc,
                                    kc,
                                    slivers: jr.clone(),
                                    alpha,
                                    a: slivers,
                                    packed_b: &packed_b[(pc - ps) * panel..],
                                    beta: if pc == 0 { beta } else { 1.0 },
                                    c: c.offset(ic, jc),
                                    epilogue: if pc + kc == k {
                                        epilogue.map(|e| (e, jc))
                                    } else {
                                        None
                                    },
                                });
                            }
                        }
                    });
                };
                run_tasks(par, blocks_m * parts_n, task);
            });
        }
    }
}

/// Whether `mr` lines of A `stride` floats apart (its rows, read in place
/// from a row-major A, or its steps from a column-major one) land in enough
/// different sets of a typical L1 data cache (64 sets of 64-byte lines) that no
/// set holds more than half of them.
///
/// A stride that is a multiple of 4 KiB puts them all in one set, in L1 and in
/// a few sets of L2, where they evict each other: measured 6-8% slower than
/// packing for a row-major A with 4 KiB rows, and W2's weight gradient
/// (`Hᵀ`, 16 KiB steps) slower too. 2 KiB (two sets) is as fast as packing.
fn lines_spread_over_caches(stride: isize, mr: usize) -> bool {
    const LINE: usize = 64;
    const SETS: usize = 64;
    let bytes = stride.unsigned_abs() * size_of::<f32>();
    let mut lines_in_set = [0usize; SETS];
    for i in 0..mr {
        lines_in_set[(i * bytes / LINE) % SETS] += 1;
    }
    lines_in_set.iter().all(|&r| r <= mr / 2)
}

/// Loop 3's blocks of rows: at most `MC` rows each, whole slivers of `MR`
/// rows but the last, as many blocks as make every thread's share equal, and
/// the slivers dealt out evenly over them (blocks differ by at most one
/// sliver). 4096 rows on 2 threads with AVX-512: 22 blocks of 180 or 192 rows,
/// 2052 and 2044 rows per thread, where blocks of 192 and a last of 64 gave 2112
/// and 1984.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowBlocks {
    m: usize,
    mr: usize,
    slivers: usize,
    count: usize,
}

impl RowBlocks {
    fn new<K: Kernel>(m: usize, threads: usize) -> Self {
        Self::with_tile(m, K::MR, K::MC, threads)
    }

    /// Blocks of at most `mc` rows in slivers of `mr`, for `threads` threads.
    pub(crate) fn with_tile(m: usize, mr: usize, mc: usize, threads: usize) -> Self {
        let slivers = m.div_ceil(mr);
        let max_slivers = mc / mr;
        let per_thread = slivers.div_ceil(max_slivers * threads);
        let count = (threads * per_thread).min(slivers).max(1);
        RowBlocks {
            m,
            mr,
            slivers,
            count,
        }
    }

    /// How many blocks there are.
    pub(crate) fn count(self) -> usize {
        self.count
    }

    /// The first row and the row count of block `b`.
    pub(crate) fn block(self, b: usize) -> (usize, usize) {
        let first = b * self.slivers / self.count * self.mr;
        let end = ((b + 1) * self.slivers / self.count * self.mr).min(self.m);
        (first, end - first)
    }
}

/// Runs `task(0..tasks)` on rayon when `par` allows and there is more than one.
pub(crate) fn run_tasks(par: Parallelism, tasks: usize, task: impl Fn(usize) + Sync + Send) {
    match par {
        Parallelism::Split(_) if tasks > 1 => (0..tasks).into_par_iter().for_each(task),
        _ => (0..tasks).for_each(task),
    }
}

/// Loops 2 and 1 over one block of A and the B slivers `block.slivers`; then
/// the epilogue on each tile. Compiled once per instruction set, inside its
/// entry point [`Kernel::macro_kernel`].
///
/// # Safety
/// `block.c` must be a writable `mc × nc` block; `block.a` must describe an
/// `mc × kc` block, and the packed B panel must match `nc` and `kc`; the CPU
/// must run `K`.
#[inline(always)]
pub(crate) unsafe fn macro_kernel<K: Kernel>(block: &MacroBlock<'_>) {
    // SAFETY: as the caller guarantees.
    unsafe {
        if block.a.first.row == 1 {
            macro_kernel_for::<K, false>(block)
        } else {
            macro_kernel_for::<K, true>(block)
        }
    }
}

/// [`macro_kernel`] with the micro-kernel instance for the A slivers' row
/// stride (`ROW_STRIDED` unless it is 1).
///
/// # Safety
/// As [`macro_kernel`].
#[inline(always)]
unsafe fn macro_kernel_for<K: Kernel, const ROW_STRIDED: bool>(block: &MacroBlock<'_>) {
    let MacroBlock {
        mc,
        nc,
        kc,
        alpha,
        beta,
        c,
        ..
    } = *block;
    // Loop 2: B slivers (each stays in L1 while loop 1 sweeps the A block).
    for jr in block.slivers.clone() {
        let j0 = jr * K::NR;
        let nr = K::NR.min(nc - j0);
        let b = block.packed_b[jr * K::NR * kc..].as_ptr();
        // Loop 1: A slivers.
        for ir in 0..mc.div_ceil(K::MR) {
            let i0 = ir * K::MR;
            let mr = K::MR.min(mc - i0);
            // SAFETY: the tile (i0.., j0..) lies inside the C block, the sliver
            // (rows i0.., kc steps) inside the A block.
            unsafe {
                let ct = c.offset(i0, j0);
                let (a, rs) = (block.a.sliver(ir), c.rs);
                if nr == K::NR && c.cs == 1 {
                    kernel::tile_rows::<K, 2, ROW_STRIDED>(mr, kc, a, b, ct.ptr, rs, alpha, beta)
                } else if nr == K::LANES && c.cs == 1 {
                    kernel::tile_rows::<K, 1, ROW_STRIDED>(mr, kc, a, b, ct.ptr, rs, alpha, beta)
                } else {
                    edge_tile::<K, ROW_STRIDED>(kc, a, b, ct, mr, nr, alpha, beta)
                }
                // The tile has just been stored: still in L1.
                if let Some((e, first_col)) = block.epilogue {
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
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn edge_tile<K: Kernel, const ROW_STRIDED: bool>(
    kc: usize,
    a: kernel::ASliver,
    b: *const f32,
    c: MatMut,
    mr: usize,
    nr: usize,
    alpha: f32,
    beta: f32,
) {
    let mut local = [0.0f32; MAX_TILE];
    let local_c = local.as_mut_ptr();
    let stride = K::NR as isize;
    // SAFETY: `local` holds a full MR × NR tile with row stride NR.
    unsafe {
        if nr <= K::LANES {
            kernel::tile_rows::<K, 1, ROW_STRIDED>(mr, kc, a, b, local_c, stride, 1.0, 0.0);
        } else {
            kernel::tile_rows::<K, 2, ROW_STRIDED>(mr, kc, a, b, local_c, stride, 1.0, 0.0);
        }
    }
    for i in 0..mr {
        for j in 0..nr {
            let ab = alpha * local[i * K::NR + j];
            // SAFETY: (i, j) lies inside the tile; the CPU runs K.
            unsafe {
                let cij = c.ptr.offset(i as isize * c.rs + j as isize * c.cs);
                *cij = if beta == 0.0 {
                    ab
                } else {
                    K::mul_add_one(*cij, beta, ab)
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
    #[inline(always)]
    pub(crate) unsafe fn offset(self, i: usize, j: usize) -> MatRef {
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
    #[inline(always)]
    pub(crate) unsafe fn offset(self, i: usize, j: usize) -> MatMut {
        MatMut {
            // SAFETY: inside the matrix, as the caller guarantees.
            ptr: unsafe { self.ptr.offset(i as isize * self.rs + j as isize * self.cs) },
            rows: self.rows - i,
            cols: self.cols - j,
            ..self
        }
    }
}
