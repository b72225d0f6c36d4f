//! `gtrace dump` against the Go runtime's own goroutine dump, for every installed Go version
//! and build variant (default, stripped, PIE, trimpath).
//!
//! Ground truth: the `blocked` fixture, in steady state, is dumped by gtrace (process memory
//! only) and then by itself (`SIGQUIT` with `GOTRACEBACK=all`, which the runtime prints at
//! traceback level 2 because a signal dump counts as a runtime throw). gtrace's text output
//! is parsed by the harness's parser of Go dumps, so the comparison also proves that tools
//! reading Go dumps read ours.

use std::{collections::BTreeSet, time::Instant};

use gtrace_tests::{
    fixture::{self, Variant},
    go::Toolchain,
    process::{GOTRACEBACK_ALL, Spawned, quit_and_collect},
    traceback::{self, Dump},
};
use tracer_user::{
    goroutines::{
        DumpOptions, DumpStats, Goroutine,
        target::{DumpError, Target},
    },
    output::{dump_json::JsonDumpWriter, traceback::write_goroutine},
};

fn spawn(bin: &std::path::Path, args: &[&str]) -> Spawned {
    let mut p = Spawned::spawn(bin, args, &[GOTRACEBACK_ALL]).expect("spawn fixture");
    p.wait_ready().expect("fixture did not get ready");
    p
}

fn open(p: &Spawned, what: &str) -> Target {
    Target::open(p.pid() as i32).unwrap_or_else(|e| panic!("{what}: Target::open failed: {e}"))
}

fn collect(t: &Target, system: bool) -> (Vec<Goroutine>, DumpStats) {
    let mut v = Vec::new();
    let stats = t
        .dump(DumpOptions { system }, &mut |g| v.push(g))
        .expect("dump");
    (v, stats)
}

/// Our goroutines rendered as Go text and parsed back by the harness's Go-dump parser.
fn as_go_dump(gs: &[Goroutine], minor: u32) -> Dump {
    let mut text = Vec::new();
    for g in gs {
        write_goroutine(&mut text, g, minor).unwrap();
    }
    let text = String::from_utf8(text).unwrap();
    traceback::parse(&text)
        .unwrap_or_else(|e| panic!("our text does not parse as a Go dump: {e}\n{text}"))
}

/// `isExportedRuntime` + `showfuncinfo` at level 1, written independently of gtrace's code
/// from runtime/traceback.go, to filter the level-2 ground truth down to `GOTRACEBACK=all`.
fn shown_at_level1(name: &str, first: bool) -> bool {
    if name == "panic" {
        return !first;
    }
    let Some(rest) = name.strip_prefix("runtime.") else {
        return name.contains('.');
    };
    let (rcvr, f) = rest.rsplit_once('.').unwrap_or(("", rest));
    let rcvr = rcvr.trim_start_matches("(*").trim_end_matches(')');
    let up = |s: &str| s.chars().next().is_some_and(|c| c.is_ascii_uppercase());
    up(f) && (rcvr.is_empty() || up(rcvr))
}

/// A runtime goroutine by `isSystemGoroutine`'s rule, judged from Go's own dump: its start
/// function (outermost frame before `runtime.goexit`) is a `runtime.` function other than
/// `runtime.main`.
fn is_system(g: &traceback::Goroutine) -> bool {
    let start = g
        .frames
        .iter()
        .rev()
        .find(|f| !f.function.starts_with("runtime.goexit"));
    start.is_some_and(|f| f.function.starts_with("runtime.") && f.function != "runtime.main")
}

fn level1(go: &Dump) -> Dump {
    let mut out = go.clone();
    out.goroutines.retain(|g| !is_system(g));
    for g in &mut out.goroutines {
        let mut kept = Vec::new();
        for f in &g.frames {
            if shown_at_level1(&f.function, kept.is_empty()) {
                kept.push(f.clone());
            }
        }
        if !kept.is_empty() {
            g.frames = kept;
        }
        if g.created_by
            .as_ref()
            .is_some_and(|c| !shown_at_level1(&c.function, false))
        {
            g.created_by = None;
            g.parent_goid = None;
        }
    }
    out
}

