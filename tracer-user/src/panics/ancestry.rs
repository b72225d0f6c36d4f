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
#[derive(Debug, Default)]
pub struct Ancestry {
    creators: HashMap<u64, Creator>,
}

impl Ancestry {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records how `goid` was created (a later record of a recycled goid never happens: goids
    /// are not reused within a process).
    pub fn insert(&mut self, goid: u64, c: Creator) {
        self.creators.insert(goid, c);
    }

    /// Records how `goid` was created unless already known.
    pub fn insert_if_absent(&mut self, goid: u64, c: Creator) {
        self.creators.entry(goid).or_insert(c);
    }

    /// The creator of `goid`, if seen.
    pub fn get(&self, goid: u64) -> Option<&Creator> {
        self.creators.get(&goid)
    }

    /// Number of goroutines with a known creator.
    pub fn len(&self) -> usize {
        self.creators.len()
    }

    /// True when no creator is known.
    pub fn is_empty(&self) -> bool {
        self.creators.is_empty()
    }

    /// The chain above `goid`: `(creator goid, creation site)` links, nearest first, each
    /// site resolved by `resolve` (return address → location). Stops at goroutine 1.
    pub fn chain(
        &self,
        goid: u64,
        resolve: &mut dyn FnMut(u64) -> Option<Location>,
    ) -> Vec<(Option<u64>, Location)> {
        let mut out = Vec::new();
        let mut cur = goid;
        while cur != 1 && out.len() < MAX_DEPTH {
            let Some(c) = self.creators.get(&cur) else {
                break;
            };
            let (parent, site) = match c {
                Creator::Pc { parent, gopc } => {
                    let Some(site) = resolve(*gopc) else { break };
                    ((*parent != 0).then_some(*parent), site)
                }
                Creator::Resolved { parent, site } => (*parent, site.clone()),
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
    fn unknown_parent_and_cycles_stop() {
        let mut a = Ancestry::new();
        a.insert(5, Creator::Pc { parent: 0, gopc: 1 });
        a.insert(7, Creator::Pc { parent: 8, gopc: 1 });
        a.insert(8, Creator::Pc { parent: 7, gopc: 1 });
        assert_eq!(a.chain(5, &mut |_| Some(loc("f"))).len(), 1);
        assert_eq!(a.chain(7, &mut |_| Some(loc("f"))).len(), MAX_DEPTH);
    }
}
