//! One live capture: attach the lifecycle probes to a process, drain the ring buffer on a
//! timer, hand every decoded event to the caller, stop on a deadline, a signal or the
//! target's exit, then detach and check that no breakpoint was left in the target.
//!
//! Draining on a 10 ms timer (the programs submit with `BPF_RB_NO_WAKEUP`) costs a few tens of
//! nanoseconds per event instead of a wake-up per event.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use tracer_common::event::{Event, decode};

use super::{
    Counts, ProbeError,
    lifecycle::{self, LifecycleError, Plan},
    verify_all_detached,
};
use crate::{gobin::GoBinary, target::Process};

/// How often the ring buffer is drained.
pub const DRAIN_INTERVAL: Duration = Duration::from_millis(10);

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
#[derive(Debug, Clone)]
pub struct Options {
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Raised by a signal handler to stop.
    pub stop: Arc<AtomicBool>,
}

/// Attaches to `target`, calls `on_event` for every event in ring-buffer order and `on_tick`
/// about every `DRAIN_INTERVAL` with the running totals, until a stop condition; detaches and
/// verifies. `on_attached` runs once the probes are live (e.g. to take a baseline or tell a
/// test to start its workload).
pub fn run(
    target: &Target,
    opts: &Options,
    on_attached: impl FnMut(),
    on_event: impl FnMut(&Event),
    on_tick: impl FnMut(u64, &Counts),
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
    mut on_attached: impl FnMut(),
    mut on_event: impl FnMut(&Event),
    mut on_panic: impl FnMut(&[u8]),
    mut on_tick: impl FnMut(u64, &Counts),
) -> Result<Summary, SessionError> {
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
    let start = Instant::now();
    let attached_ktime_ns = crate::cli::attach::ktime_now();
    on_attached();
    // (events, decode errors, process gone)
    let mut tally = (0u64, 0u64, false);
    let mut drain = |ring: &mut aya::maps::RingBuf<aya::maps::MapData>,
                     tally: &mut (u64, u64, bool)| {
        while let Some(item) = ring.next() {
            let kind = item
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u32::from_le_bytes);
            if tracer_common::panic::PanicKind::is_panic(kind) {
                tally.0 += 1;
                on_panic(&item);
                continue;
            }
            match decode(&item) {
                Ok(e) => {
                    if let Event::ThreadExit(x) = &e
                        && x.group_dead != 0
                    {
                        tally.2 = true;
                    }
                    tally.0 += 1;
                    on_event(&e);
                }
                Err(_) => tally.1 += 1,
            }
        }
    };
    let reason = loop {
        drain(&mut ring, &mut tally);
        if tally.2 || !target.process.is_alive() {
            break StopReason::TargetExited;
        }
        if opts.stop.load(Ordering::Relaxed) {
            break StopReason::Signal;
        }
        if opts.duration.is_some_and(|d| start.elapsed() >= d) {
            break StopReason::Duration;
        }
        if let Ok(c) = set.counts() {
            on_tick(tally.0, &c);
        }
        std::thread::sleep(DRAIN_INTERVAL);
    };
    let stopped_ktime_ns = crate::cli::attach::ktime_now();
    drain(&mut ring, &mut tally);
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
    })
}
