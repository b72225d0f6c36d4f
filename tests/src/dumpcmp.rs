//! Comparing gtrace's goroutine dumps with the Go runtime's own (`SIGQUIT` with
//! `GOTRACEBACK=all`), field by field: goroutine ids, status, creator and parent, every frame's
//! function, file, line and inlined flag, and elisions. Shared by the fixture dump tests
//! (`tests/dump.rs`) and the tests on real programs (`tests/realworld.rs`).
//!
//! A signal dump is printed at traceback level 2 (runtime goroutines and frames included);
//! [`level1`] filters it down to what `gtrace dump` shows by default, with rules written
//! independently of gtrace's code from the runtime's `traceback.go`.

use std::collections::BTreeSet;

use tracer_user::{gobin::GoBinary, goroutines::Goroutine, output::traceback::write_goroutine};

use crate::traceback::{self, Dump};

/// Our goroutines rendered as Go text and parsed back by the harness's Go-dump parser.
pub fn as_go_dump(gs: &[Goroutine], minor: u32) -> Dump {
    let mut text = Vec::new();
    for g in gs {
        write_goroutine(&mut text, g, minor).unwrap();
    }
    let text = String::from_utf8(text).unwrap();
    let mut dump = traceback::parse(&text)
        .unwrap_or_else(|e| panic!("our text does not parse as a Go dump: {e}\n{text}"));
    // A non-inlined frame whose arguments we could not read prints `(...)` too (with an
    // offset, unless at the entry): take the flag from our records (same order).
    assert_eq!(
        dump.goroutines.len(),
        gs.len(),
        "goroutine count after parsing our text"
    );
    for (parsed, ours) in dump.goroutines.iter_mut().zip(gs) {
        let flags: Vec<bool> = ours
            .stack
            .frames
            .iter()
            .chain(&ours.stack.tail)
            .map(|f| f.src.inlined)
            .collect();
        assert_eq!(
            parsed.frames.len(),
            flags.len(),
            "g{}: frame count after parsing our text",
            ours.goid
        );
        for (f, inl) in parsed.frames.iter_mut().zip(flags) {
            f.inlined = inl;
        }
    }
    dump
}

/// `showfuncinfo` at level 1, written independently of gtrace's code from
/// runtime/traceback.go, to filter the level-2 ground truth down to `GOTRACEBACK=all`.
/// `wrapper` says whether the binary's pclntab marks the function `abi.FuncIDWrapper` (the
/// text cannot: `go` statement wrappers, promoted-method wrappers).
pub fn shown_at_level1(name: &str, first: bool, wrapper: bool) -> bool {
    if wrapper {
        return false;
    }
    if name == "panic" {
        return !first;
    }
    let Some(rest) = name.strip_prefix("runtime.") else {
        return name.contains('.');
    };
    let (rcvr, f) = rest.rsplit_once('.').unwrap_or(("", rest));
    let rcvr = rcvr.trim_start_matches("(*").trim_end_matches(')');
    let up = |s: &str| s.chars().next().is_some_and(|c| c.is_ascii_uppercase());
    up(f) && (rcvr.is_empty() || up(rcvr))
}

/// `abi.FuncIDWrapper` is the last `FuncID` of each release (internal/abi/symtab.go,
/// runtime/symtab.go in 1.19).
fn wrapper_id(minor: u32) -> u8 {
    match minor {
        ..=21 => 21,
        22..=24 => 22,
        _ => 23,
    }
}

/// A predicate "is this (non-inlined) frame's function a compiler wrapper", from the binary's
/// pclntab: `(function name, runtime PC if the dump printed one)`. By PC when known (level-2
/// dumps print `pc=`; `bias` is the load bias of a PIE), else by name. A name alone is
/// ambiguous: an ABI wrapper has the name of the function it wraps. Seen in Debian's Go 1.19
/// `node_exporter`: `syscall.Syscall6` is linknamed from the runtime, and the ABI0 wrapper the
/// compiler generates for it is marked wrapper while the function itself, the first frame of
/// every goroutine in a syscall, is not.
pub fn wrappers(
    bin: &std::path::Path,
    minor: u32,
    bias: u64,
) -> impl Fn(&str, Option<u64>) -> bool {
    let gb = GoBinary::open(bin).expect("open the Go binary");
    let id = wrapper_id(minor);
    let mut names = std::collections::HashSet::new();
    let tab = gb.pclntab();
    let mut funcs: Vec<(u64, u64, bool)> = Vec::new();
    for f in tab.funcs().filter_map(Result::ok) {
        let wrapper = f.func_id == id;
        funcs.push((f.entry, f.end, wrapper));
        if wrapper && let Ok(n) = tab.name(&f) {
            names.insert(n.into_owned());
        }
    }
    funcs.sort_unstable();
    move |name: &str, pc: Option<u64>| {
        // The runtime looks up a frame's function by the frame's PC itself (findfunc(pc)).
        let by_pc = pc.map(|pc| pc.wrapping_sub(bias)).and_then(|pc| {
            let i = funcs.partition_point(|f| f.0 <= pc).checked_sub(1)?;
            let (_, end, wrapper) = funcs[i];
            (pc < end).then_some(wrapper)
        });
        by_pc.unwrap_or_else(|| names.contains(name))
    }
}

