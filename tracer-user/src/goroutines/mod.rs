//! Every goroutine of a live Go process, read from outside through process memory.
//!
//! Phases: [`locate`] finds the runtime's goroutine list (data symbols, or decoded from
//! `runtime.forEachGRace` in stripped binaries), [`gstruct`] decodes the `g` fields a dump
//! needs, [`unwind`] walks each parked stack exactly like the runtime's traceback, and
//! [`decode`] drives it all in bounded batches with torn-read detection. Everything is generic
//! over [`crate::memory::MemorySource`] and [`symbols::Symbols`], so it is testable offline.

pub mod decode;
pub mod group;
pub mod gstruct;
pub mod locate;
pub mod procinfo;
pub mod symbols;
pub mod target;
pub mod unwind;

pub use decode::{CreatedBy, Decoder, DumpOptions, DumpStats, Goroutine};
pub use locate::AllgsLocation;
pub use symbols::{CachedSymbols, FuncInfo, FuncKind, SourceFrame, Symbols};
