//! feedforward (work in progress)
#![warn(missing_docs)]

#[cfg(feature = "openblas")]
extern crate openblas_src;

pub mod error;
pub mod gemm;

pub use error::{Error, Result};
