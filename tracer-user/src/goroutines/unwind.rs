//! Unwinding a parked goroutine's stack the way the runtime's own traceback does.
//!
//! Follows runtime/traceback.go (`unwinder.initAt`, `resolveInternal`, `next`, amd64): start
//! at `g.sched` (or `g.syscallpc/syscallsp` when `syscallsp != 0`), frame pointer
//! `fp = sp + pcsp(pc) + 8`, return PC at `[fp - 8]`, stop at a `TopFrame` function (goexit)
//! or an SP-writing one, and symbolize at `pc - 1` (a return address points after the CALL).
//! Frame pointers are not trusted: the pcsp table is what the runtime itself uses, so the
//! frames match its dump exactly, even in functions that have no frame pointer. The frames
//! printed get their arguments as `printArgs` reads them: at `argp` (the caller's SP), from
//! the stack window already fetched.

use std::sync::Arc;

use super::symbols::{ArgItem, ArgLayout, CachedSymbols, FuncInfo, FuncKind, SourceFrame, Symbols};
use crate::memory::MemorySource;

/// Physical frames followed at most per goroutine (the runtime has no limit; a garbage stack
/// must not make us loop).
pub const MAX_PHYSICAL_FRAMES: usize = 4096;

/// Logical frames Go 1.21+ prints before an elision mark (`tracebackInnerFrames`).
const INNER: usize = 50;
/// Logical frames Go 1.21+ prints after an elision mark (`tracebackOuterFrames`).
const OUTER: usize = 50;

/// Why a goroutine's stack could not be (fully) unwound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnwindError {
    /// The start or a return PC is in no known function.
    #[error("unknown pc {pc:#x}")]
    UnknownPc {
        /// The PC.
        pc: u64,
    },
    /// A function has no SP delta at a PC.
    #[error("no stack-pointer delta for {function} at pc {pc:#x}")]
    NoSpDelta {
        /// The function.
        function: Arc<str>,
        /// The PC.
        pc: u64,
    },
    /// A stack word could not be read.
    #[error("cannot read the stack at {addr:#x}")]
    StackRead {
        /// The address.
        addr: u64,
    },
    /// A frame lies outside the goroutine's stack bounds.
    #[error("stack pointer {sp:#x} is outside the goroutine stack [{lo:#x}, {hi:#x})")]
    OutsideStack {
        /// The frame's SP.
        sp: u64,
        /// `stack.lo`.
        lo: u64,
        /// `stack.hi`.
        hi: u64,
    },
    /// More than [`MAX_PHYSICAL_FRAMES`] frames: a loop in garbage data.
    #[error("more than {MAX_PHYSICAL_FRAMES} frames")]
    TooDeep,
}

/// One physical frame found on the stack.
#[derive(Debug, Clone)]
pub struct PhysFrame {
    /// PC in this frame (a return address except for the innermost frame).
    pub pc: u64,
    /// SP of this frame.
    pub sp: u64,
    /// The function.
    pub func: FuncInfo,
    /// PC to symbolize: `pc - 1` unless `pc` is the entry or the callee was injected by a
    /// signal (`unwinder.symPC`).
    pub sym_pc: u64,
    /// The caller's SP: where the frame's arguments start (`frame.argp` on amd64).
    pub fp: u64,
}

/// Where the unwinding starts and which stack bounds hold.
#[derive(Debug, Clone, Copy)]
pub struct UnwindStart {
    /// First PC.
    pub pc: u64,
    /// First SP.
    pub sp: u64,
    /// `stack.lo`.
    pub lo: u64,
    /// `stack.hi`.
    pub hi: u64,
    /// Started from the syscall context: the runtime then ignores SPWRITE on the first frame.
    pub syscall: bool,
}

/// Stack words from a prefetched window, falling back to single reads outside it.
#[derive(Debug)]
pub struct StackReader<'a, M> {
    mem: &'a M,
    base: u64,
    window: &'a [u8],
}

impl<'a, M: MemorySource> StackReader<'a, M> {
    /// `window` holds the bytes at `base` (may be empty).
    pub fn new(mem: &'a M, base: u64, window: &'a [u8]) -> Self {
        Self { mem, base, window }
    }

    fn word(&self, addr: u64) -> Result<u64, UnwindError> {
        if let Some(off) = addr.checked_sub(self.base)
            && let Ok(off) = usize::try_from(off)
            && let Some(b) = self.window.get(off..off.saturating_add(8))
            && let Ok(b) = <[u8; 8]>::try_from(b)
        {
            return Ok(u64::from_le_bytes(b));
        }
        self.mem
            .read_u64(addr)
            .map_err(|_| UnwindError::StackRead { addr })
    }
}

