//! Wait reasons (`g.waitreason`) and goroutine status names (`g.atomicstatus`), spelt exactly
//! as the Go runtime prints them in tracebacks, and a coarse category per reason for analysis.
//!
//! Why two sources: the numbering of `waitReason` changes between minors (1.20 split
//! "semacquire" into the sync.Mutex/RWMutex reasons, 1.24 added sync.WaitGroup.Wait and
//! synctest reasons, 1.25 added "(durable)" variants and "cleanup wait", 1.26 reordered many
//! entries — runtime/runtime2.go `waitReasonStrings` of each release). A binary with a symbol
//! table carries its own `runtime.waitReasonStrings` array, which is always right for it;
//! stripped binaries fall back to the table `cargo xtask gen-offsets` generates from each
//! toolchain. Categories are keyed by the string, never the number, so they survive
//! renumbering.

use std::borrow::Cow;

use object::{Object as _, ObjectSegment as _, ObjectSymbol as _};

use super::version::GoVersion;

/// Raised when a runtime string table cannot be found or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StringTableError {
    /// The generated table has no entry for this Go minor version.
    #[error(
        "no wait-reason table for {version} (supported: {supported}); if the binary's Go \
         version is mislabelled, pass --assume-go-version with a supported version"
    )]
    UnsupportedVersion {
        /// The version asked for.
        version: GoVersion,
        /// The supported minors.
        supported: String,
    },
    /// The symbol's size is not a whole number of string headers, or absurdly large.
    #[error("{symbol} has an implausible size of {size} bytes")]
    BadSize {
        /// The symbol name.
        symbol: &'static str,
        /// Its size.
        size: u64,
    },
    /// An address the table refers to is not backed by file data.
    #[error("{symbol}: address {addr:#x} (+{len} bytes) is outside the binary's file data")]
    Unmapped {
        /// The symbol name.
        symbol: &'static str,
        /// The address.
        addr: u64,
        /// The length wanted.
        len: u64,
    },
}

/// Where a [`WaitReasons`] / [`StatusNames`] table came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableSource {
    /// Read from the binary's data through its symbol table.
    Binary,
    /// The generated table of this exact toolchain.
    Table {
        /// The toolchain the entry was generated with.
        version: GoVersion,
    },
}

/// One Go minor's strings, as generated into `waitreason_table.rs`.
#[derive(Debug)]
pub struct StringsEntry {
    /// The toolchain the entry was generated with.
    pub taken_from: GoVersion,
    /// `runtime.waitReasonStrings`, indexed by `waitReason`.
    pub wait_reasons: &'static [&'static str],
    /// `runtime.gStatusStrings`, indexed by `_G*` status (without `_Gscan`).
    pub statuses: &'static [&'static str],
}

/// The `waitReason` → string table of one binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitReasons {
    /// Index = `waitReason` value.
    pub strings: Cow<'static, [Cow<'static, str>]>,
    /// Binary or table.
    pub source: TableSource,
}

/// The `_G*` status → string table of one binary (`runtime.gStatusStrings`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusNames {
    /// Index = status without the `_Gscan` bit; unused values are `""`.
    pub strings: Cow<'static, [Cow<'static, str>]>,
    /// Binary or table.
    pub source: TableSource,
}

/// Symbol of the wait-reason array (runtime/runtime2.go, every supported version).
pub const WAIT_REASONS_SYMBOL: &str = "runtime.waitReasonStrings";
/// Symbol of the status-name array (runtime/traceback.go, every supported version).
pub const STATUS_SYMBOL: &str = "runtime.gStatusStrings";

/// More entries than any Go release has (1.27 has 47 wait reasons, 12 statuses).
const MAX_ENTRIES: u64 = 1024;
/// Longer than any runtime wait-reason or status string.
const MAX_STRING: u64 = 256;

fn table_entry(version: &GoVersion) -> Result<&'static StringsEntry, StringTableError> {
    super::waitreason_table::STRINGS
        .iter()
        .find(|e| (e.taken_from.major, e.taken_from.minor) == (version.major, version.minor))
        .ok_or_else(|| StringTableError::UnsupportedVersion {
            version: version.clone(),
            supported: super::waitreason_table::STRINGS
                .iter()
                .map(|e| format!("go{}.{}", e.taken_from.major, e.taken_from.minor))
                .collect::<Vec<_>>()
                .join(", "),
        })
}

