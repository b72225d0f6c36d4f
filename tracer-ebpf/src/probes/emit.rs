//! Writing events into the ring buffer: reserve, fill in place, submit without a wake-up.
//!
//! Events are built directly in the reserved slot (the stack-carrying ones are larger than
//! the eBPF stack allows). A full buffer is counted per probe in `DROPS`, never silent.

use aya_ebpf::{
    bindings::BPF_RB_NO_WAKEUP,
    helpers::{bpf_ktime_get_ns, bpf_probe_read_user},
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

/// Fills `stack` with the user stack of the current task (by frame pointers, as the kernel's
/// `perf_callchain_user` walks it, but with one 16-byte read per frame: it costs about half
/// of `bpf_get_stack`'s walk here); returns the frame count. The slots after it are zero.
///
/// With `fixup`, the probe site precedes the frame setup (RBP is still the caller's frame),
/// so the direct caller's return address is read at `[rsp]`.
///
/// # Safety
/// `stack` must point to `MAX_STACK` writable `u64`s (a reserved ring-buffer slot).
#[inline(always)]
pub(crate) unsafe fn user_stack(
    ctx: &ProbeContext,
    stack: *mut [u64; MAX_STACK],
    fixup: bool,
) -> u32 {
    // SAFETY: the caller guarantees `stack` spans MAX_STACK u64s.
    unsafe { stack.write_bytes(0, 1) };
    let base = stack.cast::<u64>();
    let Some((ip, mut fp)) = goabi::ip_fp(ctx) else {
        return 0;
    };
    // SAFETY: slot 0 is inside the array.
    unsafe { base.write(ip) };
    let mut n = 1usize;
    if fixup {
        let ret = goabi::sp(ctx).and_then(goabi::read_u64).unwrap_or(0);
        // SAFETY: slot 1 is inside the array.
        unsafe { base.add(1).write(ret) };
        n = 2;
    }
    for _ in 0..MAX_STACK {
        if n >= MAX_STACK || fp == 0 {
            break;
        }
        // SAFETY: bpf_probe_read_user checks the address and fails cleanly on a fault.
        let Ok(frame) = (unsafe { bpf_probe_read_user(fp as *const [u64; 2]) }) else {
            break;
        };
        if frame[1] == 0 {
            break;
        }
        // SAFETY: n < MAX_STACK, checked above.
        unsafe { base.add(n).write(frame[1]) };
        n += 1;
        fp = frame[0];
    }
    n as u32
}
