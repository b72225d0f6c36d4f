//! pprof output: the `profile.proto` messages (github.com/google/pprof, proto/profile.proto)
//! written by hand as prost structs — no protoc on build machines — and a goroutine profile
//! encoder shaped like Go's `/debug/pprof/goroutine`: sample type `goroutine/count`, one
//! sample per distinct stack, one location per PC whose inlined frames are several lines
//! (innermost first, the caller last, as the runtime's profile builder does). gzip'd, as
//! `go tool pprof` expects. String table index 0 is `""`, as the format requires.

use std::{
    collections::HashMap,
    io::{self, Write as _},
};

use flate2::{Compression, write::GzEncoder};
use prost::Message as _;

use crate::analysis::{
    block::BlockStack,
    stacks::{Frame, StackCount},
};

/// `Profile` (only the fields gtrace writes are declared; tags as in profile.proto).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Profile {
    /// Sample value types.
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    /// Samples.
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    /// Mappings.
    #[prost(message, repeated, tag = "3")]
    pub mapping: Vec<Mapping>,
    /// Locations.
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    /// Functions.
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    /// Strings; index 0 is `""`.
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    /// Collection time, ns since the epoch.
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    /// The sampling event.
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<ValueType>,
    /// Time covered, ns.
    #[prost(int64, tag = "10")]
    pub duration_nanos: i64,
    /// Events per sample.
    #[prost(int64, tag = "12")]
    pub period: i64,
    /// Free-form comments (string indices), shown by `go tool pprof -comments`.
    #[prost(int64, repeated, tag = "13")]
    pub comment: Vec<i64>,
    /// The sample type shown by default (string index of its type).
    #[prost(int64, tag = "14")]
    pub default_sample_type: i64,
}

/// `ValueType`: string-table indices of type and unit.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueType {
    /// Type (`goroutine`).
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    /// Unit (`count`).
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

/// `Sample`: a stack (leaf first) and its values.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// Location ids, leaf first.
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    /// One value per sample type.
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
    /// Labels (`wait_reason`).
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<Label>,
}

/// `Label`: a string (or numeric) tag of a sample.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    /// Key (string index).
    #[prost(int64, tag = "1")]
    pub key: i64,
    /// String value (string index).
    #[prost(int64, tag = "2")]
    pub str: i64,
    /// Numeric value.
    #[prost(int64, tag = "3")]
    pub num: i64,
    /// Unit of `num` (string index).
    #[prost(int64, tag = "4")]
    pub num_unit: i64,
}

/// `Mapping`: the executable.
#[derive(Clone, PartialEq, prost::Message)]
#[allow(clippy::struct_excessive_bools)] // profile.proto's fields
pub struct Mapping {
    /// Id (1-based).
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Start address.
    #[prost(uint64, tag = "2")]
    pub memory_start: u64,
    /// End address.
    #[prost(uint64, tag = "3")]
    pub memory_limit: u64,
    /// File offset of the start.
    #[prost(uint64, tag = "4")]
    pub file_offset: u64,
    /// Executable path (string index).
    #[prost(int64, tag = "5")]
    pub filename: i64,
    /// Symbolized: functions known.
    #[prost(bool, tag = "7")]
    pub has_functions: bool,
    /// Symbolized: files known.
    #[prost(bool, tag = "8")]
    pub has_filenames: bool,
    /// Symbolized: lines known.
    #[prost(bool, tag = "9")]
    pub has_line_numbers: bool,
    /// Symbolized: inlined frames expanded.
    #[prost(bool, tag = "10")]
    pub has_inline_frames: bool,
}

/// `Location`: one PC and its (possibly inlined) lines.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Location {
    /// Id (1-based).
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Mapping id (0 = none).
    #[prost(uint64, tag = "2")]
    pub mapping_id: u64,
    /// The PC.
    #[prost(uint64, tag = "3")]
    pub address: u64,
    /// Lines, innermost (inlined) first, the physical function last.
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
}

/// `Line`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Line {
    /// Function id.
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    /// Source line.
    #[prost(int64, tag = "2")]
    pub line: i64,
}

/// `Function`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Function {
    /// Id (1-based).
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Name (string index).
    #[prost(int64, tag = "2")]
    pub name: i64,
    /// System name (string index).
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    /// Source file (string index).
    #[prost(int64, tag = "4")]
    pub filename: i64,
}

#[derive(Default)]
struct Builder {
    p: Profile,
    strings: HashMap<String, i64>,
    functions: HashMap<(i64, i64), u64>,
    locations: HashMap<Vec<(u64, u32)>, u64>,
}

