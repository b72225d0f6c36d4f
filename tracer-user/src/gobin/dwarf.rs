//! Runtime struct layouts from a Go binary's own DWARF.
//!
//! DWARF is the ground truth for the binary at hand: it is what the compiler laid out, so it
//! needs no version table. The Go linker compresses its DWARF (`.zdebug_*` sections in old
//! releases, `SHF_COMPRESSED` sections since Go 1.11 on linux — cmd/link/internal/ld/dwarf.go
//! `compressSyms`); `object` decompresses both. Go ≥ 1.25 emits DWARF 5 (`.debug_addr`,
//! `.debug_rnglists`), which gimli reads the same way.
//!
//! Only named `DW_TAG_structure_type` entries and their `DW_TAG_member`s are collected; Go
//! emits one DIE per named type (`runtime.g`, `internal/abi.Type`, …) and nested paths like
//! `stack.lo` follow the member's `DW_AT_type` (through typedefs) to the inner struct.

use std::borrow::Cow;
use std::collections::HashMap;

use gimli::{AttributeValue, EndianSlice, LittleEndian, UnitOffset};
use object::{Object as _, ObjectSection as _};

use super::layout::StructSource;

/// Raised when the DWARF of a binary cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DwarfError {
    /// The binary has no `.debug_info` (stripped with `-ldflags=-w` or `-s`).
    #[error("the binary has no DWARF (.debug_info is missing)")]
    NoDwarf,
    /// A DWARF section could not be decompressed or read.
    #[error("cannot read DWARF section {section}: {source}")]
    Section {
        /// The section name.
        section: &'static str,
        /// What `object` reported.
        source: object::Error,
    },
    /// gimli failed to parse the DWARF.
    #[error("malformed DWARF: {0}")]
    Gimli(#[from] gimli::Error),
}

/// One member of a struct: its byte offset and the `.debug_info` offset of its type.
#[derive(Debug, Clone)]
struct Member {
    name: String,
    offset: u32,
    ty: Option<usize>,
}

/// One struct type.
#[derive(Debug, Clone)]
struct StructInfo {
    size: u32,
    members: Vec<Member>,
}

/// Every named struct type of a binary's DWARF, by Go name.
#[derive(Debug, Default)]
pub struct DwarfStructs {
    /// `.debug_info` offset of each struct DIE → struct.
    by_offset: HashMap<usize, StructInfo>,
    /// Go name → `.debug_info` offset (first definition wins).
    by_name: HashMap<String, usize>,
    /// Typedef DIE offset → target type offset.
    typedefs: HashMap<usize, usize>,
}

/// Nested field paths are short (`stack.lo`); deeper chains mean a cycle or garbage.
const MAX_PATH_DEPTH: usize = 8;
/// Typedef chains in Go DWARF are one step; this bounds loops in malformed input.
const MAX_TYPEDEF_CHAIN: usize = 16;

impl DwarfStructs {
    /// Collects the structs of `file`'s DWARF. [`DwarfError::NoDwarf`] if it has none.
    pub fn from_object(file: &object::File<'_>) -> Result<Self, DwarfError> {
        Self::from_object_filtered(file, |_| true)
    }

    /// Like [`Self::from_object`], keeping only the runtime's own structures (names starting
    /// with `runtime.` or `internal/abi.`, which is all a [`RuntimeLayout`] needs, nested
    /// types included): big binaries describe tens of thousands of other structs.
    ///
    /// [`RuntimeLayout`]: super::layout::RuntimeLayout
    pub fn runtime_from_object(file: &object::File<'_>) -> Result<Self, DwarfError> {
        Self::from_object_filtered(file, |name| {
            name.starts_with("runtime.") || name.starts_with("internal/abi.")
        })
    }

