//! One live capture: attach the lifecycle probes to a process, drain the ring buffer on a
//! timer, hand every event to the caller, stop on a deadline, a signal or the
//! target's exit, then detach and check that no breakpoint was left in the target.
//!
//! Draining on a 10 ms timer (the programs submit with `BPF_RB_NO_WAKEUP`) costs a few tens of
//! nanoseconds per event instead of a wake-up per event. The timer itself is kept cheap, since
//! it runs whether events come or not: the pause between drains stretches up to [`IDLE_INTERVAL`]
//! at low event rates; the probe counters (three per-CPU maps, one system call per probe and map) are read
//! only when a caller or the governor needs them; whether the target still lives is asked
//! every [`ALIVE_CHECK`], not every tick (its exit is normally seen sooner, as the
//! `group_dead` thread exit). Events reach the caller as checked but undecoded records
//! ([`Raw`]): `gtrace record` stores them as they are.
//!
//! With a budget ([`Options::max_overhead`]) the loop also runs the overhead governor
//! ([`super::governor`]): every [`governor::EVALUATE_EVERY`] it turns hit counts and the
//! target's CPU time into a duty, then opens and closes the hot probes' windows through the
//! `CONTROL` map. Every closed window (a gap: hot events not emitted) is reported as a
//! [`Notice::Gap`] with kernel timestamps, so that no duration is computed across it.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use tracer_common::event::{Event, EventKind, Raw};

use super::{
    Counts, ProbeError, ProbeSet,
    governor::{self, Decision, Governor},
    lifecycle::{self, LifecycleError, Plan},
    verify_all_detached,
};
use crate::{gobin::GoBinary, target::Process};

/// How often the ring buffer is drained.
pub const DRAIN_INTERVAL: Duration = Duration::from_millis(10);
/// Longest final drain (a full 32 MiB ring buffer takes well under a second to read in a
/// release build).
const FINAL_DRAIN_LIMIT: Duration = Duration::from_secs(30);
/// Longest single drain before the loop's other duties (stop conditions, governor).
const MAX_DRAIN: Duration = Duration::from_millis(10);
/// Longest pause between drains at low event rates: each wake-up of the reader costs tens of
/// microseconds (measured 20–85 µs here: a timer, two context switches and cold caches under
/// a hypervisor), which dominates gtrace's CPU per event when few events come. The 32 MiB
/// ring holds ~75 k events even if all carry full stacks: a burst of ~750 k events/s from a
/// quiet start fits.
pub const IDLE_INTERVAL: Duration = Duration::from_millis(100);
/// Events aimed at per drain: the pause is the time the last rate takes to bring this many,
/// between [`DRAIN_INTERVAL`] and [`IDLE_INTERVAL`].
const EVENTS_PER_DRAIN: f64 = 4096.0;
/// How often `/proc/PID/stat` is read to see whether the target still lives.
const ALIVE_CHECK: Duration = Duration::from_millis(100);

/// Why a capture ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The requested duration elapsed.
    Duration,
    /// The stop flag was raised (SIGINT / SIGTERM).
    Signal,
    /// The target process exited.
    TargetExited,
    /// Exact tracing would cost the target more than the budget, and the session was asked
    /// to end rather than sample ([`Options::stop_over_budget`]).
    OverBudget,
}

/// What happened during a capture.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// Why it ended.
    pub reason: StopReason,
    /// Probe hits / failures / ring-buffer drops.
    pub counts: Counts,
    /// Events delivered to the callback.
    pub events: u64,
    /// Records that failed to decode.
    pub decode_errors: u64,
    /// Wall time attached.
    pub elapsed: Duration,
    /// `CLOCK_MONOTONIC` (the events' clock) when the probes went live.
    pub attached_ktime_ns: u64,
    /// `CLOCK_MONOTONIC` when the capture stopped (before detaching).
    pub stopped_ktime_ns: u64,
    /// `None` when every probed instruction was verified intact after detaching (or the
    /// target was gone); otherwise what was wrong.
    pub detach_problem: Option<String>,
    /// What the overhead governor did.
    pub sampling: Sampling,
}

