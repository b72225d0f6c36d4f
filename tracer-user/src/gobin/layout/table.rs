//! The generated tables as data: per structure its Go name, size and the offsets of the Go
//! field paths it was read with.
//!
//! Why data and not Rust struct literals: the typed layouts are rebuilt from it through the
//! same [`StructSource`] path as DWARF, so adding a field to `structs.rs` never breaks the
//! build of the generator that must fill it in (a stale table fails at lookup with
//! `MissingField`, and the drift test says to run `cargo xtask gen-offsets`).

use std::cell::RefCell;
use std::collections::BTreeMap;

use super::StructSource;
use crate::gobin::version::GoVersion;

/// One structure: Go name, size in bytes, `(Go field path, offset)` pairs.
pub type StructData = (&'static str, u32, &'static [(&'static str, u32)]);

/// One generated table entry: the structures of a Go minor, taken from one exact release.
#[derive(Debug)]
pub struct TableEntry {
    /// The toolchain the entry was generated with (e.g. go1.23.9).
    pub taken_from: GoVersion,
    /// The structures.
    pub structs: &'static [StructData],
}

/// A patch release range whose layout differs from its minor's table entry.
#[derive(Debug)]
pub struct PatchException {
    /// First patch release covered (inclusive).
    pub first: GoVersion,
    /// Last patch release covered (inclusive).
    pub last: GoVersion,
    /// The release the structures were generated from.
    pub verified: GoVersion,
    /// The structures.
    pub structs: &'static [StructData],
}

/// A [`StructSource`] over generated table data.
#[derive(Debug, Clone, Copy)]
pub struct TableStructs(pub &'static [StructData]);

impl StructSource for TableStructs {
    fn struct_size(&self, go_name: &str) -> Option<u32> {
        self.0.iter().find(|s| s.0 == go_name).map(|s| s.1)
    }

    fn field_offset(&self, go_name: &str, path: &str) -> Option<u32> {
        let s = self.0.iter().find(|s| s.0 == go_name)?;
        s.2.iter().find(|f| f.0 == path).map(|f| f.1)
    }
}

/// Owned [`StructData`]: what a [`Recorder`] saw.
pub type OwnedStructData = (String, u32, Vec<(String, u32)>);

/// Go name → (size, field path → offset), as seen so far.
type Seen = BTreeMap<String, (u32, BTreeMap<String, u32>)>;

/// Wraps a source (DWARF) and remembers every lookup that succeeded, so that exactly the data
/// a layout was built from can be written into a table.
pub struct Recorder<'a> {
    inner: &'a dyn StructSource,
    seen: RefCell<Seen>,
}

impl<'a> Recorder<'a> {
    /// Records lookups answered by `inner`.
    pub fn new(inner: &'a dyn StructSource) -> Self {
        Self {
            inner,
            seen: RefCell::new(BTreeMap::new()),
        }
    }

    /// The structures seen, fields ordered by offset.
    pub fn into_data(self) -> Vec<OwnedStructData> {
        self.seen
            .into_inner()
            .into_iter()
            .map(|(name, (size, fields))| {
                let mut fields: Vec<(String, u32)> = fields.into_iter().collect();
                fields.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
                (name, size, fields)
            })
            .collect()
    }
}

impl StructSource for Recorder<'_> {
    fn struct_size(&self, go_name: &str) -> Option<u32> {
        let size = self.inner.struct_size(go_name)?;
        self.seen
            .borrow_mut()
            .entry(go_name.to_owned())
            .or_insert((size, BTreeMap::new()));
        Some(size)
    }

    fn field_offset(&self, go_name: &str, path: &str) -> Option<u32> {
        let off = self.inner.field_offset(go_name, path)?;
        if let Some((_, fields)) = self.seen.borrow_mut().get_mut(go_name) {
            fields.insert(path.to_owned(), off);
        }
        Some(off)
    }
}
