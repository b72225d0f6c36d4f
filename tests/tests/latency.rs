//! `gtrace latency` end to end on the `sleepspin` fixture, for every installed Go version and
//! variant. Needs root and the `gtrace` binary (`cargo build -p tracer-user`, same profile).
//!
//! The fixture's goroutines each have one obvious home: the sleeper is parked "sleep", the
//! spinner runs (on-CPU, or off-CPU when the machine is busy), the channel waiter is parked
//! "chan receive", the pipe reader is in a read(2) system call, the collector calls
//! `runtime.GC` every 100 ms (two stop-the-world pauses per cycle). Checked: the states land
//! where they must (wide margins, no timing assertions), every goroutine's states sum to its
//! part of the window, GC pauses are named as Go's tracer names them, nothing is lost, the
//! JSON has the documented fields; `-p PID` (attach-time snapshot) and `-- CMD` (every
//! goroutine seen from its creation).

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use gtrace_tests::{
    fixture::{self, Variant},
    go::Toolchain,
    process::Spawned,
};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_mins(1);
const WINDOW: &str = "2s";

/// The `gtrace` binary of this build.
fn gtrace() -> PathBuf {
    gtrace_tests::gtrace::bin()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn parked(g: &Value, reason: &str) -> f64 {
    g["parked_s"][reason].as_f64().unwrap_or(0.0)
}

fn goroutine<'a>(what: &str, r: &'a Value, function: &str) -> &'a Value {
    r["goroutines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["function"] == function)
        .unwrap_or_else(|| panic!("{what}: no goroutine started by {function}: {r:#}"))
}