/// A runtime goroutine by `isSystemGoroutine`'s rule, judged from Go's own dump: its start
/// function (outermost frame before `runtime.goexit`) is a `runtime.` function other than
/// `runtime.main`. A goroutine running on another thread has no frames in the dump ("stack
/// unavailable"): it is judged by its creator instead (seen in Debian's etcd under load: a GC
/// mark worker, created by `runtime.gcBgMarkStartWorkers`, caught marking). The one runtime
/// goroutine that can count as a user one, the finalizer goroutine while it runs a finalizer,
/// would be misjudged then.
pub fn is_system(g: &traceback::Goroutine) -> bool {
    let start = g
        .frames
        .iter()
        .rev()
        .find(|f| !f.function.starts_with("runtime.goexit"));
    match start {
        Some(f) => f.function.starts_with("runtime.") && f.function != "runtime.main",
        None => g
            .created_by
            .as_ref()
            .is_some_and(|c| c.function.starts_with("runtime.")),
    }
}

/// Go's level-2 dump filtered to the level-1 view (`GOTRACEBACK=all`): user goroutines only,
/// frames [`shown_at_level1`]; `is_wrapper` from [`wrappers`].
pub fn level1(go: &Dump, is_wrapper: &dyn Fn(&str, Option<u64>) -> bool) -> Dump {
    let mut out = go.clone();
    out.goroutines.retain(|g| !is_system(g));
    for g in &mut out.goroutines {
        let mut kept = Vec::new();
        for f in &g.frames {
            if shown_at_level1(
                &f.function,
                kept.is_empty(),
                !f.inlined && is_wrapper(&f.function, f.pc),
            ) {
                kept.push(f.clone());
            }
        }
        if !kept.is_empty() {
            g.frames = kept;
        }
        if g.created_by
            .as_ref()
            .is_some_and(|c| !shown_at_level1(&c.function, false, is_wrapper(&c.function, None)))
        {
            g.created_by = None;
            g.parent_goid = None;
        }
    }
    out
}

/// Every difference between our parsed dump and Go's, as readable lines.
pub fn compare(ours: &Dump, go: &Dump) -> Vec<String> {
    let mut diffs = Vec::new();
    // goroutine 0 is the g0 that handled SIGQUIT: not a goroutine of the list.
    let go_ids: BTreeSet<u64> = go
        .goroutines
        .iter()
        .map(|g| g.goid)
        .filter(|&id| id != 0)
        .collect();
    let our_ids: BTreeSet<u64> = ours.goroutines.iter().map(|g| g.goid).collect();
    if go_ids != our_ids {
        // What the missing ones are: status, outermost frame, creator.
        let describe = |d: &Dump, id: u64| {
            d.goroutine(id).map_or_else(String::new, |g| {
                format!(
                    "g{id} [{}] {:?} created by {:?}",
                    g.status,
                    g.frames.last().map(|f| &f.function),
                    g.created_by.as_ref().map(|c| &c.function)
                )
            })
        };
        diffs.push(format!(
            "goroutine ids differ: only Go {:?}, only gtrace {:?}",
            go_ids
                .difference(&our_ids)
                .map(|&id| describe(go, id))
                .collect::<Vec<_>>(),
            our_ids
                .difference(&go_ids)
                .map(|&id| describe(ours, id))
                .collect::<Vec<_>>()
        ));
    }
    for g in &go.goroutines {
        let Some(o) = ours.goroutine(g.goid) else {
            continue;
        };
        let id = g.goid;
        if o.status != g.status {
            diffs.push(format!("g{id}: status {:?} vs Go {:?}", o.status, g.status));
        }
        let cb =
            |x: &traceback::Goroutine| x.created_by.as_ref().map(|c| (c.function.clone(), c.line));
        if cb(o) != cb(g) || o.parent_goid != g.parent_goid {
            diffs.push(format!(
                "g{id}: created by {:?} in {:?} vs Go {:?} in {:?}",
                cb(o),
                o.parent_goid,
                cb(g),
                g.parent_goid
            ));
        }
        if g.stack_unavailable || g.status == "running" || o.stack_unavailable {
            continue;
        }
        let fr = |x: &traceback::Goroutine| -> Vec<(String, String, u32, bool)> {
            x.frames
                .iter()
                .map(|f| (f.function.clone(), f.file.clone(), f.line, f.inlined))
                .collect()
        };
        if fr(o) != fr(g) {
            diffs.push(format!(
                "g{id} [{}]: frames\n  gtrace {:#?}\n  Go     {:#?}",
                g.status,
                fr(o),
                fr(g)
            ));
        }
        // Arguments, as printArgs prints them from the same stack words: only once the
        // frames agree (a frame list that differs is reported above).
        if fr(o) == fr(g) {
            for (k, (of, gf)) in o.frames.iter().zip(&g.frames).enumerate() {
                if !gf.inlined && of.args != gf.args {
                    diffs.push(format!(
                        "g{id} [{}]: frame {k} {}: args ({}) vs Go ({})",
                        g.status, gf.function, of.args, gf.args
                    ));
                }
            }
        }
        if o.elided.iter().map(|e| e.count).collect::<Vec<_>>()
            != g.elided.iter().map(|e| e.count).collect::<Vec<_>>()
        {
            diffs.push(format!(
                "g{id}: elision {:?} vs Go {:?}",
                o.elided, g.elided
            ));
        }
    }
    diffs
}
