//! After the first step at a batch size, a training step allocates nothing:
//! called alone, and inside the `Trainer`'s epoch loop (with micro-batches, a
//! callback and batch norm).
//!
//! A counting global allocator sees every allocation of every thread (rayon's
//! workers included); the tests take turns through `SERIAL`, so nothing else
//! runs while one counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use feedforward::train::{Callback, Control, Progress, Trainer};
use feedforward::{BatchNormMode, FitConfig};

use feedforward::{Activation::*, Network, Optimizer, Targets};
use ndarray::{Array1, Array2};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// One counting test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn training_step_allocates_nothing_after_warm_up() {
    let _turn = SERIAL.lock().unwrap();
    feedforward::set_threads(2).unwrap();
    let (rows, n_in, classes) = (128, 300, 10);
    let x = Array2::from_shape_fn((rows, n_in), |(i, j)| {
        ((i * 31 + j * 7) % 17) as f32 / 17.0 - 0.5
    });
    let y = Array1::from_shape_fn(rows, |i| i % classes);
    let hot = Array2::from_shape_fn((rows, classes), |(i, j)| f32::from(u8::from(y[i] == j)));
    let mut net = Network::builder(n_in)
        .dense(512, Relu)
        .dropout(0.25)
        .dense(96, Identity)
        .batch_norm(Tanh)
        .dense(classes, Softmax)
        .optimizer(Optimizer::adam(1e-3))
        .clip_grad_norm(5.0)
        .build()
        .unwrap();
    // Inside the pool, as `fit` runs: parallel kernels start from a worker thread.
    rayon::scope(|_| {
        for targets in [Targets::Classes(y.view()), Targets::Values(hot.view())] {
            for _ in 0..3 {
                net.train_step(x.view(), targets).unwrap();
            }
            ALLOCATIONS.store(0, Ordering::SeqCst);
            COUNTING.store(true, Ordering::SeqCst);
            let mut loss = 0.0;
            for _ in 0..100 {
                loss = net.train_step(x.view(), targets).unwrap();
            }
            COUNTING.store(false, Ordering::SeqCst);
            assert!(loss.is_finite());
            let n = ALLOCATIONS.load(Ordering::SeqCst);
            assert_eq!(n, 0, "{n} allocations in 100 training steps");
        }
    });
}

/// Counts the allocations of the steps of epoch 2 after its first: from before
/// its second step to the end of its last (validation, which allocates its
/// outputs, comes after).
struct CountSecondEpoch {
    counted: Option<usize>,
    steps: usize,
}

impl Callback for CountSecondEpoch {
    fn before_step(&mut self, _: &mut Network, epoch: usize, batch: usize) {
        if (epoch, batch) == (2, 2) {
            ALLOCATIONS.store(0, Ordering::SeqCst);
            COUNTING.store(true, Ordering::SeqCst);
        }
    }

    fn on_step(&mut self, _: &Network, progress: &Progress<'_>) -> Control {
        if let Progress::Batch {
            epoch: 2,
            batch,
            batches,
            ..
        } = *progress
        {
            self.steps += usize::from(batch >= 2);
            if batch == batches {
                COUNTING.store(false, Ordering::SeqCst);
                self.counted = Some(ALLOCATIONS.load(Ordering::SeqCst));
            }
        }
        Control::Continue
    }
}

#[test]
fn trainer_steps_allocate_nothing_after_the_first_epoch() {
    let _turn = SERIAL.lock().unwrap();
    feedforward::set_threads(2).unwrap();
    let (rows, n_in, classes) = (1000, 40, 5);
    let x = Array2::from_shape_fn((rows, n_in), |(i, j)| {
        ((i * 13 + j * 5) % 23) as f32 / 23.0 - 0.5
    });
    let y = Array1::from_shape_fn(rows, |i| (i * 7) % classes);
    for (micro_batch, mode, shards) in [
        (None, BatchNormMode::Exact, 1),
        (Some(24), BatchNormMode::Exact, 1),
        (Some(24), BatchNormMode::Ghost, 1),
        (Some(20), BatchNormMode::Exact, 4),
        (None, BatchNormMode::Exact, 3),
    ] {
        let mut net = Network::builder(n_in)
            .dense(64, Identity)
            .batch_norm(Relu)
            .dense(classes, Softmax)
            .optimizer(Optimizer::adam(1e-3))
            .build()
            .unwrap();
        let mut count = CountSecondEpoch {
            counted: None,
            steps: 0,
        };
        let config = FitConfig {
            epochs: 2,
            batch_size: 100,
            micro_batch,
            batch_norm_mode: mode,
            shards,
            validation: Some((x.view(), Targets::Classes(y.view()))),
            ..FitConfig::default()
        };
        Trainer::new(config)
            .callback(&mut count)
            .fit(&mut net, x.view(), Targets::Classes(y.view()))
            .unwrap();
        assert_eq!(count.steps, 9, "micro-batch {micro_batch:?}");
        assert_eq!(
            count.counted,
            Some(0),
            "allocations in 9 steps of the Trainer, micro-batch {micro_batch:?}, {mode:?}, {shards} shards"
        );
    }
}
