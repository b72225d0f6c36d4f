//! gtrace's Go binary reader against Go's own answers, for every toolchain × variant:
//! `go tool addr2line` of the same toolchain for function entries and ≥1000 PCs inside
//! functions, `runtime.CallersFrames` (the `inline` fixture) for inline expansion, `go version
//! -m` for build info; plus stripped-vs-default function tables, binaries without section
//! headers, and probe sites of every probed runtime function. Needs the Go toolchains
//! (`cargo xtask go-toolchains`); no root.

use std::{
    collections::BTreeMap,
    io::Write as _,
    path::{Path, PathBuf},
    process::Stdio,
};

use gtrace_tests::{
    fixture::{self, Variant},
    go::{self, Toolchain},
    process::Spawned,
};
use tracer_user::gobin::{
    GoBinary,
    pclntab::name_for_print,
    probesite::{self, SiteReason},
};

fn matrix() -> Vec<(Toolchain, Variant)> {
    fixture::matrix()
        .unwrap_or_else(|e| panic!("{e:#}"))
        .collect()
}

fn build(name: &str, tc: &Toolchain, v: Variant) -> PathBuf {
    fixture::build(name, tc, v).unwrap_or_else(|e| panic!("{e:#}"))
}

fn open(path: &Path) -> GoBinary {
    GoBinary::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs `go tool addr2line` of `tc` on `pcs`: (function, `file:line`) per PC.
fn addr2line(tc: &Toolchain, bin: &Path, pcs: &[u64]) -> Vec<(String, String)> {
    let mut cmd = tc.command();
    cmd.args(["tool", "addr2line"]).arg(bin);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("go tool addr2line starts");
    let input = pcs.iter().fold(String::new(), |mut s, pc| {
        use std::fmt::Write as _;
        let _ = writeln!(s, "{pc:#x}");
        s
    });
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "addr2line: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        2 * pcs.len(),
        "addr2line printed {} lines for {} pcs",
        lines.len(),
        pcs.len()
    );
    lines
        .chunks(2)
        .map(|c| (c[0].to_owned(), c[1].to_owned()))
        .collect()
}

/// Function entries plus a deterministic sample of ≥1000 PCs inside functions.
fn sample_pcs(bin: &GoBinary) -> Vec<u64> {
    let funcs = bin.functions().unwrap();
    let mut pcs: Vec<u64> = funcs.iter().map(|f| f.entry).collect();
    let mut k: u64 = 0;
    while pcs.len() < funcs.len() + 1200 {
        let f = &funcs[(k as usize * 7) % funcs.len()];
        k += 1;
        let size = f.end - f.entry;
        if size > 1 {
            pcs.push(f.entry + 1 + (k * 7919) % (size - 1));
        }
    }
    pcs
}

/// Every entry PC and ≥1000 inner PCs symbolize like `go tool addr2line`: its function is the
/// outermost (physical) frame, its `file:line` the innermost position (addr2line does not
/// expand inlining but reads the pc-line table, which holds the innermost position).
#[test]
fn pcs_match_go_tool_addr2line() {
    for (tc, v) in matrix() {
        let path = build("inline", &tc, v);
        let bin = open(&path);
        let pcs = sample_pcs(&bin);
        assert!(pcs.len() > 1000);
        // Go 1.19's addr2line ignores the PIE relocation of the pclntab text start and
        // answers `?` for everything; a newer one reads 1.19 tables correctly.
        let tool = if v == Variant::Pie && !tc.at_least(1, 21) {
            go::newest().unwrap()
        } else {
            tc.clone()
        };
        let want = addr2line(&tool, &path, &pcs);
        // The batch path (decoded tables per function, address order) answers in input order
        // exactly as one call per PC does.
        let batch = bin.symbolize_many(&pcs);
        let mut mismatches = Vec::new();
        for ((pc, (wfunc, wpos)), batched) in pcs.iter().zip(&want).zip(batch) {
            let frames = bin
                .symbolize(*pc)
                .unwrap_or_else(|e| panic!("{tc} {v} {pc:#x}: {e}"));
            assert_eq!(
                batched.as_ref().ok(),
                Some(&frames),
                "{tc} {v} {pc:#x}: symbolize_many differs"
            );
            let inner = &frames[0];
            let outer = frames.last().unwrap();
            let pos = format!("{}:{}", inner.file, inner.line);
            // addr2line prints `:-1` where the tables have no position (padding after a
            // function's last instruction); gtrace says `?:0` like the runtime's funcline.
            let wpos = if wpos == ":-1" { "?:0" } else { wpos.as_str() };
            if &outer.function != wfunc || pos != wpos {
                mismatches.push(format!(
                    "{pc:#x}: gtrace {} {pos} / addr2line {wfunc} {wpos}",
                    outer.function
                ));
            }
        }
        assert!(
            mismatches.is_empty(),
            "{tc} {v}: {} of {} differ:\n{}",
            mismatches.len(),
            pcs.len(),
            mismatches[..mismatches.len().min(20)].join("\n")
        );
    }
}

