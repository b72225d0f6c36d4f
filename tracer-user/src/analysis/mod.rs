//! Analyses over goroutine snapshots: pure logic, no I/O, no output formats (those live in
//! `output/`), so every heuristic is unit-tested on synthetic snapshots.

pub mod block;
pub mod leaks;
pub mod stacks;
