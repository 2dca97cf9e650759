//! The bf16 products: every path (the instruction, the emulation on every
//! instruction set, packed weights, any thread count) against the plain
//! reference over the instruction's model, bit for bit, on awkward shapes.

mod common;

use std::sync::Mutex;

use common::{rng, uniform, with_threads};
use feedforward::gemm::bf16::{self, PackedWeights, gemm_bf16, gemm_bf16_bias};
use feedforward::gemm::{self, Epilogue, Isa};
use ndarray::{Array2, ArrayView2, ShapeBuilder};
use rand::RngExt;

/// The instruction set is global: one test at a time changes it.
static LEVEL: Mutex<()> = Mutex::new(());

/// Values over many magnitudes, with exact zeros, values near the flush
/// threshold and ties of bf16 rounding.
fn awkward(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = rng(seed);
    Array2::from_shape_fn((rows, cols), |_| match rng.random_range(0..10) {
        0 => 0.0,
        1 => rng.random_range(-1.0f32..1.0) * 1e-17,
        2 => 1.0 + 1.0 / 256.0,
        3 => rng.random_range(-1.0f32..1.0) * 1e6,
        _ => rng.random_range(-2.0f32..2.0),
    })
}

fn bits(c: &Array2<f32>) -> Vec<u32> {
    c.iter().map(|v| v.to_bits()).collect()
}

/// (m, k, n): edges of every tile, odd k, several blocks of k, few rows, and
/// both sides of `bf16::FEW_ROWS` (where the instruction is slow, products of
/// that many rows or more are emulated at its level too).
const SHAPES: [(usize, usize, usize); 12] = [
    (47, 129, 35),
    (48, 129, 35),
    (1, 1, 1),
    (1, 785, 70),
    (1, 200, 700),
    (2, 131, 300),
    (3, 300, 33),
    (4, 64, 512),
    (13, 45, 31),
    (25, 513, 65),
    (131, 77, 600),
    (200, 1030, 40),
];

fn with_each_level(mut f: impl FnMut(Isa)) {
    let _turn = LEVEL.lock().unwrap_or_else(|e| e.into_inner());
    let before = gemm::isa();
    for isa in Isa::supported() {
        gemm::set_isa(isa).unwrap();
        f(isa);
    }
    gemm::set_isa(before).unwrap();
}

#[test]
fn every_level_equals_the_reference_bit_for_bit() {
    with_each_level(|isa| {
        for (s, &(m, k, n)) in SHAPES.iter().enumerate() {
            let a = awkward(m, k, s as u64);
            let b = awkward(k, n, 100 + s as u64);
            let c0 = awkward(m, n, 200 + s as u64);
            for accumulate in [false, true] {
                let mut want = c0.clone();
                bf16::reference(a.view(), b.view(), want.view_mut(), accumulate).unwrap();
                let mut got = c0.clone();
                gemm_bf16(a.view(), b.view(), got.view_mut(), accumulate).unwrap();
                assert_eq!(
                    bits(&got),
                    bits(&want),
                    "{isa} {m}x{k}x{n} accumulate {accumulate}"
                );
            }
            // Transposed operands (as in the backward products).
            let at = a.t().to_owned();
            let bt = b.t().to_owned();
            let mut want = Array2::zeros((m, n));
            bf16::reference(a.view(), b.view(), want.view_mut(), false).unwrap();
            let mut got = Array2::zeros((m, n));
            gemm_bf16(at.t(), bt.t(), got.view_mut(), false).unwrap();
            assert_eq!(bits(&got), bits(&want), "{isa} transposed {m}x{k}x{n}");
            // A column-major C.
            let mut cm = Array2::zeros((m, n).f());
            gemm_bf16(a.view(), b.view(), cm.view_mut(), false).unwrap();
            assert_eq!(
                bits(&cm.as_standard_layout().to_owned()),
                bits(&want),
                "{isa} col-major C"
            );
        }
    });
}

