//! Turning the goroutine list into [`Goroutine`] records, in bounded batches.
//!
//! The target keeps running while we read. Each batch of up to [`BATCH`] goroutines costs a
//! handful of `process_vm_readv` calls: one for the `g` headers, one for the top of every
//! stack, one to re-read the headers afterwards. A goroutine whose header changed between the
//! two reads was torn (it ran meanwhile): it is decoded again, up to [`MAX_RETRIES`] times,
//! then reported with `torn = true`. Garbage anywhere becomes a per-goroutine error, never a
//! panic; every loop is bounded by the list length, the batch size or the frame limit.

use std::sync::Arc;

use super::{
    gstruct::{GOffsets, RawG, status, status_string},
    locate::{AllgsLocation, read_list},
    symbols::{CachedSymbols, FuncKind, Symbols},
    unwind::{
        Selected, StackReader, TracebackRules, UnwindStart, read_args, select_frames, show_func,
        unwind,
    },
};
use crate::memory::{MemoryError, MemorySource};

/// Goroutines read per batch.
pub const BATCH: usize = 1024;
/// Bytes of each stack prefetched from its SP (deeper words are read one by one).
pub const STACK_WINDOW: u64 = 4096;
/// Re-reads of a goroutine that changed while being read.
pub const MAX_RETRIES: usize = 3;

/// Where a goroutine was created (`created by F in goroutine N`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedBy {
    /// The function holding the `go` statement.
    pub function: Arc<str>,
    /// Its source file.
    pub file: Arc<str>,
    /// The line of the `go` statement.
    pub line: u32,
    /// `gopc - entry`, printed as `+0x..`.
    pub offset: Option<u64>,
}

/// One goroutine as the dump shows it.
#[derive(Debug, Clone)]
#[allow(clippy::struct_excessive_bools)] // independent facts the output reports as-is
pub struct Goroutine {
    /// The goroutine id.
    pub goid: u64,
    /// Address of its `g`.
    pub g_addr: u64,
    /// Raw `atomicstatus` (scan bit included).
    pub raw_status: u32,
    /// The status word of the runtime's `gStatusStrings` (`waiting`, `running`, …; `???` out
    /// of range).
    pub status: &'static str,
    /// The wait reason as the runtime spells it, when waiting with a non-zero reason.
    pub wait_reason: Option<Arc<str>>,
    /// Nanoseconds since `waitsince`, when the runtime would show a wait time (waiting or in
    /// a syscall, and `waitsince` stamped by a GC: with the previous cycle's mark-termination
    /// time, so only from the second GC on, and possibly up to one cycle early).
    pub wait_ns: Option<i64>,
    /// `lockedm != 0`.
    pub locked_to_thread: bool,
    /// Where it was created (hidden for the main goroutine and runtime creators).
    pub created_by: Option<CreatedBy>,
    /// The creator's goid (Go 1.21+, 0 = unknown).
    pub parent_goid: Option<u64>,
    /// Frames as the runtime would print them.
    pub stack: Selected,
    /// Running on a CPU at the moment of reading: no consistent stack can be read.
    pub running: bool,
    /// The OS thread (`m.procid`) it was running on, for a running goroutine.
    pub thread: Option<u64>,
    /// A runtime goroutine (`isSystemGoroutine`).
    pub system: bool,
    /// It kept changing while being read; the data may mix two moments.
    pub torn: bool,
    /// What went wrong while decoding it, if anything (the frames before it are kept).
    pub error: Option<String>,
}

impl Goroutine {
    /// The text inside the traceback header's brackets before any duration: the wait reason
    /// if waiting (or leaked) with one, else the status word, plus ` (leaked)` / ` (scan)`.
    pub fn state_text(&self) -> String {
        let mut s = match &self.wait_reason {
            Some(r) => r.to_string(),
            None => self.status.to_owned(),
        };
        if self.raw_status & !super::gstruct::G_SCAN == status::LEAKED {
            s.push_str(" (leaked)");
        }
        if self.raw_status & super::gstruct::G_SCAN != 0 {
            s.push_str(" (scan)");
        }
        s
    }

    /// Whole minutes waited, as the runtime prints them (`None` below one minute or unknown).
    pub fn wait_minutes(&self) -> Option<i64> {
        self.wait_ns.map(|ns| ns / 60_000_000_000)
    }
}

