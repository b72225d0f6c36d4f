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

use crate::analysis::stacks::{Frame, StackCount};

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
    /// Events per sample.
    #[prost(int64, tag = "12")]
    pub period: i64,
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
}

/// The goroutine profile of `stacks` as a `Profile` message. `exe` names the mapping.
pub fn goroutine_profile(stacks: &[StackCount], exe: &str, time_nanos: i64) -> Profile {
    let mut b = Builder::default();
    b.string("");
    let goroutine = b.string("goroutine");
    let count = b.string("count");
    let vt = ValueType {
        r#type: goroutine,
        unit: count,
    };
    b.p.sample_type = vec![vt.clone()];
    b.p.period_type = Some(vt);
    b.p.period = 1;
    b.p.time_nanos = time_nanos;
    let pcs = stacks
        .iter()
        .flat_map(|s| &s.frames)
        .map(|f| f.pc)
        .filter(|&pc| pc != 0);
    let (lo, hi) = pcs.fold((u64::MAX, 0), |(lo, hi), pc| (lo.min(pc), hi.max(pc)));
    let mapping_id = if lo <= hi {
        let filename = b.string(exe);
        b.p.mapping.push(Mapping {
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
    } else {
        0
    };
    for s in stacks {
        let mut ids = Vec::new();
        for phys in s.frames.chunk_by(|a, b| a.pc == b.pc) {
            ids.push(b.location(phys, mapping_id));
        }
        b.p.sample.push(Sample {
            location_id: ids,
            value: vec![s.count as i64],
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
}