impl Summary {
    /// Events lost (ring buffer full) plus records that failed to decode.
    pub fn lost(&self) -> u64 {
        self.counts.total_drops() + self.decode_errors
    }
}

/// A process with its binary and probe plan, ready to attach.
pub struct Target {
    /// The process.
    pub process: Process,
    /// Its executable.
    pub binary: GoBinary,
    /// Where the probes go.
    pub plan: Plan,
    /// Runtime address minus link-time address (0 unless PIE).
    pub bias: u64,
    /// What the latency probes cannot see in this Go version (empty without them).
    pub degraded: Vec<super::latency::Degradation>,
}

/// Opening or attaching failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The process could not be inspected.
    #[error("cannot inspect process {pid}")]
    Process {
        /// Its PID.
        pid: u32,
        /// Why.
        #[source]
        source: crate::target::TargetError,
    },
    /// The binary could not be read or planned for.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    /// Reading the process maps failed.
    #[error("reading /proc/{0}/maps failed")]
    Maps(u32, #[source] std::io::Error),
    /// The event ring buffer was missing from the object.
    #[error("the eBPF object has no event ring buffer (rebuild gtrace)")]
    NoRingBuffer,
    /// Attaching failed.
    #[error(transparent)]
    Probe(#[from] ProbeError),
    /// The process exited before the probes were attached.
    #[error("process {0} exited before the probes were attached")]
    Gone(u32),
}

impl Target {
    /// Opens process `pid`: its executable, version, probe plan and load bias.
    pub fn open(pid: u32) -> Result<Self, SessionError> {
        Self::open_with(pid, false)
    }

    /// [`Target::open`], with the scheduler-latency probes added to the plan when `latency`.
    pub fn open_with(pid: u32, latency: bool) -> Result<Self, SessionError> {
        let process =
            Process::from_pid(pid).map_err(|source| SessionError::Process { pid, source })?;
        let binary = GoBinary::open(&process.exe).map_err(LifecycleError::from)?;
        let mut plan = lifecycle::plan(&binary)?;
        let degraded = if latency {
            super::latency::extend(&binary, &mut plan)?
        } else {
            Vec::new()
        };
        let first = plan.sites.first().ok_or(LifecycleError::NoNewprocCall)?;
        let addr = process
            .address_of_file_offset(first.offset)
            .map_err(|e| SessionError::Maps(pid, e))?
            .unwrap_or(first.vaddr);
        Ok(Self {
            bias: addr.wrapping_sub(first.vaddr),
            process,
            binary,
            plan,
            degraded,
        })
    }

    /// The executable path used for attaching.
    pub fn exe(&self) -> PathBuf {
        self.process.exe.clone()
    }
}

/// Options of [`run`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Raised by a signal handler to stop.
    pub stop: Arc<AtomicBool>,
    /// Overhead budget, percent of the target's own CPU time; `None` = no governor (every
    /// event exact, whatever it costs).
    pub max_overhead: Option<f64>,
    /// With a budget: end the session ([`StopReason::OverBudget`]) instead of sampling when
    /// exact tracing would exceed it, for models that need every event (a leak window, a
    /// block profile): their report then covers the part traced exactly.
    pub stop_over_budget: bool,
    /// Benchmark only: every probe counts its hit and returns without emitting (the cost of
    /// the probe sites themselves, `cargo xtask bench overhead`'s "empty probe").
    pub empty_probes: bool,
    /// Benchmark only: attach the synthetic event source (every `getppid` of the target
    /// writes a park-shaped event; [`ProbeSet::attach_bench_parks`]).
    pub bench_parks: bool,
}

/// What the overhead governor did, as it happens.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notice {
    /// The duty of the hot probes changed (sampling started, changed or ended).
    Governor {
        /// Kernel time of the change.
        ktime_ns: u64,
        /// Duty before.
        previous_duty: f64,
        /// The new decision.
        decision: Decision,
    },
    /// The hot probes stopped emitting at `start_ktime_ns`; `end_ktime_ns` is `None` while
    /// the gap is open (reported at its start so that a capture cut short still knows it),
    /// then reported again with its end.
    Gap {
        /// Kernel time the hot probes were switched off (taken before the switch).
        start_ktime_ns: u64,
        /// Kernel time they were switched on again (taken after the switch).
        end_ktime_ns: Option<u64>,
    },
}

