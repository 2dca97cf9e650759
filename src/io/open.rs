//! Opening files: errors that name the path, and transparent gzip.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use flate2::bufread::MultiGzDecoder;

use crate::error::{Error, Result};

/// Opens `path` for reading, decompressing it when it starts with the gzip magic.
pub(crate) fn open(path: &Path) -> Result<Box<dyn Read + Send>> {
    let file = File::open(path).map_err(|e| Error::io(path, &e))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let head = reader.fill_buf().map_err(|e| Error::io(path, &e))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(MultiGzDecoder::new(reader)))
    } else {
        Ok(Box::new(reader))
    }
}

/// The length of `path` when it is stored plain (not gzip): then the bytes a
/// header promises can be checked against it before anything is allocated.
pub(crate) fn plain_len(path: &Path) -> Result<Option<u64>> {
    if peek(path, 2)?.starts_with(&[0x1f, 0x8b]) {
        return Ok(None);
    }
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, &e))?;
    Ok(Some(meta.len()))
}

/// The whole (decompressed) content of `path`.
pub(crate) fn read_all(path: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    open(path)?
        .read_to_end(&mut bytes)
        .map_err(|e| Error::parse(path, format!("cannot read: {e}")))?;
    Ok(bytes)
}

/// Up to `n` first bytes of `path` as stored (not decompressed).
pub(crate) fn peek(path: &Path, n: usize) -> Result<Vec<u8>> {
    let file = File::open(path).map_err(|e| Error::io(path, &e))?;
    let mut head = Vec::with_capacity(n);
    file.take(n as u64)
        .read_to_end(&mut head)
        .map_err(|e| Error::io(path, &e))?;
    Ok(head)
}
