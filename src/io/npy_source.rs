//! [`NpySource`]: a memory-mapped `.npy` feature file and its targets, read a
//! batch at a time.

use std::path::Path;

use memmap2::Mmap;
use ndarray::Array1;

use super::npy::{self, read_npy};
use crate::error::{Error, Result};
use crate::source::{Batch, DataSource, TargetKind};
use crate::targets::{OwnedTargets, class_index};

/// A memory-mapped `.npy` feature file (little-endian `float32`, C order) and its
/// targets, as a [`DataSource`]: only the rows of the current batch are copied.
#[derive(Debug)]
pub struct NpySource {
    map: Mmap,
    offset: usize,
    rows: usize,
    cols: usize,
    targets: OwnedTargets,
}

impl NpySource {
    /// Maps `features` and reads `targets` (an `.npy` of class indices when
    /// `classes` is true, else one row of values per sample).
    ///
    /// # Errors
    /// [`Error::Io`] for files that cannot be opened; [`Error::Parse`] for a
    /// feature file that is not `<f4` in C order (convert it with
    /// `x.astype('<f4')`), a size that disagrees with its header, or targets that
    /// are not class indices or do not have one row per sample.
    pub fn open(features: &Path, targets: &Path, classes: bool) -> Result<NpySource> {
        let file = std::fs::File::open(features).map_err(|e| Error::io(features, &e))?;
        // SAFETY: the map is read-only; a file truncated by another process while
        // mapped is outside what this library can guard against.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(features, &e))?;
        let h = npy::parse_header(&map).map_err(|m| Error::parse(features, m))?;
        let little = h.order == '<' || (h.order == '=' && cfg!(target_endian = "little"));
        if h.kind != 'f' || h.size != 4 || !little || h.fortran {
            return Err(Error::parse(
                features,
                "streaming needs little-endian float32 features in C order; convert with x.astype('<f4')",
            ));
        }
        let (rows, cols) = match h.shape.as_slice() {
            [r, rest @ ..] if !rest.is_empty() => (*r, rest.iter().product::<usize>()),
            [r] => (*r, 1),
            _ => return Err(Error::parse(features, "a scalar array cannot hold samples")),
        };
        if map.len() != h.data_offset + rows * cols * 4 {
            return Err(Error::parse(
                features,
                format!(
                    "the header says {rows} x {cols} float32 values ({} bytes), the file holds {}",
                    rows * cols * 4,
                    map.len().saturating_sub(h.data_offset)
                ),
            ));
        }
        let t = read_npy(targets)?.into_matrix(targets)?;
        if t.nrows() != rows {
            return Err(Error::parse(
                targets,
                format!(
                    "has {} rows but {} has {rows}",
                    t.nrows(),
                    features.display()
                ),
            ));
        }
        if classes && t.ncols() != 1 {
            return Err(Error::parse(
                targets,
                format!(
                    "class labels need one column per row, the file has {}",
                    t.ncols()
                ),
            ));
        }
        let targets = if classes {
            let labels = t
                .column(0)
                .iter()
                .enumerate()
                .map(|(i, &v)| match class_index(v) {
                    Some(label) => Ok(label),
                    _ => Err(Error::parse(
                        targets,
                        format!("row {i}: {v} is not a class index (an integer from 0 below 2^24)"),
                    )),
                })
                .collect::<Result<Array1<usize>>>()?;
            OwnedTargets::Classes(labels)
        } else {
            OwnedTargets::Values(t)
        };
        Ok(NpySource {
            map,
            offset: h.data_offset,
            rows,
            cols,
            targets,
        })
    }
}

impl NpySource {
    /// What the targets hold.
    pub fn target_kind(&self) -> TargetKind {
        match &self.targets {
            OwnedTargets::Classes(c) => TargetKind::Classes {
                max: c.iter().copied().max().unwrap_or(0),
            },
            OwnedTargets::Values(v) => TargetKind::Values { width: v.ncols() },
        }
    }
}

impl DataSource for NpySource {
    fn rows(&self) -> usize {
        self.rows
    }
    fn features(&self) -> usize {
        self.cols
    }
    fn read(&mut self, idx: &[usize], batch: &mut Batch) -> Result<()> {
        let width = match &self.targets {
            OwnedTargets::Classes(_) => None,
            OwnedTargets::Values(v) => Some(v.ncols()),
        };
        batch.clear(self.cols, width);
        let row_bytes = self.cols * 4;
        for &i in idx {
            let start = self.offset + i * row_bytes;
            let bytes = &self.map[start..start + row_bytes];
            batch.x.extend(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            );
            match &self.targets {
                OwnedTargets::Classes(c) => batch.classes.push(c[i]),
                OwnedTargets::Values(v) => batch.values.extend(v.row(i).iter()),
            }
        }
        batch.rows = idx.len();
        Ok(())
    }
}
