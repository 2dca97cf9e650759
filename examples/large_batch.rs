//! Large batches: what the optimizer must do when a batch of 8192 replaces one
//! of 256 and the same epochs take 32 times fewer steps.
//!
//! The task: 220,000 Gaussian points in 32 dimensions, labelled with 10
//! classes by a fixed random teacher network (32-32-10, tanh); 200,000 rows to
//! train on, 20,000 held out. The student is 32-256-256-256-10 (ReLU). Adam
//! at batch 256 for a few epochs is the reference; at batch 8192 the same
//! epochs are run
//! - (a) with Adam and the linear scaling rule (rate × 8192/256), no warm-up;
//! - (a') the same with a linear warm-up, to see what the warm-up alone does;
//! - (b) with LAMB and a linear warm-up;
//! - (c) with LARS (SGD with momentum, layer-wise trust ratios) and a warm-up.
//!
//! Every run starts from the same weights and sees the rows in the same order.
//! LAMB's and LARS's rates were chosen from three each (LAMB 0.005, 0.01,
//! 0.02; LARS 1, 2, 4), with warm-ups of 8 and 25 steps.
//!
//! `cargo run --release --example large_batch [-- EPOCHS]` (default 4 epochs)

use std::time::Instant;

use feedforward::train::Trainer;
use feedforward::{
    Activation::*, Every, FitConfig, LrSchedule, Network, Optimizer, Schedule, data,
};
use ndarray::{Array1, Array2, Axis};

/// The reference batch size and the large one.
const SMALL: usize = 256;
const LARGE: usize = 8192;
/// Input width and classes of the task.
const DIMS: usize = 32;
const CLASSES: usize = 10;
/// Warm-up of the large-batch runs that have one, in steps (of 25 an epoch).
const WARMUP: usize = 8;

/// One configuration: its name, batch size, optimizer and warm-up in steps.
struct Run {
    name: &'static str,
    batch: usize,
    optimizer: Optimizer,
    warmup: usize,
}

/// `rows` Gaussian points and the classes the teacher gives them: the arg-max
/// of its log-probabilities less each class's mean over the rows, so that the
/// classes are of about equal size.
fn teacher_data(rows: usize) -> Result<(Array2<f32>, Array1<usize>), Box<dyn std::error::Error>> {
    let (x, _) = data::blobs(rows, 1, DIMS, 0);
    let teacher = Network::builder(DIMS)
        .dense(32, Tanh)
        .dense(CLASSES, Softmax)
        .seed(99)
        .build()?;
    let logp = teacher.predict_proba(x.view())?.mapv(f32::ln);
    let mean = logp.mean_axis(Axis(0)).ok_or("no rows")?;
    let y = (logp - &mean)
        .rows()
        .into_iter()
        .map(|r| {
            (0..CLASSES)
                .max_by(|&a, &b| r[a].total_cmp(&r[b]))
                .unwrap_or(0)
        })
        .collect();
    Ok((x, y))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let epochs: usize = match std::env::args().nth(1) {
        Some(e) => e.parse()?,
        None => 4,
    };
    let (all_x, all_y) = teacher_data(220_000)?;
    let (x, test_x) = all_x.view().split_at(Axis(0), 200_000);
    let (y, test_y) = all_y.view().split_at(Axis(0), 200_000);
    let adam = 1e-3;
    let scaled = adam * (LARGE / SMALL) as f32;
    let runs = [
        Run {
            name: "Adam, batch 256 (reference)",
            batch: SMALL,
            optimizer: Optimizer::adam(adam),
            warmup: 0,
        },
        Run {
            name: "(a) Adam, linear scaling, no warm-up",
            batch: LARGE,
            optimizer: Optimizer::adam(scaled),
            warmup: 0,
        },
        Run {
            name: "(a') Adam, linear scaling, warm-up",
            batch: LARGE,
            optimizer: Optimizer::adam(scaled),
            warmup: WARMUP,
        },
        Run {
            name: "(b) LAMB, warm-up",
            batch: LARGE,
            optimizer: Optimizer::lamb(0.005),
            warmup: WARMUP,
        },
        Run {
            name: "(c) LARS, warm-up",
            batch: LARGE,
            optimizer: Optimizer::lars(2.0),
            warmup: WARMUP,
        },
    ];
    println!(
        "teacher task: {} rows, {} held out, {CLASSES} classes; student {DIMS}-256-256-256-{CLASSES}; {epochs} epochs",
        x.nrows(),
        test_x.nrows()
    );
    println!(
        "{:<38} {:>6} {:>6} {:>8} {:>7} {:>9} {:>8}",
        "run", "batch", "steps", "rate", "warm-up", "accuracy", "seconds"
    );
    for run in runs {
        let mut net = Network::builder(DIMS)
            .dense(256, Relu)
            .dense(256, Relu)
            .dense(256, Relu)
            .dense(CLASSES, Softmax)
            .optimizer(run.optimizer)
            .seed(7)
            .build()?;
        // A linear warm-up from 1% of the rate, then the optimizer's rate.
        let mut schedule = LrSchedule::new(Schedule::Constant, Every::Step);
        if run.warmup > 0 {
            schedule = schedule.with_warmup(run.warmup);
            schedule.warmup_start = 0.01;
        }
        let config = FitConfig {
            epochs,
            batch_size: run.batch,
            seed: Some(3),
            ..FitConfig::default()
        };
        let start = Instant::now();
        Trainer::new(config)
            .schedule(schedule)
            .fit(&mut net, x, y.into())?;
        let seconds = start.elapsed().as_secs_f64();
        let accuracy = net.evaluate(test_x, test_y.into())?.accuracy;
        println!(
            "{:<38} {:>6} {:>6} {:>8} {:>7} {:>9.4} {:>8.1}",
            run.name,
            run.batch,
            net.optimizer_state().step,
            run.optimizer.learning_rate(),
            run.warmup,
            accuracy.unwrap_or(f32::NAN),
            seconds
        );
    }
    Ok(())
}
