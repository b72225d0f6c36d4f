//! `runtime.gopark`: the current goroutine parks; its wait reason is argument 2 (RCX).

use aya_ebpf::{macros::uprobe, programs::ProbeContext};
use tracer_common::probe::ProbeId;

use crate::maps;

#[uprobe]
pub fn gopark(_ctx: ProbeContext) -> u32 {
    maps::hit(ProbeId::Gopark);
    0
}