fn borrowed(s: &'static [&'static str]) -> Cow<'static, [Cow<'static, str>]> {
    Cow::Owned(s.iter().map(|s| Cow::Borrowed(*s)).collect())
}

fn owned(v: Vec<String>) -> Cow<'static, [Cow<'static, str>]> {
    Cow::Owned(v.into_iter().map(Cow::Owned).collect())
}

impl WaitReasons {
    /// From the binary's `runtime.waitReasonStrings`; `Ok(None)` without a symbol table.
    pub fn from_binary(file: &object::File<'_>) -> Result<Option<Self>, StringTableError> {
        Ok(read_string_array(file, WAIT_REASONS_SYMBOL)?.map(|v| Self {
            strings: owned(v),
            source: TableSource::Binary,
        }))
    }

    /// From the generated table for `version`'s minor.
    pub fn for_version(version: &GoVersion) -> Result<Self, StringTableError> {
        let e = table_entry(version)?;
        Ok(Self {
            strings: borrowed(e.wait_reasons),
            source: TableSource::Table {
                version: e.taken_from.clone(),
            },
        })
    }

    /// The binary's own table if it has symbols, else the generated one for `version`.
    pub fn load(file: &object::File<'_>, version: &GoVersion) -> Result<Self, StringTableError> {
        match Self::from_binary(file)? {
            Some(w) => Ok(w),
            None => Self::for_version(version),
        }
    }

    /// [`Self::load`] for an opened [`GoBinary`](super::GoBinary), with the build-info
    /// version unless `assume` overrides it; `None` when the binary is stripped and no
    /// version is known.
    pub fn for_go_binary(
        bin: &super::GoBinary,
        assume: Option<&GoVersion>,
    ) -> Result<Option<Self>, StringTableError> {
        let Ok(file) = object::File::parse(bin.image().bytes()) else {
            return Ok(None);
        };
        if let Some(w) = Self::from_binary(&file)? {
            return Ok(Some(w));
        }
        assume.or(bin.version()).map(Self::for_version).transpose()
    }

    /// The runtime's string for `reason`, `None` if out of range (the runtime prints
    /// "unknown wait reason").
    pub fn name(&self, reason: u8) -> Option<&str> {
        self.strings.get(usize::from(reason)).map(AsRef::as_ref)
    }

    /// The value the runtime uses for `name`, if any.
    pub fn index_of(&self, name: &str) -> Option<u8> {
        self.strings
            .iter()
            .position(|s| s == name)
            .and_then(|i| u8::try_from(i).ok())
    }
}

impl StatusNames {
    /// From the binary's `runtime.gStatusStrings`; `Ok(None)` without a symbol table.
    pub fn from_binary(file: &object::File<'_>) -> Result<Option<Self>, StringTableError> {
        Ok(read_string_array(file, STATUS_SYMBOL)?.map(|v| Self {
            strings: owned(v),
            source: TableSource::Binary,
        }))
    }

    /// From the generated table for `version`'s minor.
    pub fn for_version(version: &GoVersion) -> Result<Self, StringTableError> {
        let e = table_entry(version)?;
        Ok(Self {
            strings: borrowed(e.statuses),
            source: TableSource::Table {
                version: e.taken_from.clone(),
            },
        })
    }

    /// The runtime's word for `status` (the `_Gscan` bit is ignored, as goroutineheader does
    /// in runtime/traceback.go); `None` for values the runtime has no string for.
    pub fn name(&self, status: u32) -> Option<&str> {
        let s = self.strings.get((status & !GSTATUS_SCAN) as usize)?;
        (!s.is_empty()).then_some(s.as_ref())
    }
}

/// `_Gscan`: bit or-ed into a status while the GC scans the stack (runtime/runtime2.go).
pub const GSTATUS_SCAN: u32 = 0x1000;

/// Goroutine status values, identical in Go 1.19 … 1.27 (runtime/runtime2.go `_Gidle = iota`).
pub mod gstatus {
    /// `_Gidle`: just allocated.
    pub const IDLE: u32 = 0;
    /// `_Grunnable`: on a run queue.
    pub const RUNNABLE: u32 = 1;
    /// `_Grunning`: running user code.
    pub const RUNNING: u32 = 2;
    /// `_Gsyscall`: in a system call.
    pub const SYSCALL: u32 = 3;
    /// `_Gwaiting`: blocked (see `g.waitreason`).
    pub const WAITING: u32 = 4;
    /// `_Gdead`: unused / exited.
    pub const DEAD: u32 = 6;
    /// `_Gcopystack`: its stack is being moved.
    pub const COPYSTACK: u32 = 8;
    /// `_Gpreempted`: stopped for a suspendG preemption.
    pub const PREEMPTED: u32 = 9;
    /// `_Gleaked` (1.26+, goroutine leak profile).
    pub const LEAKED: u32 = 10;
    /// `_Gdeadextra` (1.26+, "waiting for cgo callback").
    pub const DEADEXTRA: u32 = 11;
}