/// Totals of one dump.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DumpStats {
    /// Length of the runtime's goroutine list (dead `g`s included).
    pub list_len: u64,
    /// Goroutines handed to the sink.
    pub shown: u64,
    /// Dead (reusable) `g`s skipped.
    pub dead: u64,
    /// Runtime goroutines skipped (no `--system`).
    pub system_hidden: u64,
    /// Goroutines decoded with an error (shown with the error).
    pub errors: u64,
    /// `g` pointers that could not be read at all (not shown).
    pub unreadable: u64,
    /// Goroutines that stayed torn after every retry.
    pub torn: u64,
    /// Re-reads caused by goroutines changing mid-read.
    pub retries: u64,
}

/// Errors that stop a whole dump.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The goroutine list itself became unreadable.
    #[error(transparent)]
    List(#[from] super::locate::LocateError),
    /// Target memory failed as a whole (exited, permission).
    #[error(transparent)]
    Memory(#[from] MemoryError),
}

/// What to include.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DumpOptions {
    /// `GOTRACEBACK=system` semantics (what the runtime's own `SIGQUIT` dump uses): runtime
    /// goroutines included, runtime frames shown, `created by` shown for runtime creators.
    /// Off: `GOTRACEBACK=all` semantics, as `runtime.Stack(buf, true)` and panics print.
    pub system: bool,
}

/// Everything needed to decode goroutines of one target.
#[derive(Debug)]
pub struct Decoder<'a, M, S> {
    /// Target memory.
    pub mem: &'a M,
    /// Target code.
    pub syms: &'a CachedSymbols<S>,
    /// `g` field offsets.
    pub offs: GOffsets,
    /// Go minor version (1.`minor`).
    pub minor: u32,
    /// `waitReasonStrings` of that version, indexed by `waitReason`.
    pub wait_reasons: &'a [Arc<str>],
}

/// `CLOCK_MONOTONIC` in nanoseconds: the runtime's `nanotime` clock.
pub fn monotonic_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