    /// Collects the named structs whose Go name passes `keep` (anonymous ones are dropped).
    pub fn from_object_filtered(
        file: &object::File<'_>,
        keep: fn(&str) -> bool,
    ) -> Result<Self, DwarfError> {
        if file.section_by_name(".debug_info").is_none() {
            return Err(DwarfError::NoDwarf);
        }
        // Type DIEs need only these; skipping line, location and range tables avoids
        // decompressing most of the DWARF (Go compresses every section).
        let needed = [
            gimli::SectionId::DebugInfo,
            gimli::SectionId::DebugAbbrev,
            gimli::SectionId::DebugStr,
            gimli::SectionId::DebugStrOffsets,
            gimli::SectionId::DebugLineStr,
            gimli::SectionId::DebugAddr,
            gimli::SectionId::DebugTypes,
            // Read by `Dwarf::unit` for the line program header of each unit.
            gimli::SectionId::DebugLine,
        ];
        let load = |id: gimli::SectionId| -> Result<Cow<'_, [u8]>, DwarfError> {
            if !needed.contains(&id) {
                return Ok(Cow::Borrowed(&[][..]));
            }
            match file.section_by_name(id.name()) {
                Some(s) => s.uncompressed_data().map_err(|source| DwarfError::Section {
                    section: id.name(),
                    source,
                }),
                None => Ok(Cow::Borrowed(&[][..])),
            }
        };
        let sections = gimli::DwarfSections::load(load)?;
        let dwarf = sections.borrow(|s| EndianSlice::new(s, LittleEndian));
        Self::from_dwarf_filtered(&dwarf, keep)
    }

    /// Collects the structs of already loaded DWARF.
    pub fn from_dwarf(
        dwarf: &gimli::Dwarf<EndianSlice<'_, LittleEndian>>,
    ) -> Result<Self, DwarfError> {
        Self::from_dwarf_filtered(dwarf, |_| true)
    }

    /// Collects the named structs of already loaded DWARF whose Go name passes `keep`.
    pub fn from_dwarf_filtered(
        dwarf: &gimli::Dwarf<EndianSlice<'_, LittleEndian>>,
        keep: fn(&str) -> bool,
    ) -> Result<Self, DwarfError> {
        let mut out = Self::default();
        let mut units = dwarf.units();
        while let Some(header) = units.next()? {
            let unit = dwarf.unit(header)?;
            out.read_unit(dwarf, &unit, keep)?;
        }
        Ok(out)
    }

    fn read_unit(
        &mut self,
        dwarf: &gimli::Dwarf<EndianSlice<'_, LittleEndian>>,
        unit: &gimli::Unit<EndianSlice<'_, LittleEndian>>,
        keep: fn(&str) -> bool,
    ) -> Result<(), DwarfError> {
        let global = |off: UnitOffset| off.to_debug_info_offset(&unit.header).map(|o| o.0);
        let mut entries = unit.entries();
        // The struct whose members are being read, and the depth of its DIE.
        let mut current: Option<(usize, isize)> = None;
        let mut depth: isize = 0;
        while let Some((delta, entry)) = entries.next_dfs()? {
            depth += delta;
            if let Some((_, d)) = current
                && depth <= d
            {
                current = None;
            }
            let tag = entry.tag();
            if tag == gimli::DW_TAG_structure_type {
                let Some(off) = global(entry.offset()) else {
                    continue;
                };
                let size = match entry.attr_value(gimli::DW_AT_byte_size)? {
                    Some(v) => v.udata_value().and_then(|v| u32::try_from(v).ok()),
                    None => None,
                };
                let Some(size) = size else { continue };
                let Some(name) = entry.attr_value(gimli::DW_AT_name)? else {
                    continue;
                };
                let name = dwarf.attr_string(unit, name)?;
                let name = name.to_string_lossy();
                if !keep(&name) {
                    continue;
                }
                self.by_name.entry(name.into_owned()).or_insert(off);
                self.by_offset.insert(
                    off,
                    StructInfo {
                        size,
                        members: Vec::new(),
                    },
                );
                current = Some((off, depth));
            } else if tag == gimli::DW_TAG_member
                && let Some((sid, d)) = current
                && depth == d + 1
            {
                let Some(name) = entry.attr_value(gimli::DW_AT_name)? else {
                    continue;
                };
                let name = dwarf
                    .attr_string(unit, name)?
                    .to_string_lossy()
                    .into_owned();
                let offset = match entry.attr_value(gimli::DW_AT_data_member_location)? {
                    Some(v) => v.udata_value().and_then(|v| u32::try_from(v).ok()),
                    None => None,
                };
                let Some(offset) = offset else { continue };
                let ty = type_ref(entry.attr_value(gimli::DW_AT_type)?, unit);
                if let Some(s) = self.by_offset.get_mut(&sid) {
                    s.members.push(Member { name, offset, ty });
                }
            } else if tag == gimli::DW_TAG_typedef
                && let Some(off) = global(entry.offset())
                && let Some(target) = type_ref(entry.attr_value(gimli::DW_AT_type)?, unit)
            {
                self.typedefs.insert(off, target);
            }
        }
        Ok(())
    }

    /// Number of named struct types found.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// True if no named struct type was found.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The struct a type offset denotes, following typedefs.
    fn resolve(&self, mut off: usize) -> Option<&StructInfo> {
        for _ in 0..MAX_TYPEDEF_CHAIN {
            if let Some(s) = self.by_offset.get(&off) {
                return Some(s);
            }
            off = *self.typedefs.get(&off)?;
        }
        None
    }
}

/// A `DW_AT_type` reference as a global `.debug_info` offset.
fn type_ref(
    value: Option<AttributeValue<EndianSlice<'_, LittleEndian>>>,
    unit: &gimli::Unit<EndianSlice<'_, LittleEndian>>,
) -> Option<usize> {
    match value? {
        AttributeValue::UnitRef(o) => o.to_debug_info_offset(&unit.header).map(|o| o.0),
        AttributeValue::DebugInfoRef(o) => Some(o.0),
        _ => None,
    }
}

impl StructSource for DwarfStructs {
    fn struct_size(&self, go_name: &str) -> Option<u32> {
        self.by_offset
            .get(self.by_name.get(go_name)?)
            .map(|s| s.size)
    }

    fn field_offset(&self, go_name: &str, path: &str) -> Option<u32> {
        let mut s = self.by_offset.get(self.by_name.get(go_name)?)?;
        let mut total = 0u32;
        let mut parts = path.split('.').take(MAX_PATH_DEPTH).peekable();
        while let Some(part) = parts.next() {
            let m = s.members.iter().find(|m| m.name == part)?;
            total = total.checked_add(m.offset)?;
            if parts.peek().is_some() {
                s = self.resolve(m.ty?)?;
            }
        }
        Some(total)
    }
}
