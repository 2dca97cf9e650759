//! `feedforward bench`: the standard workloads of `docs/WORKLOADS.md`, one process per run.

use std::process::Command;

use clap::Args;
use feedforward::bench::{self, BenchConfig, BenchResult, Workload};
use feedforward::distributed::ScalingModel;

use crate::Result;

/// Options of `feedforward bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// Workloads: all, or a comma list of W1, W2, W3, W3b, SGEMM.
    #[arg(long, default_value = "all")]
    pub workload: String,
    /// Thread counts to run each workload with (comma list).
    #[arg(long, default_value = "1,2", value_delimiter = ',')]
    threads: Vec<usize>,
    /// Timed steps (default: per workload, as the peers' full run).
    #[arg(long)]
    steps: Option<usize>,
    /// Untimed warm-up steps (default: per workload); unless 0, timing starts
    /// no sooner than 0.25 s after the first.
    #[arg(long)]
    warmup: Option<usize>,
    /// Batch size instead of the workload's own.
    #[arg(long)]
    batch: Option<usize>,
    /// Replay a run dumped by the peers' script (`bench.py --dump DIR`) and print
    /// its final loss; compared with PyTorch's when DIR holds that run's JSON line
    /// as `peer.json` (or with --expect).
    #[arg(long, value_name = "DIR")]
    replay: Option<std::path::PathBuf>,
    /// With --replay: the final loss to match (within 1e-4 relative).
    #[arg(long, requires = "replay")]
    expect: Option<f64>,
    /// Train in micro-batches of at most this many rows (gradients accumulated,
    /// one optimizer step per batch): memory for activations follows this, not --batch.
    #[arg(long)]
    micro_batch: Option<usize>,
    /// Seed for data and weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Precision of the products: f32, or bf16 (bf16 operands, f32 sums: on
    /// VDPBF16PS where the CPU has AVX512-BF16, emulated to the same bits elsewhere).
    #[arg(long, default_value = "f32")]
    precision: feedforward::Precision,
    /// After each training workload run on one thread: the inputs of the
    /// data-parallel scaling model (gradient bytes, compute per row) and its
    /// predicted efficiency at 8, 64 and 512 processes on links of these
    /// speeds, Gbit/s (comma list), with --latency-us.
    #[arg(long, value_name = "GBIT", value_delimiter = ',')]
    scaling: Option<Vec<f64>>,
    /// With --scaling: the link's latency per message, µs.
    #[arg(long, default_value_t = 50.0, requires = "scaling")]
    latency_us: f64,
    /// One JSON object per line per run, with the peers' field names.
    #[arg(long)]
    json: bool,
    /// Run exactly one workload and thread count in this process (used internally:
    /// every run gets its own process so that peak memory is its own).
    #[arg(long, hide = true)]
    child: bool,
}

fn parse_workloads(spec: &str) -> Result<Vec<Workload>> {
    if spec.eq_ignore_ascii_case("all") {
        return Ok(Workload::ALL.to_vec());
    }
    let mut list: Vec<Workload> = spec
        .split(',')
        .map(|s| {
            Workload::from_name(s.trim()).ok_or_else(|| {
                format!("unknown workload {s:?} (expected W1, W2, W3, W3b, SGEMM or all)")
            })
        })
        .collect::<Result<_, _>>()?;
    // SGEMM first: the other figures are reported as a fraction of it.
    list.sort_by_key(|w| Workload::ALL.iter().position(|a| a == w));
    list.dedup();
    Ok(list)
}

