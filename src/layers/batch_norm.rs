//! Batch normalisation (Ioffe & Szegedy, 2015), with the full backward pass.
//!
//! Per column, over the `m` rows of a batch:
//!
//! ```text
//! training   μ = mean(x)   σ² = mean((x − μ)²)   x̂ = (x − μ)/√(σ² + ε)   y = γ x̂ + β
//!            running μ ← (1 − momentum)·running μ + momentum·μ
//!            running σ² ← (1 − momentum)·running σ² + momentum·σ²·m/(m − 1)
//! inference  y = γ (x − running μ)/√(running σ² + ε) + β
//! backward   dβ = Σ dy    dγ = Σ dy ⊙ x̂
//!            dx = γ/√(σ² + ε) · (dy − dβ/m − x̂ ⊙ dγ/m)
//! ```
//!
//! The backward formula is the complete derivative through the batch mean and
//! variance (both depend on every row). Dropping those two terms, as the short form
//! `dx = γ dy/√(σ² + ε)` does, is only right in inference mode.

use crate::activation::Activation;
use crate::kernels::{self, reduce};
use crate::layers::resize;

/// Batch normalisation followed by an activation: `A = g(γ ⊙ x̂ + β)`.
///
/// `γ` (`width` values) then `β` sit at [`BatchNorm::offset`] of the network's
/// parameters; the running statistics live here.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNorm {
    /// Number of features (columns).
    pub width: usize,
    /// The activation applied after normalising.
    pub activation: Activation,
    /// Offset of `γ` in the network's flat parameter buffer (`β` follows it).
    pub offset: usize,
    /// Weight of the newest batch in the running statistics (PyTorch's default 0.1).
    pub momentum: f32,
    /// Added to the variance before the square root (default 1e-5).
    pub eps: f32,
    /// Running mean, used in inference.
    pub running_mean: Vec<f32>,
    /// Running (unbiased) variance, used in inference.
    pub running_var: Vec<f32>,
}

impl BatchNorm {
    /// A batch-norm layer with `γ = 1`, `β = 0` (set by the network), running mean 0
    /// and running variance 1.
    pub fn new(width: usize, activation: Activation, offset: usize) -> Self {
        BatchNorm {
            width,
            activation,
            offset,
            momentum: 0.1,
            eps: 1e-5,
            running_mean: vec![0.0; width],
            running_var: vec![1.0; width],
        }
    }

    /// The layer's activation, or the identity when it is not to be applied.
    fn activation_if(&self, activate: bool) -> Activation {
        if activate {
            self.activation
        } else {
            Activation::Identity
        }
    }

    /// `2·width` (γ and β).
    pub fn parameter_count(&self) -> usize {
        2 * self.width
    }

