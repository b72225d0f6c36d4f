//! Chrome trace-event JSON (opens in Perfetto UI and `chrome://tracing`): one track per
//! goroutine (tid = goid) with `running`, `runnable` and `parked [reason]` slices, the waker
//! and creation site as slice arguments; with the latency probes also `syscall`, `assist`,
//! `off-CPU (preempted|blocked)` (its thread switched out by the kernel while running) and
//! `parked [preempted]` (suspended for a GC stack scan) slices, and a `stop-the-world` track
//! (tid 0, no goroutine has id 0) with one slice per pause and GC cycle marks. When the
//! overhead governor sampled, each gap (hot probes off) is a slice on its own track, and every
//! goroutine slice open at a gap's start ends there and gives way to an `unobserved` slice
//! until the goroutine's next event: nothing is drawn as known across a gap.

use std::{
    collections::{HashMap, HashSet},
    io::{self, Write},
};

use serde_json::{Value, json};
use tracer_common::event::{Event, EventKind};

use super::lifecycle::Context;

struct Open {
    name: String,
    since: u64,
    args: Value,
}

/// Builds the trace from events in order.
pub struct Builder {
    pid: u32,
    open: HashMap<u64, Open>,
    named: HashSet<u64>,
    out: Vec<Value>,
    last: u64,
    /// The goroutine each thread runs (from `execute` / syscall exits).
    threads: HashMap<u32, u64>,
    /// The open stop-the-world pause: start and reason.
    stw: Option<(u64, String)>,
    /// Gaps not yet reached by the events, latest first (popped in time order); an end of
    /// `u64::MAX` means open at the end of the capture.
    gaps: Vec<(u64, u64)>,
    /// The slice (index in `out`) and start of a gap open at the end of the capture.
    open_gap: Option<(usize, u64)>,
}

/// The track of stop-the-world pauses.
const STW_TRACK: u64 = 0;
/// The track of the governor's gaps (above any goroutine id a process reaches).
const GAP_TRACK: u64 = 1 << 48;

fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

impl Builder {
    /// A trace for process `pid`.
    pub fn new(pid: u32) -> Self {
        Self {
            pid,
            open: HashMap::new(),
            named: HashSet::new(),
            out: Vec::new(),
            last: 0,
            threads: HashMap::new(),
            stw: None,
            gaps: Vec::new(),
            open_gap: None,
        }
    }

    /// Declares the intervals during which the hot probes were sampled out (`start`, `end`
    /// kernel times; call before the first [`Builder::push`]).
    pub fn unobserved(&mut self, gaps: impl IntoIterator<Item = (u64, u64)>) {
        self.gaps.extend(gaps);
        self.gaps.sort_unstable_by(|a, b| b.cmp(a));
    }

    /// Draws the gaps that start at or before `t`: a slice on the gap track, and every open
    /// goroutine slice cut at the gap's start and followed by `unobserved`.
    fn reach(&mut self, t: u64, ctx: &Context<'_>) {
        while let Some(&(start, end)) = self.gaps.last() {
            if start > t {
                break;
            }
            self.gaps.pop();
            self.gap_slice(start, end, ctx);
            let open: Vec<u64> = self.open.keys().copied().collect();
            for g in open {
                self.start(g, start, "unobserved".into(), json!({}), ctx);
            }
        }
    }

    /// The slice of one gap on the gap track (one still open is sized in `finish`).
    fn gap_slice(&mut self, start: u64, end: u64, ctx: &Context<'_>) {
        self.track(GAP_TRACK, "sampled out (overhead governor)");
        if end == u64::MAX {
            self.open_gap = Some((self.out.len(), start));
        }
        self.out.push(json!({
            "name": "hot probes off", "ph": "X", "pid": self.pid, "tid": GAP_TRACK,
            "ts": us(start.saturating_sub(ctx.start_ktime)),
            "dur": us(end.saturating_sub(start)),
        }));
    }

    fn open_name(&self, goid: u64) -> Option<&str> {
        self.open.get(&goid).map(|o| o.name.as_str())
    }

    /// A thread switched out or in by the kernel: the goroutine it runs leaves or resumes
    /// running (or assisting).
    fn switch(&mut self, prev: u32, next: u32, prev_state: u64, t: u64, ctx: &Context<'_>) {
        if let Some(&g) = self.threads.get(&prev)
            && let Some(name) = self.open_name(g)
            && (name == "running" || name == "assist")
        {
            let resume = name.to_owned();
            let kind = if prev_state.trailing_zeros() >= 8 {
                "preempted"
            } else {
                "blocked"
            };
            let args = json!({ "resume": resume, "tid": prev });
            self.start(g, t, format!("off-CPU ({kind})"), args, ctx);
        }
        if let Some(&g) = self.threads.get(&next)
            && self.open_name(g).is_some_and(|n| n.starts_with("off-CPU"))
        {
            let resume = self.open[&g].args["resume"]
                .as_str()
                .unwrap_or("running")
                .to_owned();
            self.start(g, t, resume, json!({ "tid": next }), ctx);
        }
    }

