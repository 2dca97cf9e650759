//! Where the epoch loop gets its mini-batches: arrays in memory (checked once,
//! up front) or a [`DataSource`] (each batch checked as it is read), and the
//! shuffle of each epoch.

use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

use crate::error::{Error, Result};
use crate::network::Network;
use crate::source::{Batch, DataSource};
use crate::targets::Targets;

/// Where the epoch loop gets a mini-batch: the features (row-major), the
/// targets, and the indices of the batch's rows in them.
pub(super) trait BatchRows {
    /// Whether rows may be visited in shuffled order.
    fn random_access(&self) -> bool;
    /// The batch of rows `idx`, checked against `net` where not checked up front.
    fn load<'b>(
        &'b mut self,
        idx: &'b [usize],
        net: &Network,
    ) -> Result<(&'b [f32], Targets<'b>, &'b [usize])>;
}

/// Arrays in memory, checked once before training.
pub(super) struct InMemory<'x, 'y> {
    pub(super) x: &'x [f32],
    pub(super) y: Targets<'y>,
}

impl BatchRows for InMemory<'_, '_> {
    fn random_access(&self) -> bool {
        true
    }
    fn load<'b>(
        &'b mut self,
        idx: &'b [usize],
        _: &Network,
    ) -> Result<(&'b [f32], Targets<'b>, &'b [usize])> {
        let y = match &self.y {
            Targets::Classes(c) => Targets::Classes(c.view()),
            Targets::Values(v) => Targets::Values(v.view()),
        };
        Ok((self.x, y, idx))
    }
}

/// A [`DataSource`]: each batch is read into a buffer and checked.
pub(super) struct FromSource<'s, S> {
    pub(super) source: &'s mut S,
    pub(super) batch: Batch,
    pub(super) local: Vec<usize>,
}

impl<S: DataSource> BatchRows for FromSource<'_, S> {
    fn random_access(&self) -> bool {
        self.source.random_access()
    }
    fn load<'b>(
        &'b mut self,
        idx: &'b [usize],
        net: &Network,
    ) -> Result<(&'b [f32], Targets<'b>, &'b [usize])> {
        self.source.read(idx, &mut self.batch)?;
        // Errors name the row in the whole data set, not in the batch.
        let whole = |e: Error| match e {
            Error::NonFinite {
                context,
                row,
                col,
                value,
            } => Error::NonFinite {
                context,
                row: idx[row],
                col,
                value,
            },
            Error::LabelOutOfRange {
                context,
                row,
                label,
                classes,
            } => Error::LabelOutOfRange {
                context,
                row: idx[row],
                label,
                classes,
            },
            Error::InvalidTarget {
                context,
                row,
                col,
                value,
                reason,
            } => Error::InvalidTarget {
                context,
                row: idx[row],
                col,
                value,
                reason,
            },
            other => other,
        };
        net.check_features(&self.batch.features(), "fit_source: features")
            .map_err(whole)?;
        let m = idx.len();
        net.loss()
            .check_targets(
                &self.batch.targets(),
                net.outputs(),
                m,
                "fit_source: targets",
            )
            .map_err(whole)?;
        if self.local.len() < m {
            self.local.extend(self.local.len()..m);
        }
        let x = self.batch.features();
        let x = x.to_slice().expect("a batch is contiguous");
        Ok((x, self.batch.targets(), &self.local[..m]))
    }
}

/// The shuffling generator of epoch `epoch`: a function of the seed and the
/// epoch's number only.
pub(super) fn epoch_rng(seed: u64, epoch: usize) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}
