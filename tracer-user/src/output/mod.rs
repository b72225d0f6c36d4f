//! Everything that knows output formats (text, JSON, Perfetto); the rest of the library
//! produces data.

pub mod dump_json;
pub mod lifecycle;
pub mod panics;
pub mod perfetto;
pub mod traceback;