/// Walks the physical frames from `start`, outermost last. Returns what was found before an
/// error together with the error, so a partly garbage stack still shows its good frames.
pub fn unwind<S: Symbols, M: MemorySource>(
    syms: &CachedSymbols<S>,
    stack: &StackReader<'_, M>,
    start: UnwindStart,
) -> (Vec<PhysFrame>, Option<UnwindError>) {
    let mut frames = Vec::new();
    let mut pc = start.pc;
    let mut sp = start.sp;
    if pc == 0 {
        // initAt: a zero PC means the return address is on top of the stack.
        match stack.word(sp) {
            Ok(w) => {
                pc = w;
                sp += 8;
            }
            Err(e) => return (frames, Some(e)),
        }
    }
    let Some(mut func) = syms.func_at(pc) else {
        return (frames, Some(UnwindError::UnknownPc { pc }));
    };
    let mut innermost = true;
    let mut trap = false;
    loop {
        if frames.len() >= MAX_PHYSICAL_FRAMES {
            return (frames, Some(UnwindError::TooDeep));
        }
        if sp < start.lo || sp > start.hi {
            return (
                frames,
                Some(UnwindError::OutsideStack {
                    sp,
                    lo: start.lo,
                    hi: start.hi,
                }),
            );
        }
        let Some(delta) = syms.sp_delta(&func, pc) else {
            return (
                frames,
                Some(UnwindError::NoSpDelta {
                    function: func.name.clone(),
                    pc,
                }),
            );
        };
        let fp = sp + u64::from(delta) + 8;
        let sp_write = func.sp_write && !(innermost && start.syscall);
        let lr = if func.top_frame || sp_write {
            0
        } else {
            match stack.word(fp - 8) {
                Ok(w) => w,
                Err(e) => return (frames, Some(e)),
            }
        };
        let sym_pc = if !trap && pc > func.entry { pc - 1 } else { pc };
        let kind = func.kind;
        frames.push(PhysFrame {
            pc,
            sp,
            func,
            sym_pc,
            fp,
        });
        if lr == 0 {
            return (frames, None);
        }
        let Some(next) = syms.func_at(lr) else {
            // The runtime prints "unexpected return pc" and stops; so do we, with an error.
            return (frames, Some(UnwindError::UnknownPc { pc: lr }));
        };
        if pc == lr && sp == fp {
            return (frames, Some(UnwindError::TooDeep));
        }
        trap = kind.is_injected();
        func = next;
        pc = lr;
        sp = fp;
        innermost = false;
    }
}

/// A logical frame chosen for printing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownFrame {
    /// The logical frame.
    pub src: SourceFrame,
    /// `pc - entry` of the physical frame, printed as `+0x..` (non-inlined frames only).
    pub offset: Option<u64>,
    /// The physical frame's PC.
    pub pc: u64,
    /// What goes between the parentheses: `None` for an inlined frame (`...`).
    pub args: Option<FrameArgs>,
}

/// A non-inlined frame's arguments as `runtime.printArgs` prints them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameArgs {
    /// Not readable (no argument info could be decoded, or the stack words could not be
    /// read): printed `...`.
    Unknown,
    /// The layout, and one value per [`ArgItem::Word`] in order (masked to its size).
    Values {
        /// The function's argument program at the frame's PC.
        items: Arc<[ArgItem]>,
        /// The words read from the stack.
        words: Box<[u64]>,
    },
}

impl FrameArgs {
    /// Reads `layout`'s words from the stack at `argp` (`Unknown` when one cannot be read).
    pub fn read<M: MemorySource>(layout: ArgLayout, stack: &StackReader<'_, M>, argp: u64) -> Self {
        let items = match layout {
            ArgLayout::Unknown => return Self::Unknown,
            ArgLayout::Absent => Arc::from([]),
            ArgLayout::Items(items) => items,
        };
        let mut words = Vec::new();
        for it in items.iter() {
            if let ArgItem::Word { offset, size, .. } = *it {
                let Ok(x) = stack.word(argp.wrapping_add(u64::from(offset))) else {
                    return Self::Unknown;
                };
                // printArgs reads 8 bytes and keeps the low `size` (little-endian).
                let x = if size < 8 {
                    x & ((1u64 << (u32::from(size) * 8)) - 1)
                } else {
                    x
                };
                words.push(x);
            }
        }
        Self::Values {
            items,
            words: words.into(),
        }
    }

