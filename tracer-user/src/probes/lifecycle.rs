//! Where the goroutine-lifecycle probes go in one Go binary, and attaching them.
//!
//! [`plan`] is pure (a [`GoBinary`] in, sites and offsets out) so it is testable without root;
//! [`attach`] loads the programs with the plan's offsets and attaches every site to one PID.
//!
//! Creation is observed right after each `CALL runtime.newproc1` (RAX = the new g), found by
//! decoding the closures that call it: `runtime.newproc.func1` always, plus the coroutine,
//! synctest and debug-call closures where the version has them.

use std::path::Path;

use iced_x86::{Decoder, DecoderOptions, FlowControl};
use tracer_common::{
    config::{Config, FIXUP_GOPARK, FIXUP_READY},
    probe::ProbeId,
};

use super::{ProbeError, ProbeSet};
use crate::gobin::{GoBinary, GoVersion, GobinError, probesite};

/// Prefixes of the runtime functions that may call `newproc1`.
const NEWPROC_CALLERS: [&str; 4] = [
    "runtime.newproc.",
    "runtime.newcoro.",
    "runtime.synctestRun.",
    "runtime.debugCallWrap.",
];
/// Longest function decoded when looking for calls (the closures are a few hundred bytes).
const MAX_CALLER_BYTES: u64 = 64 * 1024;

/// Why the lifecycle probes cannot be planned or attached.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LifecycleError {
    /// Reading the binary failed (not Go, no pclntab, a function missing…).
    #[error("reading the Go binary failed")]
    Binary(#[from] GobinError),
    /// The runtime cannot be probed (Go version, ABI, layout).
    #[error("the Go runtime of this binary cannot be probed")]
    Abi(#[from] crate::probes::AbiError),
    /// No `CALL runtime.newproc1` was found: creations could not be observed.
    #[error("no call to runtime.newproc1 found in runtime.newproc.func1 (unexpected runtime code)")]
    NoNewprocCall,
    /// Loading or attaching failed.
    #[error(transparent)]
    Probe(#[from] ProbeError),
}

/// One uprobe to attach.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Site {
    /// Which program.
    #[serde(serialize_with = "ser_probe")]
    pub probe: ProbeId,
    /// The function the site is in.
    pub function: String,
    /// Link-time address of the probed instruction.
    pub vaddr: u64,
    /// Its file offset (what is attached).
    pub offset: u64,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's signature
fn ser_probe<S: serde::Serializer>(p: &ProbeId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.name())
}

/// Everything needed to attach to one binary.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The binary's Go version.
    pub version: GoVersion,
    /// Offsets for the programs.
    pub config: Config,
    /// Every uprobe site.
    pub sites: Vec<Site>,
}

/// Computes the sites and offsets for `bin`.
pub fn plan(bin: &GoBinary) -> Result<Plan, LifecycleError> {
    let (version, layout) = super::probeable(bin)?;
    let config = Config {
        g_goid: layout.g.goid,
        g_parent_goid: layout.g.parent_goid.unwrap_or(0),
        g_gopc: layout.g.gopc,
        g_startpc: layout.g.startpc,
        g_m: layout.g.m,
        m_curg: layout.m.curg,
        stacks: 1,
        ret_fixup: 0,
        g_schedlink: 0,
        stw_reason_arg: 0,
    };
    let mut config = config;
    let mut sites = Vec::new();
    for (probe, name) in [
        (ProbeId::Gopark, "runtime.gopark"),
        (ProbeId::Ready, "runtime.ready"),
        (ProbeId::Execute, "runtime.execute"),
        (ProbeId::Goexit0, "runtime.goexit0"),
    ] {
        let s = probesite::probe_site(bin, name)?;
        // Every site is at function entry (before `push rbp` / `sub rsp`: the frame is not
        // set up), so the direct caller's return address is at [rsp], not yet in the
        // frame-pointer chain: the program's unwinder reads it there (checked against Go's
        // traceback in tests/tests/lifecycle.rs).
        match probe {
            ProbeId::Gopark => config.ret_fixup |= FIXUP_GOPARK,
            ProbeId::Ready => config.ret_fixup |= FIXUP_READY,
            _ => {}
        }
        sites.push(Site {
            probe,
            function: s.function,
            vaddr: s.vaddr,
            offset: s.offset,
        });
    }
    // Optional: without it, yields and preemptions are not seen (the next execute then
    // yields no scheduling-latency sample).
    if let Ok(s) = probesite::probe_site(bin, "runtime.goschedImpl") {
        sites.push(Site {
            probe: ProbeId::Gosched,
            function: s.function,
            vaddr: s.vaddr,
            offset: s.offset,
        });
    }
    let ret = newproc_return_sites(bin)?;
    if !ret
        .iter()
        .any(|s| s.function.starts_with("runtime.newproc."))
    {
        return Err(LifecycleError::NoNewprocCall);
    }
    sites.extend(ret);
    Ok(Plan {
        version,
        config,
        sites,
    })
}

/// The instruction after every `CALL runtime.newproc1` in the runtime closures that call it.
pub fn newproc_return_sites(bin: &GoBinary) -> Result<Vec<Site>, LifecycleError> {
    let target = bin.func_by_name("runtime.newproc1")?.entry;
    let mut out = Vec::new();
    for f in bin.functions()? {
        if !NEWPROC_CALLERS.iter().any(|p| f.name.starts_with(p)) {
            continue;
        }
        let len = (f.end.saturating_sub(f.entry)).min(MAX_CALLER_BYTES) as usize;
        let code = bin.read_vaddr(f.entry, len)?;
        let mut dec = Decoder::with_ip(64, code, f.entry, DecoderOptions::NONE);
        while dec.can_decode() {
            let insn = dec.decode();
            if insn.flow_control() == FlowControl::Call && insn.near_branch_target() == target {
                let vaddr = insn.next_ip();
                let offset = bin
                    .vaddr_to_offset(vaddr)
                    .ok_or(GobinError::UnmappedVaddr { vaddr, len: 1 })?;
                out.push(Site {
                    probe: ProbeId::NewprocReturn,
                    function: f.name.clone(),
                    vaddr,
                    offset,
                });
            }
        }
    }
    Ok(out)
}

/// Loads the programs for `pid` and attaches every site of `plan` in `exe`, plus the
/// scheduler tracepoints. Dropping the returned set detaches everything.
pub fn attach(pid: u32, exe: &Path, plan: &Plan) -> Result<ProbeSet, LifecycleError> {
    attach_with_panics(pid, exe, plan, None)
}

/// [`attach`], plus the panic-path probes at `panics` (their offsets and sites) when given.
pub fn attach_with_panics(
    pid: u32,
    exe: &Path,
    plan: &Plan,
    panics: Option<(&tracer_common::panic::PanicConfig, &[Site])>,
) -> Result<ProbeSet, LifecycleError> {
    let mut set = match panics {
        Some((config, _)) => ProbeSet::load_with_panic(pid, &plan.config, config)?,
        None => ProbeSet::load_with(pid, &plan.config)?,
    };
    for s in panics.map_or(&[][..], |(_, sites)| sites) {
        set.attach_uprobe(s.probe, exe, s.offset)?;
    }
    for s in &plan.sites {
        set.attach_uprobe(s.probe, exe, s.offset)?;
    }
    set.attach_tracepoint(ProbeId::SchedSwitch, "sched_switch")?;
    set.attach_tracepoint(ProbeId::SchedWakeup, "sched_wakeup")?;
    set.attach_tracepoint(ProbeId::ProcessExit, "sched_process_exit")?;
    Ok(set)
}
