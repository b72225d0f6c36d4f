//! `gtrace leaks`: goroutine leaks of a live process, from periodic `dump` snapshots, plus the
//! goroutine lifecycle event stream with `--trace`.
//!
//! Each snapshot is the same memory read as `gtrace dump` (no ptrace stop, no eBPF), so by
//! default the target pays nothing measurable. `--trace` attaches the lifecycle probes of
//! `gtrace record` for the window (the target pays per scheduler event) for exact ages and
//! "never woken during the window" evidence. The analysis lives in [`crate::analysis::leaks`].

use std::{
    cell::{Cell, RefCell},
    io::{IsTerminal as _, Write},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use super::{
    attach::{ktime_now, stop_flag},
    duration,
    exit::Exit,
};
use crate::{
    analysis::leaks::{
        GroupReport, Sample, TraceInput, Tracker,
        rules::{self, Config, Verdict},
        trace::Lifecycle,
    },
    gobin::waitreason::WaitReasons,
    goroutines::{DumpOptions, target::Target},
    output::leaks::{Report, TraceSummary, write_json, write_text},
    probes::session::{self, Options, StopReason},
};

const EXAMPLES: &str = "\
Examples:
  gtrace leaks -p 1234                  10 s of snapshots, one per second
  gtrace leaks -p 1234 -d 2m            a longer window finds slower leaks
  gtrace leaks -p 1234 --trace          plus the lifecycle events: who woke, exact ages
  gtrace leaks -p 1234 --json | jq .    machine-readable (docs/json/leaks.schema.json)
  gtrace leaks -p 1234 --fail-on 100    exit 6 if a leaking group reaches 100 goroutines

A group is a leak when its count grows and none of its goroutines wakes up or exits during
the window, or when it is parked where nothing can wake it (nil channel, `select {}`).
docs/leaks.md explains every rule.";

/// Flags of `gtrace leaks`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct LeaksArgs {
    /// Process id of the running Go program.
    #[arg(short, long)]
    pub pid: i32,
    /// How long to watch (30, 500ms, 10s, 2m).
    #[arg(short, long, default_value = "10s", value_parser = duration::parse)]
    pub duration: Duration,
    /// Time between snapshots.
    #[arg(long, default_value = "1s", value_parser = duration::parse)]
    pub interval: Duration,
    /// Also trace goroutine lifecycle events during the window (uprobes on the scheduler:
    /// the target pays per event): who woke, exact ages. Without it, nothing is attached.
    #[arg(long)]
    pub trace: bool,
    /// With --trace: the probes' cost budget.
    #[command(flatten)]
    pub overhead: super::record::ExactOverheadArgs,
    /// One JSON object instead of text (docs/json/leaks.schema.json).
    #[arg(long)]
    pub json: bool,
    /// Also show runtime goroutines and runtime-internal waits (GC workers, finalizers, …).
    #[arg(long)]
    pub all: bool,
    /// Exit with code 6 when a leaking group has at least N goroutines.
    #[arg(long, value_name = "N")]
    pub fail_on: Option<usize>,
}

/// Takes the snapshots of one window, on a schedule, into a [`Tracker`].
struct Sampler<'a> {
    args: &'a LeaksArgs,
    target: &'a Target,
    tracker: Tracker,
    start: Instant,
    total: u32,
    taken: u32,
    tty: bool,
    /// Read snapshots with their kernel-time span (traced windows).
    timed: bool,
    /// The target exited mid-window (the snapshots so far are reported).
    gone: bool,
    /// Kernel time at the end of the latest snapshot's read.
    last_read_end: u64,
}

/// What [`Sampler::take`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// More snapshots are due.
    More,
    /// The window is over (every snapshot taken, or the target exited).
    Done,
}

impl<'a> Sampler<'a> {
    fn new(args: &'a LeaksArgs, target: &'a Target, timed: bool) -> Self {
        let steps = (args.duration.as_secs_f64() / args.interval.as_secs_f64()).floor() as u32;
        Self {
            args,
            target,
            tracker: Tracker::new(),
            start: Instant::now(),
            total: steps + 1,
            taken: 0,
            tty: std::io::stderr().is_terminal(),
            timed,
            gone: false,
            last_read_end: 0,
        }
    }

    /// When the next snapshot is due.
    fn due(&self) -> Instant {
        self.start + self.args.interval * self.taken
    }

