//! A synthetic event source for `cargo xtask bench overhead` only, never attached by a
//! capture: each `getppid` system call of the target (tracepoint
//! `syscalls:sys_enter_getppid`) writes a park-shaped record with a 10-frame stack into the
//! ring buffer the Go probes use. A Go program makes millions of these calls a second, far
//! more events than its goroutines can produce through the real probes on 2 cores, so the
//! bench can drive gtrace's delivery path (ring, reader, capture writer) at 1 M events/s.
//! Counted as gopark hits and drops.

use aya_ebpf::{bindings::BPF_RB_NO_WAKEUP, macros::tracepoint, programs::TracePointContext};
use tracer_common::{
    event::{EventKind, GoPark},
    probe::ProbeId,
};

use super::emit;
use crate::maps;

/// Frames per synthetic stack (a channel ping-pong's park has about as many).
const FRAMES: usize = 10;
/// Where the made-up PCs start; 4 distinct stacks, as a ping-pong has.
const PC_BASE: u64 = 0x40_1000;

#[tracepoint]
pub fn bench_park(_ctx: TracePointContext) -> u32 {
    let (tgid, tid) = maps::current();
    if tgid != maps::target_tgid() {
        return 0;
    }
    maps::hit(ProbeId::Gopark);
    let Some(mut entry) = maps::EVENTS.reserve::<GoPark>(0) else {
        maps::drop(ProbeId::Gopark);
        return 0;
    };
    let header = emit::header(EventKind::Park, tid);
    let variant = (header.ktime_ns >> 10) & 3;
    let p = entry.as_mut_ptr();
    // SAFETY: `p` is a reserved, writable slot of size_of::<GoPark>() bytes; fields are
    // written in place with raw pointers (no reference to uninitialised memory), stack slots
    // below FRAMES < MAX_STACK.
    unsafe {
        (&raw mut (*p).header).write(header);
        (&raw mut (*p).goid).write(u64::from(tid));
        (&raw mut (*p).reason).write(7);
        let stack = &raw mut (*p).stack;
        stack.write_bytes(0, 1);
        let base = stack.cast::<u64>();
        for i in 0..FRAMES {
            base.add(i)
                .write(PC_BASE + (variant << 12) + (i as u64) * 0x40);
        }
        (&raw mut (*p).stack_len).write(FRAMES as u32);
    }
    entry.submit(u64::from(BPF_RB_NO_WAKEUP));
    0
}
