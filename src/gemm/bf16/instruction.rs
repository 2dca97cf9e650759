//! `VDPBF16PS`, lane by lane: what the instruction computes, as a plain
//! function ([`dot_pair`]), and the instruction itself where the CPU has it
//! ([`dot_pairs_instruction`]), so that the two can be compared.
//!
//! One lane of `VDPBF16PS acc, a, b` reads a pair of bf16 values from each of
//! `a` and `b` (the even one in the low 16 bits) and computes, as Intel's
//! manual defines it and as this machine's AMD Zen 4 does (checked by the tests
//! on random and edge-case inputs):
//!
//! ```text
//! acc ← acc + a.odd·b.odd      one fused multiply-add, rounded to nearest even
//! acc ← acc + a.even·b.even    a second one
//! ```
//!
//! with denormal inputs read as zero and results flushed to zero when they are
//! tiny after rounding (x86's rule: rounded to 24 bits with an unbounded
//! exponent, below 2⁻¹²⁶; so an exact `2⁻¹²⁶ − 2⁻¹⁵⁰` gives 0 where a fused
//! multiply-add gives 2⁻¹²⁶, and `2⁻¹²⁶ − 2⁻¹⁵¹` gives 2⁻¹²⁶). A NaN operand comes out quiet, `a`'s first, then `b`'s, then the
//! accumulator's; an invalid operation (`∞·0`, `∞ − ∞`) gives `0xffc00000`.
//!
//! The products' operands never reach the flushing (see [`super::round`]), so
//! the emulated kernels need only the two multiply-adds; this model keeps every
//! rule, to state and test what the instruction does.

use super::round::from_bf16;

/// One lane of `VDPBF16PS`: `acc + a.odd·b.odd`, then `+ a.even·b.even`, each
/// step rounded to nearest even, with denormals flushed as the instruction does.
///
/// `a` and `b` hold two bf16 values each, the even one in the low 16 bits.
///
/// ```
/// use feedforward::gemm::bf16::dot_pair;
/// // 1.0 and 2.0 in bf16: (1·1) + (2·2) added to 1.
/// assert_eq!(dot_pair(1.0, 0x4000_3f80, 0x4000_3f80), 6.0);
/// // Two roundings: 1 + 2⁻²⁴ + 2⁻²⁴ is 1, where one rounding would give 1 + 2⁻²³.
/// let tiny = 0x3380_3380; // 2⁻²⁴ twice
/// assert_eq!(dot_pair(1.0, tiny, 0x3f80_3f80), 1.0);
/// ```
pub fn dot_pair(acc: f32, a: u32, b: u32) -> f32 {
    let half = |x: u32, odd: bool| from_bf16(if odd { (x >> 16) as u16 } else { x as u16 });
    let acc = step(acc, half(a, true), half(b, true));
    step(acc, half(a, false), half(b, false))
}

/// `acc + x·y` as one step of the instruction.
fn step(acc: f32, x: f32, y: f32) -> f32 {
    let (acc, x, y) = (
        zero_if_denormal(acc),
        zero_if_denormal(x),
        zero_if_denormal(y),
    );
    for v in [x, y, acc] {
        if v.is_nan() {
            return f32::from_bits(v.to_bits() | 0x0040_0000);
        }
    }
    let r = x.mul_add(y, acc);
    if r.is_nan() {
        return f32::from_bits(0xffc0_0000);
    }
    if r.is_subnormal() || (r.abs() == f32::MIN_POSITIVE && exact_is_below(r, x, y, acc)) {
        return 0.0f32.copysign(r);
    }
    r
}

/// Whether `x·y + acc`, whose rounding is `r = ±2⁻¹²⁶`, is tiny *after
/// rounding* as x86 defines it: rounded to 24 bits with an unbounded exponent,
/// it would be below 2⁻¹²⁶ in magnitude. That is, `|x·y + acc|` is below
/// `2⁻¹²⁶ − 2⁻¹⁵¹` (the midpoint between 2⁻¹²⁶ and the 24-bit value under it;
/// the midpoint itself rounds to 2⁻¹²⁶, the even one).
///
/// `x·y` (two bf16 values) is exact in f64, and so is `acc − r` in the only
/// cases that matter: for the exact sum to lie that close to 2⁻¹²⁶, `acc`
/// must itself be small (a large `acc` cancelled by a 16-bit product leaves a
/// sum with a large ulp). So `error` below is exact or rounded far from the
/// threshold it is compared with.
fn exact_is_below(r: f32, x: f32, y: f32, acc: f32) -> bool {
    let error = f64::from(x) * f64::from(y) + (f64::from(acc) - f64::from(r));
    (error < 0.0) != (r < 0.0) && error.abs() > 2f64.powi(-151)
}

fn zero_if_denormal(v: f32) -> f32 {
    if v.is_subnormal() {
        0.0f32.copysign(v)
    } else {
        v
    }
}

