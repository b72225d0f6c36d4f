//! Go's own execution tracer as ground truth for `gtrace latency`: the delay profiles
//! `go tool trace -pprof=TYPE trace.out` derives from a `runtime/trace` recording, decoded and
//! summed per goroutine start function, and the GC cycles `GODEBUG=gctrace=1` prints.
//!
//! What each profile counts, read from `cmd/trace/pprof.go` of each version (the numbers gtrace
//! is compared with only mean something under these rules):
//!
//! - Go 1.19 … 1.21 (the old trace format): one record per event with a link to the event
//!   that ended it, keyed by the stack *of that event*. `net`: `GoBlockNet` → its unblock.
//!   `sync`: `GoBlockSend/Recv/Select/Sync/Cond/GC` → unblock. `syscall`: `GoSysCall` →
//!   `GoSysExit`, which exists only for syscalls that lost their P (blocked long enough for
//!   sysmon to retake it). `sched`: `GoUnblock` and `GoCreate` → the goroutine's next start,
//!   keyed by the stack of whoever readied or created it; preemptions and yields
//!   (`GoPreempt`, `GoSched`) are not counted at all.
//! - Go 1.22 and later (`internal/trace` state transitions): a record runs from a goroutine's
//!   transition into a state to its next transition out of it, keyed by the stack of the event
//!   that started it. `net`: waiting with reason `network`; `sync`: waiting with a reason
//!   containing `chan`, `sync` or `select`; `syscall`: every syscall, blocking or not;
//!   `sched`: runnable, for any cause. The stack of a preemption or yield is the goroutine's
//!   own; the stack of an unblock is the waker's (none when the runtime woke it from the
//!   scheduler: netpoll, timers), so a wakee's scheduling delay is charged to its waker.
//!
//! Go 1.22 … 1.25's `cmd/trace` drops every transition event *without a stack* before looking
//! at it — the ends of intervals too (a syscall ending after its P was retaken, a preempted
//! goroutine starting again, a netpoll unblock): a tracked interval then never ends (the
//! pipe reader's syscalls and the spinners' preemption waits vanish) or runs on to the next
//! transition that has a stack (the socket reader's `net` wait swallows its runnable and
//! running time: 3.7 s of a 4 s window instead of ~2.2 s). Go 1.26 removed that filter
//! (`cmd/trace/pprof.go`, `makeComputePprofFunc`), and its trace reader reads every format
//! since 1.22, so [`analyzer`] picks the newest installed toolchain for those traces.
//!
//! Records are summed by the *start function* of their stack: its bottom-most frame (the
//! tracer's stacks do not include `runtime.goexit`), the function a test goroutine runs.

use std::{collections::BTreeMap, io::Read as _, path::Path, process::Command};

use anyhow::{Context as _, bail, ensure};
use prost::Message as _;
use tracer_user::output::pprof::Profile;

use crate::go::Toolchain;

/// The largest profile accepted, compressed or not: Go's profiles of a few seconds' trace are
/// kilobytes; anything near this is not one.
const MAX_PROFILE_BYTES: u64 = 64 << 20;

/// One of the delay profiles `go tool trace -pprof=TYPE` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `sched`: time runnable, waiting for a P.
    Sched,
    /// `sync`: time blocked on channels, `select` and `sync` primitives.
    Sync,
    /// `syscall`: time in system calls.
    Syscall,
    /// `net`: time blocked on network I/O (netpoll).
    Net,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 4] = [Kind::Sched, Kind::Sync, Kind::Syscall, Kind::Net];

    /// The `-pprof=` value.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Sched => "sched",
            Kind::Sync => "sync",
            Kind::Syscall => "syscall",
            Kind::Net => "net",
        }
    }
}

/// One sample of a delay profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Function names, leaf first, inlined frames expanded (innermost first); empty when the
    /// tracer recorded no stack for the event.
    pub frames: Vec<String>,
    /// How many intervals were summed into this record.
    pub count: i64,
    /// Their total duration, nanoseconds.
    pub nanos: i64,
}

impl Record {
    /// The bottom-most frame: the start function of the goroutine whose stack this is.
    pub fn start_function(&self) -> Option<&str> {
        self.frames
            .iter()
            .rev()
            .map(String::as_str)
            .find(|f| *f != "runtime.goexit")
    }

    /// True if `function` is one of the frames.
    pub fn has_frame(&self, function: &str) -> bool {
        self.frames.iter().any(|f| f == function)
    }
}