    /// The text between the parentheses, as the runtime prints it: `0x1, {0x2, 0x3?}, ...`.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let Self::Values { items, words } = self else {
            out.push_str("...");
            return;
        };
        let mut words = words.iter();
        let mut start = true;
        for it in items.iter() {
            let comma = |out: &mut String, start: bool| {
                if !start {
                    out.push_str(", ");
                }
            };
            match *it {
                ArgItem::StartAgg => {
                    comma(out, start);
                    out.push('{');
                    start = true;
                    continue;
                }
                ArgItem::EndAgg => out.push('}'),
                ArgItem::Dots => {
                    comma(out, start);
                    out.push_str("...");
                }
                ArgItem::TooLarge => {
                    comma(out, start);
                    out.push('_');
                }
                ArgItem::Word { live, .. } => {
                    comma(out, start);
                    let _ = write!(out, "{:#x}", words.next().copied().unwrap_or(0));
                    if !live {
                        out.push('?');
                    }
                }
            }
            start = false;
        }
    }
}

/// The version-dependent bits of the runtime's frame selection and elision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TracebackRules {
    /// 1.25+: `runtime.runFinalizers` / `runCleanups` frames are always shown.
    pub show_finalizer_frames: bool,
    /// 1.21+: print the first 50 and last 50 logical frames with `...N frames elided...`;
    /// before: at most 100 physical frames then `...additional frames elided...`.
    pub inner_outer_elision: bool,
}

impl TracebackRules {
    /// The rules of Go 1.`minor`.
    pub fn for_minor(minor: u32) -> Self {
        Self {
            show_finalizer_frames: minor >= 25,
            inner_outer_elision: minor >= 21,
        }
    }
}

/// Frames to print plus how many were elided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selected {
    /// Printed frames before the elision mark (all of them when nothing is elided).
    pub frames: Vec<ShownFrame>,
    /// Logical frames left out in the middle (`Some(0)` never happens).
    pub elided: Option<usize>,
    /// Printed frames after the elision mark.
    pub tail: Vec<ShownFrame>,
    /// 1.19–1.20 style: the stack was cut after 100 frames.
    pub truncated: bool,
}

/// `isExportedRuntime` (runtime/traceback.go).
pub fn is_exported_runtime(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("runtime.") else {
        return false;
    };
    let (rcvr, fname) = match rest.rfind('.') {
        Some(i) => {
            let r = &rest[..i];
            let r = r
                .strip_prefix("(*")
                .and_then(|r| r.strip_suffix(')'))
                .unwrap_or(r);
            (r, &rest[i + 1..])
        }
        None => ("", rest),
    };
    let upper = |s: &str| s.as_bytes().first().is_some_and(u8::is_ascii_uppercase);
    upper(fname) && (rcvr.is_empty() || upper(rcvr))
}

/// `showfuncinfo` at `GOTRACEBACK=all` (level 1).
pub fn show_func(
    rules: TracebackRules,
    name: &str,
    kind: FuncKind,
    first: bool,
    callee: FuncKind,
) -> bool {
    if kind == FuncKind::Wrapper
        && !matches!(
            callee,
            FuncKind::Gopanic | FuncKind::Sigpanic | FuncKind::Panicwrap
        )
    {
        return false;
    }
    if rules.show_finalizer_frames
        && matches!(kind, FuncKind::RunFinalizers | FuncKind::RunCleanups)
    {
        return true;
    }
    if name == "runtime.gopanic" && !first {
        return true;
    }
    name.contains('.') && (!name.starts_with("runtime.") || is_exported_runtime(name))
}

