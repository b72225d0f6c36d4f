//! Chrome trace-event JSON (opens in Perfetto UI and `chrome://tracing`): one track per
//! goroutine (tid = goid) with `running`, `runnable` and `parked [reason]` slices, the waker
//! and creation site as slice arguments.

use std::{
    collections::{HashMap, HashSet},
    io::{self, Write},
};

use serde_json::{Value, json};
use tracer_common::event::Event;

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
}

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
            Event::Switch(_) | Event::Wakeup(_) | Event::ThreadExit(_) | Event::Sched(..) => {}
        }
    }

    /// Closes open slices at the last event time and writes the JSON document.
    pub fn finish(mut self, w: &mut dyn Write, ctx: &Context<'_>) -> io::Result<()> {
        let open: Vec<u64> = self.open.keys().copied().collect();
        for g in open {
            self.close(g, self.last, ctx);
        }
        let doc = json!({ "traceEvents": self.out, "displayTimeUnit": "ns" });
        serde_json::to_writer(&mut *w, &doc)?;
        writeln!(w)
    }
}
