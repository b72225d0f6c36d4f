//! gtrace's eBPF object: registers every program; each probe family lives in `probes/`.
//!
//! Invariant: programs never write to the target. They read registers and user memory, count
//! what they did in per-CPU maps, and (later) emit fixed-size events defined in
//! `tracer-common`.
#![no_std]
#![no_main]

mod goabi;
mod maps;
mod probes;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any program that could reach this; it exists only for rustc.
    loop {}
}

/// The kernel refuses GPL-only helpers (bpf_probe_read_user…) to non-GPL programs.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
