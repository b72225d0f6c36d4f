//! Runtime layouts and wait-reason tables against every installed Go toolchain.
//!
//! - The committed tables are what `cargo xtask gen-offsets` produces now (drift check).
//! - DWARF of real programs (default, `-trimpath`, PIE) gives the table's layout; stripped
//!   builds fall back to the table; `runtime.waitReasonStrings` read from binaries equals the
//!   table; `go tool nm` agrees with our symbol reads.
//! - Ground truth from the runtime itself: a live `blocked` fixture's goroutines, read from
//!   `/proc/<pid>/mem` through the *table* layout, show the same goids, wait reasons, statuses,
//!   parent goids and creation PCs as the runtime's own SIGQUIT dump.

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt as _;
use std::path::Path;

use gtrace_tests::fixture::{self, Variant};
use gtrace_tests::go::{self, Toolchain};
use gtrace_tests::process::{GOTRACEBACK_ALL, Spawned, quit_and_collect};
use object::{Object as _, ObjectSymbol as _};
use tracer_user::gobin::GoBinary;
use tracer_user::gobin::dwarf::DwarfStructs;
use tracer_user::gobin::layout::{RuntimeLayout, Source};
use tracer_user::gobin::table_gen::{self, Probe};
use tracer_user::gobin::version::GoVersion;
use tracer_user::gobin::waitreason::{StatusNames, TableSource, WaitReasons, gstatus};

fn toolchains() -> Vec<Toolchain> {
    go::all().expect("Go toolchains are required (see the message for the fix)")
}

fn version(tc: &Toolchain) -> GoVersion {
    tc.version.parse().expect("toolchain version parses")
}

fn build(name: &str, tc: &Toolchain, v: Variant) -> Vec<u8> {
    let bin =
        fixture::build(name, tc, v).unwrap_or_else(|e| panic!("build {name} {tc} {v}: {e:#}"));
    std::fs::read(&bin).unwrap_or_else(|e| panic!("read {}: {e}", bin.display()))
}

/// The layout without its `source`, for comparisons across sources.
fn strip_source(mut l: RuntimeLayout) -> RuntimeLayout {
    l.source = Source::Dwarf {
        from_table: Vec::new(),
    };
    l
}

#[test]
fn committed_tables_match_installed_toolchains() {
    let mut probes = Vec::new();
    for tc in toolchains() {
        let data = build("layoutprobe", &tc, Variant::Default);
        probes.push(Probe::from_elf(&data, version(&tc)).unwrap_or_else(|e| panic!("{tc}: {e}")));
    }
    let gobin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tracer-user/src/gobin");
    for (file, text) in [
        ("layout_table.rs", table_gen::render_layout_table(&probes)),
        (
            "waitreason_table.rs",
            table_gen::render_waitreason_table(&probes),
        ),
    ] {
        let committed = std::fs::read_to_string(gobin.join(file)).expect("read committed table");
        if committed != text {
            let tmp = std::env::temp_dir().join(format!("gtrace-regenerated-{file}"));
            std::fs::write(&tmp, &text).expect("write regenerated table");
            panic!(
                "{file} is stale (regenerated copy: {}): run cargo xtask gen-offsets",
                tmp.display()
            );
        }
    }
}

#[test]
fn dwarf_layouts_equal_the_table() {
    for tc in toolchains() {
        let v = version(&tc);
        let table = RuntimeLayout::for_version(&v).unwrap();
        assert_eq!(
            table.source,
            Source::Table { version: v.clone() },
            "{tc}: exact patch"
        );
        for variant in [Variant::Default, Variant::Trimpath, Variant::Pie] {
            for name in ["blocked", "layoutprobe"] {
                let data = build(name, &tc, variant);
                let file = object::File::parse(&*data).unwrap();
                let structs = DwarfStructs::from_object(&file).unwrap();
                // Without a table fallback: every structure must be in this binary's DWARF.
                let dwarf = RuntimeLayout::from_source(&structs, None)
                    .unwrap_or_else(|e| panic!("{tc} {variant} {name}: {e}"));
                assert_eq!(
                    strip_source(dwarf),
                    strip_source(table.clone()),
                    "{tc} {variant} {name}: DWARF layout differs from the table"
                );
                let loaded = RuntimeLayout::for_binary(&file, &v).unwrap();
                assert_eq!(
                    loaded.source,
                    Source::Dwarf {
                        from_table: Vec::new()
                    }
                );
            }
        }
    }
}

