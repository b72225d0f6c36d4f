//! `sched:sched_switch`: a CPU switches threads. Counted when a thread of the target is
//! switched out (the current task is the previous one).

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext,
};
use tracer_common::probe::ProbeId;

use crate::maps;

#[tracepoint]
pub fn sched_switch(_ctx: TracePointContext) -> u32 {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if tgid == maps::target_tgid() {
        maps::hit(ProbeId::SchedSwitch);
    }
    0
}
