//! The fixture matrix builds and runs, and Go's own dumps of it parse into what the fixtures
//! say they made. Needs every Go toolchain (`cargo xtask go-toolchains`); no root.

use std::collections::BTreeMap;
use std::time::Duration;

use gtrace_tests::blocked::{self, Made};
use gtrace_tests::fixture::{self, Variant};
use gtrace_tests::go::{self, Toolchain};
use gtrace_tests::process::{self, READY_TIMEOUT, Spawned};
use gtrace_tests::traceback::{self, Dump};
use object::{Object as _, ObjectKind};

fn toolchains() -> Vec<Toolchain> {
    go::all().unwrap_or_else(|e| panic!("{e:#}"))
}

fn build(name: &str, tc: &Toolchain, v: Variant) -> std::path::PathBuf {
    fixture::build(name, tc, v).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Every program builds with every toolchain in every variant, and each variant really is
/// what it claims (PIE is `ET_DYN`, stripped has no symbols, trimpath has no absolute paths).
#[test]
fn every_fixture_builds_in_every_variant() {
    let programs = fixture::programs().unwrap();
    for known in fixture::ALL_PROGRAMS {
        assert!(
            programs.iter().any(|p| p == known),
            "{known} missing from {programs:?}"
        );
    }
    let jobs = fixture::jobs(&programs).unwrap_or_else(|e| panic!("{e:#}"));
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    let failures = fixture::build_many(&jobs, workers, &|_| {});
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    for job in &jobs {
        let (name, tc, v) = (job.name.as_str(), &job.toolchain, job.variant);
        let bin = build(name, tc, v);
        let bytes = std::fs::read(&bin).unwrap();
        let elf = object::File::parse(&*bytes).unwrap();
        let what = format!("{name} {tc} {v}");
        assert_eq!(
            elf.kind() == ObjectKind::Dynamic,
            v == Variant::Pie,
            "{what}: ELF type {:?}",
            elf.kind()
        );
        let has_symtab = elf.section_by_name(".symtab").is_some();
        assert_eq!(has_symtab, v.has_symbols(), "{what}: .symtab");
        let abs = fixture::source_dir(name).join("main.go");
        if !abs.is_file() {
            continue;
        }
        let has_abs_path =
            memchr::memmem::find(&bytes, abs.as_os_str().as_encoded_bytes()).is_some();
        assert_eq!(
            has_abs_path,
            v != Variant::Trimpath,
            "{what}: source path in binary"
        );
    }
}

/// A second build is a cache hit (no `go` run) returning the same path.
#[test]
fn builds_are_cached() {
    let tc = go::newest().unwrap_or_else(|e| panic!("{e:#}"));
    let first = build("churn", &tc, Variant::Default);
    let (again, built) = fixture::build_reporting("churn", &tc, Variant::Default).unwrap();
    assert_eq!(first, again);
    assert!(!built, "second build of the same fixture ran go again");
}

fn run_blocked(tc: &Toolchain, v: Variant) -> (Vec<Made>, Dump) {
    let bin = build("blocked", tc, v);
    let (lines, text) = process::goroutine_dump(&bin, &[] as &[&str])
        .unwrap_or_else(|e| panic!("blocked {tc} {v}: {e:#}"));
    let report = blocked::parse_report(&lines).unwrap();
    let dump = traceback::parse(&text).unwrap_or_else(|e| panic!("{tc} {v}: {e}\n{text}"));
    (report, dump)
}

/// `blocked` becomes ready with every toolchain (cycling through the variants), reports every
/// kind, and Go's SIGQUIT dump agrees with the report: per kind the number of goroutines, the
/// status, the creator and (1.21+) the parent goroutine.
#[test]
fn live_sigquit_dump_of_blocked_matches_its_report() {
    for (i, tc) in toolchains().iter().enumerate() {
        let v = Variant::ALL[i % Variant::ALL.len()];
        let (report, dump) = run_blocked(tc, v);
        let names: Vec<&str> = report.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, blocked::KINDS, "{tc} {v}");

        let mut statuses = BTreeMap::new();
        for m in &report {
            let gs: Vec<_> = dump
                .goroutines
                .iter()
                .filter(|g| {
                    g.frames
                        .iter()
                        .find(|f| f.function.starts_with("main.") && !f.inlined)
                        .is_some_and(|f| f.function == m.func)
                })
                .collect();
            assert_eq!(
                gs.len(),
                m.count,
                "{tc} {v} {}: goroutines in {}",
                m.name,
                m.func
            );
            let want = blocked::expected_status(tc, &m.name).unwrap();
            for g in &gs {
                assert_eq!(g.status, want, "{tc} {v} {} goroutine {}", m.name, g.goid);
                let created = g.created_by.as_ref().unwrap();
                assert_eq!(created.function, m.creator, "{tc} {v} {}", m.name);
                if tc.at_least(1, 21) {
                    let parent = g.parent_goid.unwrap();
                    if m.name == "chain_child" {
                        let p = dump.with_frame("main.chainParent").next().unwrap();
                        assert_eq!(parent, p.goid, "{tc} {v}");
                    } else {
                        assert_eq!(parent, 1, "{tc} {v} {}", m.name);
                    }
                } else {
                    assert_eq!(g.parent_goid, None);
                }
            }
            statuses.insert(m.name.clone(), want);
        }
        // The main goroutine is reading stdin (a blocking read(2): the pipe is not
        // non-blocking).
        let main = dump.goroutine(1).expect("goroutine 1 in dump");
        assert!(main.has_frame("main.main"), "{tc} {v}");
        assert_eq!(main.status, "syscall", "{tc} {v}");
    }
}

