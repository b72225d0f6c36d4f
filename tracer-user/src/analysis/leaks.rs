//! Goroutine leak detection from periodic snapshots of a live process.
//!
//! Why snapshots and not tracing: `gtrace dump` reads goroutines from process memory without
//! stopping the target, so sampling it once a second costs the target nothing measurable, and
//! a leak is a slow thing: goroutines that pile up at one place and never leave. The model
//! groups goroutines by (creation site, blocking site = top user frame, wait reason / state),
//! follows each goid from snapshot to snapshot, and records per group the count series, who
//! left the group (woke up, exited, or re-parked — `execute` resets `g.waitsince`, so a
//! shorter wait than at the previous snapshot means it ran in between) and how long members
//! have been there. The verdicts are small named [`rules`] over the finished
//! [`GroupReport`]s.

pub mod rules;
pub mod trace;

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use crate::{
    gobin::waitreason::WaitCategory,
    goroutines::{Goroutine, unwind::ShownFrame},
};

/// A source location: function, file and line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Site {
    /// Function name as Go prints it (`main.awaitReply`).
    pub function: Arc<str>,
    /// Source file.
    pub file: Arc<str>,
    /// Line.
    pub line: u32,
}

/// What the analysis keeps of one goroutine in one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Goroutine id (never reused by the runtime).
    pub goid: u64,
    /// The creator's goid (Go 1.21+; `None` or 0 when unknown).
    pub parent_goid: Option<u64>,
    /// The wait reason when parked with one, else the status word (`running`, `syscall`, …).
    pub state: Arc<str>,
    /// Parked with a wait reason.
    pub parked: bool,
    /// Nanoseconds since the runtime's `waitsince`, when the runtime has it.
    pub wait_ns: Option<i64>,
    /// The `go` statement that created it.
    pub created_by: Option<Site>,
    /// The top user frame: where it blocks, seen from the program's code.
    pub block: Option<Site>,
    /// A runtime goroutine.
    pub system: bool,
}

/// Packages whose frames are the plumbing of blocking, not the place a program blocks: the
/// blocking site is the first frame outside them (`main.awaitReply`, not `runtime.chanrecv1`
/// or `sync.(*Mutex).Lock`).
const PLUMBING: &[&str] = &[
    "runtime.",
    "internal/",
    "sync.",
    "sync/atomic.",
    "time.",
    "iter.",
];

fn is_plumbing(function: &str) -> bool {
    PLUMBING.iter().any(|p| function.starts_with(p))
}

/// The blocking site of a stack (innermost first): the first frame outside [`PLUMBING`],
/// else the innermost frame.
pub fn block_site(frames: &[ShownFrame]) -> Option<Site> {
    let f = frames
        .iter()
        .find(|f| !is_plumbing(&f.src.function))
        .or_else(|| frames.first())?;
    Some(Site {
        function: f.src.function.clone(),
        file: f.src.file.clone(),
        line: f.src.line,
    })
}

impl Sample {
    /// The analysis view of a decoded goroutine.
    pub fn from_goroutine(g: &Goroutine) -> Self {
        let parked = g.wait_reason.is_some() && !g.running;
        let state: Arc<str> = match &g.wait_reason {
            Some(r) if parked => r.clone(),
            _ => Arc::from(g.status),
        };
        Self {
            goid: g.goid,
            parent_goid: g.parent_goid.filter(|&p| p != 0),
            state,
            parked,
            wait_ns: g.wait_ns,
            created_by: g.created_by.as_ref().map(|c| Site {
                function: c.function.clone(),
                file: c.file.clone(),
                line: c.line,
            }),
            block: block_site(&g.stack.frames),
            system: g.system,
        }
    }
}

/// What a goroutine waits for, coarsely: a wait category, or not parked at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// Parked; the category of its wait reason.
    Wait(WaitCategory),
    /// In a system call.
    Syscall,
    /// Running or runnable: not blocked.
    Active,
}

