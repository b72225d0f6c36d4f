//! Loading gtrace's eBPF object and attaching its programs to one target process.
//!
//! The object is built by `build.rs` and embedded in the binary, so `gtrace` is a single file.
//! A [`ProbeSet`] owns the loaded object; dropping it detaches every probe and unloads every
//! program (aya's links are RAII), so no breakpoint outlives gtrace — Ctrl-C included, as long
//! as the process unwinds normally.
//!
//! Uprobes are attached by *file offset* in the target's executable (never by symbol name):
//! stripped Go binaries have no symbols, and probe sites are chosen inside functions (after
//! the stack-bound check) by `gobin::probesite`.

pub mod governor;
pub mod latency;
pub mod lifecycle;
pub mod session;

use std::{collections::BTreeMap, num::NonZeroU32, path::Path};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData, PerCpuArray, RingBuf},
    programs::{TracePoint, UProbe, uprobe::UProbeScope},
};
use tracer_common::{
    config::{CONFIG_GLOBAL, Config},
    counters::{
        CONTROL_EMIT, CONTROL_MAP, CONTROL_SAMPLED_OUT, DROPS_MAP, ERRORS_MAP, HITS_MAP,
        TARGET_TGID_GLOBAL,
    },
    event::EVENTS_MAP,
    probe::ProbeId,
};

/// The eBPF object built by `build.rs`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer-ebpf"));

