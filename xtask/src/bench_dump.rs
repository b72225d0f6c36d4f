//! `cargo xtask bench dump`: `gtrace dump` of 100 000 parked goroutines, and how much the
//! target's own work slows down while it is dumped over and over (it is never stopped, so the
//! only cost is CPU and memory bandwidth on a shared machine).

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use gtrace_tests::{
    fixture::{self, Variant},
    go,
    process::Spawned,
};

const GOROUTINES: usize = 100_000;

/// Runs `cmd` to completion; returns (wall, CPU, peak RSS in KiB) of that child alone
/// (`wait4`, so the target — also our child — is not counted).
fn measured(cmd: &mut Command) -> anyhow::Result<(Duration, Duration, u64)> {
    let t = Instant::now();
    let child = cmd.spawn()?;
    let pid = libc::pid_t::try_from(child.id())?;
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid value for wait4 to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers; pid is our own unreaped child (std never waits on it: we don't
    // call wait on `child`, which is dropped without waiting).
    let r = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut ru) };
    let wall = t.elapsed();
    if r != pid || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("{cmd:?} failed (wait4 {r}, status {status:#x})");
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok((wall, tv(ru.ru_utime) + tv(ru.ru_stime), ru.ru_maxrss as u64))
}

fn ops(p: &mut Spawned) -> anyhow::Result<u64> {
    p.write_line("count")?;
    let lines = p.wait_for(Duration::from_secs(30), |l| l.starts_with("count "))?;
    let last = lines.last().context("no count line")?;
    Ok(last.trim_start_matches("count ").trim().parse()?)
}

/// Work done by the target's busy worker over `d`.
fn rate(p: &mut Spawned, d: Duration, mut during: impl FnMut()) -> anyhow::Result<f64> {
    let start = ops(p)?;
    let t = Instant::now();
    while t.elapsed() < d {
        during();
    }
    let end = ops(p)?;
    Ok((end - start) as f64 / t.elapsed().as_secs_f64())
}

pub(crate) fn run(runs: usize) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    if !Command::new(&cargo)
        .args(["build", "--release", "-p", "tracer-user", "--bin", "gtrace"])
        .status()?
        .success()
    {
        bail!("building gtrace failed");
    }
    let gtrace = crate::bench::root().join("target/release/gtrace");
    let tc = go::newest()?;
    let bin = fixture::build("dumpload", &tc, Variant::Default)?;
    let mut p = Spawned::spawn(&bin, [GOROUTINES.to_string()], &[] as &[(&str, &str)])?;
    p.wait_ready()?;
    let pid = p.pid().to_string();
    let dump = || {
        measured(
            Command::new(&gtrace)
                .args(["dump", "--json", "-p", &pid])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
    };
    dump()?; // warm the page cache
    let mut results: Vec<_> = (0..runs).map(|_| dump()).collect::<anyhow::Result<_>>()?;
    results.sort();
    let (wall, cpu, _) = results[results.len() / 2];
    let maxrss_kb = results.iter().map(|r| r.2).max().unwrap_or(0);
    // Interleave: quiet, dumping, quiet, dumping — 2 s each.
    let window = Duration::from_secs(2);
    let mut quiet = Vec::new();
    let mut dumping = Vec::new();
    for _ in 0..2 {
        quiet.push(rate(&mut p, window, || {
            std::thread::sleep(Duration::from_millis(10));
        })?);
        dumping.push(rate(&mut p, window, || {
            let _ = dump();
        })?);
    }
    let (q, d) = (
        quiet.iter().sum::<f64>() / 2.0,
        dumping.iter().sum::<f64>() / 2.0,
    );
    let table = format!(
        "Measured by `cargo xtask bench dump` (Go {ver}, {runs} dumps, median wall time; {n} parked \
         goroutines plus a busy worker and a spinning goroutine, release build):\n\n\
         | what | measured | goal |\n|---|---|---|\n\
         | `gtrace dump --json`, {n} goroutines | wall {wall:.2?}, CPU {cpu:.2?} | ≤ 1 s |\n\
         | peak memory of gtrace | {rss:.1} MB | bounded (streamed in batches) |\n\
         | target's work rate while dumped back to back | {ratio:.2}× its rate without dumps | ~1 (never stopped) |\n\n\
         The target is never stopped: the rate difference is CPU contention on a 2-core machine \
         (gtrace and the target's busy and spinning goroutines share the cores).",
        ver = tc.version,
        n = GOROUTINES,
        rss = maxrss_kb as f64 / 1024.0,
        ratio = d / q,
    );
    println!("{table}");
    crate::bench::write_section("dump", &table)
}
