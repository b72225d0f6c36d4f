//! Load-time configuration and map names shared by both sides.

/// Name of the per-CPU array counting probe hits, indexed by [`crate::probe::ProbeId`].
pub const HITS_MAP: &str = "HITS";
/// Name of the per-CPU array counting probe failures (unreadable memory, full ring buffer…).
pub const ERRORS_MAP: &str = "ERRORS";
/// Name of the global holding the target's tgid (set at load time).
pub const TARGET_TGID_GLOBAL: &str = "TARGET_TGID";
/// Name of the per-CPU array counting events lost because the ring buffer was full.
pub const DROPS_MAP: &str = "DROPS";
/// Name of the array map (one `u32` per [`crate::probe::ProbeId`], written by userspace at
/// run time) telling each probe whether to emit its event ([`CONTROL_EMIT`]) or only count
/// its hit ([`CONTROL_SAMPLED_OUT`]). The overhead governor switches the hot probes with it.
pub const CONTROL_MAP: &str = "CONTROL";
/// [`CONTROL_MAP`] value: the probe emits its events (the default).
pub const CONTROL_EMIT: u32 = 0;
/// [`CONTROL_MAP`] value: the probe counts its hit and returns without emitting.
pub const CONTROL_SAMPLED_OUT: u32 = 1;
