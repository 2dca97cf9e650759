//! Every instruction set this CPU runs, forced one after the other with
//! `gemm::set_isa`: each against the reference, bit-identical across thread
//! counts, and the documented relations between them.
//!
//! The level is process-wide, so this file's checks run in one test, in order
//! (the other test files run on the level `FEEDFORWARD_ISA` picks; CI runs
//! them once per level).

mod common;

use common::{uniform, with_threads};
use feedforward::Error;
use feedforward::gemm::{self, Isa, Parallelism, reference};
#[cfg(not(feature = "blas"))]
use feedforward::{Activation::*, FitConfig, Network, Optimizer, data};
use ndarray::{Array2, ArrayView2, s};
use std::sync::Mutex;

/// The level is process-wide: the tests here take turns.
static LEVEL: Mutex<()> = Mutex::new(());

fn product(isa: Isa, a: ArrayView2<f32>, b: ArrayView2<f32>, par: Parallelism) -> Array2<f32> {
    gemm::set_isa(isa).unwrap();
    assert_eq!(gemm::isa(), isa);
    let mut c = uniform(a.nrows(), b.ncols(), 5);
    gemm::gemm_with(1.25, a, b, 0.5, c.view_mut(), par).unwrap();
    c
}

fn bits(m: &Array2<f32>) -> Vec<u32> {
    m.iter().map(|x| x.to_bits()).collect()
}

#[cfg(not(feature = "blas"))]
/// Trains a small network (gemm, epilogue, element-wise kernels, Adam) and
/// returns its parameters.
fn train(isa: Isa, threads: usize) -> Vec<u32> {
    gemm::set_isa(isa).unwrap();
    with_threads(threads, || {
        let (x, y) = data::blobs(96, 4, 40, 7);
        let mut net = Network::builder(40)
            .dense(70, Relu)
            .dense(33, Tanh)
            .dense(4, Softmax)
            .optimizer(Optimizer::adam(1e-2))
            .seed(3)
            .build()
            .unwrap();
        let cfg = FitConfig {
            epochs: 2,
            batch_size: 64,
            ..Default::default()
        };
        net.fit(x.view(), (&y).into(), &cfg).unwrap();
        net.parameters().iter().map(|v| v.to_bits()).collect()
    })
}

