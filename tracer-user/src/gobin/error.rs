//! The one error type of the binary-format parsers in `gobin` (ELF, build info, pclntab,
//! probe sites). Malformed input always ends here, never in a panic.

use std::{io, path::PathBuf};

/// Why a Go binary (or one of its tables) could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GobinError {
    /// The file could not be opened or mapped.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The path that was opened.
        path: PathBuf,
        /// The underlying I/O error.
        source: io::Error,
    },
    /// The bytes are not a 64-bit little-endian ELF file that `object` can parse.
    #[error("{path} is not a readable 64-bit ELF file: {reason}")]
    NotElf {
        /// The path (or `<memory>`) that was parsed.
        path: PathBuf,
        /// What the ELF parser reported.
        reason: String,
    },
    /// The ELF file is for an architecture gtrace does not handle.
    #[error("unsupported ELF machine {0:#x}; gtrace handles x86-64 Go binaries")]
    UnsupportedMachine(u16),
    /// No Go pclntab was found: the file is probably not a Go program.
    #[error(
        "no Go pclntab found (no .gopclntab section and no pclntab header in the data): not a Go binary?"
    )]
    NoPclntab,
    /// The pclntab header names a format gtrace does not know.
    #[error("unknown pclntab magic {0:#010x}")]
    BadPclntabMagic(u32),
    /// A pclntab table is malformed (an offset or count points outside it).
    #[error("malformed pclntab: {0}")]
    BadPclntab(&'static str),
    /// The text start address needed to decode function entries could not be determined.
    #[error(
        "cannot determine the text start address (pclntab header field is 0 and no moduledata, runtime.text symbol or .text section was found)"
    )]
    NoTextStart,
    /// A virtual address is not backed by file bytes of any loadable segment.
    #[error("virtual address {vaddr:#x} (+{len} bytes) is not in any file-backed loadable segment")]
    UnmappedVaddr {
        /// The first address asked for.
        vaddr: u64,
        /// How many bytes were asked for.
        len: u64,
    },
    /// The `.go.buildinfo` block is malformed.
    #[error("malformed Go build info: {0}")]
    BadBuildInfo(&'static str),
    /// Neither `.go.buildinfo` nor a `runtime.buildVersion` symbol was found.
    #[error("no Go build info found (.go.buildinfo missing and no runtime.buildVersion symbol)")]
    NoBuildInfo,
    /// No function of that name is in the pclntab.
    #[error("no function named `{0}` in the pclntab")]
    NoSuchFunction(String),
    /// No function contains that program counter.
    #[error("no function contains pc {0:#x}")]
    NoFunctionForPc(u64),
    /// Instruction decoding of a function failed.
    #[error("cannot decode {function} at {vaddr:#x}: {reason}")]
    Decode {
        /// The function being decoded.
        function: String,
        /// Where decoding stopped.
        vaddr: u64,
        /// What went wrong.
        reason: &'static str,
    },
}

/// Shorthand used across `gobin`.
pub type Result<T, E = GobinError> = std::result::Result<T, E>;
