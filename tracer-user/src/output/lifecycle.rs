//! Lifecycle reports: the summary and one goroutine's life, as serializable structs rendered
//! to text or JSON from the same data, and the one-line-per-event form of `gtrace trace`.

use std::io::{self, Write};

use serde::Serialize;
use tracer_common::event::Event;

use crate::{
    capture::{Frame, ProbeCount, SymbolTable},
    model::{Goroutine, Model, percentile},
};

/// Rows shown in the top lists.
pub const TOP: usize = 10;

/// What the renderers need besides the model.
pub struct Context<'a> {
    /// Resolved PCs.
    pub symbols: &'a SymbolTable,
    /// `waitReason` strings.
    pub wait_reasons: &'a [String],
    /// Kernel time of the capture start: times are shown relative to it.
    pub start_ktime: u64,
    /// Goroutines alive at attach, by goid (empty without a baseline).
    pub baseline: &'a [crate::capture::Preexisting],
}

impl Context<'_> {
    /// The name of wait reason `r`.
    pub fn reason(&self, r: u32) -> String {
        self.wait_reasons
            .get(r as usize)
            .filter(|s| !s.is_empty())
            .cloned()
            .unwrap_or_else(|| format!("waitReason({r})"))
    }

    fn rel(&self, t: u64) -> u64 {
        t.saturating_sub(self.start_ktime)
    }

    /// Start function of `g` (from its creation), if known; for a goroutine that predates
    /// the capture, where the baseline says it was created.
    pub fn start_function(&self, g: &Goroutine) -> Option<String> {
        g.created
            .map(|c| self.symbols.function(c.startpc, false))
            .or_else(|| {
                self.preexisting(g.goid)
                    .filter(|p| !p.created_by.is_empty())
                    .map(|p| format!("created by {}", p.created_by))
            })
    }

    /// The baseline entry of `goid`.
    pub fn preexisting(&self, goid: u64) -> Option<&crate::capture::Preexisting> {
        self.baseline.iter().find(|p| p.goid == goid)
    }
}

/// The user's frame of a stack: the first outside the runtime and the standard sync code.
pub fn user_frame(stack: &[Frame]) -> Option<&Frame> {
    stack.iter().find(|f| {
        !(f.function.starts_with("runtime.")
            || f.function.starts_with("sync.")
            || f.function.starts_with("internal/")
            || f.function.starts_with("time.")
            || f.function.starts_with("0x"))
    })
}

fn frame_text(f: &Frame) -> String {
    format!("{} ({}:{})", f.function, f.file, f.line)
}

/// Sites are grouped by (wait reason, whole stack) but shown by one frame, so two rows can
/// read the same (`net.(*netFD).Read` reached from two callers): extend such rows with their
/// callers (`site ← caller ← …`) until they differ or the stacks end.
fn distinct_sites(sites: &mut [BlockingSite]) {
    for depth in 1..=4 {
        let mut dup = vec![false; sites.len()];
        for i in 0..sites.len() {
            for j in i + 1..sites.len() {
                if sites[i].reason == sites[j].reason && sites[i].site == sites[j].site {
                    dup[i] = true;
                    dup[j] = true;
                }
            }
        }
        if !dup.contains(&true) {
            return;
        }
        for (b, _) in sites.iter_mut().zip(dup).filter(|(_, d)| *d) {
            let Some(at) =
                user_frame(&b.stack).and_then(|u| b.stack.iter().position(|f| std::ptr::eq(f, u)))
            else {
                continue;
            };
            if let Some(caller) = b.stack.get(at + depth) {
                b.site = format!("{} ← {}", b.site, frame_text(caller));
            }
        }
    }
}

/// Losses and counters of a capture.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Losses {
    /// Events lost because the ring buffer was full.
    pub dropped: u64,
    /// Records that could not be decoded.
    pub decode_errors: u64,
    /// Probe firings whose target-memory reads failed (no event).
    pub probe_errors: u64,
    /// False when the capture was cut short (no footer).
    pub complete: bool,
    /// Per-probe counters.
    pub probes: Vec<ProbeCount>,
}

