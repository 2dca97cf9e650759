//! CSV: one sample per line, numeric cells, an optional header.

use std::path::Path;

use ::csv::{ByteRecord, ReaderBuilder, Trim};
use ndarray::Array2;

use super::dataset::{Dataset, Origin};
use super::{Column, ReadOptions, source};
use crate::error::{Error, Result};

/// Reads a CSV file into features and the target columns of `options.label`.
pub(crate) fn read(path: &Path, options: &ReadOptions) -> Result<Dataset> {
    let mut reader = ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(Trim::All)
        .delimiter(options.delimiter)
        .comment(Some(b'#'))
        .from_reader(source::open(path)?);
    let at = |line: u64, column: Option<usize>, message: String| Error::Parse {
        path: path.display().to_string(),
        line: Some(line),
        column,
        message,
    };

    let mut record = ByteRecord::new();
    let mut header: Option<Vec<String>> = None;
    let mut width: Option<(usize, u64)> = None;
    let mut values: Vec<f32> = Vec::new();
    let mut lines: Vec<u64> = Vec::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                return Err(at(line, None, format!("cannot read: {e}")));
            }
        }
        let line = record.position().map_or(0, |p| p.line());
        if record.len() == 1 && record[0].is_empty() {
            continue; // a blank line
        }
        if width.is_none() && header.is_none() {
            let is_header = options
                .header
                .unwrap_or_else(|| record.iter().any(|f| !f.is_empty() && parse(f).is_none()));
            if is_header {
                header = Some(
                    record
                        .iter()
                        .map(|f| String::from_utf8_lossy(f).into_owned())
                        .collect(),
                );
                width = Some((record.len(), line));
                continue;
            }
        }
        match width {
            None => width = Some((record.len(), line)),
            Some((w, first)) if w != record.len() => {
                return Err(at(
                    line,
                    None,
                    format!(
                        "expected {w} fields (as on line {first}), found {}",
                        record.len()
                    ),
                ));
            }
            Some(_) => {}
        }
        for (j, field) in record.iter().enumerate() {
            let v = if field.is_empty() {
                if !options.allow_non_finite {
                    return Err(at(
                        line,
                        Some(j + 1),
                        "empty cell; fill it or pass --allow-nan to drop such rows".into(),
                    ));
                }
                f32::NAN
            } else {
                parse(field).ok_or_else(|| {
                    at(
                        line,
                        Some(j + 1),
                        format!("not a number: {:?}", String::from_utf8_lossy(field)),
                    )
                })?
            };
            values.push(v);
        }
        lines.push(line);
    }
    let Some((cols, _)) = width else {
        return Err(Error::parse(path, "the file is empty"));
    };
    if lines.is_empty() {
        return Err(Error::parse(path, "the file has a header but no data rows"));
    }
    let target_columns = resolve(path, &options.label, header.as_deref(), cols)?;
    let feature_columns: Vec<usize> = (0..cols).filter(|c| !target_columns.contains(c)).collect();
    if feature_columns.is_empty() {
        return Err(Error::parse(
            path,
            "no feature columns remain after the label columns",
        ));
    }
    let rows = lines.len();
    let table = Array2::from_shape_vec((rows, cols), values).expect("one value per cell");
    let features = table.select(ndarray::Axis(1), &feature_columns);
    let targets = table.select(ndarray::Axis(1), &target_columns);
    let feature_names = header
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

/// The label columns' positions.
fn resolve(
    path: &Path,
    label: &[Column],
    header: Option<&[String]>,
    cols: usize,
) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(label.len());
    for column in label {
        let index = match column {
            Column::Index(i) if *i < cols => *i,
            Column::Index(i) => {
                return Err(Error::parse(
                    path,
                    format!(
                        "label column {i} does not exist: the file has {cols} columns (0 to {})",
                        cols - 1
                    ),
                ));
            }
            Column::Name(name) => {
                let Some(names) = header else {
                    return Err(Error::parse(
                        path,
                        format!(
                            "label column {name:?} is given by name, but the file has no header"
                        ),
                    ));
                };
                names.iter().position(|n| n == name).ok_or_else(|| {
                    Error::parse(
                        path,
                        format!(
                            "no column named {name:?}; the header has {}",
                            names.join(", ")
                        ),
                    )
                })?
            }
        };
        if !out.contains(&index) {
            out.push(index);
        }
    }
    Ok(out)
}
