//! `gtrace latency`: where the goroutines' time went over a window — running, waiting for the
//! Go scheduler, off-CPU in the OS, in system calls, parked by reason, stopped by the GC's
//! stop-the-world pauses, assisting the GC.
//!
//! Phases: open the target and plan the lifecycle + latency probes; take the attach-time
//! snapshot (`dump`) for the goroutines that already exist; attach; feed every event to the
//! lifecycle model (which runs the time model); at the end charge the rest of the window and
//! render the report (text or `--json`, docs/json/latency.schema.json).

use std::{
    io::{BufWriter, IsTerminal as _, Write as _},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use regex::Regex;

use super::{
    attach::{TargetArgs, ktime_now, stop_flag},
    exit::Exit,
};
use crate::{
    capture::{Preexisting, SymbolTable},
    gobin::waitreason::WaitReasons,
    model::{
        Model,
        latency::{BaselineState, parse_baseline},
    },
    output::{
        latency::{self as out, Filter, Sampling},
        lifecycle::{Context, Losses},
    },
    probes::session::{self, Callbacks, Notice, Options, StopReason, Summary, Target, Tick},
};

/// Flags of `gtrace latency`.
#[derive(Debug, clap::Args)]
#[command(after_help = "EXAMPLES:
    sudo gtrace latency -p 1234 -d 10s
    sudo gtrace latency -p 1234 -d 10s --func 'main\\.handle' --json
    sudo gtrace latency -d 5s -- ./server --port 8080

The window is every nanosecond between attach and the end; each goroutine's time is split
into running, runnable (waiting for the Go scheduler), os-offcpu (running for Go, but its
thread switched out by the kernel), syscall, parked (by wait reason), stw and assist.
See docs/latency.md.")]
pub struct Args {
    /// What to trace.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Length of the window (default: until Ctrl-C or the target exits).
    #[arg(short, long, value_parser = super::duration::parse)]
    pub duration: Option<Duration>,
    /// Only this goroutine.
    #[arg(long, conflicts_with = "func")]
    pub goid: Option<u64>,
    /// Only goroutines whose start function matches.
    #[arg(long, value_name = "REGEX")]
    pub func: Option<Regex>,
    /// One JSON document (docs/json/latency.schema.json) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Overhead budget.
    #[command(flatten)]
    pub overhead: super::record::OverheadArgs,
}

/// Baseline states of the snapshot's goroutines, wait reasons resolved in `wait_reasons`.
pub fn baseline_states(pre: &[Preexisting], wait_reasons: &[String]) -> Vec<(u64, BaselineState)> {
    pre.iter()
        .map(|p| {
            let st = parse_baseline(&p.state, |name| {
                wait_reasons
                    .iter()
                    .position(|r| r == name)
                    .map(|i| i as u32)
            });
            (p.goid, st)
        })
        .collect()
}

/// How much of the window the hot probes saw, from the gaps declared to the model.
pub fn sampling_of(m: &Model) -> Sampling {
    let Some((start, end)) = m.window() else {
        return Sampling::default();
    };
    let fraction = m.observed_fraction(start, end);
    if m.time.gaps.is_empty() {
        return Sampling::default();
    }
    Sampling {
        sampled: true,
        fraction,
        note: format!(
            "the overhead governor switched the hot probes off for {:.0}% of the window: that \
             time is `unobserved` (not attributed to any state); the per-state times cover \
             the observed part only, their proportions estimate the whole",
            (1.0 - fraction) * 100.0
        ),
    }
}

/// Losses of a live session.
pub fn live_losses(s: &Summary) -> Losses {
    Losses {
        dropped: s.counts.total_drops(),
        decode_errors: s.decode_errors,
        probe_errors: s.counts.total_errors(),
        complete: true,
        probes: super::record::probe_counts(&s.counts),
    }
}

/// Runs `gtrace latency`.
pub fn run(args: &Args) -> Result<Exit> {
    let stop = stop_flag()?;
    let mut attached = args.target.start()?;
    let target = Target::open_with(attached.pid, true)
        .with_context(|| format!("preparing to trace process {}", attached.pid))?;
    let version = &target.plan.version;
    let go_version = format!("go{}.{}.{}", version.major, version.minor, version.patch);
    let wait_reasons: Vec<String> = WaitReasons::for_version(version)
        .map(|w| w.strings.iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    let baseline = if attached.child.is_some() {
        Vec::new()
    } else {
        super::record::baseline(attached.pid).unwrap_or_else(|e| {
            eprintln!(
                "warning: no attach-time snapshot ({e}): the state of goroutines that already \
                 exist is inferred from their first event"
            );
            Vec::new()
        })
    };
    let mut model = Model::new();
    model.baseline(baseline.iter().map(|p| p.goid));
    // Both callbacks below feed it.
    let model = std::cell::RefCell::new(model);
    let mut symbols = SymbolTable::default();
    let degraded: Vec<String> = target
        .degraded
        .iter()
        .map(|d| format!("{}: {}", d.function, d.effect))
        .collect();
    let tty = std::io::stderr().is_terminal();
    let every = if tty {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(5)
    };
    let mut last_progress = Instant::now();
    let start = Instant::now();
    let budget = args.overhead.max_overhead.0;
    let summary = session::run_with(
        &target,
        &Options {
            duration: args.duration,
            stop,
            max_overhead: budget,
            empty_probes: false,
            bench_parks: false,
            stop_over_budget: false,
        },
        None,
        Callbacks {
            attached: || {
                let mut m = model.borrow_mut();
                m.start_window(ktime_now());
                m.baseline_states(baseline_states(&baseline, &wait_reasons));
                eprintln!(
                    "attached to pid {} ({} probes); measuring until {}",
                    attached.pid,
                    target.plan.sites.len() + 3,
                    args.duration.map_or_else(
                        || "Ctrl-C or the target exits".to_owned(),
                        |d| format!("{:.1}s have passed", d.as_secs_f64())
                    )
                );
                attached.resume();
            },
            event: |raw: tracer_common::event::Raw<'_>| {
                let e = &raw.event();
                let mut m = model.borrow_mut();
                // The window is exactly the requested duration, however late the reader
                // notices it has passed: later events are not part of it.
                if let (Some(d), Some(start)) = (args.duration, m.time.window_start)
                    && e.header().ktime_ns > start.saturating_add(d.as_nanos() as u64)
                {
                    return;
                }
                // Only creations name functions in the report (start function, `go`
                // statement); stacks are not symbolized.
                if let tracer_common::event::Event::Create(c) = e {
                    symbols.resolve(&target.binary, target.bias, c.startpc, false);
                    symbols.resolve(&target.binary, target.bias, c.gopc, true);
                }
                m.apply(e);
            },
            panic: |_: &[u8]| {},
            notice: |n: &Notice| match *n {
                Notice::Gap {
                    start_ktime_ns,
                    end_ktime_ns,
                } => {
                    let mut m = model.borrow_mut();
                    match end_ktime_ns {
                        Some(end) => m.unobserved(start_ktime_ns, end),
                        None => m.time_gap(start_ktime_ns, None),
                    }
                }
                Notice::Governor { .. } => {
                    if let Some(line) = super::record::notice_line(n, budget.unwrap_or(0.0)) {
                        super::progress::message(tty, &line);
                    }
                }
            },
            tick: |t: &Tick<'_>| {
                if last_progress.elapsed() >= every {
                    last_progress = Instant::now();
                    let line = format!(
                        "latency pid {}: {:.1}s, {} events, {} lost",
                        attached.pid,
                        start.elapsed().as_secs_f64(),
                        t.events,
                        t.counts().map_or(0, |c| c.total_drops())
                    );
                    super::progress::update(tty, &line);
                }
            },
        },
    )?;
    if tty {
        eprintln!();
    }
    let mut model = model.into_inner();
    // A target that exited ends the window at its last event; otherwise the window ends when
    // the capture stopped (events drained after that still count).
    let last = model.span.map_or(0, |s| s.1);
    let requested_end = args.duration.and_then(|d| {
        model
            .time
            .window_start
            .map(|s| s.saturating_add(d.as_nanos() as u64))
    });
    let end = match summary.reason {
        StopReason::TargetExited if last > 0 => last,
        StopReason::Duration => requested_end.unwrap_or(summary.stopped_ktime_ns).max(last),
        _ => summary.stopped_ktime_ns.max(last),
    };
    model.finish(end);
    let window_start = model.window().map_or(0, |w| w.0);
    let ctx = Context {
        symbols: &symbols,
        wait_reasons: &wait_reasons,
        start_ktime: window_start,
        baseline: &baseline,
    };
    let filter = Filter {
        goid: args.goid,
        func: args.func.clone(),
    };
    let meta = out::Meta {
        pid: attached.pid,
        go_version,
        sampling: sampling_of(&model),
        degraded,
        losses: live_losses(&summary),
    };
    let report = out::report(&model, &ctx, &filter, meta);
    let stdout = std::io::stdout();
    let mut w = BufWriter::new(stdout.lock());
    if args.json {
        serde_json::to_writer_pretty(&mut w, &report)?;
        writeln!(w)?;
    } else {
        out::write_text(&mut w, &report)?;
    }
    w.flush()?;
    if let Some(p) = &summary.detach_problem {
        eprintln!("warning: {p}");
    }
    if let Some(c) = attached.child.as_mut() {
        if summary.reason == StopReason::TargetExited {
            let _ = c.wait();
        }
        attached.release();
        return Ok(Exit::Ok);
    }
    if summary.reason == StopReason::TargetExited && args.duration.is_some() {
        eprintln!(
            "process {} exited before the window ended: the report covers {:.2}s",
            attached.pid, report.window_seconds
        );
        return Ok(Exit::ProcessGone);
    }
    Ok(Exit::Ok)
}