/// One blocking site.
#[derive(Debug, Clone, Serialize)]
pub struct BlockingSite {
    /// Wait reason.
    pub reason: String,
    /// The user frame where it blocked.
    pub site: String,
    /// Completed parks.
    pub count: u64,
    /// Total time parked, ns.
    pub total_ns: u64,
    /// Longest park, ns.
    pub max_ns: u64,
    /// The whole parking stack.
    pub stack: Vec<Frame>,
}

/// One waker.
#[derive(Debug, Clone, Serialize)]
pub struct Waker {
    /// The waker's goid (0 = the runtime: timers, netpoll, scheduler).
    pub goid: u64,
    /// Its start function when known.
    pub function: Option<String>,
    /// Goroutines it made runnable.
    pub count: u64,
}

/// Scheduling latency (runnable → running) statistics.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    /// Samples.
    pub count: usize,
    /// Percentiles, ns.
    pub p50_ns: Option<u64>,
    /// 90th.
    pub p90_ns: Option<u64>,
    /// 99th.
    pub p99_ns: Option<u64>,
    /// Maximum.
    pub max_ns: Option<u64>,
}

/// The `gtrace report` summary.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Target PID.
    pub pid: u32,
    /// Executable.
    pub exe: String,
    /// Go version.
    pub go_version: String,
    /// Time covered by events, ns.
    pub window_ns: u64,
    /// Why the capture ended.
    pub stop_reason: String,
    /// Goroutines created during the capture.
    pub created: u64,
    /// Exits seen.
    pub exited: u64,
    /// Goroutines known and not seen exiting (baseline + first seen + created).
    pub alive: usize,
    /// Goroutines that existed before the capture and were seen or listed in the baseline.
    pub preexisting: usize,
    /// Events per kind.
    pub events: std::collections::BTreeMap<&'static str, u64>,
    /// Top blocking sites by total parked time.
    pub blocking: Vec<BlockingSite>,
    /// Top wakers by count.
    pub wakers: Vec<Waker>,
    /// Scheduling latency.
    pub sched_latency: Latency,
    /// Events that did not fit the state machine.
    pub anomalies: crate::model::Anomalies,
    /// Losses.
    pub losses: Losses,
    /// Empty when every probed instruction was verified restored after detaching (or the
    /// target had exited); otherwise what differed.
    pub detach_problem: String,
    /// What the overhead governor did (sampled fraction 1 when every event is exact).
    pub sampling: SamplingReport,
}

/// How much of the hot events the capture holds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SamplingReport {
    /// The `--max-overhead` budget, percent (`None`: no governor).
    pub max_overhead_pct: Option<f64>,
    /// Fraction of the event window during which the hot probes (park, ready, execute,
    /// yield, scheduler tracepoints) emitted; 1 = every event recorded.
    pub observed_fraction: f64,
    /// What the gaps hid from the model (cut parks and latencies are not measured).
    pub unobserved: crate::model::Unobserved,
    /// Hits of the hot probes, exact even while sampled out (`name → hits`): the true
    /// totals the observed counts are a sample of.
    pub hot_hits: std::collections::BTreeMap<String, u64>,
    /// The governor's decisions, in order.
    pub decisions: Vec<crate::capture::GovernorNote>,
    /// The gaps, ns from the capture start: `(start, end)`, end `None` when the capture
    /// ended inside the gap.
    pub gaps_ns: Vec<(u64, Option<u64>)>,
}

impl SamplingReport {
    /// Fills in what the capture says about the governor: budget, decisions, probe hits.
    pub fn from_capture(&mut self, cap: &crate::capture::Capture) {
        let pct = cap.header.max_overhead_pct;
        self.max_overhead_pct = (pct > 0.0).then_some(pct);
        self.decisions.clone_from(&cap.governor);
        let t0 = cap.header.started_ktime_ns;
        self.gaps_ns = cap
            .gap_intervals()
            .into_iter()
            .map(|(a, b)| {
                (
                    a.saturating_sub(t0),
                    (b != u64::MAX).then(|| b.saturating_sub(t0)),
                )
            })
            .collect();
        if let Some(f) = &cap.footer {
            self.hot_hits = f
                .probes
                .iter()
                .filter(|p| {
                    crate::probes::governor::HOT
                        .iter()
                        .any(|h| h.name() == p.probe)
                })
                .map(|p| (p.probe.clone(), p.hits))
                .collect();
        }
    }
}

