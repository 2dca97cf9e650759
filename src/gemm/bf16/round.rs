//! Rounding `f32` to bfloat16, as the bf16 products round their operands.
//!
//! A bfloat16 is the top half of an `f32`: sign, the same 8-bit exponent, 7
//! bits of mantissa. [`to_bf16`] rounds to nearest, ties to even, and flushes
//! magnitudes below [`FLUSH_BELOW`] (2⁻⁵⁶ ≈ 1.4e-17) to a zero of the same sign.
//!
//! The flush is what makes the emulated products exact. With every nonzero
//! operand at least 2⁻⁵⁶, each product `a·b` is a multiple of 2⁻¹²⁶ (8-bit
//! mantissas times 2⁻⁶³ each), so every partial sum is either 0 or at least the
//! smallest normal `f32` in magnitude: `VDPBF16PS`'s flushing of denormal
//! inputs and outputs never acts, and one ordinary fused multiply-add per
//! element computes exactly what the instruction does. Such small values carry
//! nothing a bf16 product could keep anyway: a term of 1e-17 beside one of
//! 1e-3 is 2⁻⁴⁶ below the last of bf16's 8 bits.
//!
//! Written here rather than taken from the `half` crate: the conversion runs
//! inside the packing loops, with the flush, and is three integer operations.

/// Operands of smaller magnitude than this (2⁻⁵⁶) become zero in a bf16 product.
pub const FLUSH_BELOW: f32 = 1.0 / (1u64 << 56) as f32;

/// The biased exponent of [`FLUSH_BELOW`]: bf16 values whose exponent field is
/// below it are flushed.
const FLUSH_EXPONENT: u16 = 127 - 56;

/// `x` rounded to the nearest bfloat16 (ties to even), as its 16 bits.
///
/// Magnitudes below [`FLUSH_BELOW`] become a zero of `x`'s sign; infinities
/// stay; a value that rounds past the largest bf16 becomes an infinity; a NaN
/// stays a NaN of the same sign and high payload, made quiet.
///
/// ```
/// use feedforward::gemm::bf16::{from_bf16, to_bf16};
/// assert_eq!(to_bf16(1.0), 0x3f80);
/// // 1 + 2⁻⁸ is halfway between two bf16 values: ties go to the even one.
/// assert_eq!(from_bf16(to_bf16(1.0 + 1.0 / 256.0)), 1.0);
/// assert_eq!(from_bf16(to_bf16(-1e-20)).to_bits(), (-0.0f32).to_bits());
/// ```
#[inline(always)]
pub fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    // Adding 0x7fff plus the kept part's lowest bit rounds the dropped half to
    // nearest, ties to even; a carry out of the mantissa moves the exponent up
    // (to infinity past the largest finite value), as it should. (Only a NaN
    // can wrap around, and its result is not used.)
    let rounded = bits.wrapping_add(0x7fff + ((bits >> 16) & 1));
    // Selects rather than an early return, so that loops of it vectorise.
    let half = if x.is_nan() {
        (bits >> 16) as u16 | 0x0040
    } else {
        (rounded >> 16) as u16
    };
    if half & 0x7f80 < FLUSH_EXPONENT << 7 {
        half & 0x8000
    } else {
        half
    }
}

/// The `f32` a bfloat16 stands for (exact: the low 16 bits are zero).
#[inline(always)]
pub fn from_bf16(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// `x` rounded to bf16 as [`to_bf16`] does, as an `f32`.
#[inline(always)]
pub fn round_to_bf16(x: f32) -> f32 {
    from_bf16(to_bf16(x))
}

/// Two bf16 values in the 32 bits one lane of `VDPBF16PS` reads: `even` (the
/// lower step of a pair of `k`) in the low half, `odd` in the high half.
#[inline(always)]
pub(crate) fn pair(even: f32, odd: f32) -> u32 {
    u32::from(to_bf16(even)) | u32::from(to_bf16(odd)) << 16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rounds through f64 arithmetic: the nearest multiple of the bf16 step at
    /// x's exponent, ties to even.
    fn reference(x: f32) -> f32 {
        let step = 2f64.powi(x.abs().log2().floor() as i32 - 7);
        let q = f64::from(x) / step;
        let mut r = q.round();
        if (q - q.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
            r -= q.signum();
        }
        let y = (r * step) as f32;
        if y.abs() < FLUSH_BELOW {
            0.0f32.copysign(x)
        } else {
            y
        }
    }

    #[test]
    fn rounds_to_nearest_even_and_flushes() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let x = f32::from_bits(state as u32);
            if !x.is_finite() || x.abs() > 3.0e38 {
                continue;
            }
            assert_eq!(round_to_bf16(x).to_bits(), reference(x).to_bits(), "{x:e}");
        }
        assert_eq!(round_to_bf16(f32::MAX), f32::INFINITY);
        assert_eq!(round_to_bf16(f32::NEG_INFINITY), f32::NEG_INFINITY);
        assert_eq!(to_bf16(f32::from_bits(0x7f80_0001)), 0x7fc0);
        assert_eq!(to_bf16(f32::from_bits(0xffc1_2345)), 0xffc1);
        // The NaNs whose rounding would wrap around stay themselves.
        assert_eq!(to_bf16(f32::from_bits(0xffff_ffff)), 0xffff);
        assert_eq!(to_bf16(f32::from_bits(0x7fff_8000)), 0x7fff);
        assert_eq!(round_to_bf16(FLUSH_BELOW), FLUSH_BELOW);
        assert_eq!(round_to_bf16(FLUSH_BELOW * 0.99), 0.0);
        assert_eq!(round_to_bf16(f32::from_bits(1)).to_bits(), 0);
        assert_eq!(pair(1.0, -2.0), 0xc000_3f80);
    }
}