#[test]
fn every_supported_level_is_exact_and_deterministic() {
    let _turn = LEVEL.lock().unwrap_or_else(|e| e.into_inner());
    let levels = Isa::supported();
    assert!(levels.contains(&Isa::Portable), "{levels:?}");
    assert_eq!(levels[0], Isa::best());
    #[cfg(target_arch = "x86_64")]
    assert_eq!(
        levels.contains(&Isa::Avx512),
        std::arch::is_x86_feature_detected!("avx512f")
    );

    // Awkward shapes: edges in every direction for every tile size, several
    // k blocks, a transposed A (read in place) and a transposed B (packed by
    // transposing), and a few-rows product.
    let shapes = [
        (1, 7, 5),
        (3, 301, 700),
        (13, 45, 33),
        (131, 77, 600),
        (250, 1100, 96),
    ];
    let mut results = Vec::new();
    for &isa in &levels {
        for &(m, n, k) in &shapes {
            let a = uniform(k, m, (m + n) as u64);
            let b = uniform(n, k, (n + k) as u64);
            let (a, b) = (a.t(), b.t());
            let mut want = uniform(m, n, 5);
            reference::naive_gemm(1.25, a, b, 0.5, want.view_mut()).unwrap();
            let one = product(isa, a, b, Parallelism::None);
            let tol = 4e-6 * k as f32 + 1e-5;
            for ((i, j), &w) in want.indexed_iter() {
                let g = one[[i, j]];
                assert!(
                    (g - w).abs() <= tol * (1.0 + w.abs()),
                    "{isa} {m}x{n}x{k}: C[{i},{j}] = {g}, want {w}"
                );
            }
            let two = with_threads(2, || product(isa, a, b, Parallelism::Split(2)));
            assert_eq!(
                bits(&one),
                bits(&two),
                "{isa} {m}x{n}x{k}: 1 and 2 threads differ"
            );
            results.push((isa, (m, n, k), one));
        }
    }

    // AVX-512 and AVX2 run the same fused arithmetic per element in the same
    // order (only the tiles differ): the same bits. The SSE2 kernel multiplies
    // and adds separately, so a long sum differs somewhere.
    let of = |isa: Isa, shape| {
        results
            .iter()
            .find(|(i, s, _)| *i == isa && *s == shape)
            .map(|(_, _, c)| bits(c))
    };
    let long = (131, 77, 600);
    if let (Some(wide), Some(narrow)) = (of(Isa::Avx512, long), of(Isa::Avx2, long)) {
        assert_eq!(wide, narrow, "AVX-512 and AVX2 differ");
    }
    #[cfg(all(target_arch = "x86_64", not(target_feature = "fma")))]
    if let (Some(fused), Some(sse2)) = (of(Isa::Avx2, long), of(Isa::Portable, long)) {
        assert_ne!(fused, sse2, "forcing SSE2 did not change the kernel");
    }

    // Training: bit-identical across thread counts on each level, and the two
    // FMA levels agree on the whole run. (Default backend only: a BLAS library
    // makes no promise across thread counts.)
    #[cfg(not(feature = "blas"))]
    {
        let mut trained = Vec::new();
        for &isa in &levels {
            let one = train(isa, 1);
            assert_eq!(
                one,
                train(isa, 2),
                "{isa}: training differs on 1 and 2 threads"
            );
            trained.push((isa, one));
        }
        let run_of = |isa| trained.iter().find(|(i, _)| *i == isa).map(|(_, w)| w);
        if let (Some(wide), Some(narrow)) = (run_of(Isa::Avx512), run_of(Isa::Avx2)) {
            assert_eq!(wide, narrow, "AVX-512 and AVX2 training differ");
        }
    }

    // A batch-1 product gives the batch's bits on every level.
    for &isa in &levels {
        let a = uniform(9, 300, 1);
        let b = uniform(300, 130, 2);
        let batch = product(isa, a.view(), b.view(), Parallelism::None);
        let (row, rows) = (a.slice(s![4..5, ..]), s![4..5, ..]);
        let mut alone = uniform(9, 130, 5).slice(rows).to_owned();
        gemm::gemm_with(
            1.25,
            row,
            b.view(),
            0.5,
            alone.view_mut(),
            Parallelism::None,
        )
        .unwrap();
        assert_eq!(
            bits(&batch.slice(rows).to_owned()),
            bits(&alone),
            "{isa}: a row alone differs from the batch"
        );
    }
    gemm::set_isa(Isa::best()).unwrap();
}

#[test]
fn names_round_trip_and_unknown_names_are_refused() {
    let _turn = LEVEL.lock().unwrap_or_else(|e| e.into_inner());
    for isa in Isa::ALL {
        assert_eq!(Isa::from_name(isa.name()), Some(isa));
        assert_eq!(Isa::from_name(&isa.name().to_uppercase()), Some(isa));
    }
    assert_eq!(Isa::from_name("sse2"), Some(Isa::Portable));
    assert_eq!(Isa::from_name("portable"), Some(Isa::Portable));
    assert_eq!(Isa::from_name("avx-512"), Some(Isa::Avx512));
    assert_eq!(Isa::from_name("avx3"), None);
    assert_eq!(Isa::Avx512.tile(), (12, 32));
    assert_eq!(Isa::Avx2.tile(), (6, 16));
    // Unsupported levels are refused with the list of those that run.
    for isa in Isa::ALL {
        match gemm::set_isa(isa) {
            Ok(()) => assert!(isa.is_supported()),
            Err(Error::Isa {
                requested,
                known,
                available,
            }) => {
                assert!(!isa.is_supported());
                assert_eq!(requested, isa.name());
                assert!(known);
                assert!(available.contains(&Isa::Portable.name()), "{available:?}");
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    gemm::set_isa(Isa::best()).unwrap();
}
