//! What bf16 products cost in accuracy: the same networks in `f32` and in
//! `Precision::Bf16`, side by side.
//!
//! 1. The W1/W3 network (784-512-256-10, softmax) trained for two epochs in
//!    `f32` on a synthetic 10-class set (clusters blurred until they overlap), then asked for probabilities on
//!    held-out rows in both precisions: the largest difference of a
//!    probability, and how many arg-max predictions change.
//! 2. The same training run in bf16 from the same start: the final losses and
//!    held-out accuracies beside each other.
//! 3. The W2 network (1024-4096-4096-1024, MSE) at its initial weights: the
//!    largest difference of an output, relative to the outputs' largest magnitude.
//!
//! `cargo run --release --example bf16_accuracy`

use feedforward::{
    Activation::*, FitConfig, Init, Loss, Network, Optimizer, Precision, data, train::Trainer,
};
use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, StandardNormal};

fn w1_network() -> Result<Network, feedforward::Error> {
    Network::builder(784)
        .dense(512, Relu)
        .dense(256, Relu)
        .dense(10, Softmax)
        .init(Init::HeUniform)
        .optimizer(Optimizer::adam(1e-3))
        .seed(0)
        .build()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Ten clusters in 784 dimensions, blurred with noise until they overlap:
    // 6000 rows to train on, 4000 held out, in a random order.
    let (mut x, y) = data::blobs(1000, 10, 784, 1);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(2);
    x.mapv_inplace(|v| {
        let noise: f32 = StandardNormal.sample(&mut rng);
        (v + 40.0 * noise) / 40.0
    });
    let mut order: Vec<usize> = (0..x.nrows()).collect();
    order.shuffle(&mut rng);
    let (train, test) = order.split_at(6000);
    let pick = |rows: &[usize]| {
        let xs = x.select(ndarray::Axis(0), rows);
        let ys: Vec<usize> = rows.iter().map(|&r| y[r]).collect();
        (xs, ndarray::Array1::from(ys))
    };
    let ((x_train, y_train), (x_test, y_test)) = (pick(train), pick(test));
    let config = FitConfig {
        epochs: 2,
        batch_size: 256,
        ..Default::default()
    };

    println!(
        "W1 network, 2 epochs, held-out set of {} rows:",
        x_test.nrows()
    );
    let mut runs = Vec::new();
    for precision in [Precision::F32, Precision::Bf16] {
        let mut net = w1_network()?;
        let history = Trainer::new(config.clone()).precision(precision).fit(
            &mut net,
            x_train.view(),
            (&y_train).into(),
        )?;
        let eval = net.evaluate(x_test.view(), (&y_test).into())?;
        println!(
            "  trained in {precision:>4}: final training loss {:.5}, held-out loss {:.5}, accuracy {:.4}",
            history.epochs.last().map_or(f32::NAN, |e| e.loss),
            eval.loss,
            eval.accuracy.unwrap_or(f32::NAN)
        );
        runs.push(net);
    }

    // The f32-trained network, inferring in both precisions.
    let net = &mut runs[0];
    net.set_precision(Precision::F32);
    let (p32, c32) = (
        net.predict_proba(x_test.view())?,
        net.predict(x_test.view())?,
    );
    net.set_precision(Precision::Bf16);
    let predictor = net.predictor();
    let (p16, c16) = (
        predictor.predict_proba(x_test.view())?,
        predictor.predict(x_test.view())?,
    );
    let largest = largest_difference(&p32, &p16);
    let changed = c32.iter().zip(&c16).filter(|(a, b)| a != b).count();
    println!(
        "  inference in bf16 of the f32-trained network: largest probability difference {largest:.5}, \
         arg-max changed on {changed} of {} rows ({:.3}%)",
        c32.len(),
        100.0 * changed as f64 / c32.len() as f64
    );

    // W2 at its initial weights, on standard normal rows.
    let mut w2 = Network::builder(1024)
        .dense(4096, Relu)
        .dense(4096, Relu)
        .dense(1024, Identity)
        .loss(Loss::MeanSquaredError)
        .init(Init::HeUniform)
        .seed(0)
        .build()?;
    let rows = Array2::from_shape_fn((256, 1024), |_| StandardNormal.sample(&mut rng));
    let out32 = w2.predict_proba(rows.view())?;
    w2.set_precision(Precision::Bf16);
    let out16 = w2.predict_proba(rows.view())?;
    let scale = out32.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    println!(
        "W2 network, 256 rows: largest output difference {:.5} of the largest output {scale:.3} ({:.3}%)",
        largest_difference(&out32, &out16),
        100.0 * largest_difference(&out32, &out16) / scale
    );
    Ok(())
}

fn largest_difference(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
