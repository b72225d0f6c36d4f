//! `gtrace record`: capture goroutine lifecycle events of a process into a file that
//! `gtrace report` analyses later without the binary (symbols are stored in it).

use std::{
    fs::File,
    io::{BufWriter, IsTerminal as _, Write as _},
    path::PathBuf,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use std::fmt::Write as _;

use anyhow::{Context as _, Result};
use tracer_common::event::{Event, EventKind, Raw};

use super::{
    attach::{TargetArgs, ktime_now, stop_flag},
    duration,
    exit::Exit,
};
use crate::{
    capture::{self, Footer, Header, PcSet, Preexisting, ProbeCount, SymbolTable},
    gobin::waitreason::WaitReasons,
    panics::ancestry::{Ancestry, Creator},
    probes::{
        Counts, governor,
        session::{self, Callbacks, Notice, Options, StopReason, Summary, Target, Tick},
    },
};

/// Flags of `gtrace record`.
#[derive(Debug, clap::Args)]
#[command(after_help = "EXAMPLES:
    sudo gtrace record -p 1234 -d 30s -o app.gtc
    sudo gtrace record -o run.gtc -- ./server --port 8080
    gtrace report app.gtc")]
pub struct Args {
    /// What to trace.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Stop after this long (default: until Ctrl-C or the target exits).
    #[arg(short, long, value_parser = duration::parse)]
    pub duration: Option<Duration>,
    /// Capture file (default: gtrace-PID.gtc).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Overhead budget.
    #[command(flatten)]
    pub overhead: OverheadArgs,
    /// Benchmark only: attach every probe but emit nothing (each counts its hit and returns).
    #[arg(long, hide = true)]
    pub empty_probes: bool,
    /// Benchmark only: also make every `getppid` system call of the target write a
    /// park-shaped event (a synthetic source for delivery at rates Go code cannot reach).
    #[arg(long, hide = true)]
    pub bench_parks: bool,
}

/// `--max-overhead`, shared by the commands that attach the lifecycle probes.
#[derive(Debug, Clone, clap::Args)]
pub struct OverheadArgs {
    /// Estimated cost budget of the probes, percent of the target's own CPU time (`off`: no
    /// limit). Above it, park/ready/execute/yield and the scheduler tracepoints are sampled in
    /// windows (create, exit and panics stay exact); said on stderr and in the capture.
    #[arg(long, value_name = "PCT", default_value = "5", value_parser = parse_overhead)]
    pub max_overhead: Budget,
}

/// `--max-overhead` for the commands whose models need every event (`leaks --trace`,
/// `profile --kind block`): over budget, tracing ends instead of sampling.
#[derive(Debug, Clone, clap::Args)]
pub struct ExactOverheadArgs {
    /// Estimated cost budget of the probes, percent of the target's own CPU time (`off`: no
    /// limit). This result needs every event, so above the budget tracing ends early (said
    /// on stderr) and the result covers the part traced.
    #[arg(long, value_name = "PCT", default_value = "5", value_parser = parse_overhead)]
    pub max_overhead: Budget,
}

/// The stderr line of a session that ended over budget ([`StopReason::OverBudget`]).
pub fn over_budget_line(summary: &Summary, what: &str) -> String {
    format!(
        "gtrace: tracing ended after {:.1}s: tracing every event would cost the target ~{:.0}% \
         of its CPU time (budget {}%); {what} covers the part traced; `--max-overhead off` (or \
         a higher budget) traces the whole window",
        summary
            .stopped_ktime_ns
            .saturating_sub(summary.attached_ktime_ns) as f64
            / 1e9,
        summary.sampling.peak_full_pct,
        summary.sampling.max_overhead_pct.unwrap_or(0.0)
    )
}

/// A parsed `--max-overhead`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget(pub Option<f64>);

fn parse_overhead(s: &str) -> Result<Budget, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(Budget(None));
    }
    let v: f64 = s
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("`{s}` is not a percentage (e.g. 5, 0.5 or off)"))?;
    if v.is_finite() && v > 0.0 {
        Ok(Budget(Some(v)))
    } else {
        Err(format!(
            "--max-overhead must be above 0 (or `off`), not {s}"
        ))
    }
}

