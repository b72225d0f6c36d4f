//! Goroutine lifecycle events from the real kernel probes, for every installed Go version and
//! build variant (default, stripped, PIE, trimpath). Needs root.
//!
//! Ground truth comes from the fixtures themselves: `churn` creates exactly N goroutines from
//! one known `go` statement; `pingpong` prints the goids of two goroutines that only wake
//! each other, and parks one goroutine per blocking kind in a known function. Symbols are
//! resolved with gtrace's pclntab reader, the same one checked against `go tool addr2line` in
//! the gobin tests.
#![allow(clippy::many_single_char_names, clippy::similar_names)]

use std::{
    cell::RefCell,
    collections::BTreeSet,
    path::Path,
    rc::Rc,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::Duration,
};

use gtrace_tests::{
    fixture::{self, Variant},
    go::Toolchain,
    process::Spawned,
};
use tracer_user::{
    gobin::{GoVersion, waitreason::WaitReasons},
    model::Model,
    probes::session::{self, Options, StopReason, Summary, Target},
};

const LINE_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `workload` on the spawned fixture while capturing; stops once `done(model)` holds
/// after the workload returned (or after 60 s, which makes the caller's checks fail).
fn capture<R: Send + 'static>(
    mut p: Spawned,
    what: &str,
    workload: impl FnOnce(&mut Spawned) -> R + Send + 'static,
    done: impl Fn(&Model) -> bool,
) -> (Model, Summary, Target, R) {
    let target = Target::open(p.pid()).unwrap_or_else(|e| panic!("{what}: open: {e:#?}"));
    let stop = Arc::new(AtomicBool::new(false));
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (res_tx, res_rx) = mpsc::channel::<R>();
    let worker = std::thread::spawn(move || {
        if go_rx.recv().is_ok() {
            let r = workload(&mut p);
            let _ = res_tx.send(r);
        }
        p
    });
    let model = Rc::new(RefCell::new(Model::new()));
    let result: Rc<RefCell<Option<R>>> = Rc::new(RefCell::new(None));
    let opts = Options {
        duration: Some(Duration::from_mins(1)),
        stop: stop.clone(),
        // Exact events: these tests check every park and wake.
        max_overhead: None,
        empty_probes: false,
        bench_parks: false,
        stop_over_budget: false,
    };
    let summary = {
        let (m1, m2, r2) = (model.clone(), model.clone(), result.clone());
        session::run(
            &target,
            &opts,
            || go_tx.send(()).expect("worker alive"),
            |e| m1.borrow_mut().apply(e),
            |_| {
                if r2.borrow().is_none()
                    && let Ok(r) = res_rx.try_recv()
                {
                    *r2.borrow_mut() = Some(r);
                }
                if r2.borrow().is_some() && done(&m2.borrow()) {
                    stop.store(true, Ordering::Relaxed);
                }
            },
        )
        .unwrap_or_else(|e| panic!("{what}: capture: {e:#?}"))
    };
    let mut p = worker.join().expect("workload thread panicked");
    let r = result
        .borrow_mut()
        .take()
        .or_else(|| res_rx.try_recv().ok())
        .unwrap_or_else(|| panic!("{what}: the workload did not finish"));
    p.kill();
    let model = Rc::try_unwrap(model).expect("one owner").into_inner();
    (model, summary, target, r)
}

/// Function (outermost non-inlined frame last) at `pc`, a runtime address; `ret` = a return
/// address (look up the call instruction, as Go's traceback does).
fn func_at(t: &Target, pc: u64, ret: bool) -> Vec<(String, u32)> {
    let vaddr = pc.wrapping_sub(t.bias) - u64::from(ret);
    t.binary
        .symbolize(vaddr)
        .unwrap_or_default()
        .into_iter()
        .map(|f| (f.function, f.line))
        .collect()
}

fn start_func(t: &Target, startpc: u64) -> String {
    func_at(t, startpc, false)
        .last()
        .map(|f| f.0.clone())
        .unwrap_or_default()
}

/// The outermost function and line of a `go` statement's PC.
fn created_at(t: &Target, gopc: u64) -> (String, u32) {
    func_at(t, gopc, true).last().cloned().unwrap_or_default()
}

/// `go f(args)` starts `f` itself or, when it has arguments, a compiler wrapper named after
/// the creating function (`F.gowrapN` since Go 1.22, `F.funcN` before).
fn assert_start(t: &Target, startpc: u64, f: &str, creator: &str, what: &str) {
    let s = start_func(t, startpc);
    let wrapper = s
        .strip_prefix(creator)
        .is_some_and(|rest| rest.starts_with(".gowrap") || rest.starts_with(".func"));
    assert!(s == f || wrapper, "{what}: start function {s} for {f}");
}

