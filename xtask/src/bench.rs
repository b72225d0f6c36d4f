//! `cargo xtask bench gobin|dump`: speed measured side by side with a reference in one run
//! (this machine is noisy: ratios, medians), written into `docs/PERFORMANCE.md` between
//! `<!-- bench NAME -->` markers.
//!
//! - `gobin` (`bench_gobin.rs`): open a ≥ 100 MB stripped Go binary and resolve every probe
//!   site; symbolize N PCs with `gtrace symbolize` vs the toolchain's addr2line on the same PCs.
//! - `dump`: `gtrace dump --json` of a process with 100 000 parked goroutines (wall, CPU, peak
//!   memory), and the target's own work rate while dumps run back to back vs while none do.
//! - `overhead`: the target's cost per event under gtrace, under empty probes at the same
//!   sites and under bpftrace, interleaved (`bench_overhead`).

use std::{path::PathBuf, time::Duration};

use anyhow::bail;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// What to measure.
    #[arg(value_parser = ["gobin", "dump", "overhead"])]
    what: String,
    /// Repetitions (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// PCs to symbolize.
    #[arg(long, default_value_t = 100_000)]
    pcs: usize,
    /// overhead: round trips / goroutines per run.
    #[arg(long, default_value_t = 50_000)]
    ops: u64,
    /// overhead: requests per second sent to the http server.
    #[arg(long, default_value_t = 2_000)]
    rate: u64,
    /// overhead: seconds of the sustained-rate run (0: skip it).
    #[arg(long, default_value_t = 60)]
    sustain: u64,
}

pub(crate) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub(crate) fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    match args.what.as_str() {
        "dump" => crate::bench_dump::run(args.runs),
        "overhead" => crate::bench_overhead::run(crate::bench_overhead::Opts {
            rounds: args.runs,
            sustain: Duration::from_secs(args.sustain),
            ops: args.ops,
            rate: args.rate,
        }),
        _ => crate::bench_gobin::run(args.runs, args.pcs),
    }
}

/// Replaces the `<!-- bench NAME -->` section of docs/PERFORMANCE.md with `table`.
pub(crate) fn write_section(name: &str, table: &str) -> anyhow::Result<()> {
    let (open, close) = (
        format!("<!-- bench {name} -->"),
        format!("<!-- end bench {name} -->"),
    );
    let perf = root().join("docs/PERFORMANCE.md");
    let doc = std::fs::read_to_string(&perf)?;
    let (Some(a), Some(b)) = (doc.find(&open), doc.find(&close)) else {
        bail!("docs/PERFORMANCE.md lacks the {open} markers");
    };
    let new = format!(
        "{}{open}\n{table}\n{close}{}",
        &doc[..a],
        &doc[b + close.len()..]
    );
    std::fs::write(&perf, new)?;
    println!("written to {}", perf.display());
    Ok(())
}
