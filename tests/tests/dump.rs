//! `gtrace dump` against the Go runtime's own goroutine dump, for every installed Go version
//! and build variant (default, stripped, PIE, trimpath).
//!
//! Ground truth: the `blocked` fixture, in steady state, is dumped by gtrace (process memory
//! only) and then by itself (`SIGQUIT` with `GOTRACEBACK=all`, which the runtime prints at
//! traceback level 2 because a signal dump counts as a runtime throw). gtrace's text output
//! is parsed by the harness's parser of Go dumps, so the comparison also proves that tools
//! reading Go dumps read ours.

use std::time::Instant;

use gtrace_tests::{
    dumpcmp::{as_go_dump, compare, level1, wrappers},
    fixture::{self, Variant},
    go::Toolchain,
    process::{GOTRACEBACK_ALL, Spawned, quit_and_collect},
    traceback::{self, Dump},
};
use tracer_user::{
    goroutines::{
        DumpOptions, DumpStats, Goroutine,
        group::{Group, Grouper},
        target::{DumpError, Target},
    },
    output::dump_json::JsonDumpWriter,
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

/// The JSON output read back as a Go dump, to compare it with Go's own (the JSON carries the
/// `inlined` flag itself). Also checks every object has the keys the schema requires.
fn json_as_go_dump(v: &serde_json::Value) -> Dump {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../docs/json/dump.schema.json"))
            .expect("schema is JSON");
    let required = |def: &str| -> Vec<String> {
        schema["$defs"][def]["required"]
            .as_array()
            .expect("required list")
            .iter()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect()
    };
    let (g_keys, f_keys) = (required("goroutine"), required("frame"));
    let mut dump = Dump::default();
    for g in v["goroutines"].as_array().expect("goroutines array") {
        for k in &g_keys {
            assert!(g.get(k).is_some(), "JSON goroutine lacks {k}: {g}");
        }
        let frames = g["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                for k in &f_keys {
                    assert!(f.get(k).is_some(), "JSON frame lacks {k}: {f}");
                }
                traceback::Frame {
                    function: f["function"].as_str().unwrap().to_owned(),
                    file: f["file"].as_str().unwrap().to_owned(),
                    line: f["line"].as_u64().unwrap() as u32,
                    inlined: f["inlined"].as_bool().unwrap(),
                    args: f["args"].as_str().unwrap_or("...").to_owned(),
                    ..traceback::Frame::default()
                }
            })
            .collect();
        let created_by = g["created_by"].as_object().map(|c| traceback::Location {
            function: c["function"].as_str().unwrap().to_owned(),
            file: c["file"].as_str().unwrap().to_owned(),
            line: c["line"].as_u64().unwrap() as u32,
            pc_offset: None,
        });
        dump.goroutines.push(traceback::Goroutine {
            goid: g["goid"].as_u64().unwrap(),
            status: g["wait_reason"]
                .as_str()
                .or(g["status"].as_str())
                .unwrap()
                .to_owned(),
            frames,
            created_by,
            parent_goid: g["parent_goid"].as_u64(),
            stack_unavailable: g["running"].as_bool().unwrap(),
            ..traceback::Goroutine::default()
        });
    }
    dump
}

fn check_one(tc: &Toolchain, variant: Variant) -> Vec<String> {
    let what = format!("go{} {variant}", tc.version);
    let bin =
        fixture::build("blocked", tc, variant).unwrap_or_else(|e| panic!("{what}: build: {e:#}"));
    let mut p = spawn(&bin, &[]);
    let target = match Target::open(p.pid() as i32) {
        Ok(t) => t,
        Err(e) => return vec![format!("{what}: Target::open failed: {e}")],
    };
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

    let bias = p
        .load_bias()
        .unwrap_or_else(|e| panic!("{what}: load bias: {e:#}"));
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
    let go_level1 = level1(&go, &wrappers(&bin, minor, bias));
    diffs.extend(
        compare(&as_go_dump(&user, minor), &go_level1)
            .into_iter()
            .map(|d| format!("default: {d}")),
    );
    diffs.extend(
        compare(&json_as_go_dump(&v), &go_level1)
            .into_iter()
            .map(|d| format!("--json: {d}")),
    );
    // --group: the three chan-receive goroutines of main.blockChanRecv fold into one entry.
    let mut grouper = Grouper::new();
    for g in &user {
        grouper.add(g.clone());
    }
    let groups = grouper.finish();
    let recv = groups.iter().find(|g| {
        g.example
            .stack
            .frames
            .first()
            .is_some_and(|f| &*f.src.function == "main.blockChanRecv")
    });
    if recv.map(Group::count) != Some(3) {
        diffs.push(format!(
            "--group: blockChanRecv group has {:?} members",
            recv.map(Group::count)
        ));
    }
    if groups.windows(2).any(|w| w[0].count() < w[1].count()) {
        diffs.push("--group: groups are not largest first".into());
    }
    // Errors in our own records (shown inline in text) must not hide behind a parse.
    for g in system.iter().filter(|g| g.error.is_some()) {
        diffs.push(format!("g{}: error {:?}", g.goid, g.error));
    }
    diffs.into_iter().map(|d| format!("{what}: {d}")).collect()
}

