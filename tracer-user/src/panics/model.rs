//! The panic state machine: panic-path events in, one finished [`PanicReport`] per panic out,
//! emitted when its fate is known.
//!
//! Per goroutine it keeps the panics in flight, oldest first (the runtime's `g._panic` list
//! reversed). Fates:
//! - `recovery` resumes a frame at SP `s`: every panic in flight started below `s` (a smaller
//!   SP at `gopanic`) ends there, as the runtime unwinds them (runtime/panic.go `recovery`,
//!   1.22+; before 1.22 `gopanic` dropped the recovered and aborted panics the same way). The
//!   innermost is the one recovered; older ones were aborted by it, unless `recover()` had
//!   already returned them (a re-panic).
//! - `fatalpanic` ends every panic in flight on that goroutine.
//!
//! Chain snapshots taken at each event (the `_panic.recovered` flags) tell which panics a
//! `recover()` returned, also for those superseded by a re-panic before `recovery` ran.
//! Pure: no I/O, no binary; symbolization happens when a report is rendered.

use std::collections::{BTreeMap, VecDeque};

use tracer_common::panic::{
    ChainEntry, FLAG_GOEXIT, FLAG_RECOVERED, PanicEnd, PanicEvent, PanicStart,
};

/// How a panic ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// `recover()` returned its value.
    Recovered,
    /// It killed the process.
    Fatal,
    /// A panic in one of its deferred calls replaced it, and that one was recovered.
    Aborted,
    /// Tracing stopped (or the process vanished) before its fate was seen.
    Unknown,
}

/// One panic with its fate, before symbolization.
// Independent facts of one panic, reported as-is; an enum would not fit them.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone)]
pub struct FinishedPanic {
    /// The `gopanic` event.
    pub start: Box<PanicStart>,
    /// How it ended.
    pub outcome: Outcome,
    /// `recover()` returned its value (also true for a recovered value re-panicked later).
    pub recovered: bool,
    /// It started while another panic was in flight on the same goroutine.
    pub nested: bool,
    /// The return address into the function whose `recover()` returned this panic.
    pub recovered_by_pc: Option<u64>,
    /// Its place in the runtime's printed chain for a fatal panic: the index from the oldest.
    pub chain_index: usize,
    /// For a fatal chain: the next (newer) panic re-panicked this very value (same type and
    /// data pointer), which Go 1.25+ prints as one `[recovered, repanicked]` line.
    pub repanicked: bool,
    /// `ktime` of the event that decided the fate.
    pub end_ns: u64,
    /// A fatal runtime error (`throw` / `fatal`): the value is its message.
    pub throw: bool,
    /// `(entry PC, *funcval)` of the deferred functions this panic called, in call order
    /// (entry 0 when the kernel could not read it).
    pub defers: Vec<(u64, u64)>,
}

#[derive(Debug)]
struct Open {
    start: Box<PanicStart>,
    recovered: bool,
    nested: bool,
    recovered_by_pc: Option<u64>,
    defers: Vec<(u64, u64)>,
}

/// Deferred calls kept per panic.
pub const MAX_DEFERS: usize = 256;

/// Per-goroutine panics in flight.
#[derive(Debug, Default)]
pub struct PanicModel {
    open: BTreeMap<u64, Vec<Open>>,
    /// Events that matched no panic in flight (attached mid-panic…).
    pub unmatched: u64,
}

impl PanicModel {
    /// An empty model.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one event; finished panics are appended to `out` in the order the runtime
    /// prints them (oldest first).
    pub fn apply(&mut self, e: &PanicEvent, out: &mut VecDeque<FinishedPanic>) {
        match e {
            PanicEvent::Start(s) => {
                let list = self.open.entry(s.goid).or_default();
                mark_recovered(list, &s.chain, s.chain_len);
                let nested = !list.is_empty();
                list.push(Open {
                    start: Box::new(*s),
                    recovered: false,
                    nested,
                    recovered_by_pc: None,
                    defers: Vec::new(),
                });
            }
            PanicEvent::Recover(r) => {
                if r.live != 0 {
                    match self.open.get_mut(&r.goid).and_then(|l| l.last_mut()) {
                        // The first live recover() takes the panic; later calls return nil.
                        Some(p) => {
                            p.recovered_by_pc.get_or_insert(r.caller_pc);
                        }
                        None => self.unmatched += 1,
                    }
                }
            }
            PanicEvent::Recovery(end) => self.recovery(end, out),
            PanicEvent::Fatal(end) => self.fatal(end, out),
            PanicEvent::Throw(t) => out.push_back(FinishedPanic {
                start: Box::new(*t),
                outcome: Outcome::Fatal,
                recovered: false,
                nested: self.open.get(&t.goid).is_some_and(|l| !l.is_empty()),
                recovered_by_pc: None,
                chain_index: 0,
                repanicked: false,
                end_ns: t.header.ktime_ns,
                defers: Vec::new(),
                throw: true,
            }),
            PanicEvent::Defer(d) => match self.open.get_mut(&d.goid).and_then(|l| l.last_mut()) {
                // Bounded: a panic runs one call per deferred function of its frames.
                Some(p) if p.defers.len() < MAX_DEFERS => p.defers.push((d.fn_pc, d.closure)),
                Some(_) => {}
                // A Goexit running defers, or a panic that started before attaching.
                None => self.unmatched += 1,
            },
        }
    }

