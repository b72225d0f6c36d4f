//! `gtrace doctor`: can this host trace, and can it trace this target?
//!
//! Prints one line per check with the fix when something is wrong, then — for a live target —
//! loads the real eBPF object, attaches the uprobes and the `sched_switch` tracepoint for a
//! moment and reports hit counts: proof that probes fire on this binary, on this kernel.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context as _, Result, bail};
use tracer_common::probe::ProbeId;

use crate::{
    cli::{duration, exit::Exit},
    gobin::{
        GoBinary, GobinError,
        layout::{RuntimeLayout, Source},
        probesite::{self, ProbeSite},
    },
    probes::ProbeSet,
    system::{self, Check, Level},
    target::Process,
};

/// Arguments of `gtrace doctor`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A running Go process to check, including a short live probe test.
    #[arg(short, long, conflicts_with = "binary")]
    pub pid: Option<u32>,
    /// A Go binary to check (static checks only; the probe test needs `-p PID`).
    pub binary: Option<PathBuf>,
    /// How long the live probe test runs.
    #[arg(short, long, default_value = "1s", value_parser = duration::parse)]
    pub duration: Duration,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Everything doctor found, for `--json`.
#[derive(Debug, serde::Serialize)]
struct Findings {
    host: Vec<Check>,
    target: Vec<Check>,
    probe_test: Option<crate::probes::Counts>,
}

fn print_check(c: &Check) {
    let tag = match c.level {
        Level::Ok => "ok  ",
        Level::Warn => "warn",
        Level::Fail => "FAIL",
    };
    println!("  {tag}  {:<12} {}", c.name, c.detail);
    if let Some(fix) = &c.fix {
        println!("        {:<12} fix: {fix}", "");
    }
}

/// Runs doctor; returns the exit code it chose.
pub fn run(args: &Args) -> Result<Exit> {
    let host = system::all();
    if !args.json {
        println!("host:");
        host.iter().for_each(print_check);
    }
    let host_ok = host.iter().all(|c| c.level != Level::Fail);

    let (target, binary, process) = match (args.pid, &args.binary) {
        (Some(pid), _) => {
            let p = Process::from_pid(pid)?;
            let (checks, bin) = target_checks(&p.exe);
            (checks, bin, Some(p))
        }
        (None, Some(path)) => {
            let (checks, bin) = target_checks(path);
            (checks, bin, None)
        }
        (None, None) => (Vec::new(), None, None),
    };
    if !args.json && !target.is_empty() {
        println!("target:");
        target.iter().for_each(print_check);
    }
    let target_ok = target.iter().all(|c| c.level != Level::Fail);

    let mut probe_test = None;
    if let (Some(p), Some(bin), true, true) = (&process, &binary, host_ok, target_ok) {
        eprintln!("gtrace: probing PID {} for {:?}…", p.pid, args.duration);
        let counts = probe_test_run(p, bin, args.duration)?;
        if !args.json {
            println!("probe test ({:?} on PID {}):", args.duration, p.pid);
            let width = counts.hits.keys().map(|k| k.len()).max().unwrap_or(0);
            for (name, n) in &counts.hits {
                println!("  {name:<width$} {n:>10} hits");
            }
            let errs: u64 = counts.errors.values().sum();
            if errs > 0 {
                println!("  probe errors: {errs}");
            }
            println!("  detached; probed instructions verified unchanged in the target's memory");
        }
        probe_test = Some(counts);
    }

    if args.json {
        let f = Findings {
            host,
            target,
            probe_test,
        };
        println!("{}", serde_json::to_string_pretty(&f)?);
    } else if args.pid.is_none() && args.binary.is_some() && target_ok && host_ok {
        println!("(the live probe test needs a running process: gtrace doctor -p PID)");
    }
    Ok(if !host_ok {
        Exit::Environment
    } else if !target_ok {
        Exit::Target
    } else {
        Exit::Ok
    })
}

/// Attaches for `d`, returns the counts, detaches, and checks no breakpoint remains.
fn probe_test_run(p: &Process, bin: &Sites, d: Duration) -> Result<crate::probes::Counts> {
    let mut set = ProbeSet::load(p.pid)?;
    for (probe, site) in [
        (ProbeId::Newproc1, &bin.newproc1),
        (ProbeId::Gopark, &bin.gopark),
    ] {
        set.attach_uprobe(probe, &p.exe, site.offset)
            .with_context(|| {
                format!(
                    "attaching to {} at file offset {:#x}",
                    probe.name(),
                    site.offset
                )
            })?;
    }
    set.attach_sched_switch()?;
    std::thread::sleep(d);
    let mut counts = set.counts()?;
    // The object counts every program; only these three were attached.
    let attached = [ProbeId::Newproc1, ProbeId::Gopark, ProbeId::SchedSwitch].map(ProbeId::name);
    for map in [&mut counts.hits, &mut counts.errors, &mut counts.drops] {
        map.retain(|name, _| attached.contains(name));
    }
    drop(set);
    if !p.is_alive() {
        bail!(crate::target::TargetError::NoSuchProcess { pid: p.pid });
    }
    crate::probes::verify_all_detached(p, &[bin.newproc1.offset, bin.gopark.offset])
        .context("after detaching, checking the probed instructions")?;
    Ok(counts)
}