/// What the overhead governor did over a whole capture.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Sampling {
    /// The budget, percent (`None`: no governor).
    pub max_overhead_pct: Option<f64>,
    /// Gaps (closed windows of the hot probes).
    pub gaps: u64,
    /// Total time the hot probes were sampled out, ns.
    pub sampled_out_ns: u64,
    /// Smallest duty used (1 = always exact).
    pub min_duty: f64,
    /// Highest estimated overhead of exact tracing seen, percent.
    pub peak_full_pct: f64,
    /// False if at some point even sampled-out probes exceeded the budget.
    pub reachable: bool,
}

/// The callbacks of [`run_with`]; `FnMut`s borrowing the caller's state.
pub struct Callbacks<A, E, P, N, T> {
    /// Once the probes are live (e.g. to take a baseline or resume a stopped child).
    pub attached: A,
    /// Every lifecycle event, in ring-buffer order, checked but not copied
    /// ([`Raw::event`] decodes it).
    pub event: E,
    /// Every raw panic-path record (decode with `tracer_common::panic::decode`).
    pub panic: P,
    /// Every governor notice.
    pub notice: N,
    /// After every drain ([`DRAIN_INTERVAL`], up to [`IDLE_INTERVAL`] while the target is
    /// quiet): events so far, and the counters on demand.
    pub tick: T,
}

/// What a tick callback sees: the running event count, and the probe counters if it asks
/// (reading them costs system calls: ask only when they are used, e.g. for a progress line).
pub struct Tick<'a> {
    /// Events delivered so far.
    pub events: u64,
    set: &'a ProbeSet,
}

impl Tick<'_> {
    /// The probe counters now (`None` if the maps could not be read).
    pub fn counts(&self) -> Option<Counts> {
        self.set.counts().ok()
    }
}

