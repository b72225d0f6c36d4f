//! The panic path: `runtime.gopanic`, `runtime.gorecover`, `runtime.recovery`,
//! `runtime.fatalpanic`. None of them runs unless the target panics or calls `recover()`, so
//! attaching them costs nothing in steady state.
//!
//! - `gopanic(e any)` runs on the panicking goroutine (R14); `e` arrives as an eface in RAX
//!   (type) and RBX (data). Everything userspace renders later is copied here (value bytes,
//!   one string indirection, the chain of panics already in flight, the user stack), since a
//!   fatal panic's process is gone before the record is read.
//! - `gorecover` runs on the goroutine calling `recover()`; its return address names the
//!   recovering function.
//! - `recovery(gp)` runs on g0 with the recovering goroutine in RAX; the frame it resumes is
//!   `_panic.sp` (Go 1.22+) or `gp.sigcode0` (before), which userspace compares with each
//!   panic's SP to know which ones end here.
//! - `fatalpanic(msgs *_panic)` runs on the dying goroutine with the chain in RAX.

use aya_ebpf::{
    Global,
    bindings::BPF_RB_NO_WAKEUP,
    helpers::{bpf_probe_read_user, generated},
    macros::uprobe,
    programs::ProbeContext,
};
use tracer_common::{
    panic::{
        ChainEntry, DeferCall, FLAG_ABORTED, FLAG_GOEXIT, FLAG_RECOVERED, GoRecover, MAX_CHAIN,
        PanicConfig, PanicEnd, PanicKind, PanicStart, STRING_BYTES, VALUE_BYTES,
    },
    probe::ProbeId,
};

use super::emit;
use crate::{goabi, maps};

/// Runtime offsets for the panic programs; set by userspace at load time.
#[unsafe(no_mangle)]
static PANIC_CONFIG: Global<PanicConfig> = Global::new(PanicConfig {
    g_goid: 0,
    g_panic: 0,
    g_parent_goid: 0,
    g_gopc: 0,
    p_arg: 0,
    p_link: 0,
    p_recovered: 0,
    p_aborted: 0,
    p_goexit: 0,
    recovery_sp: 0,
    recovery_sp_in_g: 0,
    pad: 0,
});

#[inline(always)]
fn read_u8(addr: u64) -> Option<u8> {
    // SAFETY: bpf_probe_read_user checks the address and fails cleanly on a fault.
    unsafe { bpf_probe_read_user(addr as *const u8) }.ok()
}

#[inline(always)]
fn at(base: u64, off: u32) -> u64 {
    base.wrapping_add(u64::from(off))
}

/// Copies up to `MAX_CHAIN` entries of the `_panic` list starting at `p` into `out`.
///
/// # Safety
/// `out` must point to `MAX_CHAIN` writable entries (a reserved ring-buffer slot).
#[inline(always)]
unsafe fn walk_chain(cfg: &PanicConfig, mut p: u64, out: *mut [ChainEntry; MAX_CHAIN]) -> u32 {
    let mut n = 0u32;
    for i in 0..MAX_CHAIN {
        let mut e = ChainEntry::default();
        if p != 0 {
            e.type_ptr = goabi::read_u64(at(p, cfg.p_arg)).unwrap_or(0);
            e.data_ptr = goabi::read_u64(at(p, cfg.p_arg + 8)).unwrap_or(0);
            if read_u8(at(p, cfg.p_recovered)).unwrap_or(0) != 0 {
                e.flags |= FLAG_RECOVERED;
            }
            if cfg.p_aborted != 0 && read_u8(at(p, cfg.p_aborted)).unwrap_or(0) != 0 {
                e.flags |= FLAG_ABORTED;
            }
            if read_u8(at(p, cfg.p_goexit)).unwrap_or(0) != 0 {
                e.flags |= FLAG_GOEXIT;
            }
            n += 1;
            p = goabi::read_u64(at(p, cfg.p_link)).unwrap_or(0);
        }
        // SAFETY: `i < MAX_CHAIN`, inside the caller's array.
        unsafe { (&raw mut (*out)[i]).write(e) };
    }
    n
}

