//! Goroutines folded into distinct stacks with counts: the model of a goroutine profile
//! (Go's `/debug/pprof/goroutine`), written out by `output::pprof` and `output::folded`.
//!
//! Like the runtime's own goroutine profile (`runtime.GoroutineProfile` skips
//! `isSystemGoroutine`), runtime goroutines are left out and runtime frames are kept;
//! wrapper frames and `runtime.goexit` are dropped as runtime/pprof drops them.

use std::{collections::HashMap, sync::Arc};

use crate::goroutines::{
    FuncKind, Goroutine,
    symbols::{CachedSymbols, SourceFrame, Symbols},
};

/// One logical frame of a profiled stack.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    /// Function name (`main.awaitReply`).
    pub function: Arc<str>,
    /// Source file.
    pub file: Arc<str>,
    /// Line.
    pub line: u32,
    /// The physical frame's PC (inlined frames share their caller's).
    pub pc: u64,
}

/// Logical frames (innermost first) as Go's profiles show them: `runtime.CallersFrames` drops
/// wrapper functions unless they called a panic (`elideWrapperCalling`), and runtime/pprof
/// stops at `runtime.goexit` (runtime/symtab.go, runtime/pprof/proto.go `allFrames`).
fn elide<'a>(frames: impl IntoIterator<Item = (&'a SourceFrame, u64)>) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut callee = FuncKind::Normal;
    for (src, pc) in frames {
        let kind = src.kind;
        if kind == FuncKind::Goexit {
            break;
        }
        let c = std::mem::replace(&mut callee, kind);
        if kind == FuncKind::Wrapper
            && !matches!(
                c,
                FuncKind::Gopanic | FuncKind::Sigpanic | FuncKind::Panicwrap
            )
        {
            continue;
        }
        out.push(Frame {
            function: src.function.clone(),
            file: src.file.clone(),
            line: src.line,
            pc,
        });
    }
    out
}

/// The frames of a stack captured by a probe (`pcs` innermost first: the probed instruction,
/// then return addresses, runtime addresses), symbolized with inlined calls expanded and
/// elided as Go's profiles do; leading frames whose function `skip` accepts are dropped (the
/// probed runtime function and its plumbing). An unknown PC becomes a frame named after it.
pub fn frames_of_pcs<S: Symbols>(
    syms: &CachedSymbols<S>,
    pcs: &[u64],
    skip: fn(&str) -> bool,
) -> Vec<Frame> {
    let mut logical: Vec<(SourceFrame, u64)> = Vec::new();
    for (i, &pc) in pcs.iter().enumerate() {
        let Some(func) = syms.func_at(if i > 0 { pc.wrapping_sub(1) } else { pc }) else {
            logical.push((
                SourceFrame {
                    function: format!("{pc:#x}").into(),
                    file: "?".into(),
                    line: 0,
                    inlined: false,
                    kind: FuncKind::Normal,
                },
                pc,
            ));
            continue;
        };
        // A return address points after the CALL: symbolize the CALL (as the runtime does).
        let sym_pc = if i > 0 && pc > func.entry { pc - 1 } else { pc };
        for f in syms.source_frames(&func, sym_pc).iter() {
            logical.push((f.clone(), pc));
        }
    }
    let start = logical
        .iter()
        .position(|(f, _)| !skip(&f.function))
        .unwrap_or(logical.len());
    elide(logical[start..].iter().map(|(f, pc)| (f, *pc)))
}

/// A distinct stack (innermost frame first) and how many goroutines have it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackCount {
    /// Frames, innermost first; a goroutine without a readable stack (running on a CPU)
    /// gets one pseudo-frame named after its state (`[running]`) with PC 0.
    pub frames: Vec<Frame>,
    /// Goroutines with exactly this stack.
    pub count: u64,
}

/// Accumulates goroutines into [`StackCount`]s.
#[derive(Debug, Default)]
pub struct StackCounter {
    index: HashMap<Vec<Frame>, usize>,
    stacks: Vec<StackCount>,
    total: u64,
}

impl StackCounter {
    /// Nothing counted yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one goroutine (runtime goroutines are skipped, as Go's profile does).
    pub fn add(&mut self, g: &Goroutine) {
        if g.system {
            return;
        }
        // As Go's profile: `runtime.CallersFrames` drops wrapper functions unless they called
        // a panic (`elideWrapperCalling`), and runtime/pprof stops at `runtime.goexit`
        // (runtime/symtab.go, runtime/pprof/proto.go `allFrames`).
        let frames = elide(
            g.stack
                .frames
                .iter()
                .chain(&g.stack.tail)
                .map(|f| (&f.src, f.pc)),
        );
        let mut frames = frames;
        if frames.is_empty() {
            frames.push(Frame {
                function: format!("[{}]", g.status).into(),
                file: "".into(),
                line: 0,
                pc: 0,
            });
        }
        self.add_stack(frames, 1);
    }

