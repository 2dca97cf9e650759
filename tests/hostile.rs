//! Hostile input: files whose sizes or lengths are allocation requests from a
//! stranger are refused with an error naming the limit, in small memory.

mod common;

use std::io::Write;

use feedforward::Error;
use feedforward::io::{MAX_CSV_LINE_BYTES, ReadOptions, read_dataset};

/// Held by each test that measures the peak memory, so that no other test's
/// allocations fall inside its measurement.
static MEASURING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Peak resident memory of this process so far, bytes (Linux's VmHWM).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A CSV "line" of 100 MB without a newline (a binary file named .csv, or
/// one that lost its line ends) is refused at the 64 MiB limit, naming the
/// line and the limit, with the peak memory a quarter of a GiB at most
/// (without the limit, a 200 MB line cost 1 GB before its error).
#[test]
fn a_csv_line_without_end_is_refused_at_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("endless.csv");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    file.write_all(b"a,b\n1,2\n").unwrap();
    let chunk = "1.5,".repeat(1 << 18); // 1 MiB
    for _ in 0..100 {
        file.write_all(chunk.as_bytes()).unwrap();
    }
    drop(file);
    let _alone = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let before = peak_rss();
    let err = read_dataset(&path, &ReadOptions::default()).unwrap_err();
    let Error::Parse {
        path: p, message, ..
    } = &err
    else {
        panic!("expected a parse error, got {err:?}")
    };
    assert!(p.ends_with("endless.csv"), "{p}");
    let limit = format!("line 3 runs past {MAX_CSV_LINE_BYTES} bytes without a newline");
    assert!(message.contains(&limit), "{message}");
    if let (Some(before), Some(after)) = (before, peak_rss()) {
        let grown = after.saturating_sub(before);
        // The line's first 64 MiB in the reader's record, whose buffer grows
        // by doubling (measured: 3 × 64 MiB); under 1 GiB in any case.
        assert!(
            grown < 4 * MAX_CSV_LINE_BYTES as u64,
            "peak grew by {grown} bytes"
        );
    }
}

/// A small model file whose architecture is rewritten by `edit` (the header's
/// JSON, re-padded), as a stranger could.
fn model_with(dir: &std::path::Path, edit: impl Fn(&mut serde_json::Value)) -> std::path::PathBuf {
    use feedforward::{Activation, Network};
    let net = Network::builder(2)
        .dense(8, Activation::Relu)
        .dense(3, Activation::Softmax)
        .build()
        .unwrap();
    let path = dir.join("m.safetensors");
    feedforward::io::model::save(&path, &net, &Default::default()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let key = "feedforward.network";
    let text = header["__metadata__"][key].as_str().unwrap().to_string();
    let mut arch: serde_json::Value = serde_json::from_str(&text).unwrap();
    edit(&mut arch);
    header["__metadata__"][key] = arch.to_string().into();
    let mut head = header.to_string().into_bytes();
    head.resize(head.len().next_multiple_of(8), b' ');
    let mut out = (head.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&head);
    out.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(&path, out).unwrap();
    path
}

/// A model whose metadata declares layers far larger than its tensors (2^31
/// units; 2^40 inputs, past what can be counted) is refused before the
/// network is allocated, naming the count and the limit it breaks.
#[test]
fn a_model_declaring_huge_layers_is_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let load = |path: &std::path::Path| match feedforward::io::model::load(path) {
        Err(Error::Parse { message, .. }) => message,
        other => panic!("expected a parse error, got {:?}", other.map(|_| ())),
    };
    let huge = model_with(dir.path(), |a| {
        a["layers"][0]["units"] = (1u64 << 31).into()
    });
    let _alone = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let before = peak_rss();
    let message = load(&huge);
    // 2·2^31 + 2^31 + 3·2^31 + 3 = 6·2^31 + 3 parameters; the file holds 51 floats.
    assert!(
        message.contains("declares 12884901891 parameters") && message.contains("(51 floats)"),
        "{message}"
    );
    if let (Some(before), Some(after)) = (before, peak_rss()) {
        assert!(
            after - before < 64 << 20,
            "peak grew by {} bytes",
            after - before
        );
    }
    let uncountable = model_with(dir.path(), |a| {
        a["inputs"] = (1u64 << 40).into();
        a["layers"][0]["units"] = (1u64 << 40).into();
    });
    let message = load(&uncountable);
    let limit = format!(
        "layer 0: the network would have more than {} parameters",
        feedforward::network::MAX_PARAMETERS
    );
    assert!(message.contains(&limit), "{message}");
}

