//! PCs resolved to source frames, keyed by `(pc, is_return_address)`: filled from the binary
//! while recording (or live), stored in the capture, read back by reports.

use std::collections::{HashMap, HashSet};

use tracer_common::event::{Event, Raw};

use super::{Frame, PcInfo, Symbols};
use crate::gobin::GoBinary;

/// Resolved PCs.
#[derive(Debug, Clone, Default)]
pub struct SymbolTable {
    map: HashMap<(u64, bool), Vec<Frame>>,
}

/// The PCs an event mentions, each with "is a return address".
pub fn event_pcs(e: &Event) -> Vec<(u64, bool)> {
    let stack = |s: &[u64]| {
        s.iter()
            .enumerate()
            .map(|(i, pc)| (*pc, i > 0))
            .collect::<Vec<_>>()
    };
    match e {
        Event::Create(c) => vec![(c.gopc, true), (c.startpc, false)],
        Event::Park(p) => stack(&p.stack[..(p.stack_len as usize).min(p.stack.len())]),
        Event::Ready(r) => stack(&r.stack[..(r.stack_len as usize).min(r.stack.len())]),
        _ => Vec::new(),
    }
}

/// The PCs events mention, collected while recording and symbolized in one batch at the end
/// ([`SymbolTable::resolve_pcs`]): a set with a fast non-cryptographic hash (the keys come
/// from the kernel, not from an adversary choosing collisions).
///
/// Fed only what is new: `gtrace record` adds an event's PCs when the capture writer says its
/// stack is new ([`super::Writer::event_raw`]), so a stack seen before costs nothing here.
#[derive(Debug, Default)]
pub struct PcSet {
    pcs: HashSet<(u64, bool), foldhash::fast::FixedState>,
}

impl PcSet {
    /// Adds the PCs of one event: the `go` statement and start function of a creation, the
    /// stack of a park or ready.
    pub fn add(&mut self, e: Raw<'_>) {
        if let Some(c) = e.create() {
            self.pcs.insert((c.gopc, true));
            self.pcs.insert((c.startpc, false));
        }
        for (i, pc) in e.stack().enumerate() {
            self.pcs.insert((pc, i > 0));
        }
    }

    /// Number of distinct `(pc, is_return_address)` pairs.
    pub fn len(&self) -> usize {
        self.pcs.len()
    }

    /// True when no PC was seen.
    pub fn is_empty(&self) -> bool {
        self.pcs.is_empty()
    }

    /// The pairs, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, bool)> + '_ {
        self.pcs.iter().copied()
    }
}

impl SymbolTable {
    /// Adds the entries of a stored table.
    pub fn extend(&mut self, s: Symbols) {
        for p in s.pcs {
            self.map.insert((p.pc, p.return_address), p.frames);
        }
    }

    /// The table as stored in a capture.
    pub fn to_proto(&self) -> Symbols {
        let mut pcs: Vec<PcInfo> = self
            .map
            .iter()
            .map(|((pc, ret), frames)| PcInfo {
                pc: *pc,
                return_address: *ret,
                frames: frames.clone(),
            })
            .collect();
        pcs.sort_by_key(|p| (p.pc, p.return_address));
        Symbols { pcs }
    }

    /// Resolves `pc` (a runtime address) in `bin` loaded at `bias`, once.
    pub fn resolve(&mut self, bin: &GoBinary, bias: u64, pc: u64, ret: bool) {
        self.map.entry((pc, ret)).or_insert_with(|| {
            let vaddr = pc.wrapping_sub(bias).wrapping_sub(u64::from(ret));
            bin.symbolize(vaddr)
                .unwrap_or_default()
                .into_iter()
                .map(Frame::from)
                .collect()
        });
    }

    /// Resolves every PC of `pcs` not yet in the table, in one pass over the binary's
    /// tables in address order ([`GoBinary::symbolize_each`]); the same frames as
    /// [`Self::resolve`] one by one.
    pub fn resolve_pcs(&mut self, bin: &GoBinary, bias: u64, pcs: &PcSet) {
        let todo: Vec<(u64, bool)> = pcs.iter().filter(|k| !self.map.contains_key(k)).collect();
        let vaddrs: Vec<u64> = todo
            .iter()
            .map(|&(pc, ret)| pc.wrapping_sub(bias).wrapping_sub(u64::from(ret)))
            .collect();
        for key in &todo {
            self.map.insert(*key, Vec::new());
        }
        bin.symbolize_each(&vaddrs, |i, frames| {
            let (Ok(frames), Some(key)) = (frames, todo.get(i)) else {
                return;
            };
            self.map.insert(
                *key,
                frames.iter().map(|f| Frame::from(f.to_frame())).collect(),
            );
        });
    }

    /// Resolves every PC of `e`.
    pub fn resolve_event(&mut self, bin: &GoBinary, bias: u64, e: &Event) {
        for (pc, ret) in event_pcs(e) {
            self.resolve(bin, bias, pc, ret);
        }
    }

    /// Frames of `pc`, innermost first; empty when unknown.
    pub fn frames(&self, pc: u64, ret: bool) -> &[Frame] {
        self.map.get(&(pc, ret)).map_or(&[], Vec::as_slice)
    }

    /// The outermost function at `pc`, or the hex address.
    pub fn function(&self, pc: u64, ret: bool) -> String {
        self.frames(pc, ret)
            .last()
            .map_or_else(|| format!("{pc:#x}"), |f| f.function.clone())
    }

    /// `function (file:line)` of the outermost frame at `pc`.
    pub fn location(&self, pc: u64, ret: bool) -> String {
        self.frames(pc, ret).last().map_or_else(
            || format!("{pc:#x}"),
            |f| format!("{} ({}:{})", f.function, f.file, f.line),
        )
    }

    /// All frames of a captured stack (first PC exact, the rest return addresses).
    pub fn stack(&self, pcs: &[u64]) -> Vec<Frame> {
        pcs.iter()
            .enumerate()
            .flat_map(|(i, pc)| {
                let f = self.frames(*pc, i > 0);
                if f.is_empty() {
                    vec![Frame {
                        function: format!("{pc:#x}"),
                        file: "?".into(),
                        line: 0,
                        inlined: false,
                    }]
                } else {
                    f.to_vec()
                }
            })
            .collect()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl From<crate::gobin::Frame> for Frame {
    fn from(f: crate::gobin::Frame) -> Self {
        Self {
            function: f.function,
            file: f.file,
            line: f.line,
            inlined: f.inlined,
        }
    }
}
