//! Fit a noisy sine wave with a small tanh network (mean squared error).
//!
//! `cargo run --release --example regression`

use feedforward::{Activation::*, FitConfig, Network, Optimizer, data};

fn main() -> Result<(), feedforward::Error> {
    let (x, y) = data::sine(1024, 0.05, 0);
    let (x_test, y_test) = data::sine(256, 0.0, 1);
    let mut net = Network::builder(1)
        .dense(32, Tanh)
        .dense(32, Tanh)
        .dense(1, Identity)
        .optimizer(Optimizer::adam(0.01))
        .build()?;
    let config = FitConfig {
        epochs: 200,
        batch_size: 64,
        validation: Some((x_test.view(), (&y_test).into())),
        ..Default::default()
    };
    let history = net.fit(x.view(), (&y).into(), &config)?;
    for e in history.epochs.iter().filter(|e| e.epoch % 40 == 0) {
        println!(
            "epoch {:>3}  train MSE {:.5}  test MSE {:.5}",
            e.epoch,
            e.loss,
            e.val_loss.unwrap_or(f32::NAN)
        );
    }
    let test = net.evaluate(x_test.view(), (&y_test).into())?;
    println!("test MSE against the noiseless sine: {:.5}", test.loss);
    Ok(())
}
