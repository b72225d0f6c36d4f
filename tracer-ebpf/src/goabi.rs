//! The only place that knows Go's register ABI (ABIInternal, Go >= 1.17 on amd64).
//!
//! Integer arguments arrive in RAX, RBX, RCX, RDI, RSI, R8, R9, R10, R11 and the current `g` is
//! in R14 (Go's `src/cmd/compile/abi-internal.md`). Functions that run on the system stack see
//! g0 in R14, so callers must prefer explicit `g` arguments there.

use aya_ebpf::programs::ProbeContext;

/// Integer argument `n` (0-based) of a Go ABIInternal function at its entry.
#[inline(always)]
#[allow(dead_code)]
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
#[allow(dead_code)]
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
