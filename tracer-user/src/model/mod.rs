//! The goroutine lifecycle state machine: decoded kernel events in, one history per goroutine
//! out. Pure and deterministic (no clocks, no I/O), so the live path (`gtrace trace`,
//! `record`) and the offline one (`report` on a capture) run exactly the same code, and it is
//! unit-tested without root.
//!
//! Transitions (Go runtime names): `newproc1` → *created* (runnable); `gopark` → *waiting*
//! (a park opens, with reason and stack); `ready` → *runnable* (the park is readied, by whom);
//! `execute` → *running* (scheduling latency = execute − runnable-since; a park never readied
//! — netpoll's `injectglist`, or `unlockf` refusing — ends here); `goschedImpl` → *runnable*
//! (yield, preemption); `goexit0` → *dead*.
//! Identity is the goid (one model per process): `g` structs are recycled, goids are not.
//!
//! The same `apply` also runs the time model of `gtrace latency` ([`latency`]): each
//! goroutine's [`latency::Clock`] charges every nanosecond of the window to one state.
//!
//! Sampled captures: when the overhead governor switched the hot probes off for a while, the
//! caller declares each such gap ([`Model::unobserved`]). No duration is computed across a
//! gap: a park whose end (or a runnable spell whose execute) is seen only after a gap is
//! marked cut (duration unknown) instead of being reported as long, and counted in
//! [`Unobserved`].

use std::collections::{BTreeMap, HashMap};

pub mod latency;

use tracer_common::event::{Event, EventKind};

/// Parks kept per goroutine; further ones are still aggregated but not listed.
pub const MAX_PARKS_PER_GOROUTINE: usize = 256;
/// Goroutines kept; further creations are counted in [`Anomalies::goroutines_over_limit`].
pub const MAX_GOROUTINES: usize = 1 << 20;
/// Gaps kept; beyond it, a new gap is merged into the last one (conservative: more
/// intervals are marked cut, none is measured across a gap).
pub const MAX_GAPS: usize = 1 << 20;

/// Interned stacks: equal stacks share one id, so millions of parks stay small.
#[derive(Debug, Clone, Default)]
pub struct Stacks {
    ids: HashMap<Vec<u64>, u32>,
    list: Vec<Vec<u64>>,
}

impl Stacks {
    /// The id of `pcs`, interning it on first sight.
    pub fn intern(&mut self, pcs: &[u64]) -> u32 {
        if let Some(id) = self.ids.get(pcs) {
            return *id;
        }
        let id = self.list.len() as u32;
        self.list.push(pcs.to_vec());
        self.ids.insert(pcs.to_vec(), id);
        id
    }

    /// The PCs of stack `id` (innermost first); empty for an unknown id.
    pub fn get(&self, id: u32) -> &[u64] {
        self.list.get(id as usize).map_or(&[], Vec::as_slice)
    }

    /// Every stack, by id.
    pub fn all(&self) -> &[Vec<u64>] {
        &self.list
    }
}

/// How a goroutine came to be known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Creation {
    /// Kernel time of the creation.
    pub at: u64,
    /// Creating goroutine (0 if unknown).
    pub parent: u64,
    /// PC of the `go` statement (runtime address).
    pub gopc: u64,
    /// Entry of the goroutine's function (runtime address).
    pub startpc: u64,
}

/// Who made a parked goroutine runnable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wake {
    /// Kernel time of `ready`.
    pub at: u64,
    /// The waker's goid; 0 = the scheduler itself (timers, netpoll).
    pub waker: u64,
    /// Stack at `ready` (an id in [`Model::stacks`]).
    pub stack: u32,
}

/// One park of a goroutine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Park {
    /// Kernel time of `gopark`.
    pub at: u64,
    /// The `waitReason` value.
    pub reason: u32,
    /// The parking stack (an id in [`Model::stacks`]).
    pub stack: u32,
    /// Who readied it, if a `ready` was seen.
    pub wake: Option<Wake>,
    /// When it ran again.
    pub resumed: Option<u64>,
    /// Its end fell after a gap of the hot probes: how long it lasted is unknown (and `wake`
    /// is not recorded: the ready seen may belong to a later, unobserved park).
    pub cut: bool,
}

