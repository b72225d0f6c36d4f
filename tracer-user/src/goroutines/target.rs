//! Opening a live Go process for a dump: its binary (version, pclntab), the runtime layout of
//! that version, the PIE load bias, and the goroutine list, each failure turned into an error
//! that says how to fix it.

use std::sync::Arc;

use super::{
    DumpOptions, DumpStats, Goroutine,
    decode::{DecodeError, Decoder},
    gstruct::GOffsets,
    locate::{self, AllgsLocation, LocateError},
    procinfo,
    symbols::{ArgLayout, CachedSymbols, FuncInfo, FuncKind, SourceFrame, Symbols},
};
use crate::{
    gobin::{
        GoBinary, GobinError,
        layout::{LayoutError, RuntimeLayout},
        pclntab::Pclntab,
        version::GoVersion,
        waitreason::{StringTableError, WaitReasons},
    },
    memory::{MemoryError, MemorySource, ProcessMemory},
};

/// Why `gtrace dump` could not run (per-goroutine problems are not errors: they are counted).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DumpError {
    /// There is no process with this id.
    #[error("no process with id {pid} (check the PID: `pgrep -a <name>`)")]
    NoSuchProcess {
        /// The PID asked for.
        pid: i32,
    },
    /// The kernel refused to let us read the process.
    #[error("permission denied reading process {pid}: {hint}")]
    PermissionDenied {
        /// The PID asked for.
        pid: i32,
        /// What to do about it (uid, Yama `ptrace_scope`, `CAP_SYS_PTRACE`).
        hint: String,
    },
    /// The executable is not a Go program gtrace can read.
    #[error("process {pid} is not a Go program gtrace can read: {source}")]
    NotGo {
        /// The PID asked for.
        pid: i32,
        /// What the binary parser found.
        #[source]
        source: GobinError,
    },
    /// The Go version is unknown or unsupported.
    #[error("process {pid}: {reason}")]
    UnsupportedVersion {
        /// The PID asked for.
        pid: i32,
        /// Which version and what is supported.
        reason: String,
    },
    /// The goroutine list could not be found or trusted.
    #[error("process {pid}: {source}")]
    GoroutineList {
        /// The PID asked for.
        pid: i32,
        /// What went wrong.
        #[source]
        source: LocateError,
    },
    /// Reading the process failed as a whole (it exited mid-dump, typically).
    #[error("process {pid}: {source}")]
    Memory {
        /// The PID asked for.
        pid: i32,
        /// The read error.
        #[source]
        source: MemoryError,
    },
    /// Writing the output failed (a closed pipe, a full disk).
    #[error("cannot write the dump: {0}")]
    Output(#[source] Arc<std::io::Error>),
}

impl DumpError {
    /// True when the output was closed early (`gtrace dump | head`): not a failure.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Self::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// `abi.FuncFlag` bits (runtime/symtab.go, internal/abi/symtab.go; same since 1.18).
const FLAG_TOP_FRAME: u8 = 1;
const FLAG_SP_WRITE: u8 = 2;

/// `abi.FuncIDWrapper` per Go minor: it is the last `FuncID` and moves as IDs are added
/// (internal/abi/symtab.go: 21 in 1.19–1.21, 22 in 1.22–1.24, 23 since 1.25).
fn wrapper_func_id(minor: u32) -> u8 {
    match minor {
        ..=21 => 21,
        22..=24 => 22,
        _ => 23,
    }
}

/// [`Symbols`] over a binary's pclntab, at runtime addresses (`bias` added).
pub struct BinarySymbols<'a> {
    tab: Pclntab<'a>,
    bias: u64,
    wrapper_id: u8,
    /// Before Go 1.21 the runtime reads argument liveness at the PC past the frame's inlined
    /// calls, from 1.21 at the frame's own symbolization PC.
    args_at_outermost_pc: bool,
}

impl std::fmt::Debug for BinarySymbols<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BinarySymbols")
            .field("bias", &self.bias)
            .finish_non_exhaustive()
    }
}