/// The load bias of a running PIE: where the file's offset 0 is mapped minus its link address.
fn load_bias(pid: u32, bin: &GoBinary) -> u64 {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    let start = maps
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 6
                && Path::new(f[5]) == exe
                && u64::from_str_radix(f[2], 16).ok() == Some(0))
            .then(|| u64::from_str_radix(f[0].split('-').next()?, 16).ok())
            .flatten()
        })
        .expect("the executable's offset-0 mapping");
    let seg = bin
        .image()
        .segments()
        .iter()
        .min_by_key(|s| s.offset)
        .unwrap();
    start - (seg.vaddr - seg.offset)
}

/// The `inline` fixture prints `runtime.CallersFrames` for physical return PCs of stacks that
/// run through inlined calls; gtrace's expansion of pc-1 equals it frame for frame. The binary
/// is opened through `/proc/PID/exe`.
#[test]
fn inline_expansion_matches_callers_frames() {
    for (tc, v) in matrix() {
        let path = build("inline", &tc, v);
        let mut p = Spawned::spawn(&path, &[] as &[&str], &[] as &[(&str, &str)]).unwrap();
        let lines = p.wait_ready().unwrap();
        let bin = GoBinary::open_pid(p.pid()).unwrap();
        let bias = if v == Variant::Pie {
            load_bias(p.pid(), &bin)
        } else {
            0
        };
        let mut records = 0;
        let mut inlined = 0;
        for line in lines.iter().filter(|l| l.starts_with('{')) {
            let rec: serde_json::Value = serde_json::from_str(line).unwrap();
            let pc = u64::from_str_radix(rec["pc"].as_str().unwrap().trim_start_matches("0x"), 16)
                .unwrap();
            let want: Vec<(String, String, u64, bool)> = rec["frames"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    (
                        f["function"].as_str().unwrap().to_owned(),
                        f["file"].as_str().unwrap().to_owned(),
                        f["line"].as_u64().unwrap(),
                        f["inlined"].as_bool().unwrap(),
                    )
                })
                .collect();
            // Since 1.21 CallersFrames shows generic shapes as `[...]`.
            let shown = |name: String| {
                if tc.at_least(1, 21) {
                    name_for_print(&name)
                } else {
                    name
                }
            };
            let one = bin.symbolize(pc - bias - 1);
            let many = bin.symbolize_many(&[pc - bias - 1, pc - bias - 1]);
            for m in many {
                assert_eq!(
                    m.as_ref().ok(),
                    one.as_ref().ok(),
                    "{tc} {v} {line}: symbolize_many"
                );
            }
            let got: Vec<(String, String, u64, bool)> = one
                .unwrap_or_else(|e| panic!("{tc} {v} {line}: {e}"))
                .into_iter()
                .map(|f| (shown(f.function), f.file, u64::from(f.line), f.inlined))
                .collect();
            assert_eq!(got, want, "{tc} {v}: {line}");
            records += 1;
            inlined += want.iter().filter(|f| f.3).count();
        }
        assert!(
            records >= 5 && inlined >= 5,
            "{tc} {v}: only {records} records / {inlined} inlined frames"
        );
    }
}