/// The checks common to both ways of starting.
fn check(what: &str, r: &Value, tc: &Toolchain) {
    let window = f(&r["window_seconds"]);
    assert!(
        (1.5..30.0).contains(&window),
        "{what}: window {window}s for -d {WINDOW}"
    );
    assert_eq!(r["sampling"]["sampled"], false, "{what}: governor off");
    let l = &r["losses"];
    for k in ["dropped", "decode_errors"] {
        assert_eq!(l[k], 0, "{what}: {k} in {l:#}");
    }
    // Every goroutine: its states sum to its part of the window (the whole window for one
    // alive throughout and not created in it).
    for g in r["goroutines"].as_array().unwrap() {
        let parked_sum: f64 = g["parked_s"].as_object().unwrap().values().map(f).sum();
        let sum = f(&g["running_s"])
            + f(&g["runnable_s"])
            + f(&g["os_offcpu_s"])
            + f(&g["syscall_s"])
            + parked_sum
            + f(&g["stw_s"])
            + f(&g["assist_s"]);
        assert!(
            (sum - f(&g["observed_s"])).abs() < 1e-6,
            "{what}: states do not sum to observed_s: {g:#}"
        );
        assert!(
            (f(&g["os_offcpu_s"]) - f(&g["os_preempted_s"]) - f(&g["os_blocked_s"])).abs() < 1e-6,
            "{what}: {g:#}"
        );
        assert!(f(&g["observed_s"]) <= window + 1e-6, "{what}: {g:#}");
        if g["preexisting"] == true && g["exited"] == false {
            assert!(
                (f(&g["observed_s"]) + f(&g["unobserved_s"]) - window).abs() < 1e-6,
                "{what}: goroutine alive throughout does not cover the window {window}: {g:#}"
            );
        }
    }
    let total = |g: &Value| f(&g["observed_s"]);
    let sleeper = goroutine(what, r, "main.sleeper");
    // Wide margin: on a loaded machine each of its 20 wake-ups a second can wait long for a
    // CPU or behind a stop-the-world.
    assert!(
        parked(sleeper, "sleep") >= 0.5 * total(sleeper),
        "{what}: the sleeper is not mostly parked 'sleep': {sleeper:#}"
    );
    let spinner = goroutine(what, r, "main.spinner");
    let busy = f(&spinner["running_s"]) + f(&spinner["os_offcpu_s"]);
    assert!(
        busy >= 0.5 * total(spinner) && f(&spinner["running_s"]) > 0.05 * total(spinner),
        "{what}: the spinner is not mostly running: {spinner:#}"
    );
    let waiter = goroutine(what, r, "main.chanWaiter");
    assert!(
        parked(waiter, "chan receive") >= 0.95 * total(waiter),
        "{what}: the channel waiter is not parked 'chan receive': {waiter:#}"
    );
    let reader = goroutine(what, r, "main.pipeReader");
    assert!(
        f(&reader["syscall_s"]) >= 0.95 * total(reader),
        "{what}: the pipe reader is not in its syscall: {reader:#}"
    );
    let collector = goroutine(what, r, "main.collector");
    assert!(
        parked(collector, "sleep") > 0.0 && f(&collector["running_s"]) > 0.0,
        "{what}: {collector:#}"
    );
    // Two pauses per GC cycle, named as Go's tracer names them. Every sweep termination is
    // followed by a mark termination (but for a cycle cut by the window's end); there can be
    // more of the latter: gcMarkDone restarts the world and stops it again when it finds
    // work left after stopping (runtime/mgc.go, golang/go#27993).
    let stw = r["stw"].as_array().unwrap();
    let named = |n: &str| stw.iter().filter(|s| s["reason"] == n).count();
    let (sweep, mark) = (named("GC sweep termination"), named("GC mark termination"));
    assert!(
        sweep >= 3 && mark + 1 >= sweep,
        "{what}: {sweep} sweep / {mark} mark termination pauses: {stw:#?}"
    );
    for s in stw {
        // From Go 1.21 the runtime names every pause; before, GC pauses are named from the
        // GC probes around them, and a pause whose gcStart came before attach stays unknown.
        let unknown = s["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("unknown"));
        assert!(
            if tc.at_least(1, 21) {
                s["inferred"] == false && !unknown
            } else {
                s["inferred"] == true || unknown
            },
            "{what}: reasons are passed from Go 1.21 on: {s}"
        );
        assert!(
            s["duration_ns"].as_u64().unwrap() < 1_000_000_000,
            "{what}: {s}"
        );
    }
    let cycles = r["gc_cycles"].as_array().unwrap();
    assert!(
        cycles
            .iter()
            .filter(|c| c["start_ns"].is_u64() && c["end_ns"].is_u64())
            .count()
            >= 3,
        "{what}: {cycles:#?}"
    );
    let degraded = r["degraded"].as_array().unwrap();
    assert_eq!(
        degraded.len(),
        usize::from(!tc.at_least(1, 21)),
        "{what}: only the STW reason is missing, before 1.21: {degraded:#?}"
    );
}

fn by_pid(tc: &Toolchain, v: Variant) {
    let what = format!("latency -p sleepspin go{} {v:?}", tc.minor_str());
    let bin = fixture::build("sleepspin", tc, v).expect("build sleepspin");
    let mut target = Spawned::spawn(&bin, std::iter::empty::<&str>(), &[("GOMAXPROCS", "2")])
        .expect("spawn sleepspin");
    target.wait_ready().expect("sleepspin ready");
    let out = Command::new(gtrace())
        .args([
            "latency",
            "-p",
            &target.pid().to_string(),
            "-d",
            WINDOW,
            "--json",
            "--max-overhead",
            "off",
        ])
        .output()
        .expect("run gtrace latency");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what}: {stderr}");
    let r: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{what}: bad JSON ({e}): {stderr}"));
    check(&what, &r, tc);
    // The snapshot named the pre-existing goroutines and their creation sites.
    let waiter = goroutine(&what, &r, "main.chanWaiter");
    assert_eq!(waiter["preexisting"], true, "{what}");
    assert_eq!(waiter["created_by"]["function"], "main.main", "{what}");
    // The target keeps working and exits cleanly.
    target.close_stdin();
    target.wait_exit(TIMEOUT).expect("sleepspin exits");
    assert_eq!(target.stderr(), "", "{what}: the target complained");
    // Text output: the table and the pause list.
    let target = Spawned::spawn(&bin, std::iter::empty::<&str>(), &[("GOMAXPROCS", "2")]);
    let mut target = target.expect("spawn sleepspin");
    target.wait_ready().expect("sleepspin ready");
    let out = Command::new(gtrace())
        .args(["latency", "-p", &target.pid().to_string(), "-d", "1s"])
        .args(["--func", "^main\\.(sleeper|spinner)$"])
        .output()
        .expect("run gtrace latency");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{what}: {text}");
    for want in [
        "BY START FUNCTION AND CREATION SITE",
        "main.sleeper",
        "main.spinner",
        "STOP-THE-WORLD:",
        "lost events: 0 dropped",
    ] {
        assert!(text.contains(want), "{what}: no {want:?} in\n{text}");
    }
    assert!(!text.contains("main.chanWaiter"), "{what}: --func\n{text}");
    target.close_stdin();
    target.wait_exit(TIMEOUT).expect("sleepspin exits");
}

