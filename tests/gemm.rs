//! The gemm entry point (whichever backend this build uses) and the SIMD kernel
//! against the triple-loop reference, on awkward shapes.

mod common;

use common::{uniform, with_threads};
use feedforward::gemm::{self, Parallelism, reference};
use ndarray::{Array2, ArrayView2, ArrayViewMut2, s};

type Gemm = fn(f32, ArrayView2<f32>, ArrayView2<f32>, f32, ArrayViewMut2<f32>);

fn entry(alpha: f32, a: ArrayView2<f32>, b: ArrayView2<f32>, beta: f32, c: ArrayViewMut2<f32>) {
    gemm::gemm(alpha, a, b, beta, c).unwrap();
}

fn simd_serial(
    alpha: f32,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    beta: f32,
    c: ArrayViewMut2<f32>,
) {
    gemm::gemm_with(alpha, a, b, beta, c, Parallelism::None).unwrap();
}

fn simd_parallel(
    alpha: f32,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    beta: f32,
    c: ArrayViewMut2<f32>,
) {
    gemm::gemm_with(alpha, a, b, beta, c, Parallelism::Split(2)).unwrap();
}

/// Checks `f` against the reference for one shape and every transpose combination.
fn check(f: Gemm, m: usize, n: usize, k: usize, alpha: f32, beta: f32) {
    let seed = (m * 31 + n * 17 + k) as u64;
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        // Store the operand transposed when asked, and pass its transposed view.
        let a_store = if ta {
            uniform(k, m, seed)
        } else {
            uniform(m, k, seed)
        };
        let b_store = if tb {
            uniform(n, k, seed + 1)
        } else {
            uniform(k, n, seed + 1)
        };
        let a = if ta { a_store.t() } else { a_store.view() };
        let b = if tb { b_store.t() } else { b_store.view() };
        let c0 = uniform(m, n, seed + 2);
        let mut want = c0.clone();
        reference::naive_gemm(alpha, a, b, beta, want.view_mut()).unwrap();
        let mut got = c0.clone();
        f(alpha, a, b, beta, got.view_mut());
        // |error| grows with k and with the size of the terms summed.
        let tol = 2e-6 * (k as f32) * alpha.abs().max(1.0) + 1e-5;
        for ((i, j), &w) in want.indexed_iter() {
            let g = got[[i, j]];
            assert!(
                (g - w).abs() <= tol * (1.0 + w.abs()),
                "m={m} n={n} k={k} ta={ta} tb={tb} alpha={alpha} beta={beta}: C[{i},{j}] = {g}, want {w}"
            );
        }
    }
}

const SIZES: [usize; 5] = [1, 7, 17, 33, 255];

fn sweep(f: Gemm) {
    for &m in &SIZES {
        for &n in &SIZES {
            for &k in &[1, 7, 17, 255] {
                check(f, m, n, k, 1.0, 0.0);
            }
        }
    }
    // alpha/beta other than 1/0, and a k that spans several KC blocks.
    check(f, 17, 33, 300, -0.5, 0.75);
    check(f, 255, 7, 600, 2.0, 1.0);
    // Sizes of 1000 and across MC / NC block edges.
    check(f, 1000, 17, 255, 1.0, 0.5);
    check(f, 7, 1000, 1000, 1.0, 0.0);
    check(f, 250, 70, 1000, 0.25, -1.0);
}

#[test]
fn entry_point_matches_reference() {
    sweep(entry);
}

#[test]
fn simd_serial_matches_reference() {
    sweep(simd_serial);
}

#[test]
fn simd_parallel_matches_reference() {
    with_threads(2, || sweep(simd_parallel));
}

#[test]
fn wide_panels_cross_nc() {
    // n larger than one B panel (NC = 128·NR columns: 4096 with AVX-512's
    // NR = 32, 2048 with AVX2's, 1024 with SSE2's).
    let (_, nr) = gemm::isa().tile();
    let n = 128 * nr + 37;
    check(simd_serial, 3, n, 5, 1.0, 0.0);
    with_threads(2, || check(simd_parallel, 20, n, 9, 1.0, 0.5));
}

