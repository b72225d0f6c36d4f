//! `runtime.ready(gp, traceskip, next)`: the funnel behind every wake-up (goready, channels,
//! semaphores, timers). It runs on g0 (R14): the wakee is RAX, the waker is `g.m.curg` (0 when
//! the scheduler itself readies, e.g. from timers or netpoll in `findRunnable`).

use aya_ebpf::{bindings::BPF_RB_NO_WAKEUP, macros::uprobe, programs::ProbeContext};
use tracer_common::{
    config::FIXUP_READY,
    event::{EventKind, GoReady},
    probe::ProbeId,
};

use super::emit;
use crate::{goabi, maps};

#[uprobe]
pub fn ready(ctx: ProbeContext) -> u32 {
    maps::hit(ProbeId::Ready);
    if try_ready(&ctx).is_none() {
        maps::error(ProbeId::Ready);
    }
    0
}

#[inline(always)]
fn try_ready(ctx: &ProbeContext) -> Option<()> {
    let (tgid, tid) = maps::current();
    if tgid != maps::target_tgid() {
        return Some(());
    }
    if maps::sampled_out(ProbeId::Ready) {
        return Some(());
    }
    let cfg = maps::config();
    let goid = goabi::goid(&cfg, goabi::arg(ctx, 0)?)?;
    let waker_goid = match goabi::curg(ctx, &cfg)? {
        0 => 0,
        g => goabi::goid(&cfg, g)?,
    };
    let Some(mut entry) = maps::EVENTS.reserve::<GoReady>(0) else {
        maps::drop(ProbeId::Ready);
        return Some(());
    };
    let p = entry.as_mut_ptr();
    // SAFETY: as in gopark: a reserved slot of the right size, written field by field.
    unsafe {
        (&raw mut (*p).header).write(emit::header(EventKind::Ready, tid));
        (&raw mut (*p).goid).write(goid);
        (&raw mut (*p).waker_goid).write(waker_goid);
        (&raw mut (*p).pad).write(0);
        let n = if cfg.stacks != 0 {
            emit::user_stack(ctx, &raw mut (*p).stack, cfg.ret_fixup & FIXUP_READY != 0)
        } else {
            (&raw mut (*p).stack).write_bytes(0, 1);
            0
        };
        (&raw mut (*p).stack_len).write(n);
    }
    entry.submit(u64::from(BPF_RB_NO_WAKEUP));
    Some(())
}