/// A decoded delay profile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DelayProfile {
    /// The samples, in file order.
    pub records: Vec<Record>,
}

impl DelayProfile {
    /// Decodes a profile as `go tool trace -pprof` writes it (gzip'd `profile.proto`; plain
    /// protobuf is accepted too). The delay is the sample value typed `delay`, the count the
    /// one typed `contentions`.
    pub fn decode(bytes: &[u8]) -> anyhow::Result<Self> {
        let raw;
        let proto = if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(bytes)
                .take(MAX_PROFILE_BYTES + 1)
                .read_to_end(&mut out)
                .context("the profile is not valid gzip")?;
            ensure!(
                out.len() as u64 <= MAX_PROFILE_BYTES,
                "the profile inflates beyond {MAX_PROFILE_BYTES} bytes"
            );
            raw = out;
            &raw[..]
        } else {
            bytes
        };
        let p = Profile::decode(proto).context("the profile is not a profile.proto message")?;
        let string = |i: i64| -> anyhow::Result<&str> {
            usize::try_from(i)
                .ok()
                .and_then(|i| p.string_table.get(i))
                .map(String::as_str)
                .with_context(|| format!("string index {i} is out of the string table"))
        };
        let mut delay = None;
        let mut count = None;
        for (i, t) in p.sample_type.iter().enumerate() {
            match string(t.r#type)? {
                "delay" => delay = Some(i),
                "contentions" => count = Some(i),
                _ => {}
            }
        }
        let delay = delay.context("the profile has no `delay` sample type")?;
        let functions: BTreeMap<u64, &str> = p
            .function
            .iter()
            .map(|f| Ok((f.id, string(f.name)?)))
            .collect::<anyhow::Result<_>>()?;
        let locations: BTreeMap<u64, Vec<&str>> = p
            .location
            .iter()
            .map(|l| {
                let names = l
                    .line
                    .iter()
                    .map(|line| {
                        functions.get(&line.function_id).copied().with_context(|| {
                            format!(
                                "location {} names missing function {}",
                                l.id, line.function_id
                            )
                        })
                    })
                    .collect::<anyhow::Result<_>>()?;
                Ok((l.id, names))
            })
            .collect::<anyhow::Result<_>>()?;
        let mut records = Vec::with_capacity(p.sample.len());
        for s in &p.sample {
            let mut frames = Vec::new();
            for id in &s.location_id {
                let names = locations
                    .get(id)
                    .with_context(|| format!("a sample names missing location {id}"))?;
                frames.extend(names.iter().map(|n| (*n).to_owned()));
            }
            let value = |i: usize| {
                s.value
                    .get(i)
                    .copied()
                    .with_context(|| format!("a sample has no value {i}"))
            };
            records.push(Record {
                frames,
                count: count.map(value).transpose()?.unwrap_or(0),
                nanos: value(delay)?,
            });
        }
        Ok(Self { records })
    }

    /// Seconds per start function (records without a stack are left out).
    pub fn seconds_by_start(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for r in &self.records {
            if let Some(f) = r.start_function() {
                *out.entry(f.to_owned()).or_insert(0.0) += nanos_to_seconds(r.nanos);
            }
        }
        out
    }

    /// Seconds of the records whose start function is `start` and that `keep` accepts.
    pub fn seconds_where(&self, start: &str, keep: impl Fn(&Record) -> bool) -> f64 {
        self.records
            .iter()
            .filter(|r| r.start_function() == Some(start) && keep(r))
            .map(|r| nanos_to_seconds(r.nanos))
            .sum()
    }

    /// Seconds of the records whose start function is `start`.
    pub fn seconds(&self, start: &str) -> f64 {
        self.seconds_where(start, |_| true)
    }
}

#[allow(clippy::cast_precision_loss)] // durations of seconds: far below 2^53 ns
fn nanos_to_seconds(nanos: i64) -> f64 {
    nanos as f64 / 1e9
}

/// The toolchain whose `go tool trace` analyzes traces written by programs built with `tc`:
/// `tc` itself (the old trace format of Go ≤ 1.21 is read by its own tool, with its own
/// rules), except Go 1.22 … 1.25, whose `-pprof` loses intervals (module docs): for those, the
/// newest installed toolchain, which reads their format with the fixed analysis.
pub fn analyzer(tc: &Toolchain) -> anyhow::Result<Toolchain> {
    if !tc.at_least(1, 22) || tc.at_least(1, 26) {
        return Ok(tc.clone());
    }
    let newest = crate::go::newest()?;
    ensure!(
        newest.at_least(1, 26),
        "analyzing Go {} traces needs `go tool trace` of Go 1.26 or later (earlier ones drop \
         stackless transitions); the newest installed toolchain is {}",
        tc.version,
        newest.version
    );
    Ok(newest)
}

