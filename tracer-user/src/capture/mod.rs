//! The capture file written by `gtrace record` and read by `gtrace report`.
//!
//! Layout: [`MAGIC`], a little-endian `u32` [`VERSION`], then length-delimited protobuf
//! [`Record`]s (varint length + message): one [`Header`], the raw kernel event records
//! exactly as the ring buffer delivered them (decoded by `tracer_common::event::decode`, the
//! same code as live), one [`Symbols`] table (every PC the events mention, resolved at record
//! time so a report needs neither the binary nor the process), and one [`Footer`] with the
//! counters (hits, probe failures, drops). A capture cut short (no footer) still reads: the
//! report says so. When the overhead governor sampled the hot probes, [`Gap`] records (the
//! intervals they did not emit) and [`GovernorNote`] records (each change of duty) are
//! interleaved with the events; a gap is written when it opens (no end) and again when it
//! closes, so a capture cut short mid-gap still knows it.
//!
//! Version 2 stores each distinct user stack once: the first park or ready record with a
//! given stack is preceded by a [`Body::Stack`] (id + PCs), and every park or ready record is
//! an [`Body::EventStack`] (the stack's id, then the record's bytes before its stack array).
//! Ping-pong-like workloads park and wake at the same few stacks millions of times, and the
//! bytes written were gtrace's largest cost per event (the kernel's page-cache copy); the
//! reader rebuilds the records exactly as the kernel delivered them. Version 1 (every record
//! whole) is still read.
//!
//! The messages are prost-derive structs written by hand (no protoc); tags are append-only.

pub mod symbols;

use std::collections::HashMap;
use std::io::{self, Read, Write};

use prost::Message as _;
use tracer_common::event::Raw;

pub use symbols::{PcSet, SymbolTable};

/// First bytes of every capture.
pub const MAGIC: &[u8; 15] = b"GTRACE-CAPTURE\n";
/// Format version after the magic (written).
pub const VERSION: u32 = 2;
/// Oldest format version read.
pub const OLDEST_VERSION: u32 = 1;
/// Protobuf key of [`Body::EventStack`] (tag 9, length-delimited), written by hand in
/// [`Writer::event_raw`].
const EVENT_STACK_KEY: u8 = (9 << 3) | 2;
/// Distinct stacks the writer remembers; past that it forgets them all (each one is then
/// defined again, under a new id, when next seen): bounds the writer's memory at a few MiB.
const MAX_STACKS: usize = 1 << 16;
/// Protobuf key of [`Body::Event`] (tag 2, length-delimited), written by hand in
/// [`Writer::event`].
const EVENT_KEY: u8 = (2 << 3) | 2;
/// Largest record accepted when reading (a symbols table of a huge capture stays far below).
pub const MAX_RECORD: usize = 256 << 20;

/// One record of the file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Record {
    /// The payload.
    #[prost(oneof = "Body", tags = "1, 2, 3, 4, 5, 6, 7, 8, 9")]
    pub body: Option<Body>,
}

/// What a record holds.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Body {
    /// Target and capture metadata (first record).
    #[prost(message, tag = "1")]
    Header(Header),
    /// One kernel event record, as delivered by the ring buffer.
    #[prost(bytes, tag = "2")]
    Event(Vec<u8>),
    /// Resolved PCs.
    #[prost(message, tag = "3")]
    Symbols(Symbols),
    /// Counters at the end (last record).
    #[prost(message, tag = "4")]
    Footer(Footer),
    /// One finished panic, already symbolized: a `gtrace panics --json` object
    /// (docs/json/panics.schema.json), written when its fate was known.
    #[prost(string, tag = "5")]
    Panic(String),
    /// The hot probes did not emit during this interval (sampled out by the governor).
    #[prost(message, tag = "6")]
    Gap(Gap),
    /// The governor changed the duty of the hot probes.
    #[prost(message, tag = "7")]
    Governor(GovernorNote),
    /// A user stack that [`Body::EventStack`] records after it refer to by id (version 2).
    #[prost(message, tag = "8")]
    Stack(StackDef),
    /// A park or ready record whose stack is a [`Body::Stack`]: the stack id as a varint,
    /// then the record's bytes before its stack array (version 2).
    #[prost(bytes, tag = "9")]
    EventStack(Vec<u8>),
}

