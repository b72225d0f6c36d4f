//! Writing events into the ring buffer: reserve, fill in place, submit without a wake-up.
//!
//! Events are built directly in the reserved slot (the stack-carrying ones are larger than
//! the eBPF stack allows). A full buffer is counted per probe in `DROPS`, never silent.

use aya_ebpf::{
    EbpfContext as _,
    bindings::{BPF_F_USER_STACK, BPF_RB_NO_WAKEUP},
    helpers::{bpf_get_stack, bpf_ktime_get_ns},
    programs::ProbeContext,
};
use tracer_common::{
    event::{EventKind, Header, MAX_STACK},
    probe::ProbeId,
};

use crate::{goabi, maps};

/// The header of an event of `kind` on thread `tid`, stamped now.
#[inline(always)]
pub(crate) fn header(kind: EventKind, tid: u32) -> Header {
    Header {
        kind: kind as u32,
        tid,
        // SAFETY: a helper without preconditions.
        ktime_ns: unsafe { bpf_ktime_get_ns() },
    }
}

/// Submits a small event by value.
#[inline(always)]
pub(crate) fn send<T: 'static>(probe: ProbeId, value: T) {
    match maps::EVENTS.reserve::<T>(0) {
        Some(mut entry) => {
            entry.write(value);
            entry.submit(u64::from(BPF_RB_NO_WAKEUP));
        }
        None => maps::drop(probe),
    }
}

/// Fills `stack` with the user stack of the current task; returns the frame count.
///
/// With `fixup`, the probe site precedes the frame setup, so the kernel's frame-pointer walk
/// skips the direct caller: its return address (at `[rsp]`) is inserted after the first PC.
///
/// # Safety
/// `stack` must point to `MAX_STACK` writable `u64`s (a reserved ring-buffer slot).
#[inline(always)]
pub(crate) unsafe fn user_stack(
    ctx: &ProbeContext,
    stack: *mut [u64; MAX_STACK],
    fixup: bool,
) -> u32 {
    let base = stack.cast::<u64>();
    if !fixup {
        // SAFETY: the caller guarantees `stack` spans MAX_STACK u64s; the kernel zeroes what
        // it does not fill.
        let n = unsafe {
            bpf_get_stack(
                ctx.as_ptr(),
                base.cast(),
                (MAX_STACK * 8) as u32,
                u64::from(BPF_F_USER_STACK),
            )
        };
        return if n > 0 { (n as u32) / 8 } else { 0 };
    }
    // SAFETY: as above, one slot further and one slot shorter.
    let n = unsafe {
        bpf_get_stack(
            ctx.as_ptr(),
            base.add(1).cast(),
            ((MAX_STACK - 1) * 8) as u32,
            u64::from(BPF_F_USER_STACK),
        )
    };
    // SAFETY: a zero-length write is a no-op.
    unsafe { base.write(0) };
    if n <= 0 {
        return 0;
    }
    let ret = goabi::sp(ctx).and_then(goabi::read_u64).unwrap_or(0);
    // SAFETY: slots 0 and 1 are inside the reserved array.
    unsafe {
        base.write(base.add(1).read());
        base.add(1).write(ret);
    }
    (n as u32) / 8 + 1
}
