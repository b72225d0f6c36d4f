//! Goroutine lifecycle and scheduler events, written by the eBPF programs into one ring buffer.
//!
//! Every event starts with [`Header`] (kind, thread, kernel timestamp); the kind says which
//! struct follows. All structs are `#[repr(C)]`, made of integers only, with explicit padding,
//! so any byte pattern of the right length is a valid value and the size asserts below catch
//! any layout drift between the two sides. Timestamps are `bpf_ktime_get_ns()`:
//! `CLOCK_MONOTONIC`, the same clock as Go's `nanotime`.

/// Frames kept per captured user stack (innermost first). Deeper stacks are truncated.
pub const MAX_STACK: usize = 48;

/// Name of the ring buffer map.
pub const EVENTS_MAP: &str = "EVENTS";

/// Which event follows the header. Crosses the boundary as `u32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum EventKind {
    /// [`GoCreate`]: a goroutine was created (`newproc1` returned).
    Create = 1,
    /// [`GoPark`]: a goroutine parks (`gopark`).
    Park = 2,
    /// [`GoReady`]: a parked goroutine is made runnable (`ready`).
    Ready = 3,
    /// [`GoId`]: a goroutine starts running on a thread (`execute`).
    Execute = 4,
    /// [`GoId`]: a goroutine exited (`goexit0`).
    Exit = 5,
    /// [`SchedSwitch`]: a thread of the target was switched out or in.
    Switch = 6,
    /// [`SchedWakeup`]: a thread of the target was woken.
    Wakeup = 7,
    /// [`ProcExit`]: a thread of the target exited.
    ThreadExit = 8,
    /// [`GoId`]: a running goroutine yields or is preempted (`goschedImpl`): runnable again.
    Yield = 9,
    /// [`GoArg`]: the goroutine enters a system call (`arg` = [`SYSCALL_BLOCKING`] from
    /// `entersyscallblock`, 0 from `reentersyscall`).
    Syscall = 10,
    /// [`GoArg`]: the goroutine is back from its system call and keeps running (`exitsyscall`).
    SyscallExit = 11,
    /// [`GoArg`]: back from a system call without a P: runnable (`exitsyscall0` /
    /// `exitsyscallNoP`).
    SyscallNoP = 12,
    /// [`GoArg`]: a parked goroutine made runnable in a batch (`injectglist`: netpoll).
    Injected = 13,
    /// [`GoArg`]: the goroutine is suspended for a GC stack scan (`preemptPark`).
    Suspended = 14,
    /// [`GoArg`]: a stop-the-world begins; `goid` = the goroutine stopping it (0: none),
    /// `arg` = its `stwReason` or [`STW_REASON_NONE`].
    StwStart = 15,
    /// [`GoArg`]: the world starts again (`startTheWorldWithSema`); `goid` as above.
    StwDone = 16,
    /// [`GoArg`]: `gcStart` entered by `goid`.
    GcStart = 17,
    /// [`GoArg`]: `gcMarkTermination` entered by `goid` (the mark phase is over).
    GcMarkTerm = 18,
    /// [`GoArg`]: `goid` starts a GC mark assist (`gcAssistAlloc`).
    AssistStart = 19,
    /// [`GoArg`]: `goid`'s mark assist returned.
    AssistDone = 20,
}

/// [`GoArg::arg`] of [`EventKind::Syscall`] from `entersyscallblock`.
pub const SYSCALL_BLOCKING: u32 = 1;
/// [`GoArg::arg`] of [`EventKind::StwStart`] when the runtime passes no reason (before Go
/// 1.21, `stopTheWorldWithSema` took no argument).
pub const STW_REASON_NONE: u32 = u32::MAX;

impl EventKind {
    /// Every kind, in discriminant order.
    pub const ALL: [EventKind; 20] = [
        EventKind::Create,
        EventKind::Park,
        EventKind::Ready,
        EventKind::Execute,
        EventKind::Exit,
        EventKind::Switch,
        EventKind::Wakeup,
        EventKind::ThreadExit,
        EventKind::Yield,
        EventKind::Syscall,
        EventKind::SyscallExit,
        EventKind::SyscallNoP,
        EventKind::Injected,
        EventKind::Suspended,
        EventKind::StwStart,
        EventKind::StwDone,
        EventKind::GcStart,
        EventKind::GcMarkTerm,
        EventKind::AssistStart,
        EventKind::AssistDone,
    ];