#[test]
fn stripped_builds_use_the_table() {
    for tc in toolchains() {
        let v = version(&tc);
        let data = build("blocked", &tc, Variant::Stripped);
        let file = object::File::parse(&*data).unwrap();
        assert!(
            DwarfStructs::from_object(&file).is_err(),
            "{tc}: stripped build has DWARF"
        );
        let layout = RuntimeLayout::for_binary(&file, &v).unwrap();
        assert_eq!(layout, RuntimeLayout::for_version(&v).unwrap(), "{tc}");
        assert_eq!(WaitReasons::from_binary(&file).unwrap(), None, "{tc}");
        let reasons = WaitReasons::load(&file, &v).unwrap();
        assert_eq!(
            reasons.source,
            TableSource::Table { version: v.clone() },
            "{tc}"
        );
        // Through GoBinary: the version comes from the build info of the stripped binary.
        let bin = GoBinary::from_bytes(data.clone()).unwrap();
        assert_eq!(bin.version(), Some(&v), "{tc}");
        assert_eq!(
            RuntimeLayout::for_go_binary(&bin, None).unwrap(),
            layout,
            "{tc}"
        );
        let via_bin = WaitReasons::for_go_binary(&bin, None).unwrap().unwrap();
        assert_eq!(via_bin, reasons, "{tc}");
        // An override wins over the build info.
        let other = GoVersion::new(1, 22, 0);
        let assumed = RuntimeLayout::for_go_binary(&bin, Some(&other)).unwrap();
        assert_eq!(assumed, RuntimeLayout::for_version(&other).unwrap(), "{tc}");
    }
}

#[test]
fn wait_reasons_in_binaries_equal_the_table() {
    for tc in toolchains() {
        let v = version(&tc);
        let table = WaitReasons::for_version(&v).unwrap();
        let statuses = StatusNames::for_version(&v).unwrap();
        for variant in [Variant::Default, Variant::Trimpath, Variant::Pie] {
            let data = build("blocked", &tc, variant);
            let file = object::File::parse(&*data).unwrap();
            let got = WaitReasons::from_binary(&file)
                .unwrap()
                .expect("symbol present");
            assert_eq!(got.strings, table.strings, "{tc} {variant}");
            let got = StatusNames::from_binary(&file)
                .unwrap()
                .expect("symbol present");
            assert_eq!(got.strings, statuses.strings, "{tc} {variant}");
        }
    }
}

/// `go tool nm -size` output: name → (address, size, type letter).
fn go_nm(tc: &Toolchain, bin: &Path) -> (bool, BTreeMap<String, (u64, u64, String)>) {
    let out = tc
        .command()
        .args(["tool", "nm", "-size"])
        .arg(bin)
        .output()
        .expect("run go tool nm");
    let mut syms = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let [addr, size, kind, name] = f[..]
            && let (Ok(a), Ok(s)) = (u64::from_str_radix(addr, 16), size.parse())
        {
            syms.insert(name.to_owned(), (a, s, kind.to_owned()));
        }
    }
    (out.status.success(), syms)
}

#[test]
fn go_tool_nm_agrees_on_runtime_tables() {
    let wanted = [
        "runtime.waitReasonStrings",
        "runtime.gStatusStrings",
        "runtime.allgs",
    ];
    for tc in toolchains() {
        for variant in Variant::ALL {
            let path = fixture::build("blocked", &tc, variant).unwrap();
            let data = std::fs::read(&path).unwrap();
            let file = object::File::parse(&*data).unwrap();
            let (ok, nm) = go_nm(&tc, &path);
            for name in wanted {
                let ours = file.symbols().find(|s| s.name() == Ok(name));
                if variant.has_symbols() {
                    let ours = ours.unwrap_or_else(|| panic!("{tc} {variant}: no {name}"));
                    let (addr, size, kind) = nm
                        .get(name)
                        .unwrap_or_else(|| panic!("{tc} {variant}: nm lacks {name}"));
                    assert_eq!(
                        (ours.address(), ours.size()),
                        (*addr, *size),
                        "{tc} {variant} {name}"
                    );
                    assert!(
                        kind == "D" || kind == "B",
                        "{tc} {variant} {name}: nm type {kind}"
                    );
                } else {
                    assert!(ours.is_none(), "{tc} stripped build has {name}");
                    assert!(
                        !ok || !nm.contains_key(name),
                        "{tc}: nm finds {name} when stripped"
                    );
                }
            }
        }
    }
}

