//! The overhead governor end to end: `gtrace record --max-overhead` on the ping-pong fixture
//! with a budget no tracing can meet, on the oldest and the newest Go (and one in between).
//! Needs root and the `gtrace` binary (`cargo build -p tracer-user`, same profile).
//!
//! Checked: stderr says sampling started; the capture records the governor's decision and
//! its gaps; create/exit counts equal the probes' hit counters (exact, not sampled) and the
//! ping-pong goroutines' creations and exits are all there; no park measured across a gap;
//! the target's output is the one it prints untraced.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use gtrace_tests::{
    fixture::{self, Variant},
    go::{self, Toolchain},
    process::Spawned,
};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_mins(2);
/// Round trips: long enough (seconds under the probes) for several governor evaluations.
const ROUNDS: u64 = 150_000;

/// The `gtrace` binary of this build.
fn gtrace() -> PathBuf {
    gtrace_tests::gtrace::bin()
}

fn report(file: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&gtrace_tests::gtrace::report(file, args)).expect("report JSON")
}

fn hits(s: &Value, probe: &str) -> u64 {
    s["losses"]["probes"]
        .as_array()
        .expect("probe counters")
        .iter()
        .find(|p| p["probe"] == probe)
        .and_then(|p| p["hits"].as_u64())
        .unwrap_or_else(|| panic!("no counter for {probe}: {s:#}"))
}

/// True when `[a, b)` overlaps one of `gaps` (`(start, end|null)`, ns from capture start).
fn overlaps_gap(gaps: &[Value], a: u64, b: u64) -> bool {
    gaps.iter().any(|g| {
        let start = g[0].as_u64().expect("gap start");
        let end = g[1].as_u64().unwrap_or(u64::MAX);
        start < b && end > a
    })
}

fn sampled_pingpong(tc: &Toolchain, dir: &Path) {
    let what = format!("governor pingpong go{}", tc.minor_str());
    let bin = fixture::build("pingpong", tc, Variant::Default).expect("build pingpong");
    let file = dir.join(format!("pp-{}.gtc", tc.minor_str()));
    let mut p = Spawned::spawn(
        &gtrace(),
        [
            "record",
            "--max-overhead",
            "0.1",
            "-o",
            file.to_str().unwrap(),
            "--",
            bin.to_str().unwrap(),
        ],
        &[("GOGC", "off")],
    )
    .expect("spawn gtrace record");
    p.wait_ready().expect("pingpong ready under gtrace");
    p.write_line(&format!("pp {ROUNDS}")).unwrap();
    let lines = p
        .wait_for(TIMEOUT, |l| l.starts_with("pp "))
        .expect("ping-pong done");
    let last = lines.last().expect("pp line").clone();
    let ids: Vec<u64> = last
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().expect("goid"))
        .collect();
    assert_eq!(ids.len(), 2, "{what}: {last}");
    p.write_line("quit").unwrap();
    let st = p.wait_exit(TIMEOUT).expect("gtrace exits with its target");
    assert!(st.success(), "{what}: {}", p.stderr());
    let err = p.stderr();
    assert!(
        err.contains("overhead governor:") && err.contains("sampling park/ready/execute"),
        "{what}: sampling not announced on stderr:\n{err}"
    );
    assert!(
        err.contains("sampled: the hot probes emitted"),
        "{what}: {err}"
    );
    // The target's own output is what it prints untraced: "ready", then "pp A B".
    assert_eq!(p.stdout_seen().len(), 2, "{what}: {:?}", p.stdout_seen());

    let s = report(&file, &["--json"]);
    let samp = &s["sampling"];
    assert_eq!(samp["max_overhead_pct"], 0.1, "{what}: {samp:#}");
    let decisions = samp["decisions"].as_array().expect("decisions");
    assert!(
        decisions.iter().any(|d| d["duty"].as_f64().unwrap() < 1.0),
        "{what}: no sampling decision in the capture: {samp:#}"
    );
    let gaps = samp["gaps_ns"].as_array().expect("gaps").clone();
    assert!(!gaps.is_empty(), "{what}: no gap recorded");
    assert_eq!(samp["unobserved"]["gaps"], gaps.len(), "{what}");
    let observed = samp["observed_fraction"].as_f64().unwrap();
    assert!(observed < 1.0 && observed > 0.0, "{what}: {observed}");
    for k in ["dropped", "decode_errors", "probe_errors"] {
        assert_eq!(s["losses"][k], 0, "{what}: {k}: {:#}", s["losses"]);
    }
    // Hot probes sampled: fewer park events than gopark hits. Creations and exits exact.
    let parks = s["events"]["park"].as_u64().unwrap_or(0);
    assert!(parks < hits(&s, "runtime.gopark"), "{what}: parks {parks}");
    assert_eq!(
        s["created"].as_u64().unwrap(),
        hits(&s, "runtime.newproc1 (return site)"),
        "{what}: creations not exact"
    );
    assert_eq!(
        s["exited"].as_u64().unwrap(),
        hits(&s, "runtime.goexit0"),
        "{what}: exits not exact: {} {:#}",
        s["events"],
        s["anomalies"]
    );
    assert_eq!(
        s["anomalies"]["ready_not_waiting"], 0,
        "{what}: gaps taken for anomalies"
    );
    // The two ping-pong goroutines: created by main.startPingPong, exited, and no park of
    // theirs is measured across a gap (those are marked unknown instead).
    let mut known = 0;
    for goid in &ids {
        let g = report(&file, &["--json", "--goid", &goid.to_string()]);
        let g = &g["goroutine"];
        assert!(
            g["created_by"]
                .as_str()
                .is_some_and(|c| c.starts_with("main.startPingPong")),
            "{what}: goroutine {goid}: {:#}",
            g["created_by"]
        );
        assert!(g["exited_at_ns"].is_u64(), "{what}: goroutine {goid} exit");
        for park in g["parks"].as_array().unwrap() {
            let at = park["at_ns"].as_u64().unwrap();
            match park["duration_ns"].as_u64() {
                Some(d) => {
                    known += 1;
                    assert!(
                        !overlaps_gap(&gaps, at, at + d),
                        "{what}: park at {at} of {d} ns measured across a gap: {park:#}"
                    );
                }
                None => assert_eq!(
                    park["duration_unknown"], true,
                    "{what}: an exited goroutine's park with no duration: {park:#}"
                ),
            }
        }
    }
    assert!(known > 0, "{what}: no park measured in any window");
    // Perfetto draws every gap on its own track, at the capture's times, and cuts the
    // goroutine slices open there ("unobserved" until their next event).
    let trace: Value = serde_json::from_str(&gtrace_tests::gtrace::report(
        &file,
        &["--format", "perfetto"],
    ))
    .expect("perfetto JSON");
    let events = trace["traceEvents"].as_array().expect("traceEvents");
    let drawn: Vec<&Value> = events
        .iter()
        .filter(|e| e["name"] == "hot probes off")
        .collect();
    let closed = gaps.iter().filter(|g| g[1].is_u64()).count();
    assert!(
        drawn.len() >= closed && drawn.len() <= gaps.len(),
        "{what}: {} gap slices for {} gaps ({closed} closed)",
        drawn.len(),
        gaps.len()
    );
    #[allow(clippy::cast_precision_loss)] // ns of µs
    let first_gap_us = gaps[0][0].as_u64().expect("gap start") as f64 / 1e3;
    assert!(
        drawn
            .iter()
            .any(|d| (d["ts"].as_f64().unwrap() - first_gap_us).abs() < 1.0),
        "{what}: no gap slice at {first_gap_us} µs: {drawn:?}"
    );
    assert!(
        events.iter().any(|e| e["name"] == "unobserved"),
        "{what}: no goroutine slice cut at a gap"
    );
}