/// Target identity for [`summary`].
pub struct TargetInfo {
    /// PID.
    pub pid: u32,
    /// Executable.
    pub exe: String,
    /// `go1.N.M`.
    pub go_version: String,
    /// Stop reason.
    pub stop_reason: String,
    /// The detach verification's finding (empty = fine).
    pub detach_problem: String,
}

/// Builds the summary.
pub fn summary(m: &Model, ctx: &Context<'_>, target: TargetInfo, losses: Losses) -> Summary {
    let mut sites: Vec<_> = m.sites.iter().collect();
    sites.sort_by(|a, b| b.1.total_ns.cmp(&a.1.total_ns).then(a.0.cmp(b.0)));
    let mut blocking: Vec<BlockingSite> = sites
        .into_iter()
        .take(TOP)
        .map(|((reason, stack), t)| {
            let stack = ctx.symbols.stack(m.stacks.get(*stack));
            BlockingSite {
                reason: ctx.reason(*reason),
                site: user_frame(&stack).map_or_else(|| "?".into(), frame_text),
                count: t.count,
                total_ns: t.total_ns,
                max_ns: t.max_ns,
                stack,
            }
        })
        .collect();
    distinct_sites(&mut blocking);
    let mut wakers: Vec<_> = m.wakers.iter().collect();
    wakers.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let wakers = wakers
        .into_iter()
        .take(TOP)
        .map(|(goid, count)| Waker {
            goid: *goid,
            function: m.goroutines.get(goid).and_then(|g| ctx.start_function(g)),
            count: *count,
        })
        .collect();
    let l = &m.sched_latencies;
    Summary {
        pid: target.pid,
        exe: target.exe,
        go_version: target.go_version,
        window_ns: m.span.map_or(0, |(a, b)| b - a),
        stop_reason: target.stop_reason,
        created: m.created,
        exited: m.exited,
        alive: m.alive(),
        preexisting: m.goroutines.values().filter(|g| g.preexisting).count(),
        events: m.events.clone(),
        blocking,
        wakers,
        sched_latency: Latency {
            count: l.len(),
            p50_ns: percentile(l, 50.0),
            p90_ns: percentile(l, 90.0),
            p99_ns: percentile(l, 99.0),
            max_ns: l.iter().max().copied(),
        },
        anomalies: m.anomalies,
        losses,
        detach_problem: target.detach_problem,
        sampling: sampling(m),
    }
}

/// What the model says about sampling (the capture's part: [`SamplingReport::from_capture`]).
pub fn sampling(m: &Model) -> SamplingReport {
    SamplingReport {
        observed_fraction: m.span.map_or(1.0, |(a, b)| m.observed_fraction(a, b)),
        unobserved: m.unobserved,
        ..SamplingReport::default()
    }
}

/// Human-readable duration.
pub fn dur(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => format!("{:.1}µs", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1}ms", ns as f64 / 1e6),
        _ => format!("{:.2}s", ns as f64 / 1e9),
    }
}

fn opt_dur(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), dur)
}

/// Writes the losses line every command ends with.
pub fn write_losses(w: &mut dyn Write, l: &Losses) -> io::Result<()> {
    writeln!(
        w,
        "lost events: {} dropped (ring buffer full), {} undecodable; {} probe read failures{}",
        l.dropped,
        l.decode_errors,
        l.probe_errors,
        if l.complete {
            ""
        } else {
            "; capture cut short (no footer)"
        }
    )
}