/// `churn` creates exactly the goroutines asked for and counts `counted` calls.
#[test]
fn churn_protocol() {
    for tc in toolchains() {
        let bin = build("churn", &tc, Variant::Default);
        let mut p = Spawned::spawn(&bin, &[] as &[&str], &[("GOGC", "off")]).unwrap();
        p.wait_ready().unwrap();
        for n in [0, 1, 100] {
            p.write_line(&n.to_string()).unwrap();
            assert_eq!(
                p.next_line(READY_TIMEOUT).unwrap(),
                format!("done {n}"),
                "{tc}"
            );
        }
        p.write_line("goroutines").unwrap();
        assert_eq!(p.next_line(READY_TIMEOUT).unwrap(), "goroutines 1", "{tc}");
        p.write_line("calls 25").unwrap();
        assert_eq!(p.next_line(READY_TIMEOUT).unwrap(), "called 25 total 25");
        p.write_line("quit").unwrap();
        assert!(p.wait_exit(READY_TIMEOUT).unwrap().success());
    }
}

/// Recovered panics report their values; the fatal ones exit 2 with a parseable traceback.
#[test]
fn panics_protocol() {
    let recovered = [
        ("string", "boom"),
        ("error_new", "boom error"),
        ("error_wrapped", "wrapped: base error"),
        (
            "index",
            "runtime error: index out of range [5] with length 3",
        ),
        ("nil_map", "assignment to entry in nil map"),
        (
            "nil_deref",
            "runtime error: invalid memory address or nil pointer dereference",
        ),
        ("divide", "runtime error: integer divide by zero"),
        (
            "type_assert",
            "interface conversion: interface {} is string, not int",
        ),
        ("struct_value", "{1 2}"),
        ("int_value", "42"),
        ("nested_recovered", "second"),
        ("repanic_new", "again after first"),
        ("repanic_same", "same"),
    ];
    for tc in toolchains() {
        let bin = build("panics", &tc, Variant::Default);
        let mut p = Spawned::spawn(&bin, &[] as &[&str], &[] as &[(&str, &str)]).unwrap();
        p.wait_ready().unwrap();
        for (mode, value) in recovered {
            p.write_line(mode).unwrap();
            let got = p.next_line(READY_TIMEOUT).unwrap();
            assert_eq!(got, format!("recovered {mode}: {value}"), "{tc}");
        }
        p.write_line("main").unwrap();
        let status = p.wait_exit(Duration::from_secs(30)).unwrap();
        assert_eq!(status.code(), Some(2), "{tc}");
        let dump = traceback::parse(&p.stderr()).unwrap();
        assert_eq!(
            dump.other_lines.first().map(String::as_str),
            Some("panic: fatal on main")
        );
        assert_eq!(
            dump.goroutines[0].functions(),
            ["main.panicMain", "main.main"],
            "{tc}"
        );
    }
}