    fn sched(&mut self, k: EventKind, goid: u64, arg: u32, tid: u32, t: u64, ctx: &Context<'_>) {
        let name = match k {
            EventKind::Syscall => "syscall",
            EventKind::SyscallExit => {
                self.threads.insert(tid, goid);
                "running"
            }
            EventKind::SyscallNoP | EventKind::Injected => "runnable",
            EventKind::Suspended => "parked [preempted]",
            EventKind::AssistStart => "assist",
            EventKind::AssistDone if self.open_name(goid) == Some("assist") => "running",
            EventKind::StwStart => {
                if self.stw.is_none() {
                    let reason = crate::model::latency::stw_reason_name(arg).to_owned();
                    self.stw = Some((t, reason));
                }
                return;
            }
            EventKind::StwDone => {
                if let Some((start, reason)) = self.stw.take() {
                    self.track(STW_TRACK, "stop-the-world");
                    self.out.push(json!({
                        "name": format!("STW ({reason})"), "ph": "X", "pid": self.pid,
                        "tid": STW_TRACK, "ts": us(start.saturating_sub(ctx.start_ktime)),
                        "dur": us(t.saturating_sub(start)), "args": {"goid": goid},
                    }));
                }
                return;
            }
            EventKind::GcStart | EventKind::GcMarkTerm => {
                self.track(STW_TRACK, "stop-the-world");
                self.out.push(json!({
                    "name": k.name(), "ph": "i", "s": "t", "pid": self.pid, "tid": STW_TRACK,
                    "ts": us(t.saturating_sub(ctx.start_ktime)),
                }));
                return;
            }
            _ => return,
        };
        self.start(goid, t, name.into(), json!({}), ctx);
    }

    fn track(&mut self, tid: u64, name: &str) {
        if self.named.insert(tid) {
            self.out.push(json!({
                "name": "thread_name", "ph": "M", "pid": self.pid, "tid": tid,
                "args": {"name": name},
            }));
        }
    }

    fn close(&mut self, goid: u64, t: u64, ctx: &Context<'_>) {
        if let Some(o) = self.open.remove(&goid) {
            self.out.push(json!({
                "name": o.name, "ph": "X", "pid": self.pid, "tid": goid,
                "ts": us(o.since.saturating_sub(ctx.start_ktime)),
                "dur": us(t.saturating_sub(o.since)), "args": o.args,
            }));
        }
    }

    fn start(&mut self, goid: u64, t: u64, name: String, args: Value, ctx: &Context<'_>) {
        self.close(goid, t, ctx);
        if self.named.insert(goid) {
            self.out.push(json!({
                "name": "thread_name", "ph": "M", "pid": self.pid, "tid": goid,
                "args": {"name": format!("goroutine {goid}")},
            }));
        }
        self.open.insert(
            goid,
            Open {
                name,
                since: t,
                args,
            },
        );
    }

    /// Adds one event.
    pub fn push(&mut self, e: &Event, ctx: &Context<'_>) {
        let t = e.header().ktime_ns;
        self.last = self.last.max(t);
        self.reach(t, ctx);
        match e {
            Event::Create(c) => {
                let start = ctx.symbols.function(c.startpc, false);
                self.out.push(json!({
                    "name": "thread_name", "ph": "M", "pid": self.pid, "tid": c.goid,
                    "args": {"name": format!("goroutine {} {start}", c.goid)},
                }));
                self.named.insert(c.goid);
                let args = json!({
                    "parent": c.parent_goid,
                    "created_by": ctx.symbols.location(c.gopc, true),
                });
                self.start(c.goid, t, "runnable".into(), args, ctx);
            }
            Event::Park(p) => {
                let stack = ctx
                    .symbols
                    .stack(&p.stack[..(p.stack_len as usize).min(p.stack.len())]);
                let site = super::lifecycle::user_frame(&stack)
                    .map(|f| format!("{} ({}:{})", f.function, f.file, f.line));
                let name = format!("parked [{}]", ctx.reason(p.reason));
                self.start(p.goid, t, name, json!({ "site": site }), ctx);
            }
            Event::Ready(r) => {
                if let Some(o) = self.open.get_mut(&r.goid) {
                    o.args["woken_by"] = json!(r.waker_goid);
                }
                let args = json!({ "woken_by": r.waker_goid });
                self.start(r.goid, t, "runnable".into(), args, ctx);
            }
            Event::Execute(x) => {
                self.threads.insert(x.header.tid, x.goid);
                let args = json!({ "tid": x.header.tid });
                self.start(x.goid, t, "running".into(), args, ctx);
            }
            Event::Yield(x) => {
                self.start(
                    x.goid,
                    t,
                    "runnable".into(),
                    json!({ "yielded": true }),
                    ctx,
                );
            }
            Event::Exit(x) => self.close(x.goid, t, ctx),
            Event::Switch(w) => self.switch(w.prev_tid, w.next_tid, w.prev_state, t, ctx),
            Event::Sched(k, a) => self.sched(*k, a.goid, a.arg, a.header.tid, t, ctx),
            Event::Wakeup(_) | Event::ThreadExit(_) => {}
        }
    }

