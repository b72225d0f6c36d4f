//! `cargo xtask bench overhead`: what tracing costs the target, per event, against references
//! measured in the same run.
//!
//! Workloads (Go fixtures, newest toolchain): `pingpong` (channel round trips: park/ready
//! bound), `churn` (goroutine create/exit bound), and `httpload` (a net/http server on
//! loopback driven at a fixed request rate by a separate load-generator process; measured as
//! the server's CPU time per request). Modes, interleaved round by round (A B C D A B C D …,
//! fresh target process each time) so that drifts of this noisy 2-core machine hit all alike:
//!
//! - `untraced`;
//! - `gtrace`: `gtrace record -p PID --max-overhead off` (every event exact);
//! - `empty`: the same probes at the same sites, each program counting its hit and returning
//!   (`record --empty-probes`): the floor any design with these sites pays;
//! - `bpftrace`: `count()` uprobes at function entry on the same runtime functions (Debian's
//!   bpftrace; said clearly, not failed, when it is missing).
//!
//! Cost per event = (median per-op cost of the mode − untraced) / (median probe hits per op).
//! A last run keeps `gtrace record` on a ping-pong for `--sustain` seconds and reports the
//! event rate, losses and gtrace's own CPU per million events.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use gtrace_tests::{
    fixture::{self, Variant},
    go,
    process::{Signal, Spawned},
};

const TIMEOUT: Duration = Duration::from_mins(3);
/// Runtime functions bpftrace counts (its `uprobe:` attaches at the function entry).
const BPFTRACE_FUNCS: [&str; 6] = [
    "runtime.newproc1",
    "runtime.gopark",
    "runtime.ready",
    "runtime.execute",
    "runtime.goschedImpl",
    "runtime.goexit0",
];
/// gtrace's uprobe counters (the same functions; creations at the return site).
const GTRACE_UPROBES: [&str; 6] = [
    "runtime.newproc1 (return site)",
    "runtime.gopark",
    "runtime.ready",
    "runtime.execute",
    "runtime.goschedImpl",
    "runtime.goexit0",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Untraced,
    Gtrace,
    Empty,
    Bpftrace,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Untraced => "untraced",
            Mode::Gtrace => "gtrace record",
            Mode::Empty => "empty probes",
            Mode::Bpftrace => "bpftrace count()",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    PingPong,
    Churn,
    Http,
}

impl Workload {
    fn fixture(self) -> &'static str {
        match self {
            Workload::PingPong => "pingpong",
            Workload::Churn => "churn",
            Workload::Http => "httpload",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Workload::PingPong => "round trip (wall)",
            Workload::Churn => "goroutine (wall)",
            Workload::Http => "request (server CPU)",
        }
    }
}

/// One measurement.
#[derive(Debug, Clone, Default)]
struct Sample {
    /// Cost per op, ns (wall for ping-pong/churn, server CPU for http).
    ns_per_op: f64,
    /// Probe hits at the uprobe sites per op (0 untraced).
    hits_per_op: f64,
    /// Events gtrace wrote, lost, and its CPU (gtrace modes).
    events: u64,
    drops: u64,
    tracer_cpu: Duration,
}

/// Options of the overhead bench.
pub(crate) struct Opts {
    pub(crate) rounds: usize,
    pub(crate) sustain: Duration,
    pub(crate) ops: u64,
    pub(crate) rate: u64,
}

/// CPU time of every thread of `pid` so far (`/proc/PID/task/*/schedstat`, ns precision).
fn cpu_of(pid: u32) -> Duration {
    let mut ns = 0u64;
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in dir.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat"))
                && let Some(v) = s
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
            {
                ns += v;
            }
        }
    }
    Duration::from_nanos(ns)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

struct Bench {
    gtrace: PathBuf,
    /// Copy of the httpload binary used as the load generator.
    client: PathBuf,
    bins: Vec<(Workload, PathBuf)>,
    tmp: PathBuf,
    opts: Opts,
}

impl Bench {
    fn bin(&self, w: Workload) -> &Path {
        &self.bins.iter().find(|(x, _)| *x == w).expect("built").1
    }

    fn start_target(&self, w: Workload) -> anyhow::Result<(Spawned, Option<String>)> {
        let args: &[&str] = if w == Workload::Http { &["serve"] } else { &[] };
        let mut p = Spawned::spawn(self.bin(w), args, &[("GOGC", "off")])?;
        if w == Workload::Http {
            let lines = p.wait_for(Duration::from_secs(30), |l| l.starts_with("ready "))?;
            let port = lines.last().context("no ready line")?[6..]
                .trim()
                .to_owned();
            Ok((p, Some(port)))
        } else {
            p.wait_ready()?;
            Ok((p, None))
        }
    }

