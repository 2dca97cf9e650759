//! [`Snapshot`]: everything training changes in a network, copied out and put
//! back, so that early stopping, checkpoints and experiments never reach into
//! the layers.

use super::Network;
use crate::error::{Error, Result};
use crate::layers::Layer;
use crate::optim::OptimizerState;

/// The trainable state of a [`Network`]: its parameters, the running statistics
/// of its batch-norm layers and its optimizer's state (step and moments).
///
/// ```
/// use feedforward::{Activation::*, Network, data};
/// let (x, y) = data::spiral(20, 3, 0);
/// let mut net = Network::builder(2).dense(8, Relu).batch_norm(Relu).dense(3, Softmax).build()?;
/// let before = net.snapshot();
/// net.train_step(x.view(), (&y).into())?;
/// assert_ne!(net.snapshot(), before);
/// net.restore(&before)?;
/// assert_eq!(net.snapshot(), before);
/// # Ok::<(), feedforward::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    parameters: Vec<f32>,
    /// `(running mean, running variance)` of each batch-norm layer, in order.
    running: Vec<(Vec<f32>, Vec<f32>)>,
    optimizer: OptimizerState,
}

impl Snapshot {
    /// A snapshot from its parts, as [`Snapshot::parameters`],
    /// [`Snapshot::running_statistics`] and [`Snapshot::optimizer_state`] give
    /// them (to read one back from a file); [`Network::restore`] checks them.
    pub fn from_parts(
        parameters: Vec<f32>,
        running: Vec<(Vec<f32>, Vec<f32>)>,
        optimizer: OptimizerState,
    ) -> Snapshot {
        Snapshot {
            parameters,
            running,
            optimizer,
        }
    }

    /// All parameters, laid out as [`Network::parameters`].
    pub fn parameters(&self) -> &[f32] {
        &self.parameters
    }

    /// `(running mean, running variance)` of each batch-norm layer, input to output.
    pub fn running_statistics(&self) -> &[(Vec<f32>, Vec<f32>)] {
        &self.running
    }

    /// The optimizer's step count and moments.
    pub fn optimizer_state(&self) -> &OptimizerState {
        &self.optimizer
    }
}

impl Network {
    /// A copy of the parameters, batch-norm running statistics and optimizer
    /// state (see [`Snapshot`]).
    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::default();
        self.snapshot_into(&mut s);
        s
    }

    /// [`Network::snapshot`] into `s`, reusing its buffers: once `s` has held a
    /// snapshot of this network, this allocates nothing.
    pub fn snapshot_into(&self, s: &mut Snapshot) {
        self.snapshot_weights_into(s);
        s.optimizer.step = self.opt_state.step;
        s.optimizer.first.clone_from(&self.opt_state.first);
        s.optimizer.second.clone_from(&self.opt_state.second);
        s.optimizer.third.clone_from(&self.opt_state.third);
    }

    /// The weights alone into `s`: parameters and batch-norm running statistics,
    /// with an empty optimizer state (what early stopping keeps of the best
    /// epoch, and puts back with [`Network::restore_weights`]).
    pub fn snapshot_weights_into(&self, s: &mut Snapshot) {
        s.optimizer = OptimizerState::default();
        s.parameters.clone_from(&self.params);
        let norms = self.layers.iter().filter_map(|l| match l {
            Layer::BatchNorm(b) => Some(b),
            Layer::Dense(_) | Layer::Dropout(_) => None,
        });
        s.running
            .resize_with(norms.clone().count(), Default::default);
        for ((mean, var), b) in s.running.iter_mut().zip(norms) {
            mean.clone_from(&b.running_mean);
            var.clone_from(&b.running_var);
        }
    }

    /// Puts the state of `snapshot` back; pending gradients are dropped.
    ///
    /// # Errors
    /// [`Error::Shape`] (naming the part) when the snapshot is not of a network
    /// of this shape; the network is then unchanged.
    pub fn restore(&mut self, snapshot: &Snapshot) -> Result<()> {
        self.check_snapshot(snapshot)?;
        self.put_weights(snapshot);
        self.opt_state.step = snapshot.optimizer.step;
        self.opt_state.first.clone_from(&snapshot.optimizer.first);
        self.opt_state.second.clone_from(&snapshot.optimizer.second);
        self.opt_state.third.clone_from(&snapshot.optimizer.third);
        Ok(())
    }

    /// Puts the parameters and batch-norm running statistics of `snapshot`
    /// back, and leaves the optimizer's state as it is (as Keras's
    /// `restore_best_weights` does).
    ///
    /// # Errors
    /// As [`Network::restore`].
    pub fn restore_weights(&mut self, snapshot: &Snapshot) -> Result<()> {
        self.check_snapshot(snapshot)?;
        self.put_weights(snapshot);
        Ok(())
    }

    /// That `snapshot` fits this network.
    fn check_snapshot(&self, snapshot: &Snapshot) -> Result<()> {
        let shape = |what: &str, expected: usize, got: usize| Error::Shape {
            context: "restore",
            expected: format!("{expected} {what}"),
            got: format!("{got}"),
        };
        let n = self.params.len();
        if snapshot.parameters.len() != n {
            return Err(shape("parameters", n, snapshot.parameters.len()));
        }
        let widths: Vec<usize> = self
            .layers
            .iter()
            .filter_map(|l| match l {
                Layer::BatchNorm(b) => Some(b.width),
                Layer::Dense(_) | Layer::Dropout(_) => None,
            })
            .collect();
        if snapshot.running.len() != widths.len() {
            return Err(shape(
                "batch-norm layers",
                widths.len(),
                snapshot.running.len(),
            ));
        }
        for (&w, (mean, var)) in widths.iter().zip(&snapshot.running) {
            if mean.len() != w || var.len() != w {
                return Err(shape(
                    "running statistics per batch-norm column",
                    w,
                    mean.len().max(var.len()),
                ));
            }
        }
        for (what, v) in [
            ("optimizer first moments", &snapshot.optimizer.first),
            ("optimizer second moments", &snapshot.optimizer.second),
            ("optimizer third moments", &snapshot.optimizer.third),
        ] {
            if !v.is_empty() && v.len() != n {
                return Err(shape(what, n, v.len()));
            }
        }
        Ok(())
    }

    /// Parameters and running statistics from a checked `snapshot`.
    fn put_weights(&mut self, snapshot: &Snapshot) {
        self.params.copy_from_slice(&snapshot.parameters);
        let norms = self.layers.iter_mut().filter_map(|l| match l {
            Layer::BatchNorm(b) => Some(b),
            Layer::Dense(_) | Layer::Dropout(_) => None,
        });
        for (b, (mean, var)) in norms.zip(&snapshot.running) {
            b.running_mean.copy_from_slice(mean);
            b.running_var.copy_from_slice(var);
        }
        self.ws.phase = super::step::Phase::Idle;
    }
}