/// Runs `go tool trace -pprof=KIND TRACE` with the [`analyzer`] of `tc` (the toolchain that
/// built the traced program) and decodes its output.
pub fn pprof(tc: &Toolchain, kind: Kind, trace: &Path) -> anyhow::Result<DelayProfile> {
    pprof_with(&analyzer(tc)?, kind, trace)
}

/// Runs `go tool trace -pprof=KIND TRACE` of `tool` exactly and decodes its output.
pub fn pprof_with(tool: &Toolchain, kind: Kind, trace: &Path) -> anyhow::Result<DelayProfile> {
    let mut cmd: Command = tool.command();
    cmd.arg("tool")
        .arg("trace")
        .arg(format!("-pprof={}", kind.name()))
        .arg(trace);
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    DelayProfile::decode(&out.stdout).with_context(|| format!("decoding the output of {cmd:?}"))
}

/// All four profiles of one trace.
pub fn pprof_all(tc: &Toolchain, trace: &Path) -> anyhow::Result<BTreeMap<Kind, DelayProfile>> {
    Kind::ALL
        .into_iter()
        .map(|k| Ok((k, pprof(tc, k, trace)?)))
        .collect()
}

/// One `GODEBUG=gctrace=1` line: `gc N @T s P%: A+B+C ms clock, …`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GcLine {
    /// The cycle number N.
    pub cycle: u64,
    /// T: when the cycle began (sweep termination started), seconds since the runtime
    /// started.
    pub at_s: f64,
    /// B: wall-clock milliseconds of the concurrent mark between the two pauses.
    pub mark_ms: f64,
    /// A: wall-clock milliseconds of the sweep-termination stop-the-world phase (from the
    /// runtime's `work.tSweepTerm`, taken before it starts stopping, to `work.tMark`).
    pub sweep_term_ms: f64,
    /// C: wall-clock milliseconds of the mark-termination phase (`work.tMarkTerm` to
    /// `work.tEnd`, taken after the world restarted).
    pub mark_term_ms: f64,
}

impl GcLine {
    /// When its two stop-the-world pauses began, seconds since the runtime started: sweep
    /// termination at T, mark termination after the first pause and the concurrent mark.
    pub fn pause_starts(&self) -> [f64; 2] {
        [
            self.at_s,
            self.at_s + (self.sweep_term_ms + self.mark_ms) / 1e3,
        ]
    }
}

/// The `gc N @…` lines `GODEBUG=gctrace=1` printed in `stderr` (other lines are ignored; a
/// line whose clock field does not parse has zero phase times).
pub fn gctrace(stderr: &str) -> Vec<GcLine> {
    stderr
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("gc ")?;
            let (n, rest) = rest.split_once(' ')?;
            if !rest.starts_with('@') {
                return None;
            }
            let cycle = n.parse().ok()?;
            let at_s = rest[1..]
                .split_once("s ")
                .and_then(|(t, _)| t.parse().ok())
                .unwrap_or(0.0);
            let clock = rest
                .split_once(": ")
                .and_then(|(_, r)| r.split_once(" ms clock"))
                .map(|(c, _)| c.split('+').map(str::parse::<f64>).collect::<Vec<_>>());
            let (sweep_term_ms, mark_ms, mark_term_ms) = match clock.as_deref() {
                Some([Ok(a), Ok(b), Ok(c)]) => (*a, *b, *c),
                _ => (0.0, 0.0, 0.0),
            };
            Some(GcLine {
                cycle,
                at_s,
                mark_ms,
                sweep_term_ms,
                mark_term_ms,
            })
        })
        .collect()
}

/// The cycle numbers of the `gc N @…` lines `GODEBUG=gctrace=1` printed in `stderr` (one line
/// per completed cycle; other lines are ignored).
pub fn gctrace_cycles(stderr: &str) -> Vec<u64> {
    gctrace(stderr).into_iter().map(|l| l.cycle).collect()
}

/// How many cycles gctrace reported with a number in `(after, upto]`: the cycles that
/// completed between two readings of the runtime's cycle counter.
pub fn gctrace_cycles_between(stderr: &str, after: u64, upto: u64) -> usize {
    gctrace_cycles(stderr)
        .into_iter()
        .filter(|n| (after + 1..=upto).contains(n))
        .count()
}