    fn split<'a>(&self, flat: &'a [f32]) -> (&'a [f32], &'a [f32]) {
        flat[self.offset..self.offset + 2 * self.width].split_at(self.width)
    }

    fn split_mut<'a>(&self, flat: &'a mut [f32]) -> (&'a mut [f32], &'a mut [f32]) {
        flat[self.offset..self.offset + 2 * self.width].split_at_mut(self.width)
    }

    /// Training mode: `out = g(γ x̂ + β)` with the batch's statistics for `rows`
    /// rows of `x`; keeps `x̂` and `1/√(σ² + ε)` in `cache` and updates the running
    /// statistics. With `fixed_stats`, the mean, variance and `1/√(σ² + ε)` already
    /// in `cache` (those of a whole batch, under exact micro-batching) are used
    /// instead, and the running statistics are left alone.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn forward(
        &mut self,
        params: &[f32],
        x: &[f32],
        out: &mut [f32],
        rows: usize,
        cache: &mut BatchNormCache,
        activate: bool,
        fixed_stats: bool,
    ) {
        let n = self.width;
        let (x, out) = (&x[..rows * n], &mut out[..rows * n]);
        let (gamma, beta) = self.split(params);
        let act = self.activation_if(activate);
        if !fixed_stats {
            let (mean, var) = (&mut cache.mean[..n], &mut cache.var[..n]);
            reduce::column_mean_var(x, mean, var);
            self.set_statistics(cache, rows);
        }
        let inv_std = &cache.inv_std[..n];
        let mean = &cache.mean[..n];
        let x_hat = &mut cache.x_hat[..rows * n];
        kernels::for_rows_zip(x, n, x_hat, n, |_, x, xh| {
            for (xr, hr) in x.chunks_exact(n).zip(xh.chunks_exact_mut(n)) {
                for j in 0..n {
                    hr[j] = (xr[j] - mean[j]) * inv_std[j];
                }
            }
        });
        let x_hat: &[f32] = x_hat;
        kernels::for_rows_zip(x_hat, n, out, n, |_, xh, o| {
            for (hr, or) in xh.chunks_exact(n).zip(o.chunks_exact_mut(n)) {
                for j in 0..n {
                    or[j] = gamma[j] * hr[j] + beta[j];
                }
            }
            act.forward_rows(o, n);
        });
    }

    /// From the batch mean and (biased) variance of `rows` rows in `cache`: sets
    /// `1/√(σ² + ε)` in `cache` and moves the running statistics toward them.
    pub(crate) fn set_statistics(&mut self, cache: &mut BatchNormCache, rows: usize) {
        let n = self.width;
        let (mean, var) = (&cache.mean[..n], &cache.var[..n]);
        for (s, v) in cache.inv_std[..n].iter_mut().zip(var) {
            *s = 1.0 / (v + self.eps).sqrt();
        }
        let unbias = if rows > 1 {
            rows as f32 / (rows - 1) as f32
        } else {
            1.0
        };
        let mom = self.momentum;
        for j in 0..n {
            self.running_mean[j] = (1.0 - mom) * self.running_mean[j] + mom * mean[j];
            self.running_var[j] = (1.0 - mom) * self.running_var[j] + mom * var[j] * unbias;
        }
    }

    /// `out = g(γ (x − running μ)/√(running σ² + ε) + β)`; `inv_std` is scratch (`width`).
    pub(crate) fn infer(
        &self,
        params: &[f32],
        x: &[f32],
        out: &mut [f32],
        rows: usize,
        inv_std: &mut [f32],
        activate: bool,
    ) {
        let n = self.width;
        let (x, out) = (&x[..rows * n], &mut out[..rows * n]);
        let (gamma, beta) = self.split(params);
        let act = self.activation_if(activate);
        for (s, v) in inv_std.iter_mut().zip(&self.running_var) {
            *s = 1.0 / (v + self.eps).sqrt();
        }
        let (mean, inv_std): (&[f32], &[f32]) = (&self.running_mean, inv_std);
        kernels::for_rows_zip(x, n, out, n, |_, x, o| {
            for (xr, or) in x.chunks_exact(n).zip(o.chunks_exact_mut(n)) {
                for j in 0..n {
                    or[j] = gamma[j] * (xr[j] - mean[j]) * inv_std[j] + beta[j];
                }
            }
            act.forward_rows(o, n);
        });
    }

    /// Parameter gradients from `dy` (`rows × width`, already through the
    /// activation): `dγ (+)= Σ dy ⊙ x̂`, `dβ (+)= Σ dy`; the column sums stay in
    /// `cache` for [`BatchNorm::input_gradient`].
    pub(crate) fn backward(
        &self,
        dy: &[f32],
        rows: usize,
        grads: &mut [f32],
        cache: &mut BatchNormCache,
        accumulate: bool,
    ) {
        let n = self.width;
        let dy = &dy[..rows * n];
        let x_hat = &cache.x_hat[..rows * n];
        let (sum_dy, sum_dy_xhat) = (&mut cache.sum_dy[..n], &mut cache.sum_dy_xhat[..n]);
        reduce::column_sums(dy, sum_dy, false);
        reduce::column_dots(dy, x_hat, sum_dy_xhat, false);
        let (dgamma, dbeta) = self.split_mut(grads);
        for j in 0..n {
            if accumulate {
                dgamma[j] += sum_dy_xhat[j];
                dbeta[j] += sum_dy[j];
            } else {
                dgamma[j] = sum_dy_xhat[j];
                dbeta[j] = sum_dy[j];
            }
        }
    }

    /// `dx = γ/σ · (dy − Σdy/m − x̂·Σ(dy ⊙ x̂)/m)` for the block of rows
    /// `range` of a backward pass over `rows` rows, into `dx` (`range.len() × width`).
    ///
    /// The sums are those [`BatchNorm::backward`] left in `cache`, over `m = rows`;
    /// with `whole_batch = Some(m)` (exact micro-batching) they are the sums over the
    /// whole batch of `m` rows kept in `cache.total_sum_dy*`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn input_gradient(
        &self,
        params: &[f32],
        dy: &[f32],
        cache: &BatchNormCache,
        rows: usize,
        range: std::ops::Range<usize>,
        dx: &mut [f32],
        whole_batch: Option<usize>,
    ) {
        let n = self.width;
        let (gamma, _) = self.split(params);
        let inv_m = 1.0 / whole_batch.unwrap_or(rows) as f32;
        let inv_std = &cache.inv_std[..n];
        let (sum_dy, sum_dy_xhat): (&[f32], &[f32]) = match whole_batch {
            Some(_) => (&cache.total_sum_dy[..n], &cache.total_sum_dy_xhat[..n]),
            None => (&cache.sum_dy[..n], &cache.sum_dy_xhat[..n]),
        };
        let block = range.start * n..range.end * n;
        let (dy, x_hat) = (&dy[block.clone()], &cache.x_hat[block]);
        let dx = &mut dx[..range.len() * n];
        kernels::for_rows_zip3(dy, n, x_hat, n, dx, n, |_, dy, xh, dx| {
            for ((dyr, hr), dxr) in dy
                .chunks_exact(n)
                .zip(xh.chunks_exact(n))
                .zip(dx.chunks_exact_mut(n))
            {
                for j in 0..n {
                    let centred = dyr[j] - sum_dy[j] * inv_m - hr[j] * sum_dy_xhat[j] * inv_m;
                    dxr[j] = gamma[j] * inv_std[j] * centred;
                }
            }
        });
    }
}

