//! Maps and load-time globals shared by every probe.
//!
//! Everything is bounded: per-CPU counter arrays sized by `ProbeId::COUNT`, one ring buffer,
//! and a fixed-size set of the target's thread ids for the scheduler tracepoints.

use aya_ebpf::{
    Global,
    helpers::bpf_get_current_pid_tgid,
    macros::map,
    maps::{Array, HashMap, PerCpuArray, RingBuf},
};
use tracer_common::{config::Config, counters::CONTROL_EMIT, probe::ProbeId};

/// Hits per probe, per CPU (summed in userspace). Indexed by `ProbeId as u32`.
#[map(name = "HITS")]
pub(crate) static HITS: PerCpuArray<u64> = PerCpuArray::with_max_entries(ProbeId::COUNT, 0);

/// Failures per probe, per CPU (e.g. a user-memory read that faulted).
#[map(name = "ERRORS")]
pub(crate) static ERRORS: PerCpuArray<u64> = PerCpuArray::with_max_entries(ProbeId::COUNT, 0);

/// Events lost per probe, per CPU, because the ring buffer was full.
#[map(name = "DROPS")]
pub(crate) static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(ProbeId::COUNT, 0);

/// Per-probe switch written by userspace at run time (`tracer_common::counters::CONTROL_MAP`):
/// `CONTROL_EMIT` (0, the initial value) or `CONTROL_SAMPLED_OUT`. The overhead governor
/// samples the hot probes with it; a plain array (not per-CPU) so one write reaches every CPU.
#[map(name = "CONTROL")]
pub(crate) static CONTROL: Array<u32> = Array::with_max_entries(ProbeId::COUNT, 0);

/// Every event, in order of reservation. Submitted without waking the reader: userspace
/// drains it on a timer, which costs far less per event than a wake-up each. 32 MiB holds
/// ~100 ms of a channel ping-pong at full speed (stack-carrying events are ~430 bytes), enough
/// when gtrace competes with the target for CPUs; 8 MiB dropped events in that case.
#[map(name = "EVENTS")]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(32 << 20, 0);

/// Thread ids of the target seen switching out, so that switch-ins and wake-ups of its
/// threads (which run in another task's context) can be recognised. Bounded; entries are
/// removed when a thread exits.
#[map(name = "TIDS")]
pub(crate) static TIDS: HashMap<u32, u8> = HashMap::with_max_entries(16384, 0);

/// The traced process; set by userspace at load time (`EbpfLoader::set_global`).
#[unsafe(no_mangle)]
static TARGET_TGID: Global<u32> = Global::new(0);

/// Runtime offsets of the target's Go version; set by userspace at load time.
#[unsafe(no_mangle)]
static CONFIG: Global<Config> = Global::new(Config {
    g_goid: 0,
    g_parent_goid: 0,
    g_gopc: 0,
    g_startpc: 0,
    g_m: 0,
    m_curg: 0,
    stacks: 0,
    ret_fixup: 0,
});

/// The tgid the programs filter on.
#[inline(always)]
pub(crate) fn target_tgid() -> u32 {
    TARGET_TGID.load()
}

/// The load-time configuration.
#[inline(always)]
pub(crate) fn config() -> Config {
    CONFIG.load()
}

/// `(tgid, tid)` of the current task.
#[inline(always)]
pub(crate) fn current() -> (u32, u32) {
    let v = bpf_get_current_pid_tgid();
    ((v >> 32) as u32, v as u32)
}

#[inline(always)]
fn bump(map: &PerCpuArray<u64>, probe: ProbeId) {
    if let Some(slot) = map.get_ptr_mut(probe as u32) {
        // SAFETY: per-CPU slot, valid for the map's lifetime; programs on one CPU do not
        // preempt each other, so a plain increment does not race.
        unsafe { *slot += 1 };
    }
}

/// Count one hit of `probe`.
#[inline(always)]
pub(crate) fn hit(probe: ProbeId) {
    bump(&HITS, probe);
}

/// Count one failure of `probe`.
#[inline(always)]
pub(crate) fn error(probe: ProbeId) {
    bump(&ERRORS, probe);
}

/// Count one event of `probe` lost to a full ring buffer.
#[inline(always)]
pub(crate) fn drop(probe: ProbeId) {
    bump(&DROPS, probe);
}

/// True when userspace has switched `probe` off for now (a sampled-out window of the overhead
/// governor): the caller returns without emitting. Call it after counting the hit (hit rates
/// must stay known while sampled out) and after the tgid filter.
#[inline(always)]
pub(crate) fn sampled_out(probe: ProbeId) -> bool {
    CONTROL
        .get(probe as u32)
        .is_some_and(|v| *v != CONTROL_EMIT)
}
