//! The time model of `gtrace latency`: where every nanosecond of each goroutine went.
//!
//! It extends the lifecycle [`Model`](super::Model): the same events, fed by the same
//! `apply`, keyed by the same goids. Each goroutine carries a [`Clock`]: its scheduling state
//! (running, runnable, syscall, parked by reason) plus the flags that refine it (assisting the
//! GC; the OS thread it runs on being off-CPU; the world being stopped). At every transition
//! the time since the last one is charged to exactly one [`Bucket`], so per goroutine the
//! buckets sum to the part of the window it existed in.
//!
//! Semantics follow `go tool trace` (execution = running, sched wait = runnable, block by
//! reason = parked, syscall, GC assist), with these documented deviations:
//! - `os_offcpu`: time a goroutine is running in Go's eyes while its thread is switched out by
//!   the kernel (`sched_switch`: `prev_state` 0 = preempted, else blocked). Go's tracer counts
//!   it as execution. The thread ↔ goroutine link is the thread id of `execute` (the M that
//!   runs it) and of the goroutine's own events; a goroutine running since before attach is
//!   linked at its first event.
//! - `stw`: while the world is stopped (from `stopTheWorldWithSema` to
//!   `startTheWorldWithSema`), the time of goroutines that are running or runnable (the
//!   stopper included) is charged to `stw`. Go's tracer counts the runnable part as sched wait:
//!   add `stw` to `runnable` to compare.
//! - a goroutine woken by netpoll and run at once by `findRunnable` (no `ready`, no
//!   `injectglist`) is parked until it runs.
//! - goroutines that existed before attach start in the state of the attach-time snapshot
//!   ([`BaselineState`]); without one, the state before their first event is inferred from it
//!   (a `ready` means it was parked, an `execute` runnable, a park running…).

use std::collections::{BTreeMap, HashMap};

use tracer_common::event::{EventKind, GoArg, STW_REASON_NONE};

/// Wait reason used for parked time whose reason is not known (before the first event of a
/// goroutine without a baseline).
pub const REASON_UNKNOWN: u32 = u32::MAX;
/// Wait reason used for `preemptPark` (suspended for a GC stack scan): `"preempted"`.
pub const REASON_PREEMPTED: u32 = u32::MAX - 1;
/// Threads tracked for the on/off-CPU split.
pub const MAX_THREADS: usize = 1 << 16;
/// Stop-the-world windows and GC cycles kept (further ones are counted, not listed).
pub const MAX_WINDOWS: usize = 1 << 16;

/// The name Go's tracer gives stop-the-world reason `r` (`runtime.stwReasonStrings`).
pub fn stw_reason_name(r: u32) -> &'static str {
    if r == STW_REASON_NONE {
        return "unknown (not passed before go1.21)";
    }
    crate::probes::latency::STW_REASONS
        .get(r as usize)
        .copied()
        .unwrap_or("unknown")
}

/// Index of "GC mark termination" in the STW reasons.
const STW_GC_MARK_TERM: u32 = 1;
/// Index of "GC sweep termination".
const STW_GC_SWEEP_TERM: u32 = 2;

/// The scheduling state of a goroutine in the time model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TState {
    /// Not seen yet (existed before attach, no baseline): charged on the first event.
    Unknown,
    /// Running on a thread.
    Running,
    /// On a run queue.
    Runnable,
    /// In a system call.
    Syscall,
    /// Parked with this wait reason.
    Parked(u32),
    /// Exited (no more time).
    Dead,
}

/// The state of a goroutine in the attach-time snapshot (`gtrace dump`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaselineState {
    /// `running`.
    Running,
    /// `runnable`.
    Runnable,
    /// `syscall`.
    Syscall,
    /// Waiting, with the wait reason (an index into the version's table, or
    /// [`REASON_UNKNOWN`]).
    Parked(u32),
}

/// Where a span of time is charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// Running and on-CPU.
    Running,
    /// Runnable, waiting for a P.
    Runnable,
    /// Running for Go, but its thread preempted by the kernel (runnable in the OS).
    OsPreempted,
    /// Running for Go, but its thread blocked in the kernel (page fault, futex in the
    /// runtime…).
    OsBlocked,
    /// In a system call.
    Syscall,
    /// Parked with this reason.
    Parked(u32),
    /// Stopped by a stop-the-world.
    Stw,
    /// Assisting the GC.
    Assist,
}

