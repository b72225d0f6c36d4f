//! Parser tests on real dumps recorded from every toolchain (`cargo xtask record-dumps`).

use super::*;
use crate::blocked;
use crate::go::Toolchain;

/// (minor version, SIGQUIT dump of `blocked`) for every recorded toolchain.
const BLOCKED: &[(u32, &str)] = &[
    (
        19,
        include_str!("../../testdata/dumps/blocked-sigquit-go1.19.txt"),
    ),
    (
        21,
        include_str!("../../testdata/dumps/blocked-sigquit-go1.21.txt"),
    ),
    (
        22,
        include_str!("../../testdata/dumps/blocked-sigquit-go1.22.txt"),
    ),
    (
        23,
        include_str!("../../testdata/dumps/blocked-sigquit-go1.23.txt"),
    ),
    (
        24,
        include_str!("../../testdata/dumps/blocked-sigquit-go1.24.txt"),
    ),
    (
        25,
        include_str!("../../testdata/dumps/blocked-sigquit-go1.25.txt"),
    ),
    (
        26,
        include_str!("../../testdata/dumps/blocked-sigquit-go1.26.txt"),
    ),
    (
        27,
        include_str!("../../testdata/dumps/blocked-sigquit-go1.27.txt"),
    ),
];

macro_rules! per_version {
    ($name:literal) => {
        &[
            (
                19,
                include_str!(concat!(
                    "../../testdata/dumps/panics-",
                    $name,
                    "-go1.19.txt"
                )),
            ),
            (
                21,
                include_str!(concat!(
                    "../../testdata/dumps/panics-",
                    $name,
                    "-go1.21.txt"
                )),
            ),
            (
                22,
                include_str!(concat!(
                    "../../testdata/dumps/panics-",
                    $name,
                    "-go1.22.txt"
                )),
            ),
            (
                23,
                include_str!(concat!(
                    "../../testdata/dumps/panics-",
                    $name,
                    "-go1.23.txt"
                )),
            ),
            (
                24,
                include_str!(concat!(
                    "../../testdata/dumps/panics-",
                    $name,
                    "-go1.24.txt"
                )),
            ),
            (
                25,
                include_str!(concat!(
                    "../../testdata/dumps/panics-",
                    $name,
                    "-go1.25.txt"
                )),
            ),
            (
                26,
                include_str!(concat!(
                    "../../testdata/dumps/panics-",
                    $name,
                    "-go1.26.txt"
                )),
            ),
            (
                27,
                include_str!(concat!(
                    "../../testdata/dumps/panics-",
                    $name,
                    "-go1.27.txt"
                )),
            ),
        ]
    };
}

const GOROUTINE_PANIC: &[(u32, &str)] = per_version!("goroutine");
const REPANIC: &[(u32, &str)] = per_version!("repanic_fatal");
const NESTED: &[(u32, &str)] = per_version!("nested_fatal");
const DEEP: &[(u32, &str)] = per_version!("deep_fatal");
const NIL_DEREF: &[(u32, &str)] = per_version!("nil_deref_fatal");
const DEADLOCK: &[(u32, &str)] = per_version!("deadlock");

fn toolchain(minor: u32) -> Toolchain {
    Toolchain {
        version: format!("1.{minor}.0"),
        go: "/nonexistent".into(),
    }
}

/// The goroutines whose first non-inlined `main.` frame is `func`.
fn blocked_in<'a>(dump: &'a Dump, func: &str) -> Vec<&'a Goroutine> {
    dump.goroutines
        .iter()
        .filter(|g| {
            g.frames
                .iter()
                .find(|f| f.function.starts_with("main.") && !f.inlined)
                .is_some_and(|f| f.function == func)
        })
        .collect()
}

