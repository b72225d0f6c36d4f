//! Maps and load-time globals shared by every probe.

use aya_ebpf::{Global, macros::map, maps::PerCpuArray};
use tracer_common::probe::ProbeId;

/// Hits per probe, per CPU (summed in userspace). Indexed by `ProbeId as u32`.
#[map(name = "HITS")]
pub(crate) static HITS: PerCpuArray<u64> = PerCpuArray::with_max_entries(ProbeId::COUNT, 0);

/// Failures per probe, per CPU (e.g. a user-memory read that faulted).
#[map(name = "ERRORS")]
pub(crate) static ERRORS: PerCpuArray<u64> = PerCpuArray::with_max_entries(ProbeId::COUNT, 0);

/// The traced process; set by userspace at load time (`EbpfLoader::set_global`).
#[unsafe(no_mangle)]
static TARGET_TGID: Global<u32> = Global::new(0);

/// The tgid the programs filter on.
#[inline(always)]
pub(crate) fn target_tgid() -> u32 {
    TARGET_TGID.load()
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
#[allow(dead_code)]
pub(crate) fn error(probe: ProbeId) {
    bump(&ERRORS, probe);
}
