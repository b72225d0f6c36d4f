//! Knowledge of one Go binary: version, build info, symbols (pclntab / DWARF), runtime
//! struct layouts, wait reasons and probe sites. Pure parsing: no process access, no root.

pub mod version;