/// Renders the summary as text.
pub fn write_summary(w: &mut dyn Write, s: &Summary) -> io::Result<()> {
    writeln!(
        w,
        "pid {} {} ({}), {} of events, ended by {}",
        s.pid,
        s.exe,
        s.go_version,
        dur(s.window_ns),
        s.stop_reason
    )?;
    writeln!(
        w,
        "goroutines: {} created, {} exited, {} alive at end ({} pre-existing)",
        s.created, s.exited, s.alive, s.preexisting
    )?;
    let ev: Vec<String> = s.events.iter().map(|(k, v)| format!("{k} {v}")).collect();
    writeln!(w, "events: {}", ev.join(", "))?;
    writeln!(w, "\ntop blocking sites (total time parked):")?;
    if s.blocking.is_empty() {
        writeln!(w, "  (none)")?;
    }
    for b in &s.blocking {
        writeln!(
            w,
            "  {:>10} {:>7}x max {:>9}  [{}] {}",
            dur(b.total_ns),
            b.count,
            dur(b.max_ns),
            b.reason,
            b.site
        )?;
    }
    writeln!(w, "\ntop wakers (goroutines made runnable):")?;
    if s.wakers.is_empty() {
        writeln!(w, "  (none)")?;
    }
    for k in &s.wakers {
        let who = if k.goid == 0 {
            "runtime (timers, netpoll, scheduler)".to_owned()
        } else {
            format!(
                "goroutine {} {}",
                k.goid,
                k.function.as_deref().unwrap_or("(started before capture)")
            )
        };
        writeln!(w, "  {:>9}  {who}", k.count)?;
    }
    let l = &s.sched_latency;
    writeln!(
        w,
        "\nscheduling latency (runnable → running), {} samples: p50 {} p90 {} p99 {} max {}",
        l.count,
        opt_dur(l.p50_ns),
        opt_dur(l.p90_ns),
        opt_dur(l.p99_ns),
        opt_dur(l.max_ns)
    )?;
    let a = &s.anomalies;
    if *a != crate::model::Anomalies::default() {
        writeln!(w, "unexpected event orders (counted, not fatal): {a:?}")?;
    }
    if !s.detach_problem.is_empty() {
        writeln!(w, "warning: after detaching: {}", s.detach_problem)?;
    }
    write_sampling(w, &s.sampling)?;
    write_losses(w, &s.losses)
}

/// Says how much of the hot events were sampled out, when any were.
pub fn write_sampling(w: &mut dyn Write, s: &SamplingReport) -> io::Result<()> {
    if s.unobserved.gaps == 0 {
        return Ok(());
    }
    let u = &s.unobserved;
    writeln!(
        w,
        "\nSAMPLED: the overhead governor (budget {}) recorded park/ready/execute/yield and \
         scheduler events {:.1}% of the time ({} gaps). Their counts, blocking totals, wakers \
         and latencies above are of the observed windows only (divide by {:.3} to estimate \
         totals); create/exit counts are exact. {} parks and {} scheduling latencies that \
         straddle a gap are left unmeasured, never reported as long.",
        s.max_overhead_pct
            .map_or_else(|| "?".to_owned(), |p| format!("{p}%")),
        100.0 * s.observed_fraction,
        u.gaps,
        s.observed_fraction,
        u.parks_cut,
        u.latencies_cut
    )?;
    if !s.hot_hits.is_empty() {
        let hits: Vec<String> = s.hot_hits.iter().map(|(k, v)| format!("{k} {v}")).collect();
        writeln!(
            w,
            "exact probe hits (sampled out or not): {}",
            hits.join(", ")
        )?;
    }
    Ok(())
}

/// One park in a goroutine's life.
#[derive(Debug, Clone, Serialize)]
pub struct ParkReport {
    /// When it parked, ns from capture start.
    pub at_ns: u64,
    /// Wait reason.
    pub reason: String,
    /// Time parked, ns (`None` while still parked).
    pub duration_ns: Option<u64>,
    /// Its user frame.
    pub site: String,
    /// Parking stack.
    pub stack: Vec<Frame>,
    /// Waker goid (0 = runtime), if readied.
    pub woken_by: Option<u64>,
    /// Stack at the `ready`.
    pub waker_stack: Vec<Frame>,
    /// Runnable → running, ns.
    pub sched_latency_ns: Option<u64>,
    /// Its end is hidden by a sampling gap: `duration_ns` is unknown, not "still parked".
    pub duration_unknown: bool,
}

