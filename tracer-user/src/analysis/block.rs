//! The block profile of a traced window: where goroutines spent time parked, by parking
//! stack and wait reason, and who woke them, by waker stack.
//!
//! The numbers are the lifecycle state machine's own ([`crate::model::Model`]): a park lasts
//! from `gopark` until the `ready` that made the goroutine runnable (or, without one, until it
//! ran again), as `Model::sites` sums them; parks still open when the window ends count up to
//! the end. The only thing added here is the same sum keyed by the *waker's* stack, taken from
//! the model's state just before it applies each `ready`. Parks that began before the probes
//! were attached have no park event, so they are not in the profile (their wakes are counted in
//! `Model::preexisting_wakes`).

use std::{collections::HashMap, sync::Arc};

use tracer_common::event::Event;

use super::stacks::{Frame, frames_of_pcs};
use crate::{
    goroutines::symbols::{CachedSymbols, Symbols},
    model::{Model, SiteTotal, State},
};

/// Total parked time and parks of one (wait reason, stack).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSample {
    /// The `waitReason` value of the parks.
    pub reason: u32,
    /// The parking stack (parked view) or the waker's stack (wakers view): an id in
    /// [`Model::stacks`].
    pub stack: u32,
    /// Parks.
    pub count: u64,
    /// Their parked time, ns.
    pub total_ns: u64,
}

/// A [`BlockSample`] symbolized: what the output formats write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockStack {
    /// Frames, innermost first, runtime plumbing of parking (or waking) dropped.
    pub frames: Vec<Frame>,
    /// The wait reason as the runtime spells it (`chan receive`).
    pub reason: Arc<str>,
    /// Parks (parked view) or wakes (wakers view).
    pub count: u64,
    /// Parked time, ns.
    pub delay_ns: u64,
}

/// Leading functions dropped from parking stacks, so the leaf is the function that parked
/// (`runtime.chanrecv`, `runtime.semacquire1`, `runtime.selectgo`, `time.Sleep`, …).
pub fn is_park_plumbing(function: &str) -> bool {
    matches!(function, "runtime.gopark" | "runtime.goparkunlock")
}

/// Leading functions dropped from waker stacks, so the leaf is the function that called
/// `goready` (`runtime.send`, `runtime.readyWithTime`, `runtime.goroutineReady`, …). The
/// closure `goready` runs on the system stack is `runtime.goready.func1`, named
/// `_.goready.func1` by some linkers (seen in Go 1.27 binaries).
pub fn is_wake_plumbing(function: &str) -> bool {
    matches!(
        function,
        "runtime.ready" | "runtime.goready" | "runtime.systemstack" | "runtime.systemstack_switch"
    ) || function.ends_with(".goready.func1")
}

/// Symbolizes `samples` (stack ids of `model`) with `syms`, dropping the leading `skip`
/// functions (`skip` says which); `reason` names a `waitReason` value.
pub fn symbolize<S: Symbols>(
    samples: &[BlockSample],
    model: &Model,
    syms: &CachedSymbols<S>,
    skip: fn(&str) -> bool,
    reason: impl Fn(u32) -> Arc<str>,
) -> Vec<BlockStack> {
    samples
        .iter()
        .map(|s| BlockStack {
            frames: frames_of_pcs(syms, model.stacks.get(s.stack), skip),
            reason: reason(s.reason),
            count: s.count,
            delay_ns: s.total_ns,
        })
        .collect()
}

/// The two views of a window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockProfile {
    /// By parking stack: every park seen starting, completed or still open at the end.
    pub parked: Vec<BlockSample>,
    /// By waker stack: the parks ended by a `ready` (parks ended without one — netpoll,
    /// `unlockf` refusing — and parks still open have no waker).
    pub wakers: Vec<BlockSample>,
    /// Parks still open at the end (counted up to it).
    pub open: u64,
    /// Kernel time the window ended.
    pub end: u64,
}

impl BlockProfile {
    /// (parks, ns) over a view.
    pub fn totals(samples: &[BlockSample]) -> (u64, u64) {
        samples
            .iter()
            .fold((0, 0), |(c, t), s| (c + s.count, t + s.total_ns))
    }
}

/// Feeds events to a [`Model`] and keeps the per-waker-stack sums next to it.
#[derive(Debug, Default)]
pub struct BlockRecorder {
    /// The lifecycle state machine.
    pub model: Model,
    wakers: HashMap<(u32, u32), SiteTotal>,
}

