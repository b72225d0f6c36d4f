//! `gtrace panics` against the `panics` fixture, for every installed Go version and build
//! variant (default, stripped, PIE, trimpath).
//!
//! The fixture is started under gtrace (`gtrace panics --json -- FIXTURE`), so the probes are
//! in place before it runs. Ground truth:
//! - recovered panics: the fixture prints `recovered MODE: VALUE` with `%v`, which for strings,
//!   integers and errors (runtime errors included) is the very text the runtime prints after
//!   `panic: ` (`printpanicval` / `Error()`);
//! - fatal panics: the runtime's own stderr (`panic: …` lines, the panicking goroutine's id,
//!   frames and `created by`), parsed by the harness's traceback parser.
//!
//! Every panic must be reported exactly once, with the right goroutine, value, flags, panic
//! frame and creator.

use std::time::Duration;

use gtrace_tests::{
    fixture::{self, Variant},
    go::Toolchain,
    gtrace,
    process::Spawned,
    traceback,
};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(30);

/// What a run produced: gtrace's JSON reports, the fixture's other stdout lines, stderr.
struct Run {
    reports: Vec<Value>,
    stdout: Vec<String>,
    stderr: String,
}

/// Runs the fixture under `gtrace panics --json`, feeding it `modes` (the last may be fatal).
fn run(bin: &std::path::Path, modes: &[&str], fatal: bool) -> Run {
    // Recovered runs also follow creations (--ancestry); fatal runs use the panic probes only.
    let mut cmd = if fatal {
        gtrace::command(["panics", "--json", "--"])
    } else {
        gtrace::command(["panics", "--json", "--ancestry", "--"])
    };
    cmd.arg(bin);
    let mut p = Spawned::from_command(cmd).expect("spawn gtrace panics");
    p.wait_ready()
        .expect("fixture did not get ready under gtrace");
    for m in modes {
        p.write_line(m).unwrap();
        if !fatal {
            p.wait_for(TIMEOUT, |l| l.starts_with(&format!("recovered {m}: ")))
                .unwrap_or_else(|e| panic!("mode {m}: {e}"));
        }
    }
    if !fatal {
        p.write_line("quit").unwrap();
    }
    let status = p.wait_exit(TIMEOUT).expect("gtrace did not exit");
    assert!(
        status.success(),
        "gtrace failed: {status:?}\n{}",
        p.stderr()
    );
    while p.next_line(TIMEOUT).is_ok() {}
    let mut reports = Vec::new();
    let mut stdout = Vec::new();
    for l in p.stdout_seen() {
        if l.starts_with('{') {
            reports.push(serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")));
        } else {
            stdout.push(l.clone());
        }
    }
    Run {
        reports,
        stdout,
        stderr: p.stderr(),
    }
}

/// The first frame outside the runtime: where the panic happened in user code.
fn panic_frame(r: &Value) -> String {
    r["frames"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["function"].as_str())
        .find(|f| !f.starts_with("runtime."))
        .unwrap_or("")
        .to_owned()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// One expected report.
struct Want {
    value: String,
    recovered: bool,
    fatal: bool,
    nested: bool,
    frame: &'static str,
    recovered_by: Option<&'static str>,
    /// The deferred functions the panic machinery called for it, in order.
    defers: Vec<&'static str>,
}

fn want(
    value: &str,
    recovered: bool,
    nested: bool,
    frame: &'static str,
    by: Option<&'static str>,
) -> Want {
    Want {
        value: value.into(),
        recovered,
        fatal: false,
        nested,
        frame,
        recovered_by: by,
        // Recovered by run's deferred closure unless the test says otherwise.
        defers: vec!["main.run.func1"],
    }
}

/// The report fields documented in docs/json/panics.schema.json (all required, no others).
fn schema_fields() -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/json/panics.schema.json"
    );
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut req: Vec<String> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| s(v).to_owned())
        .collect();
    let mut props: Vec<String> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    req.sort();
    props.sort();
    assert_eq!(req, props, "schema: every property is required");
    req
}