/// Every difference between our parsed dump and Go's, as readable lines.
fn compare(ours: &Dump, go: &Dump) -> Vec<String> {
    let mut diffs = Vec::new();
    // goroutine 0 is the g0 that handled SIGQUIT: not a goroutine of the list.
    let go_ids: BTreeSet<u64> = go
        .goroutines
        .iter()
        .map(|g| g.goid)
        .filter(|&id| id != 0)
        .collect();
    let our_ids: BTreeSet<u64> = ours.goroutines.iter().map(|g| g.goid).collect();
    if go_ids != our_ids {
        diffs.push(format!(
            "goroutine ids differ: only Go {:?}, only gtrace {:?}",
            go_ids.difference(&our_ids).collect::<Vec<_>>(),
            our_ids.difference(&go_ids).collect::<Vec<_>>()
        ));
    }
    for g in &go.goroutines {
        let Some(o) = ours.goroutine(g.goid) else {
            continue;
        };
        let id = g.goid;
        if o.status != g.status {
            diffs.push(format!("g{id}: status {:?} vs Go {:?}", o.status, g.status));
        }
        let cb =
            |x: &traceback::Goroutine| x.created_by.as_ref().map(|c| (c.function.clone(), c.line));
        if cb(o) != cb(g) || o.parent_goid != g.parent_goid {
            diffs.push(format!(
                "g{id}: created by {:?} in {:?} vs Go {:?} in {:?}",
                cb(o),
                o.parent_goid,
                cb(g),
                g.parent_goid
            ));
        }
        if g.stack_unavailable || g.status == "running" || o.stack_unavailable {
            continue;
        }
        let fr = |x: &traceback::Goroutine| -> Vec<(String, String, u32, bool)> {
            x.frames
                .iter()
                .map(|f| (f.function.clone(), f.file.clone(), f.line, f.inlined))
                .collect()
        };
        if fr(o) != fr(g) {
            diffs.push(format!(
                "g{id} [{}]: frames\n  gtrace {:#?}\n  Go     {:#?}",
                g.status,
                fr(o),
                fr(g)
            ));
        }
        if o.elided.iter().map(|e| e.count).collect::<Vec<_>>()
            != g.elided.iter().map(|e| e.count).collect::<Vec<_>>()
        {
            diffs.push(format!(
                "g{id}: elision {:?} vs Go {:?}",
                o.elided, g.elided
            ));
        }
    }
    diffs
}

fn check_one(tc: &Toolchain, variant: Variant) -> Vec<String> {
    let what = format!("go{} {variant}", tc.version);
    let bin =
        fixture::build("blocked", tc, variant).unwrap_or_else(|e| panic!("{what}: build: {e:#}"));
    let mut p = spawn(&bin, &[]);
    let target = open(&p, &what);
    let minor = tc.minor().1;
    let (system, sys_stats) = collect(&target, true);
    let (user, user_stats) = collect(&target, false);
    // The JSON writer must produce valid JSON with every goroutine.
    let mut json = Vec::new();
    let mut w =
        JsonDumpWriter::start(&mut json, target.pid(), &target.version_string(), minor).unwrap();
    for g in &user {
        w.goroutine(g).unwrap();
    }
    w.finish(&user_stats).unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&json).unwrap_or_else(|e| panic!("{what}: bad JSON: {e}"));
    assert_eq!(
        v["goroutines"].as_array().map(Vec::len),
        Some(user.len()),
        "{what}"
    );
    assert_eq!(v["go_version"], format!("go{}", tc.version), "{what}");

    let text = quit_and_collect(&mut p).unwrap_or_else(|e| panic!("{what}: SIGQUIT dump: {e:#}"));
    let go = traceback::parse(&text).unwrap_or_else(|e| panic!("{what}: parse Go dump: {e}"));
    let mut diffs = Vec::new();
    for (name, stats) in [("system", &sys_stats), ("default", &user_stats)] {
        if stats.errors + stats.unreadable + stats.torn > 0 {
            diffs.push(format!("{name}: {stats:?}"));
        }
    }
    diffs.extend(
        compare(&as_go_dump(&system, minor), &go)
            .into_iter()
            .map(|d| format!("--system: {d}")),
    );
    diffs.extend(
        compare(&as_go_dump(&user, minor), &level1(&go))
            .into_iter()
            .map(|d| format!("default: {d}")),
    );
    // Errors in our own records (shown inline in text) must not hide behind a parse.
    for g in system.iter().filter(|g| g.error.is_some()) {
        diffs.push(format!("g{}: error {:?}", g.goid, g.error));
    }
    diffs.into_iter().map(|d| format!("{what}: {d}")).collect()
}

