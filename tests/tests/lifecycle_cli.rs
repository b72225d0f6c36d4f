//! `gtrace record` / `gtrace report` end to end, for every installed Go version and variant.
//! Needs root and the `gtrace` binary (`cargo build -p tracer-user`, same profile).
//!
//! - `record -- CMD`: the command starts stopped at exec, so every goroutine is seen from its
//!   creation; it exits mid-capture, which must end the capture cleanly (footer written,
//!   reason `target_exited`, nothing lost).
//! - `record -p PID` on a running process: the attach-time baseline lists the goroutines
//!   that existed before, and the main goroutine's life shows its park in `spawn`; SIGTERM
//!   ends the capture cleanly, the detach check passes and the target keeps working.
//! - `report --json`, `--goid`, `--format perfetto` on the same files.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use gtrace_tests::{
    fixture::{self, Variant},
    go::Toolchain,
    process::{Signal, Spawned},
};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(30);
const N: u64 = 150;
/// Churn rounds of `record -p` (see `attached_by_pid`).
const ROUNDS: u64 = 3;

/// The `gtrace` binary of this build.
fn gtrace() -> PathBuf {
    gtrace_tests::gtrace::bin()
}

fn report(file: &Path, args: &[&str]) -> String {
    gtrace_tests::gtrace::report(file, args)
}

fn json(file: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&report(file, args)).expect("report JSON parses")
}

fn check_clean(what: &str, s: &Value, reason: &str) {
    assert_eq!(s["stop_reason"], reason, "{what}: {s:#}");
    let l = &s["losses"];
    assert_eq!(l["complete"], true, "{what}: footer missing");
    for k in ["dropped", "decode_errors", "probe_errors"] {
        assert_eq!(l[k], 0, "{what}: {k} in {l:#}");
    }
}

fn spawned_under_gtrace(tc: &Toolchain, v: Variant, dir: &Path) {
    let what = format!("record -- churn go{} {v:?}", tc.minor_str());
    let bin = fixture::build("churn", tc, v).expect("build churn");
    let file = dir.join(format!("spawn-{}-{v:?}.gtc", tc.minor_str()));
    let out = file.to_str().unwrap();
    let mut p = Spawned::spawn(
        &gtrace(),
        ["record", "-o", out, "--", bin.to_str().unwrap()],
        &[("GOGC", "off")],
    )
    .expect("spawn gtrace record");
    p.wait_ready().expect("churn ready under gtrace");
    p.write_line(&N.to_string()).unwrap();
    p.wait_for_line(&format!("done {N}"), TIMEOUT)
        .expect("churn done");
    // "done" follows the last wg.Done(), not the last exit: let every worker reach goexit0
    // before quitting, or the process ends with one still on its way out.
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        p.write_line("goroutines").unwrap();
        let lines = p
            .wait_for(TIMEOUT, |l| l.starts_with("goroutines "))
            .expect("goroutines reply");
        if lines.last().is_some_and(|l| l == "goroutines 1") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: workers never exited"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    p.write_line("quit").unwrap();
    let st = p
        .wait_exit(TIMEOUT)
        .expect("gtrace record exits with its target");
    assert!(st.success(), "{what}: gtrace record failed: {}", p.stderr());
    let s = json(&file, &["--json"]);
    check_clean(&what, &s, "target_exited");
    assert!(s["created"].as_u64().unwrap() >= N, "{what}: {s:#}");
    assert!(s["exited"].as_u64().unwrap() >= N, "{what}: {s:#}");
    assert_eq!(
        s["preexisting"], 0,
        "{what}: started under gtrace, nothing predates it"
    );
    // The main goroutine is created by the runtime before any user code: seen as created.
    let g1 = json(&file, &["--json", "--goid", "1"]);
    assert!(
        g1["goroutine"]["created_at_ns"].is_u64(),
        "{what}: main goroutine creation not seen: {g1:#}"
    );
    assert_eq!(g1["goroutine"]["start"], "runtime.main", "{what}");
    // Perfetto: valid JSON, one named track per goroutine, slices with durations.
    let t: Value = serde_json::from_str(&report(&file, &["--format", "perfetto"])).unwrap();
    let ev = t["traceEvents"].as_array().expect("traceEvents");
    let tracks = ev.iter().filter(|e| e["ph"] == "M").count() as u64;
    assert!(tracks >= N, "{what}: {tracks} tracks");
    assert!(ev.iter().any(|e| e["ph"] == "X" && e["name"] == "running"));
    // Text report mentions where goroutines blocked.
    let text = report(&file, &[]);
    assert!(text.contains("lost events: 0 dropped"), "{what}: {text}");
}

