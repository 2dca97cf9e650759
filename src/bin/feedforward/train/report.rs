//! How `train` reports: a progress bar, one line (or JSON object) per epoch,
//! and notes; a [`Callback`] of the library's trainer.

use std::path::Path;
use std::time::{Duration, Instant};

use feedforward::Network;
use feedforward::train::{Callback, Control, EpochStats, Progress};
use indicatif::{ProgressBar, ProgressStyle};

use super::args::TrainArgs;
use crate::json_f32;

/// Progress bar, epoch lines and JSON, as the options ask.
pub struct Reporter {
    bar: Option<ProgressBar>,
    /// The last epoch of the run, for `epoch e/N`.
    epochs: usize,
    /// Whether epoch lines show the learning rate (it changes: a schedule).
    show_lr: bool,
    json: bool,
    quiet: bool,
    state: std::sync::Mutex<BarState>,
}

struct BarState {
    epoch_start: Instant,
    last_draw: Instant,
    rows: usize,
    loss_sum: f64,
    right: usize,
    judged: usize,
}

impl Reporter {
    /// A reporter for a run of `rows` rows in batches of `batch_size` from
    /// epoch `epochs_done + 1` to `args.epochs`.
    /// Only the `lead` process of several reports; the others are quiet.
    pub fn new(
        args: &TrainArgs,
        batch_size: usize,
        epochs_done: usize,
        rows: usize,
        lead: bool,
    ) -> Reporter {
        let quiet = args.quiet || !lead;
        let bar = (!quiet && !args.json).then(|| {
            let batches = rows.div_ceil(batch_size.min(rows).max(1));
            let total = (args.epochs.saturating_sub(epochs_done) * batches) as u64;
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} batches  {msg}  eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar
        });
        let now = Instant::now();
        Reporter {
            bar,
            epochs: args.epochs,
            show_lr: args.schedule.is_some(),
            json: args.json,
            quiet,
            state: std::sync::Mutex::new(BarState {
                epoch_start: now,
                last_draw: now,
                rows: 0,
                loss_sum: 0.0,
                right: 0,
                judged: 0,
            }),
        }
    }

    fn progress(&self, p: &Progress<'_>) {
        let (
            Some(bar),
            Progress::Batch {
                epoch,
                batch,
                rows,
                loss,
                correct,
                ..
            },
        ) = (&self.bar, p)
        else {
            return;
        };
        let mut s = self.state.lock().expect("not poisoned");
        if *batch == 1 {
            *s = BarState {
                epoch_start: Instant::now(),
                last_draw: s.last_draw,
                rows: 0,
                loss_sum: 0.0,
                right: 0,
                judged: 0,
            };
            bar.set_prefix(format!("epoch {epoch}"));
        }
        s.rows += rows;
        s.loss_sum += f64::from(*loss) * *rows as f64;
        if let Some((r, j)) = correct {
            s.right += r;
            s.judged += j;
        }
        bar.inc(1);
        if s.last_draw.elapsed() > Duration::from_millis(100) {
            s.last_draw = Instant::now();
            let rate = s.rows as f64 / s.epoch_start.elapsed().as_secs_f64().max(1e-9);
            let mut msg = format!("loss {:.4}", s.loss_sum / s.rows.max(1) as f64);
            if s.judged > 0 {
                msg += &format!("  acc {:.4}", s.right as f64 / s.judged as f64);
            }
            msg += &format!("  {rate:.0} samples/s");
            bar.set_message(msg);
        }
    }

    fn epoch(&self, e: &EpochStats) {
        if self.quiet {
            return;
        }
        if self.json {
            let line = serde_json::json!({
                "epoch": e.epoch,
                "loss": json_f32(e.loss),
                "accuracy": e.accuracy.map(json_f32),
                "val_loss": e.val_loss.map(json_f32),
                "val_accuracy": e.val_accuracy.map(json_f32),
                "lr": json_f32(e.learning_rate),
                "penalty": json_f32(e.penalty),
                "samples_per_s": e.samples_per_sec,
                "seconds": e.seconds,
            });
            outln!("{line}");
            return;
        }
        let mut line = format!("epoch {:>3}/{}  loss {:.5}", e.epoch, self.epochs, e.loss);
        if let Some(a) = e.accuracy {
            line += &format!("  acc {a:.4}");
        }
        if let Some(v) = e.val_loss {
            line += &format!("  val_loss {v:.5}");
        }
        if let Some(a) = e.val_accuracy {
            line += &format!("  val_acc {a:.4}");
        }
        if self.show_lr {
            line += &format!("  lr {:.3e}", e.learning_rate);
        }
        line += &format!("  {:.0} samples/s  {:.2} s", e.samples_per_sec, e.seconds);
        match &self.bar {
            Some(bar) => bar.suspend(|| outln!("{line}")),
            None => outln!("{line}"),
        }
    }

    /// A line on standard error, unless quiet or JSON.
    pub fn note(&self, text: &str) {
        if !self.quiet && !self.json {
            match &self.bar {
                Some(bar) => bar.suspend(|| eprintln!("{text}")),
                None => eprintln!("{text}"),
            }
        }
    }

    /// Clears the progress bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Callback for &Reporter {
    fn on_step(&mut self, _: &Network, progress: &Progress<'_>) -> Control {
        self.progress(progress);
        Control::Continue
    }

    fn on_epoch(&mut self, _: &Network, stats: &EpochStats) -> Control {
        self.epoch(stats);
        Control::Continue
    }

    fn on_checkpoint(&mut self, path: &Path, epoch: usize) {
        self.note(&format!("checkpoint: {} (epoch {epoch})", path.display()));
    }
}
