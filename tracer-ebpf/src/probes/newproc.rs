//! `runtime.newproc1`: a goroutine is being created. Runs on the system stack (g0 in R14).

use aya_ebpf::{macros::uprobe, programs::ProbeContext};
use tracer_common::probe::ProbeId;

use crate::maps;

#[uprobe]
pub fn newproc1(_ctx: ProbeContext) -> u32 {
    // The uprobe is attached to the target's PID only; counting is all doctor needs.
    maps::hit(ProbeId::Newproc1);
    0
}
