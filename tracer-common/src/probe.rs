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
    /// uprobe on `runtime.injectglist`: goroutines made runnable in a batch (netpoll).
    Injectglist = 16,
    /// uprobe on `runtime.reentersyscall`: the current goroutine enters a system call.
    Reentersyscall = 17,
    /// uprobe on `runtime.entersyscallblock`: enters a system call known to block.
    Entersyscallblock = 18,
    /// uprobe on `runtime.exitsyscall`: the current goroutine leaves a system call.
    Exitsyscall = 19,
    /// uprobe on `runtime.exitsyscall0` (Go ≤ 1.25) / `runtime.exitsyscallNoP` (1.26+): a
    /// goroutine back from a system call found no P and waits on the run queue.
    ExitsyscallNoP = 20,
    /// uprobe on `runtime.preemptPark`: a goroutine is suspended for a GC stack scan.
    PreemptPark = 21,
    /// uprobe on `runtime.goyield_m`: a goroutine yields its P to the goroutine it woke.
    Goyield = 22,
    /// uprobe on `runtime.stopTheWorldWithSema`: a stop-the-world begins.
    StopTheWorld = 23,
    /// uprobe on `runtime.startTheWorldWithSema`: a stop-the-world ends.
    StartTheWorld = 24,
    /// uprobe on `runtime.gcStart`: a GC cycle may start.
    GcStart = 25,
    /// uprobe on `runtime.gcMarkTermination`: a GC cycle's mark phase ends.
    GcMarkTermination = 26,
    /// uprobe on `runtime.gcAssistAlloc`: an allocating goroutine assists the GC.
    GcAssistAlloc = 27,
    /// uprobes on the `RET` instructions of `runtime.gcAssistAlloc`: the assist is over.
    GcAssistDone = 28,
}

impl ProbeId {
    /// Every probe, in discriminant order.
    pub const ALL: [ProbeId; 29] = [
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
        ProbeId::Injectglist,
        ProbeId::Reentersyscall,
        ProbeId::Entersyscallblock,
        ProbeId::Exitsyscall,
        ProbeId::ExitsyscallNoP,
        ProbeId::PreemptPark,
        ProbeId::Goyield,
        ProbeId::StopTheWorld,
        ProbeId::StartTheWorld,
        ProbeId::GcStart,
        ProbeId::GcMarkTermination,
        ProbeId::GcAssistAlloc,
        ProbeId::GcAssistDone,
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
            ProbeId::Injectglist => "runtime.injectglist",
            ProbeId::Reentersyscall => "runtime.reentersyscall",
            ProbeId::Entersyscallblock => "runtime.entersyscallblock",
            ProbeId::Exitsyscall => "runtime.exitsyscall",
            ProbeId::ExitsyscallNoP => "runtime.exitsyscall0 / runtime.exitsyscallNoP",
            ProbeId::PreemptPark => "runtime.preemptPark",
            ProbeId::Goyield => "runtime.goyield_m",
            ProbeId::StopTheWorld => "runtime.stopTheWorldWithSema",
            ProbeId::StartTheWorld => "runtime.startTheWorldWithSema",
            ProbeId::GcStart => "runtime.gcStart",
            ProbeId::GcMarkTermination => "runtime.gcMarkTermination",
            ProbeId::GcAssistAlloc => "runtime.gcAssistAlloc",
            ProbeId::GcAssistDone => "runtime.gcAssistAlloc (return sites)",
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
            ProbeId::Injectglist => "injectglist",
            ProbeId::Reentersyscall => "reentersyscall",
            ProbeId::Entersyscallblock => "entersyscallblock",
            ProbeId::Exitsyscall => "exitsyscall",
            ProbeId::ExitsyscallNoP => "exitsyscall_nop",
            ProbeId::PreemptPark => "preempt_park",
            ProbeId::Goyield => "goyield",
            ProbeId::StopTheWorld => "stop_the_world",
            ProbeId::StartTheWorld => "start_the_world",
            ProbeId::GcStart => "gc_start",
            ProbeId::GcMarkTermination => "gc_mark_termination",
            ProbeId::GcAssistAlloc => "gc_assist",
            ProbeId::GcAssistDone => "gc_assist_done",
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