/// One goroutine's life.
#[derive(Debug, Clone, Serialize)]
pub struct GoroutineReport {
    /// Its id.
    pub goid: u64,
    /// Created during the capture at this time (ns from start).
    pub created_at_ns: Option<u64>,
    /// Creator.
    pub parent: Option<u64>,
    /// The `go` statement.
    pub created_by: Option<String>,
    /// Start function.
    pub start: Option<String>,
    /// Existed before the capture.
    pub preexisting: bool,
    /// What the attach-time baseline said about it.
    pub at_attach: Option<crate::capture::Preexisting>,
    /// Parks (first [`crate::model::MAX_PARKS_PER_GOROUTINE`]).
    pub parks: Vec<ParkReport>,
    /// Parks not listed.
    pub parks_not_listed: u64,
    /// Times scheduled.
    pub runs: u64,
    /// Total scheduling latency, ns.
    pub sched_latency_total_ns: u64,
    /// Goroutines it readied.
    pub woke_others: u64,
    /// Times it yielded or was preempted.
    pub yields: u64,
    /// Exit time (ns from start).
    pub exited_at_ns: Option<u64>,
}

/// One goroutine's life, `None` if the capture never saw it.
pub fn goroutine(m: &Model, ctx: &Context<'_>, goid: u64) -> Option<GoroutineReport> {
    let g = m.goroutines.get(&goid)?;
    let parks = g
        .parks
        .iter()
        .map(|p| {
            let stack = ctx.symbols.stack(m.stacks.get(p.stack));
            let unknown = p.cut || (p.duration().is_none() && m.crosses_gap(p.at, u64::MAX));
            ParkReport {
                duration_unknown: unknown,
                at_ns: ctx.rel(p.at),
                reason: ctx.reason(p.reason),
                duration_ns: p.duration(),
                site: user_frame(&stack).map_or_else(|| "?".into(), frame_text),
                stack,
                woken_by: p.wake.map(|w| w.waker),
                waker_stack: p
                    .wake
                    .map(|w| ctx.symbols.stack(m.stacks.get(w.stack)))
                    .unwrap_or_default(),
                sched_latency_ns: match (p.wake, p.resumed) {
                    (Some(w), Some(r)) => Some(r.saturating_sub(w.at)),
                    _ => None,
                },
            }
        })
        .collect();
    Some(GoroutineReport {
        goid,
        created_at_ns: g.created.map(|c| ctx.rel(c.at)),
        parent: g.created.map(|c| c.parent),
        created_by: g.created.map(|c| ctx.symbols.location(c.gopc, true)),
        start: ctx.start_function(g),
        preexisting: g.preexisting,
        at_attach: ctx.preexisting(goid).cloned(),
        parks,
        parks_not_listed: g.parks_dropped,
        runs: g.runs,
        sched_latency_total_ns: g.sched_latency_total,
        woke_others: g.woke_others,
        yields: g.yields,
        exited_at_ns: g.exited.map(|t| ctx.rel(t)),
    })
}

