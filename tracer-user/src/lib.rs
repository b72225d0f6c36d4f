//! gtrace's userspace library; `main.rs` only parses flags and dispatches here.

pub mod cli;
pub mod gobin;