#[uprobe]
pub fn gopanic(ctx: ProbeContext) -> u32 {
    maps::hit(ProbeId::Gopanic);
    if try_gopanic(&ctx).is_none() {
        maps::error(ProbeId::Gopanic);
    }
    0
}

#[inline(always)]
fn try_gopanic(ctx: &ProbeContext) -> Option<()> {
    let (tgid, tid) = maps::current();
    if tgid != maps::target_tgid() {
        return Some(());
    }
    let cfg = PANIC_CONFIG.load();
    let g = goabi::current_g(ctx)?;
    let goid = goabi::read_u64(at(g, cfg.g_goid))?;
    let type_ptr = goabi::arg(ctx, 0)?;
    let data_ptr = goabi::arg(ctx, 1)?;
    let Some(mut entry) = maps::EVENTS.reserve::<PanicStart>(0) else {
        maps::drop(ProbeId::Gopanic);
        return Some(());
    };
    let p = entry.as_mut_ptr();
    // SAFETY: `p` is a reserved, writable slot of size_of::<PanicStart>() bytes; every field
    // is written in place through raw pointers before submission.
    unsafe {
        let mut h = emit::header(tracer_common::event::EventKind::Create, tid);
        h.kind = PanicKind::Start as u32;
        (&raw mut (*p).header).write(h);
        (&raw mut (*p).goid).write(goid);
        let parent = if cfg.g_parent_goid != 0 {
            goabi::read_u64(at(g, cfg.g_parent_goid)).unwrap_or(0)
        } else {
            0
        };
        (&raw mut (*p).parent_goid).write(parent);
        (&raw mut (*p).gopc).write(goabi::read_u64(at(g, cfg.g_gopc)).unwrap_or(0));
        let sp = goabi::sp(ctx).unwrap_or(0);
        (&raw mut (*p).sp).write(sp);
        // The site precedes any SP change (entry, or the instruction after the stack check).
        (&raw mut (*p).ret_pc).write(goabi::read_u64(sp).unwrap_or(0));
        (&raw mut (*p).type_ptr).write(type_ptr);
        (&raw mut (*p).data_ptr).write(data_ptr);
        let head = goabi::read_u64(at(g, cfg.g_panic)).unwrap_or(0);
        let n = walk_chain(&cfg, head, &raw mut (*p).chain);
        (&raw mut (*p).chain_len).write(n);

        // The value bytes: 64, else 16 (a value near the end of a mapping), else nothing.
        let value = (&raw mut (*p).value).cast::<u8>();
        value.write_bytes(0, VALUE_BYTES);
        let mut value_len = 0u32;
        if data_ptr != 0 {
            for len in [VALUE_BYTES as u32, 16] {
                let r = generated::bpf_probe_read_user(value.cast(), len, data_ptr as *const _);
                if r == 0 {
                    value_len = len;
                    break;
                }
            }
        }
        (&raw mut (*p).value_len).write(value_len);

        // One string indirection: the first 16 value bytes as a Go string header.
        let string = (&raw mut (*p).string).cast::<u8>();
        let mut string_len = u32::MAX;
        let mut full = 0u64;
        if value_len >= 16 {
            let sptr = value.cast::<u64>().read_unaligned();
            full = value.add(8).cast::<u64>().read_unaligned();
            if sptr != 0 && full <= (1 << 30) {
                let mut n = full as u32;
                if n > STRING_BYTES as u32 {
                    n = STRING_BYTES as u32;
                }
                if generated::bpf_probe_read_user(string.cast(), n, sptr as *const _) == 0 {
                    string_len = n;
                }
            } else if full == 0 {
                string_len = 0;
            }
        }
        (&raw mut (*p).string_len).write(string_len);
        (&raw mut (*p).string_full_len).write(full);
        let frames = emit::user_stack(ctx, &raw mut (*p).stack, true);
        (&raw mut (*p).stack_len).write(frames);
    }
    entry.submit(u64::from(BPF_RB_NO_WAKEUP));
    Some(())
}

#[uprobe]
pub fn throw(ctx: ProbeContext) -> u32 {
    maps::hit(ProbeId::Throw);
    if try_throw(&ctx).is_none() {
        maps::error(ProbeId::Throw);
    }
    0
}