fn under_gtrace(tc: &Toolchain, v: Variant) {
    let what = format!("latency -- sleepspin go{} {v:?}", tc.minor_str());
    let bin = fixture::build("sleepspin", tc, v).expect("build sleepspin");
    let child = Command::new(gtrace())
        .args([
            "latency",
            "-d",
            WINDOW,
            "--json",
            "--max-overhead",
            "off",
            "--",
        ])
        .arg(&bin)
        // Outlives the window; shares gtrace's stdout, which it leaves alone.
        .args(["quiet", "4s"])
        .env("GOMAXPROCS", "2")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gtrace latency");
    let out = child.wait_with_output().expect("gtrace latency output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what}: {stderr}");
    let r: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{what}: bad JSON ({e}): {stderr}"));
    check(&what, &r, tc);
    // Every goroutine was seen from its creation: none predates the window.
    for g in r["goroutines"].as_array().unwrap() {
        assert_eq!(g["preexisting"], false, "{what}: {g:#}");
    }
    let spinner = goroutine(&what, &r, "main.spinner");
    assert_eq!(spinner["created_by"]["function"], "main.main", "{what}");
}

#[test]
fn latency_states_land_where_they_must() {
    let only = std::env::var("GTRACE_TEST_GO").ok();
    for (tc, v) in fixture::matrix().expect("Go toolchains (cargo xtask go-toolchains)") {
        if only.as_deref().is_some_and(|o| o != tc.minor_str()) {
            continue;
        }
        by_pid(&tc, v);
        if v == Variant::Default || v == Variant::Stripped {
            under_gtrace(&tc, v);
        }
    }
}

