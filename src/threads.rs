//! One thread setting for everything: rayon's pool and the BLAS library.
//!
//! The crate runs its parallel kernels on the *current* rayon pool, and the BLAS
//! backend sets OpenBLAS's thread count to that pool's size before each product.
//! So either call [`set_threads`] once at start-up, or run the work inside
//! `rayon::ThreadPool::install` of a pool of the size you want.

use crate::error::{Error, Result};

/// Makes rayon's global pool (and with it BLAS) use `threads` threads.
///
/// Must be called before anything else uses rayon's global pool; calling it again
/// with the same count is fine.
///
/// # Errors
/// [`Error::Config`] for 0 threads; [`Error::Backend`] when the global pool
/// already exists with a different size.
pub fn set_threads(threads: usize) -> Result<()> {
    if threads == 0 {
        return Err(Error::Config("thread count must be at least 1".into()));
    }
    match rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
    {
        Ok(()) => Ok(()),
        Err(_) if rayon::current_num_threads() == threads => Ok(()),
        Err(e) => Err(Error::Backend(format!(
            "cannot set {threads} threads: the global thread pool already runs {} ({e})",
            rayon::current_num_threads()
        ))),
    }
}

/// The number of threads kernels started from here would use.
pub fn threads() -> usize {
    rayon::current_num_threads()
}
