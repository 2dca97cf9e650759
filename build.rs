//! Build-time check for the `openblas` feature: make sure a system OpenBLAS can
//! be linked, and say exactly what to install when it cannot (instead of an
//! opaque linker error later).
//!
//! The default backend needs nothing here: its kernels for every instruction
//! set are compiled into each build and chosen at run time.

use std::env;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=OPENBLAS_LIB_DIR");
    println!("cargo::rerun-if-env-changed=LIBRARY_PATH");
    println!("cargo::rustc-check-cfg=cfg(docsrs)");

    if env::var_os("CARGO_FEATURE_OPENBLAS").is_some() {
        check_openblas();
    }
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