/// Time per bucket, ns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Times {
    /// Running on-CPU.
    pub running: u64,
    /// Runnable.
    pub runnable: u64,
    /// Off-CPU in the OS while running: preempted by the kernel.
    pub os_preempted: u64,
    /// Off-CPU in the OS while running: blocked in the kernel.
    pub os_blocked: u64,
    /// In system calls.
    pub syscall: u64,
    /// Parked, by wait reason.
    pub parked: BTreeMap<u32, u64>,
    /// Stopped by stop-the-world.
    pub stw: u64,
    /// GC mark assist.
    pub assist: u64,
    /// Inside sampling gaps of the overhead governor: not attributed to any state.
    pub unobserved: u64,
}

impl Times {
    /// Adds `d` ns to bucket `b`.
    pub fn add(&mut self, b: Bucket, d: u64) {
        if d == 0 {
            return;
        }
        match b {
            Bucket::Running => self.running += d,
            Bucket::Runnable => self.runnable += d,
            Bucket::OsPreempted => self.os_preempted += d,
            Bucket::OsBlocked => self.os_blocked += d,
            Bucket::Syscall => self.syscall += d,
            Bucket::Parked(r) => *self.parked.entry(r).or_default() += d,
            Bucket::Stw => self.stw += d,
            Bucket::Assist => self.assist += d,
        }
    }

    /// Off-CPU in the OS while running (both kinds).
    pub fn os_offcpu(&self) -> u64 {
        self.os_preempted + self.os_blocked
    }

    /// Total parked.
    pub fn parked_total(&self) -> u64 {
        self.parked.values().sum()
    }

    /// Every state summed: the time the goroutine was observed.
    pub fn observed(&self) -> u64 {
        self.running
            + self.runnable
            + self.os_offcpu()
            + self.syscall
            + self.parked_total()
            + self.stw
            + self.assist
    }

    /// Observed plus unobserved: the part of the window the goroutine existed in.
    pub fn total(&self) -> u64 {
        self.observed() + self.unobserved
    }

    /// Adds another breakdown (for groups).
    pub fn merge(&mut self, o: &Times) {
        self.running += o.running;
        self.runnable += o.runnable;
        self.os_preempted += o.os_preempted;
        self.os_blocked += o.os_blocked;
        self.syscall += o.syscall;
        for (r, d) in &o.parked {
            *self.parked.entry(*r).or_default() += d;
        }
        self.stw += o.stw;
        self.assist += o.assist;
        self.unobserved += o.unobserved;
    }
}

/// One goroutine's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clock {
    /// Current state.
    pub state: TState,
    /// Since when the current span runs.
    pub since: u64,
    /// Inside `gcAssistAlloc`.
    pub assisting: bool,
    /// The thread it runs on (meaningful while running).
    pub tid: Option<u32>,
    /// Accumulated time.
    pub times: Times,
}

impl Clock {
    /// A clock in `state` from `at`.
    pub fn new(state: TState, at: u64) -> Self {
        Self {
            state,
            since: at,
            assisting: false,
            tid: None,
            times: Times::default(),
        }
    }
}

/// The OS view of one thread of the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Thread {
    /// Switched out by the kernel: `Some(true)` preempted, `Some(false)` blocked.
    pub off_cpu: Option<bool>,
    /// The goroutine running on it, as far as the events tell.
    pub goid: Option<u64>,
}

/// One stop-the-world window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct StwWindow {
    /// `stwReason` ([`STW_REASON_NONE`] when the runtime passes none).
    pub reason: u32,
    /// True when `reason` was inferred from the GC probes (Go < 1.21).
    pub inferred: bool,
    /// Start (kernel ns).
    pub start: u64,
    /// End; `None` while the world is still stopped.
    pub end: Option<u64>,
    /// The goroutine that stopped the world (0: none).
    pub goid: u64,
}

/// One GC cycle as seen from its pauses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct GcCycle {
    /// Start of its sweep-termination pause (or of `gcStart` when the pause was missed).
    pub start: Option<u64>,
    /// Start of its mark-termination pause.
    pub mark_termination: Option<u64>,
    /// End of the mark-termination pause.
    pub end: Option<u64>,
}

