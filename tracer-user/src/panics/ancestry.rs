//! Who created whom: the created-by chain of a panicking goroutine, up to `main`.
//!
//! Each goroutine's creator is known from three sources, any of which may be missing: the
//! panic event itself (`g.parentGoid`, Go 1.21+, and `g.gopc`), a baseline read from process
//! memory when gtrace attaches (`gtrace dump`'s reader), and goroutine-creation events while
//! tracing (`--ancestry`, the lifecycle probe after `CALL runtime.newproc1`). The chain stops
//! at the main goroutine, at a creator gtrace never saw, or after [`MAX_DEPTH`] links.

use std::collections::HashMap;

use super::report::Location;

/// Longest chain reported (also a guard against a cycle in bad data).
pub const MAX_DEPTH: usize = 64;

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

/// Creators by goid.
///
/// `gtrace record` inserts one creator per goroutine created while it records (a hot path on
/// goroutine-churning targets) and asks for a chain only when a goroutine panics. So a
/// [`Creator::Pc`] is first appended to a log (no hashing), and the log is indexed into a map
/// of small entries with a fast hash only when a lookup needs it; resolved creators (a
/// baseline, a panic's own `parentGoid`) go to a second map. Whatever the order of the calls,
/// the last [`Ancestry::insert`] for a goid wins, as with one map.
#[derive(Debug, Default)]
pub struct Ancestry {
    /// (goid, parent goid, gopc), in insertion order, not indexed yet.
    log: Vec<(u64, u64, u64)>,
    /// goid → (parent goid, gopc).
    pcs: HashMap<u64, (u64, u64), foldhash::fast::FixedState>,
    /// goid → (parent goid, creation site).
    resolved: HashMap<u64, (Option<u64>, Location), foldhash::fast::FixedState>,
}

impl Ancestry {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records how `goid` was created (a later record of a recycled goid never happens: goids
    /// are not reused within a process).
    pub fn insert(&mut self, goid: u64, c: Creator) {
        match c {
            Creator::Pc { parent, gopc } => self.log.push((goid, parent, gopc)),
            Creator::Resolved { parent, site } => {
                self.index();
                self.pcs.remove(&goid);
                self.resolved.insert(goid, (parent, site));
            }
        }
    }

    /// Records how `goid` was created unless already known.
    pub fn insert_if_absent(&mut self, goid: u64, c: Creator) {
        self.index();
        if !self.pcs.contains_key(&goid) && !self.resolved.contains_key(&goid) {
            self.insert(goid, c);
        }
    }

    /// The creator of `goid`, if seen.
    pub fn get(&mut self, goid: u64) -> Option<Creator> {
        self.index();
        if let Some(&(parent, gopc)) = self.pcs.get(&goid) {
            return Some(Creator::Pc { parent, gopc });
        }
        self.resolved
            .get(&goid)
            .map(|(parent, site)| Creator::Resolved {
                parent: *parent,
                site: site.clone(),
            })
    }

    /// Number of goroutines with a known creator.
    pub fn len(&mut self) -> usize {
        self.index();
        self.pcs.len() + self.resolved.len()
    }

    /// True when no creator is known.
    pub fn is_empty(&self) -> bool {
        self.log.is_empty() && self.pcs.is_empty() && self.resolved.is_empty()
    }

    /// Moves the log into the maps.
    fn index(&mut self) {
        if self.log.is_empty() {
            return;
        }
        self.pcs.reserve(self.log.len());
        for (goid, parent, gopc) in self.log.drain(..) {
            self.pcs.insert(goid, (parent, gopc));
            if !self.resolved.is_empty() {
                self.resolved.remove(&goid);
            }
        }
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
            let (parent, site) = if let Some(&(parent, gopc)) = self.pcs.get(&cur) {
                let Some(site) = resolve(gopc) else { break };
                ((parent != 0).then_some(parent), site)
            } else if let Some((parent, site)) = self.resolved.get(&cur) {
                (*parent, site.clone())
            } else {
                break;
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
}
