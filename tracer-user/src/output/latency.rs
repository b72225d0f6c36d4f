//! `gtrace latency` reports (live and from a capture): per goroutine and per group (start
//! function + creation site) the time in each state of the window, stop-the-world pauses, GC
//! cycles and the top goroutines by each kind of wait. One serializable [`Report`] renders to
//! text or to the JSON documented in `docs/json/latency.schema.json`.

use std::{
    collections::BTreeMap,
    io::{self, Write},
};

use serde::Serialize;

use super::lifecycle::{Context, Losses, dur};
use crate::model::{
    Goroutine, Model,
    latency::{REASON_PREEMPTED, REASON_UNKNOWN, Times, stw_reason_name},
};

/// Goroutines listed per top list.
pub const TOP: usize = 5;

/// Where a goroutine was created.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct CreatedBy {
    /// Function containing the `go` statement.
    pub function: String,
    /// Its file.
    pub file: String,
    /// Its line.
    pub line: u32,
}

/// Seconds in each state.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Seconds {
    /// Running on-CPU.
    pub running_s: f64,
    /// Runnable: waiting for the Go scheduler (sched wait).
    pub runnable_s: f64,
    /// Running for Go but off-CPU in the OS (`os_preempted_s + os_blocked_s`).
    pub os_offcpu_s: f64,
    /// Off-CPU: the kernel preempted its thread.
    pub os_preempted_s: f64,
    /// Off-CPU: its thread blocked in the kernel.
    pub os_blocked_s: f64,
    /// In system calls.
    pub syscall_s: f64,
    /// Parked, by wait reason as the runtime spells it.
    pub parked_s: BTreeMap<String, f64>,
    /// Stopped by stop-the-world pauses.
    pub stw_s: f64,
    /// GC mark assist.
    pub assist_s: f64,
    /// Sum of all the above states: the time observed.
    pub observed_s: f64,
    /// Inside sampling gaps of the overhead governor (not attributed to a state); with
    /// `observed_s`, the part of the window the goroutine existed in.
    pub unobserved_s: f64,
}

/// One goroutine's breakdown.
#[derive(Debug, Clone, Serialize)]
pub struct GoroutineTimes {
    /// Its id.
    pub goid: u64,
    /// Its start function.
    pub function: String,
    /// Its creation site (`null` for the main goroutine or when unknown).
    pub created_by: Option<CreatedBy>,
    /// Existed before the window.
    pub preexisting: bool,
    /// Exited during the window.
    pub exited: bool,
    /// The breakdown.
    #[serde(flatten)]
    pub times: Seconds,
}

/// Goroutines with the same start function and creation site.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// Start function.
    pub function: String,
    /// Creation site.
    pub created_by: Option<CreatedBy>,
    /// Goroutines in the group.
    pub goroutines: u64,
    /// Their summed breakdown.
    #[serde(flatten)]
    pub times: Seconds,
}

/// One stop-the-world pause.
#[derive(Debug, Clone, Serialize)]
pub struct Stw {
    /// The reason as Go's tracer names it.
    pub reason: String,
    /// True when the reason was inferred from the GC probes (Go < 1.21 passes none).
    pub inferred: bool,
    /// Start, ns since the window start.
    pub start_ns: u64,
    /// Duration, ns (until the window end if the world was still stopped).
    pub duration_ns: u64,
    /// The goroutine that stopped the world (0: none).
    pub goid: u64,
}

/// One GC cycle.
#[derive(Debug, Clone, Serialize)]
pub struct GcCycle {
    /// Start of its sweep-termination pause, ns since the window start (`null`: before the
    /// window).
    pub start_ns: Option<u64>,
    /// Start of its mark-termination pause.
    pub mark_termination_ns: Option<u64>,
    /// End of its mark-termination pause (`null`: after the window).
    pub end_ns: Option<u64>,
}

/// One entry of a top list.
#[derive(Debug, Clone, Serialize)]
pub struct Top {
    /// Goroutine.
    pub goid: u64,
    /// Its start function.
    pub function: String,
    /// Seconds of that wait.
    pub seconds: f64,
}

