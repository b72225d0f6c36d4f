//! `runtime.execute(gp, inheritTime)` (runnable → running), `runtime.goschedImpl(gp, …)`
//! (running → runnable: `Gosched` or preemption) and `runtime.goexit0(gp)` (exit).
//! Both run on g0 and take the user goroutine explicitly in RAX (`goexit0` through `mcall`,
//! which passes the calling g as its argument in every Go version with the register ABI).

use aya_ebpf::{macros::uprobe, programs::ProbeContext};
use tracer_common::{
    event::{EventKind, GoId},
    probe::ProbeId,
};

use super::emit;
use crate::{goabi, maps};

#[uprobe]
pub fn execute(ctx: ProbeContext) -> u32 {
    one_g(&ctx, ProbeId::Execute, EventKind::Execute)
}

#[uprobe]
pub fn gosched(ctx: ProbeContext) -> u32 {
    one_g(&ctx, ProbeId::Gosched, EventKind::Yield)
}

#[uprobe]
pub fn goexit0(ctx: ProbeContext) -> u32 {
    one_g(&ctx, ProbeId::Goexit0, EventKind::Exit)
}

#[inline(always)]
fn one_g(ctx: &ProbeContext, probe: ProbeId, kind: EventKind) -> u32 {
    maps::hit(probe);
    if try_one_g(ctx, probe, kind).is_none() {
        maps::error(probe);
    }
    0
}

#[inline(always)]
fn try_one_g(ctx: &ProbeContext, probe: ProbeId, kind: EventKind) -> Option<()> {
    let (tgid, tid) = maps::current();
    if tgid != maps::target_tgid() {
        return Some(());
    }
    // The governor samples execute/gosched only; exits stay exact (the empty-probe benchmark
    // switches every probe off).
    if maps::sampled_out(probe) {
        return Some(());
    }
    let cfg = maps::config();
    let goid = goabi::goid(&cfg, goabi::arg(ctx, 0)?)?;
    emit::send(
        probe,
        GoId {
            header: emit::header(kind, tid),
            goid,
        },
    );
    Some(())
}