/// A pause ends where Go's tracer ends it (`STWDone`, just before `startTheWorldWithSema`
/// calls `wakep`): the plan probes that one call, and Go's own disassembler must show a
/// `CALL runtime.wakep` at the probed address, in every version and variant.
#[test]
fn stw_end_is_probed_at_the_call_to_wakep() {
    use tracer_common::probe::ProbeId;
    use tracer_user::{gobin::GoBinary, probes};
    let only = std::env::var("GTRACE_TEST_GO").ok();
    for (tc, v) in fixture::matrix().expect("Go toolchains (cargo xtask go-toolchains)") {
        if only.as_deref().is_some_and(|o| o != tc.minor_str()) {
            continue;
        }
        let what = format!("go{} {v}", tc.minor_str());
        let path = fixture::build("latency", &tc, v).expect("build latency");
        let bin = GoBinary::open(&path).unwrap_or_else(|e| panic!("{what}: {e}"));
        let mut plan = probes::lifecycle::plan(&bin).unwrap_or_else(|e| panic!("{what}: {e}"));
        let degraded =
            probes::latency::extend(&bin, &mut plan).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            degraded
                .iter()
                .all(|d| d.function != "runtime.startTheWorldWithSema"),
            "{what}: {degraded:?}"
        );
        let ends: Vec<u64> = plan
            .sites
            .iter()
            .filter(|s| s.probe == ProbeId::StartTheWorld)
            .map(|s| s.vaddr)
            .collect();
        let [end] = ends[..] else {
            panic!("{what}: expected one STW end site, got {ends:x?}");
        };
        let out = tc
            .command()
            .args(["tool", "objdump", "-s", "^runtime.startTheWorldWithSema$"])
            .arg(&path)
            .output()
            .expect("go tool objdump");
        let text = String::from_utf8_lossy(&out.stdout);
        if text.trim().is_empty() && v == Variant::Stripped {
            // Go 1.19's objdump needs the symbol table: check the bytes instead, a `call
            // rel32` whose target is wakep's entry (the function table itself is compared
            // with addr2line by the symbolization tests).
            let site = plan
                .sites
                .iter()
                .find(|s| s.vaddr == end)
                .expect("the site");
            let bytes = std::fs::read(&path).expect("read the fixture");
            let at = usize::try_from(site.offset).expect("offset");
            let insn = &bytes[at..at + 5];
            let rel = i32::from_le_bytes(insn[1..5].try_into().expect("4 bytes"));
            let wakep = bin
                .func_by_name("runtime.wakep")
                .expect("runtime.wakep")
                .entry;
            assert!(
                insn[0] == 0xe8 && end.wrapping_add(5).wrapping_add_signed(rel.into()) == wakep,
                "{what}: the STW end at {end:#x} is not `call runtime.wakep`: {insn:02x?}"
            );
            continue;
        }
        // `  file:line\t\tADDRESS\t\tBYTES\t\t\tINSTRUCTION` (`:0` and three tabs without line
        // information): the address column, not an operand naming the same address.
        let at = format!("0x{end:x}");
        let line = text
            .lines()
            .find(|l| l.split('\t').filter(|f| !f.is_empty()).nth(1) == Some(at.as_str()))
            .unwrap_or_else(|| panic!("{what}: no instruction at {at:?} in:\n{text}"));
        assert!(
            line.contains("CALL runtime.wakep(SB)"),
            "{what}: the STW end is probed at {line:?}"
        );
    }
}

/// A command started by gtrace that outlives the capture is left running (it is the user's
/// program) and the user is told so; gtrace does not wait for it.
#[test]
fn a_command_outliving_the_capture_keeps_running() {
    let tc = gtrace_tests::go::newest().expect("Go toolchains (cargo xtask go-toolchains)");
    let bin = fixture::build("sleepspin", &tc, Variant::Default).expect("build sleepspin");
    let dir = std::env::temp_dir();
    let (out_file, err_file) = (
        dir.join("gtrace-outliving-command.out"),
        dir.join("gtrace-outliving-command.err"),
    );
    let file = |p: &PathBuf| std::fs::File::create(p).expect("output file");
    let status = Command::new(gtrace())
        .args(["latency", "-d", "1", "--max-overhead", "off", "--"])
        .arg(&bin)
        .args(["quiet", "60s"])
        .stdin(Stdio::null())
        // Files, not pipes: the command inherits them and would hold a pipe open for its
        // minute.
        .stdout(file(&out_file))
        .stderr(file(&err_file))
        .status()
        .expect("run gtrace latency");
    let stderr = std::fs::read_to_string(&err_file).expect("gtrace's stderr");
    let pid =
        gtrace_tests::gtrace::attached_pid(&stderr).unwrap_or_else(|| panic!("no pid in {stderr}"));
    // SAFETY: signal 0 only checks that the process exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    // SAFETY: kill(2) of the fixture this test started through gtrace.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert!(status.success(), "{stderr}");
    assert!(alive, "the command died with the capture: {stderr}");
    assert!(
        stderr.contains(&format!(
            "process {pid} (started by gtrace) keeps running, no longer traced"
        )),
        "{stderr}"
    );
}