#[test]
fn beta_zero_ignores_nan_in_c() {
    let a = uniform(9, 13, 1);
    let b = uniform(13, 11, 2);
    let mut want = Array2::zeros((9, 11));
    reference::naive_gemm(1.0, a.view(), b.view(), 0.0, want.view_mut()).unwrap();
    let mut c = Array2::from_elem((9, 11), f32::NAN);
    gemm::gemm(1.0, a.view(), b.view(), 0.0, c.view_mut()).unwrap();
    assert!(c.iter().all(|x| x.is_finite()));
    for (g, w) in c.iter().zip(want.iter()) {
        assert!((g - w).abs() < 1e-4);
    }
}

#[test]
fn k_zero_scales_c() {
    let a = Array2::<f32>::zeros((4, 0));
    let b = Array2::<f32>::zeros((0, 3));
    let mut c = Array2::from_elem((4, 3), 2.0f32);
    gemm::gemm(1.0, a.view(), b.view(), 0.5, c.view_mut()).unwrap();
    assert!(c.iter().all(|&x| x == 1.0));
}

#[test]
fn strided_and_transposed_output() {
    // C is a strided view (every other column) of a larger array, and a transposed view.
    let a = uniform(19, 23, 5);
    let b = uniform(23, 29, 6);
    let mut want = Array2::zeros((19, 29));
    reference::naive_gemm(1.0, a.view(), b.view(), 0.0, want.view_mut()).unwrap();

    let mut big = Array2::from_elem((19, 58), 7.0f32);
    gemm::gemm(1.0, a.view(), b.view(), 0.0, big.slice_mut(s![.., ..;2])).unwrap();
    let mut ct = Array2::zeros((29, 19));
    gemm::gemm(1.0, a.view(), b.view(), 0.0, ct.view_mut().reversed_axes()).unwrap();
    for ((i, j), &w) in want.indexed_iter() {
        assert!((big[[i, 2 * j]] - w).abs() < 1e-4);
        assert_eq!(big[[i, 2 * j + 1]], 7.0, "gemm wrote outside its view");
        assert!((ct[[j, i]] - w).abs() < 1e-4);
    }
}

#[test]
fn shape_errors_are_reported() {
    let a = Array2::<f32>::zeros((3, 4));
    let b = Array2::<f32>::zeros((5, 2));
    let mut c = Array2::<f32>::zeros((3, 2));
    let err = gemm::gemm(1.0, a.view(), b.view(), 0.0, c.view_mut()).unwrap_err();
    assert!(matches!(err, feedforward::Error::Shape { .. }), "{err}");
    let b = Array2::<f32>::zeros((4, 2));
    let mut c = Array2::<f32>::zeros((2, 2));
    match gemm::gemm(1.0, a.view(), b.view(), 0.0, c.view_mut()) {
        Err(feedforward::Error::Shape { got, .. }) => assert!(got.contains('2'), "{got}"),
        other => panic!("expected a shape error for C, got {other:?}"),
    }
}

#[test]
fn simd_is_bit_identical_across_thread_counts() {
    for &(m, n, k) in &[
        (256, 512, 784),
        (784, 512, 256),
        (1000, 70, 600),
        (5, 3000, 300),
    ] {
        let a = uniform(m, k, 11);
        let b = uniform(k, n, 12);
        // B as stored and B transposed (as in dZ·Wᵀ), whose panels pack differently.
        let bt = uniform(n, k, 13);
        for b in [b.view(), bt.t()] {
            let run = |threads: usize| {
                with_threads(threads, || {
                    let mut c = Array2::zeros((m, n));
                    gemm::gemm_with(1.0, a.view(), b, 0.0, c.view_mut(), Parallelism::auto())
                        .unwrap();
                    c
                })
            };
            let one = run(1);
            let two = run(2);
            assert!(
                one.iter()
                    .zip(two.iter())
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "{m}x{n}x{k}: 1 and 2 threads differ"
            );
        }
    }
}

