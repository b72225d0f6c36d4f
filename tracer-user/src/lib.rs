//! gtrace's userspace library; `main.rs` only parses flags and dispatches here.
//!
//! Layout: `cli/` (one file per subcommand), `target/` (PIDs and /proc), `system/` (host
//! checks), `gobin/` (everything known from a Go binary), `probes/` (eBPF load/attach),
//! `goroutines/` + `memory/` (reading goroutines from process memory), `output/`.

pub mod analysis;
pub mod capture;
pub mod cli;
pub mod gobin;
pub mod goroutines;
pub mod memory;
pub mod model;
pub mod output;
pub mod panics;
pub mod probes;
pub mod system;
pub mod target;
