//! Panic-path events: written by the probes on `runtime.gopanic`, `runtime.gorecover`,
//! `runtime.recovery` and `runtime.fatalpanic` into the same ring buffer as the lifecycle
//! events (`event::EVENTS_MAP`), behind the same [`Header`].
//!
//! Their kinds are numbered from [`PANIC_KIND_BASE`] so that they never collide with
//! `event::EventKind`; a reader that only knows the lifecycle kinds skips them as unknown.
//!
//! Everything userspace needs later is captured at the event, because a fatal panic's
//! process is gone by the time the record is read: the value's type and data pointers, a
//! bounded snapshot of the bytes at the data pointer, and one string indirection (the first
//! 16 bytes of that snapshot read as a Go string header — which covers `string` values,
//! `*errors.errorString`, `*fmt.wrapError` and the runtime's string-based errors).

use crate::event::{Header, MAX_STACK};

/// First panic event kind (the lifecycle kinds stay below it).
pub const PANIC_KIND_BASE: u32 = 64;
/// Bytes captured at the panic value's data pointer.
pub const VALUE_BYTES: usize = 64;
/// Bytes captured behind the string header found at the start of the value bytes.
pub const STRING_BYTES: usize = 256;
/// Entries of `g._panic` captured (innermost first).
pub const MAX_CHAIN: usize = 4;
/// Name of the [`PanicConfig`] global in the eBPF object.
pub const PANIC_CONFIG_GLOBAL: &str = "PANIC_CONFIG";

/// `_panic.recovered` was set (`recover()` returned this panic's value).
pub const FLAG_RECOVERED: u32 = 1;
/// `_panic.aborted` was set (Go < 1.22: a deferred call of this panic panicked).
pub const FLAG_ABORTED: u32 = 2;
/// `_panic.goexit` was set (this entry is `runtime.Goexit`, not a panic).
pub const FLAG_GOEXIT: u32 = 4;

/// Which panic event follows the header. Crosses the boundary as `u32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum PanicKind {
    /// [`PanicStart`]: `runtime.gopanic` was entered.
    Start = PANIC_KIND_BASE,
    /// [`GoRecover`]: `recover()` was called (`runtime.gorecover`).
    Recover = PANIC_KIND_BASE + 1,
    /// [`PanicEnd`]: `runtime.recovery`: a recovered panic unwinds to its deferring frame.
    Recovery = PANIC_KIND_BASE + 2,
    /// [`PanicEnd`]: `runtime.fatalpanic`: the process is about to die.
    Fatal = PANIC_KIND_BASE + 3,
    /// [`DeferCall`]: a deferred function is called by the panic machinery.
    Defer = PANIC_KIND_BASE + 4,
    /// [`PanicStart`] with the message as its string (no type): `runtime.throw` /
    /// `runtime.fatal`, a fatal runtime error (`fatal error: …`).
    Throw = PANIC_KIND_BASE + 5,
}

impl PanicKind {
    /// Every kind, in discriminant order.
    pub const ALL: [PanicKind; 6] = [
        PanicKind::Start,
        PanicKind::Recover,
        PanicKind::Recovery,
        PanicKind::Fatal,
        PanicKind::Defer,
        PanicKind::Throw,
    ];

    /// Whether a header's `kind` is a panic event.
    pub const fn is_panic(kind: u32) -> bool {
        kind >= PANIC_KIND_BASE && kind < PANIC_KIND_BASE + Self::ALL.len() as u32
    }

    /// The size in bytes of the struct this kind announces.
    pub const fn size(self) -> usize {
        match self {
            PanicKind::Start | PanicKind::Throw => size_of::<PanicStart>(),
            PanicKind::Recover => size_of::<GoRecover>(),
            PanicKind::Recovery | PanicKind::Fatal => size_of::<PanicEnd>(),
            PanicKind::Defer => size_of::<DeferCall>(),
        }
    }
}

/// Raised when a `u32` is not a known [`PanicKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownPanicKind(pub u32);

impl TryFrom<u32> for PanicKind {
    type Error = UnknownPanicKind;

    fn try_from(v: u32) -> Result<Self, Self::Error> {
        Self::ALL
            .iter()
            .copied()
            .find(|k| *k as u32 == v)
            .ok_or(UnknownPanicKind(v))
    }
}

