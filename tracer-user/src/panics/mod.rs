//! `gtrace panics`: panic chains of an unmodified process — value, stack, fate (recovered,
//! aborted or fatal), the recovering function and the goroutine's creator.
//!
//! Four uprobes on the panic path only (`runtime.gopanic`, `runtime.gorecover`,
//! `runtime.recovery`, `runtime.fatalpanic`): they never fire in a process that does not
//! panic or call `recover()`. Their events share the lifecycle ring buffer (kinds from
//! `tracer_common::panic::PANIC_KIND_BASE`). [`model`] decides each panic's fate, [`report`]
//! symbolizes it against the binary file, [`value`] renders the value as the runtime prints
//! it; `output::panics` writes text and JSON.

pub mod ancestry;
pub mod model;
pub mod report;
pub mod value;

use std::path::Path;

use iced_x86::{Decoder, DecoderOptions, FlowControl, OpKind};

use tracer_common::{config::Config, panic::PanicConfig, probe::ProbeId};

use crate::{
    gobin::{GoBinary, GoVersion, GobinError, layout::RuntimeLayout, probesite},
    probes::{
        ProbeError, ProbeSet,
        lifecycle::{self, Site},
    },
};

/// Why the panic probes cannot be planned or attached.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PanicsError {
    /// Reading the binary failed (not Go, no pclntab, a runtime function missing…).
    #[error("reading the Go binary failed")]
    Binary(#[from] GobinError),
    /// The runtime cannot be probed (Go version, ABI, layout).
    #[error("the Go runtime of this binary cannot be probed")]
    Abi(#[from] crate::probes::AbiError),
    /// Loading or attaching failed.
    #[error(transparent)]
    Probe(#[from] ProbeError),
}

/// Where the panic probes go in one binary, and the offsets they read.
#[derive(Debug, Clone)]
pub struct PanicPlan {
    /// The binary's Go version.
    pub version: GoVersion,
    /// The runtime layout of that version.
    pub layout: RuntimeLayout,
    /// Offsets for the programs.
    pub config: PanicConfig,
    /// The uprobe sites (the four functions, plus each deferred-call site).
    pub sites: Vec<Site>,
}

impl PanicPlan {
    /// Link-time address of the `runtime.gopanic` site (the first frame of every panic
    /// event's stack, which gives a PIE's load bias).
    pub fn gopanic_site(&self) -> u64 {
        self.sites
            .iter()
            .find(|s| s.probe == ProbeId::Gopanic)
            .map_or(0, |s| s.vaddr)
    }
}

/// Computes the sites and offsets for `bin`.
pub fn plan(bin: &GoBinary) -> Result<PanicPlan, PanicsError> {
    let (version, layout) = crate::probes::probeable(bin)?;
    // runtime.recovery finds the frame to resume in `_panic.sp` since the 1.22 rewrite of
    // panics (which added `_panic.startSP`), in `gp.sigcode0` before (runtime/panic.go).
    let (recovery_sp, recovery_sp_in_g) = match (layout.panic.start_sp, layout.panic.sp) {
        (Some(_), Some(sp)) => (sp, 0),
        _ => (layout.g.sigcode0, 1),
    };
    let config = PanicConfig {
        g_goid: layout.g.goid,
        g_panic: layout.g.panic,
        g_parent_goid: layout.g.parent_goid.unwrap_or(0),
        g_gopc: layout.g.gopc,
        p_arg: layout.panic.arg,
        p_link: layout.panic.link,
        p_recovered: layout.panic.recovered,
        p_aborted: layout.panic.aborted.unwrap_or(0),
        p_goexit: layout.panic.goexit,
        recovery_sp,
        recovery_sp_in_g,
        pad: 0,
    };
    let mut sites = Vec::new();
    for probe in [
        ProbeId::Gopanic,
        ProbeId::Gorecover,
        ProbeId::Recovery,
        ProbeId::Fatalpanic,
    ] {
        let s = probesite::probe_site(bin, probe.name())?;
        sites.push(Site {
            probe,
            function: s.function,
            vaddr: s.vaddr,
            offset: s.offset,
        });
    }
    sites.extend(defer_call_sites(bin)?);
    // Fatal runtime errors (`fatal error: …`): `throw` always, `fatal` where it exists (the
    // errors blamed on the program, e.g. deadlocks and concurrent map writes).
    for name in ["runtime.throw", "runtime.fatal"] {
        if bin.func_by_name(name).is_err() {
            continue;
        }
        let s = probesite::probe_site(bin, name)?;
        sites.push(Site {
            probe: ProbeId::Throw,
            function: s.function,
            vaddr: s.vaddr,
            offset: s.offset,
        });
    }
    Ok(PanicPlan {
        version,
        layout,
        config,
        sites,
    })
}

/// Functions whose `CALL reg` instructions run deferred functions while panicking:
/// `gopanic` itself (regular defers before 1.22, every defer since) and `deferCallSave`
/// (open-coded defers before 1.22; gone since).
const DEFER_CALLERS: [&str; 2] = ["runtime.gopanic", "runtime.deferCallSave"];
/// Longest function decoded.
const MAX_FUNC_BYTES: u64 = 64 * 1024;

/// Every register-indirect CALL in [`DEFER_CALLERS`]: the call of a deferred closure.
pub fn defer_call_sites(bin: &GoBinary) -> Result<Vec<Site>, PanicsError> {
    let mut out = Vec::new();
    for name in DEFER_CALLERS {
        let Ok(f) = bin.func_by_name(name) else {
            continue;
        };
        let len = (f.end.saturating_sub(f.entry)).min(MAX_FUNC_BYTES) as usize;
        let code = bin.read_vaddr(f.entry, len)?;
        let mut dec = Decoder::with_ip(64, code, f.entry, DecoderOptions::NONE);
        while dec.can_decode() {
            let insn = dec.decode();
            if insn.flow_control() == FlowControl::IndirectCall
                && insn.op0_kind() == OpKind::Register
            {
                let vaddr = insn.ip();
                let offset = bin
                    .vaddr_to_offset(vaddr)
                    .ok_or(GobinError::UnmappedVaddr { vaddr, len: 1 })?;
                out.push(Site {
                    probe: ProbeId::DeferCall,
                    function: f.name.clone(),
                    vaddr,
                    offset,
                });
            }
        }
    }
    Ok(out)
}

/// Loads the programs for `pid` and attaches the panic probes of `plan` in `exe`; with
/// `creations`, also the lifecycle probes that report every goroutine creation and exit (for
/// deeper ancestry, kept bounded by the exits; they fire once per `go` statement and once
/// per goroutine end). Dropping the returned set detaches everything.
pub fn attach(
    pid: u32,
    exe: &Path,
    plan: &PanicPlan,
    creations: Option<&lifecycle::Plan>,
) -> Result<ProbeSet, PanicsError> {
    let config = creations.map_or_else(Config::default, |c| c.config);
    let mut set = ProbeSet::load_with_panic(pid, &config, &plan.config)?;
    for s in &plan.sites {
        set.attach_uprobe(s.probe, exe, s.offset)?;
    }
    if let Some(c) = creations {
        // Creations, and exits so that the records of goroutines gone free themselves.
        for s in c
            .sites
            .iter()
            .filter(|s| matches!(s.probe, ProbeId::NewprocReturn | ProbeId::Goexit0))
        {
            set.attach_uprobe(s.probe, exe, s.offset)?;
        }
    }
    Ok(set)
}