/// Process-wide state of the time model.
#[derive(Debug, Clone, Default)]
pub struct Global {
    /// Window start (kernel ns); `None` until set or the first event.
    pub window_start: Option<u64>,
    /// Window end, once finished.
    pub window_end: Option<u64>,
    /// Threads by tid.
    pub threads: HashMap<u32, Thread>,
    /// Threads not tracked because of [`MAX_THREADS`].
    pub threads_over_limit: u64,
    /// Stop-the-world windows, oldest first.
    pub stw: Vec<StwWindow>,
    /// GC cycles, oldest first.
    pub gc: Vec<GcCycle>,
    /// Windows or cycles not kept because of [`MAX_WINDOWS`].
    pub windows_over_limit: u64,
    /// Mark terminations restarted within a cycle (golang/go#27993).
    pub mark_restarts: u64,
    /// A `gcStart` was seen and no stop-the-world since (names the next one, Go < 1.21).
    pub gc_start_pending: bool,
    /// Baseline states of goroutines that existed before the window.
    pub baseline: HashMap<u64, BaselineState>,
    /// Sampling gaps of the hot probes, `(start, end)` sorted by start; `u64::MAX` = still
    /// open. Time inside them is charged to [`Times::unobserved`].
    pub gaps: Vec<(u64, u64)>,
}

impl Global {
    /// Declares a sampling gap from `start` (`end` `None`: still open). Declaring the same
    /// start again with an end closes it.
    pub fn add_gap(&mut self, start: u64, end: Option<u64>) {
        let end = end.unwrap_or(u64::MAX).max(start);
        if let Some(g) = self.gaps.iter_mut().find(|g| g.0 == start) {
            g.1 = end;
            return;
        }
        if self.gaps.len() >= MAX_WINDOWS {
            self.windows_over_limit += 1;
            return;
        }
        let at = self.gaps.partition_point(|g| g.0 < start);
        self.gaps.insert(at, (start, end));
    }

    /// The end of the last gap that ends inside `(from, to]`, if any: a goroutine's state
    /// after it is not known from before it.
    pub fn gap_end_within(&self, from: u64, to: u64) -> Option<u64> {
        self.gaps
            .iter()
            .filter(|g| g.1 > from && g.1 <= to && g.0 < to)
            .map(|g| g.1)
            .max()
    }

    /// The world is stopped now.
    pub fn stopped(&self) -> bool {
        self.stw.last().is_some_and(|w| w.end.is_none())
    }
}

/// The bucket of a goroutine in `state` right now.
pub fn bucket(c: &Clock, g: &Global) -> Option<Bucket> {
    Some(match c.state {
        TState::Unknown | TState::Dead => return None,
        TState::Parked(r) => Bucket::Parked(r),
        TState::Syscall => Bucket::Syscall,
        TState::Runnable | TState::Running if g.stopped() => Bucket::Stw,
        TState::Runnable => Bucket::Runnable,
        TState::Running => {
            match c
                .tid
                .and_then(|t| g.threads.get(&t))
                .and_then(|t| t.off_cpu)
            {
                Some(true) => Bucket::OsPreempted,
                Some(false) => Bucket::OsBlocked,
                None if c.assisting => Bucket::Assist,
                None => Bucket::Running,
            }
        }
    })
}

/// Charges `c`'s time up to `t` to its current bucket.
/// Nothing is charged (and the span is kept open) while the state is unknown.
pub fn flush(c: &mut Clock, g: &Global, t: u64) {
    if c.since == 0 {
        c.since = g.window_start.unwrap_or(t);
    }
    if t <= c.since {
        return;
    }
    let Some(b) = bucket(c, g) else {
        return;
    };
    let mut from = c.since;
    for &(a, e) in &g.gaps {
        if e <= from || a >= t {
            continue;
        }
        c.times.add(b, a.saturating_sub(from));
        let (ga, ge) = (a.max(from), e.min(t));
        c.times.unobserved += ge - ga;
        from = ge;
    }
    c.times.add(b, t - from);
    c.since = t;
}

/// The hint a known state gives when it must be inferred again (after a sampling gap).
pub fn as_hint(s: TState) -> Option<BaselineState> {
    match s {
        TState::Running => Some(BaselineState::Running),
        TState::Runnable => Some(BaselineState::Runnable),
        TState::Syscall => Some(BaselineState::Syscall),
        TState::Parked(r) => Some(BaselineState::Parked(r)),
        TState::Unknown | TState::Dead => None,
    }
}

/// What a goroutine not seen before was doing until its first event `kind` (and `baseline`).
pub fn inferred_prior(kind: EventKind, baseline: Option<BaselineState>) -> TState {
    let parked = || match baseline {
        Some(BaselineState::Parked(r)) => TState::Parked(r),
        _ => TState::Parked(REASON_UNKNOWN),
    };
    match kind {
        EventKind::Ready | EventKind::Injected => parked(),
        EventKind::Execute => match baseline {
            Some(BaselineState::Parked(r)) => TState::Parked(r),
            _ => TState::Runnable,
        },
        EventKind::SyscallExit | EventKind::SyscallNoP => TState::Syscall,
        _ => TState::Running,
    }
}

