//! Classify the three-arm spiral of the CS231n case study with a small MLP.
//!
//! `cargo run --release --example spiral`

use feedforward::{Activation::*, FitConfig, Network, Optimizer, data};

fn main() -> Result<(), feedforward::Error> {
    let (x, y) = data::spiral(100, 3, 0);
    let mut net = Network::builder(2)
        .dense(100, Relu)
        .dense(3, Softmax)
        .optimizer(Optimizer::adam(0.01))
        .seed(1)
        .build()?;
    println!("{net}\n");
    let config = FitConfig {
        epochs: 200,
        batch_size: 32,
        ..Default::default()
    };
    net.fit_with(x.view(), (&y).into(), &config, |e| {
        if e.epoch % 20 == 0 {
            println!(
                "epoch {:>3}  loss {:.4}  accuracy {:.3}",
                e.epoch,
                e.loss,
                e.accuracy.unwrap_or(0.0)
            );
        }
        true
    })?;
    let eval = net.evaluate(x.view(), (&y).into())?;
    println!(
        "\ntraining accuracy {:.3}, loss {:.4}",
        eval.accuracy.unwrap_or(0.0),
        eval.loss
    );
    Ok(())
}