/// `runtime.throw(s string)` / `runtime.fatal(s string)`: the message is RAX (pointer), RBX
/// (length). Sent as a [`PanicStart`] without a type: the string is the message, the first
/// 16 value bytes its header (for userspace to read it from the file if the page was absent).
#[inline(always)]
fn try_throw(ctx: &ProbeContext) -> Option<()> {
    let (tgid, tid) = maps::current();
    if tgid != maps::target_tgid() {
        return Some(());
    }
    let cfg = PANIC_CONFIG.load();
    let g = goabi::current_g(ctx)?;
    // On the system stack this is g0 (goid 0): the runtime itself threw.
    let goid = goabi::read_u64(at(g, cfg.g_goid)).unwrap_or(0);
    let sptr = goabi::arg(ctx, 0)?;
    let slen = goabi::arg(ctx, 1)?;
    let Some(mut entry) = maps::EVENTS.reserve::<PanicStart>(0) else {
        maps::drop(ProbeId::Throw);
        return Some(());
    };
    let p = entry.as_mut_ptr();
    // SAFETY: a reserved, writable slot of size_of::<PanicStart>() bytes; every field is
    // written in place before submission.
    unsafe {
        let mut h = emit::header(tracer_common::event::EventKind::Create, tid);
        h.kind = PanicKind::Throw as u32;
        (&raw mut (*p).header).write(h);
        (&raw mut (*p).goid).write(goid);
        (&raw mut (*p).parent_goid).write(0);
        (&raw mut (*p).gopc).write(0);
        let sp = goabi::sp(ctx).unwrap_or(0);
        (&raw mut (*p).sp).write(sp);
        (&raw mut (*p).ret_pc).write(goabi::read_u64(sp).unwrap_or(0));
        (&raw mut (*p).type_ptr).write(0);
        (&raw mut (*p).data_ptr).write(0);
        (&raw mut (*p).chain_len).write(0);
        (&raw mut (*p).chain).write_bytes(0, 1);
        let value = (&raw mut (*p).value).cast::<u8>();
        value.write_bytes(0, VALUE_BYTES);
        value.cast::<u64>().write_unaligned(sptr);
        value.add(8).cast::<u64>().write_unaligned(slen);
        (&raw mut (*p).value_len).write(16);
        let string = (&raw mut (*p).string).cast::<u8>();
        let mut n = if slen > STRING_BYTES as u64 {
            STRING_BYTES as u32
        } else {
            slen as u32
        };
        if n > STRING_BYTES as u32 {
            n = STRING_BYTES as u32;
        }
        let ok =
            sptr != 0 && generated::bpf_probe_read_user(string.cast(), n, sptr as *const _) == 0;
        (&raw mut (*p).string_len).write(if ok { n } else { u32::MAX });
        (&raw mut (*p).string_full_len).write(slen);
        let frames = emit::user_stack(ctx, &raw mut (*p).stack, true);
        (&raw mut (*p).stack_len).write(frames);
    }
    // The process is about to die: wake the reader.
    entry.submit(0);
    Some(())
}

#[uprobe]
pub fn gorecover(ctx: ProbeContext) -> u32 {
    maps::hit(ProbeId::Gorecover);
    if try_gorecover(&ctx).is_none() {
        maps::error(ProbeId::Gorecover);
    }
    0
}

#[inline(always)]
fn try_gorecover(ctx: &ProbeContext) -> Option<()> {
    let (tgid, tid) = maps::current();
    if tgid != maps::target_tgid() {
        return Some(());
    }
    let cfg = PANIC_CONFIG.load();
    let g = goabi::current_g(ctx)?;
    let goid = goabi::read_u64(at(g, cfg.g_goid))?;
    let p = goabi::read_u64(at(g, cfg.g_panic)).unwrap_or(0);
    let live = p != 0
        && read_u8(at(p, cfg.p_recovered)).unwrap_or(1) == 0
        && read_u8(at(p, cfg.p_goexit)).unwrap_or(1) == 0;
    // The probe site precedes any change of SP (a frameless entry, or `push rbp`), so the
    // return address is at [rsp].
    let caller_pc = goabi::read_u64(goabi::sp(ctx).unwrap_or(0)).unwrap_or(0);
    let mut h = emit::header(tracer_common::event::EventKind::Create, tid);
    h.kind = PanicKind::Recover as u32;
    emit::send(
        ProbeId::Gorecover,
        GoRecover {
            header: h,
            goid,
            caller_pc,
            live: u32::from(live),
            pad: 0,
        },
    );
    Some(())
}

