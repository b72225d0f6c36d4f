//! `cargo xtask fixtures`: builds every fixture program with every toolchain in every variant,
//! filling the cache the integration tests read (`gtrace_tests::fixture`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::bail;
use gtrace_tests::fixture::{self, Outcome, Variant};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Parallel builds (default: number of CPUs).
    #[arg(long, short)]
    pub(crate) jobs: Option<usize>,
    /// Only these fixtures (default: every directory under tests/fixtures, demo included).
    #[arg(long = "only", value_name = "NAME")]
    pub(crate) only: Vec<String>,
    /// Afterwards, delete cached binaries of this checkout that are no longer current.
    #[arg(long)]
    pub(crate) prune: bool,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let names: Vec<String> = if args.only.is_empty() {
        fixture::programs()?
    } else {
        args.only.clone()
    };
    for name in &names {
        if !fixture::source_dir(name).join("go.mod").is_file() {
            bail!(
                "no fixture named {name:?} in {} (known: {})",
                fixture::fixtures_dir().display(),
                fixture::programs()?.join(", ")
            );
        }
    }
    let jobs = fixture::jobs(&names)?;
    let workers = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from));
    println!(
        "building {} fixtures x {} toolchains x {} variants = {} binaries on {workers} workers",
        names.len(),
        jobs.len() / names.len().max(1) / Variant::ALL.len(),
        Variant::ALL.len(),
        jobs.len()
    );
    let start = Instant::now();
    let built = AtomicUsize::new(0);
    let failures = fixture::build_many(&jobs, workers, &|o: Outcome<'_>| {
        let (n, total, job) = (o.done, o.total, o.job);
        let what = format!("{:<8} {:<10} {:<8}", job.name, job.toolchain, job.variant);
        match o.result {
            Ok((path, true)) => {
                built.fetch_add(1, Ordering::Relaxed);
                println!(
                    "[{n:>3}/{total}] built  {what} {:>5.1}s {}",
                    o.elapsed.as_secs_f64(),
                    path.display()
                );
            }
            Ok((_, false)) => println!("[{n:>3}/{total}] cached {what}"),
            Err(_) => println!("[{n:>3}/{total}] FAILED {what}"),
        }
    });
    let built = built.load(Ordering::Relaxed);
    println!(
        "{} binaries ({built} built, {} cached) in {:.1}s",
        jobs.len(),
        jobs.len() - built - failures.len(),
        start.elapsed().as_secs_f64()
    );
    if !failures.is_empty() {
        bail!(
            "{} builds failed:\n{}",
            failures.len(),
            failures.join("\n\n")
        );
    }
    if args.prune {
        // Keep every program's current builds, not only those selected with --only.
        let removed = fixture::prune(&fixture::jobs(&fixture::programs()?)?)?;
        println!("pruned {removed} stale cache entries");
    }
    Ok(())
}