impl BlockRecorder {
    /// Nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one event.
    pub fn apply(&mut self, e: &Event) {
        if let Event::Ready(r) = e {
            let t = r.header.ktime_ns;
            let parked = self
                .model
                .goroutines
                .get(&r.goid)
                .and_then(|g| match g.state {
                    State::Waiting(_) => g.parks.last().map(|p| (p.reason, p.at)),
                    _ => None,
                });
            if let Some((reason, at)) = parked {
                // The model interns the same slice when it applies this event: same id.
                let stack = self
                    .model
                    .stacks
                    .intern(&r.stack[..(r.stack_len as usize).min(r.stack.len())]);
                let s = self.wakers.entry((reason, stack)).or_default();
                let d = t.saturating_sub(at);
                s.count += 1;
                s.total_ns += d;
                s.max_ns = s.max_ns.max(d);
            }
        }
        self.model.apply(e);
    }

    /// The profile of the window ending at kernel time `end` (raised to the last event's
    /// time if that is later): completed parks as the model summed them, plus the open ones.
    pub fn finish(&self, end: u64) -> BlockProfile {
        let end = self.model.span.map_or(end, |(_, last)| end.max(last));
        let mut parked: HashMap<(u32, u32), (u64, u64)> = self
            .model
            .sites
            .iter()
            .map(|(k, s)| (*k, (s.count, s.total_ns)))
            .collect();
        let mut open = 0;
        for g in self.model.goroutines.values() {
            if !matches!(g.state, State::Waiting(_)) {
                continue;
            }
            if let Some(p) = g.parks.last()
                && p.wake.is_none()
                && p.resumed.is_none()
            {
                let e = parked.entry((p.reason, p.stack)).or_default();
                e.0 += 1;
                e.1 += end.saturating_sub(p.at);
                open += 1;
            }
        }
        let samples = |m: HashMap<(u32, u32), (u64, u64)>| {
            let mut v: Vec<BlockSample> = m
                .into_iter()
                .map(|((reason, stack), (count, total_ns))| BlockSample {
                    reason,
                    stack,
                    count,
                    total_ns,
                })
                .collect();
            v.sort_by(|a, b| {
                b.total_ns
                    .cmp(&a.total_ns)
                    .then((a.reason, a.stack).cmp(&(b.reason, b.stack)))
            });
            v
        };
        BlockProfile {
            parked: samples(parked),
            wakers: samples(
                self.wakers
                    .iter()
                    .map(|(k, s)| (*k, (s.count, s.total_ns)))
                    .collect(),
            ),
            open,
            end,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::leaks::trace::tests::{create, execute, park, ready};

    #[test]
    fn parked_time_by_stack_and_by_waker() {
        let mut rec = BlockRecorder::new();
        for e in [
            create(10, 0),
            execute(10, 5),
            // 10 parks at stack A for 100 ns, readied by 11 from stack W.
            park(10, 10, 7, &[0xa, 0xb]),
            ready(10, 110, 11, &[0xe, 0xf]),
            execute(10, 120),
            // Again for 30 ns, ended by execute only (no ready: netpoll).
            park(10, 130, 7, &[0xa, 0xb]),
            execute(10, 160),
            // A third park, still open at the end (1000).
            park(10, 200, 9, &[0xc]),
            // 12 was parked before the capture: its wake is not attributable.
            ready(12, 300, 11, &[0xe, 0xf]),
        ] {
            rec.apply(&e);
        }
        let prof = rec.finish(1000);
        assert_eq!(prof.end, 1000);
        assert_eq!(prof.open, 1);
        let stack_a = rec.model.stacks.intern(&[0xa, 0xb]);
        let stack_c = rec.model.stacks.intern(&[0xc]);
        let stack_w = rec.model.stacks.intern(&[0xe, 0xf]);
        assert_eq!(
            prof.parked,
            [
                BlockSample {
                    reason: 9,
                    stack: stack_c,
                    count: 1,
                    total_ns: 800
                },
                BlockSample {
                    reason: 7,
                    stack: stack_a,
                    count: 2,
                    total_ns: 130
                },
            ]
        );
        assert_eq!(
            prof.wakers,
            [BlockSample {
                reason: 7,
                stack: stack_w,
                count: 1,
                total_ns: 100
            }]
        );
        // The completed parks are exactly the model's own sums.
        let model: (u64, u64) = rec
            .model
            .sites
            .values()
            .fold((0, 0), |(c, t), s| (c + s.count, t + s.total_ns));
        assert_eq!(model, (2, 130));
        assert_eq!(BlockProfile::totals(&prof.parked), (3, 930));
        assert_eq!(rec.model.preexisting_wakes, 1);
    }

    #[test]
    fn the_end_is_never_before_the_last_event() {
        let mut r = BlockRecorder::new();
        r.apply(&park(3, 500, 1, &[0x1]));
        let p = r.finish(100);
        assert_eq!(p.end, 500);
        assert_eq!(BlockProfile::totals(&p.parked), (1, 0));
    }
}
