//! Classify iris flowers from four measurements: a real tabular data set read from
//! CSV, split into training and test rows, standardised with the training rows'
//! statistics, and a small network trained on it.
//!
//! `cargo run --release --example iris`

use std::path::Path;

use feedforward::io::{ReadOptions, read_dataset};
use feedforward::{Activation::*, FitConfig, Network, Optimizer, Standardizer, Targets};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::SliceRandom;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/iris.csv");
    // Label in the first column (the default), a header row, `#` comments.
    let data = read_dataset(&path, &ReadOptions::default())?;

    // 120 rows to train on, 30 held out.
    let mut order: Vec<usize> = (0..data.len()).collect();
    order.shuffle(&mut Xoshiro256PlusPlus::seed_from_u64(7));
    let (train, test) = (data.select(&order[..120]), data.select(&order[120..]));

    let scale = Standardizer::fit(train.features.view())?;
    let (x, x_test) = (
        scale.transform(train.features.view())?,
        scale.transform(test.features.view())?,
    );
    let (y, y_test) = (train.class_labels(Some(3))?, test.class_labels(Some(3))?);

    let mut net = Network::builder(4)
        .dense(16, Relu)
        .dense(3, Softmax)
        .optimizer(Optimizer::adam(0.01))
        .seed(1)
        .build()?;
    let config = FitConfig {
        epochs: 60,
        batch_size: 16,
        ..Default::default()
    };
    let history = net.fit(x.view(), Targets::classes(&y), &config)?;
    let test_eval = net.evaluate(x_test.view(), Targets::classes(&y_test))?;
    let last = history.last().ok_or("no epochs")?;
    let accuracy = test_eval.accuracy.unwrap_or(0.0);
    println!(
        "iris: train loss {:.4}, train accuracy {:.3}; test loss {:.4}, test accuracy {accuracy:.3} ({} rows)",
        last.loss,
        last.accuracy.unwrap_or(0.0),
        test_eval.loss,
        y_test.len()
    );
    if accuracy < 0.9 {
        return Err(format!("test accuracy {accuracy:.3} is below 0.9").into());
    }
    Ok(())
}
