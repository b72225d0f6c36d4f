//! `gtrace profile --kind block`, run as a user runs it, against the `pingpong` fixture on
//! every installed Go version and build variant. Needs root.
//!
//! Ground truth: `pingpong`'s `park` command parks one goroutine per blocking kind in a known
//! function (`main.block<Kind>`, each with a known wait reason) for about 100 ms, then
//! releases them from `main.startParkers`. The toolchain's own `go tool pprof` reads every
//! profile we write; its totals must equal the numbers gtrace's state machine measured
//! (printed on stderr), and the stacks and wait-reason labels must be the right ones. No
//! timing assertions beyond what Go guarantees (a 20 ms `time.Sleep` parks at least 20 ms).

use std::{path::Path, time::Duration};

use gtrace_tests::{
    fixture::{self, Variant},
    go::{self, Toolchain},
    gtrace,
    process::Spawned,
};

const LINE_TIMEOUT: Duration = Duration::from_secs(20);

/// The matrix, or only Go `$GTRACE_TEST_GO` (e.g. `1.27`) when set.
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

/// (function, wait reason) of `pingpong`'s parkers, as the runtime of Go 1.`minor` names
/// the reasons.
fn parkers(minor: u32) -> [(&'static str, &'static str); 6] {
    [
        ("main.blockChanRecv", "chan receive"),
        ("main.blockSelect", "select"),
        ("main.blockSleep", "sleep"),
        (
            "main.blockMutex",
            if minor >= 20 {
                "sync.Mutex.Lock"
            } else {
                "semacquire"
            },
        ),
        (
            "main.blockWaitGroup",
            if minor >= 24 {
                "sync.WaitGroup.Wait"
            } else {
                "semacquire"
            },
        ),
        ("main.blockCond", "sync.Cond.Wait"),
    ]
}

fn spawn_pingpong(tc: &Toolchain, v: Variant) -> Spawned {
    let bin = fixture::build("pingpong", tc, v).unwrap_or_else(|e| panic!("{e:#}"));
    // GOGC=off: no GC workers parking and waking meanwhile.
    let mut p = Spawned::spawn(&bin, std::iter::empty::<&str>(), &[("GOGC", "off")])
        .expect("spawn pingpong");
    p.wait_ready().expect("pingpong did not get ready");
    p
}