/// What a batch-norm layer keeps from its forward pass for its backward pass,
/// besides its output; the network's workspace holds one per batch-norm layer.
#[derive(Debug, Clone, Default)]
pub(crate) struct BatchNormCache {
    /// The normalised input `x̂` (rows × width).
    pub x_hat: Vec<f32>,
    /// `1/√(σ² + ε)` per column.
    pub inv_std: Vec<f32>,
    /// Batch mean per column (scratch for the statistics).
    pub mean: Vec<f32>,
    /// Batch variance per column.
    pub var: Vec<f32>,
    /// This batch's `Σ dY` and `Σ dY ⊙ x̂` per column.
    pub sum_dy: Vec<f32>,
    /// See `sum_dy`.
    pub sum_dy_xhat: Vec<f32>,
    /// Under exact micro-batching: `Σ dY` over the whole logical batch.
    pub total_sum_dy: Vec<f32>,
    /// See `total_sum_dy`: `Σ dY ⊙ x̂` over the whole logical batch.
    pub total_sum_dy_xhat: Vec<f32>,
    /// Under exact micro-batching: rows, mean and `Σ (x − mean)²` of
    /// the whole batch so far, merged chunk by chunk (Chan et al.), in `f64`.
    pub stats_rows: usize,
    /// See `stats_rows`.
    pub stats_mean: Vec<f64>,
    /// See `stats_rows`.
    pub stats_m2: Vec<f64>,
    /// Scratch: the current chunk's mean and `Σ (x − mean)²`.
    pub chunk_mean: Vec<f64>,
    /// See `chunk_mean`.
    pub chunk_m2: Vec<f64>,
}

