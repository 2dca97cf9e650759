//! Hostile input: files whose sizes or lengths are allocation requests from a
//! stranger are refused with an error naming the limit, in small memory.

use std::io::Write;

use feedforward::Error;
use feedforward::io::{MAX_CSV_LINE_BYTES, ReadOptions, read_dataset};

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
