//! Does AMX's `TDPBF16PS` compute what `VDPBF16PS` computes? It does not; this
//! shows how, on a CPU with AMX (Intel Sapphire Rapids and later):
//!
//! ```bash
//! cargo run --release --example amx_rounding
//! ```
//!
//! `Precision::Bf16` promises the same bits on every CPU, defined by
//! `VDPBF16PS` (see `feedforward::gemm::bf16::dot_pair`: one rounding per
//! step). One `TDPBF16PS` multiplies a 16 × 32 tile of bf16 by a 32 × 16 one
//! into 16 × 16 `f32` sums; if it rounded the same way, the bf16 products
//! could run on it at many times the rate. The example runs the instruction
//! on two hand-made cases and on random tiles, and compares every sum with
//! the chain of `dot_pair` steps over the same pairs.
//!
//! Inline assembly (`ldtilecfg`, `tileloadd`, `tdpbf16ps`, `tilestored`):
//! Rust's AMX intrinsics are not stable.

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod amx {
    use feedforward::gemm::bf16::{dot_pair, to_bf16};
    use std::arch::asm;

    /// Palette 1 tile configuration: 64 bytes, as `ldtilecfg` reads it.
    #[repr(C, align(64))]
    struct TileConfig {
        palette: u8,
        start_row: u8,
        reserved: [u8; 14],
        bytes_per_row: [u16; 16],
        rows: [u8; 16],
    }

    /// Whether the CPU has AMX-TILE and AMX-BF16 (CPUID leaf 7, EDX bits 24 and 22)
    /// and Linux lets this process use the tile registers.
    pub fn available() -> bool {
        // SAFETY: CPUID leaf 7 exists on every CPU that has AVX-512.
        #[allow(unused_unsafe)]
        let edx = unsafe { std::arch::x86_64::__cpuid_count(7, 0) }.edx;
        if edx & (1 << 24) == 0 || edx & (1 << 22) == 0 {
            return false;
        }
        // arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA): Linux hands out
        // the 8 KiB of tile state only on request.
        // SAFETY: a plain system call with integer arguments.
        unsafe { libc::syscall(libc::SYS_arch_prctl, 0x1023, 18) == 0 }
    }

    /// One `TDPBF16PS`: `C (16 × 16 f32) += A (16 rows of 16 bf16 pairs) ·
    /// B (16 pair rows of 16 columns)`, each pair `even | odd << 16`.
    pub fn tile_product(c: &mut [f32; 256], a: &[u32; 256], b: &[u32; 256]) {
        let mut config = TileConfig {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            bytes_per_row: [0; 16],
            rows: [0; 16],
        };
        for t in 0..3 {
            config.bytes_per_row[t] = 64;
            config.rows[t] = 16;
        }
        // SAFETY: `available()` said the CPU and the OS allow AMX; each tile is
        // 16 rows of 64 bytes, read from and written to arrays of that size.
        unsafe {
            asm!(
                "ldtilecfg [{config}]",
                "tileloadd tmm0, [{c} + {stride}*1]",
                "tileloadd tmm1, [{a} + {stride}*1]",
                "tileloadd tmm2, [{b} + {stride}*1]",
                "tdpbf16ps tmm0, tmm1, tmm2",
                "tilestored [{c} + {stride}*1], tmm0",
                "tilerelease",
                config = in(reg) &config,
                c = in(reg) c.as_mut_ptr(),
                a = in(reg) a.as_ptr(),
                b = in(reg) b.as_ptr(),
                stride = in(reg) 64usize,
                options(nostack),
            );
        }
    }

    /// The same sums by `VDPBF16PS`'s definition: per element, the pairs in
    /// order, each one `dot_pair` step (odd product first, two roundings).
    pub fn by_vdpbf16ps(c: &[f32; 256], a: &[u32; 256], b: &[u32; 256]) -> [f32; 256] {
        std::array::from_fn(|e| {
            let (m, n) = (e / 16, e % 16);
            (0..16).fold(c[e], |acc, k| dot_pair(acc, a[m * 16 + k], b[k * 16 + n]))
        })
    }

    /// A pair of two `f32` values, each rounded to bf16.
    pub fn pair(even: f32, odd: f32) -> u32 {
        u32::from(to_bf16(even)) | u32::from(to_bf16(odd)) << 16
    }

    /// `1 + Σ`: C's first element 1, A's first row `pairs`, B's first column all ones.
    pub fn one_plus(pairs: &[(f32, f32)]) -> (f32, f32) {
        let mut c = [0.0f32; 256];
        c[0] = 1.0;
        let mut a = [0u32; 256];
        let mut b = [0u32; 256];
        for (k, &(even, odd)) in pairs.iter().enumerate() {
            a[k] = pair(even, odd);
            b[k * 16] = pair(1.0, 1.0);
        }
        let model = by_vdpbf16ps(&c, &a, &b)[0];
        tile_product(&mut c, &a, &b);
        (c[0], model)
    }
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn main() {
    use amx::*;
    if !available() {
        println!("this CPU (or kernel) has no AMX-BF16: nothing to compare");
        return;
    }
    let ulp = f32::EPSILON; // of 1.0
    let show = |what: &str, (amx, model): (f32, f32)| {
        println!(
            "{what:38} TDPBF16PS: 1 + {:.0} ulp   VDPBF16PS: 1 + {:.0} ulp",
            (amx - 1.0) / ulp,
            (model - 1.0) / ulp
        );
    };
    show(
        "1 + (½ulp + ½ulp) in one pair",
        one_plus(&[(0.5 * ulp, 0.5 * ulp)]),
    );
    show(
        "1 + ⅜ulp in each of two pairs",
        one_plus(&[(0.375 * ulp, 0.0), (0.375 * ulp, 0.0)]),
    );

    // Random tiles: values of a few magnitudes, as in a product of activations.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut value = move |scale: i32| {
        let r = next();
        let mantissa = 1.0 + (r >> 40) as f32 / (1u64 << 24) as f32;
        let sign = if r & 1 == 0 { 1.0 } else { -1.0 };
        sign * mantissa * 2f32.powi((r >> 8) as i32 % scale)
    };
    let (mut same, mut total, mut worst) = (0usize, 0usize, 0.0f64);
    for _ in 0..2000 {
        let a: [u32; 256] = std::array::from_fn(|_| pair(value(6), value(6)));
        let b: [u32; 256] = std::array::from_fn(|_| pair(value(6), value(6)));
        let mut c: [f32; 256] = std::array::from_fn(|_| value(10));
        let model = by_vdpbf16ps(&c, &a, &b);
        tile_product(&mut c, &a, &b);
        for (hw, want) in c.iter().zip(&model) {
            total += 1;
            if hw.to_bits() == want.to_bits() {
                same += 1;
            } else {
                let ulp = (want.abs().next_up() - want.abs()) as f64;
                worst = worst.max(((*hw as f64) - (*want as f64)).abs() / ulp);
            }
        }
    }
    println!(
        "random tiles: {same} of {total} sums ({:.1}%) equal VDPBF16PS's; the others up to {worst:.0} ulp away",
        100.0 * same as f64 / total as f64
    );
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn main() {
    println!("AMX is x86-64 only (and this example uses Linux's arch_prctl)");
}