impl Park {
    /// Time parked: until readied, else until it ran again; `None` while still parked or
    /// when [`Park::cut`].
    pub fn duration(&self) -> Option<u64> {
        if self.cut {
            return None;
        }
        self.wake
            .map(|w| w.at)
            .or(self.resumed)
            .map(|end| end.saturating_sub(self.at))
    }
}

/// A goroutine's current state as far as the events tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Existed before the capture and no event about it has been seen since.
    Unknown,
    /// On a run queue since the given time.
    Runnable(u64),
    /// Running on thread `tid` since the given time.
    Running {
        /// Since when.
        since: u64,
        /// Which thread.
        tid: u32,
    },
    /// Parked since the given time.
    Waiting(u64),
    /// Exited at the given time.
    Dead(u64),
}

/// Everything known about one goroutine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Goroutine {
    /// Its id.
    pub goid: u64,
    /// Creation, if it happened during the capture.
    pub created: Option<Creation>,
    /// Present before the capture started (baseline or first seen without a creation).
    pub preexisting: bool,
    /// Parks, oldest first (at most [`MAX_PARKS_PER_GOROUTINE`]).
    pub parks: Vec<Park>,
    /// Parks beyond the limit (aggregated, not listed).
    pub parks_dropped: u64,
    /// Exit time.
    pub exited: Option<u64>,
    /// Current state.
    pub state: State,
    /// Times it was scheduled (execute events).
    pub runs: u64,
    /// Sum of its scheduling latencies (runnable → running), ns.
    pub sched_latency_total: u64,
    /// Times it readied another goroutine.
    pub woke_others: u64,
    /// Times it yielded or was preempted while running.
    pub yields: u64,
    /// Where its time went (the latency time model).
    pub clock: latency::Clock,
    /// No event about it seen yet (its state before the first one is inferred).
    pub unseen: bool,
}

impl Goroutine {
    fn new(goid: u64, preexisting: bool) -> Self {
        Self {
            goid,
            created: None,
            preexisting,
            parks: Vec::new(),
            parks_dropped: 0,
            exited: None,
            state: State::Unknown,
            runs: 0,
            sched_latency_total: 0,
            woke_others: 0,
            yields: 0,
            clock: latency::Clock::new(latency::TState::Unknown, 0),
            unseen: true,
        }
    }
}

/// Events that did not fit the state machine, counted (never fatal).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Anomalies {
    /// A `ready` of a goroutine not known to be parked.
    pub ready_not_waiting: u64,
    /// An event about a goroutine after its exit.
    pub after_exit: u64,
    /// A creation of a goid already known.
    pub duplicate_create: u64,
    /// Goroutines not tracked because of [`MAX_GOROUTINES`].
    pub goroutines_over_limit: u64,
}

/// What sampling (gaps of the hot probes) hid from the model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Unobserved {
    /// Gaps declared.
    pub gaps: u64,
    /// Parks whose end came after a gap: duration unknown, not in the blocking totals.
    pub parks_cut: u64,
    /// Runnable spells whose `execute` came after a gap: no latency sample.
    pub latencies_cut: u64,
    /// Events that did not fit the previous state but followed a gap (expected: the
    /// transitions in between were not seen); not counted as anomalies.
    pub after_gap: u64,
}

/// Totals over the aggregated parks: key = (wait reason, parking stack id).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SiteTotal {
    /// Number of completed parks.
    pub count: u64,
    /// Sum of their durations, ns.
    pub total_ns: u64,
    /// Longest one, ns.
    pub max_ns: u64,
}