/// One distinct user stack (version 2).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct StackDef {
    /// Id that later records refer to (ids are never reused within a capture).
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// The PCs, native-endian `u64`s, innermost first (the record's valid stack entries).
    #[prost(bytes = "vec", tag = "2")]
    pub pcs: Vec<u8>,
}

/// An interval during which the hot probes (park, ready, execute, yield, scheduler
/// tracepoints) were sampled out: their events are missing, their hits still counted.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message, serde::Serialize)]
pub struct Gap {
    /// Kernel time the probes were switched off.
    #[prost(uint64, tag = "1")]
    pub start_ktime_ns: u64,
    /// Kernel time they were switched on again; 0 while open (the gap then runs to the end
    /// of the capture unless a later record with the same start closes it).
    #[prost(uint64, tag = "2")]
    pub end_ktime_ns: u64,
}

/// One decision of the overhead governor.
#[derive(Clone, Copy, PartialEq, prost::Message, serde::Serialize)]
pub struct GovernorNote {
    /// Kernel time of the change.
    #[prost(uint64, tag = "1")]
    pub ktime_ns: u64,
    /// Fraction of each period the hot probes emit from now on (1 = exact).
    #[prost(double, tag = "2")]
    pub duty: f64,
    /// Estimated overhead of exact tracing, percent of the target's own CPU.
    #[prost(double, tag = "3")]
    pub full_pct: f64,
    /// Estimated overhead at the new duty, percent.
    #[prost(double, tag = "4")]
    pub chosen_pct: f64,
    /// Estimated overhead with the hot probes sampled out all the time, percent.
    #[prost(double, tag = "5")]
    pub floor_pct: f64,
    /// False when even that floor exceeds the budget.
    #[prost(bool, tag = "6")]
    pub reachable: bool,
}

/// Target and capture metadata.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Header {
    /// Target PID.
    #[prost(uint32, tag = "1")]
    pub pid: u32,
    /// Target executable path.
    #[prost(string, tag = "2")]
    pub exe: String,
    /// `go1.N.M`.
    #[prost(string, tag = "3")]
    pub go_version: String,
    /// Load bias (runtime − link-time address).
    #[prost(uint64, tag = "4")]
    pub bias: u64,
    /// `waitReason` strings, indexed by value.
    #[prost(string, repeated, tag = "5")]
    pub wait_reasons: Vec<String>,
    /// Wall-clock start, ns since the Unix epoch.
    #[prost(uint64, tag = "6")]
    pub started_unix_ns: u64,
    /// Kernel (`CLOCK_MONOTONIC`) time at start, the events' clock.
    #[prost(uint64, tag = "7")]
    pub started_ktime_ns: u64,
    /// Goroutine ids alive at attach (baseline), when they could be read.
    #[prost(uint64, repeated, tag = "8")]
    pub baseline_goids: Vec<u64>,
    /// Why there is no baseline, if there is none.
    #[prost(string, tag = "9")]
    pub baseline_note: String,
    /// Details of the baseline goroutines (same order as `baseline_goids`).
    #[prost(message, repeated, tag = "10")]
    pub baseline: Vec<Preexisting>,
    /// `--max-overhead` budget, percent; 0 = no governor (every event exact).
    #[prost(double, tag = "11")]
    pub max_overhead_pct: f64,
}

/// A goroutine alive at attach, as read from process memory.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
pub struct Preexisting {
    /// Its id.
    #[prost(uint64, tag = "1")]
    pub goid: u64,
    /// Status word (`waiting`, `runnable`, …) with the wait reason when waiting.
    #[prost(string, tag = "2")]
    pub state: String,
    /// `created by` location (`function (file:line)`), empty for the main goroutine.
    #[prost(string, tag = "3")]
    pub created_by: String,
    /// Creator goid (Go 1.21+), 0 if unknown.
    #[prost(uint64, tag = "4")]
    pub parent_goid: u64,
    /// Its start function (the outermost frame of its stack), empty if unknown.
    #[prost(string, tag = "5")]
    pub start_function: String,
}

