//! The only place that knows Go's register ABI (ABIInternal, Go >= 1.17 on amd64) and how to
//! read runtime structures.
//!
//! Integer arguments arrive in RAX, RBX, RCX, RDI, RSI, R8, R9, R10, R11 and the current `g` is
//! in R14 (Go's `src/cmd/compile/abi-internal.md`). Functions that run on the system stack see
//! g0 in R14, so callers must prefer explicit `g` arguments there, or `g.m.curg`.

use aya_ebpf::{helpers::bpf_probe_read_user, programs::ProbeContext};
use tracer_common::config::Config;

/// Integer argument `n` (0-based) of a Go ABIInternal function at its entry (or the result
/// `n` right after a call returns).
#[inline(always)]
pub(crate) fn arg(ctx: &ProbeContext, n: usize) -> Option<u64> {
    // SAFETY: `ctx.regs` is the pt_regs the kernel passed to this uprobe program; reading
    // context fields directly is what the verifier expects.
    let regs = unsafe { &*ctx.regs };
    #[cfg(bpf_target_arch = "x86_64")]
    {
        Some(match n {
            0 => regs.rax,
            1 => regs.rbx,
            2 => regs.rcx,
            3 => regs.rdi,
            4 => regs.rsi,
            5 => regs.r8,
            6 => regs.r9,
            7 => regs.r10,
            8 => regs.r11,
            _ => return None,
        })
    }
    #[cfg(not(bpf_target_arch = "x86_64"))]
    {
        let _ = (regs, n);
        None
    }
}

/// The `g` register (R14 on amd64): the running goroutine in ABIInternal code.
#[inline(always)]
pub(crate) fn current_g(ctx: &ProbeContext) -> Option<u64> {
    // SAFETY: as in `arg`.
    let regs = unsafe { &*ctx.regs };
    #[cfg(bpf_target_arch = "x86_64")]
    {
        Some(regs.r14)
    }
    #[cfg(not(bpf_target_arch = "x86_64"))]
    {
        let _ = regs;
        None
    }
}

/// The stack pointer.
#[inline(always)]
pub(crate) fn sp(ctx: &ProbeContext) -> Option<u64> {
    // SAFETY: as in `arg`.
    let regs = unsafe { &*ctx.regs };
    #[cfg(bpf_target_arch = "x86_64")]
    {
        Some(regs.rsp)
    }
    #[cfg(not(bpf_target_arch = "x86_64"))]
    {
        let _ = regs;
        None
    }
}

/// The instruction pointer and the frame pointer (RBP).
#[inline(always)]
pub(crate) fn ip_fp(ctx: &ProbeContext) -> Option<(u64, u64)> {
    // SAFETY: as in `arg`.
    let regs = unsafe { &*ctx.regs };
    #[cfg(bpf_target_arch = "x86_64")]
    {
        Some((regs.rip, regs.rbp))
    }
    #[cfg(not(bpf_target_arch = "x86_64"))]
    {
        let _ = regs;
        None
    }
}

/// The closure context register (RDX on amd64): the `*funcval` of a closure being called, at
/// a `CALL reg` of a function value.
#[inline(always)]
pub(crate) fn closure_context(ctx: &ProbeContext) -> Option<u64> {
    // SAFETY: as in `arg`.
    let regs = unsafe { &*ctx.regs };
    #[cfg(bpf_target_arch = "x86_64")]
    {
        Some(regs.rdx)
    }
    #[cfg(not(bpf_target_arch = "x86_64"))]
    {
        let _ = regs;
        None
    }
}

/// Reads a `u64` of the target at `addr`.
#[inline(always)]
pub(crate) fn read_u64(addr: u64) -> Option<u64> {
    if addr == 0 {
        return None;
    }
    // SAFETY: bpf_probe_read_user checks the address and fails cleanly on a fault.
    unsafe { bpf_probe_read_user(addr as *const u64) }.ok()
}

/// `gp.goid`.
#[inline(always)]
pub(crate) fn goid(cfg: &Config, gp: u64) -> Option<u64> {
    read_u64(gp.checked_add(u64::from(cfg.g_goid))?)
}

/// The user goroutine running on the current thread: `g.m.curg` for `g` in R14 (that is `g`
/// itself on a user stack, the interrupted goroutine on the system stack). `Some(0)` when the
/// M runs no user goroutine (the scheduler itself).
#[inline(always)]
pub(crate) fn curg(ctx: &ProbeContext, cfg: &Config) -> Option<u64> {
    let g = current_g(ctx)?;
    let m = read_u64(g.checked_add(u64::from(cfg.g_m))?)?;
    read_u64(m.checked_add(u64::from(cfg.m_curg))?)
}
