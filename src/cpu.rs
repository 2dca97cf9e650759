//! Which instruction set the kernels run on: the best the CPU has, detected once
//! at first use and cached, unless `FEEDFORWARD_ISA` or [`set_isa`] asks for another.
//!
//! Every build carries all the kernels its target architecture can have (on
//! x86-64: AVX-512F (with AVX512-BF16 as a level of its own), AVX2 + FMA and the SSE2 baseline), each compiled with its
//! own `#[target_feature]`, so neither `-C target-cpu=native` nor any other flag
//! is needed for the fast path, and a binary runs on any CPU of its target.
//!
//! Within one instruction set, results are bit-identical for any thread count and
//! run to run. Across instruction sets they may differ in the last bits: the
//! AVX-512 and AVX2 kernels use fused multiply-adds (one rounding), the SSE2
//! kernel a multiply then an add (two), and the tile sizes differ.
//!
//! # Example
//! ```
//! use feedforward::gemm::{self, Isa};
//! let best = Isa::best();
//! assert!(best.is_supported());
//! // Every CPU runs the portable kernel; force it, then go back.
//! gemm::set_isa(Isa::Portable)?;
//! assert_eq!(gemm::isa(), Isa::Portable);
//! gemm::set_isa(best)?;
//! # Ok::<(), feedforward::Error>(())
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::error::{Error, Result};

/// The environment variable that picks the instruction set: `avx512bf16`,
/// `avx512`, `avx2` or `sse2` (also `portable`). Read once, at the first product.
pub const ISA_VARIABLE: &str = "FEEDFORWARD_ISA";

/// An instruction set the crate's kernels are compiled for.
///
/// Ordered from the most portable to the widest, so `a < b` means `a` is a lower level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// The `wide` kernel as compiled for the build's target: SSE2 (4 lanes,
    /// 4 × 8 tiles) on a plain x86-64 build, NEON on aarch64. Runs on every CPU
    /// of the target.
    Portable,
    /// x86-64 AVX2 with FMA: 8 lanes, 6 × 16 tiles.
    Avx2,
    /// x86-64 AVX-512F: 16 lanes, 12 × 32 tiles.
    Avx512,
    /// AVX-512F with AVX512-BF16 (Zen 4, Cooper Lake, Sapphire Rapids): the
    /// AVX-512F kernels for `f32`, and `VDPBF16PS` for the products in
    /// [`crate::Precision::Bf16`]. Every lower level computes the same bf16
    /// products bit for bit by emulation (see [`crate::gemm::bf16`]), and so
    /// does this level for the products where that is faster (see
    /// [`bf16_instruction_is_slow`]).
    Avx512Bf16,
}

impl Isa {
    /// Every instruction set, lowest first.
    pub const ALL: [Isa; 4] = [Isa::Portable, Isa::Avx2, Isa::Avx512, Isa::Avx512Bf16];

