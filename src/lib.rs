//! # feedforward
//!
//! Multi-layer perceptrons trained and run on the CPU, as fast as the machine allows.
//!
//! ```
//! use feedforward::{Activation::*, FitConfig, Network, Optimizer, data};
//!
//! // Three interleaved spirals, 100 points each (the CS231n case study).
//! let (x, y) = data::spiral(100, 3, 0);
//! let mut net = Network::builder(2)
//!     .dense(64, Relu)
//!     .dense(3, Softmax) // softmax + categorical cross-entropy, fused from the logits
//!     .optimizer(Optimizer::adam(0.02))
//!     .seed(1)
//!     .build()?;
//! let config = FitConfig { epochs: 60, batch_size: 32, ..Default::default() };
//! let history = net.fit(x.view(), (&y).into(), &config)?;
//! let eval = net.evaluate(x.view(), (&y).into())?;
//! assert!(eval.accuracy.unwrap() > 0.8);
//! println!("final loss {:.3}", history.last().unwrap().loss);
//! # Ok::<(), feedforward::Error>(())
//! ```
//!
//! ## How it is put together
//!
//! - [`Network`] ([`network`]): layers, one flat parameter buffer, a loss, an
//!   optimizer and a workspace; `forward`, `backward`, `step`, `fit`, `predict`.
//! - [`layers`]: [`layers::Dense`] and [`layers::BatchNorm`], each followed by an
//!   [`Activation`].
//! - [`Loss`]: the losses, fused with their output activation and computed from
//!   logits; [`Targets`]: class indices or rows of values.
//! - [`Optimizer`]: SGD (momentum, Nesterov), Adam, AdamW, RMSprop, Adagrad, LARS, LAMB;
//!   weight decay; clipping; [`LrSchedule`]s (the [`optim::schedule`] module).
//! - [`gemm`]: the one entry point for matrix products. Default build: the crate's
//!   own packed SIMD kernel, compiled for AVX-512, AVX2 and SSE2 and chosen at run
//!   time ([`gemm::isa`]); features `openblas`, `blis` (or `blas` with a
//!   provider of your choice through `blas-src`): `cblas_sgemm`.
//! - [`Precision`]: `f32`, or bf16 operands with `f32` sums ([`gemm::bf16`]: on
//!   `VDPBF16PS` where the CPU has AVX512-BF16 and it is the faster path,
//!   emulated to the same bits elsewhere), for training and for inference
//!   ([`Network::predictor`]).
//! - [`io`]: data sets from CSV, IDX (MNIST) and NPY/NPZ files, and model files
//!   ([`io::model`], safetensors) written atomically; [`Standardizer`] for inputs.
//! - [`train`]: the [`train::Trainer`] (epochs, validation, callbacks, early
//!   stopping, checkpoints, resume) that [`Network::fit`] runs; [`source`]:
//!   rows read a batch at a time.
//! - Feature `bench` (on with the default `cli`): `bench` and `replay`, the
//!   harness of `feedforward bench`, for measuring the library from outside.
//! - Element-wise kernels run on rayon across batch rows; [`set_threads`] sets one
//!   thread count for rayon and BLAS alike.
//!
//! Training is deterministic for a given seed; with the default backend it is
//! bit-identical for any thread count (products are split over output blocks only
//! and reductions use a fixed order).
//!
//! No function here panics on user data: bad shapes, NaN or infinite values, labels
//! out of range, empty inputs and invalid settings come back as an [`Error`].
#![warn(missing_docs)]

// A provider feature links its library through blas-src.
#[cfg(any(feature = "openblas", feature = "blis"))]
extern crate blas_src;

#[cfg(all(feature = "openblas", feature = "blis"))]
compile_error!(
    "features `openblas` and `blis` both provide cblas_sgemm: enable one of them \
     (or `blas` alone, with the provider chosen by your binary through blas-src)"
);

pub mod activation;
#[cfg(feature = "bench")]
pub mod bench;
mod cpu;
pub mod data;
pub mod distributed;
pub mod error;
pub mod gemm;
pub mod init;
pub mod io;
mod kernels;
pub mod layers;
pub mod loss;
pub mod network;
pub mod optim;
mod precision;
#[cfg(feature = "bench")]
pub mod replay;
pub mod source;
pub mod standardize;
pub mod targets;
mod threads;
pub mod train;

pub use activation::Activation;
pub use error::{Error, Result};
pub use init::Init;
pub use layers::Layer;
pub use loss::Loss;
pub use network::{
    BatchNormMode, Evaluation, Network, NetworkBuilder, Penalty, Predictor, Snapshot,
};
pub use optim::{
    AdagradConfig, AdamConfig, Every, LambConfig, LarsConfig, LrSchedule, Optimizer,
    OptimizerState, RmsPropConfig, Schedule, SgdConfig,
};
pub use precision::Precision;
pub use standardize::Standardizer;
pub use targets::{OwnedTargets, Targets};
pub use threads::{set_threads, threads};
pub use train::{EpochStats, FitConfig, History, Progress};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
