//! Runs benchmark workloads through feedforward's library, as a program that
//! depends on it would, and checks that it got the CPU's best kernels.
//!
//! Usage: `feedforward-dependent [WORKLOADS [THREADS [STEPS]]]`, e.g.
//! `W1,W3 1,2 20`; STEPS `full` (the default) runs each workload's own count.
//! Prints one JSON line per run, as `feedforward bench --json` does.

use feedforward::bench::{self, BenchConfig, Workload};
use feedforward::gemm::{self, Isa};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let workloads = args.first().map_or("W1,W3", String::as_str);
    let threads = args.get(1).map_or("1,2", String::as_str);
    let steps = args.get(2).map_or("full", String::as_str);

    // Without FEEDFORWARD_ISA, the kernels must be the best this CPU runs,
    // although nothing in this build asked for them.
    let chosen = gemm::isa();
    if gemm::isa_from_env()?.is_none() && chosen != Isa::best() {
        return Err(format!("kernels {chosen}, but this CPU runs {}", Isa::best()).into());
    }
    eprintln!("feedforward-dependent: kernels {}", gemm::kernel_description());

    for t in threads.split(',') {
        let threads: usize = t.trim().parse()?;
        let mut sgemm = None;
        for name in workloads.split(',') {
            let workload = Workload::from_name(name.trim())
                .ok_or_else(|| format!("unknown workload {name:?}"))?;
            let (full, warmup) = workload.default_steps();
            let steps = if steps == "full" { full } else { steps.parse()? };
            let config = BenchConfig {
                workload,
                threads,
                steps,
                warmup: warmup.min(steps),
                batch: None,
                seed: 0,
                micro_batch: None,
                precision: feedforward::Precision::F32,
            };
            let result = bench::run(&config)?;
            if workload == Workload::Sgemm {
                sgemm = Some(result.gflops);
            }
            println!("{}", result.to_json(sgemm));
        }
    }
    Ok(())
}
