//! Test harness for gtrace: Go toolchains, fixture binaries, process guards and a parser for the
//! Go runtime's own goroutine dumps (the ground truth gtrace's output is compared with).
//!
//! (Full API overview below is filled in as the modules land.)

pub mod blocked;
pub mod fixture;
pub mod go;
pub mod process;
pub mod traceback;
