//! `gtrace leaks` and `gtrace profile`, run as a user runs them, against the `leaky` and
//! `blocked` fixtures on every installed Go version and build variant.
//!
//! Ground truth: `leaky` prints exactly how many goroutines it leaked at each of its four
//! sites, and its source marks the creation and blocking lines (`// SITE:name`); a final
//! dump after gtrace exits must agree. Profiles are read back by the toolchain's own
//! `go tool pprof`. No timing assertions: the growth rate gets a wide tolerance.

use std::{
    collections::HashMap,
    path::Path,
    process::{Command, Output, Stdio},
    time::Duration,
};

use gtrace_tests::{
    fixture::{self, Variant},
    go::{self, Toolchain},
    gtrace,
    process::{GOTRACEBACK_ALL, Spawned},
};
use serde_json::Value;
use tracer_user::goroutines::{DumpOptions, target::Target};

/// `// SITE:name` markers of leaky/main.go → line numbers.
fn site_lines() -> HashMap<String, u64> {
    let src = std::fs::read_to_string(fixture::source_dir("leaky").join("main.go")).unwrap();
    src.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let name = l.split("// SITE:").nth(1)?.trim();
            let marker = name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
            marker.then(|| (name.to_owned(), i as u64 + 1))
        })
        .collect()
}

/// (site name, blocked function, creator function, leaks per second).
const SITES: &[(&str, &str, &str, f64)] = &[
    ("recv", "main.leakRecv", "main.spawnRecv", 20.0),
    ("send", "main.leakSend", "main.spawnSend", 10.0),
    ("select", "main.leakSelect", "main.spawnSelect", 10.0),
    ("mutex", "main.leakMutex", "main.spawnMutex", 5.0),
];

fn spawn_leaky(tc: &Toolchain, v: Variant) -> Spawned {
    let bin = fixture::build("leaky", tc, v).unwrap_or_else(|e| panic!("{e:#}"));
    let mut p = Spawned::spawn(&bin, &[] as &[&str], &[GOTRACEBACK_ALL]).expect("spawn leaky");
    p.wait_ready().expect("leaky did not get ready");
    p
}

fn start_gtrace<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> std::process::Child {
    gtrace::command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gtrace")
}

fn finish(child: std::process::Child, what: &str) -> Output {
    let out = child.wait_with_output().expect("wait for gtrace");
    assert!(
        out.status.code().is_some(),
        "{what}: gtrace was killed: {out:?}"
    );
    out
}

/// `stopped recv=N send=N select=N mutex=N` → counts by site.
fn parse_stopped(line: &str) -> HashMap<String, u64> {
    let rest = line
        .strip_prefix("stopped ")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"));
    rest.split(' ')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), v.parse().unwrap())
        })
        .collect()
}

/// Goroutines per (creator, top frame outside the runtime/sync plumbing), from our own dump
/// library after gtrace exited (the fixture has stopped leaking by then).
fn final_dump(pid: u32) -> HashMap<(String, String), u64> {
    let t = Target::open(pid as i32).expect("open for the final dump");
    let mut out = HashMap::new();
    t.dump(DumpOptions { system: false }, &mut |g| {
        let creator = g
            .created_by
            .as_ref()
            .map_or(String::new(), |c| c.function.to_string());
        let top = g
            .stack
            .frames
            .iter()
            .find(|f| f.src.function.starts_with("main."))
            .map_or(String::new(), |f| f.src.function.to_string());
        *out.entry((creator, top)).or_default() += 1;
    })
    .expect("final dump");
    out
}

fn group<'a>(groups: &'a [Value], block: &str, creator: &str) -> Vec<&'a Value> {
    groups
        .iter()
        .filter(|g| g["block_frame"]["function"] == block && g["created_by"]["function"] == creator)
        .collect()
}

/// Every field docs/json/leaks.schema.json requires is present (top level and groups), and
/// nothing undocumented is written.
fn check_schema(doc: &Value, what: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/json/leaks.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let check = |obj: &Value, def: &Value, at: &str| {
        let obj = obj.as_object().unwrap();
        for key in def["required"].as_array().unwrap() {
            let key = key.as_str().unwrap();
            assert!(obj.contains_key(key), "{what}: {at}: missing {key}");
        }
        for key in obj.keys() {
            assert!(
                def["properties"].get(key).is_some(),
                "{what}: {at}: {key} is not in the schema"
            );
        }
    };
    check(doc, &schema, "top level");
    if !doc["trace"].is_null() {
        check(&doc["trace"], &schema["properties"]["trace"], "trace");
    }
    let group_def = &schema["$defs"]["group"];
    for g in doc["groups"].as_array().unwrap() {
        check(g, group_def, "group");
        if !g["trace"].is_null() {
            check(
                &g["trace"],
                &group_def["properties"]["trace"],
                "group trace",
            );
        }
    }
}

