//! The library's `Trainer`: exact resume from checkpoints, early stopping that
//! restores the best epoch's weights, callbacks, and its errors.

use std::path::Path;

use ndarray::{Array1, Array2};

use feedforward::io::model::{self, SaveOptions};
use feedforward::train::{
    Callback, Checkpoint, Checkpoints, Control, EarlyStopping, EpochStats, Trainer,
};
use feedforward::{
    Activation::*, BatchNormMode, Error, Every, FitConfig, LrSchedule, Network, Optimizer,
    Schedule, Snapshot, data,
};

fn network(seed: u64) -> Network {
    Network::builder(2)
        .dense(24, Identity)
        .batch_norm(Relu)
        .dense(3, Softmax)
        .optimizer(Optimizer::adam(0.02))
        .seed(seed)
        .build()
        .unwrap()
}

/// Keeps every epoch's snapshot and validation loss.
#[derive(Default)]
struct Recorder {
    snapshots: Vec<Snapshot>,
    val_losses: Vec<f32>,
    checkpoints: Vec<usize>,
}

impl Callback for Recorder {
    fn on_epoch(&mut self, net: &Network, stats: &EpochStats) -> Control {
        self.snapshots.push(net.snapshot());
        self.val_losses.push(stats.val_loss.unwrap());
        Control::Continue
    }

    fn on_checkpoint(&mut self, _: &Path, epoch: usize) {
        self.checkpoints.push(epoch);
    }
}

/// A run interrupted after a checkpoint and resumed from it ends with the same
/// weights, batch-norm statistics and optimizer state, bit for bit, as one
/// never interrupted: with batch norm in exact micro-batches, validation and
/// early stopping (whose best weights the checkpoint carries).
#[test]
fn resumed_runs_end_as_uninterrupted_ones() {
    let (x, y) = data::spiral(80, 3, 0);
    let (vx, vy) = data::spiral(30, 3, 9);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.ckpt");
    // A fresh config (and fresh views) for each trainer: a trainer borrows its
    // callbacks for as long as its validation views live.
    fn settings<'v>(
        epochs: usize,
        (vx, vy): (&'v Array2<f32>, &'v Array1<usize>),
    ) -> FitConfig<'v> {
        FitConfig {
            epochs,
            batch_size: 40,
            micro_batch: Some(15),
            batch_norm_mode: BatchNormMode::Exact,
            validation: Some((vx.view(), vy.into())),
            ..FitConfig::default()
        }
    }

    let stopping = EarlyStopping::patience(4);

    let mut whole = network(3);
    let mut seen = Recorder::default();
    let full = Trainer::new(settings(14, (&vx, &vy)))
        .early_stopping(stopping)
        .callback(&mut seen)
        .fit(&mut whole, x.view(), (&y).into())
        .unwrap();

    for stop_after in [3, 6, 9] {
        let mut first = network(3);
        let mut written = Recorder::default();
        Trainer::new(settings(stop_after, (&vx, &vy)))
            .early_stopping(stopping)
            .checkpoints(Checkpoints::every(3, &path))
            .callback(&mut written)
            .fit(&mut first, x.view(), (&y).into())
            .unwrap();
        assert_eq!(*written.checkpoints.last().unwrap(), stop_after);
        let checkpoint = Checkpoint::load(&path).unwrap();
        assert_eq!(checkpoint.state.epochs_done, stop_after);
        let mut resumed = checkpoint.model.network;
        let rest = Trainer::new(settings(14, (&vx, &vy)))
            .early_stopping(stopping)
            .resume(checkpoint.state)
            .fit(&mut resumed, x.view(), (&y).into())
            .unwrap();
        assert_eq!(
            resumed.snapshot(),
            whole.snapshot(),
            "resumed after epoch {stop_after}"
        );
        assert_eq!(stop_after + rest.epochs.len(), full.epochs.len());
        assert_eq!(rest.stopped_early, full.stopped_early);
        assert_eq!(rest.restored_epoch, full.restored_epoch);
    }
}