impl Category {
    /// The category of a sample's state.
    pub fn of(parked: bool, state: &str) -> Self {
        if parked {
            Self::Wait(WaitCategory::of(state))
        } else if state == "syscall" {
            Self::Syscall
        } else {
            Self::Active
        }
    }

    /// Stable name, as in `--json` (docs/json/leaks.schema.json).
    pub fn name(self) -> &'static str {
        match self {
            Self::Wait(w) => match w {
                WaitCategory::ChanReceive => "chan_receive",
                WaitCategory::ChanSend => "chan_send",
                WaitCategory::NilChan => "nil_chan",
                WaitCategory::Select => "select",
                WaitCategory::SelectNoCases => "select_no_cases",
                WaitCategory::Mutex => "mutex",
                WaitCategory::WaitGroup => "waitgroup",
                WaitCategory::Cond => "cond",
                WaitCategory::Semacquire => "semacquire",
                WaitCategory::Io => "io",
                WaitCategory::Syscall => "syscall",
                WaitCategory::Sleep => "sleep",
                WaitCategory::Synctest => "synctest",
                WaitCategory::Coroutine => "coroutine",
                WaitCategory::Runtime => "runtime",
                WaitCategory::Other => "other",
            },
            Self::Syscall => "syscall",
            Self::Active => "active",
        }
    }

    /// Runtime-internal waits (GC workers, finalizers, …): hidden unless asked for.
    pub fn is_runtime(self) -> bool {
        self == Self::Wait(WaitCategory::Runtime)
    }
}

/// The grouping key: creation site, blocking site, state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupKey {
    /// Where members were created.
    pub created_by: Option<Site>,
    /// Where members block (top user frame).
    pub block: Option<Site>,
    /// Wait reason or status word.
    pub state: Arc<str>,
    /// Parked with a wait reason.
    pub parked: bool,
}

#[derive(Debug)]
struct Track {
    key: GroupKey,
    /// Count per snapshot (index = snapshot number).
    counts: Vec<u32>,
    /// Members that left the group between two snapshots (woke, exited, re-parked).
    departed: u64,
    /// Every member was a runtime goroutine.
    all_system: bool,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    group: usize,
    wait_ns: Option<i64>,
    /// Seconds (window time) since it has been in this group without leaving.
    since: f64,
}

/// Follows goroutines across snapshots; feed it with [`Tracker::snapshot`], then
/// [`Tracker::finish`].
#[derive(Debug, Default)]
pub struct Tracker {
    index: HashMap<GroupKey, usize>,
    groups: Vec<Track>,
    times: Vec<f64>,
    prev: HashMap<u64, Seen>,
    /// Parent goid per goid of the last snapshot.
    parents: HashMap<u64, Option<u64>>,
    /// Every goid of the first snapshot, in any state.
    first: HashSet<u64>,
    /// Kernel-time span of each snapshot's read, when traced.
    reads: Vec<Option<(u64, u64)>>,
    /// (group, goid) → end of the first traced read that saw the goroutine in the group.
    watched: HashMap<(usize, u64), u64>,
}

/// The lifecycle evidence [`Tracker::finish_traced`] combines with the snapshots.
#[derive(Debug, Clone, Copy)]
pub struct TraceInput<'a> {
    /// What the event stream said per goroutine.
    pub life: &'a trace::Lifecycle,
    /// Events lost while tracing (ring buffer full, undecodable, failed probe reads).
    pub lost: u64,
    /// Seconds the probes were attached.
    pub traced_secs: f64,
    /// `waitReason` value → the runtime's string (to match a traced park to a group).
    pub reasons: &'a [Arc<str>],
}

/// What the lifecycle events say about one group (`gtrace leaks --trace`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraceEvidence {
    /// Goroutines some traced snapshot saw in the group (any snapshot, not only the last).
    pub watched: usize,
    /// Of those (parked groups only), how many ran again after a snapshot saw them here: a
    /// `ready`, `execute`, yield or exit event came later.
    pub woke: usize,
    /// Of those, how many exited afterwards.
    pub exited: usize,
    /// Members at the last snapshot whose creation was seen (created during the window).
    pub created_in_window: usize,
    /// Members at the last snapshot whose age is exact: their park started while traced.
    pub exact_ages: usize,
    /// Events lost while tracing: when non-zero, a wake may have been missed.
    pub events_lost: u64,
    /// Seconds the probes were attached.
    pub traced_secs: f64,
}

