//! Command-line surface: one file per subcommand, each with its clap `Args` and a `run`.

pub mod attach;
pub mod doctor;
pub mod dump;
pub mod duration;
pub mod exit;
pub mod inspect;
pub mod latency;
pub mod leaks;
pub mod panics;
pub mod profile;
pub mod progress;
pub mod record;
pub mod report;
pub mod symbolize;
pub mod trace;

use clap::{Parser, Subcommand};

const AFTER_HELP: &str = "\
EXAMPLES:
    sudo gtrace doctor -p 1234          check host and target, probe test for 1 s
    sudo gtrace doctor ./server         static checks of a binary
    sudo gtrace record -p 1234 -d 30s   capture goroutine lifecycles to gtrace-1234.gtc
    gtrace report gtrace-1234.gtc       blocking sites, wakers, scheduling latency
    sudo gtrace trace -p 1234           live event stream
    sudo gtrace dump -p 1234            all goroutines, Go traceback format
    sudo gtrace dump -p 1234 --group    identical goroutines folded, largest groups first
    gtrace inspect ./server --json      version, symbols, layouts, probe sites
    gtrace symbolize ./server 0x4a1b2c  function, file:line, inlined frames
    sudo gtrace leaks -p 1234 -d 30s    goroutine leaks: groups that grow and never wake
    sudo gtrace leaks -p 1234 --trace   … plus lifecycle events: who woke, exact ages
    sudo gtrace profile -p 1234 -o g.pb.gz   goroutine profile for `go tool pprof`
    sudo gtrace profile -p 1234 --kind block -d 30s -o b.pb.gz   time parked, by stack
    sudo gtrace panics -p 1234          every panic: value, stack, recovered or fatal, creator
    sudo gtrace latency -p 1234 -d 10s  where the time went: running, sched wait, OS, syscalls,
                                        parked by reason, GC stop-the-world, mark assist

EXIT CODES:
    0 success   1 failure   2 usage   3 host cannot trace (privileges, kernel)
    4 target cannot be traced (not Go, unsupported version)   5 process gone
    6 leaks found (gtrace leaks --fail-on N)";

/// gtrace: what are the goroutines of a running Go program doing — from outside, no restart.
#[derive(Debug, Parser)]
#[command(name = "gtrace", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// gtrace's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check that this host can trace, and that a Go binary or process can be traced.
    Doctor(doctor::Args),
    /// Every goroutine of a running Go process, read from its memory without stopping it.
    Dump(dump::DumpArgs),
    /// What gtrace knows about a Go binary: version, build info, symbol sources, runtime
    /// layouts, wait reasons, probe sites. The first thing to run when gtrace refuses a binary.
    Inspect(inspect::InspectArgs),
    /// Goroutine leaks: groups (creation site, blocking site, wait reason) that grow over a
    /// window of snapshots while none of their goroutines wakes. Exit code 6 with --fail-on.
    Leaks(leaks::LeaksArgs),
    /// Write a goroutine profile (one snapshot) or a block profile (a traced window: time
    /// parked by stack and wait reason) as pprof, folded stacks or an SVG flame graph.
    Profile(profile::ProfileArgs),
    /// Symbolize program counters of a Go binary, inlined frames expanded.
    Symbolize(symbolize::SymbolizeArgs),
    /// Record goroutine lifecycle events of a process (or a command) into a capture file.
    Record(record::Args),
    /// Analyse a capture: summary, one goroutine's life, or a Perfetto trace.
    Report(report::Args),
    /// Stream goroutine lifecycle events of a live process, one line each.
    Trace(trace::Args),
    /// Where the goroutines' time went over a window: running, waiting for the scheduler,
    /// off-CPU in the OS, syscalls, parked by reason, GC stop-the-world and mark assist.
    Latency(latency::Args),
    /// Panics of a live process (or a command): value, stack, recovered or fatal, nested,
    /// the recovering function and the goroutine's creator.
    Panics(panics::Args),
}