fn check(ctx: &str, got: &[&Value], wants: &[Want], failures: &mut Vec<String>) {
    let fields = schema_fields();
    if got.len() != wants.len() {
        failures.push(format!(
            "{ctx}: {} reports, want {}: {got:#?}",
            got.len(),
            wants.len()
        ));
        return;
    }
    for (i, (g, w)) in got.iter().zip(wants).enumerate() {
        let mut bad = Vec::new();
        let mut keys: Vec<String> = g
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        if keys != fields {
            bad.push(format!(
                "fields {keys:?} differ from the schema's {fields:?}"
            ));
        }
        let value = s(&g["value"]);
        let value_ok = if let Some(prefix) = w.value.strip_suffix('*') {
            value.starts_with(prefix)
        } else {
            value == w.value
        };
        if !value_ok {
            bad.push(format!("value {value:?} want {:?}", w.value));
        }
        if g["recovered"].as_bool() != Some(w.recovered) {
            bad.push(format!("recovered {} want {}", g["recovered"], w.recovered));
        }
        if g["fatal"].as_bool() != Some(w.fatal) {
            bad.push(format!("fatal {} want {}", g["fatal"], w.fatal));
        }
        if g["nested"].as_bool() != Some(w.nested) {
            bad.push(format!("nested {} want {}", g["nested"], w.nested));
        }
        if panic_frame(g) != w.frame {
            bad.push(format!(
                "panic frame {:?} want {:?}",
                panic_frame(g),
                w.frame
            ));
        }
        // The runtime's own deferred calls (runtime.main's, run while a panic on the main
        // goroutine unwinds it) are reported too; the fixture's are what is checked here.
        let defers: Vec<&str> = g["defers_run"]
            .as_array()
            .into_iter()
            .flatten()
            .map(s)
            .filter(|f| !f.starts_with("runtime."))
            .collect();
        if defers != w.defers {
            bad.push(format!("defers_run {defers:?} want {:?}", w.defers));
        }
        let by = g["recovered_by"]["function"].as_str();
        if by != w.recovered_by {
            bad.push(format!("recovered_by {by:?} want {:?}", w.recovered_by));
        }
        if !bad.is_empty() {
            failures.push(format!("{ctx} report {i}: {}", bad.join("; ")));
        }
    }
}

const RECOVERED: &[&str] = &[
    "string",
    "error_new",
    "error_wrapped",
    "index",
    "nil_map",
    "nil_deref",
    "divide",
    "type_assert",
    "struct_value",
    "int_value",
    "nested_recovered",
    "repanic_new",
    "repanic_same",
    "grandchild",
];

fn recovered_cell(tc: &Toolchain, v: Variant, failures: &mut Vec<String>) {
    let bin = fixture::build("panics", tc, v).expect("build panics fixture");
    let r = run(&bin, RECOVERED, false);
    let cell = format!("go{} {}", tc.version, v.name());
    // Ground truth: the fixture's own `%v` of each recovered value.
    let printed = |mode: &str| -> String {
        let p = format!("recovered {mode}: ");
        r.stdout
            .iter()
            .find_map(|l| l.strip_prefix(&p))
            .unwrap_or_else(|| panic!("{cell}: no output for {mode}"))
            .to_owned()
    };
    let run_fn = Some("main.run.func1");
    let mut wants: Vec<(&str, Vec<Want>)> = Vec::new();
    for (mode, frame) in [
        ("string", "main.panicString"),
        ("error_new", "main.panicErrorNew"),
        ("error_wrapped", "main.panicErrorWrapped"),
        ("index", "main.panicIndex"),
        ("nil_map", "main.panicNilMap"),
        ("nil_deref", "main.panicNilDeref"),
        ("divide", "main.panicDivide"),
        ("type_assert", "main.panicTypeAssert"),
        ("int_value", "main.panicIntValue"),
    ] {
        wants.push((mode, vec![want(&printed(mode), true, false, frame, run_fn)]));
    }
    // A struct is printed by the runtime as `(T) ADDR`, not with %v.
    wants.insert(
        8,
        (
            "struct_value",
            vec![want(
                "(main.point) 0x*",
                true,
                false,
                "main.panicStructValue",
                run_fn,
            )],
        ),
    );
    wants.push((
        "nested_recovered",
        vec![
            // "first" is aborted by the panic in its deferred call; "second" is recovered.
            Want {
                defers: vec!["main.panicInDefer"],
                ..want("first", false, false, "main.panicNested", None)
            },
            want("second", true, true, "main.panicInDefer", run_fn),
        ],
    ));
    wants.push((
        "repanic_new",
        vec![
            Want {
                defers: vec!["main.panicRepanicNew.func1"],
                ..want(
                    "first",
                    true,
                    false,
                    "main.panicRepanicNew",
                    Some("main.panicRepanicNew.func1"),
                )
            },
            want(
                "again after first",
                true,
                true,
                "main.panicRepanicNew.func1",
                run_fn,
            ),
        ],
    ));
    wants.push((
        "repanic_same",
        vec![
            Want {
                defers: vec!["main.panicRepanicSame.func1"],
                ..want(
                    "same",
                    true,
                    false,
                    "main.panicRepanicSame",
                    Some("main.panicRepanicSame.func1"),
                )
            },
            want("same", true, true, "main.panicRepanicSame.func1", run_fn),
        ],
    ));
    wants.push((
        "grandchild",
        vec![
            want("grandchild", true, false, "main.panicInGrandchild", run_fn),
            want("grandchild", true, false, "main.panicGrandchild", run_fn),
        ],
    ));
    let total: usize = wants.iter().map(|(_, w)| w.len()).sum();
    if r.reports.len() != total {
        failures.push(format!(
            "{cell}: {} reports for {total} panics:\n{}",
            r.reports.len(),
            r.reports
                .iter()
                .map(|x| format!("{} {}", x["goid"], x["value"]))
                .collect::<Vec<_>>()
                .join("\n")
        ));
        return;
    }
    let mut at = 0;
    for (mode, w) in &wants {
        let got: Vec<&Value> = r.reports[at..at + w.len()].iter().collect();
        at += w.len();
        check(&format!("{cell} {mode}"), &got, w, failures);
        for (i, g) in got.iter().enumerate() {
            if *mode == "grandchild" && i == 0 {
                check_grandchild(&format!("{cell} {mode}"), g, failures);
                continue;
            }
            if g["goid"].as_u64() != Some(1) || !g["created_by"].is_null() {
                failures.push(format!(
                    "{cell} {mode}: goid {} created_by {} (want main goroutine)",
                    g["goid"], g["created_by"]
                ));
            }
        }
    }
}