impl Builder {
    fn string(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.strings.get(s) {
            return i;
        }
        let i = self.p.string_table.len() as i64;
        self.p.string_table.push(s.to_owned());
        self.strings.insert(s.to_owned(), i);
        i
    }

    fn function(&mut self, f: &Frame) -> u64 {
        let name = self.string(&f.function);
        let file = self.string(&f.file);
        if let Some(&id) = self.functions.get(&(name, file)) {
            return id;
        }
        let id = self.p.function.len() as u64 + 1;
        self.p.function.push(Function {
            id,
            name,
            system_name: name,
            filename: file,
        });
        self.functions.insert((name, file), id);
        id
    }

    /// One location for the logical frames of one physical frame (same PC).
    fn location(&mut self, frames: &[Frame], mapping_id: u64) -> u64 {
        let mut lines = Vec::with_capacity(frames.len());
        let mut key = Vec::with_capacity(frames.len());
        for f in frames {
            let function_id = self.function(f);
            key.push((function_id, f.line));
            lines.push(Line {
                function_id,
                line: i64::from(f.line),
            });
        }
        key.push((frames[0].pc, 0));
        if let Some(&id) = self.locations.get(&key) {
            return id;
        }
        let id = self.p.location.len() as u64 + 1;
        self.p.location.push(Location {
            id,
            mapping_id: if frames[0].pc == 0 { 0 } else { mapping_id },
            address: frames[0].pc,
            line: lines,
        });
        self.locations.insert(key, id);
        id
    }

    /// One mapping (the executable) covering every PC of `frames`; its id, 0 without PCs.
    fn mapping<'f>(&mut self, frames: impl Iterator<Item = &'f Frame>, exe: &str) -> u64 {
        let pcs = frames.map(|f| f.pc).filter(|&pc| pc != 0);
        let (lo, hi) = pcs.fold((u64::MAX, 0), |(lo, hi), pc| (lo.min(pc), hi.max(pc)));
        if lo > hi {
            return 0;
        }
        let filename = self.string(exe);
        self.p.mapping.push(Mapping {
            id: 1,
            memory_start: lo,
            memory_limit: hi + 1,
            file_offset: 0,
            filename,
            has_functions: true,
            has_filenames: true,
            has_line_numbers: true,
            has_inline_frames: true,
        });
        1
    }

    /// Location ids of `frames` (innermost first): one per physical frame (same PC).
    fn locations(&mut self, frames: &[Frame], mapping_id: u64) -> Vec<u64> {
        frames
            .chunk_by(|a, b| a.pc == b.pc)
            .map(|phys| self.location(phys, mapping_id))
            .collect()
    }

    fn value_type(&mut self, ty: &str, unit: &str) -> ValueType {
        ValueType {
            r#type: self.string(ty),
            unit: self.string(unit),
        }
    }
}

/// The goroutine profile of `stacks` as a `Profile` message. `exe` names the mapping.
pub fn goroutine_profile(stacks: &[StackCount], exe: &str, time_nanos: i64) -> Profile {
    let mut b = Builder::default();
    b.string("");
    let vt = b.value_type("goroutine", "count");
    b.p.sample_type = vec![vt.clone()];
    b.p.period_type = Some(vt);
    b.p.period = 1;
    b.p.time_nanos = time_nanos;
    let mapping_id = b.mapping(stacks.iter().flat_map(|s| &s.frames), exe);
    for s in stacks {
        let ids = b.locations(&s.frames, mapping_id);
        b.p.sample.push(Sample {
            location_id: ids,
            value: vec![s.count as i64],
            label: Vec::new(),
        });
    }
    b.p
}

/// Label key of the wait reason in block profiles.
pub const WAIT_REASON_LABEL: &str = "wait_reason";

/// Which stacks a block profile is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockView {
    /// The parking goroutines' stacks; sample types `parks/count`, `delay/nanoseconds`.
    Parked,
    /// The waking goroutines' stacks; sample types `wakes/count`, `delay/nanoseconds`.
    Wakers,
}