/// PCs resolved to source frames.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Symbols {
    /// One entry per (pc, is-return-address).
    #[prost(message, repeated, tag = "1")]
    pub pcs: Vec<PcInfo>,
}

/// One resolved PC.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PcInfo {
    /// Runtime address.
    #[prost(uint64, tag = "1")]
    pub pc: u64,
    /// True when `pc` is a return address (resolved at `pc - 1`, the call).
    #[prost(bool, tag = "2")]
    pub return_address: bool,
    /// Frames, innermost (inlined) first.
    #[prost(message, repeated, tag = "3")]
    pub frames: Vec<Frame>,
}

/// A source frame.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message, serde::Serialize)]
pub struct Frame {
    /// Function name.
    #[prost(string, tag = "1")]
    pub function: String,
    /// Source file.
    #[prost(string, tag = "2")]
    pub file: String,
    /// Line.
    #[prost(uint32, tag = "3")]
    pub line: u32,
    /// Inlined into the next frame.
    #[prost(bool, tag = "4")]
    pub inlined: bool,
}

/// Counters at the end of a capture.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Footer {
    /// `duration`, `signal` or `target_exited`.
    #[prost(string, tag = "1")]
    pub stop_reason: String,
    /// Events written.
    #[prost(uint64, tag = "2")]
    pub events: u64,
    /// Ring-buffer records that failed to decode.
    #[prost(uint64, tag = "3")]
    pub decode_errors: u64,
    /// Per-probe counters.
    #[prost(message, repeated, tag = "4")]
    pub probes: Vec<ProbeCount>,
    /// Time attached, ns.
    #[prost(uint64, tag = "5")]
    pub elapsed_ns: u64,
    /// A problem found when verifying the target's code after detaching.
    #[prost(string, tag = "6")]
    pub detach_problem: String,
    /// Total time the hot probes were sampled out, ns (0 = every event exact).
    #[prost(uint64, tag = "7")]
    pub sampled_out_ns: u64,
    /// Kernel time when the probes were live: the start of the latency window (0: unknown).
    #[prost(uint64, tag = "20")]
    pub attached_ktime_ns: u64,
    /// Kernel time when the capture stopped: the end of the latency window (0: unknown).
    #[prost(uint64, tag = "21")]
    pub ended_ktime_ns: u64,
    /// True when the scheduler-latency probes were attached (`gtrace report` then shows the
    /// time breakdown).
    #[prost(bool, tag = "22")]
    pub latency_probes: bool,
    /// What the latency probes could not see in the target's Go version, one
    /// `function: effect` line each.
    #[prost(string, repeated, tag = "23")]
    pub degraded: Vec<String>,
}

/// Counters of one probe.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
pub struct ProbeCount {
    /// Probe name.
    #[prost(string, tag = "1")]
    pub probe: String,
    /// Times it fired for the target.
    #[prost(uint64, tag = "2")]
    pub hits: u64,
    /// Failed reads of target memory.
    #[prost(uint64, tag = "3")]
    pub errors: u64,
    /// Events lost to a full ring buffer.
    #[prost(uint64, tag = "4")]
    pub drops: u64,
}

impl Footer {
    /// Events lost: ring-buffer drops plus undecodable records.
    pub fn lost(&self) -> u64 {
        self.probes.iter().map(|p| p.drops).sum::<u64>() + self.decode_errors
    }
}

