//! After the first step at a batch size, a training step allocates nothing.
//!
//! A counting global allocator sees every allocation of every thread (rayon's
//! workers included). This file holds one test so nothing else runs beside it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

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

#[test]
fn training_step_allocates_nothing_after_warm_up() {
    feedforward::set_threads(2).unwrap();
    let (rows, n_in, classes) = (128, 300, 10);
    let x = Array2::from_shape_fn((rows, n_in), |(i, j)| {
        ((i * 31 + j * 7) % 17) as f32 / 17.0 - 0.5
    });
    let y = Array1::from_shape_fn(rows, |i| i % classes);
    let hot = Array2::from_shape_fn((rows, classes), |(i, j)| f32::from(u8::from(y[i] == j)));
    let mut net = Network::builder(n_in)
        .dense(512, Relu)
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