impl TraceEvidence {
    /// Some member was seen running again or exiting.
    pub fn woken(&self) -> bool {
        self.woke > 0 || self.exited > 0
    }
}

/// True if a goroutine parked at both snapshots ran in between: the runtime's `execute`
/// zeroes `waitsince`, so its wait got shorter or its stamp disappeared (runtime/proc.go).
fn ran_between(before: Option<i64>, after: Option<i64>) -> bool {
    match (before, after) {
        (Some(a), Some(b)) => b < a,
        (Some(_), None) => true,
        _ => false,
    }
}

impl Tracker {
    /// Nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Snapshots taken so far.
    pub fn snapshots(&self) -> usize {
        self.times.len()
    }

    /// Adds one snapshot taken `t` seconds into the window (times must not decrease).
    pub fn snapshot(&mut self, t: f64, samples: impl IntoIterator<Item = Sample>) {
        self.snapshot_read(t, None, samples);
    }

    /// [`Tracker::snapshot`] of a traced window: `read` is the kernel-time span
    /// (`CLOCK_MONOTONIC` ns, the events' clock) during which the snapshot was read.
    pub fn snapshot_read(
        &mut self,
        t: f64,
        read: Option<(u64, u64)>,
        samples: impl IntoIterator<Item = Sample>,
    ) {
        let n = self.times.len();
        self.times.push(t);
        self.reads.push(read);
        let mut cur: HashMap<u64, Seen> = HashMap::with_capacity(self.prev.len());
        self.parents.clear();
        for s in samples {
            let key = GroupKey {
                created_by: s.created_by,
                block: s.block,
                state: s.state,
                parked: s.parked,
            };
            let gi = if let Some(&i) = self.index.get(&key) {
                i
            } else {
                self.groups.push(Track {
                    key: key.clone(),
                    counts: vec![0; n + 1],
                    departed: 0,
                    all_system: true,
                });
                self.index.insert(key, self.groups.len() - 1);
                self.groups.len() - 1
            };
            let tr = &mut self.groups[gi];
            tr.counts.resize(n + 1, 0);
            tr.counts[n] += 1;
            tr.all_system &= s.system;
            let since = match self.prev.get(&s.goid) {
                Some(p) if p.group == gi && !ran_between(p.wait_ns, s.wait_ns) => p.since,
                _ => t,
            };
            self.parents.insert(s.goid, s.parent_goid);
            if let Some((_, end)) = read {
                self.watched.entry((gi, s.goid)).or_insert(end);
            }
            cur.insert(
                s.goid,
                Seen {
                    group: gi,
                    wait_ns: s.wait_ns,
                    since,
                },
            );
        }
        if n == 0 {
            self.first = cur.keys().copied().collect();
        }
        for (goid, p) in &self.prev {
            let left = cur
                .get(goid)
                .is_none_or(|c| c.group != p.group || ran_between(p.wait_ns, c.wait_ns));
            if left {
                self.groups[p.group].departed += 1;
            }
        }
        for tr in &mut self.groups {
            tr.counts.resize(n + 1, 0);
        }
        self.prev = cur;
    }

    /// One report per group present in the last snapshot, largest first.
    pub fn finish(&self) -> Vec<GroupReport> {
        self.finish_with(None)
    }

    /// [`Tracker::finish`] with the lifecycle evidence of a traced window: who ran again
    /// after a snapshot saw it parked, who exited, exact ages of parks seen starting.
    pub fn finish_traced(&self, input: &TraceInput<'_>) -> Vec<GroupReport> {
        self.finish_with(Some(input))
    }

