//! The fully connected layer.
//!
//! For a batch `X` (`m × n_in`), weights `W` (`n_in × n_out`, row-major) and bias `b`:
//!
//! ```text
//! forward   Z = X·W + b            A = g(Z)
//! backward  dZ = dA ⊙ g'(Z)        (done by the activation, from A)
//!           dW = Xᵀ·dZ             db = Σ_rows dZ
//!           dX = dZ·Wᵀ
//! ```
//!
//! All three products go through [`crate::gemm::gemm`] in `f32`, or
//! [`crate::gemm::bf16`] in [`Precision::Bf16`].

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::Precision;
use crate::activation::Activation;
use crate::gemm::{self, bf16};
use crate::kernels::reduce;

/// A fully connected layer: `A = g(X·W + b)`.
///
/// Its weights are the `inputs × outputs` block at [`Dense::offset`] of the
/// network's parameters, followed by the `outputs` biases.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    /// Input width `n_in`.
    pub inputs: usize,
    /// Output width `n_out`.
    pub outputs: usize,
    /// The activation `g`.
    pub activation: Activation,
    /// Offset of `W` in the network's flat parameter buffer (`b` follows it).
    pub offset: usize,
}

impl Dense {
    /// `n_in·n_out + n_out`.
    pub fn parameter_count(&self) -> usize {
        self.inputs * self.outputs + self.outputs
    }

    /// This layer's `(W, b)` within a flat buffer laid out like the network's parameters.
    pub(crate) fn split<'a>(&self, flat: &'a [f32]) -> (&'a [f32], &'a [f32]) {
        let w_len = self.inputs * self.outputs;
        let own = &flat[self.offset..self.offset + w_len + self.outputs];
        own.split_at(w_len)
    }

    /// Mutable `(dW, db)` within a flat buffer laid out like the network's parameters.
    pub(crate) fn split_mut<'a>(&self, flat: &'a mut [f32]) -> (&'a mut [f32], &'a mut [f32]) {
        let w_len = self.inputs * self.outputs;
        let own = &mut flat[self.offset..self.offset + w_len + self.outputs];
        own.split_at_mut(w_len)
    }

    /// `out = g(x·W + b)` for `rows` rows; with `activate = false` the activation is
    /// left for the caller (the output layer keeps its logits). Returns whether
    /// every `x·W + b` was finite (when not, the caller looks for a NaN or
    /// infinity in `x`: see [`gemm::Epilogue`]).
    ///
    /// The bias, and ReLU, are applied by the product's epilogue; other
    /// activations in a pass of their own.
    pub(crate) fn forward(
        &self,
        params: &[f32],
        x: &[f32],
        out: &mut [f32],
        rows: usize,
        activate: bool,
        precision: Precision,
    ) -> bool {
        let w = self.weights(params);
        self.forward_by(
            params,
            x,
            out,
            rows,
            activate,
            |x, z, epilogue| match precision {
                Precision::F32 => gemm::gemm_bias(x, w, z, epilogue),
                Precision::Bf16 => bf16::gemm_bf16_bias(x, w, z, epilogue),
            },
        )
    }

    /// This layer's weights as an `inputs × outputs` view of `params`.
    pub(crate) fn weights<'a>(&self, params: &'a [f32]) -> ArrayView2<'a, f32> {
        view(self.split(params).0, self.inputs, self.outputs)
    }

    /// [`Dense::forward`] in bf16 with this layer's weights packed beforehand
    /// (`packed`, made from [`Dense::weights`]): the same bits.
    pub(crate) fn forward_packed(
        &self,
        params: &[f32],
        packed: &bf16::PackedWeights,
        x: &[f32],
        out: &mut [f32],
        rows: usize,
        activate: bool,
    ) -> bool {
        self.forward_by(params, x, out, rows, activate, |x, z, epilogue| {
            packed.gemm_bias(x, z, epilogue)
        })
    }

    /// [`Dense::forward`] with `product(x, z, epilogue)` computing
    /// `z = g(x·W + b)` for the bias and ReLU of `epilogue`.
    fn forward_by(
        &self,
        params: &[f32],
        x: &[f32],
        out: &mut [f32],
        rows: usize,
        activate: bool,
        product: impl FnOnce(
            ArrayView2<'_, f32>,
            ArrayViewMut2<'_, f32>,
            &gemm::Epilogue<'_>,
        ) -> crate::Result<()>,
    ) -> bool {
        let (_, b) = self.split(params);
        let x = view(x, rows, self.inputs);
        let z = &mut out[..rows * self.outputs];
        let act = if activate {
            self.activation
        } else {
            Activation::Identity
        };
        let epilogue = gemm::Epilogue::new(b, act == Activation::Relu);
        product(x, view_mut(z, rows, self.outputs), &epilogue)
            .expect("dense forward: shapes are fixed by construction");
        if !matches!(act, Activation::Identity | Activation::Relu) {
            act.forward_in_place(z, self.outputs);
        }
        !epilogue.saw_non_finite()
    }

    /// Parameter gradients from `dz` (`rows × n_out`, already through the
    /// activation): `dW (+)= xᵀ·dz`, `db (+)= Σ dz`. With `accumulate`, they are
    /// added to what `grads` holds.
    pub(crate) fn backward(
        &self,
        x: &[f32],
        dz: &[f32],
        rows: usize,
        grads: &mut [f32],
        accumulate: bool,
        precision: Precision,
    ) {
        let (dw, db) = self.split_mut(grads);
        let beta = if accumulate { 1.0 } else { 0.0 };
        let xv = view(x, rows, self.inputs);
        let dzv = view(dz, rows, self.outputs);
        let dw = view_mut(dw, self.inputs, self.outputs);
        match precision {
            Precision::F32 => gemm::gemm(1.0, xv.t(), dzv, beta, dw),
            Precision::Bf16 => bf16::gemm_bf16(xv.t(), dzv, dw, accumulate),
        }
        .expect("dense backward: shapes are fixed by construction");
        reduce::column_sums(dz, db, accumulate);
    }

    /// `dx = dz·Wᵀ` for a block of `rows` rows: `dz` is `rows × n_out`, `dx`
    /// `rows × n_in`.
    pub(crate) fn input_gradient(
        &self,
        params: &[f32],
        dz: &[f32],
        rows: usize,
        dx: &mut [f32],
        precision: Precision,
    ) {
        let (w, _) = self.split(params);
        let w = view(w, self.inputs, self.outputs);
        let (dz, dx) = (
            view(dz, rows, self.outputs),
            view_mut(dx, rows, self.inputs),
        );
        match precision {
            Precision::F32 => gemm::gemm(1.0, dz, w.t(), 0.0, dx),
            Precision::Bf16 => bf16::gemm_bf16(dz, w.t(), dx, false),
        }
        .expect("dense input gradient: shapes are fixed by construction");
    }
}

/// The first `rows × cols` values of `data` as a row-major view.
pub(crate) fn view(data: &[f32], rows: usize, cols: usize) -> ArrayView2<'_, f32> {
    ArrayView2::from_shape((rows, cols), &data[..rows * cols])
        .expect("buffer sized by the workspace")
}

/// The first `rows × cols` values of `data` as a mutable row-major view.
pub(crate) fn view_mut(data: &mut [f32], rows: usize, cols: usize) -> ArrayViewMut2<'_, f32> {
    ArrayViewMut2::from_shape((rows, cols), &mut data[..rows * cols])
        .expect("buffer sized by the workspace")
}
