//! The loops, packing and few-rows kernel with a stand-in kernel of AVX-512's
//! geometry (12 × 32 tiles, 16 lanes) built from `wide::f32x16`, which runs on
//! any CPU: so the tile, block and edge logic of the widest kernel is tested
//! on every machine, including those whose CPU cannot run the AVX-512 kernel
//! itself (that one differs from this only in its five intrinsics).

use ndarray::{Array2, ArrayView2, s};

use super::kernel::{Kernel, Simd, kernel_entry_points};
use super::{Epilogue, MatMut, MatRef, Parallelism, loops, reference, small};

/// 16-lane vectors through `wide`, multiply then add (no FMA assumed).
#[derive(Debug, Clone, Copy)]
struct Geometry16;

// SAFETY: `wide` compiles these for the build's target.
unsafe impl Simd for Geometry16 {
    type V = wide::f32x16;
    const LANES: usize = 16;

    unsafe fn splat(x: f32) -> Self::V {
        wide::f32x16::splat(x)
    }
    unsafe fn load(p: *const f32) -> Self::V {
        // SAFETY: 16 readable floats, as the caller guarantees.
        unsafe { p.cast::<Self::V>().read_unaligned() }
    }
    unsafe fn store(p: *mut f32, v: Self::V) {
        // SAFETY: 16 writable floats, as the caller guarantees.
        unsafe { p.cast::<Self::V>().write_unaligned(v) }
    }
    unsafe fn mul_add(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        a * b + c
    }
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V {
        a * b
    }
    unsafe fn mul_add_one(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

kernel_entry_points!(Geometry16, 12);

fn uniform(rows: usize, cols: usize, seed: u32) -> Array2<f32> {
    // A small LCG: plenty for test data, no dependency.
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    Array2::from_shape_fn((rows, cols), |_| {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (x >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
    })
}

/// `C ← 1.5·A·B + 0.5·C (+ bias, ReLU)` with the stand-in kernel.
fn product(
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    par: Parallelism,
    epilogue: Option<&Epilogue<'_>>,
) -> Array2<f32> {
    let (m, k) = a.dim();
    let n = b.ncols();
    let mut c = uniform(m, n, 9);
    let beta = if epilogue.is_some() { 0.0 } else { 0.5 };
    let alpha = if epilogue.is_some() { 1.0 } else { 1.5 };
    let (ar, br, cm) = (
        MatRef::from_view(&a),
        MatRef::from_view(&b),
        MatMut::from_view(&mut c.view_mut()),
    );
    // SAFETY: the views are valid for their shapes; the stand-in runs anywhere.
    unsafe {
        if m <= small::SMALL_M && br.cs == 1 {
            let p = super::kernel::SmallBlock {
                m,
                n,
                k,
                alpha,
                a: ar,
                b: br,
                beta,
                c: cm,
                epilogue,
            };
            small::few_rows_product::<Geometry16>(&p, par);
        } else {
            loops::packed_product::<Geometry16>(
                m,
                n,
                k,
                alpha,
                ar,
                br,
                beta,
                cm,
                par,
                epilogue,
                loops::Operands::F32,
            );
        }
    }
    c
}

fn bits(c: &Array2<f32>) -> Vec<u32> {
    c.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn the_widest_geometry_matches_the_reference_on_awkward_shapes() {
    assert_eq!((Geometry16::MR, Geometry16::NR), super::Isa::Avx512.tile());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    // Edges in every direction of a 12 × 32 tile, several k blocks, a panel
    // wider than NC = 4096, few-rows products, and row blocks over 2 threads.
    for &(m, n, k) in &[
        (1, 45, 300),
        (4, 130, 33),
        (13, 33, 257),
        (25, 70, 600),
        (200, 97, 40),
        (5, 4100, 3),
    ] {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a_store = if ta {
                uniform(k, m, 1)
            } else {
                uniform(m, k, 1)
            };
            let b_store = if tb {
                uniform(n, k, 2)
            } else {
                uniform(k, n, 2)
            };
            let a = if ta { a_store.t() } else { a_store.view() };
            let b = if tb { b_store.t() } else { b_store.view() };
            let mut want = uniform(m, n, 9);
            reference::naive_gemm(1.5, a, b, 0.5, want.view_mut()).unwrap();
            let one = product(a, b, Parallelism::None, None);
            let tol = 3e-6 * k as f32 + 1e-5;
            for ((i, j), &w) in want.indexed_iter() {
                let g = one[[i, j]];
                assert!(
                    (g - w).abs() <= tol * (1.0 + w.abs()),
                    "{m}x{n}x{k} ta={ta} tb={tb}: C[{i},{j}] = {g}, want {w}"
                );
            }
            let two = pool.install(|| product(a, b, Parallelism::Split(2), None));
            assert_eq!(
                bits(&one),
                bits(&two),
                "{m}x{n}x{k} ta={ta} tb={tb}: 1 and 2 threads"
            );
        }
    }
}

#[test]
fn the_widest_geometry_reads_a_in_place_and_applies_the_epilogue_per_tile() {
    let (m, n, k) = (37, 75, 300);
    let values = uniform(m, k, 3);
    let b = uniform(k, n, 4);
    // Rows 4 KiB apart are packed; rows k + 3 apart are read in place.
    let mut far = Array2::<f32>::zeros((m, 1024));
    far.slice_mut(s![.., ..k]).assign(&values);
    let mut near = Array2::<f32>::zeros((m, k + 3));
    near.slice_mut(s![.., ..k]).assign(&values);
    let packed = product(far.slice(s![.., ..k]), b.view(), Parallelism::None, None);
    let in_place = product(near.slice(s![.., ..k]), b.view(), Parallelism::None, None);
    assert_eq!(
        bits(&packed),
        bits(&in_place),
        "A packed and read in place differ"
    );

    let bias = uniform(1, n, 5).into_raw_vec_and_offset().0;
    let relu = Epilogue::new(&bias, true);
    let fused = product(values.view(), b.view(), Parallelism::None, Some(&relu));
    let mut then = Array2::zeros((m, n));
    let (ar, br, cm) = (
        MatRef::from_view(&values.view()),
        MatRef::from_view(&b.view()),
        MatMut::from_view(&mut then.view_mut()),
    );
    // SAFETY: valid views; the stand-in runs anywhere.
    unsafe {
        loops::packed_product::<Geometry16>(
            m,
            n,
            k,
            1.0,
            ar,
            br,
            0.0,
            cm,
            Parallelism::None,
            None,
            loops::Operands::F32,
        )
    };
    then.rows_mut().into_iter().for_each(|mut row| {
        row.iter_mut()
            .zip(&bias)
            .for_each(|(v, b)| *v = (*v + b).max(0.0));
    });
    assert_eq!(
        bits(&fused),
        bits(&then),
        "the epilogue per tile differs from a pass after"
    );
    assert!(!relu.saw_non_finite());
}