impl BatchNormCache {
    /// Sizes the cache for `rows` rows of `b`.
    pub(crate) fn reserve(&mut self, b: &BatchNorm, rows: usize) {
        {
            resize(&mut self.x_hat, rows * b.width);
            for v in [
                &mut self.inv_std,
                &mut self.mean,
                &mut self.var,
                &mut self.sum_dy,
                &mut self.sum_dy_xhat,
                &mut self.total_sum_dy,
                &mut self.total_sum_dy_xhat,
            ] {
                resize(v, b.width);
            }
            for v in [
                &mut self.stats_mean,
                &mut self.stats_m2,
                &mut self.chunk_mean,
                &mut self.chunk_m2,
            ] {
                if v.len() < b.width {
                    v.resize(b.width, 0.0);
                }
            }
        }
    }
}

impl BatchNormCache {
    /// Starts merging the statistics of a batch that arrives in chunks.
    pub(crate) fn start_whole_batch(&mut self) {
        self.stats_rows = 0;
    }

    /// The mean and `Σ (x − mean)²` of the `rows` rows of `x` (`width` wide)
    /// into the chunk scratch (`chunk_mean`, `chunk_m2`): one `f64`
    /// accumulator per column, rows in the buffer's order, so the result does
    /// not depend on the thread count.
    pub(crate) fn chunk_statistics(&mut self, x: &[f32], width: usize, rows: usize) {
        let x = &x[..rows * width];
        let r = rows as f64;
        let (mean, m2) = (&mut self.chunk_mean[..width], &mut self.chunk_m2[..width]);
        mean.fill(0.0);
        m2.fill(0.0);
        for row in x.chunks_exact(width) {
            for (s, &v) in mean.iter_mut().zip(row) {
                *s += f64::from(v);
            }
        }
        mean.iter_mut().for_each(|s| *s /= r);
        for row in x.chunks_exact(width) {
            for ((s, &mu), &v) in m2.iter_mut().zip(mean.iter()).zip(row) {
                *s += (f64::from(v) - mu).powi(2);
            }
        }
    }

    /// Adds the chunk scratch, the statistics of `rows` rows, to the whole
    /// batch's, by Chan, Golub and LeVeque's pairwise update.
    pub(crate) fn merge_chunk_statistics(&mut self, width: usize, rows: usize) {
        let seen = self.stats_rows as f64;
        let r = rows as f64;
        let (mean, m2) = (&self.chunk_mean[..width], &self.chunk_m2[..width]);
        for j in 0..width {
            if self.stats_rows == 0 {
                self.stats_mean[j] = mean[j];
                self.stats_m2[j] = m2[j];
            } else {
                let delta = mean[j] - self.stats_mean[j];
                let total = seen + r;
                self.stats_mean[j] += delta * r / total;
                self.stats_m2[j] += m2[j] + delta * delta * seen * r / total;
            }
        }
        self.stats_rows += rows;
    }

    /// Makes the merged statistics of `m` rows the batch mean and (biased)
    /// variance, as [`BatchNorm::set_statistics`] reads them.
    pub(crate) fn finish_whole_batch(&mut self, m: usize) {
        for j in 0..self.stats_mean.len().min(self.mean.len()) {
            self.mean[j] = self.stats_mean[j] as f32;
            self.var[j] = (self.stats_m2[j] / m as f64) as f32;
        }
    }

    /// Clears the sums over the whole batch before its chunks add to them.
    pub(crate) fn start_whole_batch_sums(&mut self) {
        self.total_sum_dy.fill(0.0);
        self.total_sum_dy_xhat.fill(0.0);
    }

    /// Adds this chunk's `Σ dY` and `Σ dY ⊙ x̂` to the whole batch's.
    pub(crate) fn add_chunk_sums(&mut self) {
        for j in 0..self.sum_dy.len() {
            self.total_sum_dy[j] += self.sum_dy[j];
            self.total_sum_dy_xhat[j] += self.sum_dy_xhat[j];
        }
    }
}