/// The grandchild's ancestry: created by main.spawnGrandchild (an exited goroutine), itself
/// created by main.panicGrandchild on goroutine 1.
fn check_grandchild(ctx: &str, g: &Value, failures: &mut Vec<String>) {
    let chain: Vec<(Option<u64>, &str)> = g["ancestry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| (a["goid"].as_u64(), s(&a["function"])))
        .collect();
    let ok = chain.len() == 2
        && chain[0].1 == "main.spawnGrandchild"
        && chain[0]
            .0
            .is_some_and(|p| p > 1 && Some(p) != g["goid"].as_u64())
        && chain[1] == (Some(1), "main.panicGrandchild")
        && s(&g["created_by"]["function"]) == "main.spawnGrandchild";
    if !ok {
        failures.push(format!(
            "{ctx}: goid {} ancestry {chain:?} created_by {}",
            g["goid"], g["created_by"]
        ));
    }
}

fn fatal_cell(tc: &Toolchain, v: Variant, failures: &mut Vec<String>) {
    let bin = fixture::build("panics", tc, v).expect("build panics fixture");
    for (mode, frames) in [
        ("main", &["main.panicMain"][..]),
        ("goroutine", &["main.panicChild"][..]),
        (
            "nested_fatal",
            &["main.panicNested", "main.panicInDefer"][..],
        ),
        (
            "repanic_fatal",
            &["main.panicRepanicSame", "main.panicRepanicSame.func1"][..],
        ),
        ("nil_deref_fatal", &["main.panicNilDeref"][..]),
    ] {
        let ctx = format!("go{} {} {mode}", tc.version, v.name());
        let r = run(&bin, &[mode], true);
        let dump = traceback::parse(&r.stderr)
            .unwrap_or_else(|e| panic!("{ctx}: runtime stderr does not parse: {e}\n{}", r.stderr));
        let lines = dump.panics();
        let Some(g) = dump.goroutines.first() else {
            failures.push(format!("{ctx}: no goroutine in the runtime's output"));
            continue;
        };
        // The runtime folds a same-value re-panic into its predecessor's line (1.25+).
        let refs: Vec<&Value> = r.reports.iter().collect();
        let printed: Vec<&Value> = refs
            .iter()
            .enumerate()
            .filter(|(i, _)| *i == 0 || refs[i - 1]["repanicked"].as_bool() != Some(true))
            .map(|(_, x)| *x)
            .collect();
        if printed.len() != lines.len() || r.reports.len() != frames.len() {
            failures.push(format!(
                "{ctx}: {} reports ({} printed) for runtime lines {lines:?}; reports {:#?}",
                r.reports.len(),
                printed.len(),
                r.reports
            ));
            continue;
        }
        // Each report's runtime line; a folded re-panic shares its predecessor's value.
        let mut wants = Vec::new();
        let mut li = 0;
        for (i, frame) in frames.iter().enumerate().take(r.reports.len()) {
            let folded = i > 0 && r.reports[i - 1]["repanicked"].as_bool() == Some(true);
            let (value, recovered) = if folded {
                (lines[li - 1].value.clone(), false)
            } else {
                li += 1;
                (lines[li - 1].value.clone(), lines[li - 1].recovered)
            };
            wants.push(Want {
                value,
                recovered,
                fatal: true,
                nested: i > 0,
                frame,
                recovered_by: (mode == "repanic_fatal" && i == 0)
                    .then_some("main.panicRepanicSame.func1"),
                // The first panic of a fatal chain ran the deferred call that panicked again.
                defers: match (mode, i) {
                    ("nested_fatal", 0) => vec!["main.panicInDefer"],
                    ("repanic_fatal", 0) => vec!["main.panicRepanicSame.func1"],
                    _ => Vec::new(),
                },
            });
        }
        check(&ctx, &refs, &wants, failures);
        for x in &r.reports {
            if x["goid"].as_u64() != Some(g.goid) {
                failures.push(format!("{ctx}: goid {} want {}", x["goid"], g.goid));
            }
            let created = x["created_by"]["function"].as_str();
            let want_created = g.created_by.as_ref().map(|c| c.function.as_str());
            if created != want_created {
                failures.push(format!(
                    "{ctx}: created_by {created:?} want {want_created:?}"
                ));
            }
            if let (Some(c), Some(w)) = (x["created_by"].as_object(), &g.created_by)
                && c["line"].as_u64() != Some(u64::from(w.line))
            {
                failures.push(format!(
                    "{ctx}: created_by line {} want {}",
                    c["line"], w.line
                ));
            }
            if g.parent_goid.is_some() && x["ancestry"][0]["goid"].as_u64() != g.parent_goid {
                failures.push(format!(
                    "{ctx}: ancestry {} want parent {:?}",
                    x["ancestry"], g.parent_goid
                ));
            }
        }
    }
}

/// A fatal runtime error (`runtime.fatal` / `throw`): the deadlock of the fixture.
fn throw_cell(tc: &Toolchain, v: Variant, failures: &mut Vec<String>) {
    let bin = fixture::build("panics", tc, v).expect("build panics fixture");
    let ctx = format!("go{} {} deadlock", tc.version, v.name());
    let r = run(&bin, &["deadlock"], true);
    let dump = traceback::parse(&r.stderr)
        .unwrap_or_else(|e| panic!("{ctx}: runtime stderr does not parse: {e}\n{}", r.stderr));
    let want = dump
        .fatal_error()
        .unwrap_or_else(|| panic!("{ctx}: no fatal error line"));
    let got: Vec<(&str, &str, bool)> = r
        .reports
        .iter()
        .map(|x| (s(&x["value"]), s(&x["value_type"]), x["fatal"] == true))
        .collect();
    if got != vec![(want, "fatal error", true)] {
        failures.push(format!(
            "{ctx}: {got:?}, want [({want:?}, \"fatal error\", true)]"
        ));
    }
}

#[test]
fn fatal_runtime_errors_on_every_version_and_variant() {
    let mut failures = Vec::new();
    for (tc, v) in fixture::matrix().unwrap() {
        throw_cell(&tc, v, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn recovered_panics_on_every_version_and_variant() {
    let mut failures = Vec::new();
    for (tc, v) in fixture::matrix().unwrap() {
        recovered_cell(&tc, v, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn fatal_panics_match_the_runtime_on_every_version_and_variant() {
    let mut failures = Vec::new();
    for (tc, v) in fixture::matrix().unwrap() {
        fatal_cell(&tc, v, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `gtrace record` stores the panics of a capture and `gtrace report` lists them (text and
/// JSON), a fatal one included (recorded while the process died).
#[test]
fn record_stores_panics_and_report_lists_them() {
    let mut failures = Vec::new();
    for (tc, v) in fixture::matrix().unwrap() {
        if !matches!(v, Variant::Default | Variant::Pie) {
            continue;
        }
        let ctx = format!("go{} {}", tc.version, v.name());
        let bin = fixture::build("panics", &tc, v).expect("build panics fixture");
        let out = std::env::temp_dir().join(format!(
            "gtrace-panics-{}-{}-{}.gtc",
            std::process::id(),
            tc.version,
            v.name()
        ));
        let mut cmd = gtrace::command(["record", "-o"]);
        cmd.arg(&out).arg("--").arg(&bin);
        let mut p = Spawned::from_command(cmd).expect("spawn gtrace record");
        p.wait_ready()
            .expect("fixture did not get ready under gtrace record");
        for m in ["string", "nested_recovered"] {
            p.write_line(m).unwrap();
            p.wait_for(TIMEOUT, |l| l.starts_with(&format!("recovered {m}: ")))
                .unwrap();
        }
        p.write_line("goroutine").unwrap();
        let status = p.wait_exit(TIMEOUT).expect("gtrace record did not exit");
        assert!(
            status.success(),
            "{ctx}: gtrace record failed\n{}",
            p.stderr()
        );
        let report = gtrace::command(["report", "--json"])
            .arg(&out)
            .output()
            .expect("run gtrace report");
        let text = gtrace::command(["report"])
            .arg(&out)
            .output()
            .expect("run gtrace report");
        let _ = std::fs::remove_file(&out);
        let json: Value = serde_json::from_slice(&report.stdout)
            .unwrap_or_else(|e| panic!("{ctx}: report --json: {e}"));
        let got: Vec<(String, String)> = json["panics"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|x| (s(&x["value"]).to_owned(), s(&x["outcome"]).to_owned()))
            .collect();
        let want: Vec<(String, String)> = [
            ("boom", "recovered"),
            ("first", "aborted"),
            ("second", "recovered"),
            ("fatal in goroutine", "fatal"),
        ]
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
        if got != want {
            failures.push(format!("{ctx}: report panics {got:?}, want {want:?}"));
        }
        let text = String::from_utf8_lossy(&text.stdout);
        if !text.contains("panics (4):")
            || !text.contains("panic: fatal in goroutine [fatal] at main.panicChild")
        {
            failures.push(format!("{ctx}: report text lists no panics:\n{text}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `gtrace panics -p PID` on a process that is already running: a recovered panic, then a
/// fatal one on a child goroutine, after which gtrace ends by itself.
#[test]
fn attach_by_pid_sees_panics_of_a_running_process() {
    let mut failures = Vec::new();
    for (tc, v) in fixture::matrix().unwrap() {
        if !matches!(v, Variant::Default | Variant::Stripped) {
            continue;
        }
        let ctx = format!("go{} {}", tc.version, v.name());
        let bin = fixture::build("panics", &tc, v).expect("build panics fixture");
        let none: &[(&str, &str)] = &[];
        let mut target = Spawned::spawn(&bin, Vec::<&str>::new(), none).expect("spawn fixture");
        target.wait_ready().expect("fixture did not get ready");
        let pid = target.pid().to_string();
        let mut g = Spawned::from_command(gtrace::command(["panics", "--json", "-p", &pid]))
            .expect("spawn gtrace panics -p");
        let deadline = std::time::Instant::now() + TIMEOUT;
        while !g.stderr().contains("watching process") {
            assert!(
                std::time::Instant::now() < deadline && g.try_status().is_none(),
                "{ctx}: gtrace did not attach:\n{}",
                g.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        target.write_line("index").unwrap();
        let line = target
            .wait_for(TIMEOUT, |l| l.starts_with("recovered index: "))
            .unwrap()
            .pop()
            .unwrap();
        target.write_line("goroutine").unwrap();
        let _ = target.wait_exit(TIMEOUT).expect("fixture did not die");
        let status = g
            .wait_exit(TIMEOUT)
            .expect("gtrace did not end with its target");
        assert!(status.success(), "{ctx}: gtrace failed\n{}", g.stderr());
        while g.next_line(TIMEOUT).is_ok() {}
        let reports: Vec<Value> = g
            .stdout_seen()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let got: Vec<(String, String, String)> = reports
            .iter()
            .map(|r| {
                (
                    s(&r["value"]).to_owned(),
                    s(&r["outcome"]).to_owned(),
                    s(&r["created_by"]["function"]).to_owned(),
                )
            })
            .collect();
        let want = vec![
            (
                line.trim_start_matches("recovered index: ").to_owned(),
                "recovered".to_owned(),
                String::new(),
            ),
            (
                "fatal in goroutine".to_owned(),
                "fatal".to_owned(),
                "main.panicGoroutine".to_owned(),
            ),
        ];
        if got != want {
            failures.push(format!("{ctx}: {got:?}, want {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