/// Found by the fuzzer: an NPY version-2 header whose 4-byte length field says
/// 3 GB made the reader allocate it (1.2 GB resident before the fuzzer's limit
/// stopped it). It is now refused at `MAX_NPY_HEADER_BYTES`, naming the field,
/// plain and in an NPZ member, with no growth of the peak.
#[test]
fn an_npy_header_length_past_the_limit_is_refused_before_allocating() {
    use feedforward::io::{MAX_NPY_HEADER_BYTES, read_npy};
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = b"\x93NUMPY\x02\x00".to_vec();
    bytes.extend_from_slice(&0xb100_0074u32.to_le_bytes());
    bytes.extend_from_slice(b"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }\n");
    let npy = dir.path().join("long-header.npy");
    std::fs::write(&npy, &bytes).unwrap();
    let npz = dir.path().join("long-header.npz");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&npz).unwrap());
    zip.start_file("x.npy", zip::write::SimpleFileOptions::default())
        .unwrap();
    zip.write_all(&bytes).unwrap();
    zip.finish().unwrap();

    let _alone = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let before = peak_rss();
    let expected = format!(
        "the header length field says {} bytes, more than the {MAX_NPY_HEADER_BYTES} allowed",
        0xb100_0074u32
    );
    match read_npy(&npy) {
        Err(Error::Parse { path, message, .. }) => {
            assert!(path.ends_with("long-header.npy"), "{path}");
            assert_eq!(message, expected);
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
    match read_dataset(&npz, &ReadOptions::default()) {
        Err(Error::Parse { path, message, .. }) => {
            assert!(path.ends_with("long-header.npz"), "{path}");
            assert_eq!(message, format!("x: {expected}"));
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
    if let (Some(before), Some(after)) = (before, peak_rss()) {
        let grown = after.saturating_sub(before);
        assert!(grown < 64 << 20, "peak grew by {grown} bytes");
    }
}

/// Found by the fuzzer: an IDX header whose first dimension is 0 bounds the
/// data (none) but not the other dimensions, whose product overflowed. It is
/// now refused, naming the header's dimensions.
#[test]
fn idx_dimensions_whose_product_overflows_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("overflow.idx");
    let mut bytes = vec![0, 0, 0x08, 4];
    for d in [0u32, 0x0009_ffef, 0x5600_2b00, 0x0004_0000] {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    std::fs::write(&path, &bytes).unwrap();
    match feedforward::io::read_idx(&path) {
        Err(Error::Parse { path, message, .. }) => {
            assert!(path.ends_with("overflow.idx"), "{path}");
            assert_eq!(
                message,
                "the header's dimensions multiply past the largest size"
            );
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

/// A plain NPY whose shape asks for 1 GiB of floats but holds 8 bytes is
/// refused by the size of the file, before the array is reserved; through gzip
/// (size unknown until read) at most 64 MiB is reserved before the data end.
#[test]
fn an_npy_shape_larger_than_its_file_is_refused_by_the_file_size() {
    use feedforward::io::read_npy;
    let dir = tempfile::tempdir().unwrap();
    let bytes = common::npy("<f4", "(268435456,)", vec![0; 8]);
    let plain = dir.path().join("short.npy");
    std::fs::write(&plain, &bytes).unwrap();
    let gz = dir.path().join("short.npy.gz");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&bytes).unwrap();
    std::fs::write(&gz, encoder.finish().unwrap()).unwrap();
    let expected = "shape [268435456] of <f4 needs 1073741824 bytes of data, found 8";
    for path in [&plain, &gz] {
        match read_npy(path) {
            Err(Error::Parse { message, .. }) => assert_eq!(message, expected),
            other => panic!("{}: expected a parse error, got {other:?}", path.display()),
        }
    }
}

/// Headers that ask for more than the file holds: an IDX of 2^40 bytes, an
/// NPY of 2^40 rows, an NPY with a negative dimension, a safetensors header
/// length of 2^62, and an NPZ member that inflates to 64 MiB behind a header
/// of 12 floats. Each is refused with an error naming the field and what the
/// file really holds, and the peak memory does not grow by what was asked.
#[test]
fn hostile_headers_are_refused_in_small_memory() {
    use feedforward::io::{model, read_idx, read_npy};
    let dir = tempfile::tempdir().unwrap();
    let put = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let npy = |shape: &str, data: &[u8]| common::npy("<f4", shape, data.to_vec());
    let mut idx = vec![0, 0, 0x08, 3];
    for d in [1u32 << 20, 1 << 10, 1 << 10] {
        idx.extend_from_slice(&d.to_be_bytes());
    }
    idx.extend_from_slice(&[0; 16]);
    let idx = put("big.idx", &idx);
    let big_npy = put("big.npy", &npy("(1099511627776, 1)", &[0; 16]));
    let negative = put("negative.npy", &npy("(-5, 2)", &[0; 16]));
    let mut st = (1u64 << 62).to_le_bytes().to_vec();
    st.extend_from_slice(b"{}      ");
    let st = put("big.safetensors", &st);
    let bomb = dir.path().join("bomb.npz");
    {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&bomb).unwrap());
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        zip.start_file("x.npy", options).unwrap();
        zip.write_all(&npy("(3, 4)", &[0; 48])).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            zip.write_all(&zeros).unwrap();
        }
        zip.finish().unwrap();
    }

    let _alone = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let before = peak_rss();
    let message = |result: Result<(), Error>| match result {
        Err(Error::Parse { message, .. }) => message,
        other => panic!("expected a parse error, got {other:?}"),
    };
    assert_eq!(
        message(read_idx(&idx).map(drop)),
        "the header says 1048576 x 1024 x 1024 elements of 1 byte(s) (1099511627776 bytes), but 16 bytes of data follow"
    );
    assert_eq!(
        message(read_npy(&big_npy).map(drop)),
        "shape [1099511627776, 1] of <f4 needs 4398046511104 bytes of data, found 16"
    );
    assert_eq!(
        message(read_npy(&negative).map(drop)),
        "bad shape entry \"-5\""
    );
    assert_eq!(
        message(model::load(&st).map(drop)),
        "not a feedforward model: the safetensors header length field says 4611686018427387904 bytes, but the file holds 8 after it; truncated or foreign file?"
    );
    // The member is read one byte past its shape's data, not inflated whole
    // to count the rest.
    assert_eq!(
        message(read_dataset(&bomb, &ReadOptions::default()).map(drop)),
        "x: shape [3, 4] of <f4 needs 48 bytes of data, found more"
    );
    if let (Some(before), Some(after)) = (before, peak_rss()) {
        let grown = after.saturating_sub(before);
        assert!(grown < 32 << 20, "peak grew by {grown} bytes");
    }
}