/// What a goroutine waits for, from its wait-reason string (for leak and blocking analysis).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum WaitCategory {
    /// Channel receive.
    ChanReceive,
    /// Channel send.
    ChanSend,
    /// Send or receive on a nil channel: blocks forever.
    NilChan,
    /// `select` (with cases), or `select {}` (no cases: forever).
    Select,
    /// `select {}`.
    SelectNoCases,
    /// `sync.Mutex` / `sync.RWMutex`.
    Mutex,
    /// `sync.WaitGroup.Wait`.
    WaitGroup,
    /// `sync.Cond.Wait`.
    Cond,
    /// A runtime semaphore ("semacquire": sync primitives before 1.20/1.24, and others).
    Semacquire,
    /// Network or file I/O through the netpoller.
    Io,
    /// A system call (status `_Gsyscall`, not a wait reason; listed for analysis callers).
    Syscall,
    /// `time.Sleep`.
    Sleep,
    /// testing/synctest.
    Synctest,
    /// Coroutine switch (iter.Pull).
    Coroutine,
    /// Runtime-internal: GC workers, finalizers, forced GC, trace reader, debug calls, ….
    Runtime,
    /// A string gtrace does not know.
    Other,
}

impl WaitCategory {
    /// The category of a wait-reason string as the runtime spells it.
    pub fn of(reason: &str) -> Self {
        // Inside a synctest bubble 1.24 appends " (synctest)", 1.25+ " (durable)"
        // (runtime/runtime2.go waitReasonSynctestChanReceive and friends).
        let base = reason
            .strip_suffix(" (durable)")
            .or_else(|| reason.strip_suffix(" (synctest)"))
            .unwrap_or(reason);
        match base {
            "chan receive" => Self::ChanReceive,
            "chan send" => Self::ChanSend,
            "chan receive (nil chan)" | "chan send (nil chan)" => Self::NilChan,
            "select" => Self::Select,
            "select (no cases)" => Self::SelectNoCases,
            "sync.Mutex.Lock" | "sync.RWMutex.RLock" | "sync.RWMutex.Lock" => Self::Mutex,
            "sync.WaitGroup.Wait" => Self::WaitGroup,
            "sync.Cond.Wait" => Self::Cond,
            "semacquire" => Self::Semacquire,
            "IO wait" => Self::Io,
            "sleep" => Self::Sleep,
            "synctest.Run" | "synctest.Wait" => Self::Synctest,
            "coroutine" => Self::Coroutine,
            "syscall" => Self::Syscall,
            "GC assist marking"
            | "GC assist wait"
            | "GC sweep wait"
            | "GC scavenge wait"
            | "GC worker (idle)"
            | "GC worker (active)"
            | "GC mark termination"
            | "GC weak to strong wait"
            | "garbage collection"
            | "garbage collection scan"
            | "wait for GC cycle"
            | "finalizer wait"
            | "cleanup wait"
            | "force gc (idle)"
            | "timer goroutine (idle)"
            | "GOMAXPROCS updater (idle)"
            | "trace reader (blocked)"
            | "trace goroutine status"
            | "trace proc status"
            | "page trace flush"
            | "dumping heap"
            | "panicwait"
            | "preempted"
            | "debug call"
            | "stopping the world"
            | "flushing proc caches" => Self::Runtime,
            _ => Self::Other,
        }
    }
}