/// One process's goroutines, fed one event at a time.
#[derive(Debug, Clone, Default)]
pub struct Model {
    /// Goroutines by goid.
    pub goroutines: BTreeMap<u64, Goroutine>,
    /// Interned stacks.
    pub stacks: Stacks,
    /// Every scheduling latency seen (ns), in event order.
    pub sched_latencies: Vec<u64>,
    /// Park totals by (reason, stack id).
    pub sites: HashMap<(u32, u32), SiteTotal>,
    /// Ready counts by waker goid (0 = the runtime).
    pub wakers: HashMap<u64, u64>,
    /// Events applied, per kind name.
    pub events: BTreeMap<&'static str, u64>,
    /// Counted oddities.
    pub anomalies: Anomalies,
    /// First and last event time.
    pub span: Option<(u64, u64)>,
    /// Creations seen.
    pub created: u64,
    /// Exits seen.
    pub exited: u64,
    /// Wake-ups of goroutines whose park began before the capture (no park event: the time
    /// parked before it is unknown).
    pub preexisting_wakes: u64,
    /// Process-wide state of the time model (window, threads, stop-the-world, GC).
    pub time: latency::Global,
    /// Gaps of the hot probes, sorted and disjoint: `(start, end)` kernel times.
    pub gaps: Vec<(u64, u64)>,
    /// What the gaps hid.
    pub unobserved: Unobserved,
}

impl Model {
    /// An empty model.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records goroutines known to exist when the capture starts (the attach-time baseline).
    pub fn baseline(&mut self, goids: impl IntoIterator<Item = u64>) {
        for goid in goids {
            self.goroutines
                .entry(goid)
                .or_insert_with(|| Goroutine::new(goid, true));
        }
    }

    /// Starts the time window at `t` (attach time); default: the first event.
    pub fn start_window(&mut self, t: u64) {
        self.time.window_start = Some(t);
    }

    /// States of goroutines in the attach-time snapshot: the time model starts them there.
    pub fn baseline_states(
        &mut self,
        states: impl IntoIterator<Item = (u64, latency::BaselineState)>,
    ) {
        for (goid, st) in states {
            self.time.baseline.insert(goid, st);
            let g = self
                .goroutines
                .entry(goid)
                .or_insert_with(|| Goroutine::new(goid, true));
            if g.unseen {
                g.clock.state = baseline_tstate(st);
            }
        }
    }

    /// Declares a sampling gap to the time model only, as soon as it opens (`end` `None`),
    /// then again with its end; [`Model::unobserved`] declares closed gaps to both models.
    pub fn time_gap(&mut self, start: u64, end: Option<u64>) {
        self.time.add_gap(start, end);
    }

    /// Ends the time window at `t`: charges every goroutine's time up to it.
    pub fn finish(&mut self, t: u64) {
        let start = *self.time.window_start.get_or_insert(t);
        let t = t.max(start);
        self.time.window_end = Some(t);
        for g in self.goroutines.values_mut() {
            if g.unseen && g.clock.state == latency::TState::Unknown {
                g.clock.state = match self.time.baseline.get(&g.goid) {
                    Some(b) => baseline_tstate(*b),
                    // No event in the whole window: nearly always parked (running or
                    // runnable goroutines are preempted or scheduled within ~10 ms).
                    None => latency::TState::Parked(latency::REASON_UNKNOWN),
                };
            }
            latency::flush(&mut g.clock, &self.time, t);
        }
    }

    /// The time window `(start, end)`, once finished.
    pub fn window(&self) -> Option<(u64, u64)> {
        Some((self.time.window_start?, self.time.window_end?))
    }