/// A goroutine as the SIGQUIT dump shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Dumped {
    state: String,
    creator: Option<String>,
    parent: Option<u64>,
    /// Offset printed after the `created by` location (`+0x45`).
    created_off: Option<u64>,
}

/// Parses `goroutine N [state, …]:` headers and their `created by F in goroutine P` lines.
fn parse_dump(dump: &str) -> BTreeMap<u64, Dumped> {
    let mut out = BTreeMap::new();
    let mut current: Option<u64> = None;
    let mut lines = dump.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("goroutine ")
            && let Some(open) = rest.find('[')
            && let Some(close) = rest.rfind("]:")
        {
            let id: u64 = rest.split_whitespace().next().unwrap().parse().unwrap();
            let state = rest[open + 1..close].split(',').next().unwrap().to_owned();
            out.insert(
                id,
                Dumped {
                    state,
                    creator: None,
                    parent: None,
                    created_off: None,
                },
            );
            current = Some(id);
        } else if let Some(rest) = line.strip_prefix("created by ")
            && let Some(id) = current
        {
            let d = out.get_mut(&id).unwrap();
            let mut words = rest.split_whitespace();
            d.creator = words.next().map(str::to_owned);
            d.parent = rest
                .rsplit(' ')
                .next()
                .and_then(|p| p.parse().ok())
                .filter(|_| rest.contains(" in goroutine "));
            d.created_off = lines
                .peek()
                .and_then(|l| l.rsplit(" +0x").next())
                .and_then(|h| u64::from_str_radix(h.trim(), 16).ok());
        }
    }
    out
}

fn read_u64(mem: &std::fs::File, addr: u64) -> u64 {
    let mut b = [0u8; 8];
    mem.read_exact_at(&mut b, addr)
        .unwrap_or_else(|e| panic!("read {addr:#x}: {e}"));
    u64::from_le_bytes(b)
}