/// What gtrace said it wrote: (parks, ns parked) from its stderr summary line
/// `… N parks, M ns parked, …`.
fn stderr_totals(stderr: &str, what: &str) -> (u64, u64) {
    let line = stderr
        .lines()
        .find(|l| l.contains(" ns parked, "))
        .unwrap_or_else(|| panic!("{what}: no summary line: {stderr}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let before = |w: &str| -> u64 {
        let i = words
            .iter()
            .position(|x| x.trim_end_matches(',') == w)
            .unwrap_or_else(|| panic!("{what}: no {w} in {line}"));
        words[i - 1].parse().unwrap()
    };
    (before("parks"), before("ns"))
}

/// Starts `gtrace profile --kind block -p PID -o OUT EXTRA…` on `p` and waits until the probes
/// are attached.
fn start_block_profile(p: &Spawned, out: &Path, extra: &[&str], what: &str) -> Spawned {
    let pid = p.pid().to_string();
    let mut args = vec!["profile", "-p", &pid, "--kind", "block", "-o"];
    args.push(out.to_str().unwrap());
    args.extend_from_slice(extra);
    let mut g = Spawned::from_command(gtrace::command(&args)).expect("spawn gtrace");
    let deadline = std::time::Instant::now() + LINE_TIMEOUT;
    while !g.stderr().contains("attached to pid") {
        assert!(
            std::time::Instant::now() < deadline && g.try_status().is_none(),
            "{what}: gtrace did not attach: {}",
            g.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    g
}

/// Runs `gtrace profile --kind block` on `p` for 2 s with `extra` flags while the fixture
/// parks its goroutines once; returns gtrace's stderr.
fn profile_parkers(p: &mut Spawned, out: &Path, extra: &[&str], what: &str) -> String {
    let mut args = vec!["-d", "2s"];
    args.extend_from_slice(extra);
    let mut g = start_block_profile(p, out, &args, what);
    p.write_line("park").unwrap();
    p.wait_for_line("parked", LINE_TIMEOUT)
        .unwrap_or_else(|e| panic!("{what}: {e:#}"));
    let status = g
        .wait_exit(Duration::from_mins(1))
        .unwrap_or_else(|e| panic!("{what}: {e:#}"));
    let stderr = g.stderr();
    assert_eq!(status.code(), Some(0), "{what}: {stderr}");
    assert!(
        stderr.contains("lost events: 0 dropped (ring buffer full), 0 undecodable; 0 probe"),
        "{what}: events lost: {stderr}"
    );
    stderr
}

/// `go tool pprof ARGS FILE` with the cell's toolchain; its stdout.
fn pprof(tc: &Toolchain, args: &[&str], file: &Path) -> String {
    let out = tc
        .command()
        .arg("tool")
        .arg("pprof")
        .args(args)
        .arg(file)
        .output()
        .expect("go tool pprof");
    assert!(
        out.status.success(),
        "go tool pprof {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `-top` total: `Showing nodes accounting for N, 100% of N total` (`N` may carry a unit).
fn pprof_total(tc: &Toolchain, args: &[&str], file: &Path) -> u64 {
    let mut all = vec!["-top"];
    all.extend_from_slice(args);
    let text = pprof(tc, &all, file);
    text.lines()
        .find_map(|l| {
            let total = l
                .strip_prefix("Showing nodes accounting for ")?
                .split(" of ")
                .nth(1)?
                .strip_suffix(" total")?;
            total.trim_end_matches("ns").parse().ok()
        })
        .unwrap_or_else(|| panic!("no total in pprof output:\n{text}"))
}

/// `-traces` blocks: the lines of each sample (labels, value, frames).
fn pprof_traces(tc: &Toolchain, file: &Path) -> Vec<String> {
    pprof(tc, &["-traces"], file)
        .split("-----------+-------------------------------------------------------")
        .skip(1)
        .map(str::to_owned)
        .collect()
}

/// The `wait_reason` label of a `-traces` block (`wait_reason:  chan receive`).
fn label_of(block: &str) -> Option<&str> {
    block.lines().find_map(|l| {
        let (k, v) = l.trim().split_once(':')?;
        (k == "wait_reason").then(|| v.trim())
    })
}

/// Both sample types' totals, as `go tool pprof` reads them, equal gtrace's.
fn check_totals(tc: &Toolchain, file: &Path, count_type: &str, want: (u64, u64), what: &str) {
    let idx = format!("-sample_index={count_type}");
    assert_eq!(
        pprof_total(tc, &[&idx], file),
        want.0,
        "{what}: {count_type} total"
    );
    // The default sample type is the parked time; -unit=ns prints it unscaled.
    assert_eq!(
        pprof_total(tc, &["-unit=ns"], file),
        want.1,
        "{what}: delay total"
    );
}

fn check_parked(tc: &Toolchain, v: Variant, dir: &Path) {
    let what = format!("pingpong {tc} {v} parked");
    let mut p = spawn_pingpong(tc, v);
    let file = dir.join(format!("{tc}-{v}-parked.pb.gz"));
    let stderr = profile_parkers(&mut p, &file, &[], &what);
    let totals = stderr_totals(&stderr, &what);
    check_totals(tc, &file, "parks", totals, &what);
    let top = pprof(tc, &["-top", "-nodecount=1000"], &file);
    assert!(
        !top.contains("runtime.gopark"),
        "{what}: gopark frames must be dropped:\n{top}"
    );
    let traces = pprof_traces(tc, &file);
    for (func, reason) in parkers(tc.minor().1) {
        let hit = traces
            .iter()
            .any(|t| label_of(t) == Some(reason) && t.split_whitespace().any(|w| w == func));
        assert!(hit, "{what}: no {func} parked for {reason:?}:\n{traces:#?}");
    }
    // The 20 ms sleep: the runtime starts its timer after gopark, so the park lasts at
    // least that long.
    let sleep = pprof_total(
        tc,
        &[
            "-unit=ns",
            "-focus=^main\\.blockSleep$",
            "-tagfocus=wait_reason=^sleep$",
        ],
        &file,
    );
    assert!(sleep >= 20_000_000, "{what}: blockSleep parked {sleep} ns");
}

fn check_wakers(tc: &Toolchain, v: Variant, dir: &Path) {
    let what = format!("pingpong {tc} {v} wakers");
    let mut p = spawn_pingpong(tc, v);
    let file = dir.join(format!("{tc}-{v}-wakers.pb.gz"));
    let stderr = profile_parkers(&mut p, &file, &["--view", "wakers"], &what);
    let totals = stderr_totals(&stderr, &what);
    check_totals(tc, &file, "wakes", totals, &what);
    let traces = pprof_traces(tc, &file);
    // startParkers releases the channel receiver with a send: that is the waker's stack.
    let hit = traces.iter().any(|t| {
        label_of(t) == Some("chan receive")
            && t.contains("main.startParkers")
            && t.contains("runtime.chansend")
    });
    assert!(hit, "{what}: no send waker of the receiver:\n{traces:#?}");
    let top = pprof(tc, &["-top", "-nodecount=1000"], &file);
    assert!(
        !top.contains("runtime.ready "),
        "{what}: ready frames must be dropped:\n{top}"
    );
}

/// Block profiles (parked and wakers views) read back by each toolchain's `go tool pprof`:
/// totals equal gtrace's state machine, every parker's stack carries its wait reason, the
/// sender is the receiver's waker — every toolchain x every variant.
#[test]
fn block_profile_in_the_matrix() {
    let dir = std::env::temp_dir().join(format!("gtrace-block-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (tc, v) in cells() {
        check_parked(&tc, v, &dir);
        check_wakers(&tc, v, &dir);
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Folded stacks and the SVG flame graph of a block profile: the folded total is the
/// parked time gtrace reports, every line ends in its wait reason.
#[test]
fn block_profile_folded_and_svg() {
    let tc = go::newest().unwrap_or_else(|e| panic!("{e:#}"));
    let dir = std::env::temp_dir().join(format!("gtrace-block-fmt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut p = spawn_pingpong(&tc, Variant::Default);
    let folded = dir.join("block.folded");
    let stderr = profile_parkers(&mut p, &folded, &["--format", "folded"], "folded");
    let (_, ns) = stderr_totals(&stderr, "folded");
    let text = std::fs::read_to_string(&folded).unwrap();
    let sum: u64 = text
        .lines()
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
        .sum();
    assert_eq!(sum, ns, "folded total vs gtrace's");
    assert!(
        text.lines()
            .all(|l| l.rsplit_once(' ').unwrap().0.ends_with(']')),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l
                .contains("main.blockChanRecv;runtime.chanrecv1;runtime.chanrecv;[chan_receive]")),
        "{text}"
    );
    let svg = dir.join("block.svg");
    profile_parkers(&mut p, &svg, &["--format", "svg"], "svg");
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<?xml") || svg.starts_with("<svg"), "svg");
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(
        svg.contains("main.blockCond"),
        "main.blockCond missing from the SVG"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// The target exits mid-window: what was seen is written (and readable by `go tool pprof`),
/// the exit code says the process is gone (5).
#[test]
fn block_profile_when_the_target_exits() {
    let tc = go::newest().unwrap_or_else(|e| panic!("{e:#}"));
    let dir = std::env::temp_dir().join(format!("gtrace-block-exit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("exit.pb.gz");
    let mut p = spawn_pingpong(&tc, Variant::Default);
    let mut g = start_block_profile(&p, &file, &["-d", "60s"], "exit");
    p.write_line("park").unwrap();
    p.wait_for_line("parked", LINE_TIMEOUT).unwrap();
    p.write_line("quit").unwrap();
    let status = g.wait_exit(Duration::from_secs(30)).unwrap();
    let stderr = g.stderr();
    assert_eq!(status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("exited during the window"), "{stderr}");
    let (parks, ns) = stderr_totals(&stderr, "exit");
    assert!(parks >= 6, "{stderr}");
    check_totals(&tc, &file, "parks", (parks, ns), "exit");
    std::fs::remove_dir_all(&dir).ok();
}

/// Over budget, tracing ends instead of sampling (the block recorder needs every event): the
/// profile covers the part traced, readable by `go tool pprof`, and stderr says why.
#[test]
fn block_profile_ends_when_over_budget() {
    let tc = go::newest().unwrap_or_else(|e| panic!("{e:#}"));
    let dir = std::env::temp_dir().join(format!("gtrace-block-budget-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("budget.pb.gz");
    let mut p = spawn_pingpong(&tc, Variant::Default);
    let mut g = start_block_profile(&p, &file, &["-d", "60s", "--max-overhead", "0.1"], "budget");
    // Back-to-back round trips: far more than 0.1 % of the target's CPU in probe traps.
    p.write_line("pp 200000").unwrap();
    let status = g.wait_exit(Duration::from_secs(30)).unwrap();
    let stderr = g.stderr();
    assert_eq!(status.code(), Some(0), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("tracing ended after"))
        .unwrap_or_else(|| panic!("no over-budget line: {stderr}"));
    assert!(line.contains("(budget 0.1%)"), "{line}");
    let secs: f64 = line
        .split("after ")
        .nth(1)
        .and_then(|r| r.split('s').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no duration in {line}"));
    assert!(secs < 30.0, "{line}");
    let (parks, ns) = stderr_totals(&stderr, "budget");
    assert!(parks > 0, "{stderr}");
    check_totals(&tc, &file, "parks", (parks, ns), "budget");
    p.wait_for(Duration::from_mins(2), |l| l.starts_with("pp "))
        .expect("ping-pong done");
    std::fs::remove_dir_all(&dir).ok();
}