/// Attaches to `target`, calls `on_event` for every event in ring-buffer order and `on_tick`
/// after every drain, until a stop condition; detaches and verifies. `on_attached`
/// runs once the probes are live (e.g. to take a baseline or tell a test to start its
/// workload).
pub fn run(
    target: &Target,
    opts: &Options,
    on_attached: impl FnMut(),
    on_event: impl FnMut(&Event),
    on_tick: impl FnMut(&Tick<'_>),
) -> Result<Summary, SessionError> {
    run_with_panics(target, opts, None, on_attached, on_event, |_| {}, on_tick)
}

/// [`run`], plus the panic-path probes of `panics` (when given): their raw records go to
/// `on_panic` (decode them with `tracer_common::panic::decode`), in ring-buffer order with the
/// lifecycle events.
pub fn run_with_panics(
    target: &Target,
    opts: &Options,
    panics: Option<&crate::panics::PanicPlan>,
    on_attached: impl FnMut(),
    mut on_event: impl FnMut(&Event),
    on_panic: impl FnMut(&[u8]),
    on_tick: impl FnMut(&Tick<'_>),
) -> Result<Summary, SessionError> {
    run_with(
        target,
        opts,
        panics,
        Callbacks {
            attached: on_attached,
            event: |e: Raw<'_>| on_event(&e.event()),
            panic: on_panic,
            notice: |_: &Notice| {},
            tick: on_tick,
        },
    )
}

/// [`run_with_panics`] with every callback, governor notices included.
pub fn run_with<A, E, P, N, T>(
    target: &Target,
    opts: &Options,
    panics: Option<&crate::panics::PanicPlan>,
    cb: Callbacks<A, E, P, N, T>,
) -> Result<Summary, SessionError>
where
    A: FnMut(),
    E: FnMut(Raw<'_>),
    P: FnMut(&[u8]),
    N: FnMut(&Notice),
    T: FnMut(&Tick<'_>),
{
    let Callbacks {
        attached: mut on_attached,
        event: mut on_event,
        panic: mut on_panic,
        notice: mut on_notice,
        tick: mut on_tick,
    } = cb;
    let pid = target.process.pid;
    let mut set = match lifecycle::attach_with_panics(
        pid,
        &target.process.exe,
        &target.plan,
        panics.map(|p| (&p.config, p.sites.as_slice())),
    ) {
        Ok(s) => s,
        Err(_) if !target.process.is_alive() => return Err(SessionError::Gone(pid)),
        Err(e) => return Err(e.into()),
    };
    let mut ring = set.take_events().ok_or(SessionError::NoRingBuffer)?;
    if opts.bench_parks {
        set.attach_bench_parks()?;
    }
    if opts.empty_probes {
        for p in tracer_common::probe::ProbeId::ALL {
            set.set_sampled_out(p, true)?;
        }
    }
    let start = Instant::now();
    let attached_ktime_ns = crate::cli::attach::ktime_now();
    let mut gov = opts.max_overhead.map(|pct| {
        let mut g = Governed::new(pct, pid, start);
        g.stop_over_budget = opts.stop_over_budget;
        g
    });
    on_attached();
    // (events, decode errors, process gone)
    let mut tally = (0u64, 0u64, false);
    // Returns after at most MAX_DRAIN of records even if more keep coming, so that the stop
    // conditions and the governor are still checked when the target outpaces the reader.
    let mut drain = |ring: &mut aya::maps::RingBuf<aya::maps::MapData>,
                     tally: &mut (u64, u64, bool)| {
        let began = Instant::now();
        let mut n = 0u32;
        loop {
            n = n.wrapping_add(1);
            if n.is_multiple_of(1024) && began.elapsed() >= MAX_DRAIN {
                return false;
            }
            let Some(item) = ring.next() else {
                return true;
            };
            let kind = item
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u32::from_le_bytes);
            if tracer_common::panic::PanicKind::is_panic(kind) {
                tally.0 += 1;
                on_panic(&item);
                continue;
            }
            match Raw::new(&item) {
                Ok(e) => {
                    if e.kind() == EventKind::ThreadExit
                        && let Event::ThreadExit(x) = e.event()
                        && x.group_dead != 0
                    {
                        tally.2 = true;
                    }
                    tally.0 += 1;
                    on_event(e);
                }
                Err(_) => tally.1 += 1,
            }
        }
    };
    let mut alive_checked = start;
    let mut last_drain = (Instant::now(), 0u64);
    let reason = loop {
        let emptied = drain(&mut ring, &mut tally);
        if tally.2 {
            break StopReason::TargetExited;
        }
        if alive_checked.elapsed() >= ALIVE_CHECK {
            alive_checked = Instant::now();
            if !target.process.is_alive() {
                break StopReason::TargetExited;
            }
        }
        if opts.stop.load(Ordering::Relaxed) {
            break StopReason::Signal;
        }
        if opts.duration.is_some_and(|d| start.elapsed() >= d) {
            break StopReason::Duration;
        }
        if let Some(g) = &mut gov
            && g.step(&mut set, &mut on_notice)? == Step::OverBudget
        {
            break StopReason::OverBudget;
        }
        on_tick(&Tick {
            events: tally.0,
            set: &set,
        });
        if emptied {
            let now = Instant::now();
            let rate =
                (tally.0 - last_drain.1) as f64 / (now - last_drain.0).as_secs_f64().max(1e-3);
            last_drain = (now, tally.0);
            // The sampling windows of the governor need the short period.
            let pause = if gov.as_ref().is_some_and(|g| g.governor.duty() < 1.0) {
                DRAIN_INTERVAL
            } else {
                Duration::from_secs_f64((EVENTS_PER_DRAIN / rate.max(1.0)).min(1.0))
                    .clamp(DRAIN_INTERVAL, IDLE_INTERVAL)
            };
            std::thread::sleep(pause);
        }
    };
    let stopped_ktime_ns = crate::cli::attach::ktime_now();
    drain(&mut ring, &mut tally);
    let sampling = match gov {
        Some(mut g) => {
            g.close(&mut on_notice);
            g.sampling
        }
        None => Sampling {
            min_duty: 1.0,
            reachable: true,
            ..Sampling::default()
        },
    };
    // Detach first, then drain to the end: the ring may hold a backlog of seconds when the
    // reader is slower than the target, and nothing is lost or left uncounted. The counters
    // are read after detaching so that they match the events exactly. Programs already
    // running finish within microseconds (RCU); the short sleep covers them.
    set.detach_all();
    std::thread::sleep(DRAIN_INTERVAL);
    let last = Instant::now();
    while !drain(&mut ring, &mut tally) && last.elapsed() < FINAL_DRAIN_LIMIT {}
    let (events, decode_errors, _) = tally;
    let counts = set.counts()?;
    let elapsed = start.elapsed();
    drop(ring);
    drop(set);
    let panic_sites = panics.map_or(&[][..], |p| p.sites.as_slice());
    let offsets: Vec<u64> = target
        .plan
        .sites
        .iter()
        .chain(panic_sites)
        .map(|s| s.offset)
        .collect();
    let detach_problem = verify_all_detached(&target.process, &offsets)
        .err()
        .map(|e| e.to_string());
    Ok(Summary {
        reason,
        counts,
        events,
        decode_errors,
        elapsed,
        attached_ktime_ns,
        stopped_ktime_ns,
        detach_problem,
        sampling,
    })
}

/// The governor's state inside a session: evaluation interval, window schedule, open gap.
struct Governed {
    governor: Governor,
    pid: u32,
    sampling: Sampling,
    /// Start of the current evaluation interval, hits, drops and target CPU at its start.
    interval: (
        Instant,
        [u64; tracer_common::probe::ProbeId::COUNT as usize],
        u64,
        Option<Duration>,
    ),
    /// Evaluations so far.
    evaluations: u64,
    /// Time the hot probes emitted during the current interval.
    open_time: Duration,
    last_step: Instant,
    /// When the current sampling phase started (windows are aligned on it).
    phase_start: Instant,
    /// Start (kernel time) of the open gap, if the hot probes are switched off.
    gap: Option<u64>,
    /// End the session rather than sample ([`Options::stop_over_budget`]).
    stop_over_budget: bool,
}

/// What one governor step asks of the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Go on (sampling or not).
    Continue,
    /// Exact tracing is over budget and the session must end instead of sampling.
    OverBudget,
}

impl Governed {
    fn new(pct: f64, pid: u32, now: Instant) -> Self {
        Self {
            governor: Governor::new(pct),
            pid,
            sampling: Sampling {
                max_overhead_pct: Some(pct),
                min_duty: 1.0,
                reachable: true,
                ..Sampling::default()
            },
            interval: (
                now,
                [0; tracer_common::probe::ProbeId::COUNT as usize],
                0,
                target_cpu(pid),
            ),
            evaluations: 0,
            open_time: Duration::ZERO,
            last_step: now,
            phase_start: now,
            gap: None,
            stop_over_budget: false,
        }
    }

    /// One loop iteration: account time, re-evaluate when due (reading the counters), open or
    /// close the window.
    fn step(
        &mut self,
        set: &mut ProbeSet,
        on_notice: &mut impl FnMut(&Notice),
    ) -> Result<Step, ProbeError> {
        let now = Instant::now();
        if self.gap.is_none() {
            self.open_time += now - self.last_step;
        }
        self.last_step = now;
        let (since, hits0, drops0, cpu0) = self.interval;
        let elapsed = now - since;
        let every = if self.evaluations == 0 {
            governor::FIRST_EVALUATION
        } else {
            governor::EVALUATE_EVERY
        };
        if elapsed >= every
            && let Ok(counts) = set.counts()
        {
            self.evaluations += 1;
            let drops = counts.total_drops();
            let hits = hits_by_probe(&counts);
            let cpu = target_cpu(self.pid);
            let mut delta = [0; tracer_common::probe::ProbeId::COUNT as usize];
            for (d, (a, b)) in delta.iter_mut().zip(hits.iter().zip(hits0)) {
                *d = a.saturating_sub(b);
            }
            let previous = self.governor.duty();
            let decision = self.governor.observe(&governor::Observation {
                elapsed,
                hits: delta,
                target_cpu: match (cpu0, cpu) {
                    (Some(a), Some(b)) => b.saturating_sub(a),
                    _ => Duration::ZERO,
                },
                duty: (self.open_time.as_secs_f64() / elapsed.as_secs_f64()).min(1.0),
                drops: drops.saturating_sub(drops0),
            });
            self.sampling.peak_full_pct = self.sampling.peak_full_pct.max(decision.full_pct);
            // The cost, not ring-buffer drops (also a reason to sample), ends the session.
            if self.stop_over_budget
                && decision.duty < 1.0
                && self
                    .sampling
                    .max_overhead_pct
                    .is_some_and(|b| decision.full_pct > b)
            {
                return Ok(Step::OverBudget);
            }
            if decision.duty < 1.0 {
                self.sampling.min_duty = self.sampling.min_duty.min(decision.duty);
                self.sampling.reachable &= decision.reachable;
            }
            if (decision.duty - previous).abs() > f64::EPSILON {
                if previous >= 1.0 {
                    self.phase_start = now;
                }
                on_notice(&Notice::Governor {
                    ktime_ns: crate::cli::attach::ktime_now(),
                    previous_duty: previous,
                    decision,
                });
            }
            self.interval = (now, hits, drops, cpu);
            self.open_time = Duration::ZERO;
        }
        // A session that must stay exact never samples (drops alone do not end it either:
        // they are counted and reported as lost).
        let open = self.stop_over_budget
            || governor::window_open(self.governor.duty(), now - self.phase_start);
        match (open, self.gap) {
            (false, None) => {
                let start = crate::cli::attach::ktime_now();
                set_hot(set, true)?;
                self.gap = Some(start);
                on_notice(&Notice::Gap {
                    start_ktime_ns: start,
                    end_ktime_ns: None,
                });
            }
            (true, Some(start)) => {
                set_hot(set, false)?;
                self.end_gap(start, on_notice);
            }
            _ => {}
        }
        Ok(Step::Continue)
    }

    fn end_gap(&mut self, start: u64, on_notice: &mut impl FnMut(&Notice)) {
        let end = crate::cli::attach::ktime_now();
        self.gap = None;
        self.sampling.gaps += 1;
        self.sampling.sampled_out_ns += end.saturating_sub(start);
        on_notice(&Notice::Gap {
            start_ktime_ns: start,
            end_ktime_ns: Some(end),
        });
    }

    /// At the end of the capture: closes an open gap (the probes are being detached).
    fn close(&mut self, on_notice: &mut impl FnMut(&Notice)) {
        if let Some(start) = self.gap {
            self.end_gap(start, on_notice);
        }
    }
}

/// Switches every hot probe off (`true`) or on.
fn set_hot(set: &mut ProbeSet, sampled_out: bool) -> Result<(), ProbeError> {
    governor::HOT
        .iter()
        .try_for_each(|&p| set.set_sampled_out(p, sampled_out))
}

/// Hits per probe, indexed by `ProbeId as usize`.
fn hits_by_probe(c: &Counts) -> [u64; tracer_common::probe::ProbeId::COUNT as usize] {
    let mut out = [0; tracer_common::probe::ProbeId::COUNT as usize];
    for p in tracer_common::probe::ProbeId::ALL {
        out[p as usize] = c.hits.get(p.name()).copied().unwrap_or(0);
    }
    out
}

/// CPU time (user + system, every thread) of process `pid` so far, from `/proc/PID/stat`;
/// `None` if it cannot be read (the process is gone).
pub fn target_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_cpu(&stat, clock_ticks())
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|t| *t > 0).unwrap_or(100)
}

/// utime + stime (fields 14 and 15, after the parenthesised command name) of a
/// `/proc/PID/stat` line, in ticks of `1 / ticks_per_s` seconds.
fn parse_stat_cpu(stat: &str, ticks_per_s: u64) -> Option<Duration> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    let ticks = utime.checked_add(stime)?;
    Some(Duration::from_nanos(
        ticks.saturating_mul(1_000_000_000 / ticks_per_s.max(1)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cpu() {
        let line = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 \
                    5 0 123 0 0";
        assert_eq!(parse_stat_cpu(line, 100), Some(Duration::from_millis(3250)));
        assert_eq!(parse_stat_cpu("garbage", 100), None);
        assert_eq!(parse_stat_cpu("1 (x) S 1 2", 100), None);
    }

    #[test]
    fn own_cpu_is_readable() {
        assert!(target_cpu(std::process::id()).is_some());
    }
}
