//! `feedforward data`: synthetic data sets as CSV, label first, with a header.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use feedforward::data;
use feedforward::io::model::write_atomically;
use ndarray::{Array2, ArrayView2};

use crate::Result;

/// Options of `feedforward data`.
#[derive(Args)]
pub struct SyntheticArgs {
    /// Which data set.
    #[arg(value_enum)]
    kind: Kind,
    /// Output CSV file (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Points per class (spiral, blobs) or in all (sine).
    #[arg(long, default_value_t = 100)]
    points: usize,
    /// Classes (spiral, blobs).
    #[arg(long, default_value_t = 3)]
    classes: usize,
    /// Feature dimensions (blobs).
    #[arg(long, default_value_t = 2)]
    dims: usize,
    /// Noise standard deviation (sine).
    #[arg(long, default_value_t = 0.1)]
    noise: f32,
    /// Seed of the generator.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    /// Interleaved spiral arms, one class per arm (the CS231n case study).
    Spiral,
    /// Gaussian clusters, one class per cluster.
    Blobs,
    /// A noisy sine curve: regression of y on x.
    Sine,
}

/// Generates the data set and writes it.
pub fn run(args: &SyntheticArgs) -> Result<()> {
    if args.points == 0 || args.classes == 0 || args.dims == 0 {
        return Err("--points, --classes and --dims must be at least 1".into());
    }
    let (x, y): (Array2<f32>, Array2<f32>) = match args.kind {
        Kind::Spiral => {
            let (x, y) = data::spiral(args.points, args.classes, args.seed);
            (x, y.mapv(|c| c as f32).insert_axis(ndarray::Axis(1)))
        }
        Kind::Blobs => {
            let (x, y) = data::blobs(args.points, args.classes, args.dims, args.seed);
            (x, y.mapv(|c| c as f32).insert_axis(ndarray::Axis(1)))
        }
        Kind::Sine => {
            if !(args.noise.is_finite() && args.noise >= 0.0) {
                return Err(format!("--noise must be >= 0, got {}", args.noise).into());
            }
            data::sine(args.points, args.noise, args.seed)
        }
    };
    let label = if matches!(args.kind, Kind::Sine) {
        "y"
    } else {
        "label"
    };
    let csv = to_csv(label, y.view(), x.view())?;
    match &args.out {
        Some(path) => {
            write_atomically(path, &csv)?;
            eprintln!("wrote {} ({} rows)", path.display(), x.nrows());
        }
        None => {
            use std::io::Write;
            std::io::stdout()
                .write_all(&csv)
                .unwrap_or_else(|e| crate::stdout_failed(&e));
        }
    }
    Ok(())
}

/// `label,x0,x1,...` then one row per sample.
fn to_csv(label: &str, y: ArrayView2<'_, f32>, x: ArrayView2<'_, f32>) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec![label.to_string()];
    header.extend((0..x.ncols()).map(|j| format!("x{j}")));
    w.write_record(&header)?;
    for (yr, xr) in y.rows().into_iter().zip(x.rows()) {
        w.write_record(yr.iter().chain(xr.iter()).map(|v| v.to_string()))?;
    }
    Ok(w.into_inner().map_err(|e| e.to_string())?)
}
