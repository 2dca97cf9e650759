//! Every activation, loss and layer against central finite differences.

mod common;

use common::uniform;
use feedforward::{Activation::*, Loss, Network, Targets};
use ndarray::{Array1, Array2, ArrayView2};

/// Central difference of `f` at every element of `x`, with step `h`, in f64.
fn numeric_grad(x: &Array2<f32>, h: f32, f: impl Fn(&Array2<f32>) -> f64) -> Array2<f64> {
    let mut g = Array2::zeros(x.dim());
    for (idx, _) in x.indexed_iter() {
        let (mut plus, mut minus) = (x.clone(), x.clone());
        plus[idx] += h;
        minus[idx] -= h;
        g[idx] = (f(&plus) - f(&minus)) / (f64::from(plus[idx]) - f64::from(minus[idx]));
    }
    g
}

fn assert_close(what: &str, analytic: ArrayView2<f32>, numeric: &Array2<f64>, abs: f64, rel: f64) {
    for ((idx, &a), &n) in analytic.indexed_iter().zip(numeric.iter()) {
        let a = f64::from(a);
        assert!(
            (a - n).abs() <= abs + rel * n.abs(),
            "{what}: gradient at {idx:?} is {a}, finite differences give {n}"
        );
    }
}

#[test]
fn activations_match_finite_differences() {
    // Keep ReLU inputs away from its kink at 0.
    let z = uniform(7, 17, 1).mapv(|v| if v.abs() < 0.05 { v + 0.1 } else { v } * 3.0);
    let c = uniform(7, 17, 2);
    for act in [Identity, Relu, Sigmoid, Tanh, Softmax] {
        // L(z) = Σ c ⊙ g(z), so dL/dz = backward(g(z), c).
        let a = act.forward(z.view());
        let analytic = act.backward(a.view(), c.view()).unwrap();
        let numeric = numeric_grad(&z, 1e-2, |z| {
            let a = act.forward(z.view());
            a.iter().zip(c.iter()).map(|(a, c)| f64::from(a * c)).sum()
        });
        assert_close(act.name(), analytic.view(), &numeric, 1e-3, 1e-2);
    }
}

#[test]
fn softmax_is_stable_and_normalised() {
    let z = ndarray::array![[1e4f32, -1e4, 0.0], [-3e38, 3e38, 1.0]];
    let a = Softmax.forward(z.view());
    for row in a.rows() {
        assert!(row.iter().all(|p| p.is_finite() && *p >= 0.0));
        assert!((row.sum() - 1.0).abs() < 1e-6);
    }
    assert_eq!(a[[0, 0]], 1.0);
}

fn class_targets(rows: usize, classes: usize) -> Array1<usize> {
    Array1::from_shape_fn(rows, |i| (i * 7 + 3) % classes)
}

fn one_hot(labels: &Array1<usize>, classes: usize) -> Array2<f32> {
    Array2::from_shape_fn((labels.len(), classes), |(i, j)| {
        f32::from(u8::from(labels[i] == j))
    })
}

/// Every loss's fused gradient from logits, for index and value targets.
#[test]
fn losses_match_finite_differences() {
    let (m, k) = (9, 5);
    let z = uniform(m, k, 3).mapv(|v| v * 4.0);
    let labels = class_targets(m, k);
    let hot = one_hot(&labels, k);
    let soft = uniform(m, k, 4).mapv(|v| (v + 1.0) / 2.0); // values in [0, 1]
    let regress = uniform(m, k, 5);
    let z1 = z.column(0).to_owned().insert_axis(ndarray::Axis(1));
    let binary = Array1::from_shape_fn(m, |i| i % 2);
    let cases: Vec<(Loss, Array2<f32>, Targets)> = vec![
        (
            Loss::CategoricalCrossEntropy,
            z.clone(),
            Targets::Classes(labels.view()),
        ),
        (
            Loss::CategoricalCrossEntropy,
            z.clone(),
            Targets::Values(hot.view()),
        ),
        (
            Loss::CategoricalCrossEntropy,
            z.clone(),
            Targets::Values(soft.view()),
        ),
        (
            Loss::MultiLabelCrossEntropy,
            z.clone(),
            Targets::Values(soft.view()),
        ),
        (
            Loss::MultiLabelCrossEntropy,
            z.clone(),
            Targets::Classes(labels.view()),
        ),
        (
            Loss::BinaryCrossEntropy,
            z1.clone(),
            Targets::Classes(binary.view()),
        ),
        (
            Loss::MeanSquaredError,
            z.clone(),
            Targets::Values(regress.view()),
        ),
        (
            Loss::MeanSquaredError,
            z.clone(),
            Targets::Classes(labels.view()),
        ),
    ];
    for (loss, logits, targets) in cases {
        let (_, analytic) = loss.from_logits(logits.view(), targets).unwrap();
        let numeric = numeric_grad(&logits, 1e-2, |z| {
            f64::from(loss.from_logits(z.view(), targets).unwrap().0)
        });
        assert_close(loss.name(), analytic.view(), &numeric, 2e-4, 1e-2);
    }
}