/// Expands physical frames into logical ones and keeps those the runtime would print
/// (`traceback2`, `traceback1`): at `GOTRACEBACK=all` (`all_frames == false`) runtime-internal
/// frames are hidden unless nothing else is left; at `system` (and in `SIGQUIT` dumps, which
/// run at level 2) every frame is shown. The middle of very deep stacks is elided.
pub fn select_frames<S: Symbols>(
    syms: &CachedSymbols<S>,
    rules: TracebackRules,
    phys: &[PhysFrame],
    all_frames: bool,
) -> Selected {
    let pick = |show_runtime: bool, limit: Option<usize>| -> Vec<ShownFrame> {
        let mut out = Vec::new();
        let mut callee = FuncKind::Normal;
        for (i, pf) in phys.iter().enumerate() {
            if limit.is_some_and(|l| i >= l) {
                break;
            }
            for sf in syms.source_frames(&pf.func, pf.sym_pc).iter() {
                let c = callee;
                callee = sf.kind;
                if !show_runtime && !show_func(rules, &sf.function, sf.kind, out.is_empty(), c) {
                    continue;
                }
                let offset = (!sf.inlined && pf.pc > pf.func.entry).then(|| pf.pc - pf.func.entry);
                // Arguments are read for the frames printed only, once selected.
                out.push(ShownFrame {
                    src: sf.clone(),
                    offset,
                    pc: pf.pc,
                    args: (!sf.inlined).then_some(FrameArgs::Unknown),
                });
            }
        }
        out
    };
    let limit = (!rules.inner_outer_elision).then_some(100);
    let mut all = pick(all_frames, limit);
    if all.is_empty() && !all_frames {
        all = pick(true, limit);
    }
    if !rules.inner_outer_elision {
        // 1.19 gentraceback walks at most 100 physical frames and prints the mark when it
        // printed exactly 100 logical ones (`n = nprint; if n == _TracebackMaxFrames`).
        let truncated = all.len() == 100;
        return Selected {
            frames: all,
            elided: None,
            tail: Vec::new(),
            truncated,
        };
    }
    if all.len() <= INNER + OUTER {
        return Selected {
            frames: all,
            ..Selected::default()
        };
    }
    let elided = all.len() - INNER - OUTER;
    let tail = all.split_off(INNER + elided);
    all.truncate(INNER);
    Selected {
        frames: all,
        elided: Some(elided),
        tail,
        truncated: false,
    }
}

