//! Inference: [`Network::predict_proba`], [`Network::predict`] and
//! [`Network::evaluate`], on `&self`, in chunks of rows so that memory stays flat.

use ndarray::{Array1, Array2, ArrayView2};

use super::Network;
use super::checks::non_finite;
use crate::Precision;
use crate::error::Result;
use crate::gemm::bf16::PackedWeights;
use crate::kernels;
use crate::layers::{Layer, resize};
use crate::loss::argmax;
use crate::targets::{TargetBuffer, Targets};

/// Rows per pass in inference, so that predicting on a large set keeps memory flat.
const INFERENCE_ROWS: usize = 4096;

/// Loss and accuracy of a network on a data set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Mean loss over the samples.
    pub loss: f32,
    /// Fraction classified correctly (`None` for regression).
    pub accuracy: Option<f32>,
}

/// Reusable buffers for inference, which runs on `&self`: taken under a lock when
/// free, otherwise a caller allocates its own.
#[derive(Debug, Default)]
pub(super) struct InferenceScratch(std::sync::Mutex<Vec<f32>>);

impl Clone for InferenceScratch {
    fn clone(&self) -> Self {
        InferenceScratch::default()
    }
}

impl Network {
    /// Inference-mode pass (batch norm uses running statistics) in chunks of rows;
    /// returns the output layer's activations, or its logits when `activate_last` is false.
    ///
    /// `x` has passed [`Network::check_features_up_front`]; a NaN or infinity
    /// found by a dense first layer is reported with `context`.
    ///
    /// `packed[l]`, where there is one, holds layer `l`'s weights packed for
    /// the bf16 products ([`Predictor`]).
    fn infer(
        &self,
        x: ArrayView2<'_, f32>,
        activate_last: bool,
        context: &'static str,
        packed: &[Option<PackedWeights>],
    ) -> Result<Array2<f32>> {
        let (rows, k) = (x.nrows(), self.outputs());
        let x = x.as_standard_layout();
        let x = x.as_slice().expect("standard layout");
        let chunk = rows.min(INFERENCE_ROWS);
        let max_width = self.layers.iter().map(Layer::outputs).max().unwrap_or(0);
        let mut guard = self.scratch.0.try_lock();
        let mut own = Vec::new();
        let scratch: &mut Vec<f32> = match guard {
            Ok(ref mut g) => g,
            Err(_) => &mut own,
        };
        resize(scratch, 2 * chunk * max_width + max_width);
        let (b0, rest) = scratch.split_at_mut(chunk * max_width);
        let (b1, inv_std) = rest.split_at_mut(chunk * max_width);
        let mut bufs = [b0, b1];
        let mut out = Array2::zeros((rows, k));
        let out_slice = out.as_slice_mut().expect("standard layout");
        let n_layers = self.layers.len();
        for (c, out_chunk) in out_slice.chunks_mut(chunk * k).enumerate() {
            let r = out_chunk.len() / k.max(1);
            let input = &x[c * chunk * self.inputs..(c * chunk + r) * self.inputs];
            for (l, layer) in self.layers.iter().enumerate() {
                let last = l + 1 == n_layers;
                let activate = !last || activate_last;
                let [b0, b1] = &mut bufs;
                let (src, dst): (&[f32], &mut [f32]) = match (l == 0, l % 2 == 0) {
                    (true, _) => (input, &mut **b0),
                    (false, true) => (&**b1, &mut **b0),
                    (false, false) => (&**b0, &mut **b1),
                };
                let dst: &mut [f32] = if last { out_chunk } else { dst };
                let finite = match layer {
                    Layer::Dense(d) => match packed.get(l) {
                        Some(Some(w)) => d.forward_packed(&self.params, w, src, dst, r, activate),
                        _ => d.forward(&self.params, src, dst, r, activate, self.precision),
                    },
                    Layer::BatchNorm(b) => {
                        b.infer(&self.params, src, dst, r, inv_std, activate);
                        true
                    }
                    Layer::Dropout(d) => {
                        dst[..r * d.width].copy_from_slice(&src[..r * d.width]);
                        true
                    }
                };
                if l == 0
                    && !finite
                    && let Some((row, col, value)) = kernels::first_non_finite(input, self.inputs)
                {
                    return Err(non_finite(context, (c * chunk + row, col, value)));
                }
                if last {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Output activations in inference mode (class probabilities for softmax and
    /// sigmoid outputs), one row per sample.
    ///
    /// # Errors
    /// [`crate::Error::Shape`], [`crate::Error::Empty`] or [`crate::Error::NonFinite`] for a bad `x`.
    pub fn predict_proba(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        const FEATURES: &str = "predict: features";
        self.check_features_up_front(&x, FEATURES)?;
        self.infer(x, true, FEATURES, &[])
    }

    /// Predicted class per sample: the arg-max output, or `output ≥ 0.5` for a
    /// single sigmoid output. (For regression use [`Network::predict_proba`].)
    ///
    /// # Errors
    /// As [`Network::predict_proba`].
    pub fn predict(&self, x: ArrayView2<'_, f32>) -> Result<Array1<usize>> {
        Ok(classes(self.predict_proba(x)?))
    }

    /// Mean loss and accuracy on a data set, in inference mode.
    ///
    /// # Errors
    /// Bad features or targets.
    pub fn evaluate(&self, x: ArrayView2<'_, f32>, targets: Targets<'_>) -> Result<Evaluation> {
        self.evaluate_with(x, targets, &[])
    }

    /// A view of the network for repeated inference: in [`Precision::Bf16`],
    /// each dense layer's weights rounded and packed once, so that no call
    /// converts or packs them again. Computes the same bits as the network's
    /// own methods.
    ///
    /// ```
    /// use feedforward::{Activation::*, Network, Precision};
    /// use ndarray::array;
    /// let mut net = Network::builder(2).dense(8, Relu).dense(3, Softmax).build()?;
    /// net.set_precision(Precision::Bf16);
    /// let x = array![[0.5f32, -1.0], [2.0, 0.25]];
    /// let predictor = net.predictor();
    /// assert_eq!(predictor.predict_proba(x.view())?, net.predict_proba(x.view())?);
    /// # Ok::<(), feedforward::Error>(())
    /// ```
    pub fn predictor(&self) -> Predictor<'_> {
        let weights = match self.precision {
            Precision::F32 => Vec::new(),
            Precision::Bf16 => self
                .layers
                .iter()
                .map(|layer| match layer {
                    Layer::Dense(d) => Some(PackedWeights::new(d.weights(&self.params))),
                    Layer::BatchNorm(_) | Layer::Dropout(_) => None,
                })
                .collect(),
        };
        Predictor { net: self, weights }
    }

    fn evaluate_with(
        &self,
        x: ArrayView2<'_, f32>,
        targets: Targets<'_>,
        packed: &[Option<PackedWeights>],
    ) -> Result<Evaluation> {
        const FEATURES: &str = "evaluate: features";
        self.check_features_up_front(&x, FEATURES)?;
        let (rows, k) = (x.nrows(), self.outputs());
        self.loss
            .check_targets(&targets, k, rows, "evaluate: targets")?;
        let z = self.infer(x, false, FEATURES, packed)?;
        let mut a = z.clone();
        let act = self.layers.last().expect("at least one layer").activation();
        act.forward_in_place(a.as_slice_mut().expect("standard layout"), k);
        let mut buf = TargetBuffer::default();
        buf.gather(&targets, None);
        let mut grad = vec![0.0; rows * k];
        let mut row_loss = vec![0.0; rows];
        let (z, a) = (
            z.as_slice().expect("standard"),
            a.as_slice().expect("standard"),
        );
        let loss = self.loss.fused(
            act,
            z,
            a,
            buf.rows(),
            k,
            1.0 / rows as f32,
            &mut grad,
            &mut row_loss,
        );
        let accuracy = self
            .loss
            .correct(a, buf.rows(), k)
            .map(|(hits, total)| hits as f32 / total.max(1) as f32);
        Ok(Evaluation {
            loss: loss as f32,
            accuracy,
        })
    }
}

/// The predicted class of each row of probabilities: the arg-max, or
/// `p ≥ 0.5` for a single sigmoid output.
fn classes(p: Array2<f32>) -> Array1<usize> {
    if p.ncols() == 1 {
        p.column(0).mapv(|v| usize::from(v >= 0.5))
    } else {
        p.rows()
            .into_iter()
            .map(|r| argmax(r.as_slice().expect("standard layout")))
            .collect()
    }
}

/// A network prepared for repeated inference ([`Network::predictor`]): in
/// [`Precision::Bf16`], its dense layers' weights rounded and packed once. It
/// borrows the network, so the weights cannot change under it.
#[derive(Debug)]
pub struct Predictor<'a> {
    net: &'a Network,
    /// Per layer, the packed weights of a dense layer in bf16.
    weights: Vec<Option<PackedWeights>>,
}

impl Predictor<'_> {
    /// As [`Network::predict_proba`], with the packed weights.
    ///
    /// # Errors
    /// As [`Network::predict_proba`].
    pub fn predict_proba(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        const FEATURES: &str = "predict: features";
        self.net.check_features_up_front(&x, FEATURES)?;
        self.net.infer(x, true, FEATURES, &self.weights)
    }

    /// As [`Network::predict`], with the packed weights.
    ///
    /// # Errors
    /// As [`Network::predict_proba`].
    pub fn predict(&self, x: ArrayView2<'_, f32>) -> Result<Array1<usize>> {
        Ok(classes(self.predict_proba(x)?))
    }

    /// As [`Network::evaluate`], with the packed weights.
    ///
    /// # Errors
    /// As [`Network::evaluate`].
    pub fn evaluate(&self, x: ArrayView2<'_, f32>, targets: Targets<'_>) -> Result<Evaluation> {
        self.net.evaluate_with(x, targets, &self.weights)
    }
}
