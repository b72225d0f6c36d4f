//! Folding goroutines with the same state and stack into one entry (`gtrace dump --group`).
//!
//! Large servers park thousands of goroutines in the same place; one entry with a count, the
//! goids and the wait-age range says the same in a few lines. Memory grows with the number of
//! distinct stacks plus one goid per goroutine.

use std::collections::HashMap;

use super::{CreatedBy, Goroutine, unwind::ShownFrame};

/// Goroutines sharing state, stack and creator.
#[derive(Debug, Clone)]
pub struct Group {
    /// The first goroutine seen (its goid is the group's smallest only by list order).
    pub example: Goroutine,
    /// Every member's goid, in list order.
    pub goids: Vec<u64>,
    /// Shortest and longest known wait (nanoseconds), if any member has one.
    pub wait_ns_range: Option<(i64, i64)>,
}

impl Group {
    /// Number of goroutines.
    pub fn count(&self) -> usize {
        self.goids.len()
    }
}

type FrameKey = Vec<(std::sync::Arc<str>, std::sync::Arc<str>, u32, Option<u64>)>;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    state: String,
    locked: bool,
    running: bool,
    frames: FrameKey,
    elided: Option<usize>,
    tail: FrameKey,
    created: Option<(std::sync::Arc<str>, std::sync::Arc<str>, u32)>,
    error: Option<String>,
}

fn frames_key(fs: &[ShownFrame]) -> FrameKey {
    fs.iter()
        .map(|f| {
            (
                f.src.function.clone(),
                f.src.file.clone(),
                f.src.line,
                f.offset,
            )
        })
        .collect()
}

fn created_key(c: Option<&CreatedBy>) -> Option<(std::sync::Arc<str>, std::sync::Arc<str>, u32)> {
    c.map(|c| (c.function.clone(), c.file.clone(), c.line))
}

/// Accumulates goroutines into groups.
#[derive(Debug, Default)]
pub struct Grouper {
    index: HashMap<Key, usize>,
    groups: Vec<Group>,
}

impl Grouper {
    /// No groups yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one goroutine.
    #[allow(clippy::needless_pass_by_value)] // the first member is kept as the example
    pub fn add(&mut self, g: Goroutine) {
        let key = Key {
            state: g.state_text(),
            locked: g.locked_to_thread,
            running: g.running,
            frames: frames_key(&g.stack.frames),
            elided: g.stack.elided,
            tail: frames_key(&g.stack.tail),
            created: created_key(g.created_by.as_ref()),
            error: g.error.clone(),
        };
        let i = *self.index.entry(key).or_insert_with(|| {
            self.groups.push(Group {
                example: g.clone(),
                goids: Vec::new(),
                wait_ns_range: None,
            });
            self.groups.len() - 1
        });
        let grp = &mut self.groups[i];
        grp.goids.push(g.goid);
        if let Some(w) = g.wait_ns {
            grp.wait_ns_range = Some(match grp.wait_ns_range {
                Some((lo, hi)) => (lo.min(w), hi.max(w)),
                None => (w, w),
            });
        }
    }

    /// The groups, largest first (ties: first seen first).
    pub fn finish(self) -> Vec<Group> {
        let mut g = self.groups;
        g.sort_by_key(|x| std::cmp::Reverse(x.count()));
        g
    }
}