    fn recovery(&mut self, end: &PanicEnd, out: &mut VecDeque<FinishedPanic>) {
        let Some(list) = self.open.get_mut(&end.goid) else {
            self.unmatched += 1;
            return;
        };
        mark_recovered(list, &end.chain, end.chain_len);
        let first_ended = if end.sp == 0 {
            list.len().saturating_sub(1)
        } else {
            list.iter()
                .position(|p| p.start.sp < end.sp)
                .unwrap_or(list.len().saturating_sub(1))
        };
        let ended: Vec<Open> = list.drain(first_ended..).collect();
        let n = ended.len();
        for (i, p) in ended.into_iter().enumerate() {
            let innermost = i + 1 == n;
            let recovered = p.recovered || innermost;
            out.push_back(FinishedPanic {
                outcome: if recovered {
                    Outcome::Recovered
                } else {
                    Outcome::Aborted
                },
                recovered,
                nested: p.nested,
                recovered_by_pc: p.recovered_by_pc,
                chain_index: i,
                repanicked: false,
                end_ns: end.header.ktime_ns,
                defers: p.defers,
                throw: false,
                start: p.start,
            });
        }
        if list.is_empty() {
            self.open.remove(&end.goid);
        }
    }

    fn fatal(&mut self, end: &PanicEnd, out: &mut VecDeque<FinishedPanic>) {
        let Some(mut list) = self.open.remove(&end.goid) else {
            self.unmatched += 1;
            return;
        };
        mark_recovered(&mut list, &end.chain, end.chain_len);
        let n = list.len();
        let keys: Vec<(u64, u64)> = list
            .iter()
            .map(|p| (p.start.type_ptr, p.start.data_ptr))
            .collect();
        for (i, p) in list.into_iter().enumerate() {
            out.push_back(FinishedPanic {
                outcome: Outcome::Fatal,
                recovered: p.recovered,
                nested: p.nested,
                recovered_by_pc: p.recovered_by_pc,
                chain_index: i,
                repanicked: i + 1 < n && keys.get(i + 1) == keys.get(i),
                end_ns: end.header.ktime_ns,
                defers: p.defers,
                throw: false,
                start: p.start,
            });
        }
    }

    /// Ends tracing: every panic still in flight, with an unknown fate.
    pub fn finish(&mut self, now_ns: u64, out: &mut VecDeque<FinishedPanic>) {
        for (_, list) in std::mem::take(&mut self.open) {
            for (i, p) in list.into_iter().enumerate() {
                out.push_back(FinishedPanic {
                    outcome: Outcome::Unknown,
                    recovered: p.recovered,
                    nested: p.nested,
                    recovered_by_pc: p.recovered_by_pc,
                    chain_index: i,
                    repanicked: false,
                    end_ns: now_ns,
                    defers: p.defers,
                    throw: false,
                    start: p.start,
                });
            }
        }
    }
}

