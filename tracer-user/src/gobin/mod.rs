//! Knowledge of one Go binary: version, build info, symbols (pclntab / DWARF), runtime
//! struct layouts, wait reasons and probe sites. Pure parsing: no process access, no root.
//!
//! # Using it
//!
//! ```no_run
//! use tracer_user::gobin::GoBinary;
//! # fn main() -> Result<(), tracer_user::gobin::GobinError> {
//! let bin = GoBinary::open("/usr/local/bin/app")?; // or GoBinary::open_pid(pid)
//! let version = bin.version();                      // Option<&GoVersion>
//! let info = bin.build_info();                      // Option<&BuildInfo>: modules, settings
//! let f = bin.func_by_name("runtime.gopark")?;      // Function { name, entry, end }
//! let frames = bin.symbolize(f.entry)?;             // Vec<Frame>, innermost first
//! let off = bin.vaddr_to_offset(f.entry);           // file offset for uprobe attach
//! let allglen = bin.data_symbol("runtime.allglen"); // only with a .symtab
//! let site = gtrace_probe_site_example(&bin)?;
//! # Ok(()) }
//! # fn gtrace_probe_site_example(b: &GoBinary) -> Result<tracer_user::gobin::probesite::ProbeSite, tracer_user::gobin::GobinError> {
//! #     tracer_user::gobin::probesite::probe_site(b, "runtime.gopark") }
//! ```
//!
//! - [`GoBinary`] (`symbols.rs`): open by path / PID / bytes; `version`, `build_info`,
//!   `functions`, `func_by_name`, `func_for_pc`, `symbolize`, `vaddr_to_offset`,
//!   `data_symbol`, `read_vaddr`, `symbol_sources`, `image()` for raw ELF access.
//! - [`elf::ElfImage`]: segments, sections, `.symtab`, PIE relocations, build ids.
//! - [`buildinfo`]: `.go.buildinfo` decoding ([`BuildInfo`]).
//! - [`pclntab`]: the function table, pc-value tables, inline-tree expansion.
//! - [`probesite`]: where to put a cheap uprobe in a function, and its RET instructions.
//! - [`inspect`]: the serializable report behind `gtrace inspect`.
//!
//! All addresses are link-time virtual addresses; for a PIE add the load bias.

pub mod buildinfo;
pub mod elf;
pub mod error;
pub mod fuzzing;
pub mod inspect;
pub mod moduledata;
pub mod pclntab;
pub mod probesite;
pub mod symbols;
pub mod version;

pub use buildinfo::BuildInfo;
pub use error::GobinError;
pub use pclntab::Frame;
pub use symbols::{Function, GoBinary, SymbolSources};
pub use version::GoVersion;