fn attached_by_pid(tc: &Toolchain, v: Variant, dir: &Path) {
    let what = format!("record -p churn go{} {v:?}", tc.minor_str());
    let bin = fixture::build("churn", tc, v).expect("build churn");
    let file = dir.join(format!("pid-{}-{v:?}.gtc", tc.minor_str()));
    let mut target =
        Spawned::spawn(&bin, std::iter::empty::<&str>(), &[("GOGC", "off")]).expect("spawn churn");
    target.wait_ready().expect("churn ready");
    let mut rec = Spawned::spawn(
        &gtrace(),
        [
            "record",
            "-p",
            &target.pid().to_string(),
            "-o",
            file.to_str().unwrap(),
        ],
        &[("GTRACE_LOG", "warn")],
    )
    .expect("spawn gtrace record");
    // gtrace says when the probes are live.
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !rec.stderr().contains("attached to pid") {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: never attached: {}",
            rec.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Main parks in spawn's wg.Wait unless the other P ran every worker before it got there
    // (seen once, with the OS starving main's thread): a few rounds make that all but
    // impossible while each round still only parks there.
    for _ in 0..ROUNDS {
        target.write_line(&N.to_string()).unwrap();
        target
            .wait_for_line(&format!("done {N}"), TIMEOUT)
            .expect("churn done");
    }
    // SIGTERM (like Ctrl-C) ends the capture cleanly: footer written, probes detached and
    // the target's code verified unchanged; the target keeps working.
    rec.signal(Signal::Term).unwrap();
    let st = rec
        .wait_exit(TIMEOUT)
        .expect("gtrace record exits on SIGTERM");
    assert!(st.success(), "{what}: {}", rec.stderr());
    let s = json(&file, &["--json"]);
    check_clean(&what, &s, "signal");
    assert_eq!(s["detach_problem"], "", "{what}: {s:#}");
    target.write_line("7").unwrap();
    target
        .wait_for_line("done 7", TIMEOUT)
        .expect("the target still works after gtrace detached");
    target.write_line("quit").unwrap();
    target.wait_exit(TIMEOUT).expect("target exits");
    assert_eq!(target.stderr(), "", "{what}: the target complained");
    assert_eq!(s["created"], ROUNDS * N, "{what}: {s:#}");
    assert!(
        s["preexisting"].as_u64().unwrap() >= 1,
        "{what}: no baseline: {s:#}"
    );
    let g1 = json(&file, &["--json", "--goid", "1"]);
    let g = &g1["goroutine"];
    assert_eq!(g["preexisting"], true, "{what}");
    assert!(
        g["parks"].as_array().unwrap().iter().any(|p| p["site"]
            .as_str()
            .is_some_and(|s| s.starts_with("main.spawn"))),
        "{what}: main never parked in main.spawn (wg.Wait): {g:#}"
    );
}

/// `gtrace trace -- churn --kind create --func …`: one JSON line per matching creation.
fn trace_stream(tc: &Toolchain, v: Variant) {
    let what = format!("trace -- churn go{} {v:?}", tc.minor_str());
    let bin = fixture::build("churn", tc, v).expect("build churn");
    let mut p = Spawned::spawn(
        &gtrace(),
        [
            "trace",
            "--json",
            "--kind",
            "create,exit",
            "--func",
            "^main\\.spawn",
            "--",
            bin.to_str().unwrap(),
        ],
        &[("GOGC", "off")],
    )
    .expect("spawn gtrace trace");
    p.wait_ready().expect("churn ready under gtrace");
    p.write_line(&N.to_string()).unwrap();
    p.wait_for_line(&format!("done {N}"), TIMEOUT)
        .expect("churn done");
    p.write_line("quit").unwrap();
    let st = p
        .wait_exit(TIMEOUT)
        .expect("gtrace trace exits with its target");
    assert!(st.success(), "{what}: {}", p.stderr());
    // gtrace's output is flushed every 10 ms: read what remains after the target's lines.
    while p.next_line(Duration::from_millis(500)).is_ok() {}
    let lines: Vec<Value> = p
        .stdout_seen()
        .iter()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let creates = lines.iter().filter(|l| l["kind"] == "create").count() as u64;
    assert_eq!(
        creates, N,
        "{what}: create lines (only main.spawn's go statement matches)"
    );
    assert!(
        lines
            .iter()
            .filter(|l| l["kind"] == "create")
            .all(|l| l["site"]
                .as_str()
                .is_some_and(|s| s.starts_with("main.spawn ("))),
        "{what}"
    );
    assert!(
        p.stderr().contains("lost events: 0 dropped"),
        "{what}: {}",
        p.stderr()
    );
}

#[test]
fn record_and_report() {
    let dir = std::env::temp_dir().join(format!("gtrace-lifecycle-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let only = std::env::var("GTRACE_TEST_GO").ok();
    for (tc, v) in fixture::matrix().expect("Go toolchains (cargo xtask go-toolchains)") {
        if only.as_deref().is_some_and(|o| o != tc.minor_str()) {
            continue;
        }
        spawned_under_gtrace(&tc, v, &dir);
        attached_by_pid(&tc, v, &dir);
        trace_stream(&tc, v);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
