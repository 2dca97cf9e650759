//! `feedforward eval`: how well a model does on a labelled data file.

use std::path::PathBuf;

use clap::Args;
use feedforward::Loss;
use feedforward::io::model;

use crate::dataset::{DataArgs, features_for, targets_for};
use crate::{Result, json_f32};

/// Options of `feedforward eval`.
#[derive(Args)]
pub struct EvalArgs {
    /// Model file written by `feedforward train`.
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Threads for rayon and BLAS [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Precision of the products: f32, or bf16 (bf16 operands, f32 sums; the
    /// weights rounded and packed once).
    #[arg(long, default_value = "f32")]
    precision: feedforward::Precision,
    /// One JSON object: loss, accuracy, per-class precision and recall, confusion matrix.
    #[arg(long)]
    json: bool,
}

/// Evaluates the model and prints the figures.
pub fn run(args: &EvalArgs) -> Result<()> {
    if let Some(t) = args.threads {
        feedforward::set_threads(t)?;
    }
    let mut m = model::load(&args.model)?;
    m.network.set_precision(args.precision);
    let net = &m.network;
    let predictor = net.predictor();
    let data = args.data.read(&args.data.data)?;
    let x = features_for(&data, net, m.standardizer.as_ref())?;
    let y = targets_for(&data, net.loss(), net.outputs())?;
    let eval = predictor.evaluate(x.view(), y.view())?;
    // Classes: softmax outputs, or 0/1 for one sigmoid output.
    let confusion = match (net.loss(), y.classes()) {
        (Loss::CategoricalCrossEntropy | Loss::BinaryCrossEntropy, Some(truth)) => {
            let k = net.outputs().max(2);
            let predicted = predictor.predict(x.view())?;
            let mut c = vec![vec![0usize; k]; k];
            for (&t, &p) in truth.iter().zip(&predicted) {
                c[t][p] += 1;
            }
            Some(c)
        }
        _ => None,
    };
    let per_class = confusion.as_deref().map(per_class).unwrap_or_default();
    if args.json {
        let classes: Vec<_> = per_class
            .iter()
            .enumerate()
            .map(|(j, (p, r, s))| serde_json::json!({"class": j, "precision": p, "recall": r, "support": s}))
            .collect();
        let out = serde_json::json!({
            "samples": data.len(),
            "loss": json_f32(eval.loss),
            "accuracy": eval.accuracy.map(json_f32),
            "classes": classes,
            "confusion": confusion,
        });
        outln!("{out}");
        return Ok(());
    }
    let mut line = format!("samples {}  loss {:.5}", data.len(), eval.loss);
    if let Some(a) = eval.accuracy {
        line += &format!("  accuracy {a:.4}");
    }
    if net.loss() == Loss::MeanSquaredError {
        line += &format!("  rmse {:.5}", eval.loss.sqrt());
    }
    outln!("{line}");
    if let Some(c) = &confusion {
        print_classes(&per_class, c);
    }
    Ok(())
}

/// Precision, recall and support of each class, from the confusion matrix
/// (rows: true class, columns: predicted class).
fn per_class(c: &[Vec<usize>]) -> Vec<(f64, f64, usize)> {
    (0..c.len())
        .map(|j| {
            let tp = c[j][j] as f64;
            let predicted: usize = c.iter().map(|row| row[j]).sum();
            let support: usize = c[j].iter().sum();
            let ratio = |n: usize| if n == 0 { 0.0 } else { tp / n as f64 };
            (ratio(predicted), ratio(support), support)
        })
        .collect()
}

/// The per-class table and the confusion matrix, as text.
fn print_classes(per_class: &[(f64, f64, usize)], c: &[Vec<usize>]) {
    outln!("\nclass  precision  recall  support");
    for (j, (p, r, s)) in per_class.iter().enumerate() {
        outln!("{j:>5}  {p:>9.4}  {r:>6.4}  {s:>7}");
    }
    let width = c
        .iter()
        .flatten()
        .max()
        .map_or(1, |m| m.to_string().len())
        .max(3);
    outln!("\nconfusion matrix (rows: true class, columns: predicted class)");
    let mut header = format!("{:>5} ", "");
    for j in 0..c.len() {
        header += &format!(" {j:>width$}");
    }
    outln!("{header}");
    for (i, row) in c.iter().enumerate() {
        let mut line = format!("{i:>5} ");
        for v in row {
            line += &format!(" {v:>width$}");
        }
        outln!("{line}");
    }
}