/// `-ldflags=-s -w` removes symbols and DWARF but not the pclntab: same functions, same
/// addresses, same build info.
#[test]
fn stripped_and_default_have_identical_function_tables() {
    for tc in go::all().unwrap() {
        let a = open(&build("inline", &tc, Variant::Default));
        let b = open(&build("inline", &tc, Variant::Stripped));
        assert_eq!(a.functions().unwrap(), b.functions().unwrap(), "{tc}");
        assert!(
            a.symbol_sources().symtab && a.symbol_sources().dwarf,
            "{tc}"
        );
        assert!(
            !b.symbol_sources().symtab && !b.symbol_sources().dwarf,
            "{tc}"
        );
        assert!(
            a.data_symbol("runtime.allgs").is_some() && b.data_symbol("runtime.allgs").is_none(),
            "{tc}"
        );
        let (ai, bi) = (a.build_info().unwrap(), b.build_info().unwrap());
        assert_eq!(
            (&ai.go_version, &ai.path),
            (&bi.go_version, &bi.path),
            "{tc}"
        );
        assert_eq!(bi.setting("-ldflags"), Some("-s -w"), "{tc}");
    }
}

/// With the section headers wiped (some packers and hand-stripped binaries), the pclntab,
/// moduledata and build info are found by scanning the segments, with identical results.
#[test]
fn binaries_without_section_headers() {
    for (tc, v) in matrix()
        .into_iter()
        .filter(|(_, v)| matches!(v, Variant::Stripped | Variant::Pie))
    {
        let path = build("inline", &tc, v);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[0x28..0x30].fill(0); // e_shoff
        bytes[0x3c..0x40].fill(0); // e_shnum, e_shstrndx
        let with = open(&path);
        let without = GoBinary::from_bytes(bytes).unwrap_or_else(|e| panic!("{tc} {v}: {e}"));
        assert_eq!(without.symbol_sources().pclntab, "scan", "{tc} {v}");
        assert_eq!(
            with.functions().unwrap(),
            without.functions().unwrap(),
            "{tc} {v}"
        );
        assert_eq!(with.build_info(), without.build_info(), "{tc} {v}");
        let f = with.func_by_name("main.chain").unwrap();
        assert_eq!(
            with.symbolize(f.entry + 4).unwrap(),
            without.symbolize(f.entry + 4).unwrap(),
            "{tc} {v}"
        );
    }
}

