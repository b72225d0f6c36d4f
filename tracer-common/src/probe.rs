//! Identifiers of the probes gtrace attaches, shared so that counters and events name them
//! the same way on both sides.

/// One attached program. The discriminant indexes the per-CPU `HITS` / `ERRORS` arrays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum ProbeId {
    /// uprobe on `runtime.newproc1`: a goroutine is being created.
    Newproc1 = 0,
    /// uprobe on `runtime.gopark`: a goroutine parks.
    Gopark = 1,
    /// tracepoint `sched:sched_switch` on a thread of the target.
    SchedSwitch = 2,
    /// uprobe right after `CALL runtime.newproc1` in its callers: the new g is in RAX.
    NewprocReturn = 3,
    /// uprobe on `runtime.ready`: a goroutine is made runnable.
    Ready = 4,
    /// uprobe on `runtime.execute`: a goroutine starts running.
    Execute = 5,
    /// uprobe on `runtime.goexit0`: a goroutine exited.
    Goexit0 = 6,
    /// tracepoint `sched:sched_wakeup` of a thread of the target.
    SchedWakeup = 7,
    /// tracepoint `sched:sched_process_exit` of a thread of the target.
    ProcessExit = 8,
    /// uprobe on `runtime.goschedImpl`: a running goroutine yields or is preempted.
    Gosched = 9,
    /// uprobe on `runtime.gopanic`: a panic starts.
    Gopanic = 10,
    /// uprobe on `runtime.gorecover`: `recover()` is called.
    Gorecover = 11,
    /// uprobe on `runtime.recovery`: a recovered panic unwinds.
    Recovery = 12,
    /// uprobe on `runtime.fatalpanic`: an unrecovered panic kills the process.
    Fatalpanic = 13,
    /// uprobe on the indirect call that runs a deferred function while panicking (in
    /// `runtime.gopanic`, and `runtime.deferCallSave` before Go 1.22).
    DeferCall = 14,
    /// uprobe on `runtime.throw` and `runtime.fatal`: a fatal runtime error.
    Throw = 15,
}

impl ProbeId {
    /// Every probe, in discriminant order.
    pub const ALL: [ProbeId; 16] = [
        ProbeId::Newproc1,
        ProbeId::Gopark,
        ProbeId::SchedSwitch,
        ProbeId::NewprocReturn,
        ProbeId::Ready,
        ProbeId::Execute,
        ProbeId::Goexit0,
        ProbeId::SchedWakeup,
        ProbeId::ProcessExit,
        ProbeId::Gosched,
        ProbeId::Gopanic,
        ProbeId::Gorecover,
        ProbeId::Recovery,
        ProbeId::Fatalpanic,
        ProbeId::DeferCall,
        ProbeId::Throw,
    ];
    /// Number of probe ids; the size of the counter arrays.
    pub const COUNT: u32 = Self::ALL.len() as u32;

    /// The name used for the eBPF program and in user-facing output.
    pub const fn name(self) -> &'static str {
        match self {
            ProbeId::Newproc1 => "runtime.newproc1",
            ProbeId::Gopark => "runtime.gopark",
            ProbeId::SchedSwitch => "sched:sched_switch",
            ProbeId::NewprocReturn => "runtime.newproc1 (return site)",
            ProbeId::Ready => "runtime.ready",
            ProbeId::Execute => "runtime.execute",
            ProbeId::Goexit0 => "runtime.goexit0",
            ProbeId::SchedWakeup => "sched:sched_wakeup",
            ProbeId::ProcessExit => "sched:sched_process_exit",
            ProbeId::Gosched => "runtime.goschedImpl",
            ProbeId::Gopanic => "runtime.gopanic",
            ProbeId::Gorecover => "runtime.gorecover",
            ProbeId::Recovery => "runtime.recovery",
            ProbeId::Fatalpanic => "runtime.fatalpanic",
            ProbeId::DeferCall => "deferred call while panicking",
            ProbeId::Throw => "runtime.throw / runtime.fatal",
        }
    }

    /// The eBPF program's function name in `tracer-ebpf`.
    pub const fn program(self) -> &'static str {
        match self {
            ProbeId::Newproc1 => "newproc1",
            ProbeId::Gopark => "gopark",
            ProbeId::SchedSwitch => "sched_switch",
            ProbeId::NewprocReturn => "newproc_ret",
            ProbeId::Ready => "ready",
            ProbeId::Execute => "execute",
            ProbeId::Goexit0 => "goexit0",
            ProbeId::SchedWakeup => "sched_wakeup",
            ProbeId::ProcessExit => "sched_process_exit",
            ProbeId::Gosched => "gosched",
            ProbeId::Gopanic => "gopanic",
            ProbeId::Gorecover => "gorecover",
            ProbeId::Recovery => "recovery",
            ProbeId::Fatalpanic => "fatalpanic",
            ProbeId::DeferCall => "defer_call",
            ProbeId::Throw => "throw",
        }
    }
}

/// Raised when a `u32` read from the kernel is not a known [`ProbeId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownProbeId(pub u32);

impl TryFrom<u32> for ProbeId {
    type Error = UnknownProbeId;

    fn try_from(v: u32) -> Result<Self, Self::Error> {
        Self::ALL
            .iter()
            .copied()
            .find(|p| *p as u32 == v)
            .ok_or(UnknownProbeId(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for p in ProbeId::ALL {
            assert_eq!(ProbeId::try_from(p as u32), Ok(p));
        }
        assert_eq!(
            ProbeId::try_from(ProbeId::COUNT),
            Err(UnknownProbeId(ProbeId::COUNT))
        );
    }
}
