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

use super::open;
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
    let stored = open::plain_len(path)?;
    read_from(&mut open::open(path)?, stored).map_err(|m| Error::parse(path, m))
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
        let array =
            read_from(&mut entry, None).map_err(|m| Error::parse(path, format!("{name}: {m}")))?;
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

/// The longest `.npy` header read (NumPy's own reader stops at 10 000 bytes
/// unless told otherwise): the length field is read before the header, and
/// is not an allocation to make on a stranger's word.
pub const MAX_HEADER_BYTES: usize = 1 << 20;

fn header_too_long(len: usize) -> String {
    format!("the header length field says {len} bytes, more than the {MAX_HEADER_BYTES} allowed")
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
    if len > MAX_HEADER_BYTES {
        return Err(header_too_long(len));
    }
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

/// Bytes of the file converted per read while streaming its elements.
const CHUNK: usize = 1 << 20;

/// Elements reserved up front (64 MiB of `f32`) when the size of the data is
/// not known before it is read (gzip, zip members); past it the array grows as
/// the data arrive, so a header's shape alone never allocates more.
const RESERVE_UNKNOWN: usize = 1 << 24;

/// Reads one `.npy` array from `r`, converting its elements a chunk at a time as
/// they arrive, so that no copy of the file's bytes is held beside the result.
/// `stored` is the length of the whole file when it is known (a plain file):
/// a shape that needs more data than that is refused before allocating.
fn read_from(r: &mut dyn Read, stored: Option<u64>) -> std::result::Result<NpyArray, String> {
    let io = |e: std::io::Error| format!("cannot read: {e}");
    let head = read_header_bytes(r)?;
    let Header {
        order,
        kind,
        size,
        fortran,
        shape,
        ..
    } = parse_header(&head)?;
    let descr = format!("{order}{kind}{size}");
    let big = order == '>';
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("shape too large")?;
    let needed = count.checked_mul(size).ok_or("shape too large")?;
    let convert: fn(&[u8], bool, &mut Vec<f32>) = match (kind, size) {
        ('f', 4) => convert::<f32, 4>,
        ('f', 8) => convert::<f64, 8>,
        ('i', 1) => convert::<i8, 1>,
        ('i', 2) => convert::<i16, 2>,
        ('i', 4) => convert::<i32, 4>,
        ('i', 8) => convert::<i64, 8>,
        ('u', 1) | ('b', 1) => convert::<u8, 1>,
        ('u', 2) => convert::<u16, 2>,
        ('u', 4) => convert::<u32, 4>,
        ('u', 8) => convert::<u64, 8>,
        _ => return Err(format!("unsupported element type {descr:?}")),
    };
    let short = |found: usize| {
        format!("shape {shape:?} of {descr} needs {needed} bytes of data, found {found}")
    };
    let available = stored.map(|len| len.saturating_sub(head.len() as u64));
    if let Some(available) = available
        && needed as u64 > available
    {
        return Err(short(available as usize));
    }
    let mut values = Vec::new();
    let reserve = if available.is_some() {
        count
    } else {
        count.min(RESERVE_UNKNOWN)
    };
    values
        .try_reserve_exact(reserve)
        .map_err(|_| format!("shape {shape:?} is too large to hold in memory"))?;
    let mut buf = vec![0u8; CHUNK / size * size];
    let mut done = 0;
    while done < needed {
        let want = buf.len().min(needed - done);
        let got = read_full(r, &mut buf[..want]).map_err(io)?;
        convert(&buf[..got / size * size], big, &mut values);
        done += got;
        if got < want {
            return Err(short(done));
        }
    }
    // Data past the shape. A plain file's size says how much; a stream (gzip,
    // a zip member) is read one byte further and no more, so that a member
    // inflating to gigabytes behind a small shape costs no time either.
    match available {
        Some(available) if available > needed as u64 => return Err(short(available as usize)),
        Some(_) => {}
        None => {
            if read_full(r, &mut [0u8; 1]).map_err(io)? > 0 {
                return Err(format!(
                    "shape {shape:?} of {descr} needs {needed} bytes of data, found more"
                ));
            }
        }
    }
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

/// The magic, the version, the header's length, then the header itself.
fn read_header_bytes(r: &mut dyn Read) -> std::result::Result<Vec<u8>, String> {
    let io = |e: std::io::Error| format!("cannot read: {e}");
    let mut head = vec![0u8; 10];
    if read_full(r, &mut head).map_err(io)? < head.len() || !head.starts_with(b"\x93NUMPY") {
        return Err("not a NumPy .npy file (bad magic)".into());
    }
    if matches!(head[6], 2 | 3) {
        head.resize(12, 0);
        if read_full(r, &mut head[10..]).map_err(io)? < 2 {
            return Err("truncated header".into());
        }
    }
    let len = match head[6] {
        1 => u16::from_le_bytes([head[8], head[9]]) as usize,
        2 | 3 => u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as usize,
        v => return Err(format!("unsupported .npy version {v}")),
    };
    if len > MAX_HEADER_BYTES {
        return Err(header_too_long(len));
    }
    let start = head.len();
    head.resize(start + len, 0);
    if read_full(r, &mut head[start..]).map_err(io)? < len {
        return Err("truncated header".into());
    }
    Ok(head)
}

/// Appends the elements in `bytes` (of type `T`, `N` bytes each, big-endian when
/// `big`) to `out` as `f32`.
fn convert<T: Element<N>, const N: usize>(bytes: &[u8], big: bool, out: &mut Vec<f32>) {
    out.extend(bytes.chunks_exact(N).map(|c| {
        let b: [u8; N] = c.try_into().expect("N bytes");
        if big { T::from_be(b) } else { T::from_le(b) }.to_f32()
    }));
}

/// An element type of `N` bytes that NumPy stores and `f32` can hold (rounded).
trait Element<const N: usize>: Sized {
    fn from_le(b: [u8; N]) -> Self;
    fn from_be(b: [u8; N]) -> Self;
    fn to_f32(self) -> f32;
}

macro_rules! element {
    ($($t:ty),*) => {$(
        impl Element<{ size_of::<$t>() }> for $t {
            fn from_le(b: [u8; size_of::<$t>()]) -> Self {
                <$t>::from_le_bytes(b)
            }
            fn from_be(b: [u8; size_of::<$t>()]) -> Self {
                <$t>::from_be_bytes(b)
            }
            fn to_f32(self) -> f32 {
                self as f32
            }
        }
    )*};
}
element!(f32, f64, i8, i16, i32, i64, u8, u16, u32, u64);

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
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

    /// Reads `bytes` as a stream of unknown length and as a file of known
    /// length; both must give the same answer (but for data past the shape,
    /// which only the file can count).
    fn parse(bytes: &[u8]) -> std::result::Result<NpyArray, String> {
        let streamed = read_from(&mut &bytes[..], None);
        let stored = read_from(&mut &bytes[..], Some(bytes.len() as u64));
        match (&streamed, &stored) {
            (Ok(a), Ok(b)) => assert_eq!((&a.shape, &a.data), (&b.shape, &b.data)),
            (Err(a), Err(b)) => {
                let counted = b.rsplit_once(", found ").map(|(head, _)| head);
                assert!(
                    a == b || a.strip_suffix(", found more") == counted,
                    "streamed: {a}; stored: {b}"
                );
            }
            _ => panic!("streamed and stored disagree: {streamed:?} / {stored:?}"),
        }
        stored
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
        let e = parse(&npy("<f4", "(2, 3)", false, &[0; 30])).unwrap_err();
        assert!(e.contains("needs 24 bytes of data, found 30"), "{e}");
        let e = read_from(&mut &npy("<f4", "(2, 3)", false, &[0; 25])[..], None).unwrap_err();
        assert!(e.ends_with("needs 24 bytes of data, found more"), "{e}");
        let e = parse(&b"\x93NUMPY\x01\x00\x40\x00{'descr'"[..]).unwrap_err();
        assert!(e.contains("truncated header"), "{e}");
    }

    #[test]
    fn reads_gzipped_files() {
        use std::io::Write;
        let values: Vec<u8> = [1.5f32, -2.0, 4.25]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&npy("<f4", "(3,)", false, &values)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npy.gz");
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        assert_eq!(read_npy(&path).unwrap().data, vec![1.5, -2.0, 4.25]);
    }

    #[test]
    fn reads_arrays_larger_than_one_chunk() {
        // Several chunks of the reader, the last one partial, in both byte orders.
        let n = CHUNK / 8 * 3 + 5;
        let values: Vec<f64> = (0..n).map(|i| i as f64 * 0.5 - 7.0).collect();
        let expected: Vec<f32> = values.iter().map(|&v| v as f32).collect();
        let le: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let a = parse(&npy("<f8", &format!("({n},)"), false, &le)).unwrap();
        assert_eq!(a.data, expected);
        let be: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
        let a = parse(&npy(">f8", &format!("({n},)"), false, &be)).unwrap();
        assert_eq!(a.data, expected);
        let e = parse(&npy("<f8", &format!("({},)", n + 1), false, &le)).unwrap_err();
        assert!(e.contains(&format!("found {}", le.len())), "{e}");
    }
}