#[test]
fn dump_matches_the_runtimes_own_dump_in_every_version_and_variant() {
    let mut all = Vec::new();
    let mut runs = 0;
    for (tc, variant) in fixture::matrix().expect("Go toolchains (see tests/src/go.rs)") {
        runs += 1;
        all.extend(check_one(&tc, variant));
    }
    assert!(runs >= 32, "expected 8 toolchains x 4 variants, ran {runs}");
    assert!(
        all.is_empty(),
        "{} differences:\n{}",
        all.len(),
        all.join("\n")
    );
}

#[test]
fn target_keeps_working_during_repeated_dumps() {
    let tc = gtrace_tests::go::newest().expect("newest Go toolchain");
    let bin = fixture::build("dumpload", &tc, Variant::Default).expect("build dumpload");
    let mut p = spawn(&bin, &["2000"]);
    let target = open(&p, "dumpload");
    let mut last = 0u64;
    for round in 0..5 {
        let (gs, stats) = collect(&target, false);
        assert!(
            gs.len() >= 2000,
            "round {round}: only {} goroutines ({stats:?})",
            gs.len()
        );
        assert_eq!(stats.errors, 0, "round {round}: {stats:?}");
        p.write_line("count").unwrap();
        let line = p.next_line(std::time::Duration::from_secs(10)).unwrap();
        let count: u64 = line
            .strip_prefix("count ")
            .and_then(|c| c.parse().ok())
            .expect(&line);
        assert!(
            count > last,
            "round {round}: the target's counter stalled at {count}"
        );
        last = count;
    }
}

#[test]
fn errors_name_the_problem() {
    // A PID above pid_max never exists.
    assert!(matches!(
        Target::open(0x3fff_fff0),
        Err(DumpError::NoSuchProcess { .. })
    ));
    let mut p = Spawned::spawn(
        std::path::Path::new("/bin/sleep"),
        ["100"],
        &[] as &[(&str, &str)],
    )
    .unwrap();
    let err = Target::open(p.pid() as i32).expect_err("sleep is not a Go program");
    assert!(matches!(err, DumpError::NotGo { .. }), "{err}");
    assert!(err.to_string().contains("not a Go program"), "{err}");
    p.kill();
}

/// Not a pass/fail test of speed (no timing assertions): measures a 100 000-goroutine dump
/// and prints the numbers; run with `--ignored --nocapture`.
#[test]
#[ignore = "measurement; needs ~1 GB for the target"]
fn measure_100k_goroutines() {
    let tc = gtrace_tests::go::newest().expect("newest Go toolchain");
    let bin = fixture::build("dumpload", &tc, Variant::Default).expect("build dumpload");
    let p = spawn(&bin, &["100000"]);
    let hwm = || {
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().to_owned()))
            .unwrap()
    };
    let before = hwm();
    for round in 0..3 {
        let t0 = Instant::now();
        let target = open(&p, "dumpload");
        let t1 = Instant::now();
        let mut n = 0usize;
        let mut frames = 0usize;
        let stats = target
            .dump(DumpOptions::default(), &mut |g| {
                n += 1;
                frames += g.stack.frames.len();
            })
            .unwrap();
        let t2 = Instant::now();
        let mut out = std::io::sink();
        let mut w = JsonDumpWriter::start(&mut out, target.pid(), "x", 27).unwrap();
        target
            .dump(DumpOptions::default(), &mut |g| w.goroutine(&g).unwrap())
            .unwrap();
        let t3 = Instant::now();
        println!(
            "round {round}: open {:?}, dump {n} goroutines ({frames} frames) {:?}, dump+JSON {:?}; {stats:?}",
            t1 - t0,
            t2 - t1,
            t3 - t2
        );
        assert!(n >= 100_000, "{stats:?}");
    }
    println!(
        "peak RSS of the test process: before {before}, after {}",
        hwm()
    );
}