/// Sampling by the overhead governor.
#[derive(Debug, Clone, Serialize)]
pub struct Sampling {
    /// True when the hot probes were sampled (not every transition seen).
    pub sampled: bool,
    /// Fraction of the window during which the hot probes were live (1.0 without sampling).
    pub fraction: f64,
    /// What sampling does to the numbers.
    pub note: String,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            sampled: false,
            fraction: 1.0,
            note: String::new(),
        }
    }
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Length of the window, seconds.
    pub window_seconds: f64,
    /// Target process.
    pub pid: u32,
    /// Its Go version.
    pub go_version: String,
    /// Sampling by the overhead governor.
    pub sampling: Sampling,
    /// What this Go version cannot give (`function: effect`).
    pub degraded: Vec<String>,
    /// Per goroutine (filtered by `--goid` / `--func`), longest-waiting first.
    pub goroutines: Vec<GoroutineTimes>,
    /// Per start function and creation site.
    pub groups: Vec<Group>,
    /// Stop-the-world pauses, oldest first.
    pub stw: Vec<Stw>,
    /// GC cycles seen (complete or cut by the window), oldest first.
    pub gc_cycles: Vec<GcCycle>,
    /// Top goroutines per kind of wait: `runnable`, `os_offcpu`, `syscall`, `parked`, `stw`,
    /// `assist`.
    pub top: BTreeMap<&'static str, Vec<Top>>,
    /// Losses.
    pub losses: Losses,
}

/// Which goroutines to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this goroutine.
    pub goid: Option<u64>,
    /// Only goroutines whose start function matches.
    pub func: Option<regex::Regex>,
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// The wait-reason name for the time model's reason values.
fn reason_name(ctx: &Context<'_>, r: u32) -> String {
    match r {
        REASON_UNKNOWN => "unknown".into(),
        REASON_PREEMPTED => "preempted".into(),
        r => ctx.reason(r),
    }
}

fn seconds(t: &Times, ctx: &Context<'_>) -> Seconds {
    let mut parked = BTreeMap::new();
    for (r, ns) in &t.parked {
        *parked.entry(reason_name(ctx, *r)).or_insert(0.0) += secs(*ns);
    }
    Seconds {
        running_s: secs(t.running),
        runnable_s: secs(t.runnable),
        os_offcpu_s: secs(t.os_offcpu()),
        os_preempted_s: secs(t.os_preempted),
        os_blocked_s: secs(t.os_blocked),
        syscall_s: secs(t.syscall),
        parked_s: parked,
        stw_s: secs(t.stw),
        assist_s: secs(t.assist),
        observed_s: secs(t.observed()),
        unobserved_s: secs(t.unobserved),
    }
}

/// Parses `function (file:line)`.
fn parse_location(s: &str) -> Option<CreatedBy> {
    let (function, rest) = s.rsplit_once(" (")?;
    let (file, line) = rest.strip_suffix(')')?.rsplit_once(':')?;
    Some(CreatedBy {
        function: function.into(),
        file: file.into(),
        line: line.parse().ok()?,
    })
}

/// Start function and creation site of `g`.
pub fn identity(g: &Goroutine, ctx: &Context<'_>) -> (String, Option<CreatedBy>) {
    if let Some(c) = g.created {
        let created = ctx.symbols.frames(c.gopc, true).last().map(|f| CreatedBy {
            function: f.function.clone(),
            file: f.file.clone(),
            line: f.line,
        });
        return (ctx.symbols.function(c.startpc, false), created);
    }
    match ctx.preexisting(g.goid) {
        Some(p) => {
            let function = if p.start_function.is_empty() {
                "?".into()
            } else {
                p.start_function.clone()
            };
            (function, parse_location(&p.created_by))
        }
        None => ("?".into(), None),
    }
}

/// What the report says about the capture itself.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    /// Target process.
    pub pid: u32,
    /// `go1.N.M`.
    pub go_version: String,
    /// Sampling by the overhead governor.
    pub sampling: Sampling,
    /// What this Go version cannot give (`function: effect`).
    pub degraded: Vec<String>,
    /// Losses.
    pub losses: Losses,
}

/// A bucket's time in a breakdown.
type Pick = fn(&Times) -> u64;