/// Renders one goroutine's life as text.
pub fn write_goroutine(w: &mut dyn Write, g: &GoroutineReport) -> io::Result<()> {
    writeln!(w, "goroutine {}", g.goid)?;
    match (g.created_at_ns, &g.created_by) {
        (Some(t), Some(site)) => writeln!(
            w,
            "  created at +{} by goroutine {} at {}\n  start {}",
            dur(t),
            g.parent.unwrap_or(0),
            site,
            g.start.as_deref().unwrap_or("?")
        )?,
        _ => match &g.at_attach {
            Some(p) => writeln!(
                w,
                "  existed before the capture: [{}] at attach{}",
                p.state,
                match (p.created_by.is_empty(), p.parent_goid) {
                    (true, _) => String::new(),
                    // Go 1.20 and older keep no creator goid in `g` (0 = unknown).
                    (false, 0) => format!(", created by {}", p.created_by),
                    (false, parent) =>
                        format!(", created by {} (goroutine {parent})", p.created_by),
                }
            )?,
            None => writeln!(w, "  existed before the capture")?,
        },
    }
    writeln!(
        w,
        "  scheduled {} times, yielded/preempted {} times, total scheduling latency {}, readied {} other goroutines",
        g.runs,
        g.yields,
        dur(g.sched_latency_total_ns),
        g.woke_others
    )?;
    for p in &g.parks {
        let woke = match p.woken_by {
            Some(0) => ", readied by the runtime".to_owned(),
            Some(k) => format!(", readied by goroutine {k}"),
            None => String::new(),
        };
        writeln!(
            w,
            "  +{} parked [{}] for {}{}{} at {}",
            dur(p.at_ns),
            p.reason,
            if p.duration_unknown {
                "? (end hidden by a sampling gap)".to_owned()
            } else {
                opt_dur(p.duration_ns)
            },
            woke,
            p.sched_latency_ns
                .map(|l| format!(", ran {} later", dur(l)))
                .unwrap_or_default(),
            p.site
        )?;
        for f in &p.stack {
            writeln!(w, "        {}", frame_text(f))?;
        }
        if !p.waker_stack.is_empty() {
            writeln!(w, "      readied from:")?;
            for f in &p.waker_stack {
                writeln!(w, "        {}", frame_text(f))?;
            }
        }
    }
    if g.parks_not_listed > 0 {
        writeln!(w, "  … {} more parks not listed", g.parks_not_listed)?;
    }
    match g.exited_at_ns {
        Some(t) => writeln!(w, "  exited at +{}", dur(t)),
        None => writeln!(w, "  alive at the end of the capture"),
    }
}

/// One event as `gtrace trace` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct EventLine {
    /// ns from the start.
    pub t_ns: u64,
    /// Kind name.
    pub kind: &'static str,
    /// Thread.
    pub tid: u32,
    /// Goroutine concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goid: Option<u64>,
    /// Creator / waker goid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_goid: Option<u64>,
    /// Wait reason (park).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Creation site (create) or user frame (park, ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// Start function (create).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Thread switched in (switch) / woken (wakeup).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_tid: Option<u32>,
}

/// The line for `e`.
pub fn event_line(e: &Event, ctx: &Context<'_>) -> EventLine {
    let h = e.header();
    let mut l = EventLine {
        t_ns: ctx.rel(h.ktime_ns),
        kind: e.kind().name(),
        tid: h.tid,
        goid: None,
        other_goid: None,
        reason: None,
        site: None,
        start: None,
        other_tid: None,
    };
    let site = |pcs: &[u64]| {
        let st = ctx.symbols.stack(pcs);
        user_frame(&st).map(frame_text)
    };
    match e {
        Event::Create(c) => {
            l.goid = Some(c.goid);
            l.other_goid = Some(c.parent_goid);
            l.site = Some(ctx.symbols.location(c.gopc, true));
            l.start = Some(ctx.symbols.function(c.startpc, false));
        }
        Event::Park(p) => {
            l.goid = Some(p.goid);
            l.reason = Some(ctx.reason(p.reason));
            l.site = site(&p.stack[..(p.stack_len as usize).min(p.stack.len())]);
        }
        Event::Ready(r) => {
            l.goid = Some(r.goid);
            l.other_goid = Some(r.waker_goid);
            l.site = site(&r.stack[..(r.stack_len as usize).min(r.stack.len())]);
        }
        Event::Execute(x) | Event::Exit(x) | Event::Yield(x) => l.goid = Some(x.goid),
        Event::Switch(s) => l.other_tid = Some(s.next_tid),
        Event::Wakeup(k) => l.other_tid = Some(k.wakee_tid),
        Event::ThreadExit(_) => {}
        Event::Sched(kind, a) => {
            l.goid = Some(a.goid);
            if *kind == tracer_common::event::EventKind::StwStart {
                l.reason = Some(crate::model::latency::stw_reason_name(a.arg).into());
            }
        }
    }
    l
}

