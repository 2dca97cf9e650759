//! The crate's one error type: every failure a user can cause is a variant.

/// Everything that can go wrong when building, training or running a network.
///
/// The library never panics on user data; it returns one of these instead.
/// Each message names what was wrong and where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// An array does not have the shape the operation needs.
    #[error("shape mismatch in {context}: expected {expected}, got {got}")]
    Shape {
        /// The operation and argument, e.g. `"fit: features"`.
        context: &'static str,
        /// The shape that was needed.
        expected: String,
        /// The shape that was given.
        got: String,
    },
    /// An input holds NaN or an infinity.
    #[error("{context} holds a non-finite value ({value}) at row {row}, column {col}")]
    NonFinite {
        /// The array that held it.
        context: &'static str,
        /// Row of the first offending value.
        row: usize,
        /// Column of the first offending value.
        col: usize,
        /// The value itself.
        value: f32,
    },
    /// A class label is not below the number of classes.
    #[error("{context}: label {label} at row {row} is out of range for {classes} classes")]
    LabelOutOfRange {
        /// The array that held it.
        context: &'static str,
        /// Row of the label.
        row: usize,
        /// The label.
        label: usize,
        /// The number of classes the network outputs.
        classes: usize,
    },
    /// A target value that the loss cannot accept (e.g. a probability outside [0, 1]).
    #[error("{context}: target {value} at row {row}, column {col} is invalid: {reason}")]
    InvalidTarget {
        /// The array that held it.
        context: &'static str,
        /// Row of the value.
        row: usize,
        /// Column of the value.
        col: usize,
        /// The value.
        value: f32,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// An input has no rows or no columns.
    #[error("{0} is empty")]
    Empty(&'static str),
    /// A setting is out of its range (zero batch size, negative learning rate, ...).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The loss cannot be combined with the network's output layer.
    #[error("loss {loss} does not fit the output layer ({activation}, width {width}): {reason}")]
    LossMismatch {
        /// The loss.
        loss: &'static str,
        /// The output layer's activation.
        activation: &'static str,
        /// The output layer's width.
        width: usize,
        /// What would fit.
        reason: &'static str,
    },
    /// An operation was called out of order (e.g. `backward` before `forward`).
    #[error("{0}")]
    State(&'static str),
    /// Training produced a non-finite loss; the weights are left as they were before the step.
    #[error(
        "training diverged: the loss became {loss} at epoch {epoch}, batch {batch}; try a smaller learning rate or gradient clipping"
    )]
    Diverged {
        /// The non-finite loss.
        loss: f32,
        /// Epoch (from 1).
        epoch: usize,
        /// Mini-batch within the epoch (from 1).
        batch: usize,
    },
    /// A file could not be opened, read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What the operating system said.
        message: String,
    },
    /// A data or model file is malformed: a bad cell, a wrong field count, a
    /// header that disagrees with the data, a truncated or foreign file.
    #[error("{path}{}: {message}", location(*line, *column))]
    Parse {
        /// The file.
        path: String,
        /// Line (from 1) in a text file, or row (from 0) of an array, if known.
        line: Option<u64>,
        /// Column (from 1), if known.
        column: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// An instruction set was asked for (`FEEDFORWARD_ISA`, [`crate::gemm::set_isa`])
    /// that this CPU cannot run, or a name that is no instruction set.
    #[error(
        "instruction set {requested:?} {}; this CPU runs: {}",
        if *known { "is not supported by this CPU" } else { "is unknown (expected avx512, avx2 or sse2)" },
        available.join(", ")
    )]
    Isa {
        /// The name asked for.
        requested: String,
        /// Whether the name is an instruction set the crate knows.
        known: bool,
        /// The names of the levels this CPU runs, widest first.
        available: Vec<&'static str>,
    },
    /// The thread pool or the BLAS library could not be configured.
    #[error("backend: {0}")]
    Backend(String),
}

/// `Result` with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `", line 3, column 2"`, or as much of it as is known.
fn location(line: Option<u64>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(", line {l}, column {c}"),
        (Some(l), None) => format!(", line {l}"),
        (None, Some(c)) => format!(", column {c}"),
        (None, None) => String::new(),
    }
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: &std::path::Path, err: &std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            message: err.to_string(),
        }
    }

    /// An [`Error::Parse`] for `path` with no position.
    pub fn parse(path: &std::path::Path, message: impl Into<String>) -> Self {
        Error::Parse {
            path: path.display().to_string(),
            line: None,
            column: None,
            message: message.into(),
        }
    }
}

/// Formats a shape for error messages: `256 x 784`.
pub(crate) fn shape_str(rows: usize, cols: usize) -> String {
    format!("{rows} x {cols}")
}