#[test]
fn table_layout_reads_live_goroutines_like_the_runtime_dump() {
    for tc in toolchains() {
        let v = version(&tc);
        let layout = RuntimeLayout::for_version(&v).unwrap();
        let reasons = WaitReasons::for_version(&v).unwrap();
        let statuses = StatusNames::for_version(&v).unwrap();
        let path = fixture::build("blocked", &tc, Variant::Default).unwrap();
        let data = std::fs::read(&path).unwrap();
        let file = object::File::parse(&*data).unwrap();
        let sym = |name: &str| {
            file.symbols()
                .find(|s| s.name() == Ok(name))
                .unwrap_or_else(|| panic!("{tc}: no {name}"))
                .address()
        };
        let allgs = sym("runtime.allgs");

        let mut p = Spawned::spawn(&path, std::iter::empty::<&str>(), &[GOTRACEBACK_ALL]).unwrap();
        p.wait_ready().unwrap();
        let mem = std::fs::File::open(format!("/proc/{}/mem", p.pid()))
            .expect("open /proc/pid/mem (root?)");
        let (ptr, len) = (read_u64(&mem, allgs), read_u64(&mem, allgs + 8));
        assert!((1..100_000).contains(&len), "{tc}: allglen {len}");
        let g = &layout.g;
        let wrong_layout = [(1, 22), (1, 23), (1, 24), (1, 25)]
            .into_iter()
            .find(|&(ma, mi)| {
                let other = RuntimeLayout::for_version(&GoVersion::new(ma, mi, 0)).unwrap();
                (ma, mi) != (v.major, v.minor) && other.g.goid != layout.g.goid
            })
            .map(|(ma, mi)| RuntimeLayout::for_version(&GoVersion::new(ma, mi, 0)).unwrap());
        let mut raws = Vec::new();
        for i in 0..len {
            let gp = read_u64(&mem, ptr + 8 * i);
            let mut raw = vec![0u8; g.size.max(512) as usize];
            mem.read_exact_at(&mut raw, gp).unwrap();
            raws.push((gp, raw));
        }
        let samples = layout
            .check_g_sample(raws.iter().map(|(gp, raw)| (*gp, raw.as_slice())))
            .unwrap_or_else(|e| panic!("{tc}: {e}"));
        // Read with another version's layout (the goid/waitsince shift between 1.22 and 1.23,
        // and between 1.24 and 1.25), the same live goroutines must fail the checks.
        if let Some(wrong) = &wrong_layout {
            let res = wrong.check_g_sample(raws.iter().map(|(gp, raw)| (*gp, raw.as_slice())));
            assert!(
                res.is_err(),
                "{tc}: the {:?} layout passed the g checks",
                wrong.source
            );
        }
        let mut ours = BTreeMap::new();
        for ((_, raw), sample) in raws.iter().zip(&samples) {
            let u64_at = |off: u32| {
                u64::from_le_bytes(raw[off as usize..off as usize + 8].try_into().unwrap())
            };
            let status =
                u32::from_le_bytes(raw[g.atomicstatus as usize..][..4].try_into().unwrap());
            assert_eq!(sample.status, status, "{tc}");
            if status & !0x1000 == gstatus::DEAD {
                continue;
            }
            let state = if status & !0x1000 == gstatus::WAITING && raw[g.waitreason as usize] != 0 {
                reasons
                    .name(raw[g.waitreason as usize])
                    .expect("wait reason in range")
                    .to_owned()
            } else {
                statuses.name(status).expect("known status").to_owned()
            };
            let goid = u64_at(g.goid);
            assert_eq!(sample.goid, goid, "{tc}");
            let parent = g.parent_goid.map(u64_at);
            ours.insert(goid, (state, parent, u64_at(g.gopc), u64_at(g.startpc)));
        }
        assert!(ours.len() >= 20, "{tc}: too few live goroutines");
        let dump = quit_and_collect(&mut p).unwrap();
        let theirs = parse_dump(&dump);
        assert!(
            theirs.len() >= 20,
            "{tc}: only {} goroutines in the dump:\n{dump}",
            theirs.len()
        );
        let mut checked_pcs = 0;
        // Since 1.21 the dump also shows the signal-handling M's g0 as `goroutine 0 [idle]`;
        // g0s are not in allgs.
        for (goid, d) in theirs.iter().filter(|(id, _)| **id != 0) {
            let (state, parent, gopc, startpc) = ours
                .get(goid)
                .unwrap_or_else(|| panic!("{tc}: goroutine {goid} not found via allgs"));
            // The main goroutine (blocked reading stdin) may be observed mid-transition.
            if *goid != 1 {
                assert_eq!(state, &d.state, "{tc}: goroutine {goid}");
            }
            if tc.at_least(1, 21)
                && let Some(pg) = d.parent
            {
                assert_eq!(*parent, Some(pg), "{tc}: parent of goroutine {goid}");
            }
            if let (Some(creator), Some(off)) = (&d.creator, d.created_off)
                && creator.starts_with("main.spawn")
            {
                // runtime/traceback.go printcreatedby1: pc is gopc-1 (PCQuantum) past entry.
                let entry = sym(creator);
                assert!(
                    *gopc == entry + off || *gopc == entry + off + 1,
                    "{tc}: goroutine {goid} gopc {gopc:#x}, {creator} at {entry:#x} +{off:#x}"
                );
                assert!(
                    *startpc != 0 && *startpc != *gopc,
                    "{tc}: goroutine {goid} startpc"
                );
                checked_pcs += 1;
            }
        }
        assert!(
            checked_pcs >= 10,
            "{tc}: only {checked_pcs} creation sites checked:\n{dump}"
        );
    }
}