/// Early stopping stops `patience` epochs after the best and ends with that
/// epoch's weights and running statistics (and the last epoch's optimizer state).
#[test]
fn early_stopping_restores_the_best_epoch() {
    let (x, y) = data::spiral(60, 3, 0);
    let (vx, vy) = data::spiral(20, 3, 4);
    // A high rate makes the validation loss wander.
    let mut net = Network::builder(2)
        .dense(32, Identity)
        .batch_norm(Relu)
        .dense(3, Softmax)
        .optimizer(Optimizer::adam(0.2))
        .seed(1)
        .build()
        .unwrap();
    let mut seen = Recorder::default();
    let history = Trainer::new(FitConfig {
        epochs: 300,
        validation: Some((vx.view(), (&vy).into())),
        ..FitConfig::default()
    })
    .early_stopping(EarlyStopping::patience(3))
    .callback(&mut seen)
    .fit(&mut net, x.view(), (&y).into())
    .unwrap();
    assert!(
        history.stopped_early,
        "ran all {} epochs",
        history.epochs.len()
    );
    let losses = &seen.val_losses;
    let best = (0..losses.len())
        .min_by(|&a, &b| losses[a].total_cmp(&losses[b]))
        .unwrap();
    assert_eq!(losses.len(), best + 1 + 3, "{losses:?}");
    assert_eq!(history.restored_epoch, Some(best + 1));
    let now = net.snapshot();
    let then = &seen.snapshots[best];
    assert_eq!(now.parameters(), then.parameters());
    assert_eq!(now.running_statistics(), then.running_statistics());
    let last = seen.snapshots.last().unwrap();
    assert_eq!(now.optimizer_state(), last.optimizer_state());
}

/// `before_step` sees the network mutable: a schedule that sets the rate to
/// 0.1 before every step of a network built with 0.5 trains it exactly as a
/// network built with 0.1.
#[test]
fn before_step_can_change_the_learning_rate() {
    struct SetRate(f32);
    impl Callback for SetRate {
        fn before_step(&mut self, net: &mut Network, _: usize, _: usize) {
            net.set_optimizer(Optimizer::sgd(self.0)).unwrap();
        }
    }
    let (x, y) = data::blobs(30, 3, 2, 0);
    let build = |lr| {
        Network::builder(2)
            .dense(8, Relu)
            .dense(3, Softmax)
            .optimizer(Optimizer::sgd(lr))
            .seed(2)
            .build()
            .unwrap()
    };
    let config = FitConfig {
        epochs: 3,
        batch_size: 16,
        ..FitConfig::default()
    };
    let mut scheduled = build(0.5);
    Trainer::new(config.clone())
        .callback(SetRate(0.1))
        .fit(&mut scheduled, x.view(), (&y).into())
        .unwrap();
    let mut plain = build(0.1);
    plain.fit(x.view(), (&y).into(), &config).unwrap();
    assert_eq!(scheduled.parameters(), plain.parameters());
    let mut fast = build(0.5);
    fast.fit(x.view(), (&y).into(), &config).unwrap();
    assert_ne!(fast.parameters(), plain.parameters());
}