impl<M: MemorySource, S: Symbols> Decoder<'_, M, S> {
    /// Reads the whole list at `loc` and hands every shown goroutine to `sink`, in list
    /// order, one batch at a time (memory stays bounded by the batch size).
    pub fn dump(
        &self,
        loc: AllgsLocation,
        opts: DumpOptions,
        sink: &mut dyn FnMut(Goroutine),
    ) -> Result<DumpStats, DecodeError> {
        let (mut ptr, len) = read_list(self.mem, loc)?;
        let mut stats = DumpStats {
            list_len: len,
            ..DumpStats::default()
        };
        let mut ptrs = vec![0u8; BATCH * 8];
        let mut start = 0u64;
        while start < len {
            let n = (len - start).min(BATCH as u64) as usize;
            let buf = &mut ptrs[..n * 8];
            if self.mem.read_at(ptr + start * 8, buf).is_err() {
                // The runtime grew the list meanwhile and the old array is gone: entries
                // never move or disappear, so continue at the same index in the new array.
                let (now_ptr, now_len) = read_list(self.mem, loc)?;
                if now_ptr == ptr || now_len < start + n as u64 {
                    self.mem.read_at(ptr + start * 8, buf)?;
                }
                ptr = now_ptr;
                self.mem.read_at(ptr + start * 8, buf)?;
            }
            let gps: Vec<u64> = buf
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
                .collect();
            self.batch(&gps, opts, &mut stats, sink);
            start += n as u64;
        }
        Ok(stats)
    }

    fn read_headers(&self, gps: &[u64]) -> Vec<Option<RawG>> {
        let len = self.offs.read_len();
        let reqs: Vec<(u64, usize)> = gps.iter().map(|&g| (g, len)).collect();
        let mut out = vec![0u8; len * gps.len()];
        let mut ok = vec![false; gps.len()];
        self.mem.read_scatter(&reqs, &mut out, &mut ok);
        gps.iter()
            .zip(out.chunks_exact(len.max(1)))
            .zip(&ok)
            .map(|((&g, b), &ok)| {
                if ok && g != 0 {
                    self.offs.decode(g, b)
                } else {
                    None
                }
            })
            .collect()
    }

    fn batch(
        &self,
        gps: &[u64],
        opts: DumpOptions,
        stats: &mut DumpStats,
        sink: &mut dyn FnMut(Goroutine),
    ) {
        let now = monotonic_ns();
        let heads = self.read_headers(gps);
        let mut live: Vec<RawG> = Vec::with_capacity(heads.len());
        for h in heads {
            match h {
                None => stats.unreadable += 1,
                Some(g) if matches!(g.base_status(), status::DEAD | status::DEADEXTRA) => {
                    stats.dead += 1;
                }
                Some(g) => live.push(g),
            }
        }
        // Prefetch the top of every stack in one go.
        let (reqs, windows, ok) = self.read_windows(&live);
        let mut decoded = Vec::with_capacity(live.len());
        let mut off = 0;
        for (i, g) in live.iter().enumerate() {
            let (base, n) = reqs[i];
            let window = if ok[i] {
                &windows[off..off + n]
            } else {
                &[][..]
            };
            off += n;
            decoded.push(self.decode_one(g, base, window, now, opts));
        }
        // Re-read headers and stack tops: a goroutine that ran meanwhile may have parked
        // again at the same place (same header) with different stack bytes in between, so
        // both must match. Those that moved, or failed to decode, are decoded again.
        let again = self.read_headers(&live.iter().map(|g| g.addr).collect::<Vec<_>>());
        let (_, windows2, ok2) = self.read_windows(&live);
        let mut off = 0;
        for (i, ((g, mut d), second)) in live.iter().zip(decoded).zip(again).enumerate() {
            let n = reqs[i].1;
            let same_stack = ok[i] == ok2[i] && windows[off..off + n] == windows2[off..off + n];
            off += n;
            let mut stable = same_stack && second.is_some_and(|s| s.same_state(g));
            let mut tries = 0;
            while (!stable || d.error.is_some()) && tries < MAX_RETRIES {
                tries += 1;
                stats.retries += 1;
                match self.decode_checked(g.addr, now, opts) {
                    Some((again, consistent)) => {
                        d = again;
                        stable = consistent;
                    }
                    None => break,
                }
            }
            if !stable
                && matches!(
                    self.read_headers(&[g.addr])
                        .pop()
                        .flatten()
                        .map(|s| s.base_status()),
                    Some(status::DEAD)
                )
            {
                // It exited while we read it.
                stats.dead += 1;
                continue;
            }
            d.torn = !stable;
            stats.torn += u64::from(d.torn);
            if d.system && !opts.system {
                stats.system_hidden += 1;
                continue;
            }
            stats.errors += u64::from(d.error.is_some());
            stats.shown += 1;
            sink(d);
        }
    }

    /// Reads the top of each goroutine's stack (from its unwinding SP, at most
    /// [`STACK_WINDOW`] bytes, never past `stack.hi`) in one scatter read.
    fn read_windows(&self, gs: &[RawG]) -> (Vec<(u64, usize)>, Vec<u8>, Vec<bool>) {
        let reqs: Vec<(u64, usize)> = gs
            .iter()
            .map(|g| match start_of(g) {
                Some(s) if s.sp >= s.lo && s.sp < s.hi => {
                    (s.sp, (s.hi - s.sp).min(STACK_WINDOW) as usize)
                }
                _ => (0, 0),
            })
            .collect();
        let total: usize = reqs.iter().map(|r| r.1).sum();
        let mut windows = vec![0u8; total];
        let mut ok = vec![false; reqs.len()];
        self.mem.read_scatter(&reqs, &mut windows, &mut ok);
        (reqs, windows, ok)
    }

    /// Reads and decodes the goroutine at `addr` alone, then re-reads its header and stack
    /// top: `(goroutine, consistent)`, or `None` if it is gone (unreadable or dead).
    fn decode_checked(&self, addr: u64, now: i64, opts: DumpOptions) -> Option<(Goroutine, bool)> {
        let first = self.read_headers(&[addr]).pop().flatten()?;
        if matches!(first.base_status(), status::DEAD | status::DEADEXTRA) {
            return None;
        }
        let one = [first];
        let (reqs, w1, ok1) = self.read_windows(&one);
        let window = if ok1[0] { &w1[..] } else { &[][..] };
        let d = self.decode_one(&first, reqs[0].0, window, now, opts);
        let second = self.read_headers(&[addr]).pop().flatten();
        let (_, w2, ok2) = self.read_windows(&one);
        let consistent = second.is_some_and(|s| s.same_state(&first)) && ok1 == ok2 && w1 == w2;
        Some((d, consistent))
    }

    /// Decodes one goroutine from its header and (optionally) a prefetched stack window.
    pub fn decode_one(
        &self,
        g: &RawG,
        window_base: u64,
        window: &[u8],
        now: i64,
        opts: DumpOptions,
    ) -> Goroutine {
        let st = g.base_status();
        let status = status_string(st, self.minor).unwrap_or("???");
        let wait_reason = ((st == status::WAITING || st == status::LEAKED) && g.waitreason != 0)
            .then(|| {
                self.wait_reasons
                    .get(usize::from(g.waitreason))
                    .cloned()
                    .unwrap_or_else(|| Arc::from("unknown wait reason"))
            });
        let wait_ns = ((st == status::WAITING || st == status::SYSCALL) && g.waitsince != 0)
            .then(|| now - g.waitsince);
        let rules = TracebackRules::for_minor(self.minor);
        let mut out = Goroutine {
            goid: g.goid,
            g_addr: g.addr,
            raw_status: g.status,
            status,
            wait_reason,
            wait_ns,
            locked_to_thread: g.lockedm != 0,
            created_by: None,
            parent_goid: (g.parent_goid != 0).then_some(g.parent_goid),
            stack: Selected::default(),
            running: false,
            thread: None,
            system: false,
            torn: false,
            error: None,
        };
        if g.goid != 1
            && let Some(f) = self.syms.func_at(g.gopc)
            && (opts.system || show_func(rules, &f.name, f.kind, false, FuncKind::Normal))
        {
            let tracepc = if g.gopc > f.entry { g.gopc - 1 } else { g.gopc };
            let frames = self.syms.source_frames(&f, tracepc);
            if let Some(outer) = frames.last() {
                out.created_by = Some(CreatedBy {
                    function: f.name.clone(),
                    file: outer.file.clone(),
                    line: outer.line,
                    offset: (g.gopc > f.entry).then(|| g.gopc - f.entry),
                });
            }
        }
        let start_kind = self
            .syms
            .func_at(g.startpc)
            .map(|f| (f.kind, f.name.starts_with("runtime.")));
        out.system = match start_kind {
            None | Some((FuncKind::RuntimeMain | FuncKind::Corostart, _)) => false,
            Some((_, runtime)) => runtime,
        };
        // The finalizer / cleanup goroutines count as user goroutines while they run user
        // code (runtime: fingStatus / runningCleanups); from outside, "user code on the
        // stack" is the observable equivalent.
        let finalizer = matches!(
            start_kind,
            Some((FuncKind::RunFinalizers | FuncKind::RunCleanups, _))
        );
        if st == status::RUNNING && g.syscallsp == 0 {
            out.running = true;
            // Where it runs: `g.m.procid` is the thread id (the M may change right after).
            out.thread = self.offs.m_procid.filter(|_| g.m != 0).and_then(|o| {
                self.mem
                    .read_u64(g.m + u64::from(o))
                    .ok()
                    .filter(|&t| t != 0 && t < 1 << 32)
            });
            return out;
        }
        let Some(start) = start_of(g) else {
            out.error = Some("no saved scheduler context (sched.pc is 0)".into());
            return out;
        };
        let reader = StackReader::new(self.mem, window_base, window);
        let (phys, err) = unwind(self.syms, &reader, start);
        if finalizer {
            out.system = phys.iter().all(|f| f.func.name.starts_with("runtime."));
        }
        out.stack = select_frames(self.syms, rules, &phys, opts.system);
        read_args(self.syms, &reader, &phys, &mut out.stack);
        out.error = err.map(|e| e.to_string());
        out
    }
}

