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
//! Sampled captures: when the overhead governor switched the hot probes off for a while, the
//! caller declares each such gap ([`Model::unobserved`]). No duration is computed across a
//! gap: a park whose end (or a runnable spell whose execute) is seen only after a gap is
//! marked cut (duration unknown) instead of being reported as long, and counted in
//! [`Unobserved`].

use std::collections::{BTreeMap, HashMap};

use tracer_common::event::Event;

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

    /// Declares that the hot probes (park, ready, execute, yield) emitted nothing between
    /// kernel times `start` and `end` (`u64::MAX`: until the end). Call it before applying
    /// the events that follow the gap; gaps may also all be declared up front.
    pub fn unobserved(&mut self, start: u64, end: u64) {
        let end = end.max(start);
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
            Event::Switch(_) | Event::Wakeup(_) | Event::ThreadExit(_) => {}
        }
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