/// One stop-the-world interval of a `runtime/trace` recording: a `stop-the-world (REASON)`
/// range as the newest toolchain's `go tool trace -d=parsed` prints it. Go's tracer begins it
/// when `stopTheWorldWithSema` starts and ends it in `startTheWorldWithSema` once the Ps run
/// again — the interval `gtrace latency` reports, measured by a second observer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StwRange {
    /// The stop reason, e.g. `GC mark termination`.
    pub reason: String,
    /// Trace clock at the begin, ns (monotonic for Go ≥ 1.22; from the trace start before).
    pub begin_ns: u64,
    /// Trace clock at the end, ns.
    pub end_ns: u64,
}

impl StwRange {
    /// Length in nanoseconds.
    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.begin_ns)
    }
}

/// The stop-the-world ranges of `trace`, in trace order, read with the newest installed
/// toolchain's `go tool trace -d=parsed` (it reads every trace format since Go 1.11, converting
/// the old one). The output is streamed: a few seconds of trace print tens of MB.
pub fn stw_ranges(trace: &Path) -> anyhow::Result<Vec<StwRange>> {
    use std::io::BufRead as _;
    let tool = crate::go::newest()?;
    let mut cmd = tool.command();
    cmd.arg("tool")
        .arg("trace")
        .arg("-d=parsed")
        .arg(trace)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("cannot run {cmd:?}"))?;
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let mut open: BTreeMap<String, u64> = BTreeMap::new();
    let mut out = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.context("reading go tool trace -d=parsed")?;
        if let Some((begin, reason, time)) = parse_stw_line(&line) {
            if begin {
                open.insert(reason.to_owned(), time);
            } else if let Some(begin_ns) = open.remove(reason) {
                out.push(StwRange {
                    reason: reason.to_owned(),
                    begin_ns,
                    end_ns: time,
                });
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        bail!("{cmd:?} failed ({status}): {err}");
    }
    Ok(out)
}

