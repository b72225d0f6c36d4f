//! Where the scheduler-latency probes of `gtrace latency` go in one Go binary, per version.
//!
//! These extend the lifecycle plan ([`super::lifecycle::plan`]): the same programs and ring
//! buffer, more sites. Every function is looked up in the binary; one that this Go version
//! lacks is never silently skipped — it becomes a [`Degradation`] that the commands print and
//! store, saying what the numbers lose.
//!
//! Checked against the runtime source and symbol tables of Go 1.19 and 1.21–1.27 (amd64):
//! - `injectglist`, `reentersyscall`, `entersyscallblock`, `exitsyscall`, `preemptPark`,
//!   `goyield_m`, `stopTheWorldWithSema`, `startTheWorldWithSema`, `gcStart`,
//!   `gcMarkTermination`, `gcAssistAlloc` exist (not inlined) in all of them.
//! - `exitsyscall0` exists up to 1.25; the 1.26 syscall rewrite replaced it with
//!   `exitsyscallNoP` (same role: `mcall`ed with the goroutine, which becomes runnable).
//! - `stopTheWorldWithSema` takes its `stwReason` since 1.21 (`stopTheWorldWithSema()` in
//!   1.19 and 1.20).
//! - `gopreempt_m` (gone in 1.26+ binaries: inlined) and `gosched_m` both go through
//!   `goschedImpl`, already probed by the lifecycle plan; `park_m` follows `gopark`, probed
//!   there with the wait reason and stack; `netpollready` only collects goroutines into a
//!   list that `injectglist` (probed) makes runnable, or that `findRunnable` runs at once
//!   (`execute`, which ends the park).

use serde::Serialize;
use tracer_common::probe::ProbeId;

use super::lifecycle::{LifecycleError, Plan, Site};
use crate::gobin::{GoBinary, GoVersion, probesite};

/// Something a Go version lacks, and what the latency numbers lose because of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Degradation {
    /// The runtime function missing (or not usable).
    pub function: String,
    /// The consequence, one sentence.
    pub effect: String,
}