/// The seed example: the fused softmax–cross-entropy gradient equals softmax's
/// backward applied to the separate cross-entropy gradient (and likewise for sigmoid).
#[test]
fn fused_equals_activation_backward_of_separate_loss() {
    let (m, k) = (6, 4);
    let z = uniform(m, k, 8).mapv(|v| v * 3.0);
    let labels = class_targets(m, k);
    let hot = one_hot(&labels, k);
    for targets in [Targets::Classes(labels.view()), Targets::Values(hot.view())] {
        let (fused_loss, fused) = Loss::CategoricalCrossEntropy
            .from_logits(z.view(), targets)
            .unwrap();
        let p = Softmax.forward(z.view());
        let (loss, dp) = Loss::CategoricalCrossEntropy
            .from_outputs(p.view(), targets)
            .unwrap();
        let chained = Softmax.backward(p.view(), dp.view()).unwrap();
        assert!((fused_loss - loss).abs() < 1e-5, "{fused_loss} vs {loss}");
        for (a, b) in fused.iter().zip(chained.iter()) {
            assert!((a - b).abs() < 1e-5, "fused {a} vs chained {b}");
        }
    }
    let soft = uniform(m, k, 9).mapv(|v| (v + 1.0) / 2.0);
    let targets = Targets::Values(soft.view());
    let (_, fused) = Loss::MultiLabelCrossEntropy
        .from_logits(z.view(), targets)
        .unwrap();
    let p = Sigmoid.forward(z.view());
    let (_, dp) = Loss::MultiLabelCrossEntropy
        .from_outputs(p.view(), targets)
        .unwrap();
    let chained = Sigmoid.backward(p.view(), dp.view()).unwrap();
    for (a, b) in fused.iter().zip(chained.iter()) {
        assert!((a - b).abs() < 1e-5, "fused {a} vs chained {b}");
    }
}

#[test]
fn cross_entropy_is_finite_at_extreme_logits() {
    let z = ndarray::array![[1e4f32, -1e4, 0.0], [-1e4, 1e4, 5.0]];
    let labels = [1usize, 1];
    let (loss, grad) = Loss::CategoricalCrossEntropy
        .from_logits(z.view(), Targets::classes(&labels))
        .unwrap();
    assert!((loss - 1e4).abs() < 1.0, "loss {loss}");
    assert!(grad.iter().all(|g| g.is_finite()));
    let (loss, grad) = Loss::MultiLabelCrossEntropy
        .from_logits(
            z.view(),
            Targets::Values(z.mapv(|v| f32::from(u8::from(v > 0.0))).view()),
        )
        .unwrap();
    // Only the z = 0 (target 0) and z = 5 (target 1) elements cost anything.
    let want = (2f32.ln() + (-5f32).exp().ln_1p()) / 6.0;
    assert!((loss - want).abs() < 1e-6, "loss {loss}, want {want}");
    assert!(grad.iter().all(|g| g.is_finite()));
}

/// Finite differences through a whole network: the loss of `forward` + `backward`
/// as a function of every parameter.
fn check_network(net: Network, x: &Array2<f32>, targets: Targets, tol_abs: f64) {
    let all: Vec<usize> = (0..net.parameter_count()).collect();
    check_parameters(net, x, targets, &all, tol_abs);
}

/// [`check_network`] on the parameters `which` only.
fn check_parameters(
    mut net: Network,
    x: &Array2<f32>,
    targets: Targets,
    which: &[usize],
    tol_abs: f64,
) {
    net.forward(x.view()).unwrap();
    net.backward(targets).unwrap();
    let analytic = net.gradients().to_vec();
    let n = analytic.len();
    let params = net.parameters().to_vec();
    let h = 1e-2f32;
    let mut loss_at = |i: usize, v: f32| {
        net.parameters_mut()[i] = v;
        net.forward(x.view()).unwrap();
        let l = net.backward(targets).unwrap();
        net.parameters_mut()[i] = params[i];
        f64::from(l)
    };
    for &i in which {
        let numeric =
            (loss_at(i, params[i] + h) - loss_at(i, params[i] - h)) / (2.0 * f64::from(h));
        let a = f64::from(analytic[i]);
        assert!(
            (a - numeric).abs() <= tol_abs + 3e-2 * numeric.abs(),
            "parameter {i} of {n}: gradient {a}, finite differences {numeric}"
        );
    }
}