/// Every function of a captured stack (first PC is the probe site, the rest return addresses).
fn stack_funcs(t: &Target, pcs: &[u64]) -> Vec<String> {
    pcs.iter()
        .enumerate()
        .flat_map(|(i, pc)| func_at(t, *pc, i > 0))
        .map(|f| f.0)
        .collect()
}

fn source_line(fixture_name: &str, needle: &str) -> u32 {
    let src = std::fs::read_to_string(fixture::source_dir(fixture_name).join("main.go"))
        .expect("fixture source");
    src.lines().position(|l| l.contains(needle)).map_or_else(
        || panic!("{needle} not in {fixture_name}/main.go"),
        |i| i as u32 + 1,
    )
}

fn check_clean(what: &str, s: &Summary) {
    assert_eq!(
        s.counts.total_drops(),
        0,
        "{what}: events dropped: {:?}",
        s.counts
    );
    assert_eq!(s.decode_errors, 0, "{what}: undecodable records");
    assert_eq!(
        s.counts.total_errors(),
        0,
        "{what}: probe read failures: {:?}",
        s.counts
    );
    assert_eq!(s.detach_problem, None, "{what}: target code not restored");
    assert_eq!(s.reason, StopReason::Signal, "{what}: capture ended early");
}

fn spawn(bin: &Path) -> Spawned {
    let mut p =
        Spawned::spawn(bin, std::iter::empty::<&str>(), &[("GOGC", "off")]).expect("spawn fixture");
    p.wait_ready().expect("fixture did not get ready");
    p
}

const CHURN: usize = 300;

fn churn(tc: &Toolchain, v: Variant) {
    let what = format!("churn go{} {v:?}", tc.minor_str());
    let bin = fixture::build("churn", tc, v).expect("build churn");
    let go_line = source_line("churn", "go churnWorker(");
    let (m, s, t, ()) = capture(
        spawn(&bin),
        &what,
        |p| {
            p.write_line(&CHURN.to_string()).unwrap();
            p.wait_for_line(&format!("done {CHURN}"), LINE_TIMEOUT)
                .expect("churn done");
        },
        |m| m.exited as usize >= CHURN,
    );
    check_clean(&what, &s);
    let workers: Vec<_> = m
        .goroutines
        .values()
        .filter(|g| {
            g.created
                .is_some_and(|c| created_at(&t, c.gopc) == ("main.spawn".into(), go_line))
        })
        .collect();
    assert_eq!(
        workers.len(),
        CHURN,
        "{what}: creations at main.spawn's go statement"
    );
    assert_eq!(m.created as usize, CHURN, "{what}: creations in total");
    for g in &workers {
        let c = g.created.unwrap();
        assert_eq!(c.parent, 1, "{what}: parent of goroutine {}", g.goid);
        assert_start(&t, c.startpc, "main.churnWorker", "main.spawn", &what);
        assert!(
            g.exited.is_some(),
            "{what}: exit of goroutine {} not seen",
            g.goid
        );
        assert!(
            g.runs >= 1,
            "{what}: goroutine {} never seen running",
            g.goid
        );
    }
    let goids: BTreeSet<_> = workers.iter().map(|g| g.goid).collect();
    assert_eq!(goids.len(), CHURN, "{what}: goids are unique");
}

const ROUNDS: u64 = 200;
const YIELDS: u64 = 50;

fn expected_reasons(v: &GoVersion) -> [(&'static str, &'static str); 6] {
    [
        ("main.blockChanRecv", "chan receive"),
        ("main.blockSelect", "select"),
        ("main.blockSleep", "sleep"),
        (
            "main.blockMutex",
            if v.minor >= 20 {
                "sync.Mutex.Lock"
            } else {
                "semacquire"
            },
        ),
        (
            "main.blockWaitGroup",
            if v.minor >= 24 {
                "sync.WaitGroup.Wait"
            } else {
                "semacquire"
            },
        ),
        ("main.blockCond", "sync.Cond.Wait"),
    ]
}