/// A capture file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// Reading or writing failed.
    #[error("capture I/O failed")]
    Io(#[from] io::Error),
    /// The file does not start with the capture magic.
    #[error("not a gtrace capture (bad magic); record one with `gtrace record`")]
    Magic,
    /// A format version this gtrace does not read.
    #[error(
        "capture format version {0} is not supported (this gtrace reads versions \
         {OLDEST_VERSION} to {VERSION}); use the gtrace that recorded it, or a newer one"
    )]
    Version(u32),
    /// A record is cut short or malformed.
    #[error("capture record at byte {offset} is malformed: {reason}")]
    Malformed {
        /// Byte offset of the record.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// The first record is not a header.
    #[error("the capture has no header record")]
    NoHeader,
}

/// Writes a capture.
pub struct Writer<W: Write> {
    out: W,
    buf: Vec<u8>,
    /// Stacks already defined in the file, by their bytes (a fast hash: the keys come from
    /// the kernel, not from an adversary choosing collisions; equal bytes are compared).
    stacks: HashMap<Box<[u8]>, u64, foldhash::fast::FixedState>,
    /// Id of the next stack defined.
    next_stack: u64,
}

impl<W: Write> Writer<W> {
    /// Writes the magic, the version and `header`.
    pub fn new(mut out: W, header: Header) -> Result<Self, CaptureError> {
        out.write_all(MAGIC)?;
        out.write_all(&VERSION.to_le_bytes())?;
        let mut w = Self {
            out,
            buf: Vec::with_capacity(1024),
            stacks: HashMap::default(),
            next_stack: 0,
        };
        w.record(Body::Header(header))?;
        // The header is on disk as soon as recording starts: a capture cut short still reads.
        w.out.flush()?;
        Ok(w)
    }

    fn record(&mut self, body: Body) -> Result<(), CaptureError> {
        self.buf.clear();
        Record { body: Some(body) }
            .encode_length_delimited(&mut self.buf)
            .map_err(|e| io::Error::other(e.to_string()))?;
        self.out.write_all(&self.buf)?;
        Ok(())
    }

    /// Appends one raw event record, without its trailing zero bytes (the unused part of a
    /// stack array, which the kernel zeroes): most events shrink from ~430 to ~100 bytes.
    ///
    /// The hot path of `gtrace record` (once per event): the bytes of a
    /// `Record { body: Event(bytes) }` are written straight to the output, without building
    /// the message or copying the record into a `Vec` first.
    pub fn event(&mut self, raw: &[u8]) -> Result<(), CaptureError> {
        let body = compact(raw);
        // Record length, key of field 2 (length-delimited), bytes length: at most 10 + 1 + 10.
        let mut head = [0u8; 21];
        let message = 1 + prost::length_delimiter_len(body.len()) + body.len();
        let mut at = put_varint(&mut head, 0, message as u64);
        head[at] = EVENT_KEY;
        at = put_varint(&mut head, at + 1, body.len() as u64);
        self.out.write_all(&head[..at])?;
        self.out.write_all(body)?;
        Ok(())
    }

    /// Appends one checked event record: a park or ready as its stack's id and the bytes
    /// before its stack (defining the stack first when this writer has not, or no longer
    /// remembers it), any other kind as [`Self::event`] does. Returns true when a stack was
    /// defined, i.e. the caller has not been told about these PCs by this writer lately.
    ///
    /// The hot path of `gtrace record`: a stack seen before costs one hash of its bytes and
    /// one comparison, and the record written is ~40 bytes instead of ~40 + 8 per frame.
    pub fn event_raw(&mut self, e: Raw<'_>) -> Result<bool, CaptureError> {
        let stack = e.stack_bytes();
        if stack.is_empty() {
            self.event(e.used())?;
            return Ok(false);
        }
        let (id, fresh) = if let Some(&id) = self.stacks.get(stack) {
            (id, false)
        } else {
            if self.stacks.len() >= MAX_STACKS {
                self.stacks.clear();
            }
            let id = self.next_stack;
            self.next_stack += 1;
            self.stacks.insert(stack.into(), id);
            self.record(Body::Stack(StackDef {
                id,
                pcs: stack.to_vec(),
            }))?;
            (id, true)
        };
        let used = e.used();
        let prefix = &used[..used.len() - stack.len()];
        let mut id_bytes = [0u8; 10];
        let id_len = put_varint(&mut id_bytes, 0, id);
        let body = id_len + prefix.len();
        // Record length, key of field 9, bytes length, stack id: at most 10 + 1 + 10 + 10.
        let mut head = [0u8; 31];
        let message = 1 + prost::length_delimiter_len(body) + body;
        let mut at = put_varint(&mut head, 0, message as u64);
        head[at] = EVENT_STACK_KEY;
        at = put_varint(&mut head, at + 1, body as u64);
        head[at..at + id_len].copy_from_slice(&id_bytes[..id_len]);
        self.out.write_all(&head[..at + id_len])?;
        self.out.write_all(prefix)?;
        Ok(fresh)
    }

