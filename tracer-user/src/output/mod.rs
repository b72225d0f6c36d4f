//! Everything that knows output formats (text, JSON); the rest of the library produces data.

pub mod dump_json;
pub mod traceback;
