//! Scheduler tracepoints for the target's threads: `sched_switch` (out and in),
//! `sched_wakeup`, `sched_process_exit` (a thread ends; `group_dead` = the process is gone).
//!
//! These fire in the context of whatever task is current, so switch-ins and wake-ups of the
//! target's threads are recognised through `TIDS`, filled when a target thread switches out
//! and emptied when it exits. Field offsets are those of the tracepoint format files
//! (`/sys/kernel/tracing/events/sched/*/format`), stable since long before kernel 5.x.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use tracer_common::{
    event::{EventKind, ProcExit, SchedSwitch, SchedWakeup},
    probe::ProbeId,
};

use super::emit;
use crate::maps;

const SWITCH_PREV_PID: usize = 24;
const SWITCH_PREV_STATE: usize = 32;
const SWITCH_NEXT_PID: usize = 56;
const WAKEUP_PID: usize = 24;
const WAKEUP_TARGET_CPU: usize = 32;
const EXIT_GROUP_DEAD: usize = 32;

#[tracepoint]
pub fn sched_switch(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = maps::current();
    let target = maps::target_tgid();
    // SAFETY: offsets from the tracepoint's format; reads are bounds-checked by the helper.
    let next = unsafe { ctx.read_at::<i32>(SWITCH_NEXT_PID) }.unwrap_or(0) as u32;
    let out = tgid == target;
    // SAFETY: a lookup of a plain u32 key.
    let in_ = !out && unsafe { maps::TIDS.get(next) }.is_some();
    if !out && !in_ {
        return 0;
    }
    maps::hit(ProbeId::SchedSwitch);
    if out && maps::TIDS.insert(tid, 1, 0).is_err() {
        maps::error(ProbeId::SchedSwitch);
    }
    if maps::sampled_out(ProbeId::SchedSwitch) {
        return 0;
    }
    // SAFETY: as above.
    let prev = unsafe { ctx.read_at::<i32>(SWITCH_PREV_PID) }.unwrap_or(0) as u32;
    // SAFETY: as above.
    let prev_state = unsafe { ctx.read_at::<i64>(SWITCH_PREV_STATE) }.unwrap_or(0) as u64;
    emit::send(
        ProbeId::SchedSwitch,
        SchedSwitch {
            header: emit::header(EventKind::Switch, tid),
            prev_tid: prev,
            next_tid: next,
            prev_state,
        },
    );
    0
}

#[tracepoint]
pub fn sched_wakeup(ctx: TracePointContext) -> u32 {
    // SAFETY: as in sched_switch.
    let pid = unsafe { ctx.read_at::<i32>(WAKEUP_PID) }.unwrap_or(0) as u32;
    // SAFETY: a lookup of a plain u32 key.
    if unsafe { maps::TIDS.get(pid) }.is_none() {
        return 0;
    }
    maps::hit(ProbeId::SchedWakeup);
    if maps::sampled_out(ProbeId::SchedWakeup) {
        return 0;
    }
    let (_, tid) = maps::current();
    // SAFETY: as above.
    let cpu = unsafe { ctx.read_at::<i32>(WAKEUP_TARGET_CPU) }.unwrap_or(0) as u32;
    emit::send(
        ProbeId::SchedWakeup,
        SchedWakeup {
            header: emit::header(EventKind::Wakeup, tid),
            wakee_tid: pid,
            target_cpu: cpu,
        },
    );
    0
}

#[tracepoint]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = maps::current();
    if tgid != maps::target_tgid() {
        return 0;
    }
    maps::hit(ProbeId::ProcessExit);
    let _ = maps::TIDS.remove(tid);
    // SAFETY: as in sched_switch.
    let dead = unsafe { ctx.read_at::<u8>(EXIT_GROUP_DEAD) }.unwrap_or(0);
    emit::send(
        ProbeId::ProcessExit,
        ProcExit {
            header: emit::header(EventKind::ThreadExit, tid),
            group_dead: u32::from(dead),
            pad: 0,
        },
    );
    0
}