/// Offsets the panic programs need, for the target's Go version (from the runtime layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct PanicConfig {
    /// `g.goid`.
    pub g_goid: u32,
    /// `g._panic`.
    pub g_panic: u32,
    /// `g.parentGoid` (1.21+), 0 when absent.
    pub g_parent_goid: u32,
    /// `g.gopc`.
    pub g_gopc: u32,
    /// `_panic.arg` (an eface: type pointer, then data pointer).
    pub p_arg: u32,
    /// `_panic.link`.
    pub p_link: u32,
    /// `_panic.recovered`.
    pub p_recovered: u32,
    /// `_panic.aborted` (before 1.22), 0 when absent.
    pub p_aborted: u32,
    /// `_panic.goexit`.
    pub p_goexit: u32,
    /// Where `runtime.recovery` finds the SP of the frame it resumes: an offset into the
    /// innermost `_panic` (`_panic.sp`, 1.22+) or into `g` (`g.sigcode0`, before 1.22).
    pub recovery_sp: u32,
    /// Non-zero: `recovery_sp` is an offset into `g`, else into the innermost `_panic`.
    pub recovery_sp_in_g: u32,
    /// Explicit padding.
    pub pad: u32,
}

const _: () = assert!(size_of::<PanicConfig>() == 48);

// SAFETY: `PanicConfig` is `#[repr(C)]`, made of `u32`s only, without padding (size asserted).
#[cfg(feature = "user")]
unsafe impl aya::Pod for PanicConfig {}

/// One entry of a goroutine's `g._panic` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct ChainEntry {
    /// `arg`'s type pointer (runtime address).
    pub type_ptr: u64,
    /// `arg`'s data pointer.
    pub data_ptr: u64,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// Explicit padding.
    pub pad: u32,
}

/// `runtime.gopanic(e any)` was entered on goroutine `goid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct PanicStart {
    /// Common header, kind = [`PanicKind::Start`].
    pub header: Header,
    /// The panicking goroutine.
    pub goid: u64,
    /// Its creator (`g.parentGoid`, 0 before Go 1.21).
    pub parent_goid: u64,
    /// `g.gopc`: the `go` statement that created it (0 for the main goroutine's creator).
    pub gopc: u64,
    /// RSP at the probe: orders this panic against the frame `recovery` resumes.
    pub sp: u64,
    /// The return address at `[rsp]`: gopanic's caller, which the frame-pointer walk misses
    /// when the probe site precedes `push rbp` (Go 1.19's prologue).
    pub ret_pc: u64,
    /// The value's type pointer (RAX).
    pub type_ptr: u64,
    /// The value's data pointer (RBX).
    pub data_ptr: u64,
    /// Bytes of `value` actually read (0 if the read faulted).
    pub value_len: u32,
    /// Bytes of `string` read; `u32::MAX` when the header was not a plausible string.
    pub string_len: u32,
    /// Length field of the string header (may exceed what was captured).
    pub string_full_len: u64,
    /// Number of valid entries in `chain`.
    pub chain_len: u32,
    /// Number of valid entries in `stack`.
    pub stack_len: u32,
    /// The panics already in flight on this goroutine, innermost first.
    pub chain: [ChainEntry; MAX_CHAIN],
    /// Bytes at `data_ptr`.
    pub value: [u8; VALUE_BYTES],
    /// Bytes behind the string header at `value[0..16]`.
    pub string: [u8; STRING_BYTES],
    /// User stack, innermost first (runtime addresses).
    pub stack: [u64; MAX_STACK],
}

/// `recover()` was called on goroutine `goid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct GoRecover {
    /// Common header, kind = [`PanicKind::Recover`].
    pub header: Header,
    /// The goroutine.
    pub goid: u64,
    /// Return address into the function that called `recover()`.
    pub caller_pc: u64,
    /// `g._panic` is non-nil, not Goexit, not yet recovered: this call recovers (modulo the
    /// frame check `gorecover` does).
    pub live: u32,
    /// Explicit padding.
    pub pad: u32,
}

/// A deferred function is about to be called while goroutine `goid` panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct DeferCall {
    /// Common header, kind = [`PanicKind::Defer`].
    pub header: Header,
    /// The goroutine.
    pub goid: u64,
    /// Entry PC of the deferred function (the first word of the `*funcval` in RDX, the
    /// closure context register); 0 when that read failed.
    pub fn_pc: u64,
    /// The `*funcval` itself (a static one lives in the binary's read-only data, where
    /// userspace can read the entry PC when the kernel could not).
    pub closure: u64,
}

/// The end of a goroutine's panics: recovered (`runtime.recovery`) or fatal
/// (`runtime.fatalpanic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct PanicEnd {
    /// Common header, kind = [`PanicKind::Recovery`] or [`PanicKind::Fatal`].
    pub header: Header,
    /// The goroutine.
    pub goid: u64,
    /// Recovery: SP of the frame execution resumes in; panics started below it end here.
    pub sp: u64,
    /// Number of valid entries in `chain`.
    pub chain_len: u32,
    /// Explicit padding.
    pub pad: u32,
    /// `g._panic` at the probe, innermost first.
    pub chain: [ChainEntry; MAX_CHAIN],
}

