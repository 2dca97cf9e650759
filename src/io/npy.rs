//! NumPy's `.npy` arrays and `.npz` archives of them.
//!
//! An `.npy` file is the magic `\x93NUMPY`, a version, a header length, a header
//! that is a Python dict literal (`{'descr': '<f4', 'fortran_order': False,
//! 'shape': (3, 4), }`), then the elements. Floating-point, integer and boolean
//! element types of either byte order are read, and converted to `f32`.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use ndarray::Array2;

use super::source;
use crate::error::{Error, Result};

/// An array read from NumPy's format, converted to `f32`, in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// The dimensions.
    pub shape: Vec<usize>,
    /// The elements, row-major.
    pub data: Vec<f32>,
}

impl NpyArray {
    /// The array as a matrix with one sample per row: a vector becomes one
    /// column, and dimensions after the first are flattened.
    ///
    /// # Errors
    /// [`Error::Parse`] for a zero-dimensional array.
    pub fn into_matrix(self, path: &Path) -> Result<Array2<f32>> {
        let Some((&rows, rest)) = self.shape.split_first() else {
            return Err(Error::parse(path, "a scalar array cannot hold samples"));
        };
        let cols = if rest.is_empty() {
            1
        } else {
            rest.iter().product()
        };
        Array2::from_shape_vec((rows, cols), self.data)
            .map_err(|e| Error::parse(path, e.to_string()))
    }
}

/// Reads an `.npy` file.
///
/// # Errors
/// [`Error::Io`] when it cannot be opened; [`Error::Parse`] for a foreign file,
/// an unsupported element type, or data shorter or longer than its shape.
pub fn read_npy(path: &Path) -> Result<NpyArray> {
    parse(&source::read_all(path)?).map_err(|m| Error::parse(path, m))
}

/// Reads every array of an `.npz` archive, with its name (without `.npy`).
///
/// # Errors
/// As [`read_npy`], and [`Error::Parse`] for a file that is not a zip archive.
pub fn read_npz(path: &Path) -> Result<Vec<(String, NpyArray)>> {
    let file = File::open(path).map_err(|e| Error::io(path, &e))?;
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|e| Error::parse(path, format!("not an NPZ (zip) archive: {e}")))?;
    let mut arrays = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| Error::parse(path, format!("entry {i}: {e}")))?;
        let name = entry
            .name()
            .map_err(|e| Error::parse(path, format!("entry {i}: {e}")))?
            .trim_end_matches(".npy")
            .to_string();
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| Error::parse(path, format!("{name}: {e}")))?;
        let array = parse(&bytes).map_err(|m| Error::parse(path, format!("{name}: {m}")))?;
        arrays.push((name, array));
    }
    Ok(arrays)
}

/// The header of an `.npy` file: element type, order, shape, where data start.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Header {
    /// Byte order `<`, `>`, `|` or `=`.
    pub order: char,
    /// Kind: `f`, `i`, `u` or `b`.
    pub kind: char,
    /// Bytes per element.
    pub size: usize,
    /// Column-major data.
    pub fortran: bool,
    /// The dimensions.
    pub shape: Vec<usize>,
    /// Offset of the first element.
    pub data_offset: usize,
}

/// Parses the header at the start of `bytes`.
pub(crate) fn parse_header(bytes: &[u8]) -> std::result::Result<Header, String> {
    if !bytes.starts_with(b"\x93NUMPY") || bytes.len() < 10 {
        return Err("not a NumPy .npy file (bad magic)".into());
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = bytes.get(start..start + len).ok_or("truncated header")?;
    let header = std::str::from_utf8(header).map_err(|_| "header is not text")?;
    let descr = dict_value(header, "descr").ok_or("header has no 'descr'")?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let fortran = dict_value(header, "fortran_order").ok_or("header has no 'fortran_order'")?;
    let fortran = match fortran {
        "True" => true,
        "False" => false,
        other => return Err(format!("bad fortran_order {other:?}")),
    };
    let shape = dict_value(header, "shape").ok_or("header has no 'shape'")?;
    let shape: Vec<usize> = shape
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad shape entry {s:?}"))
        })
        .collect::<std::result::Result<_, _>>()?;
    let mut chars = descr.chars();
    let order = chars.next().ok_or("empty descr")?;
    let kind = chars.next().ok_or("short descr")?;
    let size: usize = chars
        .as_str()
        .parse()
        .map_err(|_| format!("unsupported descr {descr:?}"))?;
    Ok(Header {
        order,
        kind,
        size,
        fortran,
        shape,
        data_offset: start + len,
    })
}