    /// The goroutine events (`gtrace trace`'s default selection).
    pub const GOROUTINE: [EventKind; 6] = [
        EventKind::Create,
        EventKind::Park,
        EventKind::Ready,
        EventKind::Execute,
        EventKind::Yield,
        EventKind::Exit,
    ];

    /// Short lowercase name used by `--kind` and in output.
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::Create => "create",
            EventKind::Park => "park",
            EventKind::Ready => "ready",
            EventKind::Execute => "execute",
            EventKind::Exit => "exit",
            EventKind::Switch => "switch",
            EventKind::Wakeup => "wakeup",
            EventKind::ThreadExit => "thread-exit",
            EventKind::Yield => "yield",
            EventKind::Syscall => "syscall",
            EventKind::SyscallExit => "syscall-exit",
            EventKind::SyscallNoP => "syscall-exit-nop",
            EventKind::Injected => "injected",
            EventKind::Suspended => "suspended",
            EventKind::StwStart => "stw-start",
            EventKind::StwDone => "stw-done",
            EventKind::GcStart => "gc-start",
            EventKind::GcMarkTerm => "gc-mark-termination",
            EventKind::AssistStart => "assist-start",
            EventKind::AssistDone => "assist-done",
        }
    }

    /// The size in bytes of the struct this kind announces.
    pub const fn size(self) -> usize {
        match self {
            EventKind::Create => size_of::<GoCreate>(),
            EventKind::Park => size_of::<GoPark>(),
            EventKind::Ready => size_of::<GoReady>(),
            EventKind::Execute | EventKind::Exit | EventKind::Yield => size_of::<GoId>(),
            EventKind::Switch => size_of::<SchedSwitch>(),
            EventKind::Wakeup => size_of::<SchedWakeup>(),
            EventKind::ThreadExit => size_of::<ProcExit>(),
            EventKind::Syscall
            | EventKind::SyscallExit
            | EventKind::SyscallNoP
            | EventKind::Injected
            | EventKind::Suspended
            | EventKind::StwStart
            | EventKind::StwDone
            | EventKind::GcStart
            | EventKind::GcMarkTerm
            | EventKind::AssistStart
            | EventKind::AssistDone => size_of::<GoArg>(),
        }
    }
}

/// Raised when a `u32` from the kernel is not a known [`EventKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownEventKind(pub u32);

impl TryFrom<u32> for EventKind {
    type Error = UnknownEventKind;

    fn try_from(v: u32) -> Result<Self, Self::Error> {
        Self::ALL
            .iter()
            .copied()
            .find(|k| *k as u32 == v)
            .ok_or(UnknownEventKind(v))
    }
}

/// First 16 bytes of every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct Header {
    /// An [`EventKind`] as `u32`.
    pub kind: u32,
    /// Kernel thread id (task pid) the event happened on.
    pub tid: u32,
    /// `bpf_ktime_get_ns()` (`CLOCK_MONOTONIC`).
    pub ktime_ns: u64,
}

/// A goroutine was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct GoCreate {
    /// Common header, kind = [`EventKind::Create`].
    pub header: Header,
    /// The new goroutine's id.
    pub goid: u64,
    /// The creating goroutine's id (`g.parentGoid`, or `m.curg.goid` before Go 1.21).
    pub parent_goid: u64,
    /// `g.gopc`: PC of the `go` statement (runtime address).
    pub gopc: u64,
    /// `g.startpc`: entry of the goroutine's function (runtime address).
    pub startpc: u64,
}

/// A goroutine parks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct GoPark {
    /// Common header, kind = [`EventKind::Park`].
    pub header: Header,
    /// The parking goroutine.
    pub goid: u64,
    /// The `waitReason` (gopark's third argument).
    pub reason: u32,
    /// Number of valid entries in `stack`.
    pub stack_len: u32,
    /// User stack, innermost first (runtime addresses).
    pub stack: [u64; MAX_STACK],
}

