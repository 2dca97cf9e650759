//! The precision of a network's matrix products.

use std::fmt;

/// How a network's dense layers multiply: in `f32`, or with bfloat16 operands
/// and `f32` sums ([`crate::gemm::bf16`]).
///
/// Only the products change. Weights, gradients, optimizer state, losses, the
/// bias, activations and batch norm stay `f32`; in training, the three
/// products of each dense layer (forward, weight gradient, input gradient)
/// take bf16 operands. bf16 has `f32`'s exponent range, so no loss scaling is
/// needed. Results are the same bits on every CPU: with AVX512-BF16 the
/// products run on `VDPBF16PS` at twice the `f32` rate; elsewhere they are
/// emulated exactly, at about the `f32` speed.
///
/// ```
/// use feedforward::{Activation::*, Network, Precision};
/// let mut net = Network::builder(2).dense(8, Relu).dense(1, Identity).build()?;
/// assert_eq!(net.precision(), Precision::F32);
/// net.set_precision(Precision::Bf16);
/// assert_eq!("bf16".parse::<Precision>(), Ok(Precision::Bf16));
/// # Ok::<(), feedforward::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// `f32` operands and sums (the default).
    #[default]
    F32,
    /// bfloat16 operands (rounded to nearest even), `f32` sums.
    Bf16,
}

impl Precision {
    /// The name `--precision` takes: `"f32"` or `"bf16"`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Precision {
    type Err = String;

    /// `f32` (or `fp32`, `float32`) and `bf16` (or `bfloat16`), any case.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Ok(Precision::F32),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            other => Err(format!("unknown precision {other:?}: expected f32 or bf16")),
        }
    }
}