    /// `gtrace record -p PID --max-overhead off EXTRA…`, once attached.
    fn start_gtrace(&self, pid: u32, out: &Path, extra: &[&str]) -> anyhow::Result<Spawned> {
        let pid_s = pid.to_string();
        let mut args = vec!["record", "-p", &pid_s, "-o", out.to_str().unwrap()];
        args.extend(["--max-overhead", "off"]);
        args.extend(extra);
        let t = Spawned::spawn(&self.gtrace, &args, &[("GTRACE_LOG", "warn")])?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !t.stderr().contains("attached to pid") {
            if Instant::now() > deadline {
                bail!("gtrace never attached: {}", t.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(t)
    }

    fn start_tracer(&self, mode: Mode, pid: u32, out: &Path) -> anyhow::Result<Option<Spawned>> {
        let pid_s = pid.to_string();
        match mode {
            Mode::Untraced => Ok(None),
            Mode::Gtrace => self.start_gtrace(pid, out, &[]).map(Some),
            Mode::Empty => self.start_gtrace(pid, out, &["--empty-probes"]).map(Some),
            Mode::Bpftrace => {
                let exe = std::fs::read_link(format!("/proc/{pid}/exe"))?;
                let probes: Vec<String> = BPFTRACE_FUNCS
                    .iter()
                    .map(|f| format!("uprobe:{}:{f}", exe.display()))
                    .collect();
                // BEGIN runs once every probe is attached.
                let script = format!(
                    "BEGIN {{ printf(\"attached\\n\"); }} {} {{ @[probe] = count(); }}",
                    probes.join(",")
                );
                let mut t = Spawned::spawn(
                    Path::new("bpftrace"),
                    ["-p", &pid_s, "-e", &script],
                    &[("BPFTRACE_NO_CPP_DEMANGLE", "1")],
                )?;
                t.wait_for(Duration::from_mins(1), |l| l.trim() == "attached")
                    .with_context(|| format!("bpftrace never attached: {}", t.stderr()))?;
                Ok(Some(t))
            }
        }
    }

    /// Runs the workload once; returns (ops, per-op cost ns).
    fn workload(
        &self,
        w: Workload,
        p: &mut Spawned,
        port: Option<&str>,
    ) -> anyhow::Result<(u64, f64)> {
        let n = self.opts.ops;
        match w {
            Workload::PingPong | Workload::Churn => {
                let (cmd, done) = if w == Workload::PingPong {
                    (format!("pp {n}"), "pp ".to_owned())
                } else {
                    (n.to_string(), format!("done {n}"))
                };
                let t = Instant::now();
                p.write_line(&cmd)?;
                p.wait_for(TIMEOUT, |l| l.starts_with(&done))?;
                Ok((n, t.elapsed().as_nanos() as f64 / n as f64))
            }
            Workload::Http => {
                let secs = 3;
                let cpu0 = cpu_of(p.pid());
                // A copy of the binary (another inode): uprobes are per file, so bpftrace's
                // `-p` would otherwise also count the load generator's own scheduler events.
                let out = Command::new(&self.client)
                    .args([
                        "load",
                        port.context("port")?,
                        &self.opts.rate.to_string(),
                        &secs.to_string(),
                    ])
                    .output()?;
                let cpu = cpu_of(p.pid()).saturating_sub(cpu0);
                let text = String::from_utf8_lossy(&out.stdout);
                let f: Vec<u64> = text
                    .split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect();
                let [sent, ok, errors] = f[..] else {
                    bail!("load generator said {text:?}");
                };
                if errors > 0 || ok != sent {
                    eprintln!("warning: {errors} failed requests of {sent}");
                }
                Ok((ok.max(1), cpu.as_nanos() as f64 / ok.max(1) as f64))
            }
        }
    }

    fn measure(&self, w: Workload, mode: Mode) -> anyhow::Result<Sample> {
        let (mut p, port) = self.start_target(w)?;
        let out = self.tmp.join("bench.gtc");
        let mut tracer = self.start_tracer(mode, p.pid(), &out)?;
        let tcpu0 = tracer.as_ref().map(|t| cpu_of(t.pid()));
        let (ops, ns_per_op) = self.workload(w, &mut p, port.as_deref())?;
        let mut s = Sample {
            ns_per_op,
            ..Sample::default()
        };
        if let Some(mut t) = tracer.take() {
            // Let gtrace drain what is buffered before its CPU is read.
            std::thread::sleep(Duration::from_millis(300));
            let tcpu = cpu_of(t.pid()).saturating_sub(tcpu0.unwrap_or_default());
            if mode == Mode::Bpftrace {
                // bpftrace prints its maps and exits on SIGINT (not on SIGTERM).
                // SAFETY: kill(2) on our own child's pid.
                unsafe { libc::kill(libc::pid_t::try_from(t.pid())?, libc::SIGINT) };
            } else {
                t.signal(Signal::Term)?;
            }
            t.wait_exit(TIMEOUT)?;
            // bpftrace prints its maps on exit: read what is left of its output.
            while t.next_line(Duration::from_millis(200)).is_ok() {}
            s.tracer_cpu = tcpu;
            let hits = if mode == Mode::Bpftrace {
                // `@[uprobe:/path:runtime.gopark]: 1234`
                t.stdout_seen()
                    .iter()
                    .chain(std::iter::once(&t.stderr()))
                    .flat_map(|l| l.lines().map(str::to_owned).collect::<Vec<_>>())
                    .filter(|l| l.starts_with("@["))
                    .filter_map(|l| {
                        l.rsplit(' ')
                            .next()
                            .and_then(|v| v.trim().parse::<u64>().ok())
                    })
                    .sum::<u64>()
            } else {
                let rep = Command::new(&self.gtrace)
                    .args(["report", "--json"])
                    .arg(&out)
                    .output()?;
                let v: serde_json::Value =
                    serde_json::from_slice(&rep.stdout).with_context(|| {
                        format!("gtrace report: {}", String::from_utf8_lossy(&rep.stderr))
                    })?;
                let probes = v["losses"]["probes"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                s.drops = v["losses"]["dropped"].as_u64().unwrap_or(0);
                s.events = v["events"].as_object().map_or(0, |m| {
                    m.values().filter_map(serde_json::Value::as_u64).sum()
                });
                probes
                    .iter()
                    .filter(|p| GTRACE_UPROBES.iter().any(|n| p["probe"] == *n))
                    .filter_map(|p| p["hits"].as_u64())
                    .sum()
            };
            s.hits_per_op = hits as f64 / ops as f64;
        }
        let _ = p.write_line("quit");
        let _ = p.wait_exit(Duration::from_secs(10));
        Ok(s)
    }
}

pub(crate) fn run(opts: Opts) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    if !Command::new(&cargo)
        .args(["build", "--release", "-p", "tracer-user", "--bin", "gtrace"])
        .status()?
        .success()
    {
        bail!("building gtrace (release) failed");
    }
    let gtrace = crate::bench::root().join("target/release/gtrace");
    let tc = go::newest()?;
    let workloads = [Workload::PingPong, Workload::Churn, Workload::Http];
    let mut bins = Vec::new();
    for w in workloads {
        bins.push((w, fixture::build(w.fixture(), &tc, Variant::Default)?));
    }
    let have_bpftrace = Command::new("bpftrace")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let mut modes = vec![Mode::Untraced, Mode::Gtrace, Mode::Empty];
    if have_bpftrace {
        modes.push(Mode::Bpftrace);
    } else {
        eprintln!(
            "bpftrace is not installed (Debian package `bpftrace`, see setup.sh): its column is left out"
        );
    }
    let tmp = std::env::temp_dir().join(format!("gtrace-bench-overhead-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let client = tmp.join("httpload-client");
    std::fs::copy(
        &bins
            .iter()
            .find(|(w, _)| *w == Workload::Http)
            .expect("built")
            .1,
        &client,
    )?;
    let bench = Bench {
        gtrace,
        client,
        bins,
        tmp: tmp.clone(),
        opts,
    };
    // samples[w][m] = samples over rounds.
    let mut samples: Vec<Vec<Vec<Sample>>> = vec![vec![Vec::new(); modes.len()]; workloads.len()];
    for round in 0..bench.opts.rounds {
        for (wi, w) in workloads.iter().enumerate() {
            for (mi, m) in modes.iter().enumerate() {
                let s = match bench.measure(*w, *m) {
                    Ok(s) => s,
                    // One failed run (a tracer that misbehaved) loses one sample, not the bench.
                    Err(e) => {
                        eprintln!("round {round}: {w:?} under {}: {e:#}", m.name());
                        continue;
                    }
                };
                eprintln!(
                    "round {round}: {w:?} {}: {:.0} ns/op, {:.2} hits/op, {} events, {} drops, tracer CPU {:?}",
                    m.name(),
                    s.ns_per_op,
                    s.hits_per_op,
                    s.events,
                    s.drops,
                    s.tracer_cpu
                );
                samples[wi][mi].push(s);
            }
        }
    }
    let mut table = format!(
        "Measured by `cargo xtask bench overhead` ({rounds} interleaved rounds, medians; Go {ver}; \
         {ops} round trips / goroutines per run; http at {rate} requests/s for 3 s; gtrace \
         release build, `record -p --max-overhead off`; kernel {kernel}; 2 cores shared by \
         target, tracer and load generator; load average at the end: {load}).\n\n\
         | workload (cost per …) | untraced | gtrace | empty probes | bpftrace count() | probe hits/op (gtrace) | gtrace ns/event | empty ns/event | bpftrace ns/event | gtrace ÷ empty (goal ≤ 1.25) | gtrace ÷ bpftrace (goal ≤ 0.25) |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
        rounds = bench.opts.rounds,
        ver = tc.version,
        ops = bench.opts.ops,
        rate = bench.opts.rate,
        load = std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
    );
    let mut cpu_lines = String::new();
    for (wi, w) in workloads.iter().enumerate() {
        let col = |m: Mode| modes.iter().position(|x| *x == m).map(|i| &samples[wi][i]);
        let med =
            |m: Mode, f: fn(&Sample) -> f64| col(m).map(|v| median(v.iter().map(f).collect()));
        let base = med(Mode::Untraced, |s| s.ns_per_op).unwrap_or(f64::NAN);
        let per_event = |m: Mode| -> Option<f64> {
            let cost = med(m, |s| s.ns_per_op)?;
            let hits = med(m, |s| s.hits_per_op)?;
            Some((cost - base) / hits)
        };
        let fmt = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), |v| format!("{v:.0} ns"));
        let (g, e, b) = (
            per_event(Mode::Gtrace),
            per_event(Mode::Empty),
            per_event(Mode::Bpftrace),
        );
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
            _ => "–".to_owned(),
        };
        let _ = writeln!(
            table,
            "| {:?} ({}) | {} | {} | {} | {} | {:.2} | {} | {} | {} | {} | {} |",
            w,
            w.unit(),
            fmt(med(Mode::Untraced, |s| s.ns_per_op)),
            fmt(med(Mode::Gtrace, |s| s.ns_per_op)),
            fmt(med(Mode::Empty, |s| s.ns_per_op)),
            fmt(med(Mode::Bpftrace, |s| s.ns_per_op)),
            med(Mode::Gtrace, |s| s.hits_per_op).unwrap_or(f64::NAN),
            fmt(g),
            fmt(e),
            fmt(b),
            ratio(g, e),
            ratio(g, b),
        );
        if let Some(v) = col(Mode::Gtrace) {
            let ev: u64 = v.iter().map(|s| s.events).sum();
            let cpu: Duration = v.iter().map(|s| s.tracer_cpu).sum();
            let drops: u64 = v.iter().map(|s| s.drops).sum();
            let _ = writeln!(
                cpu_lines,
                "- {w:?}: gtrace's own CPU {:.0} ms per million events ({} events over {} runs, {} lost)",
                cpu.as_secs_f64() * 1e3 / (ev.max(1) as f64 / 1e6),
                ev,
                v.len(),
                drops
            );
        }
    }
    if !have_bpftrace {
        table += "\nbpftrace was not installed: its columns are empty.\n";
    }
    let _ = write!(
        table,
        "\ngtrace's own CPU (goal ≤ 100 ms per million events):\n{cpu_lines}"
    );
    table += &sustain(&bench)?;
    table += &sustain_synthetic(&bench)?;
    println!("{table}");
    let _ = std::fs::remove_dir_all(&tmp);
    crate::bench::write_section("overhead", &table)
}

/// Ends a sustained run: lets gtrace drain for 300 ms, takes its CPU time since `tcpu0`,
/// stops it (SIGTERM, as Ctrl-C) and the target.
fn end_sustained(t: &mut Spawned, p: &mut Spawned, tcpu0: Duration) -> anyhow::Result<Duration> {
    std::thread::sleep(Duration::from_millis(300));
    let tcpu = cpu_of(t.pid()).saturating_sub(tcpu0);
    t.signal(Signal::Term)?;
    t.wait_exit(TIMEOUT)?;
    let _ = p.write_line("quit");
    let _ = p.wait_exit(Duration::from_secs(10));
    Ok(tcpu)
}

/// Events per second of the synthetic sustained run.
const SYNTHETIC_RATE: u64 = 1_100_000;

/// Keeps `gtrace record --bench-parks` on a ping-pong target calling `getppid`
/// [`SYNTHETIC_RATE`] times a second for `opts.sustain` (each call a park-shaped event with a
/// 10-frame stack from a tracepoint, tracer-ebpf `probes/bench.rs`: the ring buffer, reader
/// and capture writer at a rate the Go probes cannot produce here); returns a paragraph.
fn sustain_synthetic(bench: &Bench) -> anyhow::Result<String> {
    let secs = bench.opts.sustain;
    if secs.is_zero() {
        return Ok(String::new());
    }
    let (mut p, _) = bench.start_target(Workload::PingPong)?;
    let out = bench.tmp.join("synthetic.gtc");
    let mut t = bench.start_gtrace(p.pid(), &out, &["--bench-parks"])?;
    let tcpu0 = cpu_of(t.pid());
    p.write_line(&format!("getppid {} {SYNTHETIC_RATE}", secs.as_secs_f64()))?;
    let line = p
        .wait_for(secs + TIMEOUT, |l| l.starts_with("getppid "))?
        .pop()
        .unwrap_or_default();
    let calls: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("getppid reply")?;
    let wall: f64 = line
        .split_whitespace()
        .nth(2)
        .and_then(|c| c.parse().ok())
        .context("getppid reply")?;
    let tcpu = end_sustained(&mut t, &mut p, tcpu0)?;
    // gtrace's closing lines ("wrote FILE: N events in …", "lost events: D dropped …"):
    // reporting tens of millions of made-up parks would only measure `report`.
    let err = t.stderr();
    let after = |marker: &str| -> Option<u64> {
        let rest = &err[err.find(marker)? + marker.len()..];
        rest.split_whitespace().next()?.parse().ok()
    };
    let events: u64 = err
        .lines()
        .find(|l| l.starts_with("wrote "))
        .and_then(|l| {
            l.split(": ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .with_context(|| format!("no `wrote` line from gtrace: {err}"))?;
    let drops = after("lost events: ").with_context(|| format!("no losses line: {err}"))?;
    let bytes = std::fs::metadata(&out).map_or(0, |m| m.len());
    let _ = std::fs::remove_file(&out);
    Ok(format!(
        "\nSustained, synthetic (same goal): the target calls `getppid` {} k times a second \
         for {wall:.0} s and each call writes a park-shaped event with a 10-frame stack into \
         gtrace's ring buffer (`record --bench-parks`, a tracepoint program, tracer-ebpf \
         `probes/bench.rs`: ring buffer, reader and capture writer as in any capture): {calls} \
         calls, {events} events recorded ({:.0} bytes each in the capture), {:.0} k events/s, \
         {drops} lost; gtrace's CPU {:.0} ms per million events.\n",
        SYNTHETIC_RATE / 1000,
        bytes as f64 / events.max(1) as f64,
        events as f64 / wall / 1e3,
        tcpu.as_secs_f64() * 1e3 / (events.max(1) as f64 / 1e6),
    ))
}

/// Keeps `gtrace record` on a repeated ping-pong for `opts.sustain`; returns a paragraph.
fn sustain(bench: &Bench) -> anyhow::Result<String> {
    let secs = bench.opts.sustain;
    if secs.is_zero() {
        return Ok(String::new());
    }
    let (mut p, _) = bench.start_target(Workload::PingPong)?;
    let out = bench.tmp.join("sustain.gtc");
    let mut t = bench
        .start_tracer(Mode::Gtrace, p.pid(), &out)?
        .context("tracer")?;
    let tcpu0 = cpu_of(t.pid());
    let start = Instant::now();
    while start.elapsed() < secs {
        p.write_line("pp 20000")?;
        p.wait_for(TIMEOUT, |l| l.starts_with("pp "))?;
    }
    let wall = start.elapsed();
    let tcpu = end_sustained(&mut t, &mut p, tcpu0)?;
    let rep = Command::new(&bench.gtrace)
        .args(["report", "--json"])
        .arg(&out)
        .output()?;
    let v: serde_json::Value = serde_json::from_slice(&rep.stdout)?;
    let events: u64 = v["events"].as_object().map_or(0, |m| {
        m.values().filter_map(serde_json::Value::as_u64).sum()
    });
    let drops = v["losses"]["dropped"].as_u64().unwrap_or(0);
    let _ = std::fs::remove_file(&out);
    Ok(format!(
        "\nSustained (goal: no loss at ≥ 1 M events/s for 60 s): `gtrace record` on back-to-back \
         ping-pongs for {:.0} s: {} events, {:.0} k events/s, {} lost; gtrace's CPU {:.0} ms per \
         million events.\n",
        wall.as_secs_f64(),
        events,
        events as f64 / wall.as_secs_f64() / 1e3,
        drops,
        tcpu.as_secs_f64() * 1e3 / (events.max(1) as f64 / 1e6),
    ))
}
