//! CSV: one sample per line, numeric cells, an optional header.

use std::path::Path;

use ::csv::{ByteRecord, ReaderBuilder, Trim};
use ndarray::Array2;

use super::dataset::{Dataset, Origin};
use super::open;
use super::options::{Column, ReadOptions, label_positions};
use crate::error::{Error, Result};

/// A CSV file read row by row: header detection, field counts and cell parsing,
/// with errors that name the line and column.
pub(crate) struct CsvRows {
    path: std::path::PathBuf,
    reader: ::csv::Reader<Box<dyn std::io::Read + Send>>,
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
            .from_reader(open::open(path)?);
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