/// Applies a `g._panic` snapshot (innermost first, Goexit entries skipped) to the panics in
/// flight, newest last.
fn mark_recovered(list: &mut [Open], chain: &[ChainEntry], chain_len: u32) {
    let entries = chain
        .iter()
        .take(chain_len as usize)
        .filter(|c| c.flags & FLAG_GOEXIT == 0);
    for (c, p) in entries.zip(list.iter_mut().rev()) {
        if c.flags & FLAG_RECOVERED != 0
            && (c.type_ptr, c.data_ptr) == (p.start.type_ptr, p.start.data_ptr)
        {
            p.recovered = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use tracer_common::{
        event::Header,
        panic::{GoRecover, PanicKind},
    };

    use super::*;

    fn start(goid: u64, sp: u64, value: u64, chain: &[(u64, u32)]) -> PanicEvent {
        let mut s = PanicStart {
            header: Header {
                kind: PanicKind::Start as u32,
                ..Header::default()
            },
            goid,
            sp,
            type_ptr: 1,
            data_ptr: value,
            ..PanicStart::default()
        };
        for (i, (v, f)) in chain.iter().enumerate() {
            s.chain[i] = ChainEntry {
                type_ptr: 1,
                data_ptr: *v,
                flags: *f,
                pad: 0,
            };
        }
        s.chain_len = chain.len() as u32;
        PanicEvent::Start(s)
    }

    fn end(goid: u64, sp: u64, chain: &[(u64, u32)]) -> PanicEnd {
        let mut e = PanicEnd {
            goid,
            sp,
            ..PanicEnd::default()
        };
        for (i, (v, f)) in chain.iter().enumerate() {
            e.chain[i] = ChainEntry {
                type_ptr: 1,
                data_ptr: *v,
                flags: *f,
                pad: 0,
            };
        }
        e.chain_len = chain.len() as u32;
        e
    }

    fn recover(goid: u64, pc: u64) -> PanicEvent {
        PanicEvent::Recover(GoRecover {
            goid,
            caller_pc: pc,
            live: 1,
            ..GoRecover::default()
        })
    }

    fn run(events: &[PanicEvent]) -> Vec<(u64, Outcome, bool, bool, Option<u64>)> {
        let mut m = PanicModel::new();
        let mut out = VecDeque::new();
        for e in events {
            m.apply(e, &mut out);
        }
        m.finish(0, &mut out);
        out.iter()
            .map(|f| {
                (
                    f.start.data_ptr,
                    f.outcome,
                    f.recovered,
                    f.nested,
                    f.recovered_by_pc,
                )
            })
            .collect()
    }

    #[test]
    fn simple_recovered() {
        let got = run(&[
            start(1, 100, 7, &[]),
            recover(1, 0x55),
            PanicEvent::Recovery(end(1, 200, &[(7, FLAG_RECOVERED)])),
        ]);
        assert_eq!(got, vec![(7, Outcome::Recovered, true, false, Some(0x55))]);
    }

    #[test]
    fn nested_recovered_aborts_the_first() {
        let got = run(&[
            start(1, 100, 7, &[]),
            start(1, 50, 8, &[(7, 0)]),
            recover(1, 0x55),
            PanicEvent::Recovery(end(1, 200, &[(8, FLAG_RECOVERED), (7, 0)])),
        ]);
        assert_eq!(
            got,
            vec![
                (7, Outcome::Aborted, false, false, None),
                (8, Outcome::Recovered, true, true, Some(0x55)),
            ]
        );
    }

    #[test]
    fn repanic_then_fatal() {
        let got = run(&[
            start(1, 100, 7, &[]),
            recover(1, 0x55),
            start(1, 50, 7, &[(7, FLAG_RECOVERED)]),
            PanicEvent::Fatal(end(1, 0, &[(7, 0), (7, FLAG_RECOVERED)])),
        ]);
        assert_eq!(
            got,
            vec![
                (7, Outcome::Fatal, true, false, Some(0x55)),
                (7, Outcome::Fatal, false, true, None),
            ]
        );
    }

    #[test]
    fn inner_recovery_keeps_the_outer_panic() {
        // Panic A; a deferred call panics B and recovers it in a frame above B but below A's
        // deferred call: A continues, then kills the process.
        let got = run(&[
            start(1, 100, 7, &[]),
            start(1, 40, 8, &[(7, 0)]),
            PanicEvent::Recovery(end(1, 60, &[(8, FLAG_RECOVERED), (7, 0)])),
            PanicEvent::Fatal(end(1, 0, &[(7, 0)])),
        ]);
        assert_eq!(
            got,
            vec![
                (8, Outcome::Recovered, true, true, None),
                (7, Outcome::Fatal, false, false, None),
            ]
        );
    }

    #[test]
    fn goroutines_are_separate_and_unknown_at_finish() {
        let got = run(&[start(1, 100, 7, &[]), start(2, 100, 8, &[])]);
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|g| g.1 == Outcome::Unknown && !g.3));
    }
}
