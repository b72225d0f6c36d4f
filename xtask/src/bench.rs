//! `cargo xtask bench gobin|dump`: speed measured side by side with a reference in one run
//! (this machine is noisy: ratios, medians), written into `docs/PERFORMANCE.md` between
//! `<!-- bench NAME -->` markers.
//!
//! - `gobin`: open a large stripped Go binary and resolve every probe site; symbolize N PCs
//!   with gtrace vs `go tool addr2line` on the same PCs.
//! - `dump`: `gtrace dump --json` of a process with 100 000 parked goroutines (wall, CPU, peak
//!   memory), and the target's own work rate while dumps run back to back vs while none do.
//! - `overhead`: the target's cost per event under gtrace, under empty probes at the same
//!   sites and under bpftrace, interleaved (`bench_overhead`).

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use gtrace_tests::go;

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

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Runs the `gobin_bench` example once; returns (open+sites, symbolize, functions).
fn gtrace_run(
    example: &Path,
    bin: &Path,
    pcs: usize,
    pcs_file: &Path,
) -> anyhow::Result<(Duration, Duration, String)> {
    let out = Command::new(example)
        .arg(bin)
        .arg(pcs.to_string())
        .arg(pcs_file)
        .output()?;
    if !out.status.success() {
        bail!(
            "gobin_bench failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |key: &str| -> anyhow::Result<Duration> {
        let v = text
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .with_context(|| format!("no {key} in {text}"))?;
        Ok(Duration::from_nanos(v.parse()?))
    };
    Ok((field("open_and_sites_ns=")?, field("symbolize_ns=")?, text))
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
        _ => gobin(args),
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

fn gobin(args: &Args) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let st = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "-p",
            "tracer-user",
            "--example",
            "gobin_bench",
        ])
        .status()?;
    if !st.success() {
        bail!("building the benchmark failed");
    }
    let example = root().join("target/release/examples/gobin_bench");
    let tc = go::newest()?;
    let tool = tc.goroot().join("pkg/tool/linux_amd64/compile");
    let tmp = std::env::temp_dir().join("gtrace-bench-gobin");
    std::fs::create_dir_all(&tmp)?;
    let stripped = tmp.join("compile.stripped");
    let st = Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(&tool)
        .status()
        .context("running strip (binutils)")?;
    if !st.success() {
        bail!("strip failed");
    }
    let size_mb = std::fs::metadata(&stripped)?.len() as f64 / 1e6;
    let pcs_file = tmp.join("pcs.txt");

    let mut open = Vec::new();
    let mut sym = Vec::new();
    let mut addr2line = Vec::new();
    let mut summary = String::new();
    for _ in 0..args.runs {
        let (o, s, text) = gtrace_run(&example, &stripped, args.pcs, &pcs_file)?;
        open.push(o);
        sym.push(s);
        summary = text;
        // The same PCs through the toolchain's addr2line (which reads the unstripped symbols
        // of the same code: stripping leaves the pclntab it uses).
        let input = std::fs::File::open(&pcs_file)?;
        let t = Instant::now();
        let out = Command::new(&tc.go)
            .args(["tool", "addr2line"])
            .arg(&stripped)
            .stdin(input)
            .stdout(Stdio::piped())
            .output()?;
        addr2line.push(t.elapsed());
        let lines = String::from_utf8_lossy(&out.stdout).lines().count();
        if lines != 2 * args.pcs {
            bail!(
                "go tool addr2line answered {lines} lines for {} PCs",
                args.pcs
            );
        }
    }
    let (open, sym, a2l) = (median(open), median(sym), median(addr2line));
    let table = format!(
        "Measured by `cargo xtask bench gobin` ({runs} runs, medians) on `{bin}` of Go {ver}, \
         stripped with `strip` ({size_mb:.1} MB): {summary}\n\n\
         | what | gtrace | reference | ratio |\n|---|---|---|---|\n\
         | open + resolve all probe sites | {open:.1?} | goal ≤ 20 ms for 100 MB | {per100:.1} ms per 100 MB (linear estimate) |\n\
         | symbolize {n} PCs (inlined frames expanded) | {sym:.1?} | `go tool addr2line`: {a2l:.1?} | {ratio:.1}× faster |",
        runs = args.runs,
        bin = "pkg/tool/linux_amd64/compile",
        ver = tc.version,
        summary = summary.trim(),
        per100 = open.as_secs_f64() * 1e3 * 100.0 / size_mb,
        n = args.pcs,
        ratio = a2l.as_secs_f64() / sym.as_secs_f64(),
    );
    println!("{table}");
    write_section("gobin", &table)
}
