//! Train with validation, early stopping, checkpoints and a resume, all done by
//! the library's `Trainer`: this file has no loop, no copy of weights and no
//! file format of its own.
//!
//! `cargo run --release --example early_stopping`

use feedforward::train::{Checkpoint, Checkpoints, EarlyStopping, Trainer};
use feedforward::{Activation::*, FitConfig, Network, Optimizer, data};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The spiral to learn, and a second draw of it to validate on.
    let (x, y) = data::spiral(200, 3, 0);
    let (vx, vy) = data::spiral(100, 3, 1);
    let dir = tempfile::tempdir()?;
    let checkpoint = dir.path().join("spiral.ckpt.safetensors");
    let config = |epochs| FitConfig {
        epochs,
        batch_size: 32,
        validation: Some((vx.view(), (&vy).into())),
        ..FitConfig::default()
    };
    let trainer = |epochs| {
        Trainer::new(config(epochs))
            // Stop when the validation loss has not improved for 15 epochs, and
            // end with the best epoch's weights.
            .early_stopping(EarlyStopping::patience(15))
            .checkpoints(Checkpoints::every(10, &checkpoint))
    };
    let network = Network::builder(2)
        .dense(64, Relu)
        .dense(64, Relu)
        .dense(3, Softmax)
        .optimizer(Optimizer::adam(0.01))
        .seed(1);

    // Suppose the first run was cut short after 40 epochs...
    let mut net = network.clone().build()?;
    let first = trainer(40).fit(&mut net, x.view(), (&y).into())?;
    println!(
        "first run: {} epochs, validation loss {:.4}",
        first.epochs.len(),
        first.last().and_then(|e| e.val_loss).unwrap_or(f32::NAN)
    );

    // ...then it goes on from its last checkpoint, for up to 500 epochs in all.
    let saved = Checkpoint::load(&checkpoint)?;
    println!("resuming after epoch {}", saved.state.epochs_done);
    let mut net = saved.model.network;
    let rest = trainer(500)
        .resume(saved.state)
        .fit(&mut net, x.view(), (&y).into())?;
    let last = rest.last().ok_or("no epoch ran")?;
    println!(
        "stopped early: {} after epoch {}; weights of epoch {:?}",
        rest.stopped_early, last.epoch, rest.restored_epoch
    );

    // The same 500-epoch run without the interruption ends with the same weights.
    let mut uninterrupted = network.build()?;
    trainer(500).fit(&mut uninterrupted, x.view(), (&y).into())?;
    assert_eq!(uninterrupted.parameters(), net.parameters());

    let eval = net.evaluate(vx.view(), (&vy).into())?;
    println!(
        "validation: loss {:.4}, accuracy {:.3}",
        eval.loss,
        eval.accuracy.unwrap_or(f32::NAN)
    );
    assert!(eval.accuracy.unwrap_or(0.0) > 0.9);
    Ok(())
}
