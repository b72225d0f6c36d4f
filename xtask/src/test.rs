//! `cargo xtask test`: the whole test suite, as CI runs it (`.ci/run` = setup + this).
//!
//! Order: cheap static checks first (rustfmt, clippy with the workspace lints), then the Go
//! toolchains and fixture cache the integration tests need, then `cargo test` over the whole
//! workspace, which loads real eBPF programs and attaches them to real Go processes — hence
//! root. Then each fuzz target runs for a short budget (`cargo xtask fuzz`). Nothing is
//! skipped silently: a missing prerequisite fails the run and says the fix.

use std::{process::Command, time::Instant};

use anyhow::{Context as _, bail};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Skip rustfmt and clippy (quicker local iterations).
    #[arg(long)]
    no_lint: bool,
    /// Skip the fuzz targets (`cargo xtask fuzz`).
    #[arg(long)]
    no_fuzz: bool,
    /// Seconds to fuzz each target.
    #[arg(long, default_value_t = 25)]
    fuzz_seconds: u64,
    /// Extra arguments passed to `cargo test` (e.g. a test name filter), after `--`.
    #[arg(last = true, value_name = "CARGO_TEST_ARGS")]
    cargo_test: Vec<String>,
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn step(name: &str, mut cmd: Command) -> anyhow::Result<()> {
    println!("==> {name}");
    let t = Instant::now();
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    println!(
        "==> {name}: {} in {:.1?}",
        if status.success() { "ok" } else { "FAILED" },
        t.elapsed()
    );
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    Ok(())
}

/// Clippy over `tracer-ebpf`, with the compiler `tracer-user/build.rs` builds it with (the
/// workspace clippy cannot: the crate only builds for the BPF target). Its own target dir, so
/// it never invalidates the object the build script made.
fn ebpf_clippy() -> anyhow::Result<Command> {
    let tc = crate::ebpf_toolchain::detect().map_err(anyhow::Error::msg)?;
    let mut cmd = Command::new("rustup");
    cmd.args([
        "run",
        &tc.name,
        "cargo",
        "clippy",
        "--package",
        "tracer-ebpf",
    ])
    .args(["--target", "bpfel-unknown-none", "--release"])
    .args(["--target-dir", "target/ebpf-clippy"]);
    if tc.build_std {
        cmd.args(["-Z", "build-std=core"]);
    } else {
        cmd.env("RUSTC_BOOTSTRAP", crate::ebpf_toolchain::FEATURE_CRATES);
    }
    cmd.args(["--", "-D", "warnings"]);
    // The outer cargo's choices must not leak into the other toolchain's build.
    for var in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTUP_TOOLCHAIN",
    ] {
        cmd.env_remove(var);
    }
    Ok(cmd)
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "the integration tests load eBPF programs and read other processes' memory: run as root (sudo -E cargo xtask test)"
        );
    }
    let started = Instant::now();
    if !args.no_lint {
        let mut fmt = cargo();
        fmt.args(["fmt", "--all", "--", "--check"]);
        step("rustfmt", fmt)?;
        let mut clippy = cargo();
        // tracer-ebpf only builds for the BPF target (tracer-user/build.rs compiles it there).
        clippy.args([
            "clippy",
            "--workspace",
            "--exclude",
            "tracer-ebpf",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]);
        step("clippy", clippy)?;
        step("clippy (eBPF)", ebpf_clippy()?)?;
    }
    crate::go_toolchains::run(&crate::go_toolchains::Args {
        python: "python3".into(),
        only: Vec::new(),
    })?;
    crate::fixtures::run(&crate::fixtures::Args {
        jobs: None,
        only: Vec::new(),
        prune: false,
    })?;
    // The integration tests also run the `gtrace` binary as a user would; `cargo test` only
    // builds a package's binaries for that package's own integration tests.
    let mut build = cargo();
    build.args(["build", "-p", "tracer-user", "--bin", "gtrace"]);
    step("build gtrace", build)?;
    let mut test = cargo();
    test.args([
        "test",
        "--workspace",
        "--exclude",
        "tracer-ebpf",
        "--no-fail-fast",
    ]);
    if !args.cargo_test.is_empty() {
        test.arg("--").args(&args.cargo_test);
    }
    step("cargo test", test)?;
    if !args.no_fuzz {
        // Last: its seed corpora come from the fixtures, and its build is the longest step.
        println!("==> fuzz");
        let t = Instant::now();
        crate::fuzz::run(&crate::fuzz::Args::new(args.fuzz_seconds))?;
        println!("==> fuzz: ok in {:.1?}", t.elapsed());
    }
    println!("all tests passed in {:.0?}", started.elapsed());
    Ok(())
}