/// The stderr line for a governor notice (gaps are not announced one by one).
pub fn notice_line(n: &Notice, budget: f64) -> Option<String> {
    let Notice::Governor {
        previous_duty,
        decision: d,
        ..
    } = n
    else {
        return None;
    };
    if d.duty >= 1.0 {
        return Some(format!(
            "overhead governor: back to exact tracing (estimated cost {:.1}% of the target's \
             CPU, budget {budget}%)",
            d.full_pct
        ));
    }
    let verb = if *previous_duty >= 1.0 {
        "sampling"
    } else {
        "now sampling"
    };
    let mut line = format!(
        "overhead governor: exact tracing would cost ~{:.0}% of the target's CPU (budget \
         {budget}%): {verb} park/ready/execute/yield and scheduler events {:.0}% of the time \
         ({} ms of every {} ms, ~{:.0}%); create, exit and panics stay exact",
        d.full_pct,
        d.duty * 100.0,
        (d.duty * governor::PERIOD.as_millis() as f64).round(),
        governor::PERIOD.as_millis(),
        d.chosen_pct
    );
    if !d.reachable {
        let _ = write!(
            line,
            "; the budget cannot be met: the probe traps alone cost ~{:.0}% (end the capture \
             if that is too much)",
            d.floor_pct
        );
    }
    Some(line)
}

/// A notice as stored in a capture.
pub fn write_notice<W: std::io::Write>(
    w: &mut capture::Writer<W>,
    n: &Notice,
) -> Result<(), capture::CaptureError> {
    match *n {
        Notice::Governor {
            ktime_ns, decision, ..
        } => w.governor(capture::GovernorNote {
            ktime_ns,
            duty: decision.duty,
            full_pct: decision.full_pct,
            chosen_pct: decision.chosen_pct,
            floor_pct: decision.floor_pct,
            reachable: decision.reachable,
        }),
        Notice::Gap {
            start_ktime_ns,
            end_ktime_ns,
        } => w.gap(capture::Gap {
            start_ktime_ns,
            end_ktime_ns: end_ktime_ns.unwrap_or(0),
        }),
    }
}

/// Per-probe counters as stored in a capture.
pub fn probe_counts(c: &Counts) -> Vec<ProbeCount> {
    c.hits
        .iter()
        .map(|(probe, hits)| ProbeCount {
            probe: (*probe).to_owned(),
            hits: *hits,
            errors: c.errors.get(probe).copied().unwrap_or(0),
            drops: c.drops.get(probe).copied().unwrap_or(0),
        })
        .collect()
}

/// The footer of a finished session.
pub fn footer(s: &Summary) -> Footer {
    Footer {
        stop_reason: serde_json::to_value(s.reason)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        events: s.events,
        decode_errors: s.decode_errors,
        probes: probe_counts(&s.counts),
        elapsed_ns: s.elapsed.as_nanos() as u64,
        detach_problem: s.detach_problem.clone().unwrap_or_default(),
        sampled_out_ns: s.sampling.sampled_out_ns,
        attached_ktime_ns: s.attached_ktime_ns,
        ended_ktime_ns: s.stopped_ktime_ns,
        ..Footer::default()
    }
}

/// Goroutines alive now, read from process memory (the attach-time baseline).
pub fn baseline(pid: u32) -> Result<Vec<Preexisting>, String> {
    let t = crate::goroutines::target::Target::open(pid as i32).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    t.dump(crate::goroutines::DumpOptions { system: true }, &mut |g| {
        out.push(Preexisting {
            goid: g.goid,
            state: g.state_text(),
            created_by: g
                .created_by
                .as_ref()
                .map(|c| format!("{} ({}:{})", c.function, c.file, c.line))
                .unwrap_or_default(),
            parent_goid: g.parent_goid.unwrap_or(0),
            start_function: t
                .start_function(g.g_addr)
                .unwrap_or_else(|| start_function(&g.stack)),
        });
    })
    .map_err(|e| e.to_string())?;
    Ok(out)
}

/// The outermost frame of a complete dumped stack: the goroutine's start function ("" when
/// the stack was cut or elided).
fn start_function(s: &crate::goroutines::unwind::Selected) -> String {
    if s.truncated || s.elided.is_some() {
        return String::new();
    }
    s.frames
        .iter()
        .chain(&s.tail)
        .rev()
        .map(|f| &*f.src.function)
        .find(|f| *f != "runtime.goexit")
        .unwrap_or_default()
        .to_owned()
}

/// Writes the finished panics as `gtrace panics --json` objects into the capture.
fn write_panics<W: std::io::Write>(
    writer: &std::cell::RefCell<capture::Writer<W>>,
    reporter: &mut crate::panics::report::Reporter<'_>,
    ancestry: &mut Ancestry,
    finished: &mut std::collections::VecDeque<crate::panics::model::FinishedPanic>,
    error: &mut Option<capture::CaptureError>,
) {
    while let Some(f) = finished.pop_front() {
        let report = reporter.report(&f, ancestry);
        let Ok(json) = serde_json::to_string(&report) else {
            continue;
        };
        if error.is_none()
            && let Err(e) = writer.borrow_mut().panic(json)
        {
            *error = Some(e);
        }
    }
}

