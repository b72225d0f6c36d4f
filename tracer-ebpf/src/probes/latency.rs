//! The scheduler-latency probes of `gtrace latency` (one small [`GoArg`] event each): system
//! calls, batch wake-ups by netpoll, GC stack-scan suspensions, stop-the-world windows, GC
//! cycle boundaries and mark assists. Entry probes only (never return probes on Go code); the
//! end of an assist is seen at the `RET` instructions of `gcAssistAlloc`.
//!
//! Which goroutine each one is about (verified in the runtime source of Go 1.19 and 1.21–1.27):
//! - `reentersyscall`, `entersyscallblock`, `exitsyscall` run on the user goroutine's stack
//!   (`//go:nosplit`): R14 is that goroutine.
//! - `exitsyscall0` / `exitsyscallNoP`, `preemptPark` run on g0 (`mcall`) with the goroutine
//!   in RAX.
//! - `injectglist(glist *gList)`: RAX points to the list; its head (`guintptr`, offset 0 in
//!   every version) links through `g.schedlink`.
//! - `stopTheWorldWithSema` / `startTheWorldWithSema`, `gcStart`, `gcMarkTermination` may run
//!   on g0 (`systemstack`): the goroutine is `g.m.curg`. The STW reason is the first argument
//!   (AL, `stwReason` is a `uint8`) since Go 1.21.
//! - `gcAssistAlloc(gp)`: RAX is the assisting goroutine; at its `RET`s, R14 is.

use aya_ebpf::{macros::uprobe, programs::ProbeContext};
use tracer_common::{
    event::{EventKind, GoArg, STW_REASON_NONE, SYSCALL_BLOCKING},
    probe::ProbeId,
};

use super::emit;
use crate::{goabi, maps};

/// Goroutines reported per `injectglist` call; longer lists are counted as errors.
const MAX_INJECT: u32 = 64;

/// Where the goroutine of an event comes from.
#[derive(Clone, Copy)]
enum Who {
    /// R14: the probe runs on the goroutine's own stack.
    Current,
    /// RAX: the first argument is the `*g`.
    Arg0,
    /// `R14.m.curg`: the probe may run on g0 (0 when the M runs no goroutine).
    Curg,
}

#[inline(always)]
fn goid_of(ctx: &ProbeContext, who: Who) -> Option<u64> {
    let cfg = maps::config();
    let gp = match who {
        Who::Current => goabi::current_g(ctx)?,
        Who::Arg0 => goabi::arg(ctx, 0)?,
        Who::Curg => goabi::curg(ctx, &cfg)?,
    };
    if gp == 0 {
        return Some(0);
    }
    goabi::goid(&cfg, gp)
}

#[inline(always)]
fn one(ctx: &ProbeContext, probe: ProbeId, kind: EventKind, who: Who, arg: u32) -> u32 {
    maps::hit(probe);
    let (tgid, tid) = maps::current();
    // Only the probes in the governor's hot list are ever switched off (syscalls, goyield).
    if tgid != maps::target_tgid() || maps::sampled_out(probe) {
        return 0;
    }
    match goid_of(ctx, who) {
        Some(goid) => emit::send(
            probe,
            GoArg {
                header: emit::header(kind, tid),
                goid,
                arg,
                pad: 0,
            },
        ),
        None => maps::error(probe),
    }
    0
}

#[uprobe]
pub fn reentersyscall(ctx: ProbeContext) -> u32 {
    one(
        &ctx,
        ProbeId::Reentersyscall,
        EventKind::Syscall,
        Who::Current,
        0,
    )
}

#[uprobe]
pub fn entersyscallblock(ctx: ProbeContext) -> u32 {
    one(
        &ctx,
        ProbeId::Entersyscallblock,
        EventKind::Syscall,
        Who::Current,
        SYSCALL_BLOCKING,
    )
}

#[uprobe]
pub fn exitsyscall(ctx: ProbeContext) -> u32 {
    one(
        &ctx,
        ProbeId::Exitsyscall,
        EventKind::SyscallExit,
        Who::Current,
        0,
    )
}

#[uprobe]
pub fn exitsyscall_nop(ctx: ProbeContext) -> u32 {
    one(
        &ctx,
        ProbeId::ExitsyscallNoP,
        EventKind::SyscallNoP,
        Who::Arg0,
        0,
    )
}

#[uprobe]
pub fn preempt_park(ctx: ProbeContext) -> u32 {
    one(
        &ctx,
        ProbeId::PreemptPark,
        EventKind::Suspended,
        Who::Arg0,
        0,
    )
}

#[uprobe]
pub fn stop_the_world(ctx: ProbeContext) -> u32 {
    let reason = if maps::config().stw_reason_arg != 0 {
        goabi::arg(&ctx, 0).map_or(STW_REASON_NONE, |r| (r & 0xff) as u32)
    } else {
        STW_REASON_NONE
    };
    one(
        &ctx,
        ProbeId::StopTheWorld,
        EventKind::StwStart,
        Who::Curg,
        reason,
    )
}

#[uprobe]
pub fn start_the_world(ctx: ProbeContext) -> u32 {
    one(
        &ctx,
        ProbeId::StartTheWorld,
        EventKind::StwDone,
        Who::Curg,
        0,
    )
}

#[uprobe]
pub fn gc_start(ctx: ProbeContext) -> u32 {
    one(&ctx, ProbeId::GcStart, EventKind::GcStart, Who::Curg, 0)
}

#[uprobe]
pub fn gc_mark_termination(ctx: ProbeContext) -> u32 {
    one(
        &ctx,
        ProbeId::GcMarkTermination,
        EventKind::GcMarkTerm,
        Who::Curg,
        0,
    )
}

#[uprobe]
pub fn gc_assist(ctx: ProbeContext) -> u32 {
    one(
        &ctx,
        ProbeId::GcAssistAlloc,
        EventKind::AssistStart,
        Who::Arg0,
        0,
    )
}

#[uprobe]
pub fn gc_assist_done(ctx: ProbeContext) -> u32 {
    one(
        &ctx,
        ProbeId::GcAssistDone,
        EventKind::AssistDone,
        Who::Current,
        0,
    )
}

#[uprobe]
pub fn injectglist(ctx: ProbeContext) -> u32 {
    maps::hit(ProbeId::Injectglist);
    let (tgid, tid) = maps::current();
    if tgid != maps::target_tgid() || maps::sampled_out(ProbeId::Injectglist) {
        return 0;
    }
    if try_injectglist(&ctx, tid).is_none() {
        maps::error(ProbeId::Injectglist);
    }
    0
}

#[inline(always)]
fn try_injectglist(ctx: &ProbeContext, tid: u32) -> Option<()> {
    let cfg = maps::config();
    let mut gp = goabi::read_u64(goabi::arg(ctx, 0)?)?;
    let mut n = 0;
    while gp != 0 && n < MAX_INJECT {
        let goid = goabi::goid(&cfg, gp)?;
        emit::send(
            ProbeId::Injectglist,
            GoArg {
                header: emit::header(EventKind::Injected, tid),
                goid,
                arg: 0,
                pad: 0,
            },
        );
        gp = goabi::read_u64(gp.checked_add(u64::from(cfg.g_schedlink))?)?;
        n += 1;
    }
    // A longer list: the rest is not reported (their parks end at `execute` instead).
    if gp != 0 { None } else { Some(()) }
}