#[test]
fn blocked_dumps_have_every_kind_with_its_status_and_creator() {
    for &(minor, text) in BLOCKED {
        let tc = toolchain(minor);
        let dump = parse(text).unwrap_or_else(|e| panic!("go1.{minor}: {e}"));
        assert!(
            dump.other_lines.iter().any(|l| l == "SIGQUIT: quit"),
            "go1.{minor}"
        );
        // SIGQUIT raises the traceback level to 2: system goroutines are shown.
        assert!(
            dump.goroutines.iter().any(|g| g.status == "GC sweep wait"),
            "go1.{minor}"
        );
        for kind in blocked::KINDS {
            let func = match *kind {
                "chain_parent" => "main.chainParent".to_owned(),
                "chain_child" => "main.chainChild".to_owned(),
                "inlined" => "main.blockInlined".to_owned(),
                other => {
                    let camel: String = other
                        .split('_')
                        .map(|w| match w {
                            "tcp" => "TCP".to_owned(),
                            "rwmutex" => "RWMutex".to_owned(),
                            "rlock" => "RLock".to_owned(),
                            "nocases" => "NoCases".to_owned(),
                            "waitgroup" => "WaitGroup".to_owned(),
                            "recv" => "Recv".to_owned(),
                            w => w[..1].to_uppercase() + &w[1..],
                        })
                        .collect();
                    format!("main.block{camel}")
                }
            };
            let gs = blocked_in(&dump, &func);
            assert!(
                !gs.is_empty(),
                "go1.{minor}: no goroutine blocked in {func}"
            );
            let want = blocked::expected_status(&tc, kind).unwrap();
            for g in gs {
                assert_eq!(g.status, want, "go1.{minor} {kind} goroutine {}", g.goid);
                let created = g.created_by.as_ref().expect("created by");
                assert!(
                    created.function.starts_with("main."),
                    "go1.{minor} {created:?}"
                );
                assert_eq!(created.file, "blocked/main.go");
                assert!(created.pc_offset.is_some());
                assert_eq!(g.parent_goid.is_some(), minor >= 21, "go1.{minor} {kind}");
                assert_eq!(g.gp.is_some(), minor >= 22, "go1.{minor} {kind}");
                assert_eq!(g.m.is_some(), minor >= 22, "go1.{minor} {kind}");
                assert!(!g.scan && !g.leaked && !g.locked_to_thread && g.wait_minutes.is_none());
                // Level 2: every real frame has fp/sp/pc, inlined frames have none.
                for f in &g.frames {
                    assert_eq!(f.pc.is_some(), !f.inlined, "go1.{minor} {f:?}");
                    assert_eq!(f.pc_offset.is_some(), !f.inlined, "go1.{minor} {f:?}");
                }
            }
        }
    }
}

#[test]
fn blocked_dumps_show_inlined_frames_and_go_wrappers() {
    for &(minor, text) in BLOCKED {
        let dump = parse(text).unwrap();
        let gs = blocked_in(&dump, "main.blockInlined");
        assert_eq!(gs.len(), 2, "go1.{minor}");
        for g in gs {
            let names = g.functions();
            let at = names
                .iter()
                .position(|f| *f == "main.inlinedInner")
                .unwrap();
            assert_eq!(
                names[at..at + 5],
                [
                    "main.inlinedInner",
                    "main.inlinedMiddle",
                    "main.inlinedOuter",
                    "main.blockInlined",
                    // `go f(x)`: Go 1.22 names the wrapper gowrap1, before it was func1.
                    if minor >= 22 {
                        "main.spawnInlined.gowrap1"
                    } else {
                        "main.spawnInlined.func1"
                    },
                ],
                "go1.{minor}"
            );
            let inl: Vec<bool> = g.frames[at..at + 4].iter().map(|f| f.inlined).collect();
            assert_eq!(inl, [true, true, true, false], "go1.{minor}");
            assert_eq!(g.frames[at].args, "...");
            assert_eq!(g.frames[at].file, "blocked/main.go");
            assert!(g.frames[at].line > 0 && g.frames[at].pc.is_none());
            // Runtime frames are shown at level 2, with the goexit frame last.
            assert_eq!(names[0], "runtime.gopark", "go1.{minor}");
            assert_eq!(*names.last().unwrap(), "runtime.goexit", "go1.{minor}");
            let created = g.created_by.as_ref().unwrap();
            assert_eq!(created.function, "main.spawnInlined");
        }
    }
}

#[test]
fn parent_chain_since_go121() {
    for &(minor, text) in BLOCKED {
        let dump = parse(text).unwrap();
        let parent = blocked_in(&dump, "main.chainParent")[0];
        let child = blocked_in(&dump, "main.chainChild")[0];
        assert_eq!(
            child.created_by.as_ref().unwrap().function,
            "main.chainParent"
        );
        assert_eq!(
            parent.created_by.as_ref().unwrap().function,
            "main.spawnChain"
        );
        if minor >= 21 {
            assert_eq!(child.parent_goid, Some(parent.goid), "go1.{minor}");
            assert_eq!(parent.parent_goid, Some(1), "go1.{minor}");
        } else {
            assert_eq!(child.parent_goid, None);
        }
    }
}

