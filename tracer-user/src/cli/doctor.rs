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
        let counts = probe_test_run(p, bin, args.duration)?;
        if !args.json {
            println!("probe test ({:?} on PID {}):", args.duration, p.pid);
            for (name, n) in &counts.hits {
                println!("  {name:<22} {n:>10} hits");
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
        set.attach_uprobe(probe, &p.exe, site.file_offset)
            .with_context(|| {
                format!(
                    "attaching to {} at file offset {:#x}",
                    probe.name(),
                    site.file_offset
                )
            })?;
    }
    set.attach_sched_switch()?;
    std::thread::sleep(d);
    let counts = set.counts()?;
    drop(set);
    if !p.is_alive() {
        bail!(crate::target::TargetError::NoSuchProcess { pid: p.pid });
    }
    for site in [&bin.newproc1, &bin.gopark] {
        crate::probes::verify_detached(p, site.file_offset).with_context(|| {
            format!(
                "after detach, checking the probed instruction at file offset {:#x}",
                site.file_offset
            )
        })?;
    }
    Ok(counts)
}

/// Where doctor attaches its two uprobes.
#[derive(Debug)]
struct Sites {
    newproc1: Site,
    gopark: Site,
}

#[derive(Debug)]
struct Site {
    file_offset: u64,
}

/// Static checks of a binary: is it Go, which version, which symbols, where to probe.
// TODO(gobin): replace the symtab lookup with gobin's pclntab-based probe sites.
fn target_checks(path: &std::path::Path) -> (Vec<Check>, Option<Sites>) {
    use object::{Object as _, ObjectSegment as _, ObjectSymbol as _};
    let mut checks = Vec::new();
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) => {
            checks.push(Check {
                name: "binary",
                level: Level::Fail,
                detail: format!("cannot read {}: {e}", path.display()),
                fix: Some("check the path and run as root".into()),
            });
            return (checks, None);
        }
    };
    let Ok(obj) = object::File::parse(&*data) else {
        checks.push(Check {
            name: "binary",
            level: Level::Fail,
            detail: format!("{} is not an ELF file", path.display()),
            fix: Some("point gtrace at a Go program".into()),
        });
        return (checks, None);
    };
    let is_go = obj.section_by_name(".go.buildinfo").is_some()
        || obj.section_by_name(".gopclntab").is_some();
    if !is_go {
        checks.push(Check {
            name: "go",
            level: Level::Fail,
            detail: "not a Go program (no .go.buildinfo / .gopclntab)".into(),
            fix: Some("gtrace traces Go programs only".into()),
        });
        return (checks, None);
    }
    checks.push(Check {
        name: "go",
        level: Level::Ok,
        detail: "Go binary".into(),
        fix: None,
    });
    let find = |name: &str| -> Option<Site> {
        let sym = obj.symbols().find(|s| s.name() == Ok(name))?;
        let addr = sym.address();
        obj.segments().find_map(|seg| {
            let (off, size) = seg.file_range();
            let start = seg.address();
            (addr >= start && addr < start + size).then(|| Site {
                file_offset: off + (addr - start),
            })
        })
    };
    if let (Some(newproc1), Some(gopark)) = (find("runtime.newproc1"), find("runtime.gopark")) {
        checks.push(Check {
            name: "symbols",
            level: Level::Ok,
            detail: "symtab".into(),
            fix: None,
        });
        (checks, Some(Sites { newproc1, gopark }))
    } else {
        checks.push(Check {
            name: "symbols",
            level: Level::Fail,
            detail: "no symbol table (stripped)".into(),
            fix: Some("stripped binaries need pclntab support (not yet built)".into()),
        });
        (checks, None)
    }
}