    /// Declares that the hot probes (park, ready, execute, yield) emitted nothing between
    /// kernel times `start` and `end` (`u64::MAX`: until the end). Call it before applying
    /// the events that follow the gap; gaps may also all be declared up front.
    pub fn unobserved(&mut self, start: u64, end: u64) {
        let end = end.max(start);
        self.time.add_gap(start, (end != u64::MAX).then_some(end));
        self.unobserved.gaps += 1;
        let pos = self.gaps.partition_point(|g| g.0 <= start);
        // Merge with overlapping neighbours so the list stays sorted and disjoint.
        let mut lo = start;
        let mut hi = end;
        let mut first = pos;
        if first > 0 && self.gaps[first - 1].1 >= start {
            first -= 1;
            lo = self.gaps[first].0;
            hi = hi.max(self.gaps[first].1);
        }
        let mut last = pos;
        while last < self.gaps.len() && self.gaps[last].0 <= hi {
            hi = hi.max(self.gaps[last].1);
            last += 1;
        }
        if first == last && self.gaps.len() >= MAX_GAPS {
            if let Some(g) = self.gaps.last_mut() {
                g.1 = g.1.max(hi);
            }
            return;
        }
        self.gaps.splice(first..last, [(lo, hi)]);
    }

    /// True when a gap overlaps the open interval `(from, to)`: what happened in between was
    /// not fully observed.
    pub fn crosses_gap(&self, from: u64, to: u64) -> bool {
        let i = self.gaps.partition_point(|g| g.1 <= from);
        self.gaps.get(i).is_some_and(|g| g.0 < to)
    }

    /// Fraction of `[from, to]` during which the hot probes emitted (1 without gaps).
    pub fn observed_fraction(&self, from: u64, to: u64) -> f64 {
        if to <= from {
            return 1.0;
        }
        let hidden: u64 = self
            .gaps
            .iter()
            .map(|&(a, b)| b.min(to).saturating_sub(a.max(from)))
            .sum();
        1.0 - hidden as f64 / (to - from) as f64
    }

    /// Applies one event.
    pub fn apply(&mut self, e: &Event) {
        let t = e.header().ktime_ns;
        self.time.window_start.get_or_insert(t);
        self.apply_lifecycle(e, t);
        self.apply_time(e, t);
    }