/// Where unwinding starts: the syscall context if `syscallsp != 0`, else `g.sched`.
fn start_of(g: &RawG) -> Option<UnwindStart> {
    let syscall = g.syscallsp != 0;
    let (pc, sp) = if syscall {
        (g.syscallpc, g.syscallsp)
    } else {
        (g.sched_pc, g.sched_sp)
    };
    if sp == 0 {
        return None;
    }
    Some(UnwindStart {
        pc,
        sp,
        lo: g.stack_lo,
        hi: g.stack_hi,
        syscall,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        goroutines::{
            symbols::{FuncInfo, SourceFrame},
            unwind::MAX_PHYSICAL_FRAMES,
        },
        memory::RecordedMemory,
    };

    /// Four functions at 0x1000-steps; frame size = 0x10 * index.
    struct Fake;
    const FUNCS: &[(u64, &str, u32, bool)] = &[
        (0x1000, "runtime.gopark", 0x20, false),
        (0x2000, "runtime.chanrecv1", 0x18, false),
        (0x3000, "main.block", 0x28, false),
        (0x4000, "runtime.goexit", 0, true),
        (0x5000, "main.spawn", 0x30, false),
    ];

    impl Symbols for Fake {
        fn func_at(&self, pc: u64) -> Option<FuncInfo> {
            FUNCS
                .iter()
                .find(|f| pc >= f.0 && pc < f.0 + 0x1000)
                .map(|f| FuncInfo {
                    entry: f.0,
                    name: f.1.into(),
                    kind: FuncKind::from_name(f.1),
                    top_frame: f.3,
                    sp_write: false,
                })
        }
        fn sp_delta(&self, func: &FuncInfo, _pc: u64) -> Option<u32> {
            FUNCS.iter().find(|f| f.0 == func.entry).map(|f| f.2)
        }
        fn source_frames(&self, func: &FuncInfo, pc: u64) -> Vec<SourceFrame> {
            let mut v = Vec::new();
            if func.name.as_ref() == "main.block" {
                // An inlined helper at the call site.
                v.push(SourceFrame {
                    function: "main.helper".into(),
                    file: "/src/main.go".into(),
                    line: 7,
                    inlined: true,
                    kind: FuncKind::Normal,
                });
            }
            v.push(SourceFrame {
                function: func.name.clone(),
                file: "/src/main.go".into(),
                line: (pc - func.entry) as u32,
                inlined: false,
                kind: func.kind,
            });
            v
        }
    }

    fn offs() -> GOffsets {
        GOffsets {
            stack_lo: 0,
            stack_hi: 8,
            m: 16,
            sched_sp: 24,
            sched_pc: 32,
            sched_bp: 40,
            syscallsp: 48,
            syscallpc: 56,
            syscallbp: None,
            atomicstatus: 64,
            goid: 72,
            waitsince: 80,
            waitreason: 88,
            lockedm: 96,
            parent_goid: Some(104),
            gopc: 112,
            startpc: 120,
            m_procid: None,
        }
    }

    fn g_bytes(goid: u64, status: u32, sp: u64, pc: u64) -> Vec<u8> {
        let mut b = vec![0u8; 128];
        let mut put = |off: usize, v: u64| b[off..off + 8].copy_from_slice(&v.to_le_bytes());
        put(0, 0x9000);
        put(8, 0xa000);
        put(24, sp);
        put(32, pc);
        put(72, goid);
        put(104, 1);
        put(112, 0x5011);
        put(120, 0x3000);
        b[64..68].copy_from_slice(&status.to_le_bytes());
        b[88] = 2;
        b
    }

    #[test]
    fn decodes_a_parked_goroutine_like_the_runtime() {
        let mut mem = RecordedMemory::new();
        // Stack: gopark frame at 0x9f00 (0x20 bytes), return into chanrecv1, and so on.
        let sp = 0x9f00u64;
        let mut stack = vec![0u8; 0x100];
        let mut put = |at: u64, v: u64| {
            let o = (at - sp) as usize;
            stack[o..o + 8].copy_from_slice(&v.to_le_bytes());
        };
        put(sp + 0x20, 0x2010); // gopark returns into chanrecv1
        put(sp + 0x28 + 0x18, 0x3040); // chanrecv1 returns into main.block
        put(sp + 0x28 + 0x20 + 0x28, 0x4001); // main.block returns into goexit
        mem.insert(sp, &stack);
        mem.insert(0x7000, &g_bytes(5, status::WAITING, sp, 0x1100));
        mem.insert(0x7100, &g_bytes(0, status::DEAD, 0, 0));
        mem.insert(
            0x8000,
            &[0x00, 0x70, 0, 0, 0, 0, 0, 0, 0x00, 0x71, 0, 0, 0, 0, 0, 0],
        );
        mem.insert(0x8100, &0x8000u64.to_le_bytes());
        mem.insert(0x8108, &2u64.to_le_bytes());
        let syms = CachedSymbols::new(Fake);
        let reasons: Vec<Arc<str>> = vec!["".into(), "a".into(), "chan receive".into()];
        let dec = Decoder {
            mem: &mem,
            syms: &syms,
            offs: offs(),
            minor: 27,
            wait_reasons: &reasons,
        };
        let mut got = Vec::new();
        let stats = dec
            .dump(
                AllgsLocation::LenPtr {
                    len_addr: 0x8108,
                    ptr_addr: 0x8100,
                },
                DumpOptions { system: false },
                &mut |g| got.push(g),
            )
            .unwrap();
        assert_eq!(
            (stats.list_len, stats.dead, stats.shown, stats.errors),
            (2, 1, 1, 0)
        );
        let g = &got[0];
        assert_eq!(g.goid, 5);
        assert_eq!(g.state_text(), "chan receive");
        let names: Vec<_> = g
            .stack
            .frames
            .iter()
            .map(|f| (&*f.src.function, f.src.line, f.offset))
            .collect();
        // Runtime frames hidden; inlined helper first, then main.block at pc-1 with +0x40.
        assert_eq!(
            names,
            [("main.helper", 7, None), ("main.block", 0x3f, Some(0x40))]
        );
        let c = g.created_by.as_ref().unwrap();
        assert_eq!(
            (&*c.function, c.line, c.offset),
            ("main.spawn", 0x10, Some(0x11))
        );
        assert_eq!(g.parent_goid, Some(1));
        assert!(!g.torn && !g.system);
        assert_eq!(g.wait_ns, None, "waitsince 0 = never stamped by a GC");
        let mut aged = g.clone();
        aged.wait_ns = Some(125 * 1_000_000_000);
        assert_eq!(
            crate::output::traceback::header(&aged),
            "goroutine 5 [chan receive, 2 minutes]:"
        );
        let mut text = Vec::new();
        crate::output::traceback::write_goroutine(&mut text, g, 27).unwrap();
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "goroutine 5 [chan receive]:\nmain.helper(...)\n\t/src/main.go:7\nmain.block(...)\n\t\
             /src/main.go:63 +0x40\ncreated by main.spawn in goroutine 1\n\t/src/main.go:16 +0x11\n\n"
        );
    }

    #[test]
    fn garbage_is_a_per_goroutine_error() {
        let mut mem = RecordedMemory::new();
        mem.insert(0x7000, &g_bytes(9, status::WAITING, 0x9f00, 0xdead_0000));
        let syms = CachedSymbols::new(Fake);
        let dec = Decoder {
            mem: &mem,
            syms: &syms,
            offs: offs(),
            minor: 22,
            wait_reasons: &[],
        };
        let g = dec.decode_one(
            &offs()
                .decode(0x7000, &g_bytes(9, 4, 0x9f00, 0xdead_0000))
                .unwrap(),
            0,
            &[],
            0,
            DumpOptions::default(),
        );
        assert_eq!(g.error.as_deref(), Some("unknown pc 0xdead0000"));
        assert_eq!(g.state_text(), "unknown wait reason");
        // A stack that cannot be read.
        let g = dec.decode_one(
            &offs()
                .decode(0x7000, &g_bytes(9, 4, 0x9f00, 0x1100))
                .unwrap(),
            0,
            &[],
            0,
            DumpOptions::default(),
        );
        assert_eq!(g.error.as_deref(), Some("cannot read the stack at 0x9f20"));
    }

    #[test]
    fn random_memory_never_panics_or_hangs() {
        // A deterministic xorshift stream: g headers, list and stacks full of noise that
        // sometimes points back into the recorded memory.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let syms = CachedSymbols::new(Fake);
        for round in 0..50 {
            let mut mem = RecordedMemory::new();
            let n = 64u64;
            let mut list = Vec::new();
            for i in 0..n {
                let gp = 0x10_0000 + i * 0x100;
                list.extend_from_slice(&gp.to_le_bytes());
                let mut g = vec![0u8; 128];
                for w in g.chunks_exact_mut(8) {
                    let v = match next() % 4 {
                        0 => 0x9f00 + next() % 0x100,
                        1 => 0x1000 + next() % 0x5000,
                        _ => next(),
                    };
                    w.copy_from_slice(&v.to_le_bytes());
                }
                mem.insert(gp, &g);
            }
            let mut stack = vec![0u8; 0x100];
            for w in stack.chunks_exact_mut(8) {
                w.copy_from_slice(&(0x1000 + next() % 0x5000).to_le_bytes());
            }
            mem.insert(0x9f00, &stack);
            mem.insert(0x20_0000, &list);
            mem.insert(0x8100, &0x20_0000u64.to_le_bytes());
            mem.insert(0x8108, &n.to_le_bytes());
            let dec = Decoder {
                mem: &mem,
                syms: &syms,
                offs: offs(),
                minor: 27,
                wait_reasons: &[],
            };
            let mut seen = 0u64;
            let stats = dec
                .dump(
                    AllgsLocation::LenPtr {
                        len_addr: 0x8108,
                        ptr_addr: 0x8100,
                    },
                    DumpOptions { system: true },
                    &mut |g| {
                        seen += 1;
                        assert!(g.stack.frames.len() <= MAX_PHYSICAL_FRAMES * 2);
                    },
                )
                .unwrap();
            assert_eq!(seen + stats.dead, n, "round {round}: {stats:?}");
        }
    }
}