#[test]
fn unknown_versions_fail_with_the_override_hint() {
    let msg = RuntimeLayout::for_version(&GoVersion::new(1, 18, 10))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("go1.18.10") && msg.contains("--assume-go-version"),
        "{msg}"
    );
    for tc in toolchains() {
        let (major, minor) = tc.minor();
        assert!(
            msg.contains(&format!("go{major}.{minor}")),
            "{msg} lacks {tc}"
        );
    }
}

/// Go writes `SHF_COMPRESSED` DWARF; older linkers and post-processed binaries have
/// `.zdebug_*` (zlib-gnu) or plain sections. All three must read the same.
#[test]
fn compressed_zdebug_and_plain_dwarf_read_alike() {
    let dir = std::env::temp_dir().join(format!("gtrace-dwarf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for tc in toolchains() {
        let bin = fixture::build("layoutprobe", &tc, Variant::Default).unwrap();
        let original = std::fs::read(&bin).unwrap();
        let file = object::File::parse(&*original).unwrap();
        let want =
            RuntimeLayout::from_source(&DwarfStructs::from_object(&file).unwrap(), None).unwrap();
        for (flag, section) in [
            ("--compress-debug-sections=zlib-gnu", ".zdebug_info"),
            ("--decompress-debug-sections", ".debug_info"),
        ] {
            let out = dir.join(format!(
                "{}-{}",
                tc.version,
                section.trim_start_matches('.')
            ));
            let status = std::process::Command::new("objcopy")
                .arg(flag)
                .arg(&bin)
                .arg(&out)
                .status()
                .expect("objcopy (Debian package binutils) is required by this test");
            assert!(
                status.success(),
                "objcopy {flag} failed on {}",
                bin.display()
            );
            let data = std::fs::read(&out).unwrap();
            let file = object::File::parse(&*data).unwrap();
            let raw = object::Object::section_by_name(&file, section)
                .unwrap_or_else(|| panic!("{tc}: objcopy {flag} left no {section}"));
            assert_eq!(
                object::ObjectSection::compressed_file_range(&raw)
                    .unwrap()
                    .format
                    == object::CompressionFormat::None,
                section == ".debug_info",
                "{tc}: {section} compression"
            );
            let got = RuntimeLayout::from_source(&DwarfStructs::from_object(&file).unwrap(), None)
                .unwrap_or_else(|e| panic!("{tc} {section}: {e}"));
            assert_eq!(got, want, "{tc} {section}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// cgo programs are linked by the system linker (`-linkmode=external`), which lays out
/// sections, relocations and DWARF its own way; layouts and wait reasons must still read.
#[test]
fn externally_linked_cgo_pie_builds_read_like_the_table() {
    let dir = std::env::temp_dir().join(format!("gtrace-extlink-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for tc in toolchains() {
        let v = version(&tc);
        let out = dir.join(format!("layoutprobe-{}", tc.version));
        let build = tc
            .command()
            .current_dir(fixture::source_dir("layoutprobe"))
            .env("CGO_ENABLED", "1")
            .args([
                "build",
                "-buildvcs=false",
                "-buildmode=pie",
                "-ldflags=-linkmode=external",
                "-o",
            ])
            .arg(&out)
            .arg(".")
            .output()
            .expect("run go build");
        assert!(
            build.status.success(),
            "{tc}: cgo build failed (needs gcc): {}",
            String::from_utf8_lossy(&build.stderr)
        );
        let data = std::fs::read(&out).unwrap();
        let file = object::File::parse(&*data).unwrap();
        let layout = RuntimeLayout::for_binary(&file, &v).unwrap();
        assert_eq!(
            layout.source,
            Source::Dwarf {
                from_table: Vec::new()
            },
            "{tc}"
        );
        assert_eq!(
            strip_source(layout),
            strip_source(RuntimeLayout::for_version(&v).unwrap()),
            "{tc}"
        );
        let reasons = WaitReasons::from_binary(&file)
            .unwrap()
            .expect("symbols present");
        assert_eq!(
            reasons.strings,
            WaitReasons::for_version(&v).unwrap().strings,
            "{tc}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