#[test]
fn goroutine_panic_names_the_child_and_its_creator() {
    for &(minor, text) in GOROUTINE_PANIC {
        let dump = parse(text).unwrap_or_else(|e| panic!("go1.{minor}: {e}"));
        assert_eq!(
            dump.other_lines.first().map(String::as_str),
            Some("panic: fatal in goroutine")
        );
        let g = &dump.goroutines[0];
        assert_eq!(g.status, "running", "go1.{minor}");
        // The panicking goroutine's stack starts at the caller of gopanic.
        assert_eq!(g.functions(), ["main.panicChild"], "go1.{minor}");
        assert_eq!(
            g.created_by.as_ref().unwrap().function,
            "main.panicGoroutine"
        );
        assert_eq!(g.parent_goid, (minor >= 21).then_some(1));
        // Level 1 (GOTRACEBACK=all, user panic): no fp/sp/pc, no runtime frames except panic.
        assert!(g.frames.iter().all(|f| f.fp.is_none()));
        assert!(
            !g.functions().iter().any(|f| f.starts_with("runtime.")),
            "go1.{minor}"
        );
        assert!(dump.goroutines.iter().all(|g| g.gp.is_none()));
        // main is parked on a channel receive, hidden runtime frames and all.
        let main = dump.goroutine(1).expect("main goroutine");
        assert_eq!(main.status, "chan receive", "go1.{minor}");
        assert_eq!(
            main.functions(),
            ["main.panicGoroutine", "main.main"],
            "go1.{minor}"
        );
    }
}

#[test]
fn repanic_marker_changed_in_go125() {
    for &(minor, text) in REPANIC {
        let dump = parse(text).unwrap();
        let want: &[&str] = if minor >= 25 {
            &["panic: same [recovered, repanicked]"]
        } else {
            &["panic: same [recovered]", "\tpanic: same"]
        };
        assert_eq!(dump.other_lines, want, "go1.{minor}");
        let panics = dump.panics();
        assert_eq!(panics[0].value, "same");
        assert!(panics[0].recovered && !panics[0].nested);
        assert_eq!(panics[0].repanicked, minor >= 25);
        assert_eq!(panics.len(), if minor >= 25 { 1 } else { 2 });
        assert_eq!(
            dump.goroutines[0].functions(),
            [
                "main.panicRepanicSame.func1",
                "panic",
                "main.panicRepanicSame",
                "main.panicRepanicFatal",
                "main.main"
            ]
        );
        assert_eq!(dump.goroutines[0].frames[1].file, "runtime/panic.go");
    }
}

#[test]
fn nested_panic_lists_both_values() {
    for &(minor, text) in NESTED {
        let dump = parse(text).unwrap();
        assert_eq!(
            dump.other_lines,
            ["panic: first", "\tpanic: second"],
            "go1.{minor}"
        );
        assert_eq!(
            dump.goroutines[0].functions()[..3],
            ["main.panicInDefer", "panic", "main.panicNested"]
        );
    }
}

#[test]
fn deep_stacks_are_cut_differently_before_go121() {
    for &(minor, text) in DEEP {
        let dump = parse(text).unwrap();
        let g = &dump.goroutines[0];
        if minor >= 21 {
            // First 50 and last 50 frames, the middle elided.
            assert_eq!(
                g.elided,
                [Elision {
                    after: 50,
                    count: Some(53)
                }],
                "go1.{minor}"
            );
            assert_eq!(g.frames.len(), 100);
            assert_eq!(g.frames.last().unwrap().function, "main.main");
        } else {
            // Go 1.19 stops after 100 frames (the hidden runtime.gopanic counts) without
            // saying so.
            assert!(g.elided.is_empty());
            assert_eq!(g.frames.len(), 99);
            assert_eq!(g.frames.last().unwrap().function, "main.deep");
        }
    }
}

#[test]
fn header_variants() {
    let g = parse_header("goroutine 7 [chan receive, 3 minutes, locked to thread]:").unwrap();
    assert_eq!(
        (
            g.goid,
            g.status.as_str(),
            g.wait_minutes,
            g.locked_to_thread
        ),
        (7, "chan receive", Some(3), true)
    );
    let g = parse_header("goroutine 12 gp=0xc0000071e0 m=nil [GC worker (idle) (scan)]:").unwrap();
    assert_eq!(
        (g.gp, g.m, g.status.as_str(), g.scan),
        (Some(0xc000_0071e0), Some(None), "GC worker (idle)", true)
    );
    let g = parse_header("goroutine 0 gp=0x7a1 m=3 mp=0xc000100008 [idle]:").unwrap();
    assert_eq!(g.m, Some(Some(3)));
    let g = parse_header("goroutine 9 [select (leaked), synctest bubble 4] {a: b}:").unwrap();
    assert_eq!(
        (g.leaked, g.synctest, g.labels.as_deref()),
        (true, Some(4), Some("{a: b}"))
    );
    for bad in [
        "goroutine x [running]:",
        "goroutine 1 running:",
        "goroutine 1 [running, 3 hours]:",
        "goroutine 1 zz=1 [running]:",
        "goroutine 1 [running] junk:",
    ] {
        assert!(parse_header(bad).is_none(), "{bad}");
    }
}

