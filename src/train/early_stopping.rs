//! [`EarlyStopping`]: stop when the monitored loss has not improved for a
//! number of epochs, and keep the best epoch's weights.

/// Stop training when the monitored loss (the validation loss when there is
/// validation data, else the training loss) has not improved for `patience`
/// epochs; with `restore_best`, end with the best epoch's weights (parameters
/// and batch-norm running statistics; the optimizer's state stays the last
/// epoch's, as Keras's `restore_best_weights` does).
///
/// An epoch improves when its loss is below the best so far by more than
/// `min_delta`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EarlyStopping {
    /// Epochs without improvement before stopping (default 10).
    pub patience: usize,
    /// Improvement smaller than this does not count (default 0).
    pub min_delta: f32,
    /// Restore the best epoch's weights at the end (default true).
    pub restore_best: bool,
}

impl Default for EarlyStopping {
    fn default() -> Self {
        EarlyStopping {
            patience: 10,
            min_delta: 0.0,
            restore_best: true,
        }
    }
}

impl EarlyStopping {
    /// Early stopping with `patience` and the other settings at their defaults.
    pub fn patience(patience: usize) -> Self {
        EarlyStopping {
            patience,
            ..EarlyStopping::default()
        }
    }
}