/// Adds the latency sites to `plan` (and the offsets they need to its config); returns what
/// this binary cannot give.
pub fn extend(bin: &GoBinary, plan: &mut Plan) -> Result<Vec<Degradation>, LifecycleError> {
    let layout = crate::gobin::layout::RuntimeLayout::for_version(&plan.version)
        .map_err(|e| LifecycleError::Abi(e.into()))?;
    plan.config.g_schedlink = layout.g.schedlink;
    plan.config.stw_reason_arg = u32::from(has_stw_reason(&plan.version));
    let mut degraded = Vec::new();
    if !has_stw_reason(&plan.version) {
        degraded.push(Degradation {
            function: "runtime.stopTheWorldWithSema".into(),
            effect: format!(
                "go{}.{} passes no stop-the-world reason: GC pauses are named from the \
                 surrounding gcStart / gcMarkTermination, others are \"unknown\"",
                plan.version.major, plan.version.minor
            ),
        });
    }
    let mut add = |probe: ProbeId, names: &[&str], effect: &str| -> Result<(), LifecycleError> {
        for name in names {
            match probesite::probe_site(bin, name) {
                Ok(s) => {
                    plan.sites.push(Site {
                        probe,
                        function: s.function,
                        vaddr: s.vaddr,
                        offset: s.offset,
                    });
                    return Ok(());
                }
                Err(crate::gobin::GobinError::NoSuchFunction(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        degraded.push(Degradation {
            function: names.join(" / "),
            effect: effect.into(),
        });
        Ok(())
    };
    add(
        ProbeId::Injectglist,
        &["runtime.injectglist"],
        "goroutines woken by the network poller count as parked until they run",
    )?;
    add(
        ProbeId::Reentersyscall,
        &["runtime.reentersyscall"],
        "system calls count as running",
    )?;
    add(
        ProbeId::Entersyscallblock,
        &["runtime.entersyscallblock"],
        "blocking system calls count as running",
    )?;
    add(
        ProbeId::Exitsyscall,
        &["runtime.exitsyscall"],
        "system calls never end: their goroutines count as in a syscall until they park",
    )?;
    add(
        ProbeId::ExitsyscallNoP,
        &["runtime.exitsyscallNoP", "runtime.exitsyscall0"],
        "a goroutine back from a system call without a P counts as running until it runs",
    )?;
    add(
        ProbeId::PreemptPark,
        &["runtime.preemptPark"],
        "suspensions for GC stack scans count as running",
    )?;
    add(
        ProbeId::Goyield,
        &["runtime.goyield_m"],
        "hand-offs to a woken goroutine (goyield) count as running",
    )?;
    add(
        ProbeId::StopTheWorld,
        &["runtime.stopTheWorldWithSema"],
        "stop-the-world pauses are not seen",
    )?;
    add(
        ProbeId::GcStart,
        &["runtime.gcStart"],
        "GC cycles are found from their pauses only",
    )?;
    add(
        ProbeId::GcMarkTermination,
        &["runtime.gcMarkTermination"],
        "GC cycles are found from their pauses only",
    )?;
    match probesite::ret_sites(bin, "runtime.gcAssistAlloc") {
        Ok(rets) if !rets.is_empty() => {
            add(
                ProbeId::GcAssistAlloc,
                &["runtime.gcAssistAlloc"],
                "GC mark assists count as running",
            )?;
            push_rets(
                &mut plan.sites,
                ProbeId::GcAssistDone,
                "runtime.gcAssistAlloc",
                &rets,
            );
        }
        Ok(_) | Err(crate::gobin::GobinError::NoSuchFunction(_)) => degraded.push(Degradation {
            function: "runtime.gcAssistAlloc".into(),
            effect: "GC mark assists count as running".into(),
        }),
        Err(e) => return Err(e.into()),
    }
    // A pause ends where Go's tracer ends it: in startTheWorldWithSema once the Ps run again,
    // right after `STWDone` and before its last call, `wakep()` (every version 1.19 … 1.27).
    // That call is probed (the kernel emulates `call rel32`); failing it, the RETs, which
    // also count wakep (on a loaded machine it can take milliseconds: it may start a thread).
    let end = match probesite::call_sites(bin, "runtime.startTheWorldWithSema", "runtime.wakep") {
        Ok(calls) if !calls.is_empty() => Ok(calls[calls.len() - 1..].to_vec()),
        Ok(_) | Err(crate::gobin::GobinError::NoSuchFunction(_)) => {
            probesite::ret_sites(bin, "runtime.startTheWorldWithSema")
        }
        Err(e) => Err(e),
    };
    match end {
        Ok(sites) if !sites.is_empty() => {
            push_rets(
                &mut plan.sites,
                ProbeId::StartTheWorld,
                "runtime.startTheWorldWithSema",
                &sites,
            );
        }
        Ok(_) => {
            let s = probesite::probe_site(bin, "runtime.startTheWorldWithSema")?;
            plan.sites.push(Site {
                probe: ProbeId::StartTheWorld,
                function: s.function,
                vaddr: s.vaddr,
                offset: s.offset,
            });
            degraded.push(Degradation {
                function: "runtime.startTheWorldWithSema".into(),
                effect: "no RET found: pauses end when the restart begins, its time not counted"
                    .into(),
            });
        }
        Err(crate::gobin::GobinError::NoSuchFunction(_)) => degraded.push(Degradation {
            function: "runtime.startTheWorldWithSema".into(),
            effect: "stop-the-world pauses never end".into(),
        }),
        Err(e) => return Err(e.into()),
    }
    Ok(degraded)
}

/// Probe `probe` at each of `sites` inside `function` (RETs or calls: entry-only uprobes,
/// never uretprobes on Go code).
fn push_rets(sites: &mut Vec<Site>, probe: ProbeId, function: &str, rets: &[probesite::RetSite]) {
    sites.extend(rets.iter().map(|r| Site {
        probe,
        function: function.into(),
        vaddr: r.vaddr,
        offset: r.offset,
    }));
}

/// Whether `stopTheWorldWithSema` takes a `stwReason` (Go 1.21+).
pub fn has_stw_reason(v: &GoVersion) -> bool {
    (v.major, v.minor) >= (1, 21)
}

/// `runtime.stwReasonStrings`, identical in Go 1.21 through 1.27 (checked in each version's
/// `runtime/proc.go`; the runtime's comment asks to add reasons, never reuse them). These are
/// the names Go's execution tracer gives STW ranges (`"stop-the-world (<reason>)"`).
pub const STW_REASONS: [&str; 17] = [
    "unknown",
    "GC mark termination",
    "GC sweep termination",
    "write heap dump",
    "goroutine profile",
    "goroutine profile cleanup",
    "all goroutines stack trace",
    "read mem stats",
    "AllThreadsSyscall",
    "GOMAXPROCS",
    "start trace",
    "stop trace",
    "CountPagesInUse (test)",
    "ReadMetricsSlow (test)",
    "ReadMemStatsSlow (test)",
    "PageCachePagesLeaked (test)",
    "ResetDebugLog (test)",
];
