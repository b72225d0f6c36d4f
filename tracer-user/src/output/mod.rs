//! Everything that knows output formats (Go traceback text, JSON, pprof, folded stacks, SVG,
//! Perfetto); the rest of the library produces data.

pub mod dump_json;
pub mod folded;
pub mod latency;
pub mod leaks;
pub mod lifecycle;
pub mod panics;
pub mod perfetto;
pub mod pprof;
pub mod traceback;