    /// Counts `count` goroutines with `frames` (innermost first).
    pub fn add_stack(&mut self, frames: Vec<Frame>, count: u64) {
        self.total += count;
        if let Some(&i) = self.index.get(&frames) {
            self.stacks[i].count += count;
            return;
        }
        self.index.insert(frames.clone(), self.stacks.len());
        self.stacks.push(StackCount { frames, count });
    }

    /// Goroutines counted.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The stacks, most common first.
    pub fn finish(self) -> Vec<StackCount> {
        let mut s = self.stacks;
        s.sort_by_key(|x| std::cmp::Reverse(x.count));
        s
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::goroutines::symbols::FuncInfo;

    pub(crate) fn frame(function: &str, line: u32, pc: u64) -> Frame {
        Frame {
            function: function.into(),
            file: "/src/main.go".into(),
            line,
            pc,
        }
    }

    /// One function per 0x100 bytes (gopark, chanrecv, main.a, a wrapper, goexit); main.a
    /// has main.inner inlined below 0x350; the line is the PC's low byte.
    struct Fake;

    const FUNCS: &[(u64, &str, FuncKind)] = &[
        (0x100, "runtime.gopark", FuncKind::Normal),
        (0x200, "runtime.chanrecv", FuncKind::Normal),
        (0x300, "main.a", FuncKind::Normal),
        (0x400, "main.a.gowrap1", FuncKind::Wrapper),
        (0x500, "runtime.goexit", FuncKind::Goexit),
    ];

    impl Symbols for Fake {
        fn func_at(&self, pc: u64) -> Option<FuncInfo> {
            let &(entry, name, kind) = FUNCS.iter().find(|f| pc >= f.0 && pc < f.0 + 0x100)?;
            Some(FuncInfo {
                entry,
                name: name.into(),
                kind,
                top_frame: false,
                sp_write: false,
            })
        }

        fn sp_delta(&self, _: &FuncInfo, _: u64) -> Option<u32> {
            None
        }

        fn source_frames(&self, func: &FuncInfo, pc: u64) -> Vec<SourceFrame> {
            let frame = |function: &str, inlined| SourceFrame {
                function: function.into(),
                file: "/src/main.go".into(),
                line: (pc & 0xff) as u32,
                inlined,
                kind: func.kind,
            };
            let mut v = Vec::new();
            if &*func.name == "main.a" && pc < 0x350 {
                v.push(frame("main.inner", true));
            }
            v.push(frame(&func.name, false));
            v
        }
    }

    #[test]
    fn probe_stacks_are_symbolized_like_go_profiles() {
        let syms = CachedSymbols::new(Fake);
        // The probe site in gopark, then return addresses (the CALL is one byte before).
        let pcs = [0x106, 0x211, 0x321, 0x401, 0x501];
        let f = frames_of_pcs(&syms, &pcs, |n| n == "runtime.gopark");
        let names: Vec<(&str, u32, u64)> = f.iter().map(|f| (&*f.function, f.line, f.pc)).collect();
        // gopark skipped, inlined main.inner expanded at its caller's PC, the wrapper and
        // everything from goexit on dropped, lines of the CALL (pc - 1).
        assert_eq!(
            names,
            [
                ("runtime.chanrecv", 0x10, 0x211),
                ("main.inner", 0x20, 0x321),
                ("main.a", 0x20, 0x321),
            ]
        );
        // A return address at a function's first byte belongs to the previous function.
        let f = frames_of_pcs(&syms, &[0x106, 0x300], |_| false);
        assert_eq!(&*f[1].function, "runtime.chanrecv");
        // Unknown PCs are kept, named after themselves.
        let f = frames_of_pcs(&syms, &[0x106, 0x9999], |n| n == "runtime.gopark");
        assert_eq!(&*f[0].function, "0x9999");
    }

    #[test]
    fn identical_stacks_fold() {
        let mut c = StackCounter::new();
        let a = vec![frame("runtime.gopark", 1, 0x10), frame("main.a", 5, 0x20)];
        let b = vec![frame("runtime.gopark", 1, 0x10), frame("main.b", 7, 0x30)];
        c.add_stack(a.clone(), 1);
        c.add_stack(b, 1);
        c.add_stack(a.clone(), 2);
        assert_eq!(c.total(), 4);
        let s = c.finish();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].frames, a);
        assert_eq!(s[0].count, 3);
    }
}