/// A goroutine is made runnable by another one (or by the runtime: `waker_goid` 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct GoReady {
    /// Common header, kind = [`EventKind::Ready`].
    pub header: Header,
    /// The goroutine made runnable.
    pub goid: u64,
    /// The goroutine running on this thread (`m.curg`), 0 if the scheduler itself.
    pub waker_goid: u64,
    /// Number of valid entries in `stack`.
    pub stack_len: u32,
    /// Explicit padding.
    pub pad: u32,
    /// Stack of the thread at `ready` (system stack, then the waker's), innermost first.
    pub stack: [u64; MAX_STACK],
}

/// An event about one goroutine only (execute, exit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct GoId {
    /// Common header, kind = [`EventKind::Execute`] or [`EventKind::Exit`].
    pub header: Header,
    /// The goroutine.
    pub goid: u64,
}

/// An event about one goroutine with one small argument (the scheduler-latency events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct GoArg {
    /// Common header; the kind says what `goid` and `arg` mean.
    pub header: Header,
    /// The goroutine (0 when none, e.g. a stop-the-world from the scheduler).
    pub goid: u64,
    /// Kind-specific value (a reason, a flag), 0 when unused.
    pub arg: u32,
    /// Explicit padding.
    pub pad: u32,
}

/// `sched:sched_switch` involving a thread of the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct SchedSwitch {
    /// Common header, kind = [`EventKind::Switch`]; `tid` is the previous task.
    pub header: Header,
    /// Thread switched out.
    pub prev_tid: u32,
    /// Thread switched in.
    pub next_tid: u32,
    /// `prev_state` (0 = runnable, i.e. preempted).
    pub prev_state: u64,
}

/// `sched:sched_wakeup` of a thread of the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct SchedWakeup {
    /// Common header, kind = [`EventKind::Wakeup`]; `tid` is the waking task.
    pub header: Header,
    /// The thread woken.
    pub wakee_tid: u32,
    /// CPU it will run on.
    pub target_cpu: u32,
}

/// `sched:sched_process_exit` of a thread of the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct ProcExit {
    /// Common header, kind = [`EventKind::ThreadExit`].
    pub header: Header,
    /// 1 when this was the last thread (the process is gone).
    pub group_dead: u32,
    /// Explicit padding.
    pub pad: u32,
}

const _: () = {
    assert!(size_of::<Header>() == 16);
    assert!(size_of::<GoCreate>() == 48);
    assert!(size_of::<GoPark>() == 32 + 8 * MAX_STACK);
    assert!(size_of::<GoReady>() == 40 + 8 * MAX_STACK);
    assert!(size_of::<GoId>() == 24);
    assert!(size_of::<GoArg>() == 32);
    assert!(size_of::<SchedSwitch>() == 32);
    assert!(size_of::<SchedWakeup>() == 24);
    assert!(size_of::<ProcExit>() == 24);
    assert!(align_of::<GoPark>() == 8 && align_of::<GoReady>() == 8);
};

impl Default for GoPark {
    fn default() -> Self {
        Self {
            header: Header::default(),
            goid: 0,
            reason: 0,
            stack_len: 0,
            stack: [0; MAX_STACK],
        }
    }
}

impl Default for GoReady {
    fn default() -> Self {
        Self {
            header: Header::default(),
            goid: 0,
            waker_goid: 0,
            stack_len: 0,
            pad: 0,
            stack: [0; MAX_STACK],
        }
    }
}

#[cfg(feature = "user")]
pub use decode::{DecodeError, Event, Raw, decode, encode};

#[cfg(feature = "user")]
mod decode {
    //! Userspace decoding of ring-buffer records (and encoding, for tests and replays).

    use super::{
        EventKind, GoArg, GoCreate, GoId, GoPark, GoReady, Header, ProcExit, SchedSwitch,
        SchedWakeup, UnknownEventKind,
    };