fn pingpong(tc: &Toolchain, v: Variant) {
    let what = format!("pingpong go{} {v:?}", tc.minor_str());
    let bin = fixture::build("pingpong", tc, v).expect("build pingpong");
    let (m, s, t, (ping, pong)) = capture(
        spawn(&bin),
        &what,
        |p| {
            p.write_line(&format!("pp {ROUNDS}")).unwrap();
            let lines = p
                .wait_for(LINE_TIMEOUT, |l| l.starts_with("pp "))
                .expect("pp");
            let last = lines.last().unwrap().clone();
            let ids: Vec<u64> = last
                .split_whitespace()
                .skip(1)
                .map(|x| x.parse().unwrap())
                .collect();
            p.write_line("park").unwrap();
            p.wait_for_line("parked", LINE_TIMEOUT).expect("parked");
            p.write_line(&format!("yield {YIELDS}")).unwrap();
            p.wait_for_line("yielded", LINE_TIMEOUT).expect("yielded");
            (ids[0], ids[1])
        },
        // 2 ping-pong goroutines + 6 parkers + the yielder.
        |m| m.exited >= 9,
    );
    check_clean(&what, &s);
    let reasons = WaitReasons::for_version(&t.plan.version).expect("wait reasons");
    let name = |r: u32| reasons.name(r as u8).unwrap_or("?").to_owned();

    // Who woke whom: only the two partners touch the channels.
    for (me, other, f) in [(ping, pong, "main.pinger"), (pong, ping, "main.ponger")] {
        let g = &m.goroutines[&me];
        let c = g.created.expect("created during the capture");
        let line = source_line("pingpong", &format!("go {}(", &f[5..]));
        assert_eq!(
            created_at(&t, c.gopc),
            ("main.startPingPong".to_owned(), line),
            "{what}: creation site of {me}"
        );
        assert_eq!(c.parent, 1, "{what}: parent of {me}");
        assert_start(&t, c.startpc, f, "main.startPingPong", &what);
        let woken: Vec<_> = g.parks.iter().filter_map(|p| p.wake).collect();
        let by_partner = woken.iter().filter(|w| w.waker == other).count();
        // The last park of each may be wg-related for main, never for these two.
        assert!(
            by_partner as u64 >= ROUNDS / 2,
            "{what}: {f} ({me}) woken {} times by {other} of {} wakes",
            by_partner,
            woken.len()
        );
        for p in &g.parks {
            let r = name(p.reason);
            assert!(
                r == "chan receive" || r == "chan send",
                "{what}: {f} parked for {r}"
            );
            if let Some(w) = p.wake {
                assert_eq!(w.waker, other, "{what}: {f} woken by {}", w.waker);
                // `ready` runs on the system stack; the frame-pointer chain continues through
                // `systemstack` into the waker's own stack.
                let partner = if f == "main.pinger" {
                    "main.ponger"
                } else {
                    "main.pinger"
                };
                let ws = stack_funcs(&t, m.stacks.get(w.stack));
                assert!(
                    ws.first().map(String::as_str) == Some("runtime.ready")
                        && ws.iter().any(|x| x == partner),
                    "{what}: waker stack of {f} lacks {partner}: {ws:?}"
                );
            }
        }
        assert!(g.exited.is_some(), "{what}: {f} exit not seen");
    }

    // Yields (runtime.Gosched → goschedImpl): each one is followed by an execute.
    let line = source_line("pingpong", "go yielder(");
    let y = m
        .goroutines
        .values()
        .find(|g| {
            g.created
                .is_some_and(|c| created_at(&t, c.gopc) == ("main.startYielder".into(), line))
        })
        .unwrap_or_else(|| panic!("{what}: no yielder goroutine"));
    assert_eq!(y.yields, YIELDS, "{what}: yields seen");
    assert!(
        y.runs > YIELDS,
        "{what}: {} runs for {YIELDS} yields",
        y.runs
    );
    assert!(y.exited.is_some(), "{what}: yielder exit");

    // Park reasons and parking stacks.
    for (func, reason) in expected_reasons(&t.plan.version) {
        let line = source_line("pingpong", &format!("go {}(", &func[5..]));
        let g = m
            .goroutines
            .values()
            .find(|g| {
                g.created
                    .is_some_and(|c| created_at(&t, c.gopc) == ("main.startParkers".into(), line))
            })
            .unwrap_or_else(|| panic!("{what}: no goroutine created for {func}"));
        let parks: Vec<_> = g
            .parks
            .iter()
            .map(|p| (name(p.reason), stack_funcs(&t, m.stacks.get(p.stack))))
            .collect();
        let hit = parks
            .iter()
            .find(|(r, st)| r == reason && st.iter().any(|f| f == func));
        assert!(
            hit.is_some(),
            "{what}: {func} never parked for {reason:?} with itself on the stack: {parks:#?}"
        );
        let (_, st) = hit.unwrap();
        assert_eq!(
            st.first().map(String::as_str),
            Some("runtime.gopark"),
            "{what}"
        );
        if func == "main.blockChanRecv" {
            // gopark's direct caller must not be lost at the probe site.
            assert!(
                st.iter().any(|f| f == "runtime.chanrecv"),
                "{what}: runtime.chanrecv missing from {st:?}"
            );
        }
    }
}

fn matrix(f: fn(&Toolchain, Variant)) {
    let only = std::env::var("GTRACE_TEST_GO").ok();
    for (tc, v) in fixture::matrix().expect("Go toolchains (cargo xtask go-toolchains)") {
        if only.as_deref().is_some_and(|o| o != tc.minor_str()) {
            continue;
        }
        f(&tc, v);
    }
}

#[test]
fn churn_creations_parents_sites_exits() {
    matrix(churn);
}

#[test]
fn pingpong_wakers_and_park_reasons() {
    matrix(pingpong);
}
