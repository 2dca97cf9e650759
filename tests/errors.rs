//! Bad input comes back as a clear `Err`, never a panic, and changes nothing.

use feedforward::{Activation::*, Error, FitConfig, Loss, Network, Optimizer, Targets};
use ndarray::{Array1, Array2, array};

fn net() -> Network {
    Network::builder(3)
        .dense(4, Relu)
        .dense(2, Softmax)
        .build()
        .unwrap()
}

#[test]
fn wrong_feature_width() {
    let mut n = net();
    let x = Array2::<f32>::zeros((5, 4));
    let err = n.predict(x.view()).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
    assert!(err.to_string().contains("3 columns"), "{err}");
    assert!(matches!(n.forward(x.view()), Err(Error::Shape { .. })));
    let y = Array1::<usize>::zeros(5);
    match n.fit(x.view(), (&y).into(), &FitConfig::default()) {
        Err(Error::Shape {
            context: "fit: features",
            expected,
            ..
        }) => assert!(expected.contains("3 columns"), "{expected}"),
        other => panic!("expected a shape error for the features, got {other:?}"),
    }
}

#[test]
fn non_finite_features_name_row_and_column() {
    let n = net();
    let mut x = Array2::<f32>::zeros((4, 3));
    x[[2, 1]] = f32::NAN;
    let err = n.predict_proba(x.view()).unwrap_err();
    match &err {
        Error::NonFinite {
            context: "predict: features",
            row: 2,
            col: 1,
            value,
        } => assert!(value.is_nan()),
        other => panic!("unexpected {other}"),
    }
    assert!(err.to_string().contains("row 2, column 1"), "{err}");
    x[[2, 1]] = f32::INFINITY;
    match n.predict_proba(x.view()).unwrap_err() {
        Error::NonFinite {
            row: 2,
            col: 1,
            value,
            ..
        } => assert!(value.is_infinite()),
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn labels_out_of_range_and_wrong_counts() {
    let mut n = net();
    let x = Array2::<f32>::zeros((3, 3));
    let y = array![0usize, 2, 1];
    let err = n
        .fit(x.view(), (&y).into(), &FitConfig::default())
        .unwrap_err();
    assert_eq!(
        err,
        Error::LabelOutOfRange {
            context: "fit: targets",
            row: 1,
            label: 2,
            classes: 2
        }
    );
    let y = array![0usize, 1];
    assert!(matches!(
        n.fit(x.view(), (&y).into(), &FitConfig::default()),
        Err(Error::Shape { .. })
    ));
    let hot = Array2::<f32>::zeros((3, 5));
    assert!(matches!(
        n.evaluate(x.view(), Targets::Values(hot.view())),
        Err(Error::Shape { .. })
    ));
    let mut bad = Array2::<f32>::zeros((3, 2));
    bad[[1, 0]] = 1.5;
    assert!(matches!(
        n.evaluate(x.view(), Targets::Values(bad.view())),
        Err(Error::InvalidTarget { row: 1, col: 0, .. })
    ));
    bad[[1, 0]] = f32::NAN;
    assert!(matches!(
        n.evaluate(x.view(), Targets::Values(bad.view())),
        Err(Error::NonFinite { row: 1, col: 0, .. })
    ));
}

#[test]
fn empty_data_and_zero_batch_size() {
    let mut n = net();
    let x = Array2::<f32>::zeros((0, 3));
    let y = Array1::<usize>::zeros(0);
    assert!(matches!(
        n.fit(x.view(), (&y).into(), &FitConfig::default()),
        Err(Error::Empty(_))
    ));
    assert!(matches!(n.predict(x.view()), Err(Error::Empty(_))));
    let x = Array2::<f32>::zeros((2, 3));
    let y = Array1::<usize>::zeros(2);
    let cfg = FitConfig {
        batch_size: 0,
        ..Default::default()
    };
    let err = n.fit(x.view(), (&y).into(), &cfg).unwrap_err();
    assert!(
        matches!(err, Error::Config(_)) && err.to_string().contains("batch size"),
        "{err}"
    );
}

#[test]
fn loss_that_does_not_fit_the_output_layer() {
    let cases = [
        (Relu, 3, Some(Loss::CategoricalCrossEntropy)),
        (Softmax, 3, Some(Loss::BinaryCrossEntropy)),
        (Sigmoid, 3, Some(Loss::BinaryCrossEntropy)),
        (Softmax, 3, Some(Loss::MeanSquaredError)),
        (Softmax, 1, None),
        (Tanh, 2, Some(Loss::MultiLabelCrossEntropy)),
    ];
    for (act, width, loss) in cases {
        let mut b = Network::builder(4).dense(width, act);
        if let Some(l) = loss {
            b = b.loss(l);
        }
        let err = b.build().unwrap_err();
        assert!(
            matches!(err, Error::LossMismatch { .. }),
            "{act} {width} {loss:?}: {err}"
        );
    }
    // No loss given and none follows from a ReLU output.
    let err = Network::builder(4).dense(2, Relu).build().unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
}

#[test]
fn invalid_configurations() {
    assert!(matches!(
        Network::builder(0).dense(2, Softmax).build(),
        Err(Error::Config(_))
    ));
    assert!(matches!(Network::builder(3).build(), Err(Error::Config(_))));
    assert!(matches!(
        Network::builder(3).dense(0, Relu).dense(2, Softmax).build(),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        Network::builder(3)
            .dense(2, Softmax)
            .optimizer(Optimizer::adam(-1.0))
            .build(),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        Network::builder(3)
            .dense(2, Softmax)
            .optimizer(Optimizer::sgd(f32::NAN))
            .build(),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        Network::builder(3)
            .dense(2, Softmax)
            .optimizer(Optimizer::sgd_momentum(0.1, 1.5))
            .build(),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        Network::builder(3)
            .dense(2, Softmax)
            .clip_grad_norm(0.0)
            .build(),
        Err(Error::Config(_))
    ));
    assert!(matches!(feedforward::set_threads(0), Err(Error::Config(_))));
}

#[test]
fn calls_out_of_order() {
    let mut n = net();
    let y = array![0usize, 1];
    assert!(matches!(n.backward((&y).into()), Err(Error::State(_))));
    assert!(matches!(n.step(), Err(Error::State(_))));
    let x = Array2::<f32>::zeros((2, 3));
    n.forward(x.view()).unwrap();
    n.backward((&y).into()).unwrap();
    n.step().unwrap();
    assert!(
        matches!(n.step(), Err(Error::State(_))),
        "a second step without new gradients"
    );
}

/// Everything a training call can change: parameters, optimizer state (step
/// count and moments) and batch-norm running statistics, as bits.
fn state(n: &Network) -> (Vec<u32>, u64, Vec<u32>, Vec<u32>) {
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let opt = n.optimizer_state();
    let mut moments = bits(&opt.first);
    moments.extend(bits(&opt.second));
    let mut running = Vec::new();
    for layer in n.layers() {
        if let feedforward::Layer::BatchNorm(b) = layer {
            running.extend(bits(&b.running_mean));
            running.extend(bits(&b.running_var));
        }
    }
    (bits(n.parameters()), opt.step, moments, running)
}

#[test]
fn failed_calls_change_nothing() {
    // A network that has trained (so its optimizer state and running
    // statistics are not at their defaults), then calls whose bad value sits in
    // the last mini-batch: training batch by batch before checking would have
    // changed the weights by the time it found it.
    let mut n = Network::builder(3)
        .dense(6, Identity)
        .batch_norm(Relu)
        .dense(2, Softmax)
        .optimizer(Optimizer::adam(0.05))
        .seed(4)
        .build()
        .unwrap();
    let good = Array2::from_shape_fn((8, 3), |(i, j)| (i * 3 + j) as f32 * 0.1 - 1.0);
    let labels = array![0usize, 1, 0, 1, 1, 0, 1, 0];
    let cfg = FitConfig {
        epochs: 1,
        batch_size: 2,
        shuffle: false,
        ..Default::default()
    };
    n.fit(good.view(), (&labels).into(), &cfg).unwrap();
    let before = state(&n);
    assert!(before.1 > 0, "the optimizer has stepped");

    let mut nan = good.clone();
    nan[[7, 2]] = f32::NAN;
    match n.fit(nan.view(), (&labels).into(), &cfg) {
        Err(Error::NonFinite { row, col, .. }) => assert_eq!((row, col), (7, 2)),
        other => panic!("expected a non-finite error, got {other:?}"),
    }
    assert_eq!(
        state(&n),
        before,
        "fit on a NaN in the last batch changed the network"
    );

    let mut bad_labels = labels.clone();
    bad_labels[7] = 2;
    match n.fit(good.view(), (&bad_labels).into(), &cfg) {
        Err(Error::LabelOutOfRange {
            row,
            label,
            classes,
            ..
        }) => {
            assert_eq!((row, label, classes), (7, 2, 2))
        }
        other => panic!("expected a label error, got {other:?}"),
    }
    assert_eq!(
        state(&n),
        before,
        "fit on a bad label in the last batch changed the network"
    );

    match n.train_step(nan.view(), (&labels).into()) {
        Err(Error::NonFinite { row, col, .. }) => assert_eq!((row, col), (7, 2)),
        other => panic!("expected a non-finite error, got {other:?}"),
    }
    assert_eq!(state(&n), before, "a failed train_step changed the network");
}

#[test]
fn divergence_is_reported_before_the_update() {
    let mut n = Network::builder(1)
        .dense(1, Identity)
        .optimizer(Optimizer::sgd(1e30))
        .build()
        .unwrap();
    let x = array![[1e20f32], [2e20]];
    let y = array![[1e20f32], [-1e20]];
    // One step at a time, so that the weights before the diverging step are known.
    let mut steps = 0;
    let (epoch, batch, before) = loop {
        let before = state(&n);
        let cfg = FitConfig {
            epochs: 1,
            batch_size: 2,
            ..Default::default()
        };
        match n.fit(x.view(), (&y).into(), &cfg) {
            Ok(_) => steps += 1,
            Err(Error::Diverged { epoch, batch, loss }) => {
                assert!(!loss.is_finite(), "{loss}");
                break (epoch, batch, before);
            }
            Err(other) => panic!("expected divergence, got {other}"),
        }
        assert!(steps < 5, "never diverged");
    };
    assert_eq!((epoch, batch), (1, 1));
    assert_eq!(state(&n), before, "the diverging step was applied");
    assert!(n.parameters().iter().all(|p| p.is_finite()));
}

#[test]
fn set_dense_parameters_checks_shapes() {
    let mut n = net();
    let w = Array2::<f32>::zeros((3, 5));
    let b = Array1::<f32>::zeros(5);
    assert!(matches!(
        n.set_dense_parameters(0, w.view(), b.view()),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        n.set_dense_parameters(7, w.view(), b.view()),
        Err(Error::Config(_))
    ));
    let w = Array2::<f32>::from_elem((3, 4), 0.5);
    let b = Array1::<f32>::from_elem(4, f32::INFINITY);
    assert!(matches!(
        n.set_dense_parameters(0, w.view(), b.view()),
        Err(Error::NonFinite { .. })
    ));
    let b = Array1::<f32>::zeros(4);
    n.set_dense_parameters(0, w.view(), b.view()).unwrap();
    assert_eq!(n.dense_parameters(0).unwrap().0, w);
}

#[test]
fn non_finite_features_are_found_in_any_chunk_of_a_large_batch() {
    // Inference runs 4096 rows at a time; the first layer's product finds the
    // NaN, and the error names its row in the whole batch.
    let n = net();
    let mut x = Array2::<f32>::from_elem((4096 + 100, 3), 0.5);
    x[[4096 + 57, 2]] = f32::NAN;
    x[[4096 + 90, 0]] = f32::INFINITY;
    let y = Array1::<usize>::zeros(x.nrows());
    for err in [
        n.predict_proba(x.view()).unwrap_err(),
        n.evaluate(x.view(), (&y).into()).unwrap_err(),
    ] {
        assert!(
            matches!(
                err,
                Error::NonFinite {
                    row: 4153,
                    col: 2,
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[test]
fn non_finite_features_leave_batch_norm_statistics_alone() {
    // The first layer finds the NaN before batch norm sees its outputs.
    let mut n = Network::builder(3)
        .dense(8, Identity)
        .batch_norm(Relu)
        .dense(2, Softmax)
        .build()
        .unwrap();
    let layers = n.layers().to_vec();
    let params = n.parameters().to_vec();
    let mut x = Array2::<f32>::from_elem((6, 3), 0.25);
    x[[4, 1]] = f32::NEG_INFINITY;
    let y = array![0usize, 1, 0, 1, 0, 1];
    let err = n.train_step(x.view(), (&y).into()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::NonFinite {
                context: "forward: features",
                row: 4,
                col: 1,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(n.layers(), &layers[..]);
    assert_eq!(n.parameters(), &params[..]);
    // The network still trains on good data afterwards.
    x[[4, 1]] = 0.25;
    assert!(n.train_step(x.view(), (&y).into()).unwrap().is_finite());
    assert_ne!(
        n.layers(),
        &layers[..],
        "running statistics move on a good step"
    );
}

#[test]
fn finite_features_that_overflow_are_not_an_input_error() {
    // Huge but finite inputs overflow the first layer's sums: that is not a
    // NaN in the input, and prediction goes ahead as before.
    let mut n = net();
    let ones = Array2::<f32>::ones((3, 4));
    n.set_dense_parameters(0, ones.view(), Array1::zeros(4).view())
        .unwrap();
    let x = array![[3e38f32, 3e38, 3e38], [1.0, 2.0, 3.0]];
    let p = n.predict_proba(x.view()).unwrap();
    assert_eq!(p.dim(), (2, 2));
    assert!(p.row(0).iter().any(|v| !v.is_finite()), "row 0 overflows");
    assert!(p.row(1).iter().all(|v| v.is_finite()));
}