/// Renders an event line as text.
pub fn write_event_line(w: &mut dyn Write, l: &EventLine) -> io::Result<()> {
    write!(
        w,
        "{:>14.6} tid {:<7} {:<11}",
        l.t_ns as f64 / 1e9,
        l.tid,
        l.kind
    )?;
    if let Some(g) = l.goid {
        write!(w, " g{g}")?;
    }
    match l.kind {
        "create" | "ready" => write!(w, " by g{}", l.other_goid.unwrap_or(0))?,
        _ => {}
    }
    if let Some(r) = &l.reason {
        write!(w, " [{r}]")?;
    }
    if let Some(s) = &l.start {
        write!(w, " start {s}")?;
    }
    if let Some(s) = &l.site {
        write!(w, " at {s}")?;
    }
    if let Some(t) = l.other_tid {
        write!(w, " → tid {t}")?;
    }
    writeln!(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preexisting(parent_goid: u64) -> GoroutineReport {
        GoroutineReport {
            goid: 39,
            created_at_ns: None,
            parent: None,
            created_by: None,
            start: None,
            preexisting: true,
            at_attach: Some(crate::capture::Preexisting {
                goid: 39,
                state: "IO wait".into(),
                created_by: "net/http.(*Server).Serve (net/http/server.go:3102)".into(),
                parent_goid,
                start_function: "net/http.(*conn).serve".into(),
            }),
            parks: Vec::new(),
            parks_not_listed: 0,
            runs: 0,
            sched_latency_total_ns: 0,
            woke_others: 0,
            yields: 0,
            exited_at_ns: None,
        }
    }

    fn frame(function: &str, line: u32) -> Frame {
        Frame {
            function: function.into(),
            file: "x.go".into(),
            line,
            inlined: false,
        }
    }

    fn site(reason: &str, stack: Vec<Frame>) -> BlockingSite {
        BlockingSite {
            reason: reason.into(),
            site: user_frame(&stack).map_or_else(|| "?".into(), frame_text),
            count: 1,
            total_ns: 1,
            max_ns: 1,
            stack,
        }
    }

    /// Seen on Debian's `node_exporter`: two sites that differ only below their first user
    /// frame printed as two identical rows.
    #[test]
    fn rows_that_read_the_same_show_their_callers() {
        let gopark = frame("runtime.gopark", 1);
        let read = frame("net.(*netFD).Read", 55);
        let mut sites = vec![
            site(
                "IO wait",
                vec![gopark.clone(), read.clone(), frame("main.a", 1)],
            ),
            site(
                "IO wait",
                vec![gopark.clone(), read.clone(), frame("main.b", 2)],
            ),
            site("chan receive", vec![gopark, read, frame("main.c", 3)]),
        ];
        distinct_sites(&mut sites);
        assert_eq!(
            sites[0].site,
            "net.(*netFD).Read (x.go:55) ← main.a (x.go:1)"
        );
        assert_eq!(
            sites[1].site,
            "net.(*netFD).Read (x.go:55) ← main.b (x.go:2)"
        );
        // A different wait reason already tells its row apart.
        assert_eq!(sites[2].site, "net.(*netFD).Read (x.go:55)");
    }

    fn first_lines(g: &GoroutineReport) -> String {
        let mut out = Vec::new();
        write_goroutine(&mut out, g).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .take(2)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Seen on Debian's `node_exporter` (Go 1.19): no `parentGoid` in `g` before Go 1.21, so the
    /// creator goid is unknown and must not be shown as "goroutine 0".
    #[test]
    fn an_unknown_creator_goid_is_not_printed() {
        let old = first_lines(&preexisting(0));
        assert!(
            old.ends_with("created by net/http.(*Server).Serve (net/http/server.go:3102)"),
            "{old}"
        );
        assert!(!old.contains("goroutine 0"), "{old}");
        let new = first_lines(&preexisting(7));
        assert!(
            new.ends_with("(net/http/server.go:3102) (goroutine 7)"),
            "{new}"
        );
    }
}