impl<'a> BinarySymbols<'a> {
    /// Symbols of `bin` loaded at `bias`, for Go 1.`minor`.
    pub fn new(bin: &'a GoBinary, bias: u64, minor: u32) -> Self {
        Self {
            tab: bin.pclntab(),
            bias,
            wrapper_id: wrapper_func_id(minor),
            args_at_outermost_pc: minor < 21,
        }
    }
}

impl Symbols for BinarySymbols<'_> {
    fn arg_layout(&self, func: &FuncInfo, pc: u64) -> ArgLayout {
        let Some(Some(f)) = self.tab.find_func(func.entry.wrapping_sub(self.bias)).ok() else {
            return ArgLayout::Unknown;
        };
        let mut pc = pc.wrapping_sub(self.bias);
        if self.args_at_outermost_pc {
            match self.tab.outermost_pc(&f, pc) {
                Ok(p) => pc = p,
                Err(_) => return ArgLayout::Unknown,
            }
        }
        match self.tab.arg_items(&f, pc) {
            Ok(Some(items)) => ArgLayout::Items(items.into()),
            Ok(None) => ArgLayout::Absent,
            Err(_) => ArgLayout::Unknown,
        }
    }

    fn func_at(&self, pc: u64) -> Option<FuncInfo> {
        let f = self.tab.find_func(pc.wrapping_sub(self.bias)).ok()??;
        let name: Arc<str> = self.tab.name(&f).ok()?.into();
        let kind = if f.func_id == self.wrapper_id {
            FuncKind::Wrapper
        } else {
            FuncKind::from_name(&name)
        };
        Some(FuncInfo {
            entry: f.entry.wrapping_add(self.bias),
            name,
            kind,
            top_frame: f.flag & FLAG_TOP_FRAME != 0,
            sp_write: f.flag & FLAG_SP_WRITE != 0,
        })
    }

    fn sp_delta(&self, func: &FuncInfo, pc: u64) -> Option<u32> {
        let f = self
            .tab
            .find_func(func.entry.wrapping_sub(self.bias))
            .ok()??;
        u32::try_from(self.tab.sp_delta(&f, pc.wrapping_sub(self.bias)).ok()?).ok()
    }

    fn source_frames(&self, func: &FuncInfo, pc: u64) -> Vec<SourceFrame> {
        let Some(Some(f)) = self.tab.find_func(func.entry.wrapping_sub(self.bias)).ok() else {
            return Vec::new();
        };
        let Ok(frames) = self.tab.frames_in(&f, pc.wrapping_sub(self.bias)) else {
            return Vec::new();
        };
        frames
            .into_iter()
            .map(|fr| {
                let kind = if fr.inlined {
                    FuncKind::from_name(&fr.function)
                } else {
                    func.kind
                };
                SourceFrame {
                    function: fr.function.into(),
                    file: fr.file.into(),
                    line: fr.line,
                    inlined: fr.inlined,
                    kind,
                }
            })
            .collect()
    }
}

/// A live Go process ready to be dumped.
#[derive(Debug)]
pub struct Target {
    pid: i32,
    bin: GoBinary,
    version: GoVersion,
    offs: GOffsets,
    wait_reasons: Vec<Arc<str>>,
    bias: u64,
    loc: AllgsLocation,
    mem: ProcessMemory,
}