#[test]
fn sampling_kicks_in_under_a_tiny_budget() {
    let dir = std::env::temp_dir().join(format!("gtrace-governor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for v in ["1.19", "1.23", "1.27"] {
        let tc = go::by_version(v).expect("Go toolchain (cargo xtask go-toolchains)");
        sampled_pingpong(&tc, &dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `gtrace latency` under a budget no tracing can meet: the window is sampled, the JSON says
/// so, time inside the gaps is `unobserved` (credited to no state), every goroutine's states
/// add up to its observed time, and observed + unobserved fit in the window.
#[test]
fn latency_under_sampling_accounts_the_gaps() {
    let tc = go::newest().expect("Go toolchain (cargo xtask go-toolchains)");
    let what = format!("governor latency go{}", tc.minor_str());
    let bin = fixture::build("pingpong", &tc, Variant::Default).expect("build pingpong");
    // The command's stdout is gtrace's: its "ready" / "pp" lines mix with the JSON.
    let mut p = Spawned::spawn(
        &gtrace(),
        [
            "latency",
            "-d",
            "3",
            "--json",
            "--max-overhead",
            "0.1",
            "--",
            bin.to_str().unwrap(),
        ],
        &[("GOGC", "off")],
    )
    .expect("spawn gtrace latency");
    p.wait_ready().expect("pingpong ready under gtrace");
    p.write_line(&format!("pp {}", ROUNDS * 10)).unwrap();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while p.try_status().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // The ping-pong outlives the window (gtrace leaves it running): end it.
    if let Some(pid) = gtrace_tests::gtrace::attached_pid(&p.stderr()) {
        // SAFETY: kill(2) of the fixture this test started through gtrace.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let st = p.wait_exit(TIMEOUT).expect("gtrace exits after its window");
    assert!(st.success(), "{what}: {}", p.stderr());
    while p.next_line(Duration::from_secs(2)).is_ok() {}
    let json: String = p
        .stdout_seen()
        .iter()
        .filter(|l| !l.starts_with("ready") && !l.starts_with("pp "))
        .fold(String::new(), |mut s, l| {
            s.push_str(l);
            s.push('\n');
            s
        });
    let r: Value = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("{what}: bad JSON ({e}): {json}\n{}", p.stderr()));
    let samp = &r["sampling"];
    assert_eq!(samp["sampled"], true, "{what}: {samp:#}");
    let fraction = samp["fraction"].as_f64().expect("fraction");
    assert!(fraction > 0.0 && fraction < 1.0, "{what}: {samp:#}");
    let num = |g: &Value, k: &str| g[k].as_f64().unwrap_or(0.0);
    let window = num(&r, "window_seconds");
    let mut unobserved = 0.0;
    for g in r["goroutines"].as_array().expect("goroutines") {
        let parked: f64 = g["parked_s"]
            .as_object()
            .map_or(0.0, |m| m.values().filter_map(Value::as_f64).sum());
        let sum = [
            "running_s",
            "runnable_s",
            "os_offcpu_s",
            "syscall_s",
            "stw_s",
            "assist_s",
        ]
        .iter()
        .map(|k| num(g, k))
        .sum::<f64>()
            + parked;
        let observed = num(g, "observed_s");
        assert!(
            (sum - observed).abs() <= 1e-6 + 1e-3 * observed,
            "{what}: states add up to {sum} of the {observed} s observed: {g:#}"
        );
        let existed = observed + num(g, "unobserved_s");
        assert!(
            existed <= window + 1e-3,
            "{what}: observed + unobserved {existed} s > the {window} s window: {g:#}"
        );
        unobserved += num(g, "unobserved_s");
    }
    assert!(
        unobserved > 0.0,
        "{what}: nothing unobserved under sampling"
    );
}
