//! Build-time checks for the chosen backend.
//!
//! - `openblas`: make sure a system OpenBLAS can be linked, and say exactly what to
//!   install when it cannot (instead of an opaque linker error later).
//! - default (SIMD) backend: warn when the target features leave the kernel on
//!   narrow vectors, because `wide` chooses its instructions at compile time.

use std::env;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=OPENBLAS_LIB_DIR");
    println!("cargo::rerun-if-env-changed=LIBRARY_PATH");
    println!("cargo::rustc-check-cfg=cfg(docsrs)");

    let features = env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let has = |f: &str| features.split(',').any(|x| x == f);

    if env::var_os("CARGO_FEATURE_OPENBLAS").is_some() {
        check_openblas();
    } else if env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64") {
        if !(has("avx2") && has("fma")) {
            println!(
                "cargo::warning=feedforward: the SIMD gemm is being built without AVX2/FMA \
                 (target features: {}), so it runs on 128-bit vectors at a fraction of the \
                 machine's speed. Build with RUSTFLAGS=\"-C target-cpu=native\" (the project's \
                 .cargo/config.toml does this) or enable the `openblas` feature.",
                if features.is_empty() {
                    "none"
                } else {
                    &features
                }
            );
        } else if !has("avx512f") && cpu_has_avx512() {
            println!(
                "cargo::warning=feedforward: this CPU has AVX-512 but the build targets \
                 AVX2 only; -C target-cpu=native would double the SIMD gemm's peak."
            );
        }
    }
}

/// Is the build host able to run AVX-512 code? (Only used for a hint.)
fn cpu_has_avx512() -> bool {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|s| s.contains(" avx512f"))
        .unwrap_or(false)
}

/// Looks for a linkable `libopenblas` where the system linker would.
fn check_openblas() {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for var in ["OPENBLAS_LIB_DIR", "LIBRARY_PATH", "LD_LIBRARY_PATH"] {
        if let Some(v) = env::var_os(var) {
            dirs.extend(env::split_paths(&v));
        }
    }
    for d in [
        "/usr/lib",
        "/usr/lib64",
        "/usr/local/lib",
        "/usr/local/lib64",
        "/opt/homebrew/opt/openblas/lib",
        "/usr/local/opt/openblas/lib",
    ] {
        dirs.push(PathBuf::from(d));
    }
    // Debian/Ubuntu multiarch directories, and their openblas alternatives.
    if let Ok(entries) = std::fs::read_dir("/usr/lib") {
        for e in entries.flatten() {
            let p = e.path();
            if p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with("-linux-gnu"))
            {
                dirs.push(p.join("openblas-pthread"));
                dirs.push(p);
            }
        }
    }
    let found = dirs.iter().any(|d| has_openblas(d));
    if !found {
        for line in [
            "feature `openblas` needs the system OpenBLAS library, and no libopenblas was found. Install it:",
            "    Debian/Ubuntu:  apt-get install libopenblas-dev",
            "    Fedora/RHEL:    dnf install openblas-devel",
            "    Arch:           pacman -S openblas",
            "    macOS:          brew install openblas",
            "or point OPENBLAS_LIB_DIR at the directory that holds libopenblas,",
            "or build without `--features openblas` to use the pure-Rust SIMD backend.",
        ] {
            println!("cargo::error={line}");
        }
    }
}

fn has_openblas(dir: &Path) -> bool {
    ["libopenblas.so", "libopenblas.a", "libopenblas.dylib"]
        .iter()
        .any(|f| dir.join(f).exists())
}