    /// Takes the next snapshot.
    fn take(&mut self) -> Result<Step> {
        let pid = self.args.pid;
        let i = self.taken;
        let t = self.start.elapsed().as_secs_f64();
        let mut samples = Vec::new();
        let before = ktime_now();
        let read = self.target.dump(DumpOptions { system: true }, &mut |g| {
            samples.push(Sample::from_goroutine(&g));
        });
        let span = (before, ktime_now());
        if let Err(e) = read {
            if !process_alive(pid) && self.tracker.snapshots() > 0 {
                // Report what was seen; the exit code still says the process is gone.
                eprintln!(
                    "{}gtrace: pid {pid} exited during snapshot {} of {}; reporting the {} taken",
                    if self.tty { "\r\x1b[K" } else { "" },
                    i + 1,
                    self.total,
                    self.tracker.snapshots()
                );
                self.gone = true;
                return Ok(Step::Done);
            }
            return Err(anyhow::Error::from(e))
                .with_context(|| format!("snapshot {} of {}", i + 1, self.total));
        }
        let n = samples.len();
        self.last_read_end = span.1;
        self.tracker
            .snapshot_read(t, self.timed.then_some(span), samples);
        self.taken += 1;
        if self.tty {
            eprint!(
                "\rgtrace: sampling pid {pid}: snapshot {}/{}, {n} goroutines ",
                self.taken, self.total
            );
        }
        Ok(if self.taken >= self.total {
            Step::Done
        } else {
            Step::More
        })
    }

    fn announce(&self) {
        if !self.tty {
            eprintln!(
                "gtrace: sampling pid {} for {:.1} s, {} snapshots{}…",
                self.args.pid,
                self.args.duration.as_secs_f64(),
                self.total,
                if self.timed {
                    ", lifecycle events traced"
                } else {
                    ""
                }
            );
        }
    }

    fn end_progress(&self) {
        if self.tty {
            eprint!("\r\x1b[K");
        }
    }
}

/// Samples the target, writes the report to `out`, and says whether `--fail-on` tripped.
pub fn run(args: &LeaksArgs, out: &mut dyn Write) -> Result<Exit> {
    if args.interval > args.duration {
        eprintln!(
            "gtrace: error: --interval ({:?}) is longer than the window -d ({:?}): no growth \
             can be measured",
            args.interval, args.duration
        );
        return Ok(Exit::Usage);
    }
    let target = Target::open(args.pid)?;
    let (groups, tracker, trace) = if args.trace {
        traced(args, &target)?
    } else {
        let mut s = Sampler::new(args, &target, false);
        s.announce();
        loop {
            if let Some(wait) = s.due().checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if s.take()? == Step::Done {
                break;
            }
        }
        s.end_progress();
        let groups = s.tracker.finish();
        (groups, s, None)
    };
    report(args, &target, groups, &tracker, trace.as_ref(), out)
}

