//! Load-time configuration and map names shared by both sides.

/// Name of the per-CPU array counting probe hits, indexed by [`crate::probe::ProbeId`].
pub const HITS_MAP: &str = "HITS";
/// Name of the per-CPU array counting probe failures (unreadable memory, full ring buffer…).
pub const ERRORS_MAP: &str = "ERRORS";
/// Name of the global holding the target's tgid (set at load time).
pub const TARGET_TGID_GLOBAL: &str = "TARGET_TGID";
/// Name of the per-CPU array counting events lost because the ring buffer was full.
pub const DROPS_MAP: &str = "DROPS";
