//! Who created whom: the created-by chain of a panicking goroutine, up to `main`.
//!
//! Each goroutine's creator is known from three sources, any of which may be missing: the
//! panic event itself (`g.parentGoid`, Go 1.21+, and `g.gopc`), a baseline read from process
//! memory when gtrace attaches (`gtrace dump`'s reader), and goroutine-creation events while
//! tracing (`--ancestry` and `gtrace record`: the lifecycle probe after
//! `CALL runtime.newproc1`). The chain stops at the main goroutine, at a creator gtrace never
//! saw, or after [`MAX_DEPTH`] links.
//!
//! A tracer that runs for hours on a server creating goroutines by the million must not keep
//! a record of each: memory would grow without bound. Only goroutines that can still appear
//! in a chain are kept — those alive, and those that exited but created one kept. An exit
//! (`runtime.goexit0` events, [`Ancestry::exited`]) only marks the record; once the exited
//! records outnumber half the store, a sweep walks up from every live record, marking the
//! creators it passes, and drops the rest (mark and sweep: two hash operations per goroutine
//! and a linear pass per half-store of exits, cheaper on the reader's hot path than counting
//! references). So memory follows the live goroutines, not the created ones. Exits take
//! effect one [`Ancestry::settle`] late: a panic is reported after its events are read, and
//! the goroutine may have exited in the same batch. Events lost in the ring buffer could
//! still leave records behind, so [`LIMIT`] bounds the store: past it the oldest records
//! nobody names are dropped, counted by [`Ancestry::dropped`] and said by the callers.

use std::collections::HashMap;

use super::report::Location;

/// Longest chain reported (also a guard against a cycle in bad data).
pub const MAX_DEPTH: usize = 64;

/// Most records kept (about 40 bytes each in the map): a target with more live goroutines
/// than this loses the oldest childless ones' ancestry, counted.
pub const LIMIT: usize = 2 << 20;

/// Creations and exits waiting in the log before it is applied to the map.
const LOG_BATCH: usize = 1 << 16;

/// How one goroutine was created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Creator {
    /// The creating goroutine's id (if known) and the `go` statement's return address
    /// (runtime address), to be symbolized.
    Pc {
        /// `g.parentGoid` (0 before Go 1.21: unknown).
        parent: u64,
        /// `g.gopc`.
        gopc: u64,
    },
    /// Already symbolized (from the attach-time baseline).
    Resolved {
        /// The creator's goid, when known.
        parent: Option<u64>,
        /// The `go` statement.
        site: Location,
    },
}

/// One kept goroutine.
#[derive(Debug, Clone, Copy)]
struct Node {
    /// Creator's goid, 0 = unknown.
    parent: u64,
    /// `g.gopc` (0 for a resolved record, whose site is in [`Ancestry::resolved`]).
    gopc: u64,
    /// No exit applied yet.
    alive: bool,
    /// The site is in [`Ancestry::resolved`].
    resolved: bool,
    /// Reached from a live record during a sweep.
    marked: bool,
}

/// What the hot path appends.
#[derive(Debug, Clone, Copy)]
enum Op {
    Create { goid: u64, parent: u64, gopc: u64 },
    Exit(u64),
}

/// Creators by goid, for the goroutines that can still be part of a chain.
///
/// `gtrace record` inserts one creator per goroutine created while it records and one exit
/// per goroutine ending (a hot path on goroutine-churning targets) and asks for a chain only
/// when a goroutine panics. So both are first appended to a log (no hashing), which is
/// applied to a map with a fast hash when it fills, a lookup needs it, or at a settle. Whatever the order
/// of the calls, the last [`Ancestry::insert`] for a goid wins, as with one map.
#[derive(Debug)]
pub struct Ancestry {
    /// Not applied yet, in arrival order.
    log: Vec<Op>,
    /// goid → record.
    nodes: HashMap<u64, Node, foldhash::fast::FixedState>,
    /// goid → creation site, for the records that came resolved.
    resolved: HashMap<u64, Location, foldhash::fast::FixedState>,
    /// Exits read since the last settle, applied at the next one.
    exits_fresh: Vec<u64>,
    /// Exits read before the last settle, applied at the next one.
    exits_due: Vec<u64>,
    /// Records marked exited since the last sweep.
    exited_since_sweep: usize,
    /// Records dropped to stay within `limit`.
    dropped: u64,
    /// Most records kept.
    limit: usize,
}

