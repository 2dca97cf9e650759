//! The rows `train` learns from: a data file loaded whole, or (`--stream`) read
//! from the file a batch at a time through the library's data sources.

use std::path::{Path, PathBuf};

use feedforward::io::{CsvSource, Dataset, Format, NpySource, Origin};
use feedforward::source::{Batch, DataSource, RowSubset, TargetKind};
use feedforward::standardize::StandardizedSource;
use feedforward::train::{History, Trainer};
use feedforward::{Loss, Network, Standardizer, Targets};
use ndarray::{Array2, Axis};

use crate::Result;
use crate::dataset::{DataArgs, check_feature_width, targets_for};
use feedforward::OwnedTargets;

/// Whether `loss` takes class indices (rather than rows of target values).
pub fn takes_classes(loss: Loss) -> bool {
    matches!(
        loss,
        Loss::CategoricalCrossEntropy | Loss::BinaryCrossEntropy
    )
}

/// A training file read a batch at a time.
pub enum FileSource {
    /// Memory-mapped float32 `.npy` features with their targets.
    Npy(NpySource),
    /// The training rows of such a file, after a validation split.
    NpyRows(RowSubset<NpySource>),
    /// A CSV file, read in file order.
    Csv(Box<CsvSource>),
}

impl FileSource {
    /// Opens the data file of `data` for streaming, with class-index targets when
    /// `classes`.
    pub fn open(data: &DataArgs, classes: bool) -> Result<FileSource> {
        let path = &data.data;
        Ok(match Format::detect(path)? {
            Format::Npy => {
                let labels = data.labels.as_ref().ok_or_else(|| {
                    format!(
                        "{}: --stream with NPY features needs --labels FILE.npy",
                        path.display()
                    )
                })?;
                FileSource::Npy(NpySource::open(path, labels, classes)?)
            }
            Format::Csv => FileSource::Csv(Box::new(CsvSource::open(
                path,
                &data.options(data.label_columns())?,
                classes,
            )?)),
            Format::Idx | Format::Npz => {
                return Err(format!(
                    "{}: --stream reads NPY features (with --labels) or CSV; train on IDX and NPZ files without --stream",
                    path.display()
                )
                .into());
            }
        })
    }

    fn target_kind(&self) -> TargetKind {
        match self {
            FileSource::Npy(s) => s.target_kind(),
            FileSource::NpyRows(s) => s.inner().target_kind(),
            FileSource::Csv(s) => s.target_kind(),
        }
    }
}

impl DataSource for FileSource {
    fn rows(&self) -> usize {
        match self {
            FileSource::Npy(s) => s.rows(),
            FileSource::NpyRows(s) => s.rows(),
            FileSource::Csv(s) => s.rows(),
        }
    }
    fn features(&self) -> usize {
        match self {
            FileSource::Npy(s) => s.features(),
            FileSource::NpyRows(s) => s.features(),
            FileSource::Csv(s) => s.features(),
        }
    }
    fn random_access(&self) -> bool {
        match self {
            FileSource::Npy(s) => s.random_access(),
            FileSource::NpyRows(s) => s.random_access(),
            FileSource::Csv(s) => s.random_access(),
        }
    }
    fn read(&mut self, idx: &[usize], batch: &mut Batch) -> feedforward::Result<()> {
        match self {
            FileSource::Npy(s) => s.read(idx, batch),
            FileSource::NpyRows(s) => s.read(idx, batch),
            FileSource::Csv(s) => s.read(idx, batch),
        }
    }
}

/// The training data before the network exists: what sizes it, and what
/// standardisation statistics are measured on.
pub enum TrainingData {
    /// The whole file in memory.
    Loaded(Dataset),
    /// The file, to be read a batch at a time.
    Streamed {
        /// The source.
        source: FileSource,
        /// Its path, for messages.
        path: PathBuf,
    },
}

impl TrainingData {
    /// The data file's path.
    pub fn path(&self) -> &Path {
        match self {
            TrainingData::Loaded(d) => &d.origin.path,
            TrainingData::Streamed { path, .. } => path,
        }
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        match self {
            TrainingData::Loaded(d) => d.len(),
            TrainingData::Streamed { source, .. } => source.rows(),
        }
    }

    /// The rows `train` (in that order) for training, and the rows `held_out`
    /// read into memory for validation. A streamed NPY file stays on disk: only
    /// the held-out rows are read.
    pub fn split(self, train: &[usize], held_out: &[usize]) -> Result<(TrainingData, Dataset)> {
        match self {
            TrainingData::Loaded(d) => {
                let (train, val) = d.split_rows(train, held_out)?;
                Ok((TrainingData::Loaded(train), val))
            }
            TrainingData::Streamed {
                source: FileSource::Npy(mut npy),
                path,
            } => {
                let mut batch = Batch::default();
                npy.read(held_out, &mut batch)?;
                let targets = match batch.targets() {
                    Targets::Classes(c) => c.mapv(|v| v as f32).insert_axis(Axis(1)),
                    Targets::Values(v) => v.to_owned(),
                };
                let val = Dataset {
                    features: batch.features().to_owned(),
                    targets,
                    origin: Origin {
                        path: path.clone(),
                        targets_path: path.clone(),
                        ..Origin::default()
                    },
                };
                let source = FileSource::NpyRows(RowSubset::new(npy, train.to_vec())?);
                Ok((TrainingData::Streamed { source, path }, val))
            }
            TrainingData::Streamed { path, .. } => Err(format!(
                "{}: --val-split with --stream needs NPY features (a CSV file is read in order); pass --val FILE",
                path.display()
            )
            .into()),
        }
    }