    fn apply_lifecycle(&mut self, e: &Event, t: u64) {
        *self.events.entry(e.kind().name()).or_default() += 1;
        self.span = Some(self.span.map_or((t, t), |(a, b)| (a.min(t), b.max(t))));
        match e {
            Event::Create(c) => {
                self.created += 1;
                if self.goroutines.remove(&c.goid).is_some() {
                    self.anomalies.duplicate_create += 1;
                }
                if let Some(g) = slot(&mut self.goroutines, &mut self.anomalies, c.goid) {
                    g.preexisting = false;
                    g.created = Some(Creation {
                        at: t,
                        parent: c.parent_goid,
                        gopc: c.gopc,
                        startpc: c.startpc,
                    });
                    g.state = State::Runnable(t);
                    g.clock = latency::Clock::new(latency::TState::Runnable, t);
                    g.unseen = false;
                }
            }
            Event::Park(p) => {
                let stack = self
                    .stacks
                    .intern(&p.stack[..(p.stack_len as usize).min(p.stack.len())]);
                let Some(g) = slot(&mut self.goroutines, &mut self.anomalies, p.goid) else {
                    return;
                };
                if matches!(g.state, State::Dead(_)) {
                    self.anomalies.after_exit += 1;
                    return;
                }
                g.state = State::Waiting(t);
                let park = Park {
                    at: t,
                    reason: p.reason,
                    stack,
                    wake: None,
                    resumed: None,
                    cut: false,
                };
                if g.parks.len() < MAX_PARKS_PER_GOROUTINE {
                    g.parks.push(park);
                } else {
                    g.parks_dropped += 1;
                    // Keep the open park last so ready/execute can close it.
                    if let Some(last) = g.parks.last_mut() {
                        *last = park;
                    }
                }
            }
            Event::Ready(r) => {
                let stack = self
                    .stacks
                    .intern(&r.stack[..(r.stack_len as usize).min(r.stack.len())]);
                *self.wakers.entry(r.waker_goid).or_default() += 1;
                if r.waker_goid != 0
                    && let Some(w) = self.goroutines.get_mut(&r.waker_goid)
                {
                    w.woke_others += 1;
                }
                let gap = state_since(self.goroutines.get(&r.goid).map(|g| g.state))
                    .is_some_and(|since| self.crosses_gap(since, t));
                let Some(g) = slot(&mut self.goroutines, &mut self.anomalies, r.goid) else {
                    return;
                };
                match g.state {
                    State::Waiting(_) if gap => {
                        if let Some(p) = g.parks.last_mut() {
                            p.cut = true;
                        }
                        self.unobserved.parks_cut += 1;
                        g.state = State::Runnable(t);
                    }
                    State::Waiting(_) => {
                        if let Some(p) = g.parks.last_mut() {
                            p.wake = Some(Wake {
                                at: t,
                                waker: r.waker_goid,
                                stack,
                            });
                            add_site(&mut self.sites, (p.reason, p.stack), t.saturating_sub(p.at));
                        }
                        g.state = State::Runnable(t);
                    }
                    State::Dead(_) => self.anomalies.after_exit += 1,
                    // A goroutine that existed before the capture and was waiting there: its
                    // first event being its wake-up is the normal order, not an anomaly.
                    State::Unknown => {
                        self.preexisting_wakes += 1;
                        g.state = State::Runnable(t);
                    }
                    _ => {
                        if gap {
                            self.unobserved.after_gap += 1;
                        } else {
                            self.anomalies.ready_not_waiting += 1;
                        }
                        g.state = State::Runnable(t);
                    }
                }
            }
            Event::Execute(x) => {
                let tid = x.header.tid;
                let gap = state_since(self.goroutines.get(&x.goid).map(|g| g.state))
                    .is_some_and(|since| self.crosses_gap(since, t));
                let Some(g) = slot(&mut self.goroutines, &mut self.anomalies, x.goid) else {
                    return;
                };
                match g.state {
                    State::Runnable(_) if gap => self.unobserved.latencies_cut += 1,
                    State::Waiting(_) if gap => {
                        if let Some(p) = g.parks.last_mut()
                            && p.wake.is_none()
                            && !p.cut
                        {
                            p.cut = true;
                            self.unobserved.parks_cut += 1;
                        }
                    }
                    State::Runnable(since) => {
                        let lat = t.saturating_sub(since);
                        g.sched_latency_total += lat;
                        self.sched_latencies.push(lat);
                    }
                    State::Waiting(_) => {
                        // Made runnable without `ready` (netpoll, or unlockf said no).
                        if let Some(p) = g.parks.last()
                            && p.wake.is_none()
                        {
                            add_site(&mut self.sites, (p.reason, p.stack), t.saturating_sub(p.at));
                        }
                    }
                    State::Dead(_) => {
                        self.anomalies.after_exit += 1;
                        return;
                    }
                    State::Unknown | State::Running { .. } => {}
                }
                g.runs += 1;
                if let Some(p) = g.parks.last_mut()
                    && p.resumed.is_none()
                {
                    p.resumed = Some(t);
                }
                g.state = State::Running { since: t, tid };
            }
            Event::Exit(x) => {
                self.exited += 1;
                if let Some(g) = slot(&mut self.goroutines, &mut self.anomalies, x.goid) {
                    g.exited = Some(t);
                    g.state = State::Dead(t);
                }
            }
            Event::Yield(x) => {
                if let Some(g) = slot(&mut self.goroutines, &mut self.anomalies, x.goid) {
                    if matches!(g.state, State::Dead(_)) {
                        self.anomalies.after_exit += 1;
                    } else {
                        g.yields += 1;
                        g.state = State::Runnable(t);
                    }
                }
            }
            Event::Switch(_) | Event::Wakeup(_) | Event::ThreadExit(_) | Event::Sched(..) => {}
        }
    }

