//! What `gtrace leaks --trace` learns from the lifecycle event stream, per goroutine: when it
//! was created, whether it ran (a `ready`, `execute`, yield or exit event) after a given
//! moment, when it exited, and when its latest parks started and ended.
//!
//! Why a tracker of its own rather than [`crate::model::Model`]: the leak verdicts need only
//! these few facts per goroutine, for windows of minutes on busy processes, so nothing grows
//! with the number of events (the model lists parks and latency samples). Snapshots and
//! events are correlated by time: both use `CLOCK_MONOTONIC`, and a goroutine that a snapshot
//! read parked at some time and that then has a `ready` or `execute` event left that park.

use std::collections::HashMap;

use tracer_common::event::Event;

/// Goroutines tracked; further ones are counted in [`Lifecycle::untracked`].
pub const MAX_TRACKED: usize = 1 << 20;

/// One park as seen in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct ParkSeen {
    /// Kernel time of `gopark` (0 = no park).
    at: u64,
    /// Kernel time it ended (`ready` or `execute`); 0 while open.
    end: u64,
    /// The `waitReason` value.
    reason: u32,
}

/// What the stream said about one goroutine; times are kernel ns, 0 = not seen.
#[derive(Debug, Clone, Copy, Default)]
struct Life {
    created: u64,
    exited: u64,
    /// Latest event showing it runnable or running: ready, execute, yield, exit.
    last_run: u64,
    /// The two latest parks, newest first.
    parks: [ParkSeen; 2],
}

/// Per-goroutine facts from the lifecycle events, fed with [`Lifecycle::apply`].
#[derive(Debug, Default)]
pub struct Lifecycle {
    goroutines: HashMap<u64, Life>,
    /// Events about goroutines beyond [`MAX_TRACKED`] (their evidence is missing).
    pub untracked: u64,
    /// Goroutine events applied.
    pub events: u64,
}

/// An open park found by [`Lifecycle::open_park`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenPark {
    /// Kernel time it started.
    pub at: u64,
    /// Its `waitReason` value.
    pub reason: u32,
}

impl Lifecycle {
    /// Nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn life(&mut self, goid: u64) -> Option<&mut Life> {
        if !self.goroutines.contains_key(&goid) && self.goroutines.len() >= MAX_TRACKED {
            self.untracked += 1;
            return None;
        }
        Some(self.goroutines.entry(goid).or_default())
    }

    /// Applies one event (scheduler tracepoint events are ignored).
    pub fn apply(&mut self, e: &Event) {
        let t = e.header().ktime_ns;
        let (goid, what) = match e {
            Event::Create(c) => (c.goid, Kind::Create),
            Event::Park(p) => (p.goid, Kind::Park(p.reason)),
            Event::Ready(r) => (r.goid, Kind::Run),
            Event::Execute(x) | Event::Yield(x) => (x.goid, Kind::Run),
            Event::Exit(x) => (x.goid, Kind::Exit),
            _ => return,
        };
        self.events += 1;
        let Some(l) = self.life(goid) else { return };
        match what {
            Kind::Create => {
                *l = Life {
                    created: t,
                    ..Life::default()
                }
            }
            Kind::Park(reason) => {
                l.parks = [
                    ParkSeen {
                        at: t,
                        end: 0,
                        reason,
                    },
                    l.parks[0],
                ];
            }
            Kind::Run | Kind::Exit => {
                l.last_run = l.last_run.max(t);
                if l.parks[0].at != 0 && l.parks[0].end == 0 {
                    l.parks[0].end = t;
                }
                if what == Kind::Exit {
                    l.exited = t;
                }
            }
        }
    }

    /// Kernel time `goid` was created, if that was seen.
    pub fn created(&self, goid: u64) -> Option<u64> {
        self.goroutines
            .get(&goid)
            .map(|l| l.created)
            .filter(|&t| t != 0)
    }

    /// Kernel time `goid` exited, if that was seen.
    pub fn exited(&self, goid: u64) -> Option<u64> {
        self.goroutines
            .get(&goid)
            .map(|l| l.exited)
            .filter(|&t| t != 0)
    }

    /// True if `goid` was runnable or running at some point after kernel time `t`.
    pub fn ran_after(&self, goid: u64, t: u64) -> bool {
        self.goroutines.get(&goid).is_some_and(|l| l.last_run > t)
    }

    /// The park `goid` was in while a snapshot read it during `[from, to]` (kernel times):
    /// the newest park that started by `to` and had not ended before `from`. `None` when no
    /// such park was seen (it started before tracing, or its events were lost).
    pub fn open_park(&self, goid: u64, from: u64, to: u64) -> Option<OpenPark> {
        let l = self.goroutines.get(&goid)?;
        l.parks
            .iter()
            .find(|p| p.at != 0 && p.at <= to)
            .filter(|p| p.end == 0 || p.end >= from)
            .map(|p| OpenPark {
                at: p.at,
                reason: p.reason,
            })
    }

    /// Goroutines tracked.
    pub fn len(&self) -> usize {
        self.goroutines.len()
    }

    /// True when no goroutine event was seen.
    pub fn is_empty(&self) -> bool {
        self.goroutines.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Create,
    Park(u32),
    Run,
    Exit,
}