    /// Feature columns.
    pub fn features(&self) -> usize {
        match self {
            TrainingData::Loaded(d) => d.features.ncols(),
            TrainingData::Streamed { source, .. } => source.features(),
        }
    }

    /// Classes seen in the labels (the largest label + 1).
    pub fn class_count(&self) -> Result<usize> {
        match self {
            TrainingData::Loaded(d) => Ok(d.infer_classes()?),
            TrainingData::Streamed { source, .. } => match source.target_kind() {
                TargetKind::Classes { max } => Ok(max + 1),
                TargetKind::Values { .. } => Err("the targets are not class labels".into()),
            },
        }
    }

    /// Target columns.
    pub fn target_columns(&self) -> usize {
        match self {
            TrainingData::Loaded(d) => d.targets.ncols(),
            TrainingData::Streamed { source, .. } => match source.target_kind() {
                TargetKind::Classes { .. } => 1,
                TargetKind::Values { width } => width,
            },
        }
    }

    /// Column means and deviations of the features (one pass over a streamed
    /// file for each).
    pub fn standardizer(&mut self) -> Result<Standardizer> {
        Ok(match self {
            TrainingData::Loaded(d) => Standardizer::fit(d.features.view())?,
            TrainingData::Streamed { source, path } => {
                Standardizer::fit_source(source).map_err(|e| in_file(path, e))?
            }
        })
    }

    /// The rows ready for `net`: widths and labels checked against it, features
    /// standardised (in memory now, or as each batch is read).
    pub fn into_rows(
        self,
        net: &Network,
        standardizer: Option<&Standardizer>,
    ) -> Result<TrainingRows> {
        let (source, path) = match self {
            TrainingData::Loaded(d) => {
                check_feature_width(&d.origin.path, d.features.ncols(), net)?;
                let y = targets_for(&d, net.loss(), net.outputs())?;
                // Standardised in place: one copy of a large data set, not two.
                let mut x = d.features;
                if let Some(s) = standardizer {
                    s.transform_in_place(&mut x)?;
                }
                return Ok(TrainingRows::Memory { x, y });
            }
            TrainingData::Streamed { source, path } => (source, path),
        };
        check_feature_width(&path, source.features(), net)?;
        let file = path.display();
        let outputs = net.outputs();
        match (net.loss(), source.target_kind()) {
            (Loss::CategoricalCrossEntropy, TargetKind::Classes { max }) if max >= outputs => {
                return Err(format!(
                    "{file}: label {max} is out of range for a network with {outputs} classes"
                )
                .into());
            }
            (Loss::BinaryCrossEntropy, TargetKind::Classes { max }) if max > 1 => {
                return Err(format!(
                    "{file}: label {max} is not 0 or 1, as binary cross-entropy needs"
                )
                .into());
            }
            (_, TargetKind::Values { width }) if width != outputs => {
                return Err(format!(
                    "{file} has {width} target column(s) but the network has {outputs} output(s)"
                )
                .into());
            }
            _ => {}
        }
        Ok(match standardizer {
            Some(s) => TrainingRows::StandardizedStream {
                source: StandardizedSource::new(source, s.clone())?,
                path,
            },
            None => TrainingRows::Stream { source, path },
        })
    }
}

/// The training rows in the form `fit` takes them.
pub enum TrainingRows {
    /// Features and targets in memory.
    Memory {
        /// Features, standardised if asked.
        x: Array2<f32>,
        /// Targets.
        y: OwnedTargets,
    },
    /// A file read a batch at a time.
    Stream {
        /// The file.
        source: FileSource,
        /// Its path, for messages.
        path: PathBuf,
    },
    /// A file read a batch at a time, each batch standardised.
    StandardizedStream {
        /// The file, standardised.
        source: StandardizedSource<FileSource>,
        /// Its path, for messages.
        path: PathBuf,
    },
}

impl TrainingRows {
    /// Number of training rows.
    pub fn rows(&self) -> usize {
        match self {
            TrainingRows::Memory { x, .. } => x.nrows(),
            TrainingRows::Stream { source, .. } => source.rows(),
            TrainingRows::StandardizedStream { source, .. } => source.rows(),
        }
    }

    /// Trains `net` with `trainer` on these rows.
    pub fn train(&mut self, net: &mut Network, trainer: &mut Trainer<'_>) -> Result<History> {
        let (result, path) = match self {
            TrainingRows::Memory { x, y } => {
                return Ok(trainer.fit(net, x.view(), y.view())?);
            }
            TrainingRows::Stream { source, path } => (trainer.fit_source(net, source), path),
            TrainingRows::StandardizedStream { source, path } => {
                (trainer.fit_source(net, source), path)
            }
        };
        result.map_err(|e| in_file(path, e))
    }
}

/// A streamed file's error, with the file named when the library's message
/// gives only a row.
fn in_file(path: &Path, e: feedforward::Error) -> Box<dyn std::error::Error> {
    match e {
        feedforward::Error::NonFinite { .. } => format!("{}: {e}", path.display()).into(),
        other => other.into(),
    }
}