    /// The time-model part of [`Model::apply`].
    #[allow(clippy::many_single_char_names)] // e (event), t (time), k (kind), a (arg), s (switch)
    fn apply_time(&mut self, e: &Event, t: u64) {
        let tid = e.header().tid;
        // Code ran on this thread: it is on-CPU (a switch-in may have been missed).
        self.thread_on_cpu(tid, t);
        let (goid, kind, reason) = match e {
            Event::Switch(s) => {
                self.thread_switch(s.prev_tid, s.next_tid, s.prev_state, t);
                return;
            }
            Event::ThreadExit(_) => {
                self.time.threads.remove(&tid);
                return;
            }
            Event::Create(_) | Event::Wakeup(_) => return,
            Event::Park(p) => (p.goid, EventKind::Park, p.reason),
            Event::Ready(r) => (r.goid, EventKind::Ready, 0),
            Event::Execute(x) | Event::Exit(x) | Event::Yield(x) => (x.goid, e.kind(), 0),
            Event::Sched(k, a) => {
                if matches!(k, EventKind::StwStart | EventKind::StwDone) {
                    self.flush_all(t, |s| {
                        matches!(s, latency::TState::Running | latency::TState::Runnable)
                    });
                }
                latency::apply_global(&mut self.time, *k, a);
                (a.goid, *k, 0)
            }
        };
        if goid == 0 {
            return;
        }
        let Some(g) = slot(&mut self.goroutines, &mut self.anomalies, goid) else {
            return;
        };
        let c = &mut g.clock;
        if g.unseen {
            g.unseen = false;
            latency::flush(c, &self.time, t.min(self.time.window_start.unwrap_or(t)));
            // With a snapshot state and a gap before this first event, the gap rule below
            // decides (the snapshot is the state before the gap).
            let gap_first = c.state != latency::TState::Unknown
                && self.time.gap_end_within(c.since, t).is_some();
            if !gap_first {
                c.state = latency::inferred_prior(kind, self.time.baseline.get(&goid).copied());
            }
            if !gap_first && c.state == latency::TState::Running {
                c.tid = Some(tid);
                link(&mut self.time, tid, goid);
            }
        }
        if c.state == latency::TState::Dead {
            return;
        }
        // Across a sampling gap the state is not known: this event tells what it was just
        // before. If that is what it was before the gap, nothing visible changed and the time
        // since the gap keeps that state; otherwise it changed unseen, at an unknown moment:
        // the time since the gap is unobserved.
        if let Some(e) = self.time.gap_end_within(c.since, t) {
            latency::flush(c, &self.time, e);
            let prior = latency::inferred_prior(kind, latency::as_hint(c.state));
            if prior != c.state {
                c.times.unobserved += t.saturating_sub(c.since);
                c.since = c.since.max(t);
                c.state = prior;
            }
            c.tid = None;
        }
        latency::flush(c, &self.time, t);
        match kind {
            EventKind::AssistStart => c.assisting = true,
            EventKind::AssistDone => c.assisting = false,
            k => {
                if let Some(s) = latency::next_state(k, reason) {
                    c.state = s;
                }
            }
        }
        match kind {
            EventKind::Execute | EventKind::SyscallExit => {
                if let Some(old) = c.tid.filter(|o| *o != tid)
                    && let Some(th) = self.time.threads.get_mut(&old)
                    && th.goid == Some(goid)
                {
                    th.goid = None;
                }
                c.tid = Some(tid);
                link(&mut self.time, tid, goid);
            }
            EventKind::Park
            | EventKind::Yield
            | EventKind::Exit
            | EventKind::Suspended
            | EventKind::SyscallNoP => {
                if let Some(th) = c.tid.and_then(|o| self.time.threads.get_mut(&o))
                    && th.goid == Some(goid)
                {
                    th.goid = None;
                }
                c.tid = None;
            }
            _ => {}
        }
    }

    /// Charges the goroutines whose state matches `pick` up to `t`.
    fn flush_all(&mut self, t: u64, pick: impl Fn(latency::TState) -> bool) {
        for g in self.goroutines.values_mut() {
            if pick(g.clock.state) {
                latency::flush(&mut g.clock, &self.time, t);
            }
        }
    }