#[test]
fn dense_network_gradients() {
    let x = uniform(8, 5, 10);
    let labels = class_targets(8, 3);
    for (hidden, seed) in [(Tanh, 1), (Sigmoid, 2), (Identity, 3)] {
        let net = Network::builder(5)
            .dense(6, hidden)
            .dense(4, Tanh)
            .dense(3, Softmax)
            .seed(seed)
            .build()
            .unwrap();
        check_network(net, &x, Targets::Classes(labels.view()), 5e-4);
    }
    let y = uniform(8, 2, 11);
    let net = Network::builder(5)
        .dense(7, Tanh)
        .dense(2, Identity)
        .build()
        .unwrap();
    check_network(net, &x, Targets::Values(y.view()), 5e-4);
    // MSE through a non-identity output (the unfused path).
    let net = Network::builder(5)
        .dense(7, Tanh)
        .dense(2, Sigmoid)
        .loss(Loss::MeanSquaredError)
        .build()
        .unwrap();
    check_network(net, &x, Targets::Values(y.mapv(|v| v.abs()).view()), 5e-4);
    let bin = Array1::from_shape_fn(8, |i| i % 2);
    let net = Network::builder(5)
        .dense(7, Tanh)
        .dense(1, Sigmoid)
        .build()
        .unwrap();
    check_network(net, &x, Targets::Classes(bin.view()), 5e-4);
}

/// Through dropout: the mask is fixed within a step (it depends on the step,
/// not on the calls), so finite differences see the same mask.
#[test]
fn dropout_gradients() {
    let x = uniform(8, 5, 13);
    let labels = class_targets(8, 3);
    let net = Network::builder(5)
        .dense(9, Tanh)
        .dropout(0.4)
        .dense(6, Sigmoid)
        .dropout(0.25)
        .dense(3, Softmax)
        .seed(6)
        .build()
        .unwrap();
    check_network(net, &x, Targets::Classes(labels.view()), 5e-4);
}

#[test]
fn relu_network_gradients() {
    // Inputs and weights away from ReLU's kink for these seeds; checked by FD.
    let x = uniform(6, 4, 12);
    let labels = class_targets(6, 3);
    let net = Network::builder(4)
        .dense(5, Relu)
        .dense(3, Softmax)
        .seed(5)
        .build()
        .unwrap();
    check_network(net, &x, Targets::Classes(labels.view()), 5e-4);
}

/// Batch norm's backward through the batch mean and variance.
#[test]
fn batch_norm_gradients() {
    let x = uniform(10, 4, 13).mapv(|v| v * 2.0 + 0.5);
    let labels = class_targets(10, 3);
    let build = |seed| {
        Network::builder(4)
            .dense(6, Identity)
            .batch_norm(Tanh)
            .dense(3, Softmax)
            .seed(seed)
            .build()
            .unwrap()
    };
    let mut net = build(7);
    // Give γ and β values other than 1 and 0 so every term matters.
    let gamma_offset = net.layers()[1].offset();
    for (j, p) in net.parameters_mut()[gamma_offset..gamma_offset + 12]
        .iter_mut()
        .enumerate()
    {
        *p = if j < 6 {
            0.5 + 0.2 * j as f32
        } else {
            0.1 * j as f32 - 0.8
        };
    }
    check_network(net.clone(), &x, Targets::Classes(labels.view()), 5e-4);

    // The bias of a dense layer just before batch norm cannot change the output:
    // its gradient is zero exactly when the mean term is kept.
    net.forward(x.view()).unwrap();
    net.backward(Targets::Classes(labels.view())).unwrap();
    let (w, b) = net.dense_parameters(0).unwrap();
    let b_offset = w.len();
    for g in &net.gradients()[b_offset..b_offset + b.len()] {
        assert!(g.abs() < 1e-5, "bias gradient before batch norm is {g}");
    }
}

/// Batch norm as a network's last hidden layer feeding MSE, and BN with ReLU.
#[test]
fn batch_norm_regression_gradients() {
    let x = uniform(12, 3, 14);
    let y = uniform(12, 2, 15);
    let net = Network::builder(3)
        .dense(5, Tanh)
        .batch_norm(Identity)
        .dense(2, Identity)
        .seed(3)
        .build()
        .unwrap();
    check_network(net, &x, Targets::Values(y.view()), 5e-4);
}