/// Parses the bytes of one `.npy` file.
fn parse(bytes: &[u8]) -> std::result::Result<NpyArray, String> {
    let Header {
        order,
        kind,
        size,
        fortran,
        shape,
        data_offset,
    } = parse_header(bytes)?;
    let descr = format!("{order}{kind}{size}");
    let big = order == '>';
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("shape too large")?;
    let data = &bytes[data_offset..];
    if Some(data.len()) != count.checked_mul(size) {
        return Err(format!(
            "shape {shape:?} of {descr} needs {} bytes of data, found {}",
            count.saturating_mul(size),
            data.len()
        ));
    }
    macro_rules! read {
        ($t:ty) => {
            data.chunks_exact(size)
                .map(|c| {
                    let b = c.try_into().expect("element size");
                    (if big {
                        <$t>::from_be_bytes(b)
                    } else {
                        <$t>::from_le_bytes(b)
                    }) as f32
                })
                .collect::<Vec<f32>>()
        };
    }
    let mut values = match (kind, size) {
        ('f', 4) => read!(f32),
        ('f', 8) => read!(f64),
        ('i', 1) => read!(i8),
        ('i', 2) => read!(i16),
        ('i', 4) => read!(i32),
        ('i', 8) => read!(i64),
        ('u', 1) | ('b', 1) => read!(u8),
        ('u', 2) => read!(u16),
        ('u', 4) => read!(u32),
        ('u', 8) => read!(u64),
        _ => return Err(format!("unsupported element type {descr:?}")),
    };
    if fortran && shape.len() >= 2 {
        // Column-major: reverse the axes' order to get row-major.
        let reversed: Vec<usize> = shape.iter().rev().copied().collect();
        let a = ndarray::ArrayD::from_shape_vec(reversed, values).map_err(|e| e.to_string())?;
        values = a.reversed_axes().iter().copied().collect();
    }
    Ok(NpyArray {
        shape,
        data: values,
    })
}

/// The text of `'key': value` in a Python dict literal (a tuple stays whole).
fn dict_value<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = header[at + key.len() + 2..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else {
        rest.find([',', '}'])?
    };
    Some(rest[..end].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, shape: &str, fortran: bool, data: &[u8]) -> Vec<u8> {
        let header = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}\n",
            if fortran { "True" } else { "False" }
        );
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn reads_f32_i64_and_fortran_order() {
        let f: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let a = parse(&npy("<f4", "(2, 3)", false, &f)).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.data, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        // The same bytes in Fortran order are the columns: [[1, 3, 5], [2, 4, 6]].
        let a = parse(&npy("<f4", "(2, 3)", true, &f)).unwrap();
        assert_eq!(a.data, vec![1.0, 3.0, 5.0, 2.0, 4.0, 6.0]);
        let i: Vec<u8> = [7i64, -1].iter().flat_map(|v| v.to_le_bytes()).collect();
        let a = parse(&npy("<i8", "(2,)", false, &i)).unwrap();
        assert_eq!((a.shape, a.data), (vec![2], vec![7.0, -1.0]));
        let b: Vec<u8> = [3.5f64].iter().flat_map(|v| v.to_be_bytes()).collect();
        assert_eq!(
            parse(&npy(">f8", "(1,)", false, &b)).unwrap().data,
            vec![3.5]
        );
    }

    #[test]
    fn rejects_short_data_and_foreign_types() {
        let e = parse(&npy("<f4", "(2, 3)", false, &[0; 20])).unwrap_err();
        assert!(e.contains("needs 24 bytes"), "{e}");
        let e = parse(&npy("<c8", "(1,)", false, &[0; 8])).unwrap_err();
        assert!(e.contains("unsupported"), "{e}");
        assert!(parse(b"PK\x03\x04 not npy").unwrap_err().contains("magic"));
    }
}