#[test]
fn malformed_blocks_are_errors_not_panics() {
    let cases = [
        "goroutine 1 [running]:\nmain.main()\n",
        "goroutine 1 [running]:\nmain.main()\nmain.other()\n",
        "goroutine 1 [running]:\nmain.main()\n\tfile.go:x\n",
        "goroutine 1 [running]:\n\tfile.go:1\n",
        "goroutine 1 [running]:\ncreated by main.f in goroutine x\n\tf.go:1\n",
        "goroutine 1 [running]:\n...many frames elided...\n",
        "goroutine 1 [running:\n",
    ];
    for text in cases {
        assert!(parse(text).is_err(), "{text:?}");
    }
    // Truncated input in the middle of a frame is an error; one ending after a frame is fine.
    let ok = parse("goroutine 1 [running]:\nmain.main()\n\tf.go:3 +0x1").unwrap();
    assert_eq!(ok.goroutines[0].frames[0].pc_offset, Some(1));
}

#[test]
fn location_fields() {
    let f = parse_location("\t/a b/c.go:12 +0x1d fp=0x10 sp=0x8 pc=0x4").unwrap();
    assert_eq!(
        (f.file.as_str(), f.line, f.pc_offset, f.fp, f.sp, f.pc),
        ("/a b/c.go", 12, Some(0x1d), Some(0x10), Some(8), Some(4))
    );
    let f = parse_location("\tmain.go:7").unwrap();
    assert_eq!((f.file.as_str(), f.line, f.pc_offset), ("main.go", 7, None));
    assert!(parse_location("main.go:7").is_none());
    assert!(parse_location("\t:7").is_none());
}

#[test]
fn ancestors_are_parsed() {
    let text = "goroutine 5 [chan receive]:\nmain.f(...)\n\tm.go:3\n\
                [originating from goroutine 1]:\nmain.main(...)\n\tm.go:9 +0x2\n\
                created by main.x\n\tm.go:1 +0x3\n";
    let dump = parse(text).unwrap();
    let g = &dump.goroutines[0];
    assert_eq!(g.frames.len(), 1);
    assert_eq!(g.ancestors.len(), 1);
    assert_eq!(g.ancestors[0].goid, 1);
    assert_eq!(g.ancestors[0].frames[0].function, "main.main");
    assert_eq!(
        g.ancestors[0].created_by.as_ref().unwrap().function,
        "main.x"
    );
    assert!(g.created_by.is_none());
}

#[test]
fn level1_view_of_sigquit_dumps() {
    for &(minor, text) in BLOCKED {
        let dump = parse(text).unwrap();
        let user: Vec<u64> = dump.user_goroutines().map(|g| g.goid).collect();
        // Every user goroutine is main or runs main.* code, and all of those are user ones.
        for g in &dump.goroutines {
            let is_user = g.goid == 1 || g.frames.iter().any(|f| f.function.starts_with("main."));
            assert_eq!(
                user.contains(&g.goid),
                is_user,
                "go1.{minor} goroutine {}",
                g.goid
            );
        }
        for g in dump.with_frame("main.blockInlined") {
            let names: Vec<&str> = g
                .level1_frames()
                .iter()
                .map(|f| f.function.as_str())
                .collect();
            let wrapper = if minor >= 22 {
                "main.spawnInlined.gowrap1"
            } else {
                "main.spawnInlined.func1"
            };
            assert_eq!(
                names,
                [
                    "main.inlinedInner",
                    "main.inlinedMiddle",
                    "main.inlinedOuter",
                    "main.blockInlined",
                    wrapper
                ],
                "go1.{minor}"
            );
        }
        let main = dump.goroutine(1).unwrap();
        let names: Vec<&str> = main
            .level1_frames()
            .iter()
            .map(|f| f.function.as_str())
            .collect();
        assert_eq!(names.first(), Some(&"syscall.Syscall"), "go1.{minor}");
        assert_eq!(names.last(), Some(&"main.main"), "go1.{minor}");
    }
    // Level-1 dumps are left alone.
    for &(minor, text) in GOROUTINE_PANIC.iter().chain(REPANIC).chain(NESTED) {
        for g in &parse(text).unwrap().goroutines {
            let kept: Vec<&Frame> = g.level1_frames();
            assert_eq!(
                kept.len(),
                g.frames.len(),
                "go1.{minor} goroutine {}",
                g.goid
            );
        }
    }
}

