//! Load-time configuration of the lifecycle programs: the runtime struct offsets of the
//! target's Go version, patched into the object as one global before loading.

/// Name of the [`Config`] global in the eBPF object.
pub const CONFIG_GLOBAL: &str = "CONFIG";

/// Offsets (bytes) into `runtime.g` / `runtime.m` for the target's Go version.
///
/// A zero offset means "absent in this version" for the optional fields; the required ones
/// are never at offset 0 in any supported Go version (offset 0 is `g.stack.lo`, `m.g0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct Config {
    /// `g.goid`.
    pub g_goid: u32,
    /// `g.parentGoid` (Go 1.21+), 0 when absent.
    pub g_parent_goid: u32,
    /// `g.gopc`.
    pub g_gopc: u32,
    /// `g.startpc`.
    pub g_startpc: u32,
    /// `g.m`.
    pub g_m: u32,
    /// `m.curg`.
    pub m_curg: u32,
    /// Non-zero: capture user stacks at park and ready.
    pub stacks: u32,
    /// Bit set per stack-taking probe ([`FIXUP_GOPARK`], [`FIXUP_READY`]) whose site runs
    /// before the function saved its caller's frame pointer (a function-entry site, before
    /// `push rbp` or Go 1.19's `sub rsp` prologue): the direct caller's return address is then
    /// at `[rsp]` and not in the frame-pointer chain, so the program's unwinder reads it.
    pub ret_fixup: u32,
    /// `g.schedlink` (the run-queue link `injectglist` walks).
    pub g_schedlink: u32,
    /// Non-zero when `runtime.stopTheWorldWithSema` takes its `stwReason` as first argument
    /// (Go 1.21+); before, the STW events carry [`crate::event::STW_REASON_NONE`].
    pub stw_reason_arg: u32,
}

/// [`Config::ret_fixup`] bit for `runtime.gopark`.
pub const FIXUP_GOPARK: u32 = 1;
/// [`Config::ret_fixup`] bit for `runtime.ready`.
pub const FIXUP_READY: u32 = 2;

const _: () = assert!(size_of::<Config>() == 40);

// SAFETY: `Config` is `#[repr(C)]`, made of `u32`s only, without padding (size asserted).
#[cfg(feature = "user")]
unsafe impl aya::Pod for Config {}