/// Gradients of a network large enough that every kernel takes its parallel
/// path on 2 threads: products of 300 × 64 × 128 multiply-adds (above
/// `gemm::PARALLEL_THRESHOLD`), and element-wise passes and batch-norm
/// reductions over 300 × 128 elements (above the kernels' 2^15 threshold).
/// Checked by finite differences on a sample of parameters from every layer.
#[test]
fn gradients_of_a_network_large_enough_for_the_parallel_kernels() {
    let (rows, n_in, hidden, classes) = (300, 64, 128, 10);
    assert!(rows * n_in * hidden >= feedforward::gemm::PARALLEL_THRESHOLD);
    assert!(rows * hidden >= 1 << 15);
    let x = uniform(rows, n_in, 21);
    let labels = class_targets(rows, classes);
    let net = Network::builder(n_in)
        .dense(hidden, Identity)
        .batch_norm(Tanh)
        .dense(hidden, Sigmoid)
        .dense(classes, Softmax)
        .seed(4)
        .build()
        .unwrap();
    // Every layer's weights, biases, γ and β: a stride through all parameters,
    // plus the first and last of each layer.
    let mut which: Vec<usize> = (0..net.parameter_count()).step_by(997).collect();
    for layer in net.layers() {
        let (start, len) = (layer.offset(), layer.parameter_count());
        which.extend([start, start + len - 1]);
    }
    common::with_threads(2, || {
        // Most sampled gradients ten times the absolute tolerance or more, so that
        // a wrong one cannot hide in it.
        let mut probe = net.clone();
        probe.forward(x.view()).unwrap();
        probe.backward(Targets::Classes(labels.view())).unwrap();
        let large = which
            .iter()
            .filter(|&&i| probe.gradients()[i].abs() > 3e-4)
            .count();
        assert!(large >= which.len() / 2, "{large} of {}", which.len());
        check_parameters(net, &x, Targets::Classes(labels.view()), &which, 3e-5);
    });
}

/// With L1 and L2 penalties, the gradients are those of the data loss plus
/// `l1 Σ|w| + l2 Σ w²` over the weights (finite differences of the sum), and
/// biases and batch norm's γ, β get none of it.
#[test]
fn penalty_gradients() {
    let x = uniform(10, 4, 31);
    let labels = class_targets(10, 3);
    let penalty = feedforward::Penalty { l1: 0.01, l2: 0.05 };
    let build = |penalty| {
        Network::builder(4)
            .dense(6, Tanh)
            .batch_norm(Sigmoid)
            .dense(3, Softmax)
            .penalty(penalty)
            .seed(8)
            .build()
            .unwrap()
    };
    let mut net = build(penalty);
    net.forward(x.view()).unwrap();
    let data_loss = net.backward(Targets::Classes(labels.view())).unwrap();
    let analytic = net.gradients().to_vec();
    let params = net.parameters().to_vec();
    let h = 1e-2f32;
    let mut total_at = |i: usize, v: f32| {
        net.parameters_mut()[i] = v;
        net.forward(x.view()).unwrap();
        let l = net.backward(Targets::Classes(labels.view())).unwrap();
        let total = f64::from(l) + f64::from(net.penalty());
        net.parameters_mut()[i] = params[i];
        total
    };
    for i in 0..params.len() {
        let numeric =
            (total_at(i, params[i] + h) - total_at(i, params[i] - h)) / (2.0 * f64::from(h));
        let a = f64::from(analytic[i]);
        assert!(
            (a - numeric).abs() <= 5e-4 + 3e-2 * numeric.abs(),
            "parameter {i}: gradient {a}, finite differences {numeric}"
        );
    }
    // The penalty is reported apart, and only weights carry it.
    let mut plain = build(feedforward::Penalty::default());
    plain.forward(x.view()).unwrap();
    assert_eq!(
        plain.backward(Targets::Classes(labels.view())).unwrap(),
        data_loss
    );
    assert_eq!(plain.penalty(), 0.0);
    let w: f64 = [0, 2]
        .iter()
        .map(|&l| {
            let (w, _) = plain.dense_parameters(l).unwrap();
            w.iter()
                .map(|&v| 0.01 * f64::from(v.abs()) + 0.05 * f64::from(v) * f64::from(v))
                .sum::<f64>()
        })
        .sum();
    let mut again = build(penalty);
    again.forward(x.view()).unwrap();
    again.backward(Targets::Classes(labels.view())).unwrap();
    assert!(
        (f64::from(again.penalty()) - w).abs() < 1e-6,
        "{} vs {w}",
        again.penalty()
    );
    let weights_only: Vec<usize> = plain
        .layers()
        .iter()
        .flat_map(|l| match l {
            feedforward::Layer::Dense(d) => {
                (d.offset..d.offset + d.inputs * d.outputs).collect::<Vec<_>>()
            }
            _ => Vec::new(),
        })
        .collect();
    for (i, (a, b)) in again.gradients().iter().zip(plain.gradients()).enumerate() {
        if !weights_only.contains(&i) {
            assert_eq!(
                a, b,
                "parameter {i} is not a weight, but its gradient changed"
            );
        }
    }
}