/// Capacity of the capture file's write buffer (one `write` per this many bytes of events).
const WRITE_BUFFER: usize = 256 << 10;

/// Runs `gtrace record`.
pub fn run(args: &Args) -> Result<Exit> {
    let stop = stop_flag()?;
    let mut attached = args.target.start()?;
    // The scheduler-latency probes too: `gtrace report` shows where the time went.
    let target = Target::open_with(attached.pid, true)
        .with_context(|| format!("preparing to trace process {}", attached.pid))?;
    let path = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("gtrace-{}.gtc", attached.pid)));
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let wait_reasons = WaitReasons::for_version(&target.plan.version)
        .map(|w| w.strings.iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    let version = &target.plan.version;
    let header = Header {
        pid: attached.pid,
        exe: target.process.exe_display.display().to_string(),
        go_version: format!("go{}.{}.{}", version.major, version.minor, version.patch),
        bias: target.bias,
        wait_reasons,
        started_unix_ns: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
        started_ktime_ns: ktime_now(),
        baseline_goids: Vec::new(),
        baseline_note: String::new(),
        baseline: Vec::new(),
        max_overhead_pct: args.overhead.max_overhead.0.unwrap_or(0.0),
    };
    let mut header = header;
    if attached.child.is_some() {
        header.baseline_note = "started by gtrace: no goroutine existed before".into();
    } else {
        match baseline(attached.pid) {
            Ok(g) => {
                header.baseline_goids = g.iter().map(|g| g.goid).collect();
                header.baseline = g;
            }
            Err(e) => header.baseline_note = format!("baseline unavailable: {e}"),
        }
    }
    // Large writes: fewer system calls per event.
    let writer = std::cell::RefCell::new(capture::Writer::new(
        BufWriter::with_capacity(WRITE_BUFFER, file),
        header,
    )?);
    // Panics are recorded too: their probes cost nothing until the target panics.
    let panic_plan = match crate::panics::plan(&target.binary) {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("warning: panics will not be recorded: {e}");
            None
        }
    };
    let panic_rec = std::cell::RefCell::new(panic_plan.as_ref().map(|p| {
        let mut r =
            crate::panics::report::Reporter::new(&target.binary, &p.layout, p.gopanic_site());
        r.set_bias(target.bias);
        (
            r,
            crate::panics::model::PanicModel::new(),
            Ancestry::new(),
            std::collections::VecDeque::new(),
        )
    }));
    let mut panic_errors = 0u64;
    let mut panic_error = None;
    // PCs are collected per event and symbolized in one batch once the capture is over.
    let mut pcs = PcSet::default();
    // Shared by the event and notice callbacks: the first write error wins.
    let write_error = std::cell::RefCell::new(None);
    let tty = std::io::stderr().is_terminal();
    let mut last_progress = Instant::now();
    // Without a terminal (logs), one line every 5 s instead of a line redrawn 4 times a second.
    let every = if tty {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(5)
    };
    let start = Instant::now();
    let budget = args.overhead.max_overhead.0;
    // The governor's current duty, for the progress line.
    let duty = std::cell::Cell::new(1.0_f64);
    let summary = session::run_with(
        &target,
        &Options {
            duration: args.duration,
            stop,
            max_overhead: budget,
            empty_probes: args.empty_probes,
            bench_parks: args.bench_parks,
            stop_over_budget: false,
        },
        panic_plan.as_ref(),
        Callbacks {
            attached: || {
                eprintln!(
                    "attached to pid {} ({} probes); recording to {} until {}",
                    attached.pid,
                    target.plan.sites.len() + 3,
                    path.display(),
                    args.duration.map_or_else(
                        || "Ctrl-C or the target exits".to_owned(),
                        |d| format!("{:.1}s have passed", d.as_secs_f64())
                    )
                );
                attached.resume();
            },
            // The hot path: the record goes to the file as the kernel wrote it (no decoding
            // beyond what is needed here; each distinct stack stored once), new PCs into a set.
            event: |e: Raw<'_>| {
                if let Some(c) = e.create()
                    && let Some((_, _, ancestry, _)) = panic_rec.borrow_mut().as_mut()
                {
                    ancestry.insert(
                        c.goid,
                        Creator::Pc {
                            parent: c.parent_goid,
                            gopc: c.gopc,
                        },
                    );
                } else if e.kind() == EventKind::Exit
                    && let Event::Exit(x) = e.event()
                    && let Some((_, _, ancestry, _)) = panic_rec.borrow_mut().as_mut()
                {
                    ancestry.exited(x.goid);
                }
                // After a write error the capture is lost: its PCs need no symbols either.
                if write_error.borrow().is_some() {
                    return;
                }
                let fresh = match writer.borrow_mut().event_raw(e) {
                    Ok(fresh) => fresh,
                    Err(err) => {
                        *write_error.borrow_mut() = Some(err);
                        return;
                    }
                };
                // The writer stores each stack once and says when one is new: only then
                // (and for creations) do the PCs need to go into the set.
                if fresh || e.kind() == EventKind::Create {
                    pcs.add(e);
                }
            },
            panic: |raw: &[u8]| {
                let mut rec = panic_rec.borrow_mut();
                let Some((reporter, model, ancestry, finished)) = rec.as_mut() else {
                    return;
                };
                match tracer_common::panic::decode(raw) {
                    Ok(p) => model.apply(&p, finished),
                    Err(_) => panic_errors += 1,
                }
                write_panics(&writer, reporter, ancestry, finished, &mut panic_error);
            },
            notice: |n: &Notice| {
                if let Notice::Governor { decision, .. } = n {
                    duty.set(decision.duty);
                }
                if let Some(line) = notice_line(n, budget.unwrap_or(0.0)) {
                    super::progress::message(tty, &line);
                }
                if write_error.borrow().is_none()
                    && let Err(err) = write_notice(&mut writer.borrow_mut(), n)
                {
                    *write_error.borrow_mut() = Some(err);
                }
            },
            tick: |t: &Tick<'_>| {
                // Panics read so far are written: exits read before the previous tick take
                // effect now.
                if let Some((_, _, ancestry, _)) = panic_rec.borrow_mut().as_mut() {
                    ancestry.settle();
                }
                if last_progress.elapsed() >= every {
                    last_progress = Instant::now();
                    let line = format!(
                        "recording pid {}: {:.1}s, {} events, {} lost{}",
                        attached.pid,
                        start.elapsed().as_secs_f64(),
                        t.events,
                        t.counts().map_or(0, |c| c.total_drops()),
                        if duty.get() < 1.0 {
                            format!(
                                ", hot probes sampled {:.0}% of the time",
                                duty.get() * 100.0
                            )
                        } else {
                            String::new()
                        }
                    );
                    super::progress::update(tty, &line);
                }
            },
        },
    )?;
    if tty {
        eprintln!();
    }
    if let Some((reporter, model, ancestry, finished)) = panic_rec.borrow_mut().as_mut() {
        model.finish(ktime_now(), finished);
        write_panics(&writer, reporter, ancestry, finished, &mut panic_error);
        if ancestry.dropped() > 0 {
            eprintln!(
                "warning: the creators of {} goroutines were dropped to bound memory (over {} goroutines kept); their panics' ancestries may stop early",
                ancestry.dropped(),
                crate::panics::ancestry::LIMIT
            );
        }
    }
    if let Some(e) = write_error.into_inner().or(panic_error) {
        return Err(e).context(format!("writing {}", path.display()));
    }
    if panic_errors > 0 {
        eprintln!("warning: {panic_errors} undecodable panic records");
    }
    let writer = writer.into_inner();
    let mut foot = footer(&summary);
    foot.latency_probes = true;
    foot.degraded = target
        .degraded
        .iter()
        .map(|d| format!("{}: {}", d.function, d.effect))
        .collect();
    let mut symbols = SymbolTable::default();
    symbols.resolve_pcs(&target.binary, target.bias, &pcs);
    writer.finish(symbols.to_proto(), foot)?;
    eprintln!(
        "wrote {}: {} events in {:.1}s, ended by {:?}",
        path.display(),
        summary.events,
        summary.elapsed.as_secs_f64(),
        summary.reason
    );
    eprintln!(
        "lost events: {} dropped (ring buffer full), {} undecodable; {} probe read failures",
        summary.counts.total_drops(),
        summary.decode_errors,
        summary.counts.total_errors()
    );
    if summary.sampling.gaps > 0 {
        eprintln!("{}", sampling_line(&summary));
    }
    if let Some(p) = &summary.detach_problem {
        eprintln!("warning: {p}");
    }
    if let Some(c) = attached.child.as_mut()
        && summary.reason == StopReason::TargetExited
    {
        let _ = c.wait();
    }
    attached.release();
    let _ = std::io::stderr().flush();
    Ok(Exit::Ok)
}

/// The end-of-capture line when the governor sampled.
pub fn sampling_line(s: &Summary) -> String {
    let total = s.elapsed.as_nanos().max(1) as f64;
    format!(
        "sampled: the hot probes emitted {:.0}% of the time ({} gaps, smallest duty {:.0}%); \
         their hits stay exact in the footer; create/exit/panic events are complete",
        100.0 * (1.0 - s.sampling.sampled_out_ns as f64 / total).max(0.0),
        s.sampling.gaps,
        100.0 * s.sampling.min_duty
    )
}