    /// One decoded event.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Event {
        /// A goroutine was created.
        Create(GoCreate),
        /// A goroutine parks.
        Park(GoPark),
        /// A goroutine was made runnable.
        Ready(GoReady),
        /// A goroutine starts running.
        Execute(GoId),
        /// A goroutine exited.
        Exit(GoId),
        /// A target thread switched.
        Switch(SchedSwitch),
        /// A target thread was woken.
        Wakeup(SchedWakeup),
        /// A target thread exited.
        ThreadExit(ProcExit),
        /// A running goroutine yielded or was preempted.
        Yield(GoId),
        /// A scheduler-latency event ([`EventKind::Syscall`] … [`EventKind::AssistDone`]):
        /// the kind says which.
        Sched(EventKind, GoArg),
    }

    /// A record that is not an event.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum DecodeError {
        /// Shorter than the header or than its kind's struct.
        Short {
            /// Bytes present.
            got: usize,
            /// Bytes needed.
            need: usize,
        },
        /// Unknown kind.
        Kind(UnknownEventKind),
        /// A stack length larger than the array.
        StackLen(u32),
    }

    impl core::fmt::Display for DecodeError {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            match self {
                DecodeError::Short { got, need } => {
                    write!(f, "event record of {got} bytes is shorter than {need}")
                }
                DecodeError::Kind(k) => write!(f, "unknown event kind {}", k.0),
                DecodeError::StackLen(n) => write!(f, "stack length {n} exceeds the maximum"),
            }
        }
    }

    /// Marker for plain-integer `#[repr(C)]` event structs without implicit padding.
    ///
    /// # Safety
    /// Implementors must be `#[repr(C)]`, contain only integers (and arrays of them) and have
    /// no implicit padding, so every byte pattern is a valid value.
    unsafe trait Plain: Copy {}
    // SAFETY: all of these are `#[repr(C)]` integer structs; the const asserts in the parent
    // module check their sizes equal the sum of their fields (no implicit padding).
    unsafe impl Plain for Header {}
    // SAFETY: as above.
    unsafe impl Plain for GoCreate {}
    // SAFETY: as above.
    unsafe impl Plain for GoPark {}
    // SAFETY: as above.
    unsafe impl Plain for GoReady {}
    // SAFETY: as above.
    unsafe impl Plain for GoId {}
    // SAFETY: as above.
    unsafe impl Plain for SchedSwitch {}
    // SAFETY: as above.
    unsafe impl Plain for SchedWakeup {}
    // SAFETY: as above.
    unsafe impl Plain for ProcExit {}
    // SAFETY: as above.
    unsafe impl Plain for GoArg {}

    fn read<T: Plain>(bytes: &[u8]) -> Result<T, DecodeError> {
        let need = size_of::<T>();
        if bytes.len() < need {
            return Err(DecodeError::Short {
                got: bytes.len(),
                need,
            });
        }
        // SAFETY: `bytes` holds at least size_of::<T>() bytes (checked above), the read is
        // unaligned-safe, and `T: Plain` makes every byte pattern valid.
        Ok(unsafe { bytes.as_ptr().cast::<T>().read_unaligned() })
    }

    fn bytes_of<T: Plain>(v: &T) -> &[u8] {
        // SAFETY: `T: Plain` has no padding, so all its bytes are initialized; the slice
        // borrows `v` for its lifetime.
        unsafe { core::slice::from_raw_parts(core::ptr::from_ref(v).cast::<u8>(), size_of::<T>()) }
    }

    /// Decodes one ring-buffer record.
    pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
        Raw::new(bytes).map(Raw::event)
    }

    /// A ring-buffer record checked to be a well-formed event (known kind, long enough, stack
    /// length in range), read in place: what a consumer that stores records as they are
    /// (`gtrace record`) looks at without copying a whole [`Event`] (up to ~420 bytes).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Raw<'a> {
        bytes: &'a [u8],
        kind: EventKind,
        /// End of the meaningful bytes: the kind's size, or the end of the valid stack.
        used: usize,
    }

    impl<'a> Raw<'a> {
        /// Checks `bytes` as [`decode`] does, without copying it.
        pub fn new(bytes: &'a [u8]) -> Result<Self, DecodeError> {
            let h: Header = read(bytes)?;
            let kind = EventKind::try_from(h.kind).map_err(DecodeError::Kind)?;
            let need = kind.size();
            if bytes.len() < need {
                return Err(DecodeError::Short {
                    got: bytes.len(),
                    need,
                });
            }
            let stack = match kind {
                EventKind::Park => Some((
                    core::mem::offset_of!(GoPark, stack_len),
                    core::mem::offset_of!(GoPark, stack),
                )),
                EventKind::Ready => Some((
                    core::mem::offset_of!(GoReady, stack_len),
                    core::mem::offset_of!(GoReady, stack),
                )),
                _ => None,
            };
            let used = match stack {
                Some((len_at, stack_at)) => {
                    let n = u32_at(bytes, len_at);
                    if n as usize > super::MAX_STACK {
                        return Err(DecodeError::StackLen(n));
                    }
                    stack_at + 8 * n as usize
                }
                None => need,
            };
            Ok(Self { bytes, kind, used })
        }

        /// The kind.
        pub fn kind(self) -> EventKind {
            self.kind
        }

        /// The whole record, as delivered.
        pub fn bytes(self) -> &'a [u8] {
            self.bytes
        }

        /// The record up to the end of what it says: without the unused entries of its stack
        /// array (and anything after its kind's struct). Padding it with zeros to the kind's
        /// size gives back the same [`Event`].
        pub fn used(self) -> &'a [u8] {
            &self.bytes[..self.used]
        }

        /// The valid part of the user stack (park and ready; empty for other kinds), as
        /// native-endian `u64` PCs, innermost first.
        pub fn stack_bytes(self) -> &'a [u8] {
            let at = match self.kind {
                EventKind::Park => core::mem::offset_of!(GoPark, stack),
                EventKind::Ready => core::mem::offset_of!(GoReady, stack),
                _ => return &[],
            };
            &self.bytes[at..self.used]
        }

        /// The PCs of [`Self::stack_bytes`], innermost first.
        pub fn stack(self) -> impl Iterator<Item = u64> + 'a {
            self.stack_bytes()
                .chunks_exact(8)
                .map(|c| u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        }

        /// The creation, for a [`EventKind::Create`] record (`None` for other kinds): a copy
        /// of 48 bytes rather than of a whole [`Event`].
        pub fn create(self) -> Option<GoCreate> {
            (self.kind == EventKind::Create).then(|| {
                // SAFETY: `new` checked that `bytes` holds at least `EventKind::Create.size()`
                // (= size_of::<GoCreate>()) bytes, and the kind is Create.
                unsafe { read_checked(self.bytes) }
            })
        }

        /// The decoded event (a copy).
        pub fn event(self) -> Event {
            let b = self.bytes;
            // SAFETY: every `read_checked` below reads the struct of `self.kind`, and `new`
            // checked that `b` holds at least `self.kind.size()` bytes, its size.
            unsafe {
                match self.kind {
                    EventKind::Create => Event::Create(read_checked(b)),
                    EventKind::Park => Event::Park(read_checked(b)),
                    EventKind::Ready => Event::Ready(read_checked(b)),
                    EventKind::Execute => Event::Execute(read_checked(b)),
                    EventKind::Exit => Event::Exit(read_checked(b)),
                    EventKind::Switch => Event::Switch(read_checked(b)),
                    EventKind::Wakeup => Event::Wakeup(read_checked(b)),
                    EventKind::ThreadExit => Event::ThreadExit(read_checked(b)),
                    EventKind::Yield => Event::Yield(read_checked(b)),
                    k @ (EventKind::Syscall
                    | EventKind::SyscallExit
                    | EventKind::SyscallNoP
                    | EventKind::Injected
                    | EventKind::Suspended
                    | EventKind::StwStart
                    | EventKind::StwDone
                    | EventKind::GcStart
                    | EventKind::GcMarkTerm
                    | EventKind::AssistStart
                    | EventKind::AssistDone) => Event::Sched(k, read_checked(b)),
                }
            }
        }
    }

    /// The native-endian `u32` at `at` (the caller checked `at + 4 <= bytes.len()`).
    fn u32_at(bytes: &[u8], at: usize) -> u32 {
        u32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
    }

    /// Reads a `T` from the start of `bytes`.
    ///
    /// # Safety
    /// `bytes` must hold at least `size_of::<T>()` bytes.
    unsafe fn read_checked<T: Plain>(bytes: &[u8]) -> T {
        debug_assert!(bytes.len() >= size_of::<T>());
        // SAFETY: the caller guarantees the length; the read is unaligned-safe and `T: Plain`
        // makes every byte pattern valid.
        unsafe { bytes.as_ptr().cast::<T>().read_unaligned() }
    }

    /// The record bytes of `e` (what the kernel side writes).
    pub fn encode(e: &Event) -> &[u8] {
        match e {
            Event::Create(v) => bytes_of(v),
            Event::Park(v) => bytes_of(v),
            Event::Ready(v) => bytes_of(v),
            Event::Execute(v) | Event::Exit(v) | Event::Yield(v) => bytes_of(v),
            Event::Switch(v) => bytes_of(v),
            Event::Wakeup(v) => bytes_of(v),
            Event::ThreadExit(v) => bytes_of(v),
            Event::Sched(_, v) => bytes_of(v),
        }
    }

    impl Event {
        /// The common header.
        pub fn header(&self) -> &Header {
            match self {
                Event::Create(v) => &v.header,
                Event::Park(v) => &v.header,
                Event::Ready(v) => &v.header,
                Event::Execute(v) | Event::Exit(v) | Event::Yield(v) => &v.header,
                Event::Switch(v) => &v.header,
                Event::Wakeup(v) => &v.header,
                Event::ThreadExit(v) => &v.header,
                Event::Sched(_, v) => &v.header,
            }
        }

        /// The kind (always valid for a decoded event).
        pub fn kind(&self) -> EventKind {
            match self {
                Event::Create(_) => EventKind::Create,
                Event::Park(_) => EventKind::Park,
                Event::Ready(_) => EventKind::Ready,
                Event::Execute(_) => EventKind::Execute,
                Event::Exit(_) => EventKind::Exit,
                Event::Switch(_) => EventKind::Switch,
                Event::Wakeup(_) => EventKind::Wakeup,
                Event::ThreadExit(_) => EventKind::ThreadExit,
                Event::Yield(_) => EventKind::Yield,
                Event::Sched(k, _) => *k,
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::event::MAX_STACK;

        fn h(kind: EventKind) -> Header {
            Header {
                kind: kind as u32,
                tid: 42,
                ktime_ns: 123_456_789,
            }
        }

        #[test]
        fn round_trip_every_kind() {
            let mut stack = [0u64; MAX_STACK];
            stack[0] = 0x40_1000;
            stack[1] = 0x40_2000;
            let events = [
                Event::Create(GoCreate {
                    header: h(EventKind::Create),
                    goid: 7,
                    parent_goid: 1,
                    gopc: 0x40_0000,
                    startpc: 0x40_0100,
                }),
                Event::Park(GoPark {
                    header: h(EventKind::Park),
                    goid: 7,
                    reason: 14,
                    stack_len: 2,
                    stack,
                }),
                Event::Ready(GoReady {
                    header: h(EventKind::Ready),
                    goid: 7,
                    waker_goid: 8,
                    stack_len: 2,
                    pad: 0,
                    stack,
                }),
                Event::Execute(GoId {
                    header: h(EventKind::Execute),
                    goid: 7,
                }),
                Event::Exit(GoId {
                    header: h(EventKind::Exit),
                    goid: 7,
                }),
                Event::Switch(SchedSwitch {
                    header: h(EventKind::Switch),
                    prev_tid: 1,
                    next_tid: 2,
                    prev_state: 1,
                }),
                Event::Wakeup(SchedWakeup {
                    header: h(EventKind::Wakeup),
                    wakee_tid: 3,
                    target_cpu: 1,
                }),
                Event::ThreadExit(ProcExit {
                    header: h(EventKind::ThreadExit),
                    group_dead: 1,
                    pad: 0,
                }),
                Event::Yield(GoId {
                    header: h(EventKind::Yield),
                    goid: 7,
                }),
            ];
            let sched = EventKind::ALL[9..].iter().map(|&k| {
                Event::Sched(
                    k,
                    GoArg {
                        header: h(k),
                        goid: 7,
                        arg: 3,
                        pad: 0,
                    },
                )
            });
            let events = events.into_iter().chain(sched);
            for e in events {
                let bytes = encode(&e);
                assert_eq!(bytes.len(), e.kind().size());
                assert_eq!(decode(bytes), Ok(e));
                // Truncated records are errors, never garbage.
                assert!(matches!(
                    decode(&bytes[..bytes.len() - 1]),
                    Err(DecodeError::Short { .. })
                ));
            }
        }

        #[test]
        fn raw_view_agrees_with_decode() {
            let mut stack = [0u64; MAX_STACK];
            stack[..3].copy_from_slice(&[0x40_1000, 0x40_2000, 0x40_3000]);
            let park = Event::Park(GoPark {
                header: h(EventKind::Park),
                goid: 7,
                reason: 2,
                stack_len: 3,
                stack,
            });
            let ready = Event::Ready(GoReady {
                header: h(EventKind::Ready),
                goid: 7,
                waker_goid: 9,
                stack_len: 2,
                pad: 0,
                stack: {
                    let mut two = stack;
                    two[2] = 0;
                    two
                },
            });
            let exit = Event::Exit(GoId {
                header: h(EventKind::Exit),
                goid: 7,
            });
            for (e, pcs) in [
                (park, &stack[..3]),
                (ready, &stack[..2]),
                (exit, &stack[..0]),
            ] {
                let bytes = encode(&e);
                let raw = Raw::new(bytes).unwrap();
                assert_eq!(raw.kind(), e.kind());
                assert_eq!(raw.event(), e);
                assert_eq!(raw.create(), None);
                assert_eq!(raw.bytes(), bytes);
                assert!(raw.stack().eq(pcs.iter().copied()));
                assert_eq!(raw.stack_bytes().len(), 8 * pcs.len());
                // The used part, padded with zeros, is the same event.
                let mut padded = raw.used().to_vec();
                assert!(padded.len() < bytes.len() || pcs.is_empty());
                padded.resize(bytes.len(), 0);
                assert_eq!(decode(&padded), Ok(e));
            }
            let create = GoCreate {
                header: h(EventKind::Create),
                goid: 7,
                parent_goid: 1,
                gopc: 0x40_0000,
                startpc: 0x40_0100,
            };
            let ce = Event::Create(create);
            let raw = Raw::new(encode(&ce)).unwrap();
            assert_eq!(raw.create(), Some(create));
            assert_eq!(raw.used(), encode(&ce));
            let mut long = encode(&park).to_vec();
            long.extend_from_slice(&[1, 2, 3]);
            let raw = Raw::new(&long).unwrap();
            assert_eq!(raw.bytes().len(), long.len());
            assert_eq!(raw.used().len(), 32 + 3 * 8);
        }

        #[test]
        fn rejects_bad_kind_and_stack_len() {
            let mut bytes = encode(&Event::Execute(GoId {
                header: h(EventKind::Execute),
                goid: 1,
            }))
            .to_vec();
            bytes[0] = 99;
            assert_eq!(decode(&bytes), Err(DecodeError::Kind(UnknownEventKind(99))));
            let mut p = GoPark {
                header: h(EventKind::Park),
                ..GoPark::default()
            };
            p.stack_len = MAX_STACK as u32 + 1;
            assert_eq!(
                decode(encode(&Event::Park(p))),
                Err(DecodeError::StackLen(MAX_STACK as u32 + 1))
            );
            assert!(decode(&[1, 0]).is_err());
        }

        #[test]
        fn kind_round_trip() {
            for k in EventKind::ALL {
                assert_eq!(EventKind::try_from(k as u32), Ok(k));
            }
            assert!(EventKind::try_from(0).is_err());
        }
    }
}