#[uprobe]
pub fn defer_call(ctx: ProbeContext) -> u32 {
    maps::hit(ProbeId::DeferCall);
    if try_defer_call(&ctx).is_none() {
        maps::error(ProbeId::DeferCall);
    }
    0
}

/// At `CALL reg` of a deferred closure the closure context (`*funcval`, whose first word is
/// the code pointer) is in RDX, per Go's ABIInternal.
#[inline(always)]
fn try_defer_call(ctx: &ProbeContext) -> Option<()> {
    let (tgid, tid) = maps::current();
    if tgid != maps::target_tgid() {
        return Some(());
    }
    let cfg = PANIC_CONFIG.load();
    let g = goabi::current_g(ctx)?;
    let goid = goabi::read_u64(at(g, cfg.g_goid))?;
    let closure = goabi::closure_context(ctx)?;
    let fn_pc = goabi::read_u64(closure).unwrap_or(0);
    let mut h = emit::header(tracer_common::event::EventKind::Create, tid);
    h.kind = PanicKind::Defer as u32;
    emit::send(
        ProbeId::DeferCall,
        DeferCall {
            header: h,
            goid,
            fn_pc,
            closure,
        },
    );
    Some(())
}

#[uprobe]
pub fn recovery(ctx: ProbeContext) -> u32 {
    maps::hit(ProbeId::Recovery);
    if try_end(&ctx, PanicKind::Recovery).is_none() {
        maps::error(ProbeId::Recovery);
    }
    0
}

#[uprobe]
pub fn fatalpanic(ctx: ProbeContext) -> u32 {
    maps::hit(ProbeId::Fatalpanic);
    if try_end(&ctx, PanicKind::Fatal).is_none() {
        maps::error(ProbeId::Fatalpanic);
    }
    0
}

#[inline(always)]
fn try_end(ctx: &ProbeContext, kind: PanicKind) -> Option<()> {
    let (tgid, tid) = maps::current();
    if tgid != maps::target_tgid() {
        return Some(());
    }
    let cfg = PANIC_CONFIG.load();
    let (g, head, sp, probe) = if kind == PanicKind::Recovery {
        // recovery(gp) runs on g0: the goroutine is the argument.
        let gp = goabi::arg(ctx, 0)?;
        let head = goabi::read_u64(at(gp, cfg.g_panic)).unwrap_or(0);
        let sp = if cfg.recovery_sp_in_g != 0 {
            goabi::read_u64(at(gp, cfg.recovery_sp)).unwrap_or(0)
        } else if head != 0 {
            goabi::read_u64(at(head, cfg.recovery_sp)).unwrap_or(0)
        } else {
            0
        };
        (gp, head, sp, ProbeId::Recovery)
    } else {
        // fatalpanic(msgs) runs on the dying goroutine; msgs is its chain.
        let g = goabi::current_g(ctx)?;
        (g, goabi::arg(ctx, 0)?, 0, ProbeId::Fatalpanic)
    };
    let goid = goabi::read_u64(at(g, cfg.g_goid))?;
    let Some(mut entry) = maps::EVENTS.reserve::<PanicEnd>(0) else {
        maps::drop(probe);
        return Some(());
    };
    let p = entry.as_mut_ptr();
    // SAFETY: a reserved, writable slot of size_of::<PanicEnd>() bytes, written in place.
    unsafe {
        let mut h = emit::header(tracer_common::event::EventKind::Create, tid);
        h.kind = kind as u32;
        (&raw mut (*p).header).write(h);
        (&raw mut (*p).goid).write(goid);
        (&raw mut (*p).sp).write(sp);
        (&raw mut (*p).pad).write(0);
        let n = walk_chain(&cfg, head, &raw mut (*p).chain);
        (&raw mut (*p).chain_len).write(n);
    }
    // A fatal panic: wake the reader now, the process is about to exit.
    let flags = if kind == PanicKind::Fatal {
        0
    } else {
        u64::from(BPF_RB_NO_WAKEUP)
    };
    entry.submit(flags);
    Some(())
}