    /// Appends one gap of the hot probes (`end_ktime_ns` 0 while it is open).
    pub fn gap(&mut self, gap: Gap) -> Result<(), CaptureError> {
        self.record(Body::Gap(gap))
    }

    /// Appends one governor decision.
    pub fn governor(&mut self, note: GovernorNote) -> Result<(), CaptureError> {
        self.record(Body::Governor(note))
    }

    /// Appends one finished panic (its JSON report).
    pub fn panic(&mut self, json: String) -> Result<(), CaptureError> {
        self.record(Body::Panic(json))
    }

    /// Appends the symbol table, then the footer, and flushes.
    pub fn finish(mut self, symbols: Symbols, footer: Footer) -> Result<W, CaptureError> {
        self.record(Body::Symbols(symbols))?;
        self.record(Body::Footer(footer))?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Writes `v` as a protobuf varint at `head[at..]`; returns the index after it (callers leave
/// room for the 10 bytes of any `u64` after `at`).
fn put_varint(head: &mut [u8], mut at: usize, mut v: u64) -> usize {
    while v >= 0x80 {
        head[at] = (v as u8) | 0x80;
        v >>= 7;
        at += 1;
    }
    head[at] = v as u8;
    at + 1
}

/// `raw` without trailing zero bytes (the header is always kept whole).
pub fn compact(raw: &[u8]) -> &[u8] {
    let keep = raw
        .iter()
        .rposition(|b| *b != 0)
        .map_or(0, |i| i + 1)
        .max(size_of::<tracer_common::event::Header>().min(raw.len()));
    &raw[..keep]
}

/// Undoes [`compact`]: pads a stored record with zeros to its kind's size. Records of an
/// unknown kind or already long enough are returned as they are (decoding reports them).
pub fn expand(mut raw: Vec<u8>) -> Vec<u8> {
    let kind = raw
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .and_then(|k| tracer_common::event::EventKind::try_from(k).ok());
    if let Some(k) = kind
        && raw.len() < k.size()
    {
        raw.resize(k.size(), 0);
    }
    raw
}

/// A whole capture in memory.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    /// Metadata.
    pub header: Header,
    /// Raw event records, in order.
    pub events: Vec<Vec<u8>>,
    /// Resolved PCs.
    pub symbols: SymbolTable,
    /// Counters; `None` if the capture was cut short.
    pub footer: Option<Footer>,
    /// Finished panics (`gtrace panics --json` objects), in the order their fates were known.
    pub panics: Vec<String>,
    /// Gaps of the hot probes, by start time; a gap never closed ends at `u64::MAX`.
    pub gaps: Vec<Gap>,
    /// Governor decisions, in order.
    pub governor: Vec<GovernorNote>,
}

impl Capture {
    /// Gaps as `(start, end)` kernel times, sorted, an open one ending at `u64::MAX`.
    pub fn gap_intervals(&self) -> Vec<(u64, u64)> {
        self.gaps
            .iter()
            .map(|g| {
                let end = if g.end_ktime_ns == 0 {
                    u64::MAX
                } else {
                    g.end_ktime_ns
                };
                (g.start_ktime_ns, end)
            })
            .collect()
    }
}

/// Reads a capture from `r` (bounded: records over [`MAX_RECORD`] are refused).
pub fn read(mut r: impl Read) -> Result<Capture, CaptureError> {
    let mut data = Vec::new();
    r.read_to_end(&mut data)?;
    parse(&data)
}

/// Parses capture bytes.
pub fn parse(data: &[u8]) -> Result<Capture, CaptureError> {
    let rest = data
        .strip_prefix(MAGIC.as_slice())
        .ok_or(CaptureError::Magic)?;
    let (v, mut rest) = rest.split_at_checked(4).ok_or(CaptureError::Magic)?;
    let v = u32::from_le_bytes([v[0], v[1], v[2], v[3]]);
    if !(OLDEST_VERSION..=VERSION).contains(&v) {
        return Err(CaptureError::Version(v));
    }
    let mut cap = Capture::default();
    let mut have_header = false;
    // Stacks defined so far (version 2), by id.
    let mut stacks: HashMap<u64, Vec<u8>> = HashMap::new();
    while !rest.is_empty() {
        let offset = data.len() - rest.len();
        let bad = |reason: String| CaptureError::Malformed { offset, reason };
        let mut cursor = rest;
        let len = prost::decode_length_delimiter(&mut cursor).map_err(|e| bad(e.to_string()))?;
        if len > MAX_RECORD || len > cursor.len() {
            return Err(bad(format!(
                "length {len} exceeds the {} bytes left",
                cursor.len()
            )));
        }
        let (msg, tail) = cursor.split_at(len);
        rest = tail;
        let rec = Record::decode(msg).map_err(|e| bad(e.to_string()))?;
        match rec.body {
            Some(Body::Header(h)) if !have_header => {
                cap.header = h;
                have_header = true;
            }
            _ if !have_header => return Err(CaptureError::NoHeader),
            Some(Body::Event(e)) => cap.events.push(expand(e)),
            Some(Body::Symbols(s)) => cap.symbols.extend(s),
            Some(Body::Footer(f)) => cap.footer = Some(f),
            Some(Body::Panic(p)) => cap.panics.push(p),
            Some(Body::Gap(g)) => add_gap(&mut cap.gaps, g),
            Some(Body::Governor(n)) => cap.governor.push(n),
            Some(Body::Stack(d)) => {
                if d.pcs.len() % 8 != 0 || d.pcs.len() > 8 * tracer_common::event::MAX_STACK {
                    return Err(bad(format!("stack {} has {} bytes", d.id, d.pcs.len())));
                }
                stacks.insert(d.id, d.pcs);
            }
            Some(Body::EventStack(b)) => {
                let mut cursor = b.as_slice();
                let id =
                    prost::encoding::decode_varint(&mut cursor).map_err(|e| bad(e.to_string()))?;
                let stack = stacks
                    .get(&id)
                    .ok_or_else(|| bad(format!("stack {id} is not defined before its use")))?;
                let len = cursor.len() + stack.len();
                let mut raw = Vec::with_capacity(len);
                raw.extend_from_slice(cursor);
                raw.extend_from_slice(stack);
                let raw = expand(raw);
                // The record says how long its stack is: it must be the stack referred to.
                let used = Raw::new(&raw)
                    .map(|r| r.used().len())
                    .map_err(|e| bad(e.to_string()))?;
                if used != len || stack.is_empty() {
                    return Err(bad(format!("record does not match stack {id}")));
                }
                cap.events.push(raw);
            }
            Some(Body::Header(_)) | None => return Err(bad("unexpected record".into())),
        }
    }
    if !have_header {
        return Err(CaptureError::NoHeader);
    }
    Ok(cap)
}

/// Inserts `g` in start order; a closed gap replaces the open record with the same start.
fn add_gap(gaps: &mut Vec<Gap>, g: Gap) {
    match gaps.binary_search_by_key(&g.start_ktime_ns, |x| x.start_ktime_ns) {
        Ok(i) => {
            if g.end_ktime_ns != 0 {
                gaps[i] = g;
            }
        }
        Err(i) => gaps.insert(i, g),
    }
}

#[cfg(test)]
mod tests;