#[test]
fn a_read_in_place_gives_the_packed_bits() {
    // The kernel reads A where it is when A is column-major, or row-major with
    // rows not a multiple of 4 KiB apart; otherwise it packs A first. All must
    // sum in the same order: identical bits, including edge rows (m not a
    // multiple of MR), several k blocks, and strides larger than the block.
    for &(m, n, k) in &[(5, 7, 1), (17, 33, 255), (255, 70, 600), (784, 512, 256)] {
        let values = uniform(m, k, 21);
        // Column-major: m × k with strides (1, m + 5).
        let mut col_store = Array2::<f32>::zeros((k + 3, m + 5));
        col_store
            .slice_mut(s![1..k + 1, 2..m + 2])
            .assign(&values.t());
        let column_major = col_store.slice(s![1..k + 1, 2..m + 2]).reversed_axes();
        assert_eq!(column_major.strides()[0], 1);
        // Row-major, rows k + 3 floats apart (read in place) and 4 KiB apart (packed).
        let row_major = |width: usize| {
            let mut store = Array2::<f32>::zeros((m, width));
            store.slice_mut(s![.., 1..k + 1]).assign(&values);
            store
        };
        let (near, far) = (row_major(k + 3), row_major(1024));
        let b = uniform(k, n, 22);
        let c0 = uniform(m, n, 23);
        for par in [Parallelism::None, Parallelism::Split(2)] {
            for beta in [0.0, 0.5] {
                let run = |a: ArrayView2<f32>| {
                    let mut c = c0.clone();
                    gemm::gemm_with(1.5, a, b.view(), beta, c.view_mut(), par).unwrap();
                    c
                };
                let packed = run(far.slice(s![.., 1..k + 1]));
                for (layout, a) in [
                    ("column-major", column_major),
                    ("row-major", near.slice(s![.., 1..k + 1])),
                ] {
                    let in_place = run(a);
                    assert!(
                        in_place
                            .iter()
                            .zip(&packed)
                            .all(|(x, y)| x.to_bits() == y.to_bits()),
                        "{m}x{n}x{k} {par:?} beta {beta}: {layout} A in place and packed differ"
                    );
                }
            }
        }
    }
}

#[test]
fn few_rows_path_matches_reference() {
    // m ≤ 4 with a row-major B takes the no-packing path; n and k cross its blocks.
    for &m in &[1, 2, 3, 4] {
        for &(n, k) in &[
            (1, 1),
            (7, 17),
            (17, 300),
            (129, 255),
            (300, 600),
            (1000, 7),
            (700, 800),
        ] {
            check(entry, m, n, k, 1.0, 0.0);
            // Large enough to be split over threads (a BLAS build sends these to
            // the crate's own few-rows kernel).
            with_threads(2, || check(entry, m, n, k, 1.0, 0.5));
            check(simd_serial, m, n, k, -0.5, 0.75);
            with_threads(2, || check(simd_parallel, m, n, k, 2.0, 1.0));
        }
    }
}

#[test]
fn a_row_alone_gives_the_same_bits_as_in_a_batch() {
    // The few-rows path and the packed path use the same arithmetic.
    let (m, n, k) = (40, 300, 700);
    let a = uniform(m, k, 21);
    let b = uniform(k, n, 22);
    let c0 = uniform(m, n, 23);
    let mut batch = c0.clone();
    gemm::gemm_with(
        1.5,
        a.view(),
        b.view(),
        0.5,
        batch.view_mut(),
        Parallelism::None,
    )
    .unwrap();
    for i in [0, 1, 13, 39] {
        let mut row = c0.slice(s![i..i + 1, ..]).to_owned();
        gemm::gemm_with(
            1.5,
            a.slice(s![i..i + 1, ..]),
            b.view(),
            0.5,
            row.view_mut(),
            Parallelism::None,
        )
        .unwrap();
        for j in 0..n {
            assert_eq!(
                row[[0, j]].to_bits(),
                batch[[i, j]].to_bits(),
                "row {i}, column {j}"
            );
        }
    }
}

/// `C ← A·B`, then `C + bias` (then `max(·, 0)`) as a separate pass: what
/// `gemm_bias` must reproduce bit for bit.
fn product_then_bias(
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    bias: &[f32],
    relu: bool,
) -> Array2<f32> {
    let mut c = Array2::zeros((a.nrows(), b.ncols()));
    gemm::gemm(1.0, a, b, 0.0, c.view_mut()).unwrap();
    for mut row in c.rows_mut() {
        for (v, b) in row.iter_mut().zip(bias) {
            let z = *v + b;
            *v = if relu { z.max(0.0) } else { z };
        }
    }
    c
}

