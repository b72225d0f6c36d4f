//! `gtrace doctor` and the probe layer under it, on every Go version × build variant.
//!
//! Real eBPF programs attached to real Go processes (root required): probe sites computed from
//! the binary (pclntab only for stripped builds, load bias for PIE) must fire exactly once per
//! call, and nothing may be left patched after detaching.

use std::time::Duration;

use gtrace_tests::{
    fixture::{self, Variant},
    go, gtrace,
    process::Spawned,
};
use tracer_common::probe::ProbeId;
use tracer_user::{
    gobin::{GoBinary, probesite},
    probes::{self, ProbeSet},
    target::Process,
};

const TIMEOUT: Duration = Duration::from_secs(30);

/// Starts `churn` from a private copy of the cached build. Uprobes belong to the file (inode):
/// while another test has one at the same offset of the same file, the kernel keeps the
/// breakpoint in every process mapping it, which `verify_detached` would rightly report.
fn scratch(test: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("gtrace-doctor-{}-{test}", std::process::id()))
}

fn churn(tc: &go::Toolchain, v: Variant, test: &str) -> Spawned {
    let cached = fixture::build("churn", tc, v).unwrap();
    let dir = scratch(test);
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join(format!("churn-{}-{}", tc.version, v.name()));
    std::fs::copy(&cached, &bin).unwrap();
    let mut p = Spawned::spawn(&bin, std::iter::empty::<&str>(), &[("GOGC", "off")]).unwrap();
    p.wait_ready().unwrap();
    p
}

/// Attaches the counting program at the probe site of `func` and returns the hits after
/// `drive` ran, then checks the code is unpatched after detaching.
fn count_hits(p: &mut Spawned, func: &str, drive: impl FnOnce(&mut Spawned)) -> u64 {
    let target = Process::from_pid(p.pid()).unwrap();
    let bin = GoBinary::open(&target.exe).unwrap();
    let site = probesite::probe_site(&bin, func).unwrap();
    let mut set = ProbeSet::load(p.pid()).unwrap();
    // The newproc1 program only counts its hits, so it serves as a counter at any site.
    set.attach_uprobe(ProbeId::Newproc1, &target.exe, site.offset)
        .unwrap();
    set.attach_sched_switch().unwrap();
    drive(p);
    let counts = set.counts().unwrap();
    let hits = counts.hits[ProbeId::Newproc1.name()];
    // Driving the fixture blocks its threads on stdin, so they are switched out.
    assert!(
        counts.hits[ProbeId::SchedSwitch.name()] > 0,
        "no sched_switch seen for PID {}",
        p.pid()
    );
    drop(set);
    probes::verify_all_detached(&target, &[site.offset]).unwrap();
    hits
}

#[test]
fn probe_sites_fire_once_per_call_on_every_version_and_variant() {
    let mut failures = Vec::new();
    for (tc, v) in fixture::matrix().unwrap() {
        let mut p = churn(&tc, v, "sites");
        // A plain Go function: calls are counted by the fixture itself.
        let hits = count_hits(&mut p, "main.counted", |p| {
            p.write_line("calls 1000").unwrap();
            p.wait_for(TIMEOUT, |l| l.starts_with("called 1000 "))
                .unwrap();
        });
        if hits != 1000 {
            failures.push(format!(
                "go{} {}: main.counted: {hits} hits for 1000 calls",
                tc.version,
                v.name()
            ));
        }
        // runtime.newproc1: exactly one per go statement (GOGC=off: the runtime starts none).
        let hits = count_hits(&mut p, "runtime.newproc1", |p| {
            p.write_line("250").unwrap();
            p.wait_for_line("done 250", TIMEOUT).unwrap();
        });
        if hits != 250 {
            failures.push(format!(
                "go{} {}: runtime.newproc1: {hits} hits for 250 goroutines",
                tc.version,
                v.name()
            ));
        }
    }
    let _ = std::fs::remove_dir_all(scratch("sites"));
    assert!(
        failures.is_empty(),
        "probe counts wrong:\n{}",
        failures.join("\n")
    );
}

#[test]
fn doctor_cli_passes_on_every_version_and_variant() {
    for (tc, v) in fixture::matrix().unwrap() {
        let p = churn(&tc, v, "cli");
        let out = gtrace::command([
            "doctor",
            "--json",
            "-d",
            "300ms",
            "-p",
            &p.pid().to_string(),
        ])
        .output()
        .unwrap();
        let ctx = format!(
            "go{} {}: {}",
            tc.version,
            v.name(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{ctx}\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{ctx}: stdout is not JSON: {e}"));
        let target = json["target"].as_array().unwrap();
        let version = target.iter().find(|c| c["name"] == "go").unwrap()["detail"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            version.starts_with(&format!("go{}", tc.version)),
            "{ctx}: {version}"
        );
        // Counts are only checked in the test above: an idle Go process may not switch at all
        // (sysmon parks itself), so the CLI's counters have no known value here.
        assert!(
            json["probe_test"]["hits"]["runtime.gopark"].is_u64(),
            "{ctx}: {json}"
        );
        // Only the probes doctor attached are reported (not zeros for the others).
        let listed: Vec<&String> = json["probe_test"]["hits"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(
            listed,
            ["runtime.gopark", "runtime.newproc1", "sched:sched_switch"],
            "{ctx}"
        );
        let layout = target.iter().find(|c| c["name"] == "layout").unwrap()["detail"]
            .as_str()
            .unwrap()
            .to_owned();
        if v.has_symbols() {
            assert!(layout.contains("DWARF"), "{ctx}: {layout}");
        } else {
            assert!(layout.contains("generated table"), "{ctx}: {layout}");
        }
    }
    let _ = std::fs::remove_dir_all(scratch("cli"));
}

#[test]
fn doctor_exit_codes_say_what_is_wrong() {
    // Not a Go program: exit 4 (target cannot be traced).
    let out = gtrace::command(["doctor", "/bin/true"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Go"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // No such process: exit 5 and a fix on stderr, no backtrace.
    let out = gtrace::command(["doctor", "-p", "4194303"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(
        err.contains("no process with PID 4194303") && err.contains("fix:"),
        "{err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    // Bad duration: usage error 2 that explains the accepted forms.
    let out = gtrace::command(["doctor", "-d", "soon", "/bin/true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("500ms"));
}