const _: () = assert!(size_of::<ChainEntry>() == 24);
const _: () = assert!(
    size_of::<PanicStart>()
        == 16
            + 7 * 8
            + 4
            + 4
            + 8
            + 4
            + 4
            + 24 * MAX_CHAIN
            + VALUE_BYTES
            + STRING_BYTES
            + 8 * MAX_STACK
);
const _: () = assert!(size_of::<GoRecover>() == 16 + 8 + 8 + 8);
const _: () = assert!(size_of::<DeferCall>() == 16 + 8 + 8 + 8);
const _: () = assert!(size_of::<PanicEnd>() == 16 + 8 + 8 + 8 + 24 * MAX_CHAIN);

impl Default for PanicStart {
    fn default() -> Self {
        Self {
            header: Header::default(),
            goid: 0,
            parent_goid: 0,
            gopc: 0,
            sp: 0,
            ret_pc: 0,
            type_ptr: 0,
            data_ptr: 0,
            value_len: 0,
            string_len: 0,
            string_full_len: 0,
            chain_len: 0,
            stack_len: 0,
            chain: [ChainEntry::default(); MAX_CHAIN],
            value: [0; VALUE_BYTES],
            string: [0; STRING_BYTES],
            stack: [0; MAX_STACK],
        }
    }
}

#[cfg(feature = "user")]
pub use decode::{PanicDecodeError, PanicEvent, decode, encode};

#[cfg(feature = "user")]
mod decode {
    //! Userspace decoding of panic records (and encoding, for tests and replays).

    use super::{
        DeferCall, GoRecover, MAX_CHAIN, PanicEnd, PanicKind, PanicStart, STRING_BYTES,
        UnknownPanicKind, VALUE_BYTES,
    };
    use crate::event::{Header, MAX_STACK};

    /// One decoded panic event. Records are read one at a time; boxing the large variant
    /// would cost an allocation per event for nothing.
    #[allow(clippy::large_enum_variant)]
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum PanicEvent {
        /// `gopanic` entered.
        Start(PanicStart),
        /// `recover()` called.
        Recover(GoRecover),
        /// `recovery`: panics unwind to a recovering frame.
        Recovery(PanicEnd),
        /// `fatalpanic`: the process dies.
        Fatal(PanicEnd),
        /// A deferred call runs while panicking.
        Defer(DeferCall),
        /// `throw` / `fatal`: a fatal runtime error; the message is the event's string.
        Throw(PanicStart),
    }