#[test]
fn dump_matches_the_runtimes_own_dump_in_every_version_and_variant() {
    // For development only: GTRACE_DUMP_ONLY=1.27.3/pie narrows the matrix.
    let only = std::env::var("GTRACE_DUMP_ONLY").ok();
    let mut all = Vec::new();
    let mut runs = 0;
    for (tc, variant) in fixture::matrix().expect("Go toolchains (see tests/src/go.rs)") {
        if only
            .as_deref()
            .is_some_and(|o| !format!("{}/{variant}", tc.version).starts_with(o))
        {
            continue;
        }
        runs += 1;
        all.extend(check_one(&tc, variant));
    }
    assert!(
        only.is_some() || runs >= 32,
        "expected 8 toolchains x 4 variants, ran {runs}"
    );
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
    let mut running_seen = 0;
    for round in 0..20 {
        let (gs, stats) = collect(&target, false);
        assert!(
            gs.len() >= 2000,
            "round {round}: only {} goroutines ({stats:?})",
            gs.len()
        );
        // Goroutines that run while we read them may fail to decode; they must then be
        // marked torn. Every parked one must decode cleanly.
        for g in gs.iter().filter(|g| g.error.is_some()) {
            assert!(
                g.torn,
                "round {round}: g{} [{}] not torn but: {:?}",
                g.goid,
                g.state_text(),
                g.error
            );
        }
        // main.spin never blocks: it is either on a CPU (then only its thread can be told) or
        // preempted (then its stack is readable).
        let spinner = gs.iter().find(|g| {
            g.running
                && g.created_by
                    .as_ref()
                    .is_some_and(|c| &*c.function == "main.main")
                || g.stack
                    .frames
                    .iter()
                    .any(|f| &*f.src.function == "main.spin")
        });
        let spinner = spinner.unwrap_or_else(|| panic!("round {round}: main.spin not found"));
        if spinner.running {
            running_seen += 1;
            let tid = spinner.thread.expect("a running goroutine's thread");
            let task = format!("/proc/{}/task/{tid}", p.pid());
            assert!(
                std::path::Path::new(&task).exists(),
                "round {round}: thread {tid} is not the target's"
            );
        }
        let parked = gs
            .iter()
            .filter(|g| g.wait_reason.as_deref() == Some("chan receive") && !g.torn)
            .count();
        assert!(
            parked >= 2000,
            "round {round}: {parked} cleanly parked goroutines ({stats:?})"
        );
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
    println!("main.spin seen running on a CPU in {running_seen} of 20 dumps");
}

#[test]
fn wait_time_appears_after_a_gc_and_cli_formats_parse() {
    let tc = gtrace_tests::go::newest().expect("newest Go toolchain");
    let bin = fixture::build("dumpload", &tc, Variant::Default).expect("build dumpload");
    let spawned_at = Instant::now();
    let mut p = spawn(&bin, &["50", "quiet"]);
    let target = open(&p, "dumpload");
    let parked = |gs: &[Goroutine]| -> Vec<Goroutine> {
        gs.iter()
            .filter(|g| {
                g.stack
                    .frames
                    .first()
                    .is_some_and(|f| &*f.src.function == "main.parked")
            })
            .cloned()
            .collect()
    };
    // waitsince is stamped by a GC that finds the goroutine blocked, with work.tstart, which
    // gcMark sets only at the end of each cycle (mgcmark.go markroot, mgc.go gcMark): during
    // the very first cycle it is still 0, so it takes two GCs.
    let gc = |p: &mut Spawned| {
        p.write_line("gc").unwrap();
        assert_eq!(
            p.next_line(std::time::Duration::from_secs(30)).unwrap(),
            "gc done"
        );
    };
    let (gs, _) = collect(&target, false);
    assert!(
        parked(&gs).iter().all(|g| g.wait_ns.is_none()),
        "no GC yet: waitsince is 0"
    );
    gc(&mut p);
    gc(&mut p);
    let (gs, _) = collect(&target, false);
    let after = parked(&gs);
    assert_eq!(after.len(), 50);
    let alive = spawned_at.elapsed().as_secs_f64();
    for g in &after {
        let secs = g.wait_ns.expect("waitsince stamped by the GC") as f64 / 1e9;
        assert!(
            secs > 0.0 && secs <= alive,
            "g{}: waited {secs}s, process alive {alive}s",
            g.goid
        );
        assert_eq!(g.wait_minutes(), Some(0));
    }

    // The CLI entry point in every output mode.
    let pid = p.pid() as i32;
    let run = |json: bool, group: bool| -> String {
        let args = tracer_user::cli::dump::DumpArgs {
            pid,
            json,
            group,
            system: false,
        };
        let mut out = Vec::new();
        tracer_user::cli::dump::run(&args, &mut out).expect("cli run");
        String::from_utf8(out).unwrap()
    };
    let text = run(false, false);
    let text_dump = traceback::parse(&text).expect("text output parses as a Go dump");
    assert_eq!(text_dump.with_frame("main.parked").count(), 50);
    let json: serde_json::Value = serde_json::from_str(&run(true, false)).expect("JSON");
    assert_eq!(json["pid"], pid);
    assert_eq!(json_as_go_dump(&json).with_frame("main.parked").count(), 50);
    let grouped = run(false, true);
    assert!(
        grouped.starts_with("50 goroutines [chan receive]:"),
        "{grouped}"
    );
    let gj: serde_json::Value = serde_json::from_str(&run(true, true)).expect("group JSON");
    assert_eq!(gj["groups"][0]["count"], 50, "{gj}");
    assert_eq!(
        gj["groups"][0]["frames"][0]["function"], "main.parked",
        "{gj}"
    );
}

/// Runs inside a child of [`permission_denied_names_the_fix`] as uid `nobody`; does nothing
/// in a normal test run.
#[test]
fn permission_child() {
    let Ok(pid) = std::env::var("GTRACE_DUMP_PERMISSION_CHILD") else {
        return;
    };
    let err = Target::open(pid.parse().unwrap()).expect_err("nobody must not read a root process");
    assert!(matches!(err, DumpError::PermissionDenied { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("CAP_SYS_PTRACE") || msg.contains("ptrace_scope"),
        "{msg}"
    );
    println!("CHILD-OK {msg}");
}

#[test]
fn permission_denied_names_the_fix() {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test drops root to show the error; run it as root"
    );
    let mut p = Spawned::spawn(
        std::path::Path::new("/bin/sleep"),
        ["100"],
        &[] as &[(&str, &str)],
    )
    .unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "permission_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("GTRACE_DUMP_PERMISSION_CHILD", p.pid().to_string())
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    p.kill();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("CHILD-OK"),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
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

/// CPU time (user + system) this process has used so far.
fn cpu_time() -> std::time::Duration {
    // SAFETY: an all-zero rusage is a valid value; getrusage only writes into it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &raw mut ru) };
    let tv = |t: libc::timeval| std::time::Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Not a pass/fail test of speed (no timing assertions): measures dumps of 100 000 parked
/// goroutines, with the target idle ("quiet") and with it busy allocating (GC running), and
/// prints wall time, our CPU time and peak memory. Run with `--release --ignored --nocapture`.
#[test]
#[ignore = "measurement; needs ~1 GB for the target"]
fn measure_100k_goroutines() {
    let tc = gtrace_tests::go::newest().expect("newest Go toolchain");
    let bin = fixture::build("dumpload", &tc, Variant::Default).expect("build dumpload");
    let hwm = || {
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().to_owned()))
            .unwrap()
    };
    let before = hwm();
    for mode in ["quiet", "busy"] {
        let p = spawn(&bin, &["100000", mode]);
        for round in 0..3 {
            let t0 = Instant::now();
            let target = open(&p, "dumpload");
            let t1 = Instant::now();
            let c1 = cpu_time();
            let mut n = 0usize;
            let stats = target
                .dump(DumpOptions::default(), &mut |_| n += 1)
                .unwrap();
            let (t2, c2) = (Instant::now(), cpu_time());
            let mut out = std::io::sink();
            let mut w = JsonDumpWriter::start(&mut out, target.pid(), "x", 27).unwrap();
            target
                .dump(DumpOptions::default(), &mut |g| w.goroutine(&g).unwrap())
                .unwrap();
            let (t3, c3) = (Instant::now(), cpu_time());
            println!(
                "{mode} round {round}: open {:?}; dump {n} goroutines: wall {:?}, cpu {:?}; \
                 dump+JSON: wall {:?}, cpu {:?}; {stats:?}",
                t1 - t0,
                t2 - t1,
                c2.saturating_sub(c1),
                t3 - t2,
                c3.saturating_sub(c2)
            );
            assert!(n >= 100_000, "{stats:?}");
        }
    }
    println!(
        "peak RSS of the test process: before {before}, after {}",
        hwm()
    );
}
