//! The standard benchmark workloads (defined in `docs/WORKLOADS.md` in the repository), runnable from
//! the library, the `feedforward bench` command and criterion alike.
//!
//! | name  | network             | output / loss      | optimizer | batch | timed                  |
//! |-------|---------------------|--------------------|-----------|-------|------------------------|
//! | W1    | 784-512-256-10      | softmax, CE        | Adam 1e-3 | 256   | training steps         |
//! | W2    | 1024-4096-4096-1024 | identity, MSE      | SGD 1e-3  | 4096  | training steps         |
//! | W3    | W1's                | softmax            | —         | 4096  | forward passes         |
//! | W3b   | W1's                | softmax            | —         | 1     | one forward pass       |
//! | SGEMM | 4096 × 4096 × 4096  |                    |           |       | `C = A·B`              |
//!
//! Hidden layers use ReLU. Data are synthetic and seeded, generated before timing:
//! up to eight mini-batches of standard-normal features (class indices or
//! standard-normal targets), cycled through; fewer when they are large (W3: four
//! of 13 MB), one when a batch alone is beyond every cache (W2: 32 MiB). Weights start He-uniform, biases at zero. A training
//! step costs `6·batch·Σ n_in·n_out` FLOPs, a forward pass `2·batch·Σ n_in·n_out`.

use std::time::Instant;

use ndarray::{Array1, Array2};
use rand::RngExt;
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use rand_distr::{Distribution, StandardNormal};

use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::init::Init;
use crate::loss::Loss;
use crate::network::BatchNormMode;
use crate::network::{Network, Predictor};
use crate::optim::Optimizer;
use crate::precision::Precision;
use crate::targets::Targets;

/// Distinct mini-batches generated per run and cycled through (as the peers do),
/// unless they would take more than [`DATA_BUDGET`] bytes.
const BATCHES: usize = 8;

/// Memory for pre-generated mini-batches: large batches cycle through fewer, so
/// that peak memory measures the training step rather than the test data.
const DATA_BUDGET: usize = 64 << 20;

/// The shortest warm-up, in seconds: a BLAS library's worker threads can spin
/// for a while after it loads (OpenBLAS's did for about 0.1 s here, turning a
/// 22 µs batch-1 median into 34 µs when the timed calls started within it).
/// A short warm-up is followed by a pause, not by more calls.
pub const MIN_WARMUP_SECONDS: f64 = 0.25;

/// A batch of at least this many bytes (W2 at 4096 rows: 16 MiB of features and
/// 16 MiB of targets) is far larger than any cache, so cycling through several
/// distinct ones would measure nothing more than one does: one is generated.
const LARGE_BATCH: usize = 32 << 20;

/// One of the standard workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Workload {
    /// "mnist-shape" training.
    W1,
    /// "large-batch" training.
    W2,
    /// Inference throughput, batch 4096.
    W3,
    /// Inference latency, batch 1.
    W3b,
    /// The machine's matrix-multiply limit.
    Sgemm,
}

impl Workload {
    /// Every workload, in report order (SGEMM first: the others are measured against it).
    pub const ALL: [Workload; 5] = [
        Workload::Sgemm,
        Workload::W1,
        Workload::W2,
        Workload::W3,
        Workload::W3b,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::W1 => "W1",
            Workload::W2 => "W2",
            Workload::W3 => "W3",
            Workload::W3b => "W3b",
            Workload::Sgemm => "SGEMM",
        }
    }

    /// Parses a name (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        Workload::ALL
            .into_iter()
            .find(|w| w.name().eq_ignore_ascii_case(name))
    }

    /// Layer widths, input first (SGEMM: `[n, n, n]`).
    pub fn widths(self) -> &'static [usize] {
        match self {
            Workload::W1 | Workload::W3 | Workload::W3b => &[784, 512, 256, 10],
            Workload::W2 => &[1024, 4096, 4096, 1024],
            Workload::Sgemm => &[4096, 4096, 4096],
        }
    }

    /// The standard batch size.
    pub fn batch(self) -> usize {
        match self {
            Workload::W1 => 256,
            Workload::W2 | Workload::W3 | Workload::Sgemm => 4096,
            Workload::W3b => 1,
        }
    }

    /// Timed steps and warm-up steps of a full run (as the peers' `run_all.sh`).
    pub fn default_steps(self) -> (usize, usize) {
        match self {
            Workload::W1 => (500, 50),
            Workload::W2 => (10, 2),
            Workload::W3 => (100, 10),
            Workload::W3b => (5000, 500),
            Workload::Sgemm => (5, 1),
        }
    }

    /// Whether the timed call is a training step.
    pub fn is_training(self) -> bool {
        matches!(self, Workload::W1 | Workload::W2)
    }

    /// FLOPs of one timed call at `batch` rows.
    pub fn flops(self, batch: usize) -> f64 {
        let w = self.widths();
        if self == Workload::Sgemm {
            return 2.0 * (w[0] * w[1] * w[2]) as f64;
        }
        let macs: usize = w.windows(2).map(|p| p[0] * p[1]).sum();
        let per_mac = if self.is_training() { 6.0 } else { 2.0 };
        per_mac * (batch * macs) as f64
    }
}

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct BenchConfig {
    /// The workload.
    pub workload: Workload,
    /// Threads for rayon and BLAS.
    pub threads: usize,
    /// Timed calls.
    pub steps: usize,
    /// Untimed calls first; unless 0, the timed calls start no sooner than
    /// [`MIN_WARMUP_SECONDS`] after the first of them.
    pub warmup: usize,
    /// Batch size (default: the workload's).
    pub batch: Option<usize>,
    /// Seed for data and weights.
    pub seed: u64,
    /// Training in micro-batches of at most this many rows (see
    /// [`Network::train_step_micro`](crate::Network::train_step_micro)); `None` for the whole batch at once.
    pub micro_batch: Option<usize>,
    /// The precision of the products ([`Precision::Bf16`]: bf16 operands, `f32`
    /// sums; inference with the weights packed once, [`Network::predictor`]).
    pub precision: Precision,
}