/// The window with the lifecycle probes attached: snapshots are taken from the session's
/// drain loop, events feed a [`Lifecycle`].
fn traced<'a>(
    args: &'a LeaksArgs,
    target: &'a Target,
) -> Result<(Vec<GroupReport>, Sampler<'a>, Option<TraceSummary>)> {
    let pid = u32::try_from(args.pid).context("the PID must be positive")?;
    let session_target =
        session::Target::open(pid).with_context(|| format!("preparing to trace process {pid}"))?;
    let reasons: Vec<Arc<str>> =
        WaitReasons::for_go_binary(&session_target.binary, Some(&session_target.plan.version))
            .ok()
            .flatten()
            .map(|w| w.strings.iter().map(|s| Arc::from(s.as_ref())).collect())
            .unwrap_or_default();
    let stop = stop_flag()?;
    let sampler = RefCell::new(Sampler::new(args, target, true));
    let mut life = Lifecycle::new();
    let failure: RefCell<Option<anyhow::Error>> = RefCell::new(None);
    // Events after the last snapshot's read are not part of the window: without this cut,
    // the parks a busy goroutine makes while the session winds down would hide the one the
    // last snapshot saw (and with it its exact age).
    let horizon = Cell::new(u64::MAX);
    let take_due = |stop: &std::sync::atomic::AtomicBool| {
        let mut s = sampler.borrow_mut();
        if Instant::now() < s.due() {
            return;
        }
        match s.take() {
            Ok(Step::More) => {}
            Ok(Step::Done) => {
                horizon.set(s.last_read_end);
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            Err(e) => {
                *failure.borrow_mut() = Some(e);
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
    };
    let summary = session::run(
        &session_target,
        &Options {
            duration: None,
            stop: stop.clone(),
            // Exact or not at all: the leak window's model does not handle sampling gaps.
            max_overhead: args.overhead.max_overhead.0,
            stop_over_budget: true,
            empty_probes: false,
            bench_parks: false,
        },
        || {
            let mut s = sampler.borrow_mut();
            s.start = Instant::now();
            s.announce();
            drop(s);
            take_due(&stop);
        },
        |e| {
            if e.header().ktime_ns <= horizon.get() {
                life.apply(e);
            }
        },
        |_| take_due(&stop),
    )?;
    let mut s = sampler.into_inner();
    s.end_progress();
    if summary.reason == StopReason::TargetExited && s.taken < s.total && !s.gone {
        eprintln!(
            "gtrace: pid {pid} exited during the window; reporting the {} snapshots taken",
            s.taken
        );
        s.gone = true;
    }
    if let Some(e) = failure.into_inner() {
        return Err(e);
    }
    if summary.reason == StopReason::OverBudget {
        eprintln!(
            "{}",
            super::record::over_budget_line(&summary, "the report")
        );
    }
    if s.taken < s.total && !s.gone {
        eprintln!(
            "gtrace: stopped after {} of {} snapshots ({:?}); reporting them",
            s.taken, s.total, summary.reason
        );
    }
    if let Some(p) = &summary.detach_problem {
        eprintln!("warning: {p}");
    }
    let lost = summary.lost() + summary.counts.total_errors();
    let traced_secs = summary.elapsed.as_secs_f64();
    let groups = s.tracker.finish_traced(&TraceInput {
        life: &life,
        lost,
        traced_secs,
        reasons: &reasons,
    });
    let trace = TraceSummary {
        seconds: traced_secs,
        events: summary.events,
        dropped: summary.counts.total_drops(),
        decode_errors: summary.decode_errors,
        probe_errors: summary.counts.total_errors(),
        untracked: life.untracked,
        detach_problem: summary.detach_problem.clone(),
        ended_over_budget: summary.reason == StopReason::OverBudget,
    };
    Ok((groups, s, Some(trace)))
}

/// Evaluates the rules, writes the report, and picks the exit code.
fn report(
    args: &LeaksArgs,
    target: &Target,
    all: Vec<GroupReport>,
    s: &Sampler<'_>,
    trace: Option<&TraceSummary>,
    out: &mut dyn Write,
) -> Result<Exit> {
    let cfg = Config::default();
    let hidden = if args.all {
        0
    } else {
        all.iter().filter(|g| g.is_runtime()).count()
    };
    let mut groups: Vec<(GroupReport, Verdict)> = all
        .into_iter()
        .filter(|g| args.all || !g.is_runtime())
        .map(|g| {
            let v = rules::evaluate(&g, &cfg);
            (g, v)
        })
        .collect();
    groups.sort_by_key(|(g, v)| (!v.leak, !v.suspect, std::cmp::Reverse(g.count)));
    let version = target.version_string();
    let report = Report {
        pid: args.pid,
        go_version: &version,
        snapshots: s.tracker.snapshots(),
        window_secs: groups.first().map_or(0.0, |(g, _)| g.window_secs),
        interval_secs: args.interval.as_secs_f64(),
        goroutines: groups.iter().map(|(g, _)| g.count).sum(),
        hidden_groups: hidden,
        trace,
        groups: &groups,
    };
    if args.json {
        write_json(&mut *out, &report)?;
    } else {
        write_text(&mut *out, &report)?;
    }
    out.flush()?;
    let tripped = args
        .fail_on
        .is_some_and(|n| groups.iter().any(|(g, v)| v.leak && g.count >= n));
    Ok(if s.gone {
        Exit::ProcessGone
    } else if tripped {
        Exit::LeaksFound
    } else {
        Exit::Ok
    })
}

/// False once `pid` has exited (gone, or a zombie: its memory is no longer readable).
fn process_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the parenthesised command name, which may contain spaces.
        stat.rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .is_some_and(|state| !matches!(state, 'Z' | 'X'))
    })
}