/// Reads the arguments of every selected non-inlined frame (`printArgs`): the frame's
/// physical frame is found by its PC, in order, as `select_frames` produced them.
pub fn read_args<S: Symbols, M: MemorySource>(
    syms: &CachedSymbols<S>,
    stack: &StackReader<'_, M>,
    phys: &[PhysFrame],
    sel: &mut Selected,
) {
    let mut next = 0;
    for f in sel.frames.iter_mut().chain(sel.tail.iter_mut()) {
        if f.args.is_none() {
            continue;
        }
        let Some(i) = phys[next..].iter().position(|p| p.pc == f.pc) else {
            continue;
        };
        let p = &phys[next + i];
        // A recursive function repeats its PC: each physical frame serves one shown frame.
        next += i + 1;
        f.args = Some(FrameArgs::read(
            syms.arg_layout(&p.func, p.sym_pc),
            stack,
            p.fp,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_runtime_names() {
        assert!(is_exported_runtime("runtime.Gosched"));
        assert!(is_exported_runtime("runtime.(*Func).Name"));
        assert!(!is_exported_runtime("runtime.gopark"));
        assert!(!is_exported_runtime("runtime.(*mheap).alloc"));
        assert!(!is_exported_runtime("main.main"));
    }

    #[test]
    fn showframe_rules() {
        let r = TracebackRules::for_minor(27);
        let n = FuncKind::Normal;
        assert!(show_func(r, "main.main", n, true, n));
        assert!(!show_func(r, "runtime.gopark", n, true, n));
        assert!(!show_func(r, "runtime.gopanic", FuncKind::Gopanic, true, n));
        assert!(show_func(r, "runtime.gopanic", FuncKind::Gopanic, false, n));
        assert!(!show_func(r, "main.(*T).M", FuncKind::Wrapper, false, n));
        assert!(show_func(
            r,
            "main.(*T).M",
            FuncKind::Wrapper,
            false,
            FuncKind::Panicwrap
        ));
        assert!(show_func(
            r,
            "runtime.runFinalizers",
            FuncKind::RunFinalizers,
            false,
            n
        ));
        let old = TracebackRules::for_minor(24);
        assert!(!show_func(
            old,
            "runtime.runFinalizers",
            FuncKind::RunFinalizers,
            false,
            n
        ));
        assert!(!show_func(r, "nodot", n, false, n));
        assert!(show_func(r, "sync.(*WaitGroup).Wait", n, false, n));
    }

    /// Each function `main.fN` at `0x1000 * (N + 1)`, one logical frame per function.
    struct Deep;

    impl Symbols for Deep {
        fn func_at(&self, pc: u64) -> Option<FuncInfo> {
            let entry = pc & !0xfff;
            Some(FuncInfo {
                entry,
                name: format!("main.f{}", entry / 0x1000 - 1).into(),
                kind: FuncKind::Normal,
                top_frame: false,
                sp_write: false,
            })
        }
        fn sp_delta(&self, _: &FuncInfo, _: u64) -> Option<u32> {
            Some(0)
        }
        fn source_frames(&self, func: &FuncInfo, pc: u64) -> Vec<SourceFrame> {
            vec![SourceFrame {
                function: func.name.clone(),
                file: "x.go".into(),
                line: (pc - func.entry) as u32,
                inlined: false,
                kind: FuncKind::Normal,
            }]
        }
    }

    fn phys(n: u64) -> Vec<PhysFrame> {
        let syms = Deep;
        (0..n)
            .map(|i| {
                let pc = 0x1000 * (i + 1) + 0x10;
                PhysFrame {
                    pc,
                    sp: 0,
                    func: syms.func_at(pc).unwrap(),
                    sym_pc: pc - 1,
                    fp: 0,
                }
            })
            .collect()
    }

    #[test]
    fn elides_like_the_runtime() {
        let syms = CachedSymbols::new(Deep);
        let r = TracebackRules::for_minor(27);
        let s = select_frames(&syms, r, &phys(100), false);
        assert_eq!((s.frames.len(), s.elided, s.tail.len()), (100, None, 0));
        let s = select_frames(&syms, r, &phys(130), false);
        assert_eq!((s.frames.len(), s.elided, s.tail.len()), (50, Some(30), 50));
        assert_eq!(&*s.frames[49].src.function, "main.f49");
        assert_eq!(&*s.tail[0].src.function, "main.f80");
        // Go 1.19: at most 100 frames, then "...additional frames elided...".
        let s = select_frames(&syms, TracebackRules::for_minor(19), &phys(130), false);
        assert_eq!((s.frames.len(), s.truncated), (100, true));
    }

    /// printArgs' text for every kind of step: commas, nested aggregates (no comma after
    /// `{`), `?` for a dead spill slot, `...` and `_`.
    #[test]
    fn args_render_like_print_args() {
        let w = |offset, size, live| ArgItem::Word { offset, size, live };
        let items: Arc<[ArgItem]> = Arc::from(vec![
            w(0, 8, true),
            ArgItem::StartAgg,
            w(8, 8, false),
            ArgItem::StartAgg,
            w(16, 4, true),
            ArgItem::EndAgg,
            ArgItem::EndAgg,
            ArgItem::TooLarge,
            ArgItem::Dots,
        ]);
        let a = FrameArgs::Values {
            items,
            words: vec![0x00c0_0001_2345, 0x004b_5e20, 0x1].into(),
        };
        let mut s = String::new();
        a.render(&mut s);
        assert_eq!(s, "0xc000012345, {0x4b5e20?, {0x1}}, _, ...");
        let mut s = String::new();
        FrameArgs::Unknown.render(&mut s);
        assert_eq!(s, "...");
        let mut s = String::new();
        FrameArgs::Values {
            items: Arc::from([]),
            words: Box::new([]),
        }
        .render(&mut s);
        assert_eq!(s, "");
    }

    /// Words are read at `argp + offset`, 8 bytes, and masked to their size (little-endian);
    /// an unreadable word makes the whole list unknown rather than wrong.
    #[test]
    fn args_are_read_and_masked() {
        let mut mem = crate::memory::RecordedMemory::new();
        let argp = 0x7000;
        let stack: Vec<u8> = (0..32u8).map(|b| 0xa0 + b).collect();
        mem.insert(argp, &stack);
        let reader = StackReader::new(&mem, 0, &[]);
        let w = |offset, size| ArgItem::Word {
            offset,
            size,
            live: true,
        };
        let layout = ArgLayout::Items(Arc::from(vec![w(0, 8), w(8, 1), w(16, 2), w(20, 4)]));
        let FrameArgs::Values { words, .. } = FrameArgs::read(layout, &reader, argp) else {
            panic!("readable");
        };
        assert_eq!(&*words, &[0xa7a6_a5a4_a3a2_a1a0, 0xa8, 0xb1b0, 0xb7b6_b5b4]);
        let far = ArgLayout::Items(Arc::from(vec![w(200, 8)]));
        assert_eq!(FrameArgs::read(far, &reader, argp), FrameArgs::Unknown);
        assert_eq!(
            FrameArgs::read(ArgLayout::Unknown, &reader, argp),
            FrameArgs::Unknown
        );
    }
}
