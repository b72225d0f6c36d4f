//! gtrace on real Go programs nobody here wrote: Debian 12's `prometheus-node-exporter` and
//! `etcd-server` (run as live servers on loopback ports) and `containerd`, `restic`, `rclone`
//! (read as files), fetched from the archive and unpacked into the cache, never installed (see
//! `gtrace_tests::debian`). All are built by Debian's Go 1.19, stripped, with cgo (dynamically
//! linked; C code precedes `runtime.text` in `.text`) and `-trimpath`, and much larger than
//! any fixture. Needs root and, the first time, the network; fails (never skips) with the
//! reason when the packages cannot be fetched.
//!
//! Ground truth is Go's own: `go version -m` for build info, `go tool addr2line` for
//! symbols, the runtime's `SIGQUIT` dump (`GOTRACEBACK=all`) of the same frozen state for
//! `gtrace dump` (under load: see `gtrace_tests::freeze`), the runtime's own goroutine profile
//! (node exporter serves `net/http/pprof`) for `gtrace profile`, the ELF file for stripped/PIE
//! facts, known request counts for `trace`, a real slowloris leak for `leaks`, and the
//! target's own code bytes for "every breakpoint is gone".

use std::{
    io::Write as _,
    path::Path,
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use gtrace_tests::{
    debian::{self, Fetched, Package},
    dumpcmp::{as_go_dump, compare, level1, wrappers},
    freeze::Frozen,
    go, gtrace,
    process::{Signal, Spawned},
    servers::{Etcd, NodeExporter, Scrapers, TempDir, put},
    traceback,
};
use object::{Object as _, ObjectSection as _};
use serde_json::Value;
use tracer_user::{
    gobin::GoBinary,
    goroutines::{DumpOptions, Goroutine, target::Target},
};

const TIMEOUT: Duration = Duration::from_secs(30);

fn fetch(pkg: &Package) -> Fetched {
    debian::fetch(pkg).unwrap_or_else(|e| {
        panic!(
            "cannot fetch Debian package {} (these tests need Debian 12's archive; run \
             `apt-get update` as root if the package lists are missing): {e:#}",
            pkg.name
        )
    })
}

/// Go 1.19, Debian's: the toolchain that built both packages.
fn go119() -> go::Toolchain {
    go::by_version("1.19").unwrap_or_else(|e| panic!("{e:#}"))
}

// ---------------------------------------------------------------------------------------
// inspect

/// `go version -m BIN`: (version, path, build settings).
fn go_version_m(bin: &Path) -> (String, String, Vec<(String, String)>) {
    let out = go119()
        .command()
        .args(["version", "-m"])
        .arg(bin)
        .output()
        .expect("go version -m");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let version = lines
        .next()
        .and_then(|l| l.rsplit_once(": "))
        .map(|(_, v)| v.to_owned())
        .expect("version line");
    let (mut path, mut settings) = (String::new(), Vec::new());
    for l in lines {
        let f: Vec<&str> = l.trim_start().splitn(2, '\t').collect();
        match f.as_slice() {
            ["path", p] => (*p).clone_into(&mut path),
            ["build", kv] => {
                let (k, v) = kv.split_once('=').unwrap();
                settings.push((k.to_owned(), v.to_owned()));
            }
            _ => {}
        }
    }
    (version, path, settings)
}

fn check_inspect(pkg: &Package) {
    let f = fetch(pkg);
    let out = gtrace::command(["inspect", "--json"])
        .arg(&f.binary)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: gtrace inspect failed: {}",
        pkg.name,
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (version, path, settings) = go_version_m(&f.binary);
    let what = format!("{} {}", pkg.name, f.version);
    assert_eq!(v["go_version"], version, "{what}");
    assert_eq!(v["build_info"]["path"], path, "{what}");
    let ours: Vec<(String, String)> = v["build_info"]["settings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| {
            (
                kv[0].as_str().unwrap().into(),
                kv[1].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(ours, settings, "{what}: build settings");

    // What the ELF file says, independently of gtrace.
    let data = std::fs::read(&f.binary).unwrap();
    let elf = object::File::parse(&*data).unwrap();
    let has = |name: &str| elf.section_by_name(name).is_some();
    assert_eq!(
        v["symbols"]["symtab"],
        has(".symtab"),
        "{what}: {}",
        v["symbols"]
    );
    assert_eq!(
        v["symbols"]["dwarf"],
        has(".debug_info") || has(".zdebug_info"),
        "{what}: {}",
        v["symbols"]
    );
    assert_eq!(
        v["pie"],
        elf.kind() == object::ObjectKind::Dynamic,
        "{what}: PIE"
    );
    assert_eq!(v["symbols"]["pclntab"], "section", "{what}");
    assert!(
        v["layout"]["Ok"]["source"]
            .as_str()
            .is_some_and(|s| s.contains(version.as_str())),
        "{what}: layout {}",
        v["layout"]
    );
    assert!(
        v["wait_reasons"]["Ok"]["strings"]
            .as_array()
            .is_some_and(|s| s.len() > 20),
        "{what}: wait reasons {}",
        v["wait_reasons"]
    );
    let sites = v["probe_sites"].as_array().unwrap();
    assert!(sites.len() >= 10, "{what}: {} probe sites", sites.len());
    // Version alternatives: `exitsyscall0` up to Go 1.25, `exitsyscallNoP` from 1.26.
    let alts = ["runtime.exitsyscall0", "runtime.exitsyscallNoP"];
    let mut alternatives = 0;
    for s in sites {
        if alts.contains(&s["function"].as_str().unwrap_or_default())
            && s["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("no function named"))
        {
            continue;
        }
        if alts.contains(&s["function"].as_str().unwrap_or_default()) {
            alternatives += 1;
        }
        assert!(s["site"].is_object(), "{what}: no probe site: {s}");
    }
    assert_eq!(alternatives, 1, "{what}: one of {alts:?} must be probed");
    println!(
        "{what}: {version}, stripped {}, PIE {}, cgo {}, {} functions",
        !has(".symtab"),
        v["pie"],
        settings
            .iter()
            .any(|kv| kv == &("CGO_ENABLED".into(), "1".into())),
        v["pclntab"]["functions"]
    );
}

#[test]
fn inspect_matches_go_version_m_and_the_elf_file() {
    check_inspect(&debian::NODE_EXPORTER);
    check_inspect(&debian::ETCD);
    for p in debian::STATIC_ONLY {
        check_inspect(p);
    }
}

// ---------------------------------------------------------------------------------------
// symbolize

/// Runs `go tool addr2line` on `pcs`: (function, `file:line`) per PC.
fn addr2line(bin: &Path, pcs: &[u64]) -> Vec<(String, String)> {
    let mut child = go119()
        .command()
        .args(["tool", "addr2line"])
        .arg(bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("go tool addr2line starts");
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
    assert_eq!(lines.len(), 2 * pcs.len(), "addr2line output");
    lines
        .chunks(2)
        .map(|c| (c[0].to_owned(), c[1].to_owned()))
        .collect()
}

/// Every function entry plus a deterministic sample of ≥1000 PCs inside functions.
fn sample_pcs(bin: &GoBinary) -> Vec<u64> {
    let funcs = bin.functions().unwrap();
    let mut pcs: Vec<u64> = funcs.iter().map(|f| f.entry).collect();
    let mut k: u64 = 0;
    while pcs.len() < funcs.len() + 2000 {
        let f = &funcs[(k as usize * 7) % funcs.len()];
        k += 1;
        let size = f.end - f.entry;
        if size > 1 {
            pcs.push(f.entry + 1 + (k * 7919) % (size - 1));
        }
    }
    pcs
}

fn check_symbolize(pkg: &Package) {
    let f = fetch(pkg);
    let what = format!("{} {}", pkg.name, f.version);
    let bin = GoBinary::open(&f.binary).unwrap_or_else(|e| panic!("{what}: {e}"));
    let pcs = sample_pcs(&bin);
    // `go tool addr2line` (1.19 to at least 1.27) takes the Go text start from the ELF
    // `.text` section; with cgo, C code (`_start`, crt, cgo stubs) comes first and Go's
    // `runtime.text` (where pclntab offsets count from) is higher up. Its answers for a PC
    // are thus those for PC + delta: ask it about PC - delta. gtrace uses runtime.text.
    let data = std::fs::read(&f.binary).unwrap();
    let elf = object::File::parse(&*data).unwrap();
    let text = elf.section_by_name(".text").expect(".text").address();
    let runtime_text = bin
        .functions()
        .unwrap()
        .iter()
        .map(|f| f.entry)
        .min()
        .unwrap();
    let delta = runtime_text - text;
    let want = addr2line(
        &f.binary,
        &pcs.iter().map(|pc| pc - delta).collect::<Vec<_>>(),
    );
    let mut mismatches = Vec::new();
    for (pc, (wfunc, wpos)) in pcs.iter().zip(&want) {
        let frames = bin
            .symbolize(*pc)
            .unwrap_or_else(|e| panic!("{what} {pc:#x}: {e}"));
        let (inner, outer) = (&frames[0], frames.last().unwrap());
        let pos = format!("{}:{}", inner.file, inner.line);
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
        "{what}: {} of {} PCs differ (addr2line asked at PC-{delta:#x}):\n{}",
        mismatches.len(),
        pcs.len(),
        mismatches[..mismatches.len().min(20)].join("\n")
    );
    println!(
        "{what}: {} PCs symbolize like go tool addr2line (text delta {delta:#x})",
        pcs.len()
    );
}

#[test]
fn symbolize_matches_go_tool_addr2line() {
    check_symbolize(&debian::NODE_EXPORTER);
    check_symbolize(&debian::ETCD);
    for p in debian::STATIC_ONLY {
        check_symbolize(p);
    }
}

// ---------------------------------------------------------------------------------------
// dump

fn dump_of(t: &Target, system: bool) -> Vec<Goroutine> {
    let mut v = Vec::new();
    let stats = t
        .dump(DumpOptions { system }, &mut |g| v.push(g))
        .expect("dump");
    assert_eq!(
        stats.errors + stats.unreadable + stats.torn,
        0,
        "a stopped process must dump cleanly: {stats:?}"
    );
    v
}

/// gtrace's dump of the frozen target (`--system` and default view), then the runtime's own
/// `SIGQUIT` dump of the very same state (see `gtrace_tests::freeze`), compared field by field.
fn compare_with_sigquit(what: &str, bin: &Path, p: &mut Spawned) -> Vec<String> {
    let t = Target::open(p.pid() as i32).unwrap_or_else(|e| panic!("{what}: open: {e}"));
    let minor = t.version().minor;
    let frozen = Frozen::freeze(p).unwrap_or_else(|e| panic!("{what}: freeze: {e:#}"));
    let system = dump_of(&t, true);
    let user = dump_of(&t, false);
    let text = frozen
        .quit_and_collect(p)
        .unwrap_or_else(|e| panic!("{what}: SIGQUIT dump: {e:#}"));
    let go = traceback::parse(&text).unwrap_or_else(|e| panic!("{what}: parse Go dump: {e}"));
    let mut diffs: Vec<String> = compare(&as_go_dump(&system, minor), &go)
        .into_iter()
        .map(|d| format!("{what} --system: {d}"))
        .collect();
    diffs.extend(
        compare(
            &as_go_dump(&user, minor),
            // Debian's builds are not PIE (checked by the inspect test): no load bias.
            &level1(&go, &wrappers(bin, minor, 0)),
        )
        .into_iter()
        .map(|d| format!("{what} default: {d}")),
    );
    let count = |s: &str| system.iter().filter(|g| g.state_text() == s).count();
    println!(
        "{what}: {} goroutines ({} in the default view; {} running, {} runnable, {} in \
         syscalls), {} frames compared with SIGQUIT",
        system.len(),
        user.len(),
        count("running"),
        count("runnable"),
        count("syscall"),
        system.iter().map(|g| g.stack.frames.len()).sum::<usize>()
    );
    diffs
}

/// The level-1 filter judges wrappers by PC: `syscall.Syscall6` exists twice in Debian's
/// `node_exporter` (the function, first frame of every goroutine in a syscall, and its ABI0
/// wrapper of the same name); only the wrapper is hidden at `GOTRACEBACK=all`. Seen under
/// load, where a name-based filter dropped the real frame from the expected dump.
#[test]
fn wrapper_frames_are_told_by_pc_not_name() {
    let f = fetch(&debian::NODE_EXPORTER);
    let bin = GoBinary::open(&f.binary).unwrap();
    let tab = bin.pclntab();
    let both: Vec<(u64, u8)> = tab
        .funcs()
        .filter_map(Result::ok)
        .filter(|r| tab.name(r).is_ok_and(|n| n == "syscall.Syscall6"))
        .map(|r| (r.entry, r.func_id))
        .collect();
    assert_eq!(
        both.len(),
        2,
        "syscall.Syscall6 and its ABI wrapper: {both:?}"
    );
    let is_wrapper = wrappers(&f.binary, 19, 0);
    let answers: Vec<bool> = both
        .iter()
        .map(|(entry, _)| is_wrapper("syscall.Syscall6", Some(entry + 1)))
        .collect();
    assert_eq!(
        answers.iter().filter(|w| **w).count(),
        1,
        "exactly one of {both:?} is a wrapper: {answers:?}"
    );
}

#[test]
fn dump_matches_the_runtimes_own_sigquit_dump() {
    let mut diffs = Vec::new();
    {
        let f = fetch(&debian::NODE_EXPORTER);
        let mut ne = NodeExporter::start(&f.binary);
        // Some traffic first, so the HTTP server has grown its pools and timers.
        for _ in 0..5 {
            debian::http_get(ne.port, "/metrics").unwrap();
        }
        let what = format!("{} {}", debian::NODE_EXPORTER.name, f.version);
        // Frozen mid-scrape: goroutines in syscalls, runnable and running ones too.
        let load = Scrapers::start(ne.port, 2);
        while load.done.load(Ordering::Relaxed) < 3 {
            std::thread::sleep(Duration::from_millis(10));
        }
        diffs.extend(compare_with_sigquit(&what, &f.binary, &mut ne.p));
        load.abandon();
    }
    {
        let f = fetch(&debian::ETCD);
        let mut e = Etcd::start(&f.binary);
        for i in 0..20 {
            let answer = put(e.port, &format!("k{i}"), "v").expect("etcd put");
            assert!(answer.starts_with("HTTP/1.0 200"), "etcd put: {answer}");
        }
        // Frozen while a client writes keys in a loop (until the server dies).
        let port = e.port;
        let writer = std::thread::spawn(move || {
            let mut i = 0u64;
            while put(port, &format!("load{i}"), "v").is_ok_and(|a| a.starts_with("HTTP/1.0 200")) {
                i += 1;
            }
            i
        });
        std::thread::sleep(Duration::from_millis(300));
        let what = format!("{} {}", debian::ETCD.name, f.version);
        diffs.extend(compare_with_sigquit(&what, &f.binary, &mut e.p));
        let puts = writer.join().expect("etcd writer");
        assert!(puts > 0, "{what}: no put succeeded under load");
    }
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// record under load

#[test]
fn record_under_load_sees_the_server_and_detaches_cleanly() {
    let f = fetch(&debian::NODE_EXPORTER);
    let what = format!("{} {}", debian::NODE_EXPORTER.name, f.version);
    let ne = NodeExporter::start(&f.binary);
    let dir = TempDir::new("record");
    let file = dir.0.join("ne.gtc");
    let mut rec = Spawned::spawn(
        &gtrace::bin(),
        [
            "record",
            "-p",
            &ne.p.pid().to_string(),
            "-d",
            "4s",
            "-o",
            file.to_str().unwrap(),
        ],
        &[("GTRACE_LOG", "warn")],
    )
    .expect("spawn gtrace record");
    let deadline = Instant::now() + TIMEOUT;
    while !rec.stderr().contains("attached to pid") {
        assert!(
            Instant::now() < deadline && rec.try_status().is_none(),
            "{what}: never attached: {}",
            rec.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let load = Scrapers::start(ne.port, 2);
    let st = rec.wait_exit(TIMEOUT).expect("gtrace record ends after -d");
    let n = load.stop();
    assert!(st.success(), "{what}: gtrace record: {}", rec.stderr());

    // Every probed instruction is the file's again, checked here independently of gtrace's
    // own check (which the report's detach_problem carries).
    let bin = GoBinary::open(&f.binary).unwrap();
    let mut offsets: Vec<u64> = tracer_user::probes::lifecycle::plan(&bin)
        .expect("lifecycle plan")
        .sites
        .iter()
        .map(|s| s.offset)
        .collect();
    offsets.extend(
        tracer_user::panics::plan(&bin)
            .expect("panic plan")
            .sites
            .iter()
            .map(|s| s.offset),
    );
    let process = tracer_user::target::Process::from_pid(ne.p.pid()).unwrap();
    tracer_user::probes::verify_all_detached(&process, &offsets)
        .unwrap_or_else(|e| panic!("{what}: breakpoint left after detaching: {e}"));
    // And the server still works.
    ne.wait_serving();

    let out = gtrace::command(["report", "--json"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["stop_reason"], "duration", "{what}: {s:#}");
    assert_eq!(s["detach_problem"], "", "{what}: {s:#}");
    let l = &s["losses"];
    assert_eq!(l["complete"], true, "{what}: footer missing");
    for k in ["dropped", "decode_errors", "probe_errors"] {
        assert_eq!(l[k], 0, "{what}: {k} in {l:#}");
    }
    let ev = &s["events"];
    for k in ["create", "park", "exit", "execute", "ready"] {
        assert!(
            ev[k].as_u64().is_some_and(|c| c > 0),
            "{what}: no {k} events in {n} scrapes: {ev}"
        );
    }
    // Each scrape is one connection served by one new goroutine (net/http's Serve loop).
    assert!(
        s["created"].as_u64().unwrap() >= n,
        "{what}: {} creations for {n} scrapes",
        s["created"]
    );
    let sites: Vec<&str> = s["blocking"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["site"].as_str())
        .collect();
    assert!(
        sites
            .iter()
            .any(|x| x.starts_with("net.(*netFD).accept") || x.starts_with("net.(*netFD).Read")),
        "{what}: the listener's accept or a connection read should block: {sites:?}"
    );
    println!(
        "{what}: {n} scrapes; {} created, {} exited; events {ev}",
        s["created"], s["exited"]
    );
}

// ---------------------------------------------------------------------------------------
// profile

/// `go tool pprof -traces FILE` as a sorted list of (count, frames), without the goroutines
/// that serve HTTP connections (the profile request itself and its helpers).
fn pprof_traces(file: &Path) -> Vec<(u64, Vec<String>)> {
    let out = go119()
        .command()
        .args(["tool", "pprof", "-traces"])
        .arg(file)
        .output()
        .expect("go tool pprof");
    assert!(
        out.status.success(),
        "go tool pprof -traces {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut traces = Vec::new();
    for block in text.split("-----------+-------------------------------------------------------") {
        let mut count = None;
        let mut frames = Vec::new();
        for line in block.lines().filter(|l| l.starts_with(' ')) {
            let line = line.trim();
            if count.is_none() {
                let (c, f) = line.split_once(char::is_whitespace).expect(line);
                count = Some(c.parse::<u64>().expect(line));
                frames.push(f.trim().to_owned());
            } else {
                frames.push(line.to_owned());
            }
        }
        let serving = frames.iter().any(|f| {
            f.starts_with("net/http.(*conn).serve") || f.contains("(*connReader).backgroundRead")
        });
        if let (Some(c), false) = (count, serving) {
            traces.push((c, frames));
        }
    }
    traces.sort();
    traces
}

#[test]
fn goroutine_profile_matches_the_runtimes_own() {
    let f = fetch(&debian::NODE_EXPORTER);
    let what = format!("{} {}", debian::NODE_EXPORTER.name, f.version);
    let ne = NodeExporter::start(&f.binary);
    let dir = TempDir::new("profile");
    let ours = dir.0.join("gtrace.pb.gz");
    let out = gtrace::command(["profile", "--kind", "goroutine", "-p"])
        .arg(ne.p.pid().to_string())
        .arg("-o")
        .arg(&ours)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // node_exporter serves net/http/pprof: the runtime's own goroutine profile, right after.
    let theirs = dir.0.join("runtime.pb.gz");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", ne.port)).unwrap();
    write!(
        s,
        "GET /debug/pprof/goroutine HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut answer).unwrap();
    let body = memchr::memmem::find(&answer, b"\r\n\r\n").expect("HTTP answer") + 4;
    assert!(answer.starts_with(b"HTTP/1.0 200"), "{what}: pprof handler");
    std::fs::write(&theirs, &answer[body..]).unwrap();
    let (o, t) = (pprof_traces(&ours), pprof_traces(&theirs));
    assert!(!o.is_empty(), "{what}: empty profile");
    assert_eq!(o, t, "{what}: gtrace's goroutine profile vs the runtime's");
    println!(
        "{what}: {} goroutine stacks match the runtime's profile",
        o.len()
    );
}

// ---------------------------------------------------------------------------------------
// trace, doctor, leaks, panics on the live server

/// Runs `gtrace ARGS` to completion; returns stdout (panics with stderr if it fails).
fn gtrace_ok(what: &str, args: &[&str]) -> String {
    let out = gtrace::command(args).output().unwrap();
    assert!(
        out.status.success(),
        "{what}: gtrace {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Scrapes while `gtrace trace` watches.
const K: usize = 25;

#[test]
fn trace_doctor_leaks_and_panics_on_a_live_server() {
    let f = fetch(&debian::NODE_EXPORTER);
    let what = format!("{} {}", debian::NODE_EXPORTER.name, f.version);
    let ne = NodeExporter::start(&f.binary);
    let pid = ne.p.pid().to_string();

    // The listener goroutine, from a dump (checked against SIGQUIT in another test).
    let t = Target::open(ne.p.pid() as i32).unwrap();
    let accept = dump_of(&t, false)
        .into_iter()
        .find(|g| {
            g.stack
                .frames
                .iter()
                .any(|f| &*f.src.function == "net.(*netFD).accept")
        })
        .unwrap_or_else(|| panic!("{what}: no goroutine in net.(*netFD).accept"))
        .goid;

    // trace: each scrape is one connection, served by one goroutine that the listener's
    // goroutine creates in net/http.(*Server).Serve. Exactly K creations for K scrapes.
    let mut tr = Spawned::spawn(
        &gtrace::bin(),
        [
            "trace",
            "-p",
            &pid,
            "--json",
            "--kind",
            "create",
            "--func",
            r"^net/http\.\(\*Server\)\.Serve",
        ],
        &[("GTRACE_LOG", "warn")],
    )
    .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    while !tr.stderr().contains("gtrace: tracing pid") {
        assert!(
            Instant::now() < deadline && tr.try_status().is_none(),
            "{what}: trace never attached: {}",
            tr.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..K {
        assert_eq!(debian::http_get(ne.port, "/metrics").unwrap().0, 200);
    }
    // gtrace drains every few ms: let it see the last creation before stopping it.
    std::thread::sleep(Duration::from_millis(500));
    tr.signal(Signal::Term).unwrap();
    let st = tr.wait_exit(TIMEOUT).expect("trace exits on SIGTERM");
    assert!(st.success(), "{what}: trace: {}", tr.stderr());
    while tr.next_line(Duration::from_millis(200)).is_ok() {}
    let lines: Vec<Value> = tr
        .stdout_seen()
        .iter()
        .map(|l| serde_json::from_str(l).expect("trace JSON line"))
        .collect();
    // Under load the overhead governor samples the hot probes and says so in the stream
    // (`governor` decisions, `gap`s); creations stay exact.
    let (creates, other): (Vec<Value>, Vec<Value>) =
        lines.into_iter().partition(|l| l["kind"] == "create");
    assert!(
        other
            .iter()
            .all(|l| l["kind"] == "governor" || l["kind"] == "gap"),
        "{what}: unexpected trace lines {other:#?}"
    );
    assert_eq!(creates.len(), K, "{what}: trace lines {creates:#?}");
    for c in &creates {
        assert_eq!(c["kind"], "create", "{what}: {c}");
        assert_eq!(c["other_goid"], accept, "{what}: creator {c}");
        assert_eq!(c["start"], "net/http.(*Server).Serve.func3", "{what}: {c}");
        assert!(
            c["site"]
                .as_str()
                .is_some_and(|s| s.starts_with("net/http.(*Server).Serve (net/http/server.go:")),
            "{what}: {c}"
        );
    }
    assert!(
        tr.stderr().contains("lost events: 0 dropped"),
        "{what}: {}",
        tr.stderr()
    );

    // doctor under load: every check passes and both uprobes fire.
    let load = Scrapers::start(ne.port, 1);
    let v: Value = serde_json::from_str(&gtrace_ok(&what, &["doctor", "--json", "-p", &pid]))
        .expect("doctor JSON");
    // leaks under the same load: a healthy server has no leaking group.
    let leaks: Value = serde_json::from_str(&gtrace_ok(
        &what,
        &["leaks", "--json", "-p", &pid, "-d", "3s"],
    ))
    .expect("leaks JSON");
    let n = load.stop();
    for c in v["target"].as_array().unwrap() {
        assert_eq!(c["level"], "ok", "{what}: doctor {c}");
    }
    for probe in ["runtime.gopark", "runtime.newproc1"] {
        assert!(
            v["probe_test"]["hits"][probe]
                .as_u64()
                .is_some_and(|h| h > 0),
            "{what}: doctor saw no {probe} hits in {n} scrapes: {}",
            v["probe_test"]
        );
    }
    for k in ["errors", "drops"] {
        let total: u64 = v["probe_test"][k]
            .as_object()
            .unwrap()
            .values()
            .map(|x| x.as_u64().unwrap())
            .sum();
        assert_eq!(total, 0, "{what}: doctor probe {k}: {}", v["probe_test"]);
    }
    assert_eq!(leaks["leaking_groups"], 0, "{what}: {leaks:#}");
    assert!(leaks["snapshots"].as_u64().unwrap() >= 3, "{what}: {leaks}");

    // A real leak: clients that connect and never send a request (slowloris). Each
    // connection parks one goroutine in net/http's header read, forever: node exporter sets
    // no read timeout. Connections open at a steady pace while `leaks` watches.
    let stop = Arc::new(AtomicBool::new(false));
    let opener = {
        let (stop, port) = (stop.clone(), ne.port);
        std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !stop.load(Ordering::Relaxed) && conns.len() < 200 {
                conns.push(std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect"));
                std::thread::sleep(Duration::from_millis(100));
            }
            conns
        })
    };
    let leaks: Value = serde_json::from_str(&gtrace_ok(
        &what,
        &["leaks", "--json", "-p", &pid, "-d", "3s"],
    ))
    .expect("leaks JSON");
    stop.store(true, Ordering::Relaxed);
    let conns = opener.join().expect("opener thread");
    let leak = leaks["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["leak"] == true)
        .unwrap_or_else(|| panic!("{what}: no leak found: {leaks:#}"));
    assert_eq!(leaks["leaking_groups"], 1, "{what}: {leaks:#}");
    assert_eq!(
        leak["block_frame"]["function"], "net.(*netFD).Read",
        "{what}: {leak:#}"
    );
    assert_eq!(
        leak["created_by"]["function"], "net/http.(*Server).Serve",
        "{what}: {leak:#}"
    );
    let count = leak["count"].as_u64().unwrap();
    assert!(
        count > 5 && count <= conns.len() as u64,
        "{what}: {count} leaking goroutines for {} idle connections",
        conns.len()
    );
    let idle = conns.len();
    drop(conns);

    // panics: node exporter does not panic; watching it must not disturb it.
    let out = gtrace_ok(&what, &["panics", "-p", &pid, "-d", "2s"]);
    assert_eq!(out, "", "{what}: panics reported");
    ne.wait_serving();
    println!(
        "{what}: trace saw {K} connection goroutines created by g{accept}; doctor and leaks \
         clean under load ({n} scrapes); leaks found {count} of {idle} idle connections' \
         goroutines; panics clean"
    );
}

/// `record -- CMD`: a dynamically linked (cgo) server started under gtrace, stopped at exec
/// before the dynamic loader runs: every goroutine is seen from its creation, `main`'s too.
#[test]
fn record_from_exec_sees_every_goroutine_created() {
    let f = fetch(&debian::NODE_EXPORTER);
    let what = format!(
        "{} {} under record --",
        debian::NODE_EXPORTER.name,
        f.version
    );
    let dir = TempDir::new("record-exec");
    let file = dir.0.join("exec.gtc");
    let port = debian::free_port().unwrap();
    // The server inherits gtrace's stdout and stderr and outlives it: files, not pipes
    // (a pipe would not reach EOF while the server runs).
    let log = dir.0.join("record.log");
    let status = gtrace::command(["record", "-d", "3s", "-o"])
        .arg(&file)
        .arg("--")
        .arg(&f.binary)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--no-collector.textfile")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .status()
        .unwrap();
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    let report = gtrace::command(["report", "--json"])
        .arg(&file)
        .output()
        .unwrap();
    let s: Value = serde_json::from_slice(&report.stdout)
        .unwrap_or_else(|e| panic!("{what}: no report ({e}); record said: {stderr}"));
    // gtrace leaves a command it started running after -d: stop it.
    if let Some(pid) = s["pid"].as_i64() {
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is the server gtrace
        // started (it is not our child, so it cannot be reaped and recycled under us before
        // this point unless it already exited, which the report would have said).
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    assert!(status.success(), "{what}: {stderr}");
    assert_eq!(s["stop_reason"], "duration", "{what}: {s:#}");
    assert_eq!(s["detach_problem"], "", "{what}: {s:#}");
    assert_eq!(
        s["preexisting"], 0,
        "{what}: goroutines missed at start: {s:#}"
    );
    let l = &s["losses"];
    for k in ["dropped", "decode_errors", "probe_errors"] {
        assert_eq!(l[k], 0, "{what}: {k} in {l:#}");
    }
    assert!(s["created"].as_u64().unwrap() >= 5, "{what}: {s:#}");
    let g1: Value = serde_json::from_slice(
        &gtrace::command(["report", "--json", "--goid", "1"])
            .arg(&file)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        g1["goroutine"]["created_at_ns"].is_u64(),
        "{what}: main goroutine not seen created: {g1:#}"
    );
    println!(
        "{what}: {} goroutines created, none missed, events {}",
        s["created"], s["events"]
    );
}