    /// A record that is not a panic event.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum PanicDecodeError {
        /// Shorter than its kind's struct.
        Short {
            /// Bytes present.
            got: usize,
            /// Bytes needed.
            need: usize,
        },
        /// Not a panic kind.
        Kind(UnknownPanicKind),
        /// A length field larger than its array.
        Length(u32),
    }

    impl core::fmt::Display for PanicDecodeError {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            match self {
                PanicDecodeError::Short { got, need } => {
                    write!(f, "panic record of {got} bytes is shorter than {need}")
                }
                PanicDecodeError::Kind(k) => write!(f, "unknown panic event kind {}", k.0),
                PanicDecodeError::Length(n) => write!(f, "length {n} exceeds its array"),
            }
        }
    }

    /// Marker for plain-integer `#[repr(C)]` structs without implicit padding.
    ///
    /// # Safety
    /// Implementors must be `#[repr(C)]`, contain only integers (and arrays of them) and have
    /// no implicit padding, so every byte pattern is a valid value.
    unsafe trait Plain: Copy {}
    // SAFETY: `#[repr(C)]` integer structs; the parent module asserts their sizes equal the
    // sum of their fields (no implicit padding).
    unsafe impl Plain for Header {}
    // SAFETY: as above.
    unsafe impl Plain for PanicStart {}
    // SAFETY: as above.
    unsafe impl Plain for GoRecover {}
    // SAFETY: as above.
    unsafe impl Plain for PanicEnd {}
    // SAFETY: as above.
    unsafe impl Plain for DeferCall {}

    fn read<T: Plain>(bytes: &[u8]) -> Result<T, PanicDecodeError> {
        let need = size_of::<T>();
        if bytes.len() < need {
            return Err(PanicDecodeError::Short {
                got: bytes.len(),
                need,
            });
        }
        // SAFETY: at least size_of::<T>() bytes (checked), unaligned read, `T: Plain`.
        Ok(unsafe { bytes.as_ptr().cast::<T>().read_unaligned() })
    }

    fn bytes_of<T: Plain>(v: &T) -> &[u8] {
        // SAFETY: `T: Plain` has no padding, so every byte is initialized; borrows `v`.
        unsafe { core::slice::from_raw_parts(core::ptr::from_ref(v).cast::<u8>(), size_of::<T>()) }
    }

    fn check(n: u32, max: usize) -> Result<(), PanicDecodeError> {
        if n as usize > max {
            Err(PanicDecodeError::Length(n))
        } else {
            Ok(())
        }
    }

    /// Decodes one ring-buffer record of a panic kind.
    pub fn decode(bytes: &[u8]) -> Result<PanicEvent, PanicDecodeError> {
        let h: Header = read(bytes)?;
        let kind = PanicKind::try_from(h.kind).map_err(PanicDecodeError::Kind)?;
        Ok(match kind {
            PanicKind::Start | PanicKind::Throw => {
                let e: PanicStart = read(bytes)?;
                check(e.chain_len, MAX_CHAIN)?;
                check(e.stack_len, MAX_STACK)?;
                check(e.value_len, VALUE_BYTES)?;
                if e.string_len != u32::MAX {
                    check(e.string_len, STRING_BYTES)?;
                }
                if kind == PanicKind::Throw {
                    PanicEvent::Throw(e)
                } else {
                    PanicEvent::Start(e)
                }
            }
            PanicKind::Recover => PanicEvent::Recover(read(bytes)?),
            PanicKind::Defer => PanicEvent::Defer(read(bytes)?),
            PanicKind::Recovery | PanicKind::Fatal => {
                let e: PanicEnd = read(bytes)?;
                check(e.chain_len, MAX_CHAIN)?;
                if kind == PanicKind::Fatal {
                    PanicEvent::Fatal(e)
                } else {
                    PanicEvent::Recovery(e)
                }
            }
        })
    }

    /// The record bytes of `e` (what the kernel side writes).
    pub fn encode(e: &PanicEvent) -> &[u8] {
        match e {
            PanicEvent::Start(v) | PanicEvent::Throw(v) => bytes_of(v),
            PanicEvent::Recover(v) => bytes_of(v),
            PanicEvent::Recovery(v) | PanicEvent::Fatal(v) => bytes_of(v),
            PanicEvent::Defer(v) => bytes_of(v),
        }
    }

    impl PanicEvent {
        /// The common header.
        pub fn header(&self) -> &Header {
            match self {
                PanicEvent::Start(v) | PanicEvent::Throw(v) => &v.header,
                PanicEvent::Recover(v) => &v.header,
                PanicEvent::Recovery(v) | PanicEvent::Fatal(v) => &v.header,
                PanicEvent::Defer(v) => &v.header,
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn h(kind: PanicKind) -> Header {
            Header {
                kind: kind as u32,
                tid: 7,
                ktime_ns: 99,
            }
        }

        #[test]
        fn round_trip_every_kind() {
            let mut s = PanicStart {
                header: h(PanicKind::Start),
                goid: 5,
                chain_len: 1,
                stack_len: 2,
                value_len: 64,
                string_len: 3,
                ..PanicStart::default()
            };
            s.string[..3].copy_from_slice(b"abc");
            s.stack[1] = 0x0040_1000;
            let events = [
                PanicEvent::Start(s),
                PanicEvent::Recover(GoRecover {
                    header: h(PanicKind::Recover),
                    goid: 5,
                    caller_pc: 1,
                    live: 1,
                    pad: 0,
                }),
                PanicEvent::Recovery(PanicEnd {
                    header: h(PanicKind::Recovery),
                    goid: 5,
                    sp: 9,
                    chain_len: 2,
                    ..PanicEnd::default()
                }),
                PanicEvent::Fatal(PanicEnd {
                    header: h(PanicKind::Fatal),
                    goid: 5,
                    ..PanicEnd::default()
                }),
                PanicEvent::Defer(DeferCall {
                    header: h(PanicKind::Defer),
                    goid: 5,
                    fn_pc: 0x40_1000,
                    closure: 0x50_0000,
                }),
            ];
            for e in events {
                assert_eq!(decode(encode(&e)), Ok(e));
                assert!(PanicKind::is_panic(e.header().kind));
            }
        }

        #[test]
        fn rejects_bad_records() {
            let mut s = PanicStart {
                header: h(PanicKind::Start),
                ..PanicStart::default()
            };
            let bytes = encode(&PanicEvent::Start(s)).to_vec();
            assert!(matches!(
                decode(&bytes[..100]),
                Err(PanicDecodeError::Short { .. })
            ));
            s.chain_len = 5;
            assert_eq!(
                decode(encode(&PanicEvent::Start(s))),
                Err(PanicDecodeError::Length(5))
            );
            let mut e = PanicEnd::default();
            e.header.kind = 1;
            assert!(matches!(
                decode(encode(&PanicEvent::Fatal(e))),
                Err(PanicDecodeError::Kind(_))
            ));
            assert!(!PanicKind::is_panic(1));
        }
    }
}