#[cfg(test)]
pub(crate) mod tests {
    use tracer_common::event::{EventKind, GoCreate, GoId, GoPark, GoReady, Header, MAX_STACK};

    use super::*;

    fn header(kind: EventKind, t: u64) -> Header {
        Header {
            kind: kind as u32,
            tid: 1,
            ktime_ns: t,
        }
    }

    pub(crate) fn create(goid: u64, t: u64) -> Event {
        Event::Create(GoCreate {
            header: header(EventKind::Create, t),
            goid,
            parent_goid: 1,
            gopc: 0x1000,
            startpc: 0x2000,
        })
    }

    pub(crate) fn park(goid: u64, t: u64, reason: u32, stack: &[u64]) -> Event {
        let mut s = [0; MAX_STACK];
        s[..stack.len()].copy_from_slice(stack);
        Event::Park(GoPark {
            header: header(EventKind::Park, t),
            goid,
            reason,
            stack_len: stack.len() as u32,
            stack: s,
        })
    }

    pub(crate) fn ready(goid: u64, t: u64, waker: u64, stack: &[u64]) -> Event {
        let mut s = [0; MAX_STACK];
        s[..stack.len()].copy_from_slice(stack);
        Event::Ready(GoReady {
            header: header(EventKind::Ready, t),
            goid,
            waker_goid: waker,
            stack_len: stack.len() as u32,
            pad: 0,
            stack: s,
        })
    }

    pub(crate) fn execute(goid: u64, t: u64) -> Event {
        Event::Execute(GoId {
            header: header(EventKind::Execute, t),
            goid,
        })
    }

    pub(crate) fn exit(goid: u64, t: u64) -> Event {
        Event::Exit(GoId {
            header: header(EventKind::Exit, t),
            goid,
        })
    }

    #[test]
    fn creation_parks_runs_and_exits() {
        let mut l = Lifecycle::new();
        for e in [
            create(5, 100),
            execute(5, 110),
            park(5, 120, 7, &[1]),
            ready(5, 200, 1, &[2]),
            execute(5, 210),
            park(5, 220, 8, &[1]),
        ] {
            l.apply(&e);
        }
        assert_eq!(l.created(5), Some(100));
        assert_eq!(l.exited(5), None);
        assert!(l.ran_after(5, 209));
        assert!(!l.ran_after(5, 210));
        // A snapshot reading during [215, 230] saw the park of 220.
        assert_eq!(
            l.open_park(5, 215, 230),
            Some(OpenPark { at: 220, reason: 8 })
        );
        // One reading during [150, 160] saw the first park, still open then.
        assert_eq!(
            l.open_park(5, 150, 160),
            Some(OpenPark { at: 120, reason: 7 })
        );
        // Before any park: nothing.
        assert_eq!(l.open_park(5, 100, 115), None);
        l.apply(&exit(5, 300));
        assert_eq!(l.exited(5), Some(300));
        assert!(l.ran_after(5, 299));
        assert_eq!(l.created(6), None);
        assert!(!l.ran_after(6, 0));
    }

    #[test]
    fn a_park_ended_before_the_reading_is_not_open() {
        let mut l = Lifecycle::new();
        l.apply(&park(9, 10, 3, &[]));
        l.apply(&ready(9, 20, 0, &[]));
        assert_eq!(l.open_park(9, 25, 30), None);
        // A reading that began before the wake may have seen it parked.
        assert_eq!(l.open_park(9, 15, 30), Some(OpenPark { at: 10, reason: 3 }));
    }

    #[test]
    fn a_recreated_goid_starts_afresh() {
        let mut l = Lifecycle::new();
        l.apply(&park(4, 10, 3, &[]));
        l.apply(&create(4, 50));
        assert_eq!(l.open_park(4, 60, 70), None);
        assert_eq!(l.created(4), Some(50));
    }
}
