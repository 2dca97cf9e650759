//! CSV: one sample per line, numeric cells, an optional header.

use std::path::Path;

use ::csv::{ByteRecord, ReaderBuilder, Trim};
use ndarray::Array2;

use super::dataset::{Dataset, Origin};
use super::open;
use super::options::{Column, ReadOptions, label_positions};
use crate::error::{Error, Result};

/// The longest CSV line read (64 MiB): a million features of 60 characters
/// each. A longer one (a file that is not CSV, or has lost its newlines) is
/// refused when it reaches this length, before the reader's buffers grow to
/// hold all of it.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// A reader that fails once a line runs past `limit` bytes without a newline.
pub(crate) struct LineLimit<R> {
    inner: R,
    limit: usize,
    /// Bytes since the last newline.
    run: usize,
    /// Newlines seen, so the line that is too long can be named.
    lines: u64,
}

impl<R> LineLimit<R> {
    pub(crate) fn new(inner: R, limit: usize) -> Self {
        LineLimit {
            inner,
            limit,
            run: 0,
            lines: 0,
        }
    }
}

impl<R: std::io::Read> std::io::Read for LineLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let got = &buf[..n];
        let too_long = match got.iter().position(|&b| b == b'\n') {
            // The line this chunk ends is too long, or (below) the one it
            // leaves open.
            Some(first) if self.run + first > self.limit => true,
            Some(_) => {
                let last = got.iter().rposition(|&b| b == b'\n').unwrap_or(0);
                self.lines += got.iter().filter(|&&b| b == b'\n').count() as u64;
                self.run = n - last - 1;
                self.run > self.limit
            }
            None => {
                self.run += n;
                self.run > self.limit
            }
        };
        if too_long {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "line {} runs past {} bytes without a newline (the longest CSV \
                     line read); is this a CSV file?",
                    self.lines + 1,
                    self.limit
                ),
            ));
        }
        Ok(n)
    }
}

/// A CSV file read row by row: header detection, field counts and cell parsing,
/// with errors that name the line and column.
pub(crate) struct CsvRows {
    path: std::path::PathBuf,
    reader: ::csv::Reader<LineLimit<Box<dyn std::io::Read + Send>>>,
    record: ByteRecord,
    header_option: Option<bool>,
    allow_non_finite: bool,
    /// Header names, once the first row has been read (if it was a header).
    pub header: Option<Vec<String>>,
    /// Fields per row and the line that set it, once known.
    pub width: Option<(usize, u64)>,
}

impl CsvRows {
    /// Opens `path` (gzip is detected) for reading with `options`.
    pub(crate) fn open(path: &Path, options: &ReadOptions) -> Result<CsvRows> {
        let reader = ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(Trim::All)
            .delimiter(options.delimiter)
            .comment(Some(b'#'))
            .from_reader(LineLimit::new(open::open(path)?, MAX_LINE_BYTES));
        Ok(CsvRows {
            path: path.to_path_buf(),
            reader,
            record: ByteRecord::new(),
            header_option: options.header,
            allow_non_finite: options.allow_non_finite,
            header: None,
            width: None,
        })
    }

    fn at(&self, line: u64, column: Option<usize>, message: String) -> Error {
        Error::Parse {
            path: self.path.display().to_string(),
            line: Some(line),
            column,
            message,
        }
    }