#[test]
fn gemm_bias_is_the_product_then_the_bias_pass() {
    // Every kernel path: few rows (m ≤ 4), edge tiles, one and several k blocks,
    // transposed operands; on one thread and two.
    let shapes = [
        (1, 1, 1),
        (1, 300, 700),
        (3, 129, 255),
        (7, 17, 7),
        (17, 33, 300),
        (255, 7, 600),
        (256, 512, 784),
        (1000, 70, 255),
    ];
    for threads in [1, 2] {
        with_threads(threads, || {
            for &(m, n, k) in &shapes {
                let seed = (m * 31 + n * 17 + k) as u64;
                let a = uniform(m, k, seed);
                let at = uniform(k, m, seed + 1);
                let b = uniform(k, n, seed + 2);
                let bt = uniform(n, k, seed + 3);
                let bias = uniform(1, n, seed + 4).into_raw_vec_and_offset().0;
                for (a, b) in [(a.view(), b.view()), (at.t(), bt.t())] {
                    for relu in [false, true] {
                        let want = product_then_bias(a, b, &bias, relu);
                        let mut got = Array2::from_elem((m, n), f32::NAN);
                        let epilogue = gemm::Epilogue::new(&bias, relu);
                        gemm::gemm_bias(a, b, got.view_mut(), &epilogue).unwrap();
                        assert!(!epilogue.saw_non_finite(), "{m}x{n}x{k}");
                        for ((i, j), w) in want.indexed_iter() {
                            assert_eq!(
                                got[[i, j]].to_bits(),
                                w.to_bits(),
                                "{m}x{n}x{k} relu={relu} threads={threads}: C[{i},{j}]"
                            );
                        }
                        if relu {
                            assert!(got.iter().all(|&v| v >= 0.0));
                        }
                    }
                }
            }
        });
    }
}

#[test]
fn gemm_bias_on_strided_output_and_empty_k() {
    let a = uniform(19, 23, 5);
    let b = uniform(23, 29, 6);
    let bias = uniform(1, 29, 7).into_raw_vec_and_offset().0;
    let want = product_then_bias(a.view(), b.view(), &bias, true);
    let mut big = Array2::from_elem((19, 58), 7.0f32);
    let relu = gemm::Epilogue::new(&bias, true);
    gemm::gemm_bias(a.view(), b.view(), big.slice_mut(s![.., ..;2]), &relu).unwrap();
    for ((i, j), &w) in want.indexed_iter() {
        assert_eq!(big[[i, 2 * j]], w);
        assert_eq!(big[[i, 2 * j + 1]], 7.0, "gemm_bias wrote outside its view");
    }
    // k = 0: C is the bias alone.
    let mut c = Array2::from_elem((3, 29), f32::NAN);
    let plain = gemm::Epilogue::new(&bias, false);
    gemm::gemm_bias(
        Array2::zeros((3, 0)).view(),
        Array2::zeros((0, 29)).view(),
        c.view_mut(),
        &plain,
    )
    .unwrap();
    assert!(
        c.rows()
            .into_iter()
            .all(|r| r.as_slice().unwrap() == &bias[..])
    );
    // One bias per column, or an error.
    let mut c = Array2::zeros((19, 29));
    let short = gemm::Epilogue::new(&bias[..28], false);
    let err = gemm::gemm_bias(a.view(), b.view(), c.view_mut(), &short).unwrap_err();
    assert!(matches!(err, feedforward::Error::Shape { .. }), "{err}");
}

#[test]
fn gemm_bias_notes_nan_and_infinity_before_the_clamp() {
    // A NaN or ∞ anywhere in a row of A spoils every result of that row, even
    // where ReLU would clamp it to 0; finite operands leave the flag down unless
    // the sum overflows.
    for &(m, n, k) in &[(1, 40, 30), (4, 300, 700), (50, 70, 300), (300, 33, 17)] {
        for threads in [1, 2] {
            with_threads(threads, || {
                let mut a = uniform(m, k, 1);
                let b = uniform(k, n, 2);
                let bias = vec![0.0; n];
                let run = |a: &Array2<f32>| {
                    let mut c = Array2::zeros((m, n));
                    let relu = gemm::Epilogue::new(&bias, true);
                    gemm::gemm_bias(a.view(), b.view(), c.view_mut(), &relu).unwrap();
                    relu.saw_non_finite()
                };
                assert!(!run(&a), "{m}x{n}x{k}: finite");
                for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                    let (i, p) = (m - 1, k / 2);
                    let keep = a[[i, p]];
                    a[[i, p]] = bad;
                    assert!(run(&a), "{m}x{n}x{k}: {bad} at ({i}, {p})");
                    a[[i, p]] = keep;
                }
                a.fill(3e38);
                assert!(run(&a), "{m}x{n}x{k}: overflow");
            });
        }
    }
}