    /// Per group: (watched, woke, exited) from the traced snapshots' memberships.
    fn watch_counts(&self, input: &TraceInput<'_>) -> Vec<(usize, usize, usize)> {
        let mut out = vec![(0, 0, 0); self.groups.len()];
        for (&(gi, goid), &seen) in &self.watched {
            let c = &mut out[gi];
            c.0 += 1;
            if self.groups[gi].key.parked && input.life.ran_after(goid, seen) {
                c.1 += 1;
            }
            if input.life.exited(goid).is_some_and(|t| t > seen) {
                c.2 += 1;
            }
        }
        out
    }

    fn finish_with(&self, input: Option<&TraceInput<'_>>) -> Vec<GroupReport> {
        let Some(&t_end) = self.times.last() else {
            return Vec::new();
        };
        let watch = input.map(|i| self.watch_counts(i));
        let last_read = self.reads.last().copied().flatten();
        let t0 = self.times.first().copied().unwrap_or(t_end);
        let mut members: Vec<Vec<(u64, Seen)>> = vec![Vec::new(); self.groups.len()];
        for (&goid, &s) in &self.prev {
            members[s.group].push((goid, s));
        }
        let mut out = Vec::new();
        for (gi, mut ms) in members.into_iter().enumerate() {
            if ms.is_empty() {
                continue;
            }
            ms.sort_by_key(|(g, _)| *g);
            let tr = &self.groups[gi];
            let count = ms.len();
            // Exact when traced and the member's park was seen starting (and matches the
            // group's wait reason); else the runtime's wait time where it has one, never less
            // than the time seen parked here in this window.
            let exact = |goid: u64| -> Option<f64> {
                let (input, (from, to)) = (input?, last_read?);
                if !tr.key.parked {
                    return None;
                }
                let p = input.life.open_park(goid, from, to)?;
                let name = input.reasons.get(p.reason as usize)?;
                (**name == *tr.key.state).then(|| from.saturating_sub(p.at) as f64 / 1e9)
            };
            let (mut exact_ages, mut runtime_ages) = (0, 0);
            let mut ages: Vec<f64> = ms
                .iter()
                .map(|(goid, s)| {
                    if let Some(a) = exact(*goid) {
                        exact_ages += 1;
                        return a;
                    }
                    let seen = t_end - s.since;
                    runtime_ages += usize::from(s.wait_ns.is_some());
                    s.wait_ns
                        .map_or(seen, |ns| (ns.max(0) as f64 / 1e9).max(seen))
                })
                .collect();
            ages.sort_by(f64::total_cmp);
            let parents_known = ms
                .iter()
                .any(|(g, _)| self.parents.get(g).copied().flatten().is_some());
            let orphans = parents_known.then(|| {
                ms.iter()
                    .filter(|(g, _)| {
                        self.parents
                            .get(g)
                            .copied()
                            .flatten()
                            .is_some_and(|p| !self.parents.contains_key(&p))
                    })
                    .count()
            });
            let counts: Vec<u32> = tr.counts.clone();
            out.push(GroupReport {
                key: tr.key.clone(),
                category: Category::of(tr.key.parked, &tr.key.state),
                system: tr.all_system,
                count,
                first_count: counts.first().copied().unwrap_or(0) as usize,
                max_count: counts.iter().copied().max().unwrap_or(0) as usize,
                growth_per_min: slope(&self.times, &counts) * 60.0,
                window_secs: t_end - t0,
                snapshots: self.times.len(),
                departed: tr.departed,
                ages: Ages::of(&ages),
                runtime_ages,
                orphans,
                new_members: ms.iter().filter(|(g, _)| !self.first.contains(g)).count(),
                goids: ms.iter().map(|(g, _)| *g).collect(),
                trace: input.zip(watch.as_ref()).map(|(i, w)| TraceEvidence {
                    watched: w[gi].0,
                    woke: w[gi].1,
                    exited: w[gi].2,
                    created_in_window: ms
                        .iter()
                        .filter(|(g, _)| i.life.created(*g).is_some())
                        .count(),
                    exact_ages,
                    events_lost: i.lost + i.life.untracked,
                    traced_secs: i.traced_secs,
                }),
            });
        }
        out.sort_by(|a, b| b.count.cmp(&a.count).then(a.goids.cmp(&b.goids)));
        out
    }
}

