//! `gtrace trace`: stream goroutine lifecycle events of a live process, one line each.

use std::{
    collections::HashMap,
    io::{BufWriter, Write as _},
};

use anyhow::{Context as _, Result};
use regex::Regex;
use tracer_common::event::{Event, EventKind, Raw};

use super::{
    attach::{TargetArgs, ktime_now, stop_flag},
    exit::Exit,
};
use crate::{
    capture::SymbolTable,
    gobin::waitreason::WaitReasons,
    output::lifecycle::{self, Context, Losses},
    probes::session::{self, Callbacks, Notice, Options, Target, Tick},
};

/// Flags of `gtrace trace`.
#[derive(Debug, clap::Args)]
#[command(after_help = "EXAMPLES:
    sudo gtrace trace -p 1234 --kind create,exit
    sudo gtrace trace -p 1234 --func 'main\\.worker' --json
    sudo gtrace trace -- ./server")]
pub struct Args {
    /// What to trace.
    #[command(flatten)]
    pub target: TargetArgs,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// Event kinds to show (create, park, ready, execute, yield, exit, switch, wakeup,
    /// thread-exit, and those of the latency probes: syscall, syscall-exit, syscall-exit-nop,
    /// injected, suspended, stw-start, stw-done, gc-start, gc-mark-termination, assist-start,
    /// assist-done); default: the goroutine events (create … exit).
    #[arg(long, value_delimiter = ',')]
    pub kind: Vec<String>,
    /// Only events whose goroutine's start function, creation site or stack matches.
    #[arg(long, value_name = "REGEX")]
    pub func: Option<Regex>,
    /// Stop after this long.
    #[arg(short, long, value_parser = super::duration::parse)]
    pub duration: Option<std::time::Duration>,
    /// Overhead budget.
    #[command(flatten)]
    pub overhead: super::record::OverheadArgs,
}

/// Runs `gtrace trace`.
pub fn run(args: &Args) -> Result<Exit> {
    let kinds: Vec<EventKind> = if args.kind.is_empty() {
        EventKind::GOROUTINE.to_vec()
    } else {
        args.kind
            .iter()
            .map(|k| {
                EventKind::ALL
                    .into_iter()
                    .find(|x| x.name() == k.trim())
                    .with_context(|| format!("unknown event kind `{k}`"))
            })
            .collect::<Result<_>>()?
    };
    let stop = stop_flag()?;
    let mut attached = args.target.start()?;
    // The scheduler-latency probes only when one of their kinds is asked for.
    let latency = kinds.iter().any(|k| *k as u32 >= EventKind::Syscall as u32);
    let target = Target::open_with(attached.pid, latency)
        .with_context(|| format!("preparing to trace process {}", attached.pid))?;
    let wait_reasons: Vec<String> = WaitReasons::for_version(&target.plan.version)
        .map(|w| w.strings.iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    let start_ktime = ktime_now();
    let mut symbols = SymbolTable::default();
    // Start function of goroutines created while tracing, for --func.
    let mut starts: HashMap<u64, String> = HashMap::new();
    let stdout = std::io::stdout();
    let out = std::cell::RefCell::new(BufWriter::new(stdout.lock()));
    let io_error = std::cell::RefCell::new(None);
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
                // Attaching takes a while on large binaries: say when events start to flow.
                eprintln!(
                    "gtrace: tracing pid {} ({} probes) until {}",
                    attached.pid,
                    target.plan.sites.len() + 3,
                    args.duration.map_or_else(
                        || "Ctrl-C or the target exits".to_owned(),
                        |d| format!("{:.1}s have passed", d.as_secs_f64())
                    )
                );
                attached.resume();
            },
            panic: |_: &[u8]| {},
            // Text: the governor's decisions on stderr. JSON: also one object per decision and
            // per closed gap on stdout, in stream order, so consumers know what was not seen.
            notice: |n: &Notice| {
                if let Some(line) = super::record::notice_line(n, budget.unwrap_or(0.0)) {
                    eprintln!("{line}");
                }
                let closed_or_decision = match n {
                    Notice::Gap { end_ktime_ns, .. } => end_ktime_ns.is_some(),
                    Notice::Governor { .. } => true,
                };
                if args.json && closed_or_decision && io_error.borrow().is_none() {
                    let mut out = out.borrow_mut();
                    if let Err(err) = serde_json::to_writer(&mut *out, n)
                        .map_err(std::io::Error::other)
                        .and_then(|()| writeln!(out))
                    {
                        *io_error.borrow_mut() = Some(err);
                    }
                }
            },
            event: |raw: Raw<'_>| {
                let e = &raw.event();
                if !kinds.contains(&e.kind()) || io_error.borrow().is_some() {
                    if let Event::Create(c) = e
                        && args.func.is_some()
                    {
                        symbols.resolve_event(&target.binary, target.bias, e);
                        starts.insert(c.goid, symbols.function(c.startpc, false));
                    }
                    return;
                }
                symbols.resolve_event(&target.binary, target.bias, e);
                let ctx = Context {
                    symbols: &symbols,
                    wait_reasons: &wait_reasons,
                    start_ktime,
                    baseline: &[],
                };
                let line = lifecycle::event_line(e, &ctx);
                if let Event::Create(c) = e {
                    starts.insert(c.goid, line.start.clone().unwrap_or_default());
                }
                if let Some(re) = &args.func {
                    let stack = match e {
                        Event::Park(p) => &p.stack[..(p.stack_len as usize).min(p.stack.len())],
                        Event::Ready(r) => &r.stack[..(r.stack_len as usize).min(r.stack.len())],
                        _ => &[][..],
                    };
                    let hit = line
                        .goid
                        .and_then(|g| starts.get(&g))
                        .is_some_and(|s| re.is_match(s))
                        || line.site.as_deref().is_some_and(|s| re.is_match(s))
                        || symbols
                            .stack(stack)
                            .iter()
                            .any(|f| re.is_match(&f.function));
                    if !hit {
                        return;
                    }
                }
                let mut out = out.borrow_mut();
                let r = if args.json {
                    serde_json::to_writer(&mut *out, &line)
                        .map_err(std::io::Error::other)
                        .and_then(|()| writeln!(out))
                } else {
                    lifecycle::write_event_line(&mut *out, &line)
                };
                if let Err(err) = r {
                    *io_error.borrow_mut() = Some(err);
                }
            },
            tick: |_: &Tick<'_>| {
                let _ = out.borrow_mut().flush();
            },
        },
    )?;
    out.borrow_mut().flush()?;
    drop(out);
    if let Some(e) = io_error.into_inner() {
        return Err(e.into());
    }
    lifecycle::write_losses(
        &mut std::io::stderr(),
        &Losses {
            dropped: summary.counts.total_drops(),
            decode_errors: summary.decode_errors,
            probe_errors: summary.counts.total_errors(),
            complete: true,
            probes: super::record::probe_counts(&summary.counts),
        },
    )?;
    if summary.sampling.gaps > 0 {
        eprintln!("{}", super::record::sampling_line(&summary));
    }
    if let Some(c) = attached.child.as_mut()
        && summary.reason == session::StopReason::TargetExited
    {
        let _ = c.wait();
    }
    attached.release();
    Ok(Exit::Ok)
}