/// What a run measured; field names match the peers' benchmark script.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BenchResult {
    /// The workload.
    pub workload: Workload,
    /// Threads used.
    pub threads: usize,
    /// Batch size.
    pub batch: usize,
    /// Timed calls.
    pub steps: usize,
    /// Untimed calls.
    pub warmup: usize,
    /// Samples per second over the timed calls.
    pub samples_per_s: f64,
    /// Achieved GFLOP/s over the timed calls.
    pub gflops: f64,
    /// Median time per call, µs.
    pub us_per_call_median: f64,
    /// Mean time per call, µs.
    pub us_per_call_mean: f64,
    /// Peak resident memory of the process so far (VmHWM), MB, where the OS tells.
    pub peak_rss_mb: Option<f64>,
    /// Training: the last step's loss (before its update). Inference: the mean
    /// cross-entropy of the last call's outputs.
    pub final_loss: Option<f32>,
    /// The precision of the products.
    pub precision: Precision,
}

impl BenchResult {
    /// One JSON object on one line, with the peers' field names, plus
    /// `sgemm_fraction` when the same run's SGEMM GFLOP/s is given. A figure
    /// that is not finite (a diverged loss) is written as `null`.
    ///
    /// ```
    /// use feedforward::bench::{BenchResult, Workload};
    /// let r = BenchResult {
    ///     workload: Workload::W1, threads: 1, batch: 256, steps: 10, warmup: 1,
    ///     samples_per_s: 1000.0, gflops: 3.2109, us_per_call_median: 256.0,
    ///     us_per_call_mean: 260.0, peak_rss_mb: None, final_loss: Some(f32::NAN),
    ///     precision: feedforward::Precision::Bf16,
    /// };
    /// let v: serde_json::Value = serde_json::from_str(&r.to_json(Some(100.0))).unwrap();
    /// assert_eq!(v["final_loss"], serde_json::Value::Null);
    /// assert_eq!(v["gflops"], 3.211);
    /// assert_eq!(v["sgemm_fraction"], 0.0321);
    /// let back = BenchResult::from_json(&r.to_json(None))?;
    /// assert_eq!((back.workload, back.gflops, back.final_loss), (Workload::W1, 3.211, None));
    /// assert_eq!(back.precision, feedforward::Precision::Bf16);
    /// # Ok::<(), feedforward::Error>(())
    /// ```
    pub fn to_json(&self, sgemm_gflops: Option<f64>) -> String {
        /// `v` to `digits` decimals: the figures a run can tell apart.
        fn rounded(v: f64, digits: i32) -> f64 {
            let scale = 10f64.powi(digits);
            (v * scale).round() / scale
        }
        let mut line = serde_json::json!({
            "framework": "feedforward",
            "backend": crate::gemm::BACKEND,
            "isa": crate::gemm::isa().name(),
            "workload": self.workload.name(),
            "threads": self.threads,
            "batch": self.batch,
            "steps": self.steps,
            "warmup": self.warmup,
            "samples_per_s": rounded(self.samples_per_s, 2),
            "gflops": rounded(self.gflops, 3),
            "us_per_call_median": rounded(self.us_per_call_median, 2),
            "us_per_call_mean": rounded(self.us_per_call_mean, 2),
            "peak_rss_mb": self.peak_rss_mb.map(|v| rounded(v, 3)),
            "final_loss": self.final_loss.map(|v| rounded(f64::from(v), 6)),
            "precision": self.precision.name(),
        });
        if let Some(s) = sgemm_gflops.filter(|&s| s > 0.0 && self.workload != Workload::Sgemm) {
            line["sgemm_fraction"] = rounded(self.gflops / s, 4).into();
        }
        line.to_string()
    }

