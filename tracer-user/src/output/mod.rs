//! Everything that knows output formats (text, JSON, pprof, folded stacks, SVG); the rest of the library produces data.

pub mod dump_json;
pub mod folded;
pub mod leaks;
pub mod pprof;
pub mod traceback;
