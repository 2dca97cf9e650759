//! The checks a network makes of what it is given, and the errors they return:
//! feature matrices, the rows batch normalisation needs, a loss that stopped
//! being finite. Each is written once, here.

use ndarray::ArrayView2;

use super::Network;
use crate::error::{Error, Result, shape_str};
use crate::kernels;
use crate::layers::Layer;

/// The error for a NaN or infinity at `(row, col)` of the features.
pub(super) fn non_finite(context: &'static str, (row, col, value): (usize, usize, f32)) -> Error {
    Error::NonFinite {
        context,
        row,
        col,
        value,
    }
}

impl Network {
    /// Checks a feature matrix's shape: `inputs` columns, at least one row.
    fn check_feature_shape(&self, x: &ArrayView2<'_, f32>, context: &'static str) -> Result<()> {
        if x.nrows() == 0 {
            return Err(Error::Empty(context));
        }
        if x.ncols() != self.inputs {
            return Err(Error::Shape {
                context,
                expected: format!("{} columns (the network's inputs)", self.inputs),
                got: shape_str(x.nrows(), x.ncols()),
            });
        }
        Ok(())
    }

    /// Checks a feature matrix: `inputs` columns, at least one row, all finite.
    pub(crate) fn check_features(
        &self,
        x: &ArrayView2<'_, f32>,
        context: &'static str,
    ) -> Result<()> {
        self.check_feature_shape(x, context)?;
        match kernels::first_non_finite_in(x) {
            Some(bad) => Err(non_finite(context, bad)),
            None => Ok(()),
        }
    }

    /// Whether the first layer's product vouches for its input being finite, so
    /// that the input need only be scanned when the product says otherwise (see
    /// [`crate::gemm::Epilogue`]): a dense first layer. The scan would otherwise read
    /// the whole batch from memory once more before the product reads it.
    fn scans_input_lazily(&self) -> bool {
        matches!(self.layers.first(), Some(Layer::Dense(_)))
    }

    /// The checks of a feature matrix that a pass must make before it starts:
    /// its shape, and its values too unless the first layer vouches for them.
    pub(super) fn check_features_up_front(
        &self,
        x: &ArrayView2<'_, f32>,
        context: &'static str,
    ) -> Result<()> {
        if self.scans_input_lazily() {
            self.check_feature_shape(x, context)
        } else {
            self.check_features(x, context)
        }
    }

    /// Whether any layer is batch normalisation.
    pub(crate) fn has_batch_norm(&self) -> bool {
        self.layers.iter().any(|l| matches!(l, Layer::BatchNorm(_)))
    }

    /// Batch normalisation cannot normalise fewer than 2 rows.
    ///
    /// # Errors
    /// [`Error::Config`] when the network has batch norm and `rows < 2`.
    pub(crate) fn check_batch_norm_rows(&self, rows: usize) -> Result<()> {
        if self.has_batch_norm() && rows < 2 {
            return Err(Error::Config(
                "batch normalisation needs at least 2 training rows".into(),
            ));
        }
        Ok(())
    }
}