/// `inline` prints, for every physical frame, Go's logical frames; the chain through three
/// inlined functions is expanded in full by every toolchain and variant's runtime.
#[test]
fn inline_reports_expanded_frames() {
    #[derive(serde::Deserialize)]
    struct Frame {
        function: String,
        inlined: bool,
        line: u32,
    }
    #[derive(serde::Deserialize)]
    struct Record {
        capture: String,
        index: usize,
        pc: String,
        frames: Vec<Frame>,
    }
    for (tc, v) in fixture::matrix().unwrap_or_else(|e| panic!("{e:#}")) {
        let bin = build("inline", &tc, v);
        let mut p = Spawned::spawn(&bin, &[] as &[&str], &[] as &[(&str, &str)]).unwrap();
        let records: Vec<Record> = p
            .wait_ready()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let chain = records
            .iter()
            .find(|r| r.capture == "chain" && r.index == 0)
            .unwrap();
        let names: Vec<(&str, bool)> = chain
            .frames
            .iter()
            .map(|f| (f.function.as_str(), f.inlined))
            .collect();
        assert_eq!(
            names,
            [
                ("main.inlC", true),
                ("main.inlB", true),
                ("main.inlA", true),
                ("main.chain", false)
            ],
            "{tc} {v}"
        );
        assert!(chain.frames.iter().all(|f| f.line > 0));
        assert!(chain.pc.starts_with("0x"));
        for capture in ["method", "closure", "generic", "recurse"] {
            assert!(
                records.iter().any(|r| r.capture == capture),
                "{tc} {v}: {capture}"
            );
        }
        if matches!(v, Variant::Default | Variant::Pie) {
            // The reported pc is a physical return address: `go tool addr2line` on pc-1
            // (minus the load bias) names the physical function and the innermost inlined
            // line.
            let bias = p.load_bias().unwrap();
            assert_eq!(bias == 0, v != Variant::Pie, "{tc} {v}: bias {bias:#x}");
            let pcs: Vec<u64> = records
                .iter()
                .map(|r| {
                    u64::from_str_radix(&r.pc[2..], 16)
                        .unwrap()
                        .wrapping_sub(1 + bias)
                })
                .collect();
            // Go 1.19's addr2line cannot read PIE binaries (it does not find pclntab in
            // `.data.rel.ro.gopclntab`); the newest toolchain's can.
            let tool = if v == Variant::Pie && !tc.at_least(1, 21) {
                go::newest().unwrap()
            } else {
                tc.clone()
            };
            let answers = tool.addr2line(&bin, &pcs).unwrap();
            assert_eq!(answers.len(), records.len());
            for (r, a) in records.iter().zip(answers) {
                let (function, _, line) = a
                    .unwrap_or_else(|| panic!("{tc} {v}: no answer for {} (bias {bias:#x})", r.pc));
                let last = r.frames.last().unwrap();
                assert_eq!(function, last.function, "{tc} {v} {}", r.pc);
                assert_eq!(line, r.frames[0].line, "{tc} {v} {}", r.pc);
            }
        }
    }
}

/// The demo starts its worker pool and its first leaked goroutine before `ready`.
#[test]
fn demo_shape() {
    for tc in toolchains() {
        let bin = build(fixture::DEMO, &tc, Variant::Default);
        let (_, text) = process::goroutine_dump(&bin, &[] as &[&str]).unwrap();
        let dump = traceback::parse(&text).unwrap_or_else(|e| panic!("{tc}: {e}\n{text}"));
        // main starts 4 workers, the dispatcher, the request loop and the config loop. Busy
        // ones may be running on another thread at dump time ("stack unavailable").
        let by_main: Vec<_> = dump
            .goroutines
            .iter()
            .filter(|g| {
                g.created_by
                    .as_ref()
                    .is_some_and(|c| c.function == "main.main")
            })
            .collect();
        assert_eq!(by_main.len(), 7, "{tc}");
        for g in by_main.iter().filter(|g| !g.stack_unavailable) {
            let only_wrapper = not_started(g, "main.main");
            let known = [
                "main.worker",
                "main.dispatcher",
                "main.requestLoop",
                "main.configLoop",
            ];
            assert!(
                only_wrapper || known.iter().any(|f| g.has_frame(f)),
                "{tc}: {:?}",
                g.functions()
            );
        }
        assert!(dump.with_frame("main.worker").count() <= 4, "{tc}");
        // The first leaked goroutine exists (it may not have parked yet).
        let leaked: Vec<_> = dump
            .goroutines
            .iter()
            .filter(|g| {
                g.created_by
                    .as_ref()
                    .is_some_and(|c| c.function == "main.handleRequest")
            })
            .collect();
        assert!(!leaked.is_empty(), "{tc}");
        for g in leaked.iter().filter(|g| !g.stack_unavailable) {
            assert!(
                not_started(g, "main.handleRequest") || g.has_frame("main.awaitReply"),
                "{tc}: {:?}",
                g.functions()
            );
        }
    }
}

/// A goroutine that has not run yet shows only the `go` wrapper of its creator
/// (`F.gowrapN` since Go 1.22, `F.funcN` before) and `runtime.goexit`.
fn not_started(g: &traceback::Goroutine, creator: &str) -> bool {
    g.functions().iter().all(|f| {
        f.strip_prefix(creator)
            .is_some_and(|rest| rest.starts_with(".gowrap") || rest.starts_with(".func"))
            || *f == "runtime.goexit"
    })
}