/// Builds the report from a finished model (see [`Model::finish`]).
pub fn report(m: &Model, ctx: &Context<'_>, filter: &Filter, meta: Meta) -> Report {
    let (start, end) = m.window().unwrap_or((0, 0));
    let mut goroutines = Vec::new();
    let mut groups: BTreeMap<(String, Option<CreatedBy>), (u64, Times)> = BTreeMap::new();
    let mut by_goid: Vec<(&Goroutine, String)> = Vec::new();
    for g in m.goroutines.values() {
        if g.clock.times.total() == 0 {
            continue;
        }
        let (function, created_by) = identity(g, ctx);
        if filter.goid.is_some_and(|id| id != g.goid)
            || filter
                .func
                .as_ref()
                .is_some_and(|re| !re.is_match(&function))
        {
            continue;
        }
        let e = groups
            .entry((function.clone(), created_by.clone()))
            .or_default();
        e.0 += 1;
        e.1.merge(&g.clock.times);
        by_goid.push((g, function.clone()));
        goroutines.push(GoroutineTimes {
            goid: g.goid,
            function,
            created_by,
            preexisting: g.preexisting,
            exited: g.exited.is_some(),
            times: seconds(&g.clock.times, ctx),
        });
    }
    let waited = |t: &Times| t.total() - t.running - t.assist;
    goroutines.sort_by(|a, b| {
        let ta = &m.goroutines[&a.goid].clock.times;
        let tb = &m.goroutines[&b.goid].clock.times;
        (tb.running + tb.runnable)
            .cmp(&(ta.running + ta.runnable))
            .then(waited(tb).cmp(&waited(ta)))
            .then(a.goid.cmp(&b.goid))
    });
    let mut groups: Vec<Group> = groups
        .into_iter()
        .map(|((function, created_by), (n, t))| Group {
            function,
            created_by,
            goroutines: n,
            times: seconds(&t, ctx),
        })
        .collect();
    groups.sort_by(|a, b| {
        (b.times.running_s + b.times.runnable_s)
            .total_cmp(&(a.times.running_s + a.times.runnable_s))
            .then(b.goroutines.cmp(&a.goroutines))
    });
    let kinds: [(&'static str, Pick); 6] = [
        ("runnable", |t| t.runnable),
        ("os_offcpu", Times::os_offcpu),
        ("syscall", |t| t.syscall),
        ("parked", Times::parked_total),
        ("stw", |t| t.stw),
        ("assist", |t| t.assist),
    ];
    let mut top = BTreeMap::new();
    for (name, f) in kinds {
        let mut v: Vec<Top> = by_goid
            .iter()
            .filter(|(g, _)| f(&g.clock.times) > 0)
            .map(|(g, function)| Top {
                goid: g.goid,
                function: function.clone(),
                seconds: secs(f(&g.clock.times)),
            })
            .collect();
        v.sort_by(|a, b| b.seconds.total_cmp(&a.seconds).then(a.goid.cmp(&b.goid)));
        v.truncate(TOP);
        top.insert(name, v);
    }
    let rel = |t: u64| t.saturating_sub(start);
    let stw = m
        .time
        .stw
        .iter()
        .map(|w| Stw {
            reason: stw_reason_name(w.reason).into(),
            inferred: w.inferred,
            start_ns: rel(w.start),
            duration_ns: w.end.unwrap_or(end).saturating_sub(w.start),
            goid: w.goid,
        })
        .collect();
    let gc_cycles = m
        .time
        .gc
        .iter()
        .map(|c| GcCycle {
            start_ns: c.start.map(rel),
            mark_termination_ns: c.mark_termination.map(rel),
            end_ns: c.end.map(rel),
        })
        .collect();
    Report {
        window_seconds: secs(end.saturating_sub(start)),
        pid: meta.pid,
        go_version: meta.go_version,
        sampling: meta.sampling,
        degraded: meta.degraded,
        goroutines,
        groups,
        stw,
        gc_cycles,
        top,
        losses: meta.losses,
    }
}

fn d(s: f64) -> String {
    if s <= 0.0 {
        "-".into()
    } else {
        dur((s * 1e9).round() as u64)
    }
}

fn parked_text(p: &BTreeMap<String, f64>) -> String {
    let mut v: Vec<_> = p.iter().filter(|(_, s)| **s > 0.0).collect();
    v.sort_by(|a, b| b.1.total_cmp(a.1));
    v.iter()
        .take(2)
        .map(|(r, s)| format!("{r} {}", d(**s)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn created_text(c: Option<&CreatedBy>) -> String {
    c.map_or_else(String::new, |c| {
        format!(" ← {} ({}:{})", c.function, c.file, c.line)
    })
}

const HEADER: &str = "running  runnable  os-offcpu   syscall       stw    assist  parked";

fn write_row(w: &mut dyn Write, lead: &str, t: &Seconds, tail: &str) -> io::Result<()> {
    let parked = t.parked_s.values().sum::<f64>();
    let reasons = parked_text(&t.parked_s);
    writeln!(
        w,
        "{lead} {:>8} {:>9} {:>10} {:>9} {:>9} {:>9}  {:<9} {}{}",
        d(t.running_s),
        d(t.runnable_s),
        d(t.os_offcpu_s),
        d(t.syscall_s),
        d(t.stw_s),
        d(t.assist_s),
        d(parked),
        if reasons.is_empty() {
            String::new()
        } else {
            format!("[{reasons}] ")
        },
        tail
    )
}

/// One goroutine's breakdown as text (for `gtrace report --goid`).
pub fn write_goroutine(w: &mut dyn Write, g: &GoroutineTimes) -> io::Result<()> {
    writeln!(w, "\nWHERE THE TIME WENT")?;
    writeln!(w, "{:>6} {HEADER}", "goid")?;
    write_row(w, &format!("{:>6}", g.goid), &g.times, &g.function)
}

/// Rows of the per-goroutine table in text output.
pub const TEXT_GOROUTINES: usize = 30;

/// Renders the report as text.
pub fn write_text(w: &mut dyn Write, r: &Report) -> io::Result<()> {
    writeln!(
        w,
        "gtrace latency: pid {} ({}), window {:.2}s, {} goroutines",
        r.pid,
        r.go_version,
        r.window_seconds,
        r.goroutines.len()
    )?;
    if r.sampling.sampled {
        writeln!(
            w,
            "SAMPLED: hot probes live {:.0}% of the window; {}",
            r.sampling.fraction * 100.0,
            r.sampling.note
        )?;
    }
    for dg in &r.degraded {
        writeln!(w, "degraded: {dg}")?;
    }
    writeln!(w, "\nBY START FUNCTION AND CREATION SITE")?;
    writeln!(w, "{:>6} {HEADER}", "count")?;
    for g in &r.groups {
        write_row(
            w,
            &format!("{:>6}", g.goroutines),
            &g.times,
            &format!("{}{}", g.function, created_text(g.created_by.as_ref())),
        )?;
    }
    writeln!(w, "\nGOROUTINES (busiest first)")?;
    writeln!(w, "{:>6} {HEADER}", "goid")?;
    for g in r.goroutines.iter().take(TEXT_GOROUTINES) {
        write_row(w, &format!("{:>6}", g.goid), &g.times, &g.function)?;
    }
    if r.goroutines.len() > TEXT_GOROUTINES {
        writeln!(
            w,
            "   … {} more (--json lists all, --goid / --func select)",
            r.goroutines.len() - TEXT_GOROUTINES
        )?;
    }
    writeln!(w, "\nTOP WAITS")?;
    for (kind, label) in [
        ("runnable", "waiting for the Go scheduler"),
        ("os_offcpu", "off-CPU in the OS while running"),
        ("syscall", "in system calls"),
        ("parked", "parked"),
        ("stw", "stopped by stop-the-world"),
        ("assist", "assisting the GC"),
    ] {
        let Some(v) = r.top.get(kind).filter(|v| !v.is_empty()) else {
            continue;
        };
        let list: Vec<String> = v
            .iter()
            .map(|t| format!("g{} {} {}", t.goid, t.function, d(t.seconds)))
            .collect();
        writeln!(w, "  {label}: {}", list.join("; "))?;
    }
    let total: u64 = r.stw.iter().map(|s| s.duration_ns).sum();
    let max = r.stw.iter().map(|s| s.duration_ns).max().unwrap_or(0);
    writeln!(
        w,
        "\nSTOP-THE-WORLD: {} pauses, total {}, longest {}",
        r.stw.len(),
        dur(total),
        dur(max)
    )?;
    for s in r.stw.iter().take(TEXT_GOROUTINES) {
        writeln!(
            w,
            "  +{:>10.6}s  {:>8}  {}{}",
            s.start_ns as f64 / 1e9,
            dur(s.duration_ns),
            s.reason,
            if s.inferred { " (inferred)" } else { "" }
        )?;
    }
    let complete = r
        .gc_cycles
        .iter()
        .filter(|c| c.start_ns.is_some() && c.end_ns.is_some())
        .count();
    writeln!(
        w,
        "GC CYCLES: {} seen ({complete} entirely inside the window)",
        r.gc_cycles.len()
    )?;
    super::lifecycle::write_losses(w, &r.losses)
}