/// A block profile as a `Profile` message, shaped like Go's own block profile
/// (`/debug/pprof/block`: a count and `delay/nanoseconds`, the default): one sample per
/// (stack, wait reason), the reason as the string label `wait_reason`. `duration_nanos` is
/// the window.
pub fn block_profile(
    stacks: &[BlockStack],
    view: BlockView,
    exe: &str,
    time_nanos: i64,
    duration_nanos: i64,
) -> Profile {
    let mut b = Builder::default();
    b.string("");
    let (count, comment) = match view {
        BlockView::Parked => (
            "parks",
            "gtrace block profile: parked time by parking stack and wait reason",
        ),
        BlockView::Wakers => (
            "wakes",
            "gtrace block profile: parked time by the waker's stack and the wait reason",
        ),
    };
    let count = b.value_type(count, "count");
    let delay = b.value_type("delay", "nanoseconds");
    b.p.default_sample_type = delay.r#type;
    b.p.sample_type = vec![count.clone(), delay];
    b.p.period_type = Some(count);
    b.p.period = 1;
    b.p.time_nanos = time_nanos;
    b.p.duration_nanos = duration_nanos;
    let c = b.string(comment);
    b.p.comment = vec![c];
    let key = b.string(WAIT_REASON_LABEL);
    let mapping_id = b.mapping(stacks.iter().flat_map(|s| &s.frames), exe);
    for s in stacks {
        let ids = b.locations(&s.frames, mapping_id);
        let reason = b.string(&s.reason);
        b.p.sample.push(Sample {
            location_id: ids,
            value: vec![
                i64::try_from(s.count).unwrap_or(i64::MAX),
                i64::try_from(s.delay_ns).unwrap_or(i64::MAX),
            ],
            label: vec![Label {
                key,
                str: reason,
                num: 0,
                num_unit: 0,
            }],
        });
    }
    b.p
}

/// Writes `profile` gzip'd, as `go tool pprof` reads it.
pub fn write(w: impl io::Write, profile: &Profile) -> io::Result<()> {
    let mut gz = GzEncoder::new(w, Compression::default());
    gz.write_all(&profile.encode_to_vec())?;
    gz.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::stacks::tests::frame;

    #[test]
    fn inlined_frames_share_a_location_and_strings_start_empty() {
        let stacks = [
            StackCount {
                // main.inner inlined into main.outer at the same PC.
                frames: vec![
                    frame("runtime.gopark", 10, 0x100),
                    frame("main.inner", 20, 0x200),
                    frame("main.outer", 30, 0x200),
                ],
                count: 3,
            },
            StackCount {
                frames: vec![
                    frame("runtime.gopark", 10, 0x100),
                    frame("main.other", 40, 0x300),
                ],
                count: 2,
            },
        ];
        let p = goroutine_profile(&stacks, "/bin/x", 1);
        assert_eq!(p.string_table[0], "");
        assert_eq!(p.sample.len(), 2);
        assert_eq!(p.sample[0].location_id, [1, 2]);
        assert_eq!(p.sample[1].location_id, [1, 3]);
        assert_eq!(p.location[1].line.len(), 2);
        assert_eq!(p.location[1].line[1].line, 30);
        assert_eq!(p.sample.iter().map(|s| s.value[0]).sum::<i64>(), 5);
        assert_eq!(p.mapping[0].memory_start, 0x100);
        // Round trip through the wire format.
        let mut gz = Vec::new();
        write(&mut gz, &p).unwrap();
        let mut raw = Vec::new();
        io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut raw).unwrap();
        assert_eq!(Profile::decode(&raw[..]).unwrap(), p);
    }

    #[test]
    fn block_profiles_carry_two_values_and_the_wait_reason() {
        let stacks = [
            BlockStack {
                frames: vec![
                    frame("runtime.chanrecv", 10, 0x100),
                    frame("main.a", 5, 0x200),
                ],
                reason: "chan receive".into(),
                count: 3,
                delay_ns: 1_500,
            },
            BlockStack {
                frames: vec![
                    frame("runtime.selectgo", 20, 0x300),
                    frame("main.a", 6, 0x210),
                ],
                reason: "select".into(),
                count: 1,
                delay_ns: 700,
            },
        ];
        let p = block_profile(&stacks, BlockView::Parked, "/bin/x", 1, 2_000);
        let s = |i: i64| p.string_table[i as usize].as_str();
        let types: Vec<_> = p
            .sample_type
            .iter()
            .map(|t| (s(t.r#type), s(t.unit)))
            .collect();
        assert_eq!(types, [("parks", "count"), ("delay", "nanoseconds")]);
        assert_eq!(s(p.default_sample_type), "delay");
        assert_eq!(p.duration_nanos, 2_000);
        assert_eq!(p.sample[0].value, [3, 1_500]);
        assert_eq!(p.sample[1].value, [1, 700]);
        let l = &p.sample[1].label[0];
        assert_eq!((s(l.key), s(l.str)), (WAIT_REASON_LABEL, "select"));
        let w = block_profile(&stacks, BlockView::Wakers, "/bin/x", 1, 2_000);
        assert_eq!(w.string_table[w.sample_type[0].r#type as usize], "wakes");
        let mut gz = Vec::new();
        write(&mut gz, &p).unwrap();
        let mut raw = Vec::new();
        io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut raw).unwrap();
        assert_eq!(Profile::decode(&raw[..]).unwrap(), p);
    }
}