impl Target {
    /// Opens process `pid`: reads its executable, picks the runtime layout, finds and
    /// validates the goroutine list.
    pub fn open(pid: i32) -> Result<Self, DumpError> {
        let upid = u32::try_from(pid).map_err(|_| DumpError::NoSuchProcess { pid })?;
        if !procinfo::process_exists(pid) {
            return Err(DumpError::NoSuchProcess { pid });
        }
        let mem = ProcessMemory::new(pid);
        let bin = GoBinary::open_pid(upid).map_err(|source| match &source {
            GobinError::Open { source: io, .. }
                if io.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                DumpError::PermissionDenied {
                    pid,
                    hint: procinfo::permission_hint(pid),
                }
            }
            GobinError::Open { source: io, .. } if io.kind() == std::io::ErrorKind::NotFound => {
                DumpError::NoSuchProcess { pid }
            }
            _ => DumpError::NotGo { pid, source },
        })?;
        let version = bin
            .version()
            .cloned()
            .ok_or_else(|| DumpError::UnsupportedVersion {
                pid,
                reason: "the binary's build info names no Go release (a devel toolchain?)".into(),
            })?;
        let unsupported = |e: &dyn std::fmt::Display| DumpError::UnsupportedVersion {
            pid,
            reason: e.to_string(),
        };
        let layout = Self::layout(&bin).map_err(|e| unsupported(&e))?;
        layout.check().map_err(|e| unsupported(&e))?;
        let offs = GOffsets::from_layout(&layout);
        let wait_reasons = Self::wait_reasons(&bin).map_err(|e| unsupported(&e))?;
        let bias = Self::bias(pid, &bin);
        // Reading something first turns permission problems into a clear error.
        let probe = bin
            .func_by_name("runtime.forEachGRace")
            .or_else(|_| bin.func_by_name("runtime.main"))
            .map_err(|source| DumpError::NotGo { pid, source })?;
        let mut code = vec![0u8; usize::try_from((probe.end - probe.entry).min(4096)).unwrap_or(0)];
        mem.read_at(probe.entry + bias, &mut code)
            .map_err(|e| match e {
                MemoryError::PermissionDenied { .. } => DumpError::PermissionDenied {
                    pid,
                    hint: procinfo::permission_hint(pid),
                },
                MemoryError::NoSuchProcess { .. } => DumpError::NoSuchProcess { pid },
                other => DumpError::Memory { pid, source: other },
            })?;
        let loc = Self::locate(&bin, mem, &offs, bias)
            .map_err(|source| DumpError::GoroutineList { pid, source })?;
        Self::check_sample(mem, &layout, loc).map_err(|why| {
            unsupported(&format!(
                "the {version} runtime layout does not fit this process's goroutines: {why}"
            ))
        })?;
        Ok(Self {
            pid,
            bin,
            version,
            offs,
            wait_reasons,
            bias,
            loc,
            mem,
        })
    }

    /// The binary's own DWARF when it has some, else the generated table for its version
    /// (gobin's canonical choice, which also warns when the two disagree).
    fn layout(bin: &GoBinary) -> Result<RuntimeLayout, LayoutError> {
        RuntimeLayout::for_go_binary(bin, None)
    }

    /// `runtime.waitReasonStrings` from the binary when it has symbols, else the table.
    fn wait_reasons(bin: &GoBinary) -> Result<Vec<Arc<str>>, StringTableError> {
        let w = WaitReasons::for_go_binary(bin, None)?.ok_or_else(|| {
            StringTableError::UnsupportedVersion {
                version: GoVersion::new(0, 0, 0),
                supported: "(the binary names no Go version)".into(),
            }
        })?;
        Ok(w.strings.iter().map(|s| Arc::from(s.as_ref())).collect())
    }

    /// Reads up to 64 `g`s of the list whole and lets the layout judge them
    /// (`RuntimeLayout::check_g_sample`): a wrong layout must fail here, not print garbage.
    fn check_sample(
        mem: ProcessMemory,
        layout: &RuntimeLayout,
        loc: AllgsLocation,
    ) -> Result<(), String> {
        let (ptr, len) = locate::read_list(&mem, loc).map_err(|e| e.to_string())?;
        let n = len.min(64) as usize;
        let mut raw = vec![0u8; n * 8];
        mem.read_at(ptr, &mut raw).map_err(|e| e.to_string())?;
        let size = layout.g.size as usize;
        let reqs: Vec<(u64, usize)> = raw
            .chunks_exact(8)
            .map(|c| (u64::from_le_bytes(c.try_into().unwrap_or_default()), size))
            .collect();
        let mut bytes = vec![0u8; n * size];
        let mut ok = vec![false; n];
        mem.read_scatter(&reqs, &mut bytes, &mut ok);
        let sample = reqs
            .iter()
            .zip(bytes.chunks_exact(size.max(1)))
            .zip(&ok)
            .filter(|(_, ok)| **ok)
            .map(|((r, b), _)| (r.0, b));
        layout
            .check_g_sample(sample)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn bias(pid: i32, bin: &GoBinary) -> u64 {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
        let Some(exe) = exe else { return 0 };
        let exe = exe.to_string_lossy();
        let mappings =
            procinfo::exe_mappings(&maps, exe.strip_suffix(" (deleted)").unwrap_or(&exe));
        let segs: Vec<(u64, u64)> = bin
            .image()
            .segments()
            .iter()
            .map(|s| (s.vaddr, s.offset))
            .collect();
        procinfo::load_bias(&mappings, &segs).unwrap_or(0)
    }

    /// Data symbols first, then the code of `runtime.forEachGRace`; every candidate is
    /// validated against the live process.
    fn locate(
        bin: &GoBinary,
        mem: ProcessMemory,
        offs: &GOffsets,
        bias: u64,
    ) -> Result<AllgsLocation, LocateError> {
        let mut candidates = Vec::new();
        if let (Some((l, _)), Some((p, _))) = (
            bin.data_symbol("runtime.allglen"),
            bin.data_symbol("runtime.allgptr"),
        ) {
            candidates.push(AllgsLocation::LenPtr {
                len_addr: l + bias,
                ptr_addr: p + bias,
            });
        }
        if let Some((a, _)) = bin.data_symbol("runtime.allgs") {
            candidates.push(AllgsLocation::Slice { addr: a + bias });
        }
        if let Ok(f) = bin.func_by_name("runtime.forEachGRace") {
            let len = usize::try_from((f.end - f.entry).min(4096)).unwrap_or(0);
            let mut code = vec![0u8; len];
            if mem.read_at(f.entry + bias, &mut code).is_ok() {
                candidates.extend(locate::candidates_from_for_each_g_race(
                    &code,
                    f.entry + bias,
                ));
            }
        }
        let mut last = LocateError::NotFound;
        for c in candidates {
            match locate::validate(&mem, offs, c) {
                Ok(()) => return Ok(c),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The target's Go version.
    pub fn version(&self) -> &GoVersion {
        &self.version
    }

    /// The version as the build info spells it (`go1.27.3`).
    pub fn version_string(&self) -> String {
        self.bin
            .build_info()
            .map_or_else(|| self.version.to_string(), |b| b.go_version.clone())
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Where the goroutine list was found.
    pub fn allgs_location(&self) -> AllgsLocation {
        self.loc
    }

    /// The start function of the goroutine whose `g` is at `g_addr` (its `g.startpc`,
    /// symbolized), or `None` if unreadable. Works for running goroutines, whose stack a dump
    /// cannot show.
    pub fn start_function(&self, g_addr: u64) -> Option<String> {
        let pc = self
            .mem
            .read_u64(g_addr.checked_add(u64::from(self.offs.startpc))?)
            .ok()?;
        let frames = self.bin.symbolize(pc.checked_sub(self.bias)?).ok()?;
        frames.last().map(|f| f.function.clone())
    }

    /// Reads every goroutine and hands each to `sink` as soon as it is decoded.
    pub fn dump(
        &self,
        opts: DumpOptions,
        sink: &mut dyn FnMut(Goroutine),
    ) -> Result<DumpStats, DumpError> {
        let syms = CachedSymbols::new(BinarySymbols::new(&self.bin, self.bias, self.version.minor));
        let dec = Decoder {
            mem: &self.mem,
            syms: &syms,
            offs: self.offs,
            minor: self.version.minor,
            wait_reasons: &self.wait_reasons,
        };
        dec.dump(self.loc, opts, sink).map_err(|e| match e {
            DecodeError::List(source) => DumpError::GoroutineList {
                pid: self.pid,
                source,
            },
            DecodeError::Memory(MemoryError::NoSuchProcess { .. }) => {
                DumpError::NoSuchProcess { pid: self.pid }
            }
            DecodeError::Memory(source) => DumpError::Memory {
                pid: self.pid,
                source,
            },
        })
    }
}