/// Runs the benchmark: each (workload, threads) pair in a child process.
pub fn run(args: &BenchArgs) -> Result<()> {
    if let Some(dir) = &args.replay {
        return replay(dir, args.expect, args.json);
    }
    let workloads = parse_workloads(&args.workload)?;
    if args.threads.contains(&0) {
        return Err("thread counts must be at least 1".into());
    }
    if args.child {
        let (w, t) = (workloads[0], args.threads[0]);
        let (steps, warmup) = w.default_steps();
        let config = BenchConfig {
            workload: w,
            threads: t,
            steps: args.steps.unwrap_or(steps),
            warmup: args.warmup.unwrap_or(warmup),
            batch: args.batch,
            seed: args.seed,
            micro_batch: args.micro_batch,
            precision: args.precision,
        };
        let result = bench::run(&config).map_err(|e| e.to_string())?;
        outln!("{}", result.to_json(None));
        return Ok(());
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    if !args.json {
        outln!(
            "feedforward bench: {}; {} thread(s) available",
            crate::version_line(),
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
    }
    for &t in &args.threads {
        let mut sgemm = None;
        for &w in &workloads {
            let result = run_child(&exe, w, t, args)?;
            if w == Workload::Sgemm {
                sgemm = Some(result.gflops);
            }
            if args.json {
                outln!("{}", result.to_json(sgemm));
            } else {
                outln!("{}", human(&result, sgemm));
            }
            if let (Some(links), true) = (&args.scaling, w.is_training() && t == 1) {
                outln!("{}", scaling(&result, links, args.latency_us));
            }
        }
    }
    Ok(())
}

/// The scaling model of a training run on one thread (see
/// [`ScalingModel`]): its inputs, then per link speed the efficiency at 8, 64
/// and 512 processes with the run's batch, and the batch that keeps 90%.
fn scaling(result: &BenchResult, links_gbit: &[f64], latency_us: f64) -> String {
    let widths = result.workload.widths();
    let parameters: usize = widths.windows(2).map(|w| w[0] * w[1] + w[1]).sum();
    let seconds_per_row = 1.0 / result.samples_per_s;
    let mut out = format!(
        "  scaling model inputs: {parameters} parameters; each of N processes sends \
         2(N-1)/N x {:.2} MB per step ({:.2} MB at N=2); {:.2} us of compute per row \
         (batch {}); link latency {latency_us} us",
        4.0 * parameters as f64 / 1e6,
        ScalingModel {
            parameters,
            seconds_per_row,
            link_bytes_per_second: 1.0,
            latency_seconds: 0.0
        }
        .bytes_sent_per_step(2) as f64
            / 1e6,
        seconds_per_row * 1e6,
        result.batch,
    );
    for &gbit in links_gbit {
        let model = ScalingModel {
            parameters,
            seconds_per_row,
            link_bytes_per_second: gbit * 1e9 / 8.0,
            latency_seconds: latency_us * 1e-6,
        };
        out.push_str(&format!("\n  {gbit} Gbit/s:"));
        for n in [8, 64, 512] {
            out.push_str(&format!(
                "  N={n}: efficiency {:.2} at batch {}, 0.90 from batch {}",
                model.efficiency(n, result.batch),
                result.batch,
                model.batch_for_efficiency(n, 0.9)
            ));
            if n != 512 {
                out.push(';');
            }
        }
    }
    out
}

/// Runs workload `w` at `t` threads in a child process (`exe bench --child`)
/// and reads its result line.
fn run_child(
    exe: &std::path::Path,
    w: Workload,
    t: usize,
    args: &BenchArgs,
) -> Result<BenchResult> {
    let mut cmd = Command::new(exe);
    cmd.args([
        "bench",
        "--child",
        "--workload",
        w.name(),
        "--threads",
        &t.to_string(),
        "--seed",
        &args.seed.to_string(),
        "--precision",
        args.precision.name(),
    ]);
    for (flag, v) in [
        ("--steps", args.steps),
        ("--warmup", args.warmup),
        ("--batch", args.batch),
        ("--micro-batch", args.micro_batch),
    ] {
        if let Some(v) = v {
            cmd.args([flag, &v.to_string()]);
        }
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} at {t} thread(s) failed: {}",
            w.name(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    let line = String::from_utf8_lossy(&out.stdout);
    BenchResult::from_json(line.trim())
        .map_err(|e| format!("unreadable result from {}: {e}: {line}", w.name()).into())
}

fn human(r: &BenchResult, sgemm: Option<f64>) -> String {
    let mut s = format!(
        "{:<5} {} threads {} batch {:>5}  ",
        r.workload.name(),
        r.precision,
        r.threads,
        r.batch
    );
    match r.workload {
        Workload::Sgemm => s += &format!("{:>8.1} GFLOP/s", r.gflops),
        Workload::W3b => {
            s += &format!(
                "median {:>8.1} us/call  {:>8.1} GFLOP/s",
                r.us_per_call_median, r.gflops
            )
        }
        _ => {
            s += &format!(
                "{:>10.0} samples/s  {:>8.1} GFLOP/s",
                r.samples_per_s, r.gflops
            )
        }
    }
    if let (Some(g), true) = (sgemm, r.workload != Workload::Sgemm) {
        s += &format!("  ({:.2} of SGEMM)", r.gflops / g);
    }
    if let Some(m) = r.peak_rss_mb {
        s += &format!("  peak RSS {m:.0} MB");
    }
    if let Some(l) = r.final_loss {
        s += &format!("  final loss {l:.4}");
    }
    s
}

/// Replays a dumped run and compares its final loss with the peer's.
fn replay(dir: &std::path::Path, expect: Option<f64>, json: bool) -> Result<()> {
    let r = feedforward::replay::replay(dir)?;
    let peer_file = dir.join("peer.json");
    let peer = match expect {
        Some(v) => Some((v, "expected".to_string())),
        None if peer_file.exists() => {
            let text = std::fs::read_to_string(&peer_file)
                .map_err(|e| format!("{}: {e}", peer_file.display()))?;
            let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap_or(""))
                .map_err(|e| format!("{}: {e}", peer_file.display()))?;
            let loss = v["final_loss"]
                .as_f64()
                .ok_or_else(|| format!("{}: no final_loss", peer_file.display()))?;
            let who = v["framework"].as_str().unwrap_or("peer").to_string();
            Some((loss, who))
        }
        None => None,
    };
    let rel = peer
        .as_ref()
        .map(|(p, _)| (f64::from(r.final_loss) - p).abs() / p.abs().max(1e-12));
    if json {
        outln!(
            "{}",
            serde_json::json!({
                "framework": "feedforward",
                "backend": feedforward::gemm::BACKEND,
                "isa": feedforward::gemm::isa().name(),
                "workload": r.workload,
                "steps": r.steps,
                "final_loss": crate::json_f32(r.final_loss),
                "peer_final_loss": peer.as_ref().map(|p| p.0),
                "relative_difference": rel,
            })
        );
    } else {
        let mut line = format!(
            "replay {}: {} steps, final loss {:.6}",
            r.workload, r.steps, r.final_loss
        );
        if let (Some((p, who)), Some(rel)) = (&peer, rel) {
            line += &format!("; {who} {p:.6}; relative difference {rel:.2e}");
        }
        outln!("{line}");
    }
    match rel {
        Some(rel) if rel > 1e-4 => Err(format!(
            "the final loss differs from the peer's by {rel:.2e} (more than 1e-4)"
        )
        .into()),
        _ => Ok(()),
    }
}
