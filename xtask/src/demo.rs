//! `cargo xtask demo`: gtrace's main job against the bundled demo service.
//!
//! Builds gtrace (release) and the demo Go program (`tests/fixtures/demo`: a healthy worker
//! pool, a goroutine leak, a recovered panic every few seconds) with the newest Go toolchain,
//! starts the demo, and runs gtrace against it: doctor, the grouped dump, leaks, panics.

use std::{path::PathBuf, process::Command, time::Duration};

use anyhow::{Context as _, bail};
use gtrace_tests::{
    fixture::{self, Variant},
    go,
    process::Spawned,
};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Let the demo run this long before looking, so its leak has grown.
    #[arg(long, default_value_t = 3)]
    warmup_secs: u64,
}

fn gtrace_bin() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--package",
            "tracer-user",
            "--bin",
            "gtrace",
        ])
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("building gtrace failed");
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    Ok(root.join("target/release/gtrace"))
}

fn gtrace(bin: &PathBuf, args: &[&str]) -> anyhow::Result<()> {
    println!("\n$ sudo gtrace {}", args.join(" "));
    let status = Command::new(bin)
        .args(args)
        .status()
        .context("running gtrace")?;
    if !status.success() {
        bail!("gtrace {} failed ({status})", args.join(" "));
    }
    Ok(())
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let bin = gtrace_bin()?;
    let tc = go::newest()?;
    let demo = fixture::build(fixture::DEMO, &tc, Variant::Default)?;
    let mut proc = Spawned::spawn(&demo, std::iter::empty::<&str>(), &[] as &[(&str, &str)])?;
    proc.wait_ready()?;
    println!(
        "demo service running as PID {} (Go {}), letting it run {}s",
        proc.pid(),
        tc.version,
        args.warmup_secs
    );
    std::thread::sleep(Duration::from_secs(args.warmup_secs));
    let pid = proc.pid().to_string();
    gtrace(&bin, &["doctor", "-p", &pid])?;
    // The leak: goroutines parked forever in main.awaitReply, one group growing over time.
    gtrace(&bin, &["dump", "-p", &pid, "--group"])?;
    // The same leak, found and explained: growth over a window, sites, verdict.
    gtrace(&bin, &["leaks", "-p", &pid, "-d", "5s"])?;
    // The recovered panic the demo hits every few seconds, with its whole story.
    gtrace(&bin, &["panics", "-p", &pid, "-d", "4s"])?;
    Ok(())
}