#[test]
fn exported_runtime_names() {
    assert!(is_exported_runtime("runtime.Goexit"));
    assert!(is_exported_runtime("runtime.(*Func).Name"));
    assert!(!is_exported_runtime("runtime.(*mheap).alloc"));
    assert!(!is_exported_runtime("runtime.gopark"));
    assert!(!is_exported_runtime("main.Foo"));
}

#[test]
fn runtime_error_and_throw() {
    for &(minor, text) in NIL_DEREF {
        let dump = parse(text).unwrap();
        let panics = dump.panics();
        assert_eq!(panics.len(), 1);
        assert_eq!(
            panics[0].value,
            "runtime error: invalid memory address or nil pointer dereference"
        );
        assert!(
            dump.other_lines[1].starts_with("[signal SIGSEGV: segmentation violation"),
            "go1.{minor}"
        );
        // The faulting frame is the first shown (runtime.sigpanic is hidden at level 1).
        assert_eq!(
            dump.goroutines[0].functions(),
            ["main.panicNilDeref", "main.main"]
        );
    }
    for &(minor, text) in DEADLOCK {
        let dump = parse(text).unwrap();
        assert_eq!(
            dump.fatal_error(),
            Some("all goroutines are asleep - deadlock!")
        );
        assert!(dump.panics().is_empty());
        let g = &dump.goroutines[0];
        assert_eq!(
            (g.goid, g.status.as_str()),
            (1, "chan receive"),
            "go1.{minor}"
        );
        assert_eq!(g.functions(), ["main.deadlock", "main.main"]);
    }
}

#[test]
fn truncated_or_damaged_dumps_never_panic() {
    let head: String = BLOCKED[7]
        .1
        .lines()
        .take(200)
        .collect::<Vec<_>>()
        .join("\n");
    for text in [&head, DEEP[0].1, REPANIC[7].1, GOROUTINE_PANIC[0].1] {
        let lines: Vec<&str> = text.lines().collect();
        for cut in 0..lines.len() {
            // Every prefix, and the whole dump with one line missing.
            let _ = parse(&lines[..cut].join("\n"));
            let mut damaged = lines.clone();
            damaged.remove(cut);
            let _ = parse(&damaged.join("\n"));
        }
        // Every byte-level prefix of the first 2 KiB (cuts inside lines and numbers).
        for cut in (0..text.len().min(2048)).filter(|&c| text.is_char_boundary(c)) {
            let _ = parse(&text[..cut]);
        }
    }
}

#[test]
fn real_ancestor_sections() {
    let samples = [
        (
            19,
            include_str!("../../testdata/dumps/blocked-ancestors-go1.19.txt"),
        ),
        (
            27,
            include_str!("../../testdata/dumps/blocked-ancestors-go1.27.txt"),
        ),
    ];
    for (minor, text) in samples {
        let dump = parse(text).unwrap_or_else(|e| panic!("go1.{minor}: {e}"));
        let child = blocked_in(&dump, "main.chainChild")[0];
        let parent = blocked_in(&dump, "main.chainParent")[0];
        // tracebackancestors=2: the child's creator (chainParent's goroutine), then main.
        let goids: Vec<u64> = child.ancestors.iter().map(|a| a.goid).collect();
        assert_eq!(goids, [parent.goid, 1], "go1.{minor}");
        let first = &child.ancestors[0];
        assert!(
            first
                .frames
                .iter()
                .any(|f| f.function == "main.chainParent"),
            "go1.{minor}"
        );
        // Ancestor frames are all printed as `f(...)` with an offset: not inlined.
        assert!(first.frames.iter().all(|f| !f.inlined && f.args == "..."));
        assert_eq!(
            first.created_by.as_ref().unwrap().function,
            "main.spawnChain"
        );
        // The goroutine's own creation site is still its own.
        assert_eq!(
            child.created_by.as_ref().unwrap().function,
            "main.chainParent"
        );
        assert_eq!(child.frames.last().unwrap().function, "runtime.goexit");
    }
}
