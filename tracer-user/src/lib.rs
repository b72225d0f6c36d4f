//! gtrace's userspace library; `main.rs` only parses flags and dispatches here.

pub mod cli;
pub mod gobin;
pub mod goroutines;
pub mod memory;
pub mod output;