#[test]
fn packed_weights_and_the_epilogue_give_the_same_bits_everywhere() {
    let (m, k, n) = (61, 300, 70);
    let x = awkward(m, k, 1);
    let w = awkward(k, n, 2);
    let bias: Vec<f32> = (0..n).map(|j| j as f32 / 10.0 - 3.0).collect();
    let relu = Epilogue::new(&bias, true);
    // The reference: the product, then bias and ReLU in f32.
    let mut want = Array2::zeros((m, n));
    bf16::reference(x.view(), w.view(), want.view_mut(), false).unwrap();
    for row in want.rows_mut() {
        for (v, b) in row.into_iter().zip(&bias) {
            *v = (*v + b).max(0.0);
        }
    }
    let mut packed_elsewhere: Option<PackedWeights> = None;
    with_each_level(|isa| {
        let mut direct = Array2::zeros((m, n));
        gemm_bf16_bias(x.view(), w.view(), direct.view_mut(), &relu).unwrap();
        assert_eq!(bits(&direct), bits(&want), "{isa} gemm_bf16_bias");
        let packed = PackedWeights::new(w.view());
        assert_eq!(packed.dim(), (k, n));
        for rows in [1, 3, bf16::FEW_ROWS - 1, bf16::FEW_ROWS, m] {
            let mut out = Array2::zeros((rows, n));
            packed
                .gemm_bias(x.slice(ndarray::s![..rows, ..]), out.view_mut(), &relu)
                .unwrap();
            assert_eq!(
                bits(&out),
                bits(&want.slice(ndarray::s![..rows, ..]).to_owned()),
                "{isa} packed, {rows} rows"
            );
        }
        // Weights packed on another level are repacked for the call.
        if let Some(other) = &packed_elsewhere {
            let mut out = Array2::zeros((m, n));
            other.gemm_bias(x.view(), out.view_mut(), &relu).unwrap();
            assert_eq!(
                bits(&out),
                bits(&want),
                "{isa} weights packed on another level"
            );
        }
        packed_elsewhere = Some(packed);
    });
}

#[test]
fn one_thread_and_two_give_the_same_bits() {
    let (m, k, n) = (300, 520, 260);
    let a = awkward(m, k, 5);
    let b = awkward(k, n, 6);
    let run = |threads: usize, rows: usize| {
        let mut c = Array2::zeros((rows, n));
        with_threads(threads, || {
            gemm_bf16(
                a.slice(ndarray::s![..rows, ..]),
                b.view(),
                c.view_mut(),
                false,
            )
        })
        .unwrap();
        bits(&c)
    };
    with_each_level(|isa| {
        for rows in [1, 4, m] {
            assert_eq!(run(1, rows), run(2, rows), "{isa}: {rows} rows");
        }
    });
}

#[test]
fn shapes_are_checked() {
    let a = Array2::<f32>::zeros((2, 3));
    let b = Array2::<f32>::zeros((4, 5));
    let mut c = Array2::<f32>::zeros((2, 5));
    match gemm_bf16(a.view(), b.view(), c.view_mut(), false) {
        Err(feedforward::Error::Shape { expected, got, .. }) => {
            assert_eq!((expected.as_str(), got.as_str()), ("3 x 5", "4 x 5"));
        }
        other => panic!("{other:?}"),
    }
    let packed = PackedWeights::new(ArrayView2::from_shape((3, 5), &[0.0; 15]).unwrap());
    let relu = Epilogue::new(&[0.0; 5], true);
    let err = packed.gemm_bias(b.view(), c.view_mut(), &relu).unwrap_err();
    assert!(matches!(err, feedforward::Error::Shape { .. }), "{err:?}");
}

/// The bf16 product is close to the f32 one: each term's operands carry a
/// relative error of at most 2⁻⁹.
#[test]
fn close_to_the_f32_product() {
    let a = uniform(64, 256, 9);
    let b = uniform(256, 48, 10);
    let mut exact = Array2::zeros((64, 48));
    gemm::reference::naive_gemm(1.0, a.view(), b.view(), 0.0, exact.view_mut()).unwrap();
    let mut got = Array2::zeros((64, 48));
    gemm_bf16(a.view(), b.view(), got.view_mut(), false).unwrap();
    let scale = a.mapv(f32::abs).dot(&b.mapv(f32::abs));
    for ((g, e), s) in got.iter().zip(&exact).zip(&scale) {
        assert!(
            (g - e).abs() <= s * 2.0 * 2f32.powi(-8) + 1e-6,
            "{g} vs {e} (scale {s})"
        );
    }
}