    /// Reads a line written by [`BenchResult::to_json`] back (fields it does not
    /// hold, such as `isa`, are ignored; figures come back rounded as written).
    ///
    /// # Errors
    /// [`Error::Config`] naming what is wrong with the line.
    pub fn from_json(line: &str) -> Result<BenchResult> {
        #[derive(serde::Deserialize)]
        struct Line {
            workload: String,
            threads: usize,
            batch: usize,
            steps: usize,
            warmup: usize,
            samples_per_s: f64,
            gflops: f64,
            us_per_call_median: f64,
            us_per_call_mean: f64,
            peak_rss_mb: Option<f64>,
            final_loss: Option<f32>,
            /// Absent in lines written before bf16: those ran in f32.
            #[serde(default)]
            precision: Option<String>,
        }
        let l: Line = serde_json::from_str(line)
            .map_err(|e| Error::Config(format!("a benchmark result line: {e}")))?;
        let workload = Workload::from_name(&l.workload)
            .ok_or_else(|| Error::Config(format!("unknown workload {:?}", l.workload)))?;
        let precision = match l.precision {
            Some(p) => p.parse().map_err(Error::Config)?,
            None => Precision::F32,
        };
        Ok(BenchResult {
            precision,
            workload,
            threads: l.threads,
            batch: l.batch,
            steps: l.steps,
            warmup: l.warmup,
            samples_per_s: l.samples_per_s,
            gflops: l.gflops,
            us_per_call_median: l.us_per_call_median,
            us_per_call_mean: l.us_per_call_mean,
            peak_rss_mb: l.peak_rss_mb,
            final_loss: l.final_loss,
        })
    }
}

/// Peak resident set size of this process (Linux `VmHWM`) in MiB, as the peers
/// report it (`ru_maxrss` KiB / 1024); `None` where `/proc` is not available.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The workload's network: ReLU hidden layers, He-uniform weights, zero biases.
pub fn network(workload: Workload, seed: u64) -> Result<Network> {
    let w = workload.widths();
    let mut b = Network::builder(w[0]).init(Init::HeUniform).seed(seed);
    for &width in &w[1..w.len() - 1] {
        b = b.dense(width, Activation::Relu);
    }
    let out = *w.last().expect("widths");
    b = match workload {
        Workload::W2 => b
            .dense(out, Activation::Identity)
            .loss(Loss::MeanSquaredError)
            .optimizer(Optimizer::sgd(1e-3)),
        _ => b
            .dense(out, Activation::Softmax)
            .optimizer(Optimizer::adam(1e-3)),
    };
    b.build()
}

/// Runs one workload on a pool of `config.threads` threads.
///
/// # Errors
/// [`Error::Config`] for zero threads, steps or batch size.
pub fn run(config: &BenchConfig) -> Result<BenchResult> {
    if config.threads == 0 || config.steps == 0 || config.batch == Some(0) {
        return Err(Error::Config(
            "threads, steps and batch must be at least 1".into(),
        ));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.threads)
        .build()
        .map_err(|e| Error::Backend(e.to_string()))?;
    pool.install(|| run_in_pool(config))
}

fn run_in_pool(config: &BenchConfig) -> Result<BenchResult> {
    let w = config.workload;
    let batch = config.batch.unwrap_or(w.batch());
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(config.seed);
    let mut timer = Timer {
        config,
        times: Vec::with_capacity(config.steps),
        final_loss: None,
    };
    if w == Workload::Sgemm {
        let n = w.widths()[0];
        let a = normal_matrix(n, n, &mut rng);
        let b = normal_matrix(n, n, &mut rng);
        let mut c = Array2::zeros((n, n));
        timer.measure(&mut || {
            crate::gemm::gemm(1.0, a.view(), b.view(), 0.0, c.view_mut()).map(|()| None)
        })?;
    } else {
        let data = Batches::new(w, batch, &mut rng);
        let mut net = network(w, config.seed)?;
        net.set_precision(config.precision);
        let mut t = 0usize;
        // The whole loop runs inside the pool: kernels start from a worker thread.
        if w.is_training() {
            let mut call = || {
                t += 1;
                data.train(&mut net, (t - 1) % data.xs.len(), config)
            };
            rayon::scope(|_| timer.measure(&mut call))?;
        } else {
            let predictor = net.predictor();
            let mut call = || {
                t += 1;
                data.infer(&predictor, (t - 1) % data.xs.len())
            };
            rayon::scope(|_| timer.measure(&mut call))?;
        }
    }
    Ok(timer.result(w, batch))
}