    /// The name used by `FEEDFORWARD_ISA`, `bench` and `--version`: `"avx512bf16"`, `"avx512"`,
    /// `"avx2"`, or for [`Isa::Portable`] the vectors it was compiled to
    /// (`"sse2"` on a baseline x86-64 build, `"neon"` on aarch64).
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512Bf16 => "avx512bf16",
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Portable => PORTABLE_NAME,
        }
    }

    /// Parses a name as [`Isa::name`] prints it (any case); `portable` and
    /// `baseline` also name [`Isa::Portable`].
    pub fn from_name(name: &str) -> Option<Isa> {
        match name.trim().to_ascii_lowercase().as_str() {
            "avx512bf16" | "avx512-bf16" | "avx512_bf16" => Some(Isa::Avx512Bf16),
            "avx512" | "avx512f" | "avx-512" => Some(Isa::Avx512),
            "avx2" | "avx2+fma" => Some(Isa::Avx2),
            "sse2" | "neon" | "portable" | "baseline" => Some(Isa::Portable),
            n if n == PORTABLE_NAME => Some(Isa::Portable),
            _ => None,
        }
    }

    /// Whether this CPU (and this build's target) can run the kernels.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Bf16 => {
                Isa::Avx512.is_supported() && std::arch::is_x86_feature_detected!("avx512bf16")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The widest instruction set this CPU supports.
    pub fn best() -> Isa {
        Isa::ALL
            .into_iter()
            .rev()
            .find(|i| i.is_supported())
            .unwrap_or(Isa::Portable)
    }

    /// The supported instruction sets, widest first.
    pub fn supported() -> Vec<Isa> {
        Isa::ALL
            .into_iter()
            .rev()
            .filter(|i| i.is_supported())
            .collect()
    }

    fn code(self) -> u8 {
        match self {
            Isa::Portable => 1,
            Isa::Avx2 => 2,
            Isa::Avx512 => 3,
            Isa::Avx512Bf16 => 4,
        }
    }

    fn from_code(code: u8) -> Option<Isa> {
        Isa::ALL.into_iter().find(|i| i.code() == code)
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether this CPU's `VDPBF16PS` does fewer multiply-adds per cycle than its
/// `f32` fused multiply-adds, so that bf16 products of many rows run faster
/// emulated (as `f32` products of rounded operands: the same bits; see
/// [`crate::gemm::bf16`]). Read once and cached.
///
/// True on Intel's cores: a Sapphire Rapids-class Xeon here issues one
/// `VDPBF16PS` (32 multiply-adds) every 2 cycles against two `VFMADD231PS`
/// (16 each) per cycle, 123 against 245 GFLOP/s in a register loop. False on
/// AMD's (Zen 4 and later), which issue it at the rate of an FMA, twice the
/// `f32` multiply-adds: 571 against 256 GFLOP/s on a Zen 4 core.
pub fn bf16_instruction_is_slow() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // CPUID may trap to a hypervisor (microseconds): ask once.
        static SLOW: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *SLOW.get_or_init(|| cpu_vendor() == *b"GenuineIntel")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The 12-byte vendor string of CPUID leaf 0 (`GenuineIntel`, `AuthenticAMD`, ...).
#[cfg(target_arch = "x86_64")]
fn cpu_vendor() -> [u8; 12] {
    // SAFETY: CPUID leaf 0 exists on every x86-64 CPU.
    #[allow(unused_unsafe)]
    let id = unsafe { std::arch::x86_64::__cpuid(0) };
    let mut vendor = [0u8; 12];
    vendor[..4].copy_from_slice(&id.ebx.to_le_bytes());
    vendor[4..8].copy_from_slice(&id.edx.to_le_bytes());
    vendor[8..].copy_from_slice(&id.ecx.to_le_bytes());
    vendor
}

/// [`Isa::Portable`]'s name: what `wide` compiles its vectors to on this target.
const PORTABLE_NAME: &str = if cfg!(target_arch = "aarch64") {
    "neon"
} else if cfg!(all(target_arch = "x86_64", target_feature = "avx512f")) {
    "portable-avx512"
} else if cfg!(all(target_arch = "x86_64", target_feature = "avx")) {
    "portable-avx"
} else if cfg!(target_arch = "x86_64") {
    "sse2"
} else {
    "portable"
};

/// The chosen instruction set's code, or 0 before the first use.
static CHOSEN: AtomicU8 = AtomicU8::new(0);

/// The instruction set the kernels run on.
///
/// The first call decides: the level `FEEDFORWARD_ISA` names when this CPU
/// supports it, otherwise the best supported level at or below it (an unknown
/// name, or none, means the best). Later calls return the cached choice, which
/// only [`set_isa`] changes. [`isa_from_env`] tells whether the variable was usable.
///
/// ```
/// use feedforward::gemm::{isa, Isa};
/// let level = isa();
/// assert!(level.is_supported());
/// println!("kernels: {level}, {}×{} tiles", level.tile().0, level.tile().1);
/// # let _ = Isa::best();
/// ```
pub fn isa() -> Isa {
    if let Some(isa) = Isa::from_code(CHOSEN.load(Ordering::Relaxed)) {
        return isa;
    }
    let wanted = std::env::var(ISA_VARIABLE)
        .ok()
        .and_then(|v| Isa::from_name(&v))
        .unwrap_or(Isa::Avx512Bf16);
    let chosen = Isa::ALL
        .into_iter()
        .rev()
        .find(|i| *i <= wanted && i.is_supported())
        .unwrap_or(Isa::Portable);
    // Two threads may race here; they choose the same level.
    CHOSEN.store(chosen.code(), Ordering::Relaxed);
    chosen
}

/// Makes every later product and kernel run on `isa`.
///
/// For testing and comparison: results differ across levels in the last bits
/// (see the module docs), so switch between training runs, not within one.
///
/// # Errors
/// [`Error::Isa`] when this CPU cannot run `isa`; the choice is then unchanged.
pub fn set_isa(isa: Isa) -> Result<()> {
    if !isa.is_supported() {
        return Err(isa_error(isa.name(), true));
    }
    CHOSEN.store(isa.code(), Ordering::Relaxed);
    Ok(())
}

/// What `FEEDFORWARD_ISA` asks for: `Ok(None)` when it is unset or empty.
///
/// # Errors
/// [`Error::Isa`] when it names no instruction set, or one this CPU cannot run
/// ([`isa`] would then quietly run a lower one: a program can call this at
/// start-up to report the mistake instead).
pub fn isa_from_env() -> Result<Option<Isa>> {
    let Ok(value) = std::env::var(ISA_VARIABLE) else {
        return Ok(None);
    };
    if value.trim().is_empty() {
        return Ok(None);
    }
    match Isa::from_name(&value) {
        Some(isa) if isa.is_supported() => Ok(Some(isa)),
        Some(_) => Err(isa_error(&value, true)),
        None => Err(isa_error(&value, false)),
    }
}

fn isa_error(requested: &str, known: bool) -> Error {
    Error::Isa {
        requested: requested.to_string(),
        known,
        available: Isa::supported().into_iter().map(Isa::name).collect(),
    }
}

/// Compiles a function's body once per instruction set and runs the copy for
/// [`isa`]: for the element-wise kernels (optimizer updates, activations,
/// reductions), whose loops the compiler vectorises for the registers each copy
/// may use. The copies compute the same bits (no copy fuses or reorders
/// floating-point operations); only their speed differs.
///
/// Written here rather than taken from the `multiversion` crate so that
/// `FEEDFORWARD_ISA` and [`set_isa`] choose for these kernels and the products
/// alike, from one cached value.
macro_rules! per_isa {
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block
    ) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx2,fma")]
            #[allow(clippy::too_many_arguments)]
            fn avx512($($arg: $ty),*) $(-> $ret)? {
                body($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            #[allow(clippy::too_many_arguments)]
            fn avx2($($arg: $ty),*) $(-> $ret)? {
                body($($arg),*)
            }
            match $crate::cpu::isa() {
                // SAFETY: `isa` returns a level only when the CPU has it.
                #[cfg(target_arch = "x86_64")]
                $crate::cpu::Isa::Avx512 | $crate::cpu::Isa::Avx512Bf16 => unsafe { avx512($($arg),*) },
                // SAFETY: as above.
                #[cfg(target_arch = "x86_64")]
                $crate::cpu::Isa::Avx2 => unsafe { avx2($($arg),*) },
                _ => body($($arg),*),
            }
        }
    };
}
pub(crate) use per_isa;

#[cfg(test)]
mod tests {
    use super::*;

    /// The vendor read from CPUID is the one the kernel reports.
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn cpu_vendor_matches_proc_cpuinfo() {
        let info = std::fs::read_to_string("/proc/cpuinfo").expect("/proc/cpuinfo is readable");
        let line = info
            .lines()
            .find(|l| l.starts_with("vendor_id"))
            .expect("a vendor_id line");
        let reported = line.split(':').nth(1).expect("a value").trim();
        assert_eq!(std::str::from_utf8(&cpu_vendor()).unwrap(), reported);
    }
}
