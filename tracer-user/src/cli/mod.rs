//! Subcommands, one file each; `main.rs` parses flags and dispatches here.

pub mod dump;
pub mod inspect;
pub mod symbolize;
