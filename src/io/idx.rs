//! IDX, the format of the MNIST files: a magic number giving the element type and
//! the number of dimensions, the dimensions as big-endian `u32`, then the data.

use std::path::{Path, PathBuf};

use ndarray::Array2;

use super::open;
use crate::error::{Error, Result};

/// Reads an IDX file (plain or gzip) as `n × (product of the other dimensions)`.
///
/// # Errors
/// [`Error::Io`] when it cannot be opened; [`Error::Parse`] for a bad magic
/// number or a header whose dimensions disagree with the size of the data.
pub fn read_idx(path: &Path) -> Result<Array2<f32>> {
    let bytes = open::read_all(path)?;
    let bad = |m: String| Error::parse(path, m);
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad(
            "not an IDX file (the first two bytes must be zero)".into()
        ));
    }
    let (ty, ndim) = (bytes[2], bytes[3] as usize);
    let size = match ty {
        0x08 | 0x09 => 1,
        0x0b => 2,
        0x0c | 0x0d => 4,
        0x0e => 8,
        _ => return Err(bad(format!("unknown IDX element type 0x{ty:02x}"))),
    };
    if ndim == 0 {
        return Err(bad("an IDX file needs at least one dimension".into()));
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(bad(format!(
            "truncated header: {ndim} dimensions need {header} bytes, the file has {}",
            bytes.len()
        )));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|d| u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize)
        .collect();
    let count = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let expected = count.and_then(|c| c.checked_mul(size));
    let data = &bytes[header..];
    if expected != Some(data.len()) {
        let shape: Vec<String> = dims.iter().map(usize::to_string).collect();
        return Err(bad(format!(
            "the header says {} elements of {size} byte(s) ({} bytes), but {} bytes of data follow",
            shape.join(" x "),
            expected.map_or("too many".to_string(), |e| e.to_string()),
            data.len()
        )));
    }
    let values: Vec<f32> = match ty {
        0x08 => data.iter().map(|&b| f32::from(b)).collect(),
        0x09 => data.iter().map(|&b| f32::from(b as i8)).collect(),
        0x0b => data
            .chunks_exact(2)
            .map(|c| f32::from(i16::from_be_bytes([c[0], c[1]])))
            .collect(),
        0x0c => data
            .chunks_exact(4)
            .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]) as f32)
            .collect(),
        0x0d => data
            .chunks_exact(4)
            .map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        _ => data
            .chunks_exact(8)
            .map(|c| f64::from_be_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
    };
    let rows = dims[0];
    // Checked: with a first dimension of 0 the others are not bounded by the
    // data's size, and their product can overflow.
    let cols = dims[1..]
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad("the header's dimensions multiply past the largest size".into()))?;
    Array2::from_shape_vec((rows, cols), values).map_err(|e| bad(e.to_string()))
}

/// The labels file beside an MNIST-style images file, if it exists:
/// `train-images-idx3-ubyte.gz` → `train-labels-idx1-ubyte.gz`.
pub(crate) fn guess_labels(images: &Path) -> Option<PathBuf> {
    let name = images.file_name()?.to_str()?;
    if !name.contains("images") {
        return None;
    }
    let guess = images.with_file_name(name.replace("images", "labels").replace("idx3", "idx1"));
    guess.exists().then_some(guess)
}