/// Fewest exits worth a sweep (a small store is not swept at every settle).
const SWEEP_MIN: usize = 4096;

impl Default for Ancestry {
    fn default() -> Self {
        Self::with_limit(LIMIT)
    }
}

impl Ancestry {
    /// An empty store holding at most [`LIMIT`] records.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store holding at most `limit` records.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            log: Vec::new(),
            nodes: HashMap::default(),
            resolved: HashMap::default(),
            exits_fresh: Vec::new(),
            exits_due: Vec::new(),
            exited_since_sweep: 0,
            dropped: 0,
            limit: limit.max(1),
        }
    }

    /// Records how `goid` was created (a later record of a recycled goid never happens: goids
    /// are not reused within a process).
    pub fn insert(&mut self, goid: u64, c: Creator) {
        match c {
            Creator::Pc { parent, gopc } => {
                self.log.push(Op::Create { goid, parent, gopc });
                if self.log.len() >= LOG_BATCH {
                    self.index();
                }
            }
            Creator::Resolved { parent, site } => {
                self.index();
                self.apply_create(goid, parent.unwrap_or(0), 0);
                if let Some(n) = self.nodes.get_mut(&goid) {
                    n.resolved = true;
                }
                self.resolved.insert(goid, site);
                self.enforce_limit();
            }
        }
    }

    /// Records that `goid` exited: the second [`Ancestry::settle`] from now marks its record
    /// exited, and the next sweep drops it unless a live record descends from it.
    pub fn exited(&mut self, goid: u64) {
        self.log.push(Op::Exit(goid));
        if self.log.len() >= LOG_BATCH {
            self.index();
        }
    }

    /// Applies the exits read before the previous call. Callers call it after reporting what
    /// they read, regularly (each drain of the ring buffer).
    pub fn settle(&mut self) {
        self.index();
        let due = std::mem::take(&mut self.exits_due);
        for &goid in &due {
            if let Some(n) = self.nodes.get_mut(&goid)
                && n.alive
            {
                n.alive = false;
                self.exited_since_sweep += 1;
            }
        }
        self.exits_due = std::mem::replace(&mut self.exits_fresh, due);
        self.exits_fresh.clear();
        // Each sweep is linear in the store and follows at least half a store of exits:
        // constant time per exit.
        if self.exited_since_sweep >= SWEEP_MIN.max(self.nodes.len() / 2) {
            self.sweep();
        }
    }

    /// Records how `goid` was created unless already known.
    pub fn insert_if_absent(&mut self, goid: u64, c: Creator) {
        self.index();
        if !self.nodes.contains_key(&goid) {
            self.insert(goid, c);
        }
    }

    /// The creator of `goid`, if kept.
    pub fn get(&mut self, goid: u64) -> Option<Creator> {
        self.index();
        let n = self.nodes.get(&goid)?;
        let parent = n.parent;
        Some(if n.resolved {
            Creator::Resolved {
                parent: (parent != 0).then_some(parent),
                site: self.resolved.get(&goid)?.clone(),
            }
        } else {
            Creator::Pc {
                parent,
                gopc: n.gopc,
            }
        })
    }

    /// Number of goroutines with a kept creator.
    pub fn len(&mut self) -> usize {
        self.index();
        self.nodes.len()
    }

    /// True when no creator is known.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty() && !self.log.iter().any(|o| matches!(o, Op::Create { .. }))
    }

    /// Childless records dropped so far to stay within the limit (a panic of one of those
    /// goroutines reports a chain cut short).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Moves the log into the map.
    fn index(&mut self) {
        if self.log.is_empty() {
            return;
        }
        let log = std::mem::take(&mut self.log);
        for op in &log {
            match *op {
                Op::Create { goid, parent, gopc } => self.apply_create(goid, parent, gopc),
                Op::Exit(goid) => self.exits_fresh.push(goid),
            }
        }
        // The allocation is kept for the next batch.
        self.log = log;
        self.log.clear();
        self.enforce_limit();
        // Exits pile up only between settles; a caller that stops settling must not make
        // them a leak of their own.
        if self.exits_fresh.len() >= self.limit {
            self.settle();
        }
    }

    /// Inserts or replaces the record of `goid` (alive, not resolved): one hash operation.
    fn apply_create(&mut self, goid: u64, parent: u64, gopc: u64) {
        let node = Node {
            parent,
            gopc,
            alive: true,
            resolved: false,
            marked: false,
        };
        if let Some(old) = self.nodes.insert(goid, node)
            && old.resolved
        {
            self.resolved.remove(&goid);
        }
    }

    /// Keeps the live records and the creators above them; drops every other record.
    fn sweep(&mut self) {
        self.exited_since_sweep = 0;
        let parents: Vec<u64> = self
            .nodes
            .values()
            .filter(|n| n.alive)
            .map(|n| n.parent)
            .collect();
        for mut cur in parents {
            // Bounded like a chain, against a cycle in bad data; a creator already marked
            // has had its own creators marked.
            for _ in 0..MAX_DEPTH {
                match self.nodes.get_mut(&cur) {
                    Some(p) if !p.marked => {
                        p.marked = true;
                        cur = p.parent;
                    }
                    _ => break,
                }
            }
        }
        let resolved = &mut self.resolved;
        self.nodes.retain(|goid, n| {
            let keep = n.alive || n.marked;
            n.marked = false;
            if !keep && n.resolved {
                resolved.remove(goid);
            }
            keep
        });
    }

    /// Past the limit, sweeps, then drops the oldest (lowest goid: goids grow with creation)
    /// records nothing names, down to three quarters of the limit, so that this O(n) pass
    /// runs at most once per quarter of the limit inserted.
    fn enforce_limit(&mut self) {
        if self.nodes.len() <= self.limit {
            return;
        }
        self.sweep();
        let target = self.limit - self.limit / 4;
        if self.nodes.len() <= target {
            return;
        }
        let named: std::collections::HashSet<u64, foldhash::fast::FixedState> =
            self.nodes.values().map(|n| n.parent).collect();
        let mut leaves: Vec<u64> = self
            .nodes
            .keys()
            .copied()
            .filter(|g| !named.contains(g))
            .collect();
        let excess = (self.nodes.len() - target).min(leaves.len());
        if excess < leaves.len() {
            leaves.select_nth_unstable(excess);
        }
        for goid in &leaves[..excess] {
            if let Some(n) = self.nodes.remove(goid)
                && n.resolved
            {
                self.resolved.remove(goid);
            }
        }
        self.dropped += excess as u64;
    }

    /// The chain above `goid`: `(creator goid, creation site)` links, nearest first, each
    /// site resolved by `resolve` (return address → location). Stops at goroutine 1.
    pub fn chain(
        &mut self,
        goid: u64,
        resolve: &mut dyn FnMut(u64) -> Option<Location>,
    ) -> Vec<(Option<u64>, Location)> {
        self.index();
        let mut out = Vec::new();
        let mut cur = goid;
        while cur != 1 && out.len() < MAX_DEPTH {
            let Some(n) = self.nodes.get(&cur) else {
                break;
            };
            let parent = (n.parent != 0).then_some(n.parent);
            let site = if n.resolved {
                match self.resolved.get(&cur) {
                    Some(s) => s.clone(),
                    None => break,
                }
            } else {
                let Some(site) = resolve(n.gopc) else { break };
                site
            };
            out.push((parent, site));
            match parent {
                Some(p) if p != cur => cur = p,
                _ => break,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(f: &str) -> Location {
        Location {
            function: f.into(),
            file: "x.go".into(),
            line: 1,
        }
    }

    #[test]
    fn chain_up_to_main() {
        let mut a = Ancestry::new();
        a.insert(
            30,
            Creator::Pc {
                parent: 20,
                gopc: 0x30,
            },
        );
        a.insert(
            20,
            Creator::Resolved {
                parent: Some(1),
                site: loc("main.main"),
            },
        );
        let got = a.chain(30, &mut |pc| (pc == 0x30).then(|| loc("main.worker")));
        assert_eq!(
            got,
            vec![(Some(20), loc("main.worker")), (Some(1), loc("main.main"))]
        );
        assert!(a.chain(1, &mut |_| None).is_empty());
    }

    #[test]
    fn one_creator_per_goid() {
        let mut a = Ancestry::new();
        a.insert(3, Creator::Pc { parent: 1, gopc: 9 });
        a.insert_if_absent(
            3,
            Creator::Resolved {
                parent: None,
                site: loc("x"),
            },
        );
        assert_eq!(a.get(3), Some(Creator::Pc { parent: 1, gopc: 9 }));
        a.insert(
            3,
            Creator::Resolved {
                parent: Some(1),
                site: loc("y"),
            },
        );
        assert_eq!(a.len(), 1);
        assert!(matches!(a.get(3), Some(Creator::Resolved { .. })));
        a.insert(3, Creator::Pc { parent: 2, gopc: 9 });
        assert_eq!(a.len(), 1);
        assert_eq!(a.get(3), Some(Creator::Pc { parent: 2, gopc: 9 }));
        assert_eq!(a.get(4), None);
        assert!(!a.is_empty());
    }

    #[test]
    fn unknown_parent_and_cycles_stop() {
        let mut a = Ancestry::new();
        a.insert(5, Creator::Pc { parent: 0, gopc: 1 });
        a.insert(7, Creator::Pc { parent: 8, gopc: 1 });
        a.insert(8, Creator::Pc { parent: 7, gopc: 1 });
        assert_eq!(a.chain(5, &mut |_| Some(loc("f"))).len(), 1);
        assert_eq!(a.chain(7, &mut |_| Some(loc("f"))).len(), MAX_DEPTH);
    }

    /// `goid` exits and the store gets past its settle delay and sweeps.
    fn exit_now(a: &mut Ancestry, goid: u64) {
        a.exited(goid);
        a.settle();
        a.settle();
        a.sweep();
    }

    fn pc(parent: u64) -> Creator {
        Creator::Pc {
            parent,
            gopc: 0x100 + parent,
        }
    }

    /// A server's life: `main` starts an accept loop, which starts one handler per request;
    /// the handlers end. Memory must follow the live goroutines, not the million created,
    /// and a handler that panics late still reaches `main` through its exited creators.
    #[test]
    fn exited_goroutines_free_their_records() {
        let mut a = Ancestry::new();
        a.insert(2, pc(1)); // accept loop
        a.insert(3, pc(2)); // a supervisor the accept loop started, which then exits
        for goid in 10..1_000_010 {
            a.insert(goid, pc(3));
            a.exited(goid);
            if goid % 1_000 == 0 {
                a.settle();
            }
            assert!(a.log.len() < LOG_BATCH);
        }
        assert!(a.len() < 3 * SWEEP_MIN, "{} kept", a.len());
        a.exited(3);
        let late = 5_000_000;
        a.insert(late, pc(3)); // created by 3 just before it exited
        a.settle();
        a.settle();
        a.sweep();
        assert_eq!(
            a.len(),
            3,
            "2, 3 (named by a live child) and the late handler"
        );
        let chain = a.chain(late, &mut |gopc| Some(loc(&format!("f{gopc:x}"))));
        let goids: Vec<_> = chain.iter().map(|(g, _)| *g).collect();
        assert_eq!(goids, vec![Some(3), Some(2), Some(1)]);
        // The late handler ends: 3 goes with it, 2 (alive) stays.
        exit_now(&mut a, late);
        assert_eq!(a.len(), 1);
        assert_eq!(a.get(2), Some(pc(1)));
        assert_eq!(a.dropped(), 0);
    }

    /// A panic is reported after its batch of events is read, and the goroutine may have
    /// exited in that batch: its record outlives one settle, sweep or not.
    #[test]
    fn an_exit_takes_effect_one_settle_late() {
        let mut a = Ancestry::new();
        a.insert(5, pc(1));
        a.exited(5);
        assert_eq!(a.get(5), Some(pc(1)));
        a.settle();
        a.sweep();
        assert_eq!(a.get(5), Some(pc(1)), "read before this settle: still kept");
        a.settle();
        a.sweep();
        assert_eq!(a.get(5), None);
        assert!(a.is_empty());
        // An exit of a goroutine never seen is ignored.
        a.exited(77);
        a.settle();
        a.settle();
        assert!(a.is_empty());
    }

    /// The attach-time baseline comes in any order: a child read before its creator still
    /// keeps the creator once both are known.
    #[test]
    fn a_baseline_child_read_first_still_keeps_its_creator() {
        let mut a = Ancestry::new();
        let resolved = |parent| Creator::Resolved {
            parent: Some(parent),
            site: loc("main.spawn"),
        };
        a.insert(20, resolved(10));
        a.insert(10, resolved(1));
        exit_now(&mut a, 10);
        assert_eq!(a.chain(20, &mut |_| None).len(), 2);
        exit_now(&mut a, 20);
        assert_eq!(a.len(), 0);
        assert!(a.resolved.is_empty(), "sites go with their records");
    }

    /// Replacing a record's parent: the old creator, exited, is no longer kept.
    #[test]
    fn a_new_parent_releases_the_old_one() {
        let mut a = Ancestry::new();
        a.insert(4, pc(1));
        a.insert(6, pc(1));
        a.insert(9, pc(4));
        exit_now(&mut a, 4);
        assert!(a.get(4).is_some(), "named by 9");
        a.insert(9, pc(6));
        a.settle();
        a.sweep();
        assert_eq!(a.get(4), None);
        assert!(a.get(6).is_some());
    }

    /// Sweeps come by themselves once exits outnumber half the store: without any explicit
    /// sweep, churn through a store of 100 000 live goroutines stays within a small multiple
    /// of it.
    #[test]
    fn sweeps_follow_the_exits() {
        let mut a = Ancestry::new();
        let live = 100_000u64;
        for goid in 10..3_000_000u64 {
            a.insert(goid, pc(2));
            if goid >= 10 + live {
                a.exited(goid - live);
            }
            if goid % 4_096 == 0 {
                a.settle();
                assert!(a.nodes.len() < 3 * live as usize, "{} kept", a.nodes.len());
            }
        }
    }

    /// Lost exits leave records behind: the limit bounds them, dropping the oldest records
    /// nobody names, and says how many.
    #[test]
    fn the_limit_drops_the_oldest_childless_records() {
        let mut a = Ancestry::with_limit(1_000);
        a.insert(2, pc(1));
        for goid in 100..10_100 {
            a.insert(goid, pc(2));
        }
        assert!(a.len() <= 1_000, "{}", a.len());
        assert!(a.dropped() >= 9_000, "{}", a.dropped());
        assert!(a.get(2).is_some(), "a creator others name is kept");
        assert!(a.get(10_099).is_some(), "the newest are kept");
        assert_eq!(a.get(100), None, "the oldest went");
        assert_eq!(a.chain(10_099, &mut |_| Some(loc("f"))).len(), 2);
    }
}