/// Least-squares slope of `counts` over `times` (per second); 0 with fewer than two points.
pub fn slope(times: &[f64], counts: &[u32]) -> f64 {
    let n = times.len().min(counts.len());
    if n < 2 {
        return 0.0;
    }
    let nf = n as f64;
    let mt = times[..n].iter().sum::<f64>() / nf;
    let mc = counts[..n].iter().map(|&c| f64::from(c)).sum::<f64>() / nf;
    let (mut num, mut den) = (0.0, 0.0);
    for (t, &c) in times[..n].iter().zip(&counts[..n]) {
        num += (t - mt) * (f64::from(c) - mc);
        den += (t - mt) * (t - mt);
    }
    if den > 0.0 { num / den } else { 0.0 }
}

/// Minimum, median and maximum of a group's ages, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ages {
    /// Youngest.
    pub min: f64,
    /// Median (lower middle for even counts).
    pub median: f64,
    /// Oldest.
    pub max: f64,
}

impl Ages {
    fn of(sorted: &[f64]) -> Option<Self> {
        Some(Self {
            min: *sorted.first()?,
            median: sorted[(sorted.len() - 1) / 2],
            max: *sorted.last()?,
        })
    }
}

/// One group at the end of the window, with everything the rules and outputs need.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupReport {
    /// Creation site, blocking site, state.
    pub key: GroupKey,
    /// What it waits for.
    pub category: Category,
    /// Every member ever seen was a runtime goroutine.
    pub system: bool,
    /// Members in the last snapshot.
    pub count: usize,
    /// Members in the first snapshot.
    pub first_count: usize,
    /// Most members in any snapshot.
    pub max_count: usize,
    /// Least-squares growth over the window, goroutines per minute.
    pub growth_per_min: f64,
    /// Seconds between the first and last snapshot.
    pub window_secs: f64,
    /// Snapshots taken.
    pub snapshots: usize,
    /// Members that left the group during the window (woke, exited, or ran and re-parked).
    pub departed: u64,
    /// Ages of the last snapshot's members (seconds).
    pub ages: Option<Ages>,
    /// How many of those ages come from the runtime's own wait time (and are not exact).
    pub runtime_ages: usize,
    /// Members whose creator has exited (`None` when the Go version does not record it).
    pub orphans: Option<usize>,
    /// Members that did not exist (in any state) at the first snapshot.
    pub new_members: usize,
    /// Every member's goid at the last snapshot, ascending.
    pub goids: Vec<u64>,
    /// The lifecycle evidence, when the window was traced (`--trace`).
    pub trace: Option<TraceEvidence>,
}

impl GroupReport {
    /// Some member woke up, exited or re-parked during the window: seen by the snapshots,
    /// or (traced) by a later event.
    pub fn woken(&self) -> bool {
        self.departed > 0 || self.trace.is_some_and(|t| t.woken())
    }