    /// Closes open slices at the last event time and writes the JSON document.
    pub fn finish(mut self, w: &mut dyn Write, ctx: &Context<'_>) -> io::Result<()> {
        self.reach(self.last, ctx);
        // Gaps that began after the last event (the capture ended while the hot probes
        // were off): drawn too, though no goroutine slice reaches them.
        while let Some((start, end)) = self.gaps.pop() {
            self.gap_slice(start, end, ctx);
        }
        if let Some((i, start)) = self.open_gap {
            self.out[i]["dur"] = json!(us(self.last.saturating_sub(start)));
        }
        let open: Vec<u64> = self.open.keys().copied().collect();
        for g in open {
            self.close(g, self.last, ctx);
        }
        let doc = json!({ "traceEvents": self.out, "displayTimeUnit": "ns" });
        serde_json::to_writer(&mut *w, &doc)?;
        writeln!(w)
    }
}

#[cfg(test)]
mod tests {
    use tracer_common::event::{Event, EventKind, GoCreate, GoId, Header};

    use super::{Builder, GAP_TRACK};
    use crate::{capture::SymbolTable, output::lifecycle::Context};

    fn h(kind: EventKind, t: u64) -> Header {
        Header {
            kind: kind as u32,
            tid: 7,
            ktime_ns: t,
        }
    }

    fn slices(doc: &serde_json::Value, tid: u64) -> Vec<(String, f64, f64)> {
        doc["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["ph"] == "X" && e["tid"] == tid)
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_owned(),
                    e["ts"].as_f64().unwrap(),
                    e["dur"].as_f64().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn gaps_cut_open_slices_and_get_their_own_track() {
        let symbols = SymbolTable::default();
        let ctx = Context {
            symbols: &symbols,
            wait_reasons: &[],
            start_ktime: 0,
            baseline: &[],
        };
        let mut b = Builder::new(42);
        b.unobserved([(5_000, 8_000), (9_500, u64::MAX)]);
        b.push(
            &Event::Create(GoCreate {
                header: h(EventKind::Create, 1_000),
                goid: 3,
                parent_goid: 1,
                gopc: 0,
                startpc: 0,
            }),
            &ctx,
        );
        let id = |kind, t| GoId {
            header: h(kind, t),
            goid: 3,
        };
        b.push(&Event::Execute(id(EventKind::Execute, 2_000)), &ctx);
        // Next seen after the gap.
        b.push(&Event::Execute(id(EventKind::Execute, 9_000)), &ctx);
        b.push(&Event::Exit(id(EventKind::Exit, 10_000)), &ctx);
        let mut out = Vec::new();
        b.finish(&mut out, &ctx).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            slices(&doc, 3),
            [
                ("runnable".to_owned(), 1.0, 1.0),
                ("running".to_owned(), 2.0, 3.0),
                ("unobserved".to_owned(), 5.0, 4.0),
                ("running".to_owned(), 9.0, 0.5),
                ("unobserved".to_owned(), 9.5, 0.5),
            ]
        );
        assert_eq!(
            slices(&doc, GAP_TRACK),
            [
                ("hot probes off".to_owned(), 5.0, 3.0),
                ("hot probes off".to_owned(), 9.5, 0.5),
            ]
        );
        // A gap that began after the last event (the capture ended in it) is drawn too.
        let mut b = Builder::new(42);
        b.unobserved([(3_000, 4_000)]);
        b.push(&Event::Execute(id(EventKind::Execute, 2_000)), &ctx);
        let mut out = Vec::new();
        b.finish(&mut out, &ctx).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            slices(&doc, GAP_TRACK),
            [("hot probes off".to_owned(), 3.0, 1.0)]
        );
    }
}