/// Where doctor attaches its two uprobes.
#[derive(Debug)]
struct Sites {
    newproc1: ProbeSite,
    gopark: ProbeSite,
}

fn check(name: &'static str, level: Level, detail: impl Into<String>, fix: Option<&str>) -> Check {
    Check {
        name,
        level,
        detail: detail.into(),
        fix: fix.map(Into::into),
    }
}

/// Static checks of a binary: is it Go, which version, which symbols, which runtime layout,
/// and where the probes go.
fn target_checks(path: &std::path::Path) -> (Vec<Check>, Option<Sites>) {
    let mut checks = Vec::new();
    let bin = match GoBinary::open(path) {
        Ok(b) => b,
        Err(e @ GobinError::Open { .. }) => {
            checks.push(check(
                "binary",
                Level::Fail,
                e.to_string(),
                Some("check the path, and run as root"),
            ));
            return (checks, None);
        }
        Err(e) => {
            checks.push(check(
                "go",
                Level::Fail,
                e.to_string(),
                Some("gtrace traces Go programs only; `gtrace inspect` shows what it found"),
            ));
            return (checks, None);
        }
    };
    let Some(version) = bin.version().cloned() else {
        checks.push(check(
            "go",
            Level::Fail,
            "Go binary, but its Go version is unknown (no build info)",
            Some("gtrace needs the Go version to read runtime structures"),
        ));
        return (checks, None);
    };
    let module = bin
        .build_info()
        .and_then(|b| b.path.as_deref())
        .unwrap_or("?");
    if !version.at_least(1, 17) {
        checks.push(check(
            "go",
            Level::Fail,
            format!("{version} ({module}) predates Go's register ABI (1.17)"),
            Some("gtrace supports binaries built by Go 1.17 or newer"),
        ));
        return (checks, None);
    }
    checks.push(check(
        "go",
        Level::Ok,
        format!("{version}, main module {module}"),
        None,
    ));
    let src = bin.symbol_sources();
    let mut have = Vec::new();
    if src.dwarf {
        have.push("DWARF");
    }
    if src.symtab {
        have.push("symtab");
    }
    have.push("pclntab");
    checks.push(check(
        "symbols",
        Level::Ok,
        format!("{} (pclntab found via {})", have.join(" + "), src.pclntab),
        None,
    ));
    match RuntimeLayout::for_go_binary(&bin, None) {
        Ok(l) => {
            let from = match &l.source {
                Source::Dwarf { from_table } if from_table.is_empty() => "DWARF".to_owned(),
                Source::Dwarf { from_table } => {
                    format!("DWARF (+ table for {})", from_table.join(", "))
                }
                Source::Table { version } => format!("the generated table ({version})"),
            };
            checks.push(check(
                "layout",
                Level::Ok,
                format!("runtime struct offsets from {from}"),
                None,
            ));
        }
        Err(e) => {
            checks.push(check(
                "layout",
                Level::Fail,
                e.to_string(),
                Some("see docs/SUPPORTED_GO.md; a newer gtrace may know this version"),
            ));
            return (checks, None);
        }
    }
    let site = |name: &str| probesite::probe_site(&bin, name);
    match (site("runtime.newproc1"), site("runtime.gopark")) {
        (Ok(newproc1), Ok(gopark)) => {
            for s in [&newproc1, &gopark] {
                checks.push(check(
                    "probe site",
                    Level::Ok,
                    format!(
                        "{} +{:#x} (file offset {:#x}): {}",
                        s.function,
                        s.vaddr - s.entry,
                        s.offset,
                        s.instruction
                    ),
                    None,
                ));
            }
            (checks, Some(Sites { newproc1, gopark }))
        }
        (Err(e), _) | (_, Err(e)) => {
            checks.push(check(
                "probe site",
                Level::Fail,
                e.to_string(),
                Some("run `gtrace inspect` on the binary and report the output"),
            ));
            (checks, None)
        }
    }
}