/// Version, path, main module and every `build` setting equal `go version -m`.
#[test]
fn build_info_matches_go_version_m() {
    for (tc, v) in matrix() {
        let path = build("inline", &tc, v);
        let bin = open(&path);
        let out = tc
            .command()
            .args(["version", "-m"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let info = bin.build_info().expect("build info");
        assert_eq!(info.go_version, format!("go{}", tc.version), "{tc} {v}");
        assert_eq!(
            bin.version().map(ToString::to_string),
            Some(format!("go{}", tc.version))
        );
        let mut want = BTreeMap::new();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.trim_start().split('\t').collect();
            match f[0] {
                "path" => assert_eq!(info.path.as_deref(), Some(f[1]), "{tc} {v}"),
                "mod" => assert_eq!(
                    info.main.as_ref().map(|m| m.path.as_str()),
                    Some(f[1]),
                    "{tc} {v}"
                ),
                "build" => {
                    let (k, val) = f[1].split_once('=').unwrap();
                    want.insert(
                        k.trim_matches('"').to_owned(),
                        val.trim_matches('"').to_owned(),
                    );
                }
                _ => {}
            }
        }
        let got: BTreeMap<String, String> = info.settings.iter().cloned().collect();
        assert_eq!(got, want, "{tc} {v}");
        assert_eq!(info.trimpath(), v == Variant::Trimpath, "{tc} {v}");
        assert_eq!(info.goarch(), Some("amd64"));
        assert_eq!(info.cgo_enabled(), Some(false));
    }
}

/// Functions gtrace must be able to probe in every supported version.
const CORE_PROBES: &[&str] = &[
    "runtime.newproc1",
    "runtime.gopark",
    "runtime.ready",
    "runtime.execute",
    "runtime.goexit0",
    "runtime.gopanic",
    "runtime.park_m",
    "runtime.stopTheWorldWithSema",
];

/// A probe site is found for every probed runtime function present, after the stack check:
/// `push rbp` (emulated) on 1.21+, Go 1.19's `sub rsp, N` (single-stepped) otherwise. The file
/// offset holds the same bytes as the address, and RETs are found.
#[test]
fn probe_sites_for_all_probed_functions() {
    for (tc, v) in matrix() {
        let bin = open(&build("inline", &tc, v));
        for name in CORE_PROBES {
            assert!(bin.func_by_name(name).is_ok(), "{tc} {v}: {name} missing");
        }
        for name in probesite::PROBED_FUNCTIONS
            .iter()
            .filter(|n| bin.func_by_name(n).is_ok())
        {
            let s = probesite::probe_site(&bin, name)
                .unwrap_or_else(|e| panic!("{tc} {v} {name}: {e}"));
            let what = format!("{tc} {v} {name}: {s:?}");
            let file = &bin.image().bytes()[s.offset as usize..][..4];
            assert_eq!(file, bin.read_vaddr(s.vaddr, 4).unwrap(), "{what}");
            if s.reason == SiteReason::NoStackCheck {
                assert_eq!(s.vaddr, s.entry, "{what}");
                continue;
            }
            if tc.at_least(1, 21) {
                assert_eq!(
                    (s.instruction.as_str(), s.emulated),
                    ("push rbp", true),
                    "{what}"
                );
            } else {
                // Go 1.19 allocates the frame with `sub rsp, N`, or `add rsp, -0x80` when N is
                // 128 (a shorter encoding; e.g. runtime.gcStart).
                assert!(
                    (s.instruction.starts_with("sub rsp,")
                        || s.instruction.starts_with("add rsp,"))
                        && !s.emulated,
                    "{what}"
                );
            }
        }
        for name in CORE_PROBES {
            assert!(
                probesite::probe_site(&bin, name).unwrap().reason == SiteReason::AfterStackCheck,
                "{tc} {v} {name}"
            );
        }
        let rets = probesite::ret_sites(&bin, "runtime.gopark").unwrap();
        assert!(!rets.is_empty(), "{tc} {v}");
        for r in rets {
            assert_eq!(bin.read_vaddr(r.vaddr, 1).unwrap(), [0xc3], "{tc} {v}");
        }
    }
}

/// `gtrace inspect`'s report: symbol sources per variant, core probe sites present, JSON
/// round-trips.
#[test]
fn inspect_report_per_variant() {
    for tc in [go::by_version("1.19").unwrap(), go::newest().unwrap()] {
        for v in Variant::ALL {
            let bin = open(&build("inline", &tc, v));
            let r =
                tracer_user::gobin::inspect::Report::new(&bin, &["main.chain".to_owned()], None);
            assert_eq!(r.symbols.symtab, v.has_symbols(), "{tc} {v}");
            assert_eq!(r.pie, v == Variant::Pie, "{tc} {v}");
            assert_eq!(
                r.go_version.as_deref(),
                Some(format!("go{}", tc.version).as_str())
            );
            let sites: Vec<_> = r
                .probe_sites
                .iter()
                .filter(|e| e.site.is_some())
                .map(|e| e.function.as_str())
                .collect();
            for f in CORE_PROBES.iter().chain(&["main.chain"]) {
                assert!(sites.contains(f), "{tc} {v}: {f} missing in {sites:?}");
            }
            let allgs = r
                .data_symbols
                .iter()
                .find(|d| d.name == "runtime.allgs")
                .unwrap();
            assert_eq!(allgs.found.is_some(), v.has_symbols(), "{tc} {v}");
            let json: serde_json::Value = serde_json::to_value(&r).unwrap();
            assert_eq!(json["symbols"]["symtab"], v.has_symbols());
            assert!(r.to_text().contains("runtime.gopark"));
        }
    }
}

/// `/proc/PID/exe` still reads a binary that was deleted after start, and
/// `/proc/PID/root/<path>` reads it through the process's mount namespace.
#[test]
fn open_pid_survives_deleted_binary() {
    let tc = go::newest().unwrap();
    let original = build("inline", &tc, Variant::Stripped);
    let dir = std::env::temp_dir().join(format!("gtrace-gobin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("inline");
    std::fs::copy(&original, &copy).unwrap();
    let mut p = Spawned::spawn(&copy, &[] as &[&str], &[] as &[(&str, &str)]).unwrap();
    p.wait_ready().unwrap();
    let by_root = GoBinary::open_in_root(p.pid(), &copy).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let by_pid = GoBinary::open_pid(p.pid()).unwrap();
    let want = open(&original).functions().unwrap();
    assert_eq!(by_pid.functions().unwrap(), want);
    assert_eq!(by_root.functions().unwrap(), want);
    assert!(GoBinary::open(&copy).is_err());
}

/// With the build info destroyed (so the version, and with it the moduledata layout, is
/// unknown) the funcdata base is recovered by trying each known layout, and inline expansion
/// is unchanged.
#[test]
fn inline_trees_without_a_known_version() {
    for (tc, v) in matrix()
        .into_iter()
        .filter(|(_, v)| *v == Variant::Stripped)
    {
        let path = build("inline", &tc, v);
        let mut bytes = std::fs::read(&path).unwrap();
        let magic = b"\xff Go buildinf:";
        let at = bytes.windows(magic.len()).position(|w| w == magic).unwrap();
        bytes[at] = 0;
        let damaged = GoBinary::from_bytes(bytes).unwrap();
        assert!(damaged.version().is_none(), "{tc}");
        assert!(
            damaged.symbol_sources().inline_trees,
            "{tc}: funcdata base not recovered"
        );
        let good = open(&path);
        assert_eq!(
            damaged.pclntab().layout().gofunc,
            good.pclntab().layout().gofunc,
            "{tc}"
        );
        for f in good.functions().unwrap().iter().step_by(3) {
            let pc = f.entry + (f.end - f.entry) / 2;
            assert_eq!(
                damaged.symbolize(pc).unwrap(),
                good.symbolize(pc).unwrap(),
                "{tc} {}",
                f.name
            );
        }
    }
}

/// The `gtrace` binary of this build.
fn gtrace() -> PathBuf {
    gtrace_tests::gtrace::bin()
}

/// `gtrace symbolize` reads PCs on stdin, symbolizes them in one batch (in address order) and
/// prints them in input order, exactly as the library answers them one at a time — an
/// unknown PC and repeated PCs included, enough of them to be split over threads.
#[test]
fn symbolize_cli_answers_in_input_order() {
    use std::fmt::Write as _;
    let tc = go::newest().unwrap();
    let path = build("inline", &tc, Variant::Default);
    let bin = open(&path);
    let mut pcs = sample_pcs(&bin);
    pcs.reverse();
    pcs.insert(pcs.len() / 2, 1);
    // Enough PCs that it splits them over threads (by address range, with 2+ cores), each
    // PC several times in different places.
    let once = pcs.clone();
    while pcs.len() < 20_000 {
        let at = pcs.len() / 3;
        pcs.splice(at..at, once.iter().copied());
    }
    let input = pcs.iter().fold(String::new(), |mut s, pc| {
        let _ = writeln!(s, "{pc:#x}");
        s
    });
    let mut child = std::process::Command::new(gtrace())
        .args(["symbolize", "-b"])
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success());
    let mut want = String::new();
    for pc in &pcs {
        match bin.symbolize(*pc) {
            Ok(frames) => {
                for f in frames {
                    let inlined = if f.inlined { "\t(inlined)" } else { "" };
                    let _ = writeln!(
                        want,
                        "{pc:#x}\t{}\t{}:{}{inlined}",
                        f.function, f.file, f.line
                    );
                }
            }
            Err(e) => {
                let _ = writeln!(want, "{pc:#x}\t?\t({e})");
            }
        }
    }
    assert_eq!(String::from_utf8(out.stdout).unwrap(), want);
}

/// A program that links the FIPS module (and with it the linker's `go:textfipsstart`
/// marker, Go 1.24+) and prints, for each PC given as a hex argument, what the runtime says:
/// `runtime.FuncForPC`'s name and `FileLine`, and `runtime.CallersFrames`' frame for it as a
/// return address (pc+1).
const RUNTIME_SYMBOLIZER: &str = r#"package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"runtime"
	"strconv"
)

func main() {
	_ = sha256.Sum256([]byte(os.Args[0]))
	for _, a := range os.Args[1:] {
		pc, err := strconv.ParseUint(a, 0, 64)
		if err != nil {
			panic(err)
		}
		f := runtime.FuncForPC(uintptr(pc))
		file, line := f.FileLine(uintptr(pc))
		fr, _ := runtime.CallersFrames([]uintptr{uintptr(pc) + 1}).Next()
		fmt.Printf("%s\t%s:%d\t%s\t%s:%d\n", f.Name(), file, line, fr.Function, fr.File, fr.Line)
	}
}
"#;

/// Functions without a pc-line table (offset 0: the linker's `go:textfipsstart` marker and
/// the padding up to the next function) are at `?:0` for the runtime (`pcvalue` answers -1
/// for offset 0), and so for gtrace. `go tool addr2line` names the same function but its
/// `debug/gosym` decodes offset 0 as a table (from the pc-value data's padding byte) and
/// invents positions: the 5 PCs where `cargo xtask bench gobin` found the two disagreeing
/// were all in `go:textfipsstart` of the toolchain's `compile`.
#[test]
fn functions_without_line_tables_match_the_runtime() {
    let mut checked = 0;
    for tc in go::all()
        .unwrap()
        .into_iter()
        .filter(|tc| tc.at_least(1, 24))
    {
        let dir = std::env::temp_dir().join(format!(
            "gtrace-notable-{}-{}",
            tc.version,
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("main.go"), RUNTIME_SYMBOLIZER).unwrap();
        std::fs::write(dir.join("go.mod"), "module notable\n\ngo 1.21\n").unwrap();
        let path = dir.join("notable");
        let out = tc
            .command()
            .args(["build", "-o"])
            .arg(&path)
            .arg(".")
            .env("CGO_ENABLED", "0")
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{tc}: go build: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bin = open(&path);
        let marker = bin
            .func_by_name("go:textfipsstart")
            .unwrap_or_else(|e| panic!("{tc}: {e}"));
        assert_eq!(
            bin.has_line_table(marker.entry).unwrap(),
            Some(false),
            "{tc}"
        );
        // Every PC of the marker and the first of the next function (which has a table).
        let pcs: Vec<u64> = (marker.entry..=marker.end).collect();
        assert!(pcs.len() > 2, "{tc}: {marker:?}");
        assert_eq!(bin.has_line_table(marker.end).unwrap(), Some(true), "{tc}");
        let out = std::process::Command::new(&path)
            .args(pcs.iter().map(|pc| format!("{pc:#x}")))
            .output()
            .unwrap();
        assert!(out.status.success(), "{tc}: {path:?} failed");
        let runtime = String::from_utf8(out.stdout).unwrap();
        let runtime: Vec<Vec<&str>> = runtime.lines().map(|l| l.split('\t').collect()).collect();
        let a2l = addr2line(&tc, &path, &pcs);
        let mut invented = 0;
        for ((pc, want), (a_func, a_pos)) in pcs.iter().zip(&runtime).zip(&a2l) {
            let frames = bin
                .symbolize(*pc)
                .unwrap_or_else(|e| panic!("{tc} {pc:#x}: {e}"));
            let got = [
                frames[0].function.as_str(),
                &format!("{}:{}", frames[0].file, frames[0].line),
            ];
            assert_eq!(frames.len(), 1, "{tc} {pc:#x}: {frames:?}");
            assert_eq!(got, want[..2], "{tc} {pc:#x}: FuncForPC");
            if pc + 1 < marker.end || *pc == marker.end {
                assert_eq!(got, want[2..4], "{tc} {pc:#x}: CallersFrames");
            }
            assert_eq!(a_func, got[0], "{tc} {pc:#x}: addr2line's function");
            if *pc < marker.end {
                assert_eq!(got[1], "?:0", "{tc} {pc:#x}");
                invented += usize::from(a_pos != ":-1");
            } else {
                assert_eq!(a_pos, got[1], "{tc} {pc:#x}: addr2line");
            }
        }
        // The quirk this test documents: addr2line does not answer "no position" there.
        assert!(invented > 0, "{tc}: addr2line no longer invents positions");
        checked += 1;
        std::fs::remove_dir_all(&dir).unwrap();
    }
    assert!(checked > 0, "no Go 1.24+ toolchain");
}