/// Loading or attaching failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// The kernel refused the object (privileges, verifier, missing kernel feature).
    #[error("loading gtrace's eBPF programs into the kernel failed")]
    Load(#[source] aya::EbpfError),
    /// A program the object should contain is missing (a build mismatch).
    #[error("the embedded eBPF object has no program `{0}` (rebuild gtrace)")]
    MissingProgram(&'static str),
    /// A program could not be loaded or attached.
    #[error("attaching {probe} failed")]
    Attach {
        /// Which probe.
        probe: &'static str,
        /// aya's error, with the verifier log when there is one.
        #[source]
        source: aya::programs::ProgramError,
    },
    /// A counter map could not be read.
    #[error("reading eBPF map {0} failed")]
    Map(&'static str, #[source] aya::maps::MapError),
    /// The target PID is 0, which would mean "every process" to the kernel.
    #[error("refusing to attach to PID 0")]
    PidZero,
}

/// Per-probe totals read from the per-CPU counter maps.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Hits per probe, summed over CPUs.
    pub hits: BTreeMap<&'static str, u64>,
    /// Failures per probe (unreadable memory, full ring buffer…), summed over CPUs.
    pub errors: BTreeMap<&'static str, u64>,
    /// Events lost per probe because the ring buffer was full, summed over CPUs.
    pub drops: BTreeMap<&'static str, u64>,
}

impl Counts {
    /// Total events lost to a full ring buffer.
    pub fn total_drops(&self) -> u64 {
        self.drops.values().sum()
    }

    /// Total probe failures (unreadable target memory…).
    pub fn total_errors(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// gtrace's programs loaded for one target; dropping it detaches everything.
pub struct ProbeSet {
    ebpf: Ebpf,
    pid: NonZeroU32,
}

impl ProbeSet {
    /// Loads the object with the target's tgid patched in as a global.
    pub fn load(pid: u32) -> Result<Self, ProbeError> {
        Self::load_with(pid, &Config::default())
    }

    /// Loads the object with the target's tgid and runtime offsets patched in as globals.
    pub fn load_with(pid: u32, config: &Config) -> Result<Self, ProbeError> {
        let pid = NonZeroU32::new(pid).ok_or(ProbeError::PidZero)?;
        let ebpf = EbpfLoader::new()
            .override_global(TARGET_TGID_GLOBAL, &pid.get(), true)
            .override_global(CONFIG_GLOBAL, config, true)
            .load(OBJECT)
            .map_err(ProbeError::Load)?;
        Ok(Self { ebpf, pid })
    }

    /// Loads the object with the tgid, the lifecycle offsets and the panic-path offsets
    /// patched in as globals.
    pub fn load_with_panic(
        pid: u32,
        config: &Config,
        panic: &tracer_common::panic::PanicConfig,
    ) -> Result<Self, ProbeError> {
        let pid = NonZeroU32::new(pid).ok_or(ProbeError::PidZero)?;
        let ebpf = EbpfLoader::new()
            .override_global(TARGET_TGID_GLOBAL, &pid.get(), true)
            .override_global(CONFIG_GLOBAL, config, true)
            .override_global(tracer_common::panic::PANIC_CONFIG_GLOBAL, panic, true)
            .load(OBJECT)
            .map_err(ProbeError::Load)?;
        Ok(Self { ebpf, pid })
    }

    /// Attaches `probe`'s uprobe at `file_offset` of `binary`, firing for the target only.
    pub fn attach_uprobe(
        &mut self,
        probe: ProbeId,
        binary: &Path,
        file_offset: u64,
    ) -> Result<(), ProbeError> {
        let attach = |e| ProbeError::Attach {
            probe: probe.name(),
            source: e,
        };
        let prog: &mut UProbe = self
            .ebpf
            .program_mut(probe.program())
            .ok_or(ProbeError::MissingProgram(probe.program()))?
            .try_into()
            .map_err(attach)?;
        if prog.fd().is_err() {
            prog.load().map_err(attach)?;
        }
        prog.attach(file_offset, binary, UProbeScope::OneProcess(self.pid))
            .map_err(attach)?;
        Ok(())
    }

    /// Attaches `sched:sched_switch` (filtered to the target's threads inside the program).
    pub fn attach_sched_switch(&mut self) -> Result<(), ProbeError> {
        self.attach_tracepoint(ProbeId::SchedSwitch, "sched_switch")
    }

    /// Attaches the `sched:<name>` tracepoint program of `probe`.
    pub fn attach_tracepoint(
        &mut self,
        probe: ProbeId,
        name: &'static str,
    ) -> Result<(), ProbeError> {
        let attach = |e| ProbeError::Attach {
            probe: probe.name(),
            source: e,
        };
        let prog: &mut TracePoint = self
            .ebpf
            .program_mut(probe.program())
            .ok_or(ProbeError::MissingProgram(probe.program()))?
            .try_into()
            .map_err(attach)?;
        prog.load().map_err(attach)?;
        prog.attach("sched", name).map_err(attach)?;
        Ok(())
    }

    /// Attaches the overhead bench's synthetic event source: `bench_park` on
    /// `syscalls:sys_enter_getppid` (tracer-ebpf `probes/bench.rs`), counted as gopark.
    pub fn attach_bench_parks(&mut self) -> Result<(), ProbeError> {
        const PROGRAM: &str = "bench_park";
        let attach = |e| ProbeError::Attach {
            probe: PROGRAM,
            source: e,
        };
        let prog: &mut TracePoint = self
            .ebpf
            .program_mut(PROGRAM)
            .ok_or(ProbeError::MissingProgram(PROGRAM))?
            .try_into()
            .map_err(attach)?;
        prog.load().map_err(attach)?;
        prog.attach("syscalls", "sys_enter_getppid")
            .map_err(attach)?;
        Ok(())
    }

    /// Current hit and error totals.
    pub fn counts(&self) -> Result<Counts, ProbeError> {
        Ok(Counts {
            hits: self.sum(HITS_MAP)?,
            errors: self.sum(ERRORS_MAP)?,
            drops: self.sum(DROPS_MAP)?,
        })
    }

    /// Switches `probe` between emitting its events and only counting its hits (the
    /// `CONTROL` map every lifecycle program reads after counting its hit).
    pub fn set_sampled_out(&mut self, probe: ProbeId, sampled_out: bool) -> Result<(), ProbeError> {
        let m = self.ebpf.map_mut(CONTROL_MAP).ok_or(ProbeError::Map(
            CONTROL_MAP,
            aya::maps::MapError::InvalidName {
                name: CONTROL_MAP.into(),
            },
        ))?;
        let mut arr: Array<_, u32> =
            Array::try_from(m).map_err(|e| ProbeError::Map(CONTROL_MAP, e))?;
        let v = if sampled_out {
            CONTROL_SAMPLED_OUT
        } else {
            CONTROL_EMIT
        };
        arr.set(probe as u32, v, 0)
            .map_err(|e| ProbeError::Map(CONTROL_MAP, e))
    }

    /// Detaches every program (their maps stay readable): nothing produces events or
    /// counts any more, so the ring buffer can then be drained to its end.
    pub fn detach_all(&mut self) {
        for (_, prog) in self.ebpf.programs_mut() {
            // Errors mean "not loaded": nothing attached.
            let _ = match prog {
                aya::programs::Program::UProbe(p) => p.unload(),
                aya::programs::Program::TracePoint(p) => p.unload(),
                _ => Ok(()),
            };
        }
    }

    /// Takes the event ring buffer (once); `None` if already taken.
    pub fn take_events(&mut self) -> Option<RingBuf<MapData>> {
        self.ebpf
            .take_map(EVENTS_MAP)
            .and_then(|m| RingBuf::try_from(m).ok())
    }

    fn sum(&self, map: &'static str) -> Result<BTreeMap<&'static str, u64>, ProbeError> {
        let m = self.ebpf.map(map).ok_or(ProbeError::Map(
            map,
            aya::maps::MapError::InvalidName { name: map.into() },
        ))?;
        let arr: PerCpuArray<_, u64> =
            PerCpuArray::try_from(m).map_err(|e| ProbeError::Map(map, e))?;
        let mut out = BTreeMap::new();
        for p in ProbeId::ALL {
            let per_cpu = arr
                .get(&(p as u32), 0)
                .map_err(|e| ProbeError::Map(map, e))?;
            out.insert(p.name(), per_cpu.iter().sum());
        }
        Ok(out)
    }
}

/// How long the kernel is given to remove breakpoints after detaching: it may release a uprobe
/// a little after its link is closed (the last reference to the perf event can be dropped
/// from deferred work), so a leftover is only reported if it is still there after this.
pub const DETACH_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// [`verify_detached`] for every offset, retried for up to [`DETACH_GRACE`]; `Ok` as soon as
/// all are clean (or the process is gone: nothing left to harm).
pub fn verify_all_detached(
    p: &crate::target::Process,
    file_offsets: &[u64],
) -> Result<(), VerifyError> {
    let deadline = std::time::Instant::now() + DETACH_GRACE;
    loop {
        if !p.is_alive() {
            return Ok(());
        }
        match file_offsets.iter().try_for_each(|&o| verify_detached(p, o)) {
            Ok(()) => return Ok(()),
            Err(e) if std::time::Instant::now() >= deadline => return Err(e),
            Err(e) => log::debug!("breakpoint still present after detaching: {e}"),
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Checks that the target's code at `file_offset` of its executable is byte-for-byte the
/// file's: no breakpoint (int3) left behind after detaching. One immediate check; callers
/// use [`verify_all_detached`], which allows for the kernel's deferred release.
pub fn verify_detached(p: &crate::target::Process, file_offset: u64) -> Result<(), VerifyError> {
    use std::{fs, os::unix::fs::FileExt as _};
    let file = fs::File::open(&p.exe).map_err(VerifyError::Io)?;
    let mut want = [0u8; 16];
    file.read_exact_at(&mut want, file_offset)
        .map_err(VerifyError::Io)?;
    let addr = p
        .address_of_file_offset(file_offset)
        .map_err(VerifyError::Io)?
        .ok_or(VerifyError::NotMapped(file_offset))?;
    let mem = fs::File::open(format!("/proc/{}/mem", p.pid)).map_err(VerifyError::Io)?;
    let mut got = [0u8; 16];
    mem.read_exact_at(&mut got, addr).map_err(VerifyError::Io)?;
    if got == want {
        Ok(())
    } else {
        Err(VerifyError::Patched { addr, want, got })
    }
}

/// The target's code differs from its file, or could not be compared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Reading the file or the process memory failed.
    #[error("reading the executable or /proc/PID/mem failed")]
    Io(#[source] std::io::Error),
    /// The offset is not mapped in the process.
    #[error("file offset {0:#x} is not mapped in the process")]
    NotMapped(u64),
    /// The bytes differ: a breakpoint was left behind.
    #[error(
        "the instruction at {addr:#x} still differs from the file after detaching ({got:02x?} vs {want:02x?})"
    )]
    Patched {
        /// Address in the process.
        addr: u64,
        /// Bytes in the file.
        want: [u8; 16],
        /// Bytes in memory.
        got: [u8; 16],
    },
}

/// Why a binary's runtime cannot be probed at all: the preconditions every probe plan
/// (lifecycle, panics) shares.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AbiError {
    /// The binary's build info names no Go release.
    #[error("the binary names no Go release (a devel toolchain?); gtrace needs go1.17 or newer")]
    NoVersion,
    /// Before Go 1.17 arguments are passed on the stack, which the probes do not read.
    #[error(
        "the target was built with go{0}.{1}, which passes arguments on the stack; gtrace's \
         probes need Go's register ABI (go1.17 or newer, amd64)"
    )]
    StackAbi(u32, u32),
    /// No runtime layout is known for this version.
    #[error("no runtime layout for this Go version")]
    Layout(#[from] crate::gobin::layout::LayoutError),
}

/// The Go version and runtime layout of a binary whose runtime the probes can read (register
/// ABI, known layout).
pub fn probeable(
    bin: &crate::gobin::GoBinary,
) -> Result<(crate::gobin::GoVersion, crate::gobin::layout::RuntimeLayout), AbiError> {
    let version = bin.version().cloned().ok_or(AbiError::NoVersion)?;
    if (version.major, version.minor) < (1, 17) {
        return Err(AbiError::StackAbi(version.major, version.minor));
    }
    // Exact offsets from the binary's DWARF when it has some (a patch release that moved a
    // field is then read right even if the generated table predates it), else the table;
    // sanity-checked either way.
    let layout = crate::gobin::layout::RuntimeLayout::for_go_binary(bin, Some(&version))?;
    Ok((version, layout))
}