/// Times the calls of one run.
struct Timer<'c> {
    config: &'c BenchConfig,
    times: Vec<f64>,
    final_loss: Option<f32>,
}

impl Timer<'_> {
    /// `warmup` calls of `f`, a pause until [`MIN_WARMUP_SECONDS`] have passed
    /// (unless `warmup` is 0), then `steps` timed calls. The pause rather than
    /// more calls keeps the number of steps, and so the final loss, the same in
    /// every run.
    fn measure(&mut self, f: &mut dyn FnMut() -> Result<Option<f32>>) -> Result<()> {
        let begun = Instant::now();
        for _ in 0..self.config.warmup {
            self.final_loss = f()?;
        }
        if self.config.warmup > 0 {
            let rest = MIN_WARMUP_SECONDS - begun.elapsed().as_secs_f64();
            std::thread::sleep(std::time::Duration::from_secs_f64(rest.max(0.0)));
        }
        for _ in 0..self.config.steps {
            let start = Instant::now();
            self.final_loss = f()?;
            self.times.push(start.elapsed().as_secs_f64());
        }
        Ok(())
    }

    /// The figures of the timed calls of workload `w` at `batch` rows.
    fn result(&self, w: Workload, batch: usize) -> BenchResult {
        let config = self.config;
        let total: f64 = self.times.iter().sum();
        let mut sorted = self.times.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        let rows = if w == Workload::Sgemm {
            w.widths()[0]
        } else {
            batch
        };
        BenchResult {
            workload: w,
            threads: config.threads,
            batch: rows,
            steps: config.steps,
            warmup: config.warmup,
            samples_per_s: (rows * config.steps) as f64 / total,
            gflops: w.flops(batch) * config.steps as f64 / total / 1e9,
            us_per_call_median: median * 1e6,
            us_per_call_mean: total / config.steps as f64 * 1e6,
            peak_rss_mb: peak_rss_mb(),
            final_loss: self.final_loss,
            precision: config.precision,
        }
    }
}

/// The batches a network workload cycles through: features, class labels and
/// (W2) target values, drawn from the run's generator in that order.
struct Batches {
    xs: Vec<Array2<f32>>,
    classes: Vec<Array1<usize>>,
    values: Vec<Array2<f32>>,
    w: Workload,
}

impl Batches {
    fn new(w: Workload, batch: usize, rng: &mut Xoshiro256PlusPlus) -> Batches {
        let widths = w.widths();
        let (n_in, n_out) = (widths[0], *widths.last().expect("widths"));
        let batch_bytes = 4 * batch * (n_in + if w == Workload::W2 { n_out } else { 1 });
        let batches = if batch_bytes >= LARGE_BATCH {
            1
        } else {
            (DATA_BUDGET / batch_bytes.max(1)).clamp(1, BATCHES)
        };
        let xs = (0..batches)
            .map(|_| normal_matrix(batch, n_in, rng))
            .collect();
        let classes = (0..batches)
            .map(|_| Array1::from_shape_fn(batch, |_| rng.random_range(0..n_out)))
            .collect();
        let values = if w == Workload::W2 {
            (0..batches)
                .map(|_| normal_matrix(batch, n_out, rng))
                .collect()
        } else {
            Vec::new()
        };
        Batches {
            xs,
            classes,
            values,
            w,
        }
    }

    /// A training step on batch `k`: its loss.
    fn train(&self, net: &mut Network, k: usize, config: &BenchConfig) -> Result<Option<f32>> {
        let (x, classes) = (self.xs[k].view(), &self.classes[k]);
        let targets = if self.w == Workload::W2 {
            Targets::Values(self.values[k].view())
        } else {
            Targets::Classes(classes.view())
        };
        match config.micro_batch {
            Some(c) => net.train_step_micro(x, targets, c, BatchNormMode::Exact),
            None => net.train_step(x, targets),
        }
        .map(Some)
    }

    /// Inference on batch `k`: the cross-entropy of its predictions.
    fn infer(&self, predictor: &Predictor<'_>, k: usize) -> Result<Option<f32>> {
        let (x, classes) = (self.xs[k].view(), &self.classes[k]);
        let p = predictor.predict_proba(x)?;
        let ce = p
            .rows()
            .into_iter()
            .zip(classes.iter())
            .map(|(row, &c)| -f64::from(row[c].max(1e-30)).ln())
            .sum::<f64>()
            / x.nrows() as f64;
        Ok(Some(ce as f32))
    }
}

fn normal_matrix(rows: usize, cols: usize, rng: &mut Xoshiro256PlusPlus) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |_| StandardNormal.sample(rng))
}
