//! `runtime.gopark(unlockf, lock, reason, …)`: the current goroutine (R14, a user stack)
//! parks; its wait reason is the third argument (RCX, a `uint8`). Its user stack is taken
//! here, at the probe site after the stack-bound check (`push rbp`), where the kernel's
//! frame-pointer walk still includes gopark's caller.

use aya_ebpf::{bindings::BPF_RB_NO_WAKEUP, macros::uprobe, programs::ProbeContext};
use tracer_common::{
    config::FIXUP_GOPARK,
    event::{EventKind, GoPark},
    probe::ProbeId,
};

use super::emit;
use crate::{goabi, maps};

#[uprobe]
pub fn gopark(ctx: ProbeContext) -> u32 {
    maps::hit(ProbeId::Gopark);
    if try_gopark(&ctx).is_none() {
        maps::error(ProbeId::Gopark);
    }
    0
}

#[inline(always)]
fn try_gopark(ctx: &ProbeContext) -> Option<()> {
    let (tgid, tid) = maps::current();
    if tgid != maps::target_tgid() {
        return Some(());
    }
    if maps::sampled_out(ProbeId::Gopark) {
        return Some(());
    }
    let cfg = maps::config();
    let goid = goabi::goid(&cfg, goabi::current_g(ctx)?)?;
    let reason = (goabi::arg(ctx, 2)? & 0xff) as u32;
    let Some(mut entry) = maps::EVENTS.reserve::<GoPark>(0) else {
        maps::drop(ProbeId::Gopark);
        return Some(());
    };
    let p = entry.as_mut_ptr();
    // SAFETY: `p` is a reserved, writable slot of size_of::<GoPark>() bytes; fields are
    // written in place with raw pointers (no reference to uninitialised memory).
    unsafe {
        (&raw mut (*p).header).write(emit::header(EventKind::Park, tid));
        (&raw mut (*p).goid).write(goid);
        (&raw mut (*p).reason).write(reason);
        let n = if cfg.stacks != 0 {
            emit::user_stack(ctx, &raw mut (*p).stack, cfg.ret_fixup & FIXUP_GOPARK != 0)
        } else {
            (&raw mut (*p).stack).write_bytes(0, 1);
            0
        };
        (&raw mut (*p).stack_len).write(n);
    }
    entry.submit(u64::from(BPF_RB_NO_WAKEUP));
    Some(())
}