/// Polls the stderr `gtrace` wrote so far until it contains `needle`.
fn wait_stderr(p: &Spawned, needle: &str, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !p.stderr().contains(needle) {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: no {needle:?} on gtrace's stderr: {}",
            p.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `gtrace leaks --json` (with `--trace` when `traced`) over 3 s while `leaky` leaks
/// for 1.5 s from the first snapshot on; returns the report and the fixture's own counts. A
/// traced run starts the leaks once the probes are attached, so every leaked goroutine is
/// created while traced.
fn run_leaky(p: &mut Spawned, traced: bool, what: &str) -> (Value, HashMap<String, u64>) {
    let pid = p.pid().to_string();
    let mut args = vec![
        "leaks",
        "-p",
        &pid,
        "-d",
        "3s",
        "--interval",
        "250ms",
        "--json",
    ];
    if traced {
        // The model is under test here, not the budget (its own test below): the leaky
        // fixture's dispatcher alone is over the default 5 %.
        args.extend(["--trace", "--max-overhead", "off"]);
    }
    let mut g = Spawned::from_command(gtrace::command(&args)).expect("spawn gtrace");
    // Start leaking only once sampling has begun (and, traced, the probes are attached): a
    // slow start under load would otherwise see the leaks already grown.
    wait_stderr(
        &g,
        if traced {
            "lifecycle events traced"
        } else {
            "gtrace: sampling pid"
        },
        what,
    );
    p.write_line("start").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    p.write_line("stop").unwrap();
    let stopped = p
        .wait_for(Duration::from_secs(10), |l| l.starts_with("stopped "))
        .unwrap_or_else(|e| panic!("{what}: {e:#}"));
    let made = parse_stopped(stopped.last().unwrap());
    let status = g
        .wait_exit(Duration::from_mins(1))
        .unwrap_or_else(|e| panic!("{what}: {e:#}"));
    let stderr = g.stderr();
    assert_eq!(status.code(), Some(0), "{what}: {stderr}");
    let line = g
        .next_line(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{what}: no report: {e:#}"));
    let doc: Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {stderr}"));
    (doc, made)
}

fn check_leaky(tc: &Toolchain, v: Variant, lines: &HashMap<String, u64>, traced: bool) {
    let what = format!("leaky {tc} {v}{}", if traced { " --trace" } else { "" });
    let mut p = spawn_leaky(tc, v);
    let (doc, made) = run_leaky(&mut p, traced, &what);
    check_schema(&doc, &what);
    if traced {
        check_traced_window(&doc["trace"], &what);
    } else {
        assert!(doc["trace"].is_null(), "{what}");
    }
    let groups = doc["groups"].as_array().expect("groups");
    let dump = final_dump(p.pid());
    let minor = tc.minor().1;
    for &(name, block, creator, rate) in SITES {
        let found = group(groups, block, creator);
        assert_eq!(found.len(), 1, "{what}: {name}: groups {found:#?}");
        let g = found[0];
        let n = made[name];
        assert!(n >= 5, "{what}: {name}: the fixture leaked only {n}");
        assert_eq!(g["count"], n, "{what}: {name}: count vs the fixture's {n}");
        assert_eq!(
            dump.get(&(creator.to_owned(), block.to_owned())).copied(),
            Some(n),
            "{what}: {name}: final dump"
        );
        assert_eq!(g["leak"], true, "{what}: {name}: not flagged: {g:#}");
        assert_eq!(g["woken"], false, "{what}: {name}");
        assert_eq!(g["rules"][0], "growing", "{what}: {name}");
        for (key, site) in [("created_by", "create"), ("block_frame", "block")] {
            assert_eq!(
                g[key]["line"],
                lines[&format!("{site}-{name}")],
                "{what}: {name}: {key}: {g:#}"
            );
            let file = g[key]["file"].as_str().unwrap();
            assert!(file.ends_with("leaky/main.go"), "{what}: {key} file {file}");
        }
        let (reason, category) = match name {
            "recv" => ("chan receive", "chan_receive"),
            "send" => ("chan send", "chan_send"),
            "select" => ("select", "select"),
            _ if minor >= 20 => ("sync.Mutex.Lock", "mutex"),
            _ => ("semacquire", "semacquire"),
        };
        assert_eq!(g["wait_reason"], reason, "{what}: {name}");
        assert_eq!(g["category"], category, "{what}: {name}");
        // Leaking for ~1.5 s of a 3 s window: the regression sees a good part of the rate.
        let growth = g["growth_per_min"].as_f64().unwrap();
        let per_min = rate * 60.0;
        assert!(
            growth > 0.2 * per_min && growth < 1.5 * per_min,
            "{what}: {name}: growth {growth}/min, leaking at {per_min}/min"
        );
        let max_age = g["age_seconds"]["max"].as_f64().unwrap();
        assert!(
            max_age > 0.0 && max_age < 60.0,
            "{what}: {name}: age {max_age}"
        );
        assert!(!g["example_goids"].as_array().unwrap().is_empty());
        if traced {
            check_traced_leak(g, n, &format!("{what}: {name}"));
        } else {
            assert!(g["trace"].is_null(), "{what}: {name}");
        }
    }
    let leaking: Vec<&Value> = groups.iter().filter(|g| g["leak"] == true).collect();
    assert_eq!(
        leaking.len(),
        SITES.len(),
        "{what}: false leaks: {leaking:#?}"
    );
    assert_eq!(doc["leaking_groups"], SITES.len());
    let pool = group(groups, "main.worker", "main.main");
    assert!(pool.iter().all(|g| g["leak"] == false), "{what}: {pool:#?}");
    if traced {
        check_traced_pool(&pool, &what);
    }
}

/// The window's trace totals: events seen, none lost (as in the lifecycle tests, this
/// workload never fills the ring buffer), probes verified detached.
fn check_traced_window(t: &Value, what: &str) {
    assert!(t["events"].as_u64().unwrap() > 0, "{what}: {t}");
    for k in ["dropped", "decode_errors", "probe_errors", "untracked"] {
        assert_eq!(t[k], 0, "{what}: events lost: {t}");
    }
    assert!(t["detach_problem"].is_null(), "{what}: {t}");
    assert_eq!(t["ended_over_budget"], false, "{what}: {t}");
}

/// `leaks --trace` over its overhead budget ends tracing (and the window) instead of
/// sampling, since the leak model needs every event: exit 0, a report of the snapshots
/// taken that says so, and stderr with the estimate and the fix.
#[test]
fn leaks_trace_ends_over_budget() {
    let tc = go::newest().unwrap_or_else(|e| panic!("{e:#}"));
    let p = spawn_leaky(&tc, Variant::Default);
    let pid = p.pid().to_string();
    let out = gtrace::command([
        "leaks",
        "-p",
        &pid,
        "-d",
        "20s",
        "--interval",
        "250ms",
        "--json",
        "--trace",
        "--max-overhead",
        "0.1",
    ])
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("tracing ended after") && stderr.contains("(budget 0.1%)"),
        "{stderr}"
    );
    let doc: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stderr}"));
    check_schema(&doc, "over budget");
    assert_eq!(doc["trace"]["ended_over_budget"], true, "{doc:#}");
    let traced = doc["trace"]["seconds"].as_f64().unwrap();
    assert!(traced < 20.0, "traced {traced} s");
    assert!(doc["snapshots"].as_u64().unwrap() >= 1, "{doc:#}");
}

/// A leaked group of `n`: created while traced, parked once, never woken — every count
/// exact, and the verdict says so.
fn check_traced_leak(grp: &Value, n: u64, what: &str) {
    let t = &grp["trace"];
    assert_eq!(t["watched"], n, "{what}: {t}");
    assert_eq!(t["woke"], 0, "{what}: {t}");
    assert_eq!(t["exited"], 0, "{what}: {t}");
    assert_eq!(t["created_in_window"], n, "{what}: {t}");
    assert_eq!(t["exact_ages"], n, "{what}: {t}");
    let never = format!("never woken: none of the {n} goroutine(s) seen here");
    let reasons = grp["reasons"].as_array().unwrap();
    assert!(
        reasons
            .iter()
            .any(|r| r.as_str().unwrap().starts_with(&never)),
        "{what}: {reasons:?}"
    );
}

/// The pool parks in a channel receive between jobs and is woken every 200µs: the events
/// show it, even when every snapshot catches each worker parked; no rule fires.
fn check_traced_pool(pool: &[&Value], what: &str) {
    let parked: Vec<_> = pool
        .iter()
        .filter(|grp| grp["wait_reason"] == "chan receive")
        .collect();
    assert_eq!(parked.len(), 1, "{what}: {pool:#?}");
    let grp = parked[0];
    assert_eq!(grp["woken"], true, "{what}: {grp:#}");
    assert!(
        grp["trace"]["woke"].as_u64().unwrap() >= 1,
        "{what}: {grp:#}"
    );
    assert!(
        grp["rules"].as_array().unwrap().is_empty(),
        "{what}: {grp:#}"
    );
}

/// Every leak site of `leaky` found with its exact count, sites, category and growth, and
/// nothing else flagged — every toolchain x every variant.
#[test]
fn leaks_finds_every_site_in_the_matrix() {
    let lines = site_lines();
    assert_eq!(lines.len(), 10, "SITE markers in leaky/main.go: {lines:?}");
    for (tc, v) in fixture::matrix().unwrap_or_else(|e| panic!("{e:#}")) {
        check_leaky(&tc, v, &lines, false);
    }
}

/// The matrix, or only Go `$GTRACE_TEST_GO` (e.g. `1.27`) when set, as in the lifecycle
/// tests.
fn cells() -> Vec<(Toolchain, Variant)> {
    let only = std::env::var("GTRACE_TEST_GO").ok();
    let cells: Vec<_> = fixture::matrix()
        .unwrap_or_else(|e| panic!("{e:#}"))
        .filter(|(tc, _)| only.as_deref().is_none_or(|o| o == tc.minor_str()))
        .collect();
    assert!(
        !cells.is_empty(),
        "no toolchain matches GTRACE_TEST_GO={only:?}"
    );
    cells
}

/// `--trace`: the same exact counts and sites, plus the events' evidence — every leaked
/// goroutine watched, created while traced, never woken, with an exact age; the healthy pool
/// shown woken and not flagged — every toolchain x every variant.
#[test]
fn leaks_trace_in_the_matrix() {
    let lines = site_lines();
    for (tc, v) in cells() {
        check_leaky(&tc, v, &lines, true);
    }
}

/// The demo's leak (main.awaitReply created by main.handleRequest, 5/s) is found and its
/// healthy worker pool is not.
#[test]
fn leaks_on_the_demo() {
    let tc = go::newest().unwrap_or_else(|e| panic!("{e:#}"));
    let bin = fixture::build(fixture::DEMO, &tc, Variant::Default).unwrap();
    let mut p = Spawned::spawn(&bin, &[] as &[&str], &[GOTRACEBACK_ALL]).unwrap();
    p.wait_ready().unwrap();
    let pid = p.pid().to_string();
    let out = finish(
        start_gtrace(&[
            "leaks",
            "-p",
            &pid,
            "-d",
            "2s",
            "--interval",
            "250ms",
            "--json",
        ]),
        "demo",
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let groups = doc["groups"].as_array().unwrap();
    let leaking: Vec<&Value> = groups.iter().filter(|g| g["leak"] == true).collect();
    assert_eq!(leaking.len(), 1, "{leaking:#?}");
    assert_eq!(leaking[0]["block_frame"]["function"], "main.awaitReply");
    assert_eq!(leaking[0]["created_by"]["function"], "main.handleRequest");
    let growth = leaking[0]["growth_per_min"].as_f64().unwrap();
    assert!(
        growth > 100.0 && growth < 450.0,
        "growth {growth}/min at 300/min"
    );
}

/// `--fail-on N` exits 6 when a leaking group has N goroutines, 0 below; text mode works.
#[test]
fn fail_on_exit_code() {
    let tc = go::newest().unwrap_or_else(|e| panic!("{e:#}"));
    let mut p = spawn_leaky(&tc, Variant::Default);
    let pid = p.pid().to_string();
    p.write_line("start").unwrap();
    let args = |n: &'static str| {
        [
            "leaks",
            "-p",
            &pid,
            "-d",
            "1s",
            "--interval",
            "200ms",
            "--fail-on",
            n,
        ]
        .map(str::to_owned)
    };
    let tripped = finish(start_gtrace(&args("3")), "fail-on 3");
    let text = String::from_utf8_lossy(&tripped.stdout);
    assert_eq!(tripped.status.code(), Some(6), "{tripped:?}");
    assert!(
        text.contains("LEAK") && text.contains("main.leakRecv"),
        "{text}"
    );
    let calm = finish(start_gtrace(&args("1000000")), "fail-on 1000000");
    assert_eq!(calm.status.code(), Some(0), "{calm:?}");
    p.write_line("stop").unwrap();
}

/// `go tool pprof -top` total: `Showing nodes accounting for N, 100% of N total`.
fn pprof_total(tc: &Toolchain, file: &Path) -> u64 {
    let out = tc
        .command()
        .args(["tool", "pprof", "-top", "-sample_index=0"])
        .arg(file)
        .output()
        .expect("go tool pprof");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pprof failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let total = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("Showing nodes accounting for ")?
                .split(" of ")
                .nth(1)?
                .strip_suffix(" total")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no total in pprof output:\n{text}"));
    assert!(text.contains("Type: goroutine"), "{text}");
    total
}

fn profile(pid: &str, file: &Path, format: &str) -> String {
    let out = gtrace::command(["profile", "-p", pid, "-o"])
        .arg(file)
        .args(["--format", format])
        .output()
        .expect("gtrace profile");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn check_profile(tc: &Toolchain, v: Variant, dir: &Path) {
    let what = format!("blocked {tc} {v}");
    let bin = fixture::build("blocked", tc, v).unwrap_or_else(|e| panic!("{e:#}"));
    let mut p = Spawned::spawn(&bin, &[] as &[&str], &[GOTRACEBACK_ALL]).unwrap();
    p.wait_ready().unwrap();
    let pid = p.pid().to_string();
    let shown = Target::open(p.pid() as i32)
        .unwrap()
        .dump(DumpOptions { system: false }, &mut |_| {})
        .unwrap()
        .shown;
    let pb = dir.join(format!("{tc}-{v}.pb.gz"));
    profile(&pid, &pb, "pprof");
    assert_eq!(pprof_total(tc, &pb), shown, "{what}: pprof total vs dump");
    let folded = dir.join(format!("{tc}-{v}.folded"));
    profile(&pid, &folded, "folded");
    let text = std::fs::read_to_string(&folded).unwrap();
    let sum: u64 = text
        .lines()
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
        .sum();
    assert_eq!(sum, shown, "{what}: folded total vs dump");
    assert!(text.contains("main.main;"), "{what}: {text}");
    let svg = dir.join(format!("{tc}-{v}.svg"));
    profile(&pid, &svg, "svg");
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(
        svg.starts_with("<?xml") || svg.starts_with("<svg"),
        "{what}: {}",
        &svg[..svg.len().min(80)]
    );
    assert!(svg.trim_end().ends_with("</svg>"), "{what}");
    for f in ["runtime.gopark", "main.main"] {
        assert!(svg.contains(f), "{what}: {f} missing from the SVG");
    }
}

/// Profiles of every kind are read back by the toolchain's `go tool pprof` / counted, and
/// their totals equal the goroutines our dump sees — every toolchain x every variant.
#[test]
fn profile_totals_match_the_dump_in_the_matrix() {
    let dir = std::env::temp_dir().join(format!("gtrace-profile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (tc, v) in fixture::matrix().unwrap_or_else(|e| panic!("{e:#}")) {
        check_profile(&tc, v, &dir);
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `--kind block` on a process that does not exist: exit 5 before anything is written.
#[test]
fn profile_block_of_a_missing_process() {
    // Above the kernel's largest pid_max (2^22): no such process.
    let out = Command::new(gtrace::bin())
        .args([
            "profile",
            "-p",
            "4194305",
            "-o",
            "/nonexistent/x",
            "--kind",
            "block",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{out:?}");
}

/// Without `--trace` nothing is attached: while `gtrace leaks` samples, the target's code at
/// every lifecycle probe site is byte-for-byte its file's. With `--trace` the same check sees
/// the breakpoints (so it can tell).
#[test]
fn leaks_default_mode_attaches_no_probes() {
    let tc = go::newest().unwrap_or_else(|e| panic!("{e:#}"));
    let p = spawn_leaky(&tc, Variant::Default);
    let target = tracer_user::probes::session::Target::open(p.pid()).expect("plan");
    let pid = p.pid().to_string();
    let patched = |traced: bool| -> usize {
        let mut args = vec!["leaks", "-p", &pid, "-d", "2s", "--interval", "500ms"];
        if traced {
            // Attached for the whole window, not ended over budget before the check.
            args.extend(["--trace", "--max-overhead", "off"]);
        }
        let mut g = Spawned::from_command(gtrace::command(&args)).expect("spawn gtrace");
        wait_stderr(&g, "gtrace: sampling pid", "no probes");
        std::thread::sleep(Duration::from_millis(300));
        let n = target
            .plan
            .sites
            .iter()
            .filter(|s| tracer_user::probes::verify_detached(&target.process, s.offset).is_err())
            .count();
        let status = g.wait_exit(Duration::from_mins(1)).unwrap();
        assert_eq!(status.code(), Some(0), "{}", g.stderr());
        n
    };
    assert_eq!(patched(false), 0, "default mode must attach nothing");
    assert!(
        patched(true) > 0,
        "--trace attached no uprobe the check could see"
    );
}

/// `-d` or `--view` with a goroutine profile (one snapshot) is a usage error (exit 2).
#[test]
fn profile_window_flags_need_kind_block() {
    for extra in [["-d", "2s"], ["--view", "wakers"]] {
        let out = gtrace::command(["profile", "-p", "1", "-o", "/dev/null"])
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {out:?}");
    }
}

/// An interval longer than the window is a usage error (exit 2), checked before attaching.
#[test]
fn leaks_interval_longer_than_window_is_usage() {
    let out = gtrace::command(["leaks", "-p", "1", "-d", "1s", "--interval", "2s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// `go tool pprof -traces FILE` → (count, frames) of every stack whose frames contain
/// `needle`, sorted. Frames keep pprof's ` (inline)` marks.
fn pprof_traces(tc: &Toolchain, file: &Path, needle: &str) -> Vec<(u64, Vec<String>)> {
    let out = tc
        .command()
        .args(["tool", "pprof", "-traces"])
        .arg(file)
        .output()
        .expect("go tool pprof");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut traces = Vec::new();
    for block in text.split("-----------+-------------------------------------------------------") {
        let mut lines = block.lines().filter(|l| !l.trim().is_empty());
        let Some(first) = lines.next() else { continue };
        let mut parts = first.split_whitespace();
        let Some(Ok(count)) = parts.next().map(str::parse::<u64>) else {
            continue;
        };
        let mut frames = vec![parts.collect::<Vec<_>>().join(" ")];
        frames.extend(lines.map(|l| l.trim().to_owned()));
        if frames.iter().any(|f| f.contains(needle)) {
            traces.push((count, frames));
        }
    }
    traces.sort();
    traces
}

/// Our goroutine profile of the leaked goroutines equals the runtime's own
/// (`pprof.Lookup("goroutine")`, written by the fixture): same stacks, same counts, same
/// inlined frames — every toolchain x every variant. Only the leaked goroutines are compared:
/// they stay put, while the pool and the main goroutine (which writes Go's profile) move.
#[test]
fn goroutine_profile_equals_the_runtimes_own_in_the_matrix() {
    let dir = std::env::temp_dir().join(format!("gtrace-goprof-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (tc, v) in fixture::matrix().unwrap_or_else(|e| panic!("{e:#}")) {
        let what = format!("leaky {tc} {v}");
        let mut p = spawn_leaky(&tc, v);
        p.write_line("start").unwrap();
        std::thread::sleep(Duration::from_millis(300));
        p.write_line("stop").unwrap();
        p.wait_for(Duration::from_secs(10), |l| l.starts_with("stopped "))
            .unwrap_or_else(|e| panic!("{what}: {e:#}"));
        let ours = dir.join(format!("{tc}-{v}-ours.pb.gz"));
        let theirs = dir.join(format!("{tc}-{v}-go.pb.gz"));
        profile(&p.pid().to_string(), &ours, "pprof");
        p.write_line(&format!("profile {}", theirs.display()))
            .unwrap();
        p.wait_for_line("profiled", Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{what}: {e:#}"));
        let a = pprof_traces(&tc, &ours, "main.leak");
        let b = pprof_traces(&tc, &theirs, "main.leak");
        assert_eq!(a.len(), 4, "{what}: {a:#?}");
        assert_eq!(a, b, "{what}: ours (left) vs the runtime's (right)");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A target that exits mid-window: the snapshots taken are reported, exit code 5.
#[test]
fn leaks_reports_what_it_saw_when_the_target_exits() {
    let tc = go::newest().unwrap_or_else(|e| panic!("{e:#}"));
    let mut p = spawn_leaky(&tc, Variant::Default);
    let pid = p.pid().to_string();
    let child = start_gtrace(&["leaks", "-p", &pid, "-d", "5s", "--interval", "200ms"]);
    std::thread::sleep(Duration::from_millis(1500));
    p.kill();
    let out = finish(child, "target exits");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stdout}\n{stderr}");
    assert!(stdout.starts_with(&format!("pid {pid} ")), "{stdout}");
    assert!(stderr.contains("exited during snapshot"), "{stderr}");
}