    /// Hidden unless `--all`: runtime goroutines and runtime-internal waits.
    pub fn is_runtime(&self) -> bool {
        self.system || self.category.is_runtime()
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // exact values built from exact inputs
pub(crate) mod tests {
    use super::*;

    pub(crate) fn site(f: &str, line: u32) -> Site {
        Site {
            function: f.into(),
            file: "/src/main.go".into(),
            line,
        }
    }

    pub(crate) fn parked(goid: u64, reason: &str, block: &str, creator: &str) -> Sample {
        Sample {
            goid,
            parent_goid: Some(1),
            state: reason.into(),
            parked: true,
            wait_ns: None,
            created_by: Some(site(creator, 10)),
            block: Some(site(block, 20)),
            system: false,
        }
    }

    fn running(goid: u64, creator: &str) -> Sample {
        Sample {
            state: "running".into(),
            parked: false,
            block: None,
            ..parked(goid, "", "", creator)
        }
    }

    fn main_g() -> Sample {
        Sample {
            goid: 1,
            parent_goid: None,
            created_by: None,
            ..parked(1, "select (no cases)", "main.main", "")
        }
    }

    #[test]
    fn leak_grows_and_pool_wakes() {
        let mut t = Tracker::new();
        let mut next = 100;
        let mut leaked = Vec::new();
        for i in 0..5u32 {
            let mut snap = vec![main_g()];
            for _ in 0..3 {
                leaked.push(next);
                next += 1;
            }
            snap.extend(
                leaked
                    .iter()
                    .map(|&g| parked(g, "chan receive", "main.leak", "main.h")),
            );
            // Pool of 4: one of them running in each snapshot, a different one each time.
            for w in 0..4u64 {
                snap.push(if w == u64::from(i % 4) {
                    running(10 + w, "main.main")
                } else {
                    parked(10 + w, "chan receive", "main.worker", "main.main")
                });
            }
            t.snapshot(f64::from(i), snap);
        }
        let r = t.finish();
        let leak = r
            .iter()
            .find(|g| g.key.block == Some(site("main.leak", 20)))
            .unwrap();
        assert_eq!(leak.count, 15);
        assert_eq!(leak.first_count, 3);
        assert!(!leak.woken());
        assert!(
            (leak.growth_per_min - 180.0).abs() < 1e-6,
            "{}",
            leak.growth_per_min
        );
        assert_eq!(leak.ages.unwrap().max, 4.0);
        assert_eq!(leak.ages.unwrap().min, 0.0);
        assert_eq!(leak.orphans, Some(0));
        assert_eq!(leak.new_members, 12);
        let pool = r
            .iter()
            .find(|g| g.key.block == Some(site("main.worker", 20)))
            .unwrap();
        assert_eq!(pool.count, 3);
        assert!(pool.woken());
        assert_eq!(pool.new_members, 0);
    }

    #[test]
    fn reparking_at_same_site_counts_as_woken() {
        let mut t = Tracker::new();
        let g = |ns| Sample {
            wait_ns: Some(ns),
            ..parked(7, "chan receive", "main.worker", "main.main")
        };
        t.snapshot(0.0, [g(5_000_000_000)]);
        t.snapshot(1.0, [g(6_000_000_000)]);
        assert!(!t.finish()[0].woken());
        t.snapshot(2.0, [g(100)]);
        let r = t.finish();
        assert!(r[0].woken());
        // Its age restarts with the new wait.
        assert!(r[0].ages.unwrap().max < 1e-3);
    }

    #[test]
    fn exit_counts_as_woken_and_orphans_follow_parents() {
        let mut t = Tracker::new();
        let child = |g| Sample {
            parent_goid: Some(50),
            ..parked(g, "chan send", "main.child", "main.parent")
        };
        let parent = parked(50, "sleep", "main.parent", "main.main");
        t.snapshot(0.0, [child(60), child(61), parent.clone()]);
        t.snapshot(1.0, [child(60), child(61)]);
        let r = t.finish();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].orphans, Some(2));
        assert!(!r[0].woken());
        t.snapshot(2.0, [child(60)]);
        assert!(t.finish()[0].woken());
    }

    #[test]
    fn ages_prefer_the_runtime_wait_time() {
        let mut t = Tracker::new();
        let s = Sample {
            wait_ns: Some(600_000_000_000),
            ..parked(9, "select", "main.loop", "main.main")
        };
        t.snapshot(0.0, [s.clone()]);
        t.snapshot(
            2.0,
            [Sample {
                wait_ns: Some(602_000_000_000),
                ..s
            }],
        );
        let r = t.finish();
        assert_eq!(r[0].ages.unwrap().max, 602.0);
        assert_eq!(r[0].runtime_ages, 1);
        assert_eq!(r[0].category.name(), "select");
    }