#[test]
fn checkpoint_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = data::spiral(10, 3, 0);
    let mut net = network(0);
    // A model file that is not a checkpoint.
    let plain = dir.path().join("plain.safetensors");
    model::save(&plain, &net, &SaveOptions::default()).unwrap();
    match Checkpoint::load(&plain) {
        Err(Error::Parse { path, message, .. }) => {
            assert!(path.ends_with("plain.safetensors"), "{path}");
            assert!(message.contains("no training state"), "{message}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
    // An interval of 0 epochs is refused before training.
    let before = net.snapshot();
    let err = Trainer::new(FitConfig::default())
        .checkpoints(Checkpoints::every(0, dir.path().join("c")))
        .fit(&mut net, x.view(), (&y).into())
        .unwrap_err();
    match err {
        Error::Config(m) => assert!(m.contains("checkpoint interval"), "{m}"),
        other => panic!("expected a config error, got {other:?}"),
    }
    assert_eq!(net.snapshot(), before);
    // An unwritable checkpoint path is an I/O error naming it, after the epoch.
    let blocked = dir.path().join("missing-dir").join("c.ckpt");
    let err = Trainer::new(FitConfig {
        epochs: 2,
        ..FitConfig::default()
    })
    .checkpoints(Checkpoints::every(1, &blocked))
    .fit(&mut net, x.view(), (&y).into())
    .unwrap_err();
    match err {
        Error::Io { path, .. } => assert!(path.contains("missing-dir"), "{path}"),
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

/// Records the rate of every step.
#[derive(Default)]
struct Rates(Vec<f32>);

impl Callback for Rates {
    fn on_step(&mut self, net: &Network, _: &feedforward::train::Progress<'_>) -> Control {
        self.0.push(net.optimizer().learning_rate());
        Control::Continue
    }
}

/// The trainer sets each step's rate as the schedule says, from the rate the
/// optimizer had when training started, counting optimizer steps.
#[test]
fn the_trainer_sets_the_scheduled_rate() {
    let (x, y) = data::spiral(40, 3, 0);
    let mut net = network(2);
    let schedule = LrSchedule::new(
        Schedule::OneCycle {
            total: 30,
            max_lr: 0.05,
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
        },
        Every::Step,
    );
    let mut rates = Rates::default();
    Trainer::new(FitConfig {
        epochs: 5,
        batch_size: 20,
        ..FitConfig::default()
    })
    .schedule(schedule.clone())
    .callback(&mut rates)
    .fit(&mut net, x.view(), (&y).into())
    .unwrap();
    assert_eq!(rates.0.len(), 30);
    for (t, &r) in rates.0.iter().enumerate() {
        assert_eq!(r, schedule.rate(0.02, t, 0, 1.0), "step {t}");
    }
    assert!(rates.0[8] > 10.0 * rates.0[0], "{:?}", rates.0);
}

/// A run with a schedule resumed from a checkpoint takes the same rates and
/// ends with the same bits as one never interrupted: the base rate and the
/// plateau's state travel in the checkpoint.
#[test]
fn scheduled_runs_resume_exactly() {
    let (x, y) = data::spiral(60, 3, 0);
    let (vx, vy) = data::spiral(20, 3, 5);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.ckpt");
    let schedules = [
        LrSchedule::new(
            Schedule::Plateau {
                factor: 0.5,
                patience: 0,
                threshold: 0.3,
                cooldown: 0,
                min_lr: 1e-4,
            },
            Every::Epoch,
        ),
        LrSchedule::new(
            Schedule::Cosine {
                period: 7,
                min_lr: 0.0,
                restarts: true,
                mult: 2,
            },
            Every::Step,
        )
        .with_warmup(5),
        LrSchedule::new(Schedule::InvScaling { power_t: 0.5 }, Every::Epoch),
        LrSchedule::new(
            Schedule::Step {
                size: 3,
                gamma: 0.5,
            },
            Every::Epoch,
        ),
        LrSchedule::new(
            Schedule::MultiStep {
                milestones: vec![2, 7, 9],
                gamma: 0.3,
            },
            Every::Epoch,
        ),
        LrSchedule::new(Schedule::Exponential { gamma: 0.99 }, Every::Step).with_warmup(2),
        LrSchedule::new(
            Schedule::Cosine {
                period: 12,
                min_lr: 0.001,
                restarts: false,
                mult: 1,
            },
            Every::Epoch,
        ),
        LrSchedule::new(
            Schedule::OneCycle {
                total: 24,
                max_lr: 0.05,
                pct_start: 0.3,
                div_factor: 25.0,
                final_div_factor: 1e4,
            },
            Every::Step,
        ),
        // Constant after a warm-up: the rate changes only in the warm-up.
        LrSchedule::new(Schedule::Constant, Every::Epoch).with_warmup(6),
    ];
    for schedule in schedules {
        let config = |epochs| FitConfig {
            epochs,
            batch_size: 30,
            ..FitConfig::default()
        };
        let validation = Some((vx.view(), (&vy).into()));
        let mut whole = network(6);
        let full = Trainer::new(FitConfig {
            validation,
            ..config(12)
        })
        .schedule(schedule.clone())
        .fit(&mut whole, x.view(), (&y).into())
        .unwrap();
        let mut first = network(6);
        Trainer::new(FitConfig {
            validation,
            ..config(5)
        })
        .schedule(schedule.clone())
        .checkpoints(Checkpoints::every(5, &path))
        .fit(&mut first, x.view(), (&y).into())
        .unwrap();
        let checkpoint = Checkpoint::load(&path).unwrap();
        assert_eq!(checkpoint.state.base_lr, Some(0.02));
        let mut resumed = checkpoint.model.network;
        let rest = Trainer::new(FitConfig {
            validation,
            ..config(12)
        })
        .schedule(schedule.clone())
        .resume(checkpoint.state)
        .fit(&mut resumed, x.view(), (&y).into())
        .unwrap();
        let rates = |h: &[EpochStats]| h.iter().map(|e| e.learning_rate).collect::<Vec<_>>();
        assert_eq!(
            rates(&rest.epochs),
            rates(&full.epochs[5..]),
            "{schedule:?}"
        );
        let distinct = rates(&full.epochs);
        assert!(
            distinct.windows(2).any(|w| w[0] != w[1]),
            "{schedule:?}: the rate never changed: {distinct:?}"
        );
        assert_eq!(resumed.snapshot(), whole.snapshot(), "{schedule:?}");
    }
}

/// RMSprop (centred, with momentum), Adagrad, LARS and LAMB, through batch
/// norm and dropout, resume from a checkpoint to the bits of an uninterrupted
/// run: all their state travels with it.
#[test]
fn new_optimizers_resume_exactly() {
    let (x, y) = data::spiral(40, 3, 0);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.ckpt");
    for optimizer in [
        Optimizer::RmsProp(feedforward::RmsPropConfig {
            lr: 0.005,
            momentum: 0.5,
            centered: true,
            ..Default::default()
        }),
        Optimizer::Adagrad(feedforward::AdagradConfig {
            lr: 0.05,
            lr_decay: 0.01,
            initial_accumulator: 0.1,
            ..Default::default()
        }),
        Optimizer::lars(0.5),
        Optimizer::lamb(0.01),
    ] {
        let build = || {
            Network::builder(2)
                .dense(24, Identity)
                .batch_norm(Relu)
                .dropout(0.2)
                .dense(3, Softmax)
                .optimizer(optimizer)
                .seed(3)
                .build()
                .unwrap()
        };
        let config = |epochs| FitConfig {
            epochs,
            batch_size: 16,
            ..FitConfig::default()
        };
        let mut whole = build();
        Trainer::new(config(8))
            .fit(&mut whole, x.view(), (&y).into())
            .unwrap();
        let mut first = build();
        Trainer::new(config(3))
            .checkpoints(Checkpoints::every(3, &path))
            .fit(&mut first, x.view(), (&y).into())
            .unwrap();
        let checkpoint = Checkpoint::load(&path).unwrap();
        let mut resumed = checkpoint.model.network;
        Trainer::new(config(8))
            .resume(checkpoint.state)
            .fit(&mut resumed, x.view(), (&y).into())
            .unwrap();
        assert_eq!(resumed.snapshot(), whole.snapshot(), "{optimizer:?}");
        assert_ne!(whole.snapshot(), build().snapshot());
    }
}