    /// Flushes the goroutine on thread `tid` (its bucket is about to change).
    fn flush_thread(&mut self, tid: u32, t: u64) {
        if let Some(goid) = self.time.threads.get(&tid).and_then(|th| th.goid)
            && let Some(g) = self.goroutines.get_mut(&goid)
            && g.clock.tid == Some(tid)
            && !g.unseen
        {
            latency::flush(&mut g.clock, &self.time, t);
        }
    }

    fn thread_on_cpu(&mut self, tid: u32, t: u64) {
        if self
            .time
            .threads
            .get(&tid)
            .is_some_and(|th| th.off_cpu.is_some())
        {
            self.flush_thread(tid, t);
            if let Some(th) = self.time.threads.get_mut(&tid) {
                th.off_cpu = None;
            }
        }
    }

    fn thread_switch(&mut self, prev: u32, next: u32, prev_state: u64, t: u64) {
        self.flush_thread(prev, t);
        // `TASK_RUNNING` (0), or `TASK_REPORT_MAX` (0x100) for a preemption: still runnable.
        let preempted = prev_state.trailing_zeros() >= 8;
        if let Some(th) = thread(&mut self.time, prev) {
            th.off_cpu = Some(preempted);
        }
        self.thread_on_cpu(next, t);
    }

    /// Goroutines alive at the end (not seen exiting).
    pub fn alive(&self) -> usize {
        self.goroutines
            .values()
            .filter(|g| g.exited.is_none())
            .count()
    }

    /// Scheduling latency percentile `p` (0..=100), nearest-rank; `None` without samples.
    pub fn latency_percentile(&self, p: f64) -> Option<u64> {
        percentile(&self.sched_latencies, p)
    }
}

/// When a goroutine entered its current state (`None`: unknown, or dead).
fn state_since(s: Option<State>) -> Option<u64> {
    match s? {
        State::Runnable(t) | State::Waiting(t) | State::Running { since: t, .. } => Some(t),
        State::Unknown | State::Dead(_) => None,
    }
}

/// The goroutine `goid`, created as pre-existing on first sight (bounded).
fn slot<'a>(
    goroutines: &'a mut BTreeMap<u64, Goroutine>,
    anomalies: &mut Anomalies,
    goid: u64,
) -> Option<&'a mut Goroutine> {
    if !goroutines.contains_key(&goid) {
        if goroutines.len() >= MAX_GOROUTINES {
            anomalies.goroutines_over_limit += 1;
            return None;
        }
        goroutines.insert(goid, Goroutine::new(goid, true));
    }
    goroutines.get_mut(&goid)
}

/// The time-model state a baseline state starts in.
fn baseline_tstate(b: latency::BaselineState) -> latency::TState {
    match b {
        latency::BaselineState::Running => latency::TState::Running,
        latency::BaselineState::Runnable => latency::TState::Runnable,
        latency::BaselineState::Syscall => latency::TState::Syscall,
        latency::BaselineState::Parked(r) => latency::TState::Parked(r),
    }
}

/// The thread `tid`, tracked on first sight (bounded).
fn thread(g: &mut latency::Global, tid: u32) -> Option<&mut latency::Thread> {
    if !g.threads.contains_key(&tid) {
        if g.threads.len() >= latency::MAX_THREADS {
            g.threads_over_limit += 1;
            return None;
        }
        g.threads.insert(tid, latency::Thread::default());
    }
    g.threads.get_mut(&tid)
}

/// Records that goroutine `goid` runs on thread `tid`.
fn link(g: &mut latency::Global, tid: u32, goid: u64) {
    if let Some(th) = thread(g, tid) {
        th.goid = Some(goid);
        th.off_cpu = None;
    }
}

fn add_site(sites: &mut HashMap<(u32, u32), SiteTotal>, key: (u32, u32), d: u64) {
    let s = sites.entry(key).or_default();
    s.count += 1;
    s.total_ns += d;
    s.max_ns = s.max_ns.max(d);
}

/// Nearest-rank percentile of `v` (unsorted); `None` when empty.
pub fn percentile(v: &[u64], p: f64) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_unstable();
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    Some(s[rank.clamp(1, s.len()) - 1])
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod latency_tests;