    /// Appends the next data row's cells to `out`; returns its line, or `None` at
    /// the end of the file.
    pub(crate) fn next_row(&mut self, out: &mut Vec<f32>) -> Result<Option<u64>> {
        loop {
            match self.reader.read_byte_record(&mut self.record) {
                Ok(true) => {}
                Ok(false) => return Ok(None),
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    return Err(self.at(line, None, format!("cannot read: {e}")));
                }
            }
            let record = &self.record;
            let line = record.position().map_or(0, |p| p.line());
            if record.len() == 1 && record[0].is_empty() {
                continue; // a blank line
            }
            if self.width.is_none() && self.header.is_none() {
                let is_header = self
                    .header_option
                    .unwrap_or_else(|| record.iter().any(|f| !f.is_empty() && parse(f).is_none()));
                if is_header {
                    self.header = Some(
                        record
                            .iter()
                            .map(|f| String::from_utf8_lossy(f).into_owned())
                            .collect(),
                    );
                    self.width = Some((record.len(), line));
                    continue;
                }
            }
            match self.width {
                None => self.width = Some((record.len(), line)),
                Some((w, first)) if w != record.len() => {
                    let n = record.len();
                    return Err(self.at(
                        line,
                        None,
                        format!("expected {w} fields (as on line {first}), found {n}"),
                    ));
                }
                Some(_) => {}
            }
            for j in 0..self.record.len() {
                let field = &self.record[j];
                let v = if field.is_empty() {
                    if !self.allow_non_finite {
                        return Err(self.at(
                            line,
                            Some(j + 1),
                            "empty cell; fill it or pass --allow-nan to drop such rows".into(),
                        ));
                    }
                    f32::NAN
                } else {
                    match parse(field) {
                        Some(v) => v,
                        None => {
                            let text = String::from_utf8_lossy(field).into_owned();
                            return Err(self.at(
                                line,
                                Some(j + 1),
                                format!("not a number: {text:?}"),
                            ));
                        }
                    }
                };
                out.push(v);
            }
            return Ok(Some(line));
        }
    }

    /// The target and feature columns for `label`, once the first row is read.
    pub(crate) fn columns(&self, label: &[Column]) -> Result<(Vec<usize>, Vec<usize>)> {
        let Some((cols, _)) = self.width else {
            return Err(Error::parse(&self.path, "the file is empty"));
        };
        let targets = label_positions(&self.path, label, self.header.as_deref(), cols)?;
        let features: Vec<usize> = (0..cols).filter(|c| !targets.contains(c)).collect();
        if features.is_empty() {
            return Err(Error::parse(
                &self.path,
                "no feature columns remain after the label columns",
            ));
        }
        Ok((targets, features))
    }
}

/// Reads a CSV file into features and the target columns of `options.label`.
pub(crate) fn read(path: &Path, options: &ReadOptions) -> Result<Dataset> {
    let mut rows = CsvRows::open(path, options)?;
    let mut values: Vec<f32> = Vec::new();
    let mut lines: Vec<u64> = Vec::new();
    while let Some(line) = rows.next_row(&mut values)? {
        lines.push(line);
    }
    let (target_columns, feature_columns) = rows.columns(&options.label)?;
    if lines.is_empty() {
        return Err(Error::parse(path, "the file has a header but no data rows"));
    }
    let cols = rows.width.map_or(0, |(w, _)| w);
    let table = Array2::from_shape_vec((lines.len(), cols), values).expect("one value per cell");
    let features = table.select(ndarray::Axis(1), &feature_columns);
    let targets = table.select(ndarray::Axis(1), &target_columns);
    let feature_names = rows
        .header
        .map(|h| feature_columns.iter().map(|&c| h[c].clone()).collect())
        .unwrap_or_default();
    Ok(Dataset {
        features,
        targets,
        origin: Origin {
            path: path.to_path_buf(),
            targets_path: path.to_path_buf(),
            lines: Some(lines),
            feature_columns,
            target_columns,
            feature_names,
        },
    })
}

/// A cell as a number (`nan` and `inf` included: they are judged later).
fn parse(field: &[u8]) -> Option<f32> {
    std::str::from_utf8(field).ok()?.parse::<f32>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Reads `text` through a limit of 4 bytes, `chunk` bytes at a time.
    fn through_limit(text: &[u8], chunk: usize) -> std::io::Result<Vec<u8>> {
        let mut reader = LineLimit::new(text, 4);
        let (mut out, mut buf) = (Vec::new(), vec![0; chunk]);
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn lines_up_to_the_limit_pass_and_longer_ones_fail_naming_the_line() {
        for chunk in [1, 3, 64] {
            let fine = b"1234\n12\n\n1234";
            assert_eq!(through_limit(fine, chunk).unwrap(), fine, "chunk {chunk}");
            for (text, line) in [
                (&b"12345\n1"[..], 1),
                (b"1\n2\n123456789", 3),
                (b"1234\n12345", 2),
            ] {
                let err = through_limit(text, chunk).unwrap_err();
                assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
                let expected = format!("line {line} runs past 4 bytes");
                assert!(
                    err.to_string().starts_with(&expected),
                    "{err} (chunk {chunk})"
                );
            }
        }
    }
}
