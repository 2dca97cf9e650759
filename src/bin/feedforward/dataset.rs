//! Reading data files for the commands, and turning target columns into the
//! targets a network's loss expects.

use std::path::{Path, PathBuf};

use clap::Args;
use feedforward::OwnedTargets;
use feedforward::io::{self, Column, Dataset, ReadOptions};
use feedforward::{Loss, Network, Standardizer};
use ndarray::Array2;

use crate::Result;

/// Where the data are and how to read them.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// Data file: CSV (optionally gzip), IDX as in MNIST (optionally gzip), NPY or NPZ.
    #[arg(long)]
    pub data: PathBuf,
    /// Targets file for IDX and NPY data (beside MNIST images it is found by name).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// CSV target column(s), by index from 0 or by header name [default: 0].
    #[arg(long, value_delimiter = ',')]
    pub label: Vec<String>,
    /// CSV: the first row is a header (default: a first row with text is one).
    #[arg(long, conflicts_with = "no_header")]
    pub header: bool,
    /// CSV: the first row is data.
    #[arg(long)]
    pub no_header: bool,
    /// CSV field delimiter.
    #[arg(long, default_value_t = ',')]
    pub delimiter: char,
    /// Drop rows with empty, NaN or infinite cells instead of stopping with an error.
    #[arg(long)]
    pub allow_nan: bool,
}

impl DataArgs {
    /// The reading options, with `label` as the CSV target columns.
    pub fn options(&self, label: Vec<Column>) -> Result<ReadOptions> {
        if !self.delimiter.is_ascii() {
            return Err(format!(
                "the delimiter must be one ASCII character, got {:?}",
                self.delimiter
            )
            .into());
        }
        Ok(ReadOptions {
            label,
            header: match (self.header, self.no_header) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            },
            delimiter: self.delimiter as u8,
            labels: self.labels.clone(),
            allow_non_finite: self.allow_nan,
        })
    }

    /// The CSV target columns asked for (default: the first).
    pub fn label_columns(&self) -> Vec<Column> {
        if self.label.is_empty() {
            vec![Column::Index(0)]
        } else {
            self.label
                .iter()
                .map(|s| s.parse().expect("infallible"))
                .collect()
        }
    }

    /// Reads `path` (the data file or a validation file) with these options.
    pub fn read(&self, path: &Path) -> Result<Dataset> {
        let mut data = io::read_dataset(path, &self.options(self.label_columns())?)?;
        self.drop_non_finite(&mut data);
        Ok(data)
    }

    /// With `--allow-nan`, drops rows holding non-finite values and says how many.
    pub fn drop_non_finite(&self, data: &mut Dataset) {
        if self.allow_nan {
            let dropped = data.drop_non_finite();
            if dropped > 0 {
                eprintln!(
                    "note: dropped {dropped} row(s) of {} with missing, NaN or infinite values",
                    data.origin.path.display()
                );
            }
        }
    }
}

/// The targets of `data` for a network with `loss` and `outputs` outputs: class
/// indices below `outputs` for softmax, 0/1 for binary, one column per output
/// for multi-label and MSE.
pub fn targets_for(data: &Dataset, loss: Loss, outputs: usize) -> Result<OwnedTargets> {
    let file = data.origin.targets_path.display();
    if data.targets.ncols() == 0 {
        return Err(format!(
            "{file} has no targets (pass --label for CSV, --labels for IDX or NPY)"
        )
        .into());
    }
    Ok(match loss {
        Loss::CategoricalCrossEntropy => {
            OwnedTargets::Classes(data.class_labels(Some(outputs))?.into())
        }
        Loss::BinaryCrossEntropy => OwnedTargets::Classes(data.class_labels(Some(2))?.into()),
        Loss::MultiLabelCrossEntropy | Loss::MeanSquaredError => {
            if data.targets.ncols() != outputs {
                return Err(format!(
                    "{file} has {} target column(s) but the network has {outputs} output(s)",
                    data.targets.ncols()
                )
                .into());
            }
            if loss == Loss::MultiLabelCrossEntropy
                && let Some(((r, c), v)) = data
                    .targets
                    .indexed_iter()
                    .find(|(_, v)| !(0.0..=1.0).contains(*v))
            {
                return Err(data
                    .error_at(
                        r,
                        c,
                        true,
                        &format!("multi-label target {v} is not in [0, 1]"),
                    )
                    .into());
            }
            OwnedTargets::Values(data.targets.clone())
        }
    })
}

/// The features of `data` ready for `network`: width checked, standardised
/// with the model's statistics when it has them.
pub fn features_for(
    data: &Dataset,
    network: &Network,
    standardizer: Option<&Standardizer>,
) -> Result<Array2<f32>> {
    check_feature_width(&data.origin.path, data.features.ncols(), network)?;
    Ok(match standardizer {
        Some(s) => s.transform(data.features.view())?,
        None => data.features.clone(),
    })
}

/// An error unless the file at `path`, with `columns` feature columns, has as
/// many as `network` has inputs.
pub fn check_feature_width(path: &Path, columns: usize, network: &Network) -> Result<()> {
    let want = network.inputs();
    if want != columns {
        return Err(format!(
            "the model takes {want} input features but {} has {columns} feature column(s)",
            path.display()
        )
        .into());
    }
    Ok(())
}
