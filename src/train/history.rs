//! What training reports: per-batch [`Progress`], per-epoch [`EpochStats`], and
//! the [`History`] of a run.

/// What [`Network::fit_with_progress`](crate::Network::fit_with_progress) reports: a finished batch or epoch.
/// (A [`super::Callback`] sees the same, and the network.)
#[derive(Debug, Clone, Copy)]
pub enum Progress<'s> {
    /// A mini-batch was trained on.
    Batch {
        /// Epoch number.
        epoch: usize,
        /// Batch within the epoch, from 1.
        batch: usize,
        /// Batches in the epoch.
        batches: usize,
        /// Rows in this batch.
        rows: usize,
        /// The batch's mean loss (before its update).
        loss: f32,
        /// Predictions right and predictions judged (before the update), for
        /// classification losses.
        correct: Option<(usize, usize)>,
    },
    /// An epoch finished.
    Epoch(&'s EpochStats),
}

/// What one epoch of [`Network::fit`](crate::Network::fit) measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochStats {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches (weighted by batch size).
    pub loss: f32,
    /// Training accuracy over the epoch (measured before each batch's update).
    pub accuracy: Option<f32>,
    /// Loss on the validation data, if given.
    pub val_loss: Option<f32>,
    /// Accuracy on the validation data, if given and defined.
    pub val_accuracy: Option<f32>,
    /// Training samples processed per second.
    pub samples_per_sec: f64,
    /// Wall time of the epoch's training steps, in seconds.
    pub seconds: f64,
    /// The learning rate of the epoch's last step.
    pub learning_rate: f32,
    /// Mean L1/L2 penalty over the epoch's steps (not in `loss`; 0 without one).
    pub penalty: f32,
}

/// What a training run measured and how it ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// One entry per completed epoch of this run.
    pub epochs: Vec<EpochStats>,
    /// Whether early stopping ended the run (its patience ran out).
    pub stopped_early: bool,
    /// The epoch whose weights early stopping restored at the end, if it did.
    pub restored_epoch: Option<usize>,
}

impl History {
    /// The last epoch's statistics.
    pub fn last(&self) -> Option<&EpochStats> {
        self.epochs.last()
    }
}