/// Reads a Go `[N]string` array variable named `symbol` from the binary's file data.
///
/// `Ok(None)` if the symbol table lacks it (stripped). Reads link-time addresses: in PIE
/// builds the Go linker also stores each pointer's value in the file next to its
/// `R_X86_64_RELATIVE` relocation (seen in 1.19 … 1.27 PIE builds), so no relocation is needed.
pub fn read_string_array(
    file: &object::File<'_>,
    symbol: &'static str,
) -> Result<Option<Vec<String>>, StringTableError> {
    let Some(sym) = file.symbols().find(|s| s.name() == Ok(symbol)) else {
        return Ok(None);
    };
    let size = sym.size();
    if size % 16 != 0 || size / 16 > MAX_ENTRIES {
        return Err(StringTableError::BadSize { symbol, size });
    }
    let headers = read_vaddr(file, sym.address(), size).ok_or(StringTableError::Unmapped {
        symbol,
        addr: sym.address(),
        len: size,
    })?;
    let mut out = Vec::with_capacity((size / 16) as usize);
    for h in headers.chunks_exact(16) {
        let ptr = u64::from_le_bytes(h[..8].try_into().unwrap_or_default());
        let len = u64::from_le_bytes(h[8..].try_into().unwrap_or_default());
        if len == 0 {
            out.push(String::new());
            continue;
        }
        if len > MAX_STRING {
            return Err(StringTableError::BadSize { symbol, size: len });
        }
        let bytes = read_vaddr(file, ptr, len).ok_or(StringTableError::Unmapped {
            symbol,
            addr: ptr,
            len,
        })?;
        out.push(String::from_utf8_lossy(bytes).into_owned());
    }
    Ok(Some(out))
}

/// The file bytes at link-time virtual address `addr`, if a loadable segment has them.
fn read_vaddr<'d>(file: &object::File<'d>, addr: u64, len: u64) -> Option<&'d [u8]> {
    file.segments().find_map(|seg| {
        let start = addr.checked_sub(seg.address())?;
        let data = seg.data().ok()?;
        let end = start.checked_add(len)?;
        data.get(usize::try_from(start).ok()?..usize::try_from(end).ok()?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_by_string() {
        assert_eq!(WaitCategory::of("chan receive"), WaitCategory::ChanReceive);
        assert_eq!(
            WaitCategory::of("chan send (durable)"),
            WaitCategory::ChanSend
        );
        assert_eq!(
            WaitCategory::of("chan send (nil chan)"),
            WaitCategory::NilChan
        );
        assert_eq!(
            WaitCategory::of("select (no cases)"),
            WaitCategory::SelectNoCases
        );
        assert_eq!(WaitCategory::of("sync.RWMutex.RLock"), WaitCategory::Mutex);
        assert_eq!(
            WaitCategory::of("sync.WaitGroup.Wait (durable)"),
            WaitCategory::WaitGroup
        );
        assert_eq!(WaitCategory::of("semacquire"), WaitCategory::Semacquire);
        assert_eq!(WaitCategory::of("IO wait"), WaitCategory::Io);
        assert_eq!(WaitCategory::of("finalizer wait"), WaitCategory::Runtime);
        assert_eq!(WaitCategory::of("no such reason"), WaitCategory::Other);
    }

    #[test]
    fn every_generated_reason_has_a_category() {
        for e in super::super::waitreason_table::STRINGS {
            for (i, r) in e.wait_reasons.iter().enumerate() {
                if i == 0 {
                    assert_eq!(*r, "", "waitReasonZero of {}", e.taken_from);
                    continue;
                }
                assert_ne!(
                    WaitCategory::of(r),
                    WaitCategory::Other,
                    "{r:?} of {}",
                    e.taken_from
                );
            }
        }
    }

    #[test]
    fn table_lookup_and_errors() {
        let msg = WaitReasons::for_version(&GoVersion::new(1, 5, 0))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("go1.5") && msg.contains("--assume-go-version"),
            "{msg}"
        );
        for e in super::super::waitreason_table::STRINGS {
            let v = GoVersion::new(e.taken_from.major, e.taken_from.minor, 0);
            let w = WaitReasons::for_version(&v).unwrap();
            assert_eq!(
                w.source,
                TableSource::Table {
                    version: e.taken_from.clone()
                }
            );
            assert_eq!(w.name(0), Some(""));
            let i = w.index_of("chan receive").unwrap();
            assert_eq!(w.name(i), Some("chan receive"));
            let s = StatusNames::for_version(&v).unwrap();
            assert_eq!(s.name(gstatus::WAITING), Some("waiting"));
            assert_eq!(s.name(gstatus::WAITING | GSTATUS_SCAN), Some("waiting"));
            assert_eq!(s.name(gstatus::RUNNABLE), Some("runnable"));
            assert_eq!(s.name(5), None);
        }
    }
}
