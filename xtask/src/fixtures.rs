//! `cargo xtask fixtures`: builds every fixture program with every toolchain in every variant,
//! filling the cache the integration tests read (`gtrace_tests::fixture`).
//!
//! Builds run on a small pool of threads (one per core by default); `go` itself parallelises
//! compilation, so more jobs than cores only adds contention.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::bail;
use gtrace_tests::fixture::{self, Variant};
use gtrace_tests::go::{self, Toolchain};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Parallel builds (default: number of CPUs).
    #[arg(long, short)]
    jobs: Option<usize>,
    /// Only these fixtures (default: all programs, demo included).
    #[arg(long = "only", value_name = "NAME")]
    only: Vec<String>,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let toolchains = go::all()?;
    let names: Vec<&str> = if args.only.is_empty() {
        fixture::ALL_PROGRAMS.to_vec()
    } else {
        args.only.iter().map(String::as_str).collect()
    };
    let mut jobs: Vec<(&str, &Toolchain, Variant)> = Vec::new();
    for tc in &toolchains {
        for name in &names {
            for v in Variant::ALL {
                jobs.push((name, tc, v));
            }
        }
    }
    let workers = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from))
        .max(1);
    let total = jobs.len();
    println!(
        "building {} fixtures x {} toolchains x {} variants = {total} binaries on {workers} workers",
        names.len(),
        toolchains.len(),
        Variant::ALL.len()
    );
    let start = Instant::now();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let built = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(name, tc, v)) = jobs.get(index) else {
                        break;
                    };
                    let began = Instant::now();
                    let res = fixture::build_reporting(name, tc, v);
                    let count = done.fetch_add(1, Ordering::Relaxed) + 1;
                    match res {
                        Ok((path, true)) => {
                            built.fetch_add(1, Ordering::Relaxed);
                            println!(
                                "[{count:>3}/{total}] built  {name:<8} {tc:<10} {v:<8} {:>5.1}s {}",
                                began.elapsed().as_secs_f64(),
                                path.display()
                            );
                        }
                        Ok((_, false)) => {
                            println!("[{count:>3}/{total}] cached {name:<8} {tc:<10} {v:<8}");
                        }
                        Err(e) => {
                            println!("[{count:>3}/{total}] FAILED {name:<8} {tc:<10} {v:<8}");
                            failures
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .push(format!("{e:#}"));
                        }
                    }
                }
            });
        }
    });
    let failures = failures
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    println!(
        "{total} binaries ({} built, {} cached) in {:.1}s",
        built.load(Ordering::Relaxed),
        total - built.load(Ordering::Relaxed) - failures.len(),
        start.elapsed().as_secs_f64()
    );
    if !failures.is_empty() {
        bail!(
            "{} builds failed:\n{}",
            failures.len(),
            failures.join("\n\n")
        );
    }
    Ok(())
}