/// Sixteen lanes of `VDPBF16PS` on this CPU, or `None` when it lacks
/// AVX512-BF16: for comparing [`dot_pair`] with the hardware.
///
/// ```
/// use feedforward::gemm::bf16::{dot_pair, dot_pairs_instruction};
/// let (acc, a, b) = ([1.0f32; 16], [0x4000_3f80u32; 16], [0x3f80_3f80u32; 16]);
/// if let Some(lanes) = dot_pairs_instruction(&acc, &a, &b) {
///     assert_eq!(lanes[0], dot_pair(1.0, a[0], b[0])); // 1 + 2 + 1
/// }
/// ```
pub fn dot_pairs_instruction(acc: &[f32; 16], a: &[u32; 16], b: &[u32; 16]) -> Option<[f32; 16]> {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::Isa::Avx512Bf16.is_supported() {
        // SAFETY: the CPU has AVX-512F and AVX512-BF16.
        return Some(unsafe { instruction(acc, a, b) });
    }
    let _ = (acc, a, b);
    None
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
fn instruction(acc: &[f32; 16], a: &[u32; 16], b: &[u32; 16]) -> [f32; 16] {
    use std::arch::x86_64::{__m512bh, _mm512_dpbf16_ps, _mm512_loadu_ps, _mm512_storeu_ps};
    let mut out = [0.0f32; 16];
    // SAFETY: 16 floats or 16 pairs at each pointer; `__m512bh` is 64 bytes
    // of any bits, as `[u32; 16]` is.
    unsafe {
        let (va, vb) = (
            std::mem::transmute::<[u32; 16], __m512bh>(*a),
            std::mem::transmute::<[u32; 16], __m512bh>(*b),
        );
        let r = _mm512_dpbf16_ps(_mm512_loadu_ps(acc.as_ptr()), va, vb);
        _mm512_storeu_ps(out.as_mut_ptr(), r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Bits(u64);

    impl Bits {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// A bf16 value: often a denormal, a special or a small normal.
        fn half(&mut self) -> u32 {
            let x = self.next();
            let low = (x >> 8) as u32 & 0xffff;
            match x % 8 {
                0 => low & 0x807f,
                1 => [
                    0x7f80, 0xff80, 0x7fc0, 0xffc1, 0x7f81, 0x0000, 0x8000, 0x0001,
                ][(x >> 8) as usize % 8],
                2 => 0x0080 | (low & 0x807f),
                _ => low,
            }
        }

        /// An accumulator: often a denormal, a special, or near 2⁻¹²⁶.
        fn acc(&mut self) -> f32 {
            let x = self.next();
            let low = (x >> 8) as u32;
            match x % 6 {
                0 => f32::from_bits(low & 0x807f_ffff),
                1 => f32::from_bits(low & 0x80ff_ffff),
                2 => [
                    f32::INFINITY,
                    f32::NEG_INFINITY,
                    f32::NAN,
                    -0.0,
                    0.0,
                    f32::MIN_POSITIVE,
                    -f32::MIN_POSITIVE,
                    f32::MAX,
                ][low as usize % 8],
                _ => f32::from_bits((x >> 16) as u32),
            }
        }
    }

    /// The model against `VDPBF16PS`, bit for bit (NaN payloads included), on
    /// 3.2 million lanes of random and edge-case inputs. On a CPU without the
    /// instruction the comparison cannot run, and the test says so by failing
    /// only if the crate claims the instruction is there.
    #[test]
    fn model_matches_the_instruction_lane_for_lane() {
        let mut bits = Bits(0x1234_5678_9abc_def1);
        let mut checked = 0;
        for _ in 0..200_000 {
            let acc: [f32; 16] = std::array::from_fn(|_| bits.acc());
            let a: [u32; 16] = std::array::from_fn(|_| bits.half() | bits.half() << 16);
            let b: [u32; 16] = std::array::from_fn(|_| bits.half() | bits.half() << 16);
            let Some(hw) = dot_pairs_instruction(&acc, &a, &b) else {
                assert!(!crate::cpu::Isa::Avx512Bf16.is_supported());
                eprintln!("no AVX512-BF16 here: the model is not compared with the instruction");
                return;
            };
            for j in 0..16 {
                let model = dot_pair(acc[j], a[j], b[j]);
                assert_eq!(
                    model.to_bits(),
                    hw[j].to_bits(),
                    "acc {:08x} a {:08x} b {:08x}: instruction {:08x}, model {:08x}",
                    acc[j].to_bits(),
                    a[j],
                    b[j],
                    hw[j].to_bits(),
                    model.to_bits()
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 3_200_000);
    }

    #[test]
    fn model_follows_the_stated_rules() {
        let one = 0x3f80u32;
        let min = f32::MIN_POSITIVE;
        // Tininess after rounding with an unbounded exponent: 2⁻¹²⁶ − 2⁻¹⁵⁰
        // is flushed, though a fused multiply-add rounds it to 2⁻¹²⁶, and
        // 2⁻¹²⁶ − 2⁻¹⁵¹ (a tie, to the even 2⁻¹²⁶) is not.
        let power = |e: i32, sign: u32| (sign << 15 | ((e + 127) as u32) << 7) << 16; // odd half
        assert_eq!(2f32.powi(-75).mul_add(-(2f32.powi(-75)), min), min);
        assert_eq!(dot_pair(min, power(-75, 0), power(-75, 1)), 0.0);
        assert_eq!(dot_pair(min, power(-75, 0), power(-76, 1)), min);
        assert_eq!(dot_pair(-min, power(-75, 1), power(-75, 1)), -0.0);
        assert_eq!(dot_pair(min, 0, 0), min);
        // Denormal inputs are zero.
        assert_eq!(dot_pair(f32::from_bits(1), 0, 0), 0.0);
        assert_eq!(dot_pair(0.0, 0x0001 | one << 16, one | one << 16), 1.0);
        // NaN priority: a, then b, then the accumulator; invalid gives 0xffc00000.
        assert_eq!(
            dot_pair(f32::from_bits(0x7fc1_2345), 0x7fc2, one).to_bits(),
            0x7fc2_0000
        );
        assert_eq!(dot_pair(0.0, one, 0x7fc3).to_bits(), 0x7fc3_0000);
        assert_eq!(dot_pair(0.0, 0x7f80, 0).to_bits(), 0xffc0_0000);
    }
}