/// The new state after `kind` (for the goroutine the event is about), `None` if unchanged.
pub fn next_state(kind: EventKind, reason: u32) -> Option<TState> {
    Some(match kind {
        EventKind::Create
        | EventKind::Ready
        | EventKind::Yield
        | EventKind::Injected
        | EventKind::SyscallNoP => TState::Runnable,
        EventKind::Execute | EventKind::SyscallExit => TState::Running,
        EventKind::Park => TState::Parked(reason),
        EventKind::Suspended => TState::Parked(REASON_PREEMPTED),
        EventKind::Syscall => TState::Syscall,
        EventKind::Exit => TState::Dead,
        _ => return None,
    })
}

/// Applies a stop-the-world or GC event to the global state. The caller has flushed every
/// clock whose bucket the change may move (running and runnable goroutines).
pub fn apply_global(g: &mut Global, kind: EventKind, a: &GoArg) {
    let t = a.header.ktime_ns;
    match kind {
        EventKind::StwStart => {
            if g.stopped() {
                return;
            }
            let (reason, inferred) = if a.arg == STW_REASON_NONE && g.gc_start_pending {
                (STW_GC_SWEEP_TERM, true)
            } else {
                (a.arg, false)
            };
            g.gc_start_pending = false;
            if g.stw.len() >= MAX_WINDOWS {
                g.windows_over_limit += 1;
                g.stw.remove(0);
            }
            g.stw.push(StwWindow {
                reason,
                inferred,
                start: t,
                end: None,
                goid: a.goid,
            });
            if reason == STW_GC_SWEEP_TERM {
                push_cycle(
                    g,
                    GcCycle {
                        start: Some(t),
                        ..GcCycle::default()
                    },
                );
            } else if reason == STW_GC_MARK_TERM {
                mark_term(g, t);
            }
        }
        EventKind::StwDone => {
            let Some(w) = g.stw.last_mut().filter(|w| w.end.is_none()) else {
                return;
            };
            w.end = Some(t);
            if w.reason == STW_GC_MARK_TERM
                && let Some(c) = g.gc.last_mut()
                && c.end.is_none()
            {
                c.end = Some(t);
            }
        }
        EventKind::GcStart => g.gc_start_pending = true,
        EventKind::GcMarkTerm => {
            // Go < 1.21: the pause in progress is the mark termination.
            if let Some(w) = g.stw.last_mut()
                && w.end.is_none()
                && w.reason == STW_REASON_NONE
            {
                w.reason = STW_GC_MARK_TERM;
                w.inferred = true;
                let start = w.start;
                mark_term(g, start);
            }
        }
        _ => {}
    }
}

fn push_cycle(g: &mut Global, c: GcCycle) {
    if g.gc.len() >= MAX_WINDOWS {
        g.windows_over_limit += 1;
        g.gc.remove(0);
    }
    g.gc.push(c);
}

/// A mark-termination pause starts at `t`. A second one in the same cycle (no sweep
/// termination since) is a restart: `gcMarkDone` found work left after stopping the world,
/// started it again and will stop it again (runtime/mgc.go, golang/go#27993); the cycle goes
/// on, its mark termination stays the first.
fn mark_term(g: &mut Global, t: u64) {
    match g.gc.last_mut() {
        Some(c) if c.mark_termination.is_none() => c.mark_termination = Some(t),
        Some(c) => {
            c.end = None;
            g.mark_restarts += 1;
        }
        None => push_cycle(
            g,
            GcCycle {
                mark_termination: Some(t),
                ..GcCycle::default()
            },
        ),
    }
}

/// Parses the state text of a `gtrace dump` goroutine (`running`, `runnable`, `syscall`, or a
/// wait reason) into a baseline state; `reason_id` maps a wait-reason string to its value.
pub fn parse_baseline(text: &str, reason_id: impl Fn(&str) -> Option<u32>) -> BaselineState {
    let t = text
        .trim_end_matches(" (scan)")
        .trim_end_matches(" (leaked)")
        .trim();
    match t {
        "running" => BaselineState::Running,
        "runnable" => BaselineState::Runnable,
        "syscall" => BaselineState::Syscall,
        "preempted" => BaselineState::Parked(REASON_PREEMPTED),
        r => BaselineState::Parked(reason_id(r).unwrap_or(REASON_UNKNOWN)),
    }
}