    /// A traced window: the pool wakes between snapshots (invisible to the snapshots, which
    /// see it parked at the same place each time), the leak never does; exact ages come
    /// from the parks seen starting.
    #[test]
    fn traced_wakes_separate_a_pool_from_a_leak() {
        use trace::{
            Lifecycle,
            tests::{create, execute, park, ready},
        };
        const S: u64 = 1_000_000_000;
        let reasons: Vec<Arc<str>> = vec!["".into(), "chan receive".into(), "select".into()];
        let mut life = Lifecycle::new();
        let mut t = Tracker::new();
        // Pool member 10 parked before tracing; leak 100 created and parked at 0.5 s.
        life.apply(&create(100, S / 2));
        life.apply(&execute(100, S / 2 + 10));
        life.apply(&park(100, S / 2 + 20, 1, &[]));
        let snap = |leak: bool| {
            let mut v = vec![parked(10, "chan receive", "main.worker", "main.main")];
            if leak {
                v.push(parked(100, "chan receive", "main.leak", "main.h"));
            }
            v
        };
        t.snapshot_read(0.0, Some((S / 4, S / 4 + 5)), snap(false));
        t.snapshot_read(1.0, Some((S, S + 5)), snap(true));
        // The pool member wakes and re-parks at the same place between the snapshots.
        life.apply(&ready(10, S + S / 2, 1, &[]));
        life.apply(&execute(10, S + S / 2 + 10));
        life.apply(&park(10, S + S / 2 + 20, 1, &[]));
        t.snapshot_read(2.0, Some((2 * S, 2 * S + 5)), snap(true));
        assert!(
            t.finish().iter().all(|g| !g.woken()),
            "the snapshots alone see no wake"
        );
        let input = TraceInput {
            life: &life,
            lost: 0,
            traced_secs: 2.0,
            reasons: &reasons,
        };
        let r = t.finish_traced(&input);
        let pool = r
            .iter()
            .find(|g| g.key.block == Some(site("main.worker", 20)))
            .unwrap();
        let tr = pool.trace.unwrap();
        assert_eq!((tr.watched, tr.woke, tr.exited), (1, 1, 0));
        assert!(pool.woken());
        // Its park started at 1.5 s: age 0.5 s at the last read, exact.
        assert_eq!(tr.exact_ages, 1);
        assert!(
            (pool.ages.unwrap().max - 0.5).abs() < 1e-6,
            "{:?}",
            pool.ages
        );
        let leak = r
            .iter()
            .find(|g| g.key.block == Some(site("main.leak", 20)))
            .unwrap();
        let tr = leak.trace.unwrap();
        assert_eq!((tr.watched, tr.woke, tr.exited), (1, 0, 0));
        assert_eq!((tr.created_in_window, tr.exact_ages), (1, 1));
        assert!(!leak.woken());
        assert!(
            (leak.ages.unwrap().max - 1.5).abs() < 1e-6,
            "{:?}",
            leak.ages
        );
        // A park whose reason differs from the group's is not taken as its age.
        let wrong: Vec<Arc<str>> = vec!["".into(), "select".into()];
        let r = t.finish_traced(&TraceInput {
            reasons: &wrong,
            ..input
        });
        assert!(r.iter().all(|g| g.trace.unwrap().exact_ages == 0));
    }

    #[test]
    fn slope_is_least_squares() {
        assert_eq!(slope(&[0.0], &[5]), 0.0);
        assert!((slope(&[0.0, 1.0, 2.0], &[1, 3, 5]) - 2.0).abs() < 1e-9);
        assert_eq!(slope(&[1.0, 1.0], &[1, 5]), 0.0);
    }

    #[test]
    fn block_site_skips_plumbing() {
        assert!(is_plumbing("runtime.gopark"));
        assert!(is_plumbing("sync.(*Mutex).Lock"));
        assert!(is_plumbing("internal/poll.(*FD).Read"));
        assert!(!is_plumbing("main.awaitReply"));
        assert!(!is_plumbing("net/http.(*conn).serve"));
        assert!(block_site(&[]).is_none());
    }
}
