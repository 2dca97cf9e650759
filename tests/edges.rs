//! Numbers at the edges: the largest floats, subnormals and -0.0 go through
//! every activation and every loss (categorical, binary and multi-label
//! cross-entropy, mean squared error) without NaN or overflow where the math is
//! finite, and agree with an f64 reference: within 2e-7 + 2e-6·|x| for each
//! value and gradient, 1e-5 relative for a batch's loss.

mod common;

use feedforward::{Activation, Loss, Targets};
use ndarray::Array2;
use rand::RngExt;

/// Edge values, then random ones over the whole exponent range.
fn inputs() -> Vec<f32> {
    let mut v = vec![
        f32::MAX,
        -f32::MAX,
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE,
        1e-45,
        -1e-45,
        0.0,
        -0.0,
        1.0,
        -1.0,
        88.7,
        -88.7,
        89.0,
        -104.0,
        1e4,
        -1e4,
    ];
    let mut rng = common::rng(7);
    for _ in 0..4000 {
        let e: i32 = rng.random_range(-149..=127);
        let m: f32 = rng.random_range(1.0..2.0);
        let s = if rng.random_bool(0.5) { -1.0 } else { 1.0 };
        v.push((s * m * 2f64.powi(e) as f32).clamp(-f32::MAX, f32::MAX));
    }
    v
}

fn close(got: f32, want: f64, what: &str, z: f32) {
    assert!(got.is_finite(), "{what}({z:e}) = {got}");
    let err = (f64::from(got) - want).abs();
    assert!(
        err <= 2e-7 + 2e-6 * want.abs(),
        "{what}({z:e}) = {got:e}, f64 gives {want:e}"
    );
}

#[test]
fn elementwise_activations_match_f64() {
    let z = inputs();
    let col = Array2::from_shape_vec((z.len(), 1), z.clone()).unwrap();
    type Reference = fn(f64) -> f64;
    let cases: [(Activation, Reference); 4] = [
        (Activation::Relu, |x| x.max(0.0)),
        (Activation::Sigmoid, |x| 1.0 / (1.0 + (-x).exp())),
        (Activation::Tanh, f64::tanh),
        (Activation::Identity, |x| x),
    ];
    for (act, reference) in cases {
        let a = act.forward(col.view());
        for (&zi, &ai) in z.iter().zip(a.iter()) {
            close(ai, reference(f64::from(zi)), act.name(), zi);
        }
        // The derivative from the output is finite wherever the output is.
        let ones = Array2::ones(a.dim());
        let dz = act.backward(a.view(), ones.view()).unwrap();
        assert!(
            dz.iter().all(|d| d.is_finite()),
            "{}: a derivative is not finite",
            act.name()
        );
    }
}

#[test]
fn softmax_and_cross_entropy_match_f64_at_extreme_logits() {
    let z = inputs();
    let k = 4;
    let rows = z.len() / k;
    let logits = Array2::from_shape_vec((rows, k), z[..rows * k].to_vec()).unwrap();
    let labels: Vec<usize> = (0..rows).map(|r| r % k).collect();
    let a = Activation::Softmax.forward(logits.view());
    let (loss, dz) = Loss::CategoricalCrossEntropy
        .from_logits(logits.view(), Targets::classes(&labels))
        .unwrap();
    let mut total = 0.0f64;
    for r in 0..rows {
        let row: Vec<f64> = (0..k).map(|j| f64::from(logits[[r, j]])).collect();
        let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = row.iter().map(|x| (x - max).exp()).sum();
        for j in 0..k {
            let p = (row[j] - max).exp() / sum;
            close(a[[r, j]], p, "softmax", logits[[r, j]]);
            let want = (p - f64::from(u8::from(j == labels[r]))) / rows as f64;
            close(dz[[r, j]], want, "cross-entropy dz", logits[[r, j]]);
        }
        total += max + sum.ln() - row[labels[r]];
    }
    let want = total / rows as f64;
    assert!(loss.is_finite(), "loss {loss}");
    assert!(
        (f64::from(loss) - want).abs() <= 1e-5 * want.abs().max(1.0),
        "loss {loss:e}, f64 gives {want:e}"
    );
}

/// `log(1 + e^x)` without overflow, in f64.
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// Binary (one column) and multi-label (three columns) cross-entropy from
/// logits over the whole f32 range: loss `softplus(z) − t·z` per entry,
/// gradient `(σ(z) − t)/(k·m)`, against f64.
#[test]
fn binary_and_multilabel_cross_entropy_match_f64_at_extreme_logits() {
    let z = inputs();
    for (loss_kind, k) in [
        (Loss::BinaryCrossEntropy, 1),
        (Loss::MultiLabelCrossEntropy, 3),
    ] {
        let rows = z.len() / k;
        let logits = Array2::from_shape_vec((rows, k), z[..rows * k].to_vec()).unwrap();
        let t = Array2::from_shape_fn((rows, k), |(r, j)| ((r * 7 + j * 3) % 2) as f32);
        let (loss, dz) = loss_kind
            .from_logits(logits.view(), Targets::Values(t.view()))
            .unwrap();
        let scale = 1.0 / (k * rows) as f64;
        let mut total = 0.0f64;
        for ((r, j), &x) in logits.indexed_iter() {
            let (x64, t64) = (f64::from(x), f64::from(t[[r, j]]));
            let p = 1.0 / (1.0 + (-x64).exp());
            close(dz[[r, j]], (p - t64) * scale, loss_kind.name(), x);
            total += softplus(x64) - t64 * x64;
        }
        let want = total * scale;
        assert!(loss.is_finite(), "{}: loss {loss}", loss_kind.name());
        assert!(
            (f64::from(loss) - want).abs() <= 1e-5 * want.abs().max(1.0),
            "{}: loss {loss:e}, f64 gives {want:e}",
            loss_kind.name()
        );
    }
}

/// Mean squared error on outputs up to ±1.8e19 (whose squares still fit in an
/// f32), and its gradient `2(a − t)/(k·m)` on every f32, against f64.
#[test]
fn mean_squared_error_matches_f64_over_the_f32_range() {
    let z = inputs();
    let k = 2;
    let rows = z.len() / k;
    let t = Array2::from_shape_fn((rows, k), |(r, j)| (r as f32 * 0.37 + j as f32).sin());
    let all = Array2::from_shape_vec((rows, k), z[..rows * k].to_vec()).unwrap();
    let (_, dz) = Loss::MeanSquaredError
        .from_logits(all.view(), Targets::Values(t.view()))
        .unwrap();
    let scale = 1.0 / (k * rows) as f64;
    for ((r, j), &x) in all.indexed_iter() {
        let want = 2.0 * (f64::from(x) - f64::from(t[[r, j]])) * scale;
        close(dz[[r, j]], want, "mse dz", x);
    }
    let bounded = all.mapv(|x| x.clamp(-1.8e19, 1.8e19));
    let (loss, _) = Loss::MeanSquaredError
        .from_logits(bounded.view(), Targets::Values(t.view()))
        .unwrap();
    let want: f64 = bounded
        .indexed_iter()
        .map(|((r, j), &x)| (f64::from(x) - f64::from(t[[r, j]])).powi(2))
        .sum::<f64>()
        * scale;
    assert!(loss.is_finite(), "loss {loss}");
    assert!(
        (f64::from(loss) - want).abs() <= 1e-5 * want.abs().max(1.0),
        "loss {loss:e}, f64 gives {want:e}"
    );
}
