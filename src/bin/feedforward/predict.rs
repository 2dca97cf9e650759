//! `feedforward predict`: predictions for every row of a data file, as CSV.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use feedforward::Loss;
use feedforward::io::{self, Format, model};

use crate::Result;
use crate::dataset::{DataArgs, features_for};

/// Options of `feedforward predict`.
#[derive(Args)]
pub struct PredictArgs {
    /// Model file written by `feedforward train`.
    #[arg(long)]
    model: PathBuf,
    /// Data to predict on. A CSV file may carry the label column(s) of training
    /// (see --label): they are recognised by the column count and ignored.
    #[command(flatten)]
    data: DataArgs,
    /// Output CSV (default: standard output); written atomically.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Threads for rayon and BLAS [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Precision of the products: f32, or bf16 (bf16 operands, f32 sums; the
    /// weights rounded and packed once).
    #[arg(long, default_value = "f32")]
    precision: feedforward::Precision,
}

/// Predicts and writes `predicted,p0,p1,...` (classes) or `y0,y1,...` (regression).
pub fn run(args: &PredictArgs) -> Result<()> {
    if let Some(t) = args.threads {
        feedforward::set_threads(t)?;
    }
    let mut m = model::load(&args.model)?;
    m.network.set_precision(args.precision);
    let net = &m.network;
    let predictor = net.predictor();
    let path = &args.data.data;
    // Features only; a CSV with exactly the label columns more than the model's
    // inputs has them split off.
    let mut data = io::read_dataset(path, &args.data.options(Vec::new())?)?;
    if Format::detect(path)? == Format::Csv {
        let labels = args.data.label_columns();
        if data.features.ncols() == net.inputs() + labels.len() {
            data.split_targets(&labels)?;
        }
    }
    args.data.drop_non_finite(&mut data);
    let x = features_for(&data, net, m.standardizer.as_ref())?;
    let p = predictor.predict_proba(x.view())?;

    let mut w = csv::Writer::from_writer(Vec::new());
    let k = p.ncols();
    let header: Vec<String> = match net.loss() {
        Loss::MeanSquaredError => (0..k).map(|j| format!("y{j}")).collect(),
        Loss::MultiLabelCrossEntropy => (0..k)
            .map(|j| format!("label{j}"))
            .chain((0..k).map(|j| format!("p{j}")))
            .collect(),
        Loss::BinaryCrossEntropy => vec!["predicted".into(), "p1".into()],
        Loss::CategoricalCrossEntropy => std::iter::once("predicted".into())
            .chain((0..k).map(|j| format!("p{j}")))
            .collect(),
    };
    w.write_record(&header)?;
    let classes = predictor.predict(x.view())?;
    for (i, row) in p.rows().into_iter().enumerate() {
        let mut fields: Vec<String> = Vec::with_capacity(header.len());
        match net.loss() {
            Loss::MeanSquaredError => {}
            Loss::MultiLabelCrossEntropy => {
                fields.extend(row.iter().map(|&v| u8::from(v >= 0.5).to_string()))
            }
            _ => fields.push(classes[i].to_string()),
        }
        fields.extend(row.iter().map(|v| v.to_string()));
        w.write_record(&fields)?;
    }
    let bytes = w.into_inner().map_err(|e| e.to_string())?;
    match &args.out {
        Some(out) => {
            model::write_atomically(out, &bytes)?;
            eprintln!("wrote {} ({} rows)", out.display(), p.nrows());
        }
        None => std::io::stdout()
            .write_all(&bytes)
            .unwrap_or_else(|e| crate::stdout_failed(&e)),
    }
    Ok(())
}