/// `M=… RangeBegin Time=N Name="stop-the-world (REASON)" …` → (is begin, REASON, N).
fn parse_stw_line(line: &str) -> Option<(bool, &str, u64)> {
    let begin = if line.contains(" RangeBegin ") {
        true
    } else if line.contains(" RangeEnd ") {
        false
    } else {
        return None;
    };
    let reason = line
        .split_once("Name=\"stop-the-world (")?
        .1
        .split_once(")\"")?
        .0;
    let time = line
        .split_once(" Time=")?
        .1
        .split(' ')
        .next()?
        .parse()
        .ok()?;
    Some((begin, reason, time))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asset(name: &str) -> DelayProfile {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/gotrace")
            .join(name);
        DelayProfile::decode(&std::fs::read(&path).expect("asset")).expect("decodes")
    }

    /// (start function, count, nanoseconds) per start function, as Go's own decoder sees the
    /// same file: `go tool pprof -raw FILE`, samples summed by the last line of their last
    /// location. The assets are real `go tool trace -pprof` outputs of the `latency` fixture.
    fn check(name: &str, want: &[(&str, i64, i64)], no_stack: (i64, i64)) {
        let p = asset(name);
        let mut got: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        let mut none = (0, 0);
        for r in &p.records {
            let e = match r.start_function() {
                Some(f) => got.entry(f).or_default(),
                None => &mut none,
            };
            e.0 += r.count;
            e.1 += r.nanos;
        }
        let want: BTreeMap<&str, (i64, i64)> = want.iter().map(|&(f, c, n)| (f, (c, n))).collect();
        assert_eq!(got, want, "{name}");
        assert_eq!(none, no_stack, "{name}: records without a stack");
    }

    #[test]
    fn decodes_go_1_27_sched() {
        check(
            "sched-go1.27.pb.gz",
            &[
                ("main.gcLoop", 50, 2_197_849_472),
                ("main.kicked", 3, 2368),
                ("main.kicker", 94, 576_375_104),
                ("main.mutexHolder", 31, 44032),
                ("main.spinA", 63, 1_700_465_216),
                ("main.spinB", 65, 1_729_151_360),
                ("main.spinC", 63, 1_721_557_312),
                ("main.spinD", 62, 1_853_303_616),
                ("runtime.bgsweep", 46, 2_063_237_824),
                ("runtime.gcBgMarkWorker", 31, 713_159_744),
            ],
            (604, 7_635_032_128),
        );
        // The spinners' stacks are their own, taken at an asynchronous preemption.
        let p = asset("sched-go1.27.pb.gz");
        let spin = p.seconds_where("main.spinA", |r| r.has_frame("runtime.asyncPreempt"));
        assert!(spin > 1.6, "{spin}");
        let by_start = p.seconds_by_start();
        assert!((by_start["main.spinA"] - 1.700_465_216).abs() < 1e-9);
    }

    #[test]
    fn decodes_go_1_27_syscall() {
        check(
            "syscall-go1.27.pb.gz",
            &[
                ("main.netFeeder", 43, 9_701_696),
                ("main.netReader", 78, 1_009_472),
                ("main.pipeFeeder", 42, 27_251_008),
                ("main.pipeReader", 41, 2_050_534_656),
                ("main.traceOnSignal", 1, 10368),
                (
                    "runtime/trace.(*traceMultiplexer).startLocked.func1",
                    32,
                    142_656,
                ),
            ],
            (0, 0),
        );
    }

    #[test]
    fn decodes_go_1_19_sched_and_syscall() {
        check(
            "sched-go1.19.pb.gz",
            &[
                ("main.kicked", 1, 4344),
                ("main.kicker", 56, 244_208_692),
                ("main.mutexHolder", 35, 450_807),
                ("main.traceOnSignal", 8, 121_137_762),
                ("runtime.gcBgMarkWorker", 1, 2_455_571),
            ],
            (0, 0),
        );
        check(
            "syscall-go1.19.pb.gz",
            &[
                ("main.netFeeder", 1, 64147),
                ("main.netReader", 1, 843_378),
                ("main.pipeFeeder", 1, 23371),
                ("main.pipeReader", 27, 1_507_475_971),
            ],
            (0, 0),
        );
    }

    #[test]
    fn rejects_garbage() {
        assert!(DelayProfile::decode(&[0x1f, 0x8b, 0, 1, 2]).is_err());
        assert!(DelayProfile::decode(b"\xff\xff\xff\xff").is_err());
        // A valid empty message has no `delay` sample type.
        assert!(DelayProfile::decode(&[]).is_err());
    }

    #[test]
    fn counts_gctrace_cycles() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/gotrace/gctrace-go1.19.txt"),
        )
        .unwrap();
        assert_eq!(gctrace_cycles(&text), (1..=9).collect::<Vec<_>>());
        // The fixture printed "trace-start 2" and "trace-done 5" on that run.
        assert_eq!(gctrace_cycles_between(&text, 2, 5), 3);
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/gotrace/gctrace-go1.27.txt"),
        )
        .unwrap();
        assert_eq!(gctrace_cycles_between(&text, 5, 15), 10);
        assert!(gctrace_cycles("gc 1 @0.1s\nnot gc\ngcx 2 @1\ngc 3 x\n") == vec![1]);
        let l = gctrace(&text)[0];
        assert_eq!(l.cycle, 1);
        assert!((l.at_s - 0.002).abs() < 1e-9 && (l.mark_ms - 7.5).abs() < 1e-9);
        let [a, b] = l.pause_starts();
        assert!(
            (a - 0.002).abs() < 1e-9 && (b - (0.002 + 0.007_571)).abs() < 1e-9,
            "{a} {b}"
        );
        assert!((l.sweep_term_ms - 0.071).abs() < 1e-9 && (l.mark_term_ms - 0.052).abs() < 1e-9);
    }

    #[test]
    fn stw_lines_parse() {
        let b = r#"M=3665 P=0 G=1 RangeBegin Time=25462694669952 Name="stop-the-world (GC sweep termination)" Scope=Goroutine(1)"#;
        let e = r#"M=3665 P=0 G=1 RangeEnd Time=25462694946944 Name="stop-the-world (GC sweep termination)" Scope=Goroutine(1) Attributes=[]"#;
        let other = r#"M=3665 P=0 G=1 RangeBegin Time=25462694623616 Name="GC concurrent mark phase" Scope=None"#;
        assert_eq!(
            parse_stw_line(b),
            Some((true, "GC sweep termination", 25_462_694_669_952))
        );
        assert_eq!(
            parse_stw_line(e),
            Some((false, "GC sweep termination", 25_462_694_946_944))
        );
        assert_eq!(parse_stw_line(other), None);
        assert_eq!(parse_stw_line("M=1 P=0 G=1 Label Time=5"), None);
    }
}
