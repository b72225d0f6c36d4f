//! Opening a Go program's ELF file: by path, by PID (`/proc/PID/exe`, which still works when
//! the binary was deleted or lives in another mount namespace), or from bytes (tests, fuzzing).
//!
//! Everything gtrace needs from the ELF container is extracted once into owned tables —
//! loadable segments (for vaddr ↔ file-offset mapping, which uprobe attachment needs), section
//! headers, the `.symtab` (only present in unstripped builds), `R_X86_64_RELATIVE` relocations
//! (a PIE's pointers in data are 0 in the file and only the relocation addend holds the value)
//! and the build ids — so the rest of `gobin` reads plain byte slices without lifetimes tied
//! to a parser.

use std::{
    collections::HashMap,
    fs::File,
    ops::Deref,
    path::{Path, PathBuf},
};

use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol, RelocationFlags, SymbolKind};

use super::error::{GobinError, Result};

/// The file's bytes: a read-only mapping of a real file, or an owned buffer.
#[derive(Debug)]
pub enum Bytes {
    /// A private read-only mapping of the opened file.
    Mapped(memmap2::Mmap),
    /// Bytes handed in by the caller.
    Owned(Vec<u8>),
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Self::Mapped(m) => m,
            Self::Owned(v) => v,
        }
    }
}

/// One `PT_LOAD` program header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct LoadSegment {
    /// Link-time virtual address of the segment.
    pub vaddr: u64,
    /// Size in memory (≥ `filesz`; the rest is zero-filled, e.g. `.bss`).
    pub memsz: u64,
    /// Offset of the segment's bytes in the file.
    pub offset: u64,
    /// How many bytes the file holds for it.
    pub filesz: u64,
    /// `PF_X` (1) | `PF_W` (2) | `PF_R` (4).
    pub flags: u32,
}

impl LoadSegment {
    /// True for a segment mapped executable.
    pub const fn executable(&self) -> bool {
        self.flags & object::elf::PF_X != 0
    }
}

/// One section header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionInfo {
    /// Its name (`.gopclntab`, `.go.buildinfo`, …).
    pub name: String,
    /// Link-time virtual address (0 for sections that are not loaded).
    pub addr: u64,
    /// File offset and size of its bytes, `None` for `SHT_NOBITS`.
    pub file_range: Option<(u64, u64)>,
    /// Size in memory.
    pub size: u64,
}

/// A `.symtab` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElfSymbol {
    /// Link-time address.
    pub addr: u64,
    /// Size in bytes (0 when the linker did not say).
    pub size: u64,
    /// True for `STT_FUNC`.
    pub is_func: bool,
}

/// A parsed ELF file with its bytes.
#[derive(Debug)]
pub struct ElfImage {
    path: PathBuf,
    bytes: Bytes,
    machine: u16,
    is_pie: bool,
    segments: Vec<LoadSegment>,
    sections: Vec<SectionInfo>,
    symbols: HashMap<String, ElfSymbol>,
    relative_relocs: HashMap<u64, u64>,
    go_build_id: Option<String>,
    gnu_build_id: Option<String>,
}

impl ElfImage {
    /// Maps and parses the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let open_err = |source| GobinError::Open {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(open_err)?;
        // SAFETY: the mapping is private and read-only. gtrace treats every byte as untrusted
        // input and bounds-checks all reads, so a concurrent change of the file can at worst
        // produce wrong values or errors, never reads outside the mapping.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(open_err)?;
        Self::parse(path.to_owned(), Bytes::Mapped(map))
    }

    /// The executable of a running process, through `/proc/PID/exe`. The kernel resolves that
    /// link to the mapped inode itself, so this works when the file was deleted or replaced,
    /// and across mount namespaces.
    pub fn open_pid(pid: u32) -> Result<Self> {
        Self::open(format!("/proc/{pid}/exe"))
    }

    /// A file seen through a process's root directory (`/proc/PID/root/<path>`), for paths
    /// that are meaningful inside the process's mount namespace (containers).
    pub fn open_in_root(pid: u32, path: impl AsRef<Path>) -> Result<Self> {
        let rel = path.as_ref().strip_prefix("/").unwrap_or(path.as_ref());
        Self::open(Path::new(&format!("/proc/{pid}/root")).join(rel))
    }

    /// Parses bytes held in memory (tests, fuzzing).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Self::parse(PathBuf::from("<memory>"), Bytes::Owned(bytes))
    }

    fn parse(path: PathBuf, bytes: Bytes) -> Result<Self> {
        let not_elf = |reason: String| GobinError::NotElf {
            path: path.clone(),
            reason,
        };
        let file = object::read::elf::ElfFile64::<object::Endianness>::parse(&*bytes)
            .map_err(|e| not_elf(e.to_string()))?;
        if !file.is_little_endian() {
            return Err(not_elf("big-endian ELF files are not supported".into()));
        }
        let header = file.elf_header();
        let machine = header.e_machine.get(file.endian());
        let is_pie = header.e_type.get(file.endian()) == object::elf::ET_DYN;
        let len = bytes.len() as u64;
        let segments = file
            .segments()
            .map(|s| {
                let (offset, filesz) = s.file_range();
                let flags = match s.flags() {
                    object::SegmentFlags::Elf { p_flags } => p_flags,
                    _ => 0,
                };
                // Keep only the part of the segment the file really holds.
                let filesz = filesz.min(len.saturating_sub(offset));
                LoadSegment {
                    vaddr: s.address(),
                    memsz: s.size(),
                    offset,
                    filesz,
                    flags,
                }
            })
            .collect();
        let sections = file
            .sections()
            .filter_map(|s| {
                Some(SectionInfo {
                    name: s.name().ok()?.to_owned(),
                    addr: s.address(),
                    file_range: s.file_range(),
                    size: s.size(),
                })
            })
            .collect::<Vec<_>>();
        let symbols = file
            .symbols()
            .filter(|s| s.is_definition() || s.kind() == SymbolKind::Data)
            .filter_map(|s| {
                let name = s.name().ok()?;
                (!name.is_empty()).then(|| {
                    let sym = ElfSymbol {
                        addr: s.address(),
                        size: s.size(),
                        is_func: s.kind() == SymbolKind::Text,
                    };
                    (name.to_owned(), sym)
                })
            })
            .collect();
        let relative_relocs = file
            .dynamic_relocations()
            .into_iter()
            .flatten()
            .filter(|(_, r)| {
                matches!(r.flags(), RelocationFlags::Elf { r_type } if r_type == object::elf::R_X86_64_RELATIVE)
            })
            .map(|(off, r)| (off, r.addend() as u64))
            .collect();
        let gnu_build_id = file.build_id().ok().flatten().map(hex);
        let mut image = Self {
            path,
            bytes: Bytes::Owned(Vec::new()),
            machine,
            is_pie,
            segments,
            sections,
            symbols,
            relative_relocs,
            go_build_id: None,
            gnu_build_id,
        };
        image.bytes = bytes;
        image.go_build_id = image
            .section_data(".note.go.buildid")
            .and_then(|(_, d)| parse_go_note(d));
        Ok(image)
    }

    /// The path this image was opened from (`<memory>` for bytes).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All bytes of the file.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// `e_machine` (62 = x86-64, 183 = aarch64).
    pub const fn machine(&self) -> u16 {
        self.machine
    }

    /// True for `ET_DYN` (a PIE): runtime addresses are link-time addresses plus a load bias.
    pub const fn is_pie(&self) -> bool {
        self.is_pie
    }

    /// The `PT_LOAD` segments.
    pub fn segments(&self) -> &[LoadSegment] {
        &self.segments
    }

    /// The file bytes of every non-executable loadable segment, each cut to start at its first
    /// `align`-aligned address: `(address of the first byte, bytes)`. For scans of the data
    /// for tables whose section headers may be gone (build info, moduledata).
    pub fn aligned_data(&self, align: u64) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        self.segments
            .iter()
            .filter(|s| !s.executable())
            .filter_map(move |s| {
                let data = self
                    .read_vaddr(s.vaddr, usize::try_from(s.filesz).ok()?)
                    .ok()?;
                let skew = (align - s.vaddr % align) % align;
                Some((
                    s.vaddr.wrapping_add(skew),
                    data.get(usize::try_from(skew).ok()?..)?,
                ))
            })
    }

    /// The section headers (empty if the file has none).
    pub fn sections(&self) -> &[SectionInfo] {
        &self.sections
    }

    /// A section's address and file bytes, if it exists and has bytes.
    pub fn section_data(&self, name: &str) -> Option<(u64, &[u8])> {
        let s = self.sections.iter().find(|s| s.name == name)?;
        let (off, size) = s.file_range?;
        let start = usize::try_from(off).ok()?;
        let end = start.checked_add(usize::try_from(size).ok()?)?;
        Some((s.addr, self.bytes.get(start..end)?))
    }

    /// True if a `.symtab` with entries is present (unstripped build).
    pub fn has_symtab(&self) -> bool {
        !self.symbols.is_empty()
    }

    /// True if DWARF debug info (`.debug_info`) is present.
    pub fn has_dwarf(&self) -> bool {
        self.sections
            .iter()
            .any(|s| s.name == ".debug_info" || s.name == ".zdebug_info")
    }

    /// A `.symtab` symbol by exact name.
    pub fn symbol(&self, name: &str) -> Option<ElfSymbol> {
        self.symbols.get(name).copied()
    }

    /// All `.symtab` symbols.
    pub fn symbols(&self) -> impl Iterator<Item = (&str, ElfSymbol)> {
        self.symbols.iter().map(|(n, s)| (n.as_str(), *s))
    }

    /// The Go build id from `.note.go.buildid` (`actionID/contentID`).
    pub fn go_build_id(&self) -> Option<&str> {
        self.go_build_id.as_deref()
    }

    /// The GNU build id (`.note.gnu.build-id`) in hex.
    pub fn gnu_build_id(&self) -> Option<&str> {
        self.gnu_build_id.as_deref()
    }

    /// The file offset holding link-time address `vaddr`, if a loadable segment's file bytes
    /// cover it. This is the offset a uprobe is attached at.
    pub fn vaddr_to_offset(&self, vaddr: u64) -> Option<u64> {
        self.segments.iter().find_map(|s| {
            let rel = vaddr.checked_sub(s.vaddr)?;
            (rel < s.filesz).then(|| s.offset + rel)
        })
    }

    /// The link-time address of file offset `offset`, if a loadable segment maps it.
    pub fn offset_to_vaddr(&self, offset: u64) -> Option<u64> {
        self.segments.iter().find_map(|s| {
            let rel = offset.checked_sub(s.offset)?;
            (rel < s.filesz).then(|| s.vaddr.wrapping_add(rel))
        })
    }

    /// `len` bytes of the file at link-time address `vaddr` (must lie in one segment's file
    /// bytes; zero-filled `.bss` is not readable here).
    pub fn read_vaddr(&self, vaddr: u64, len: usize) -> Result<&[u8]> {
        let unmapped = || GobinError::UnmappedVaddr {
            vaddr,
            len: len as u64,
        };
        let seg = self
            .segments
            .iter()
            .find(|s| vaddr.checked_sub(s.vaddr).is_some_and(|r| r < s.filesz))
            .ok_or_else(unmapped)?;
        let rel = vaddr - seg.vaddr;
        if rel
            .checked_add(len as u64)
            .is_none_or(|end| end > seg.filesz)
        {
            return Err(unmapped());
        }
        let start = usize::try_from(seg.offset + rel).map_err(|_| unmapped())?;
        self.bytes.get(start..start + len).ok_or_else(unmapped)
    }

    /// As much of `[vaddr, vaddr+max_len)` as the containing segment's file bytes hold.
    pub fn read_vaddr_upto(&self, vaddr: u64, max_len: usize) -> Result<&[u8]> {
        let seg = self
            .segments
            .iter()
            .find(|s| vaddr.checked_sub(s.vaddr).is_some_and(|r| r < s.filesz))
            .ok_or(GobinError::UnmappedVaddr {
                vaddr,
                len: max_len as u64,
            })?;
        let avail = seg.filesz - (vaddr - seg.vaddr);
        self.read_vaddr(
            vaddr,
            max_len.min(usize::try_from(avail).unwrap_or(usize::MAX)),
        )
    }

    /// A little-endian u64 at `vaddr`.
    pub fn read_u64(&self, vaddr: u64) -> Result<u64> {
        let b = self.read_vaddr(vaddr, 8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    /// A pointer-sized value at `vaddr` as the loader would see it: for a PIE, an
    /// `R_X86_64_RELATIVE` relocation at that address supplies the (link-time) value.
    pub fn read_ptr(&self, vaddr: u64) -> Result<u64> {
        if let Some(&addend) = self.relative_relocs.get(&vaddr) {
            return Ok(addend);
        }
        self.read_u64(vaddr)
    }

    /// Link-time addresses whose `R_X86_64_RELATIVE` relocation yields `value` (PIE only).
    pub fn relocs_to(&self, value: u64) -> impl Iterator<Item = u64> + '_ {
        self.relative_relocs
            .iter()
            .filter(move |(_, v)| **v == value)
            .map(|(k, _)| *k)
    }
}

/// Decodes an ELF note section holding Go's build id: name `Go\0\0`, type 4.
fn parse_go_note(d: &[u8]) -> Option<String> {
    let u32_at = |o: usize| Some(u32::from_le_bytes(d.get(o..o + 4)?.try_into().ok()?));
    let namesz = u32_at(0)? as usize;
    let descsz = u32_at(4)? as usize;
    let kind = u32_at(8)?;
    let name = d.get(12..12usize.checked_add(namesz)?)?;
    if kind != 4 || !name.starts_with(b"Go") {
        return None;
    }
    let desc_at = 12 + namesz.div_ceil(4) * 4;
    let desc = d.get(desc_at..desc_at.checked_add(descsz)?)?;
    String::from_utf8(desc.to_vec()).ok()
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_note() {
        let mut d = Vec::new();
        d.extend(4u32.to_le_bytes());
        d.extend(5u32.to_le_bytes());
        d.extend(4u32.to_le_bytes());
        d.extend(b"Go\0\0abcde");
        assert_eq!(parse_go_note(&d).as_deref(), Some("abcde"));
        assert_eq!(parse_go_note(&d[..15]), None);
        assert_eq!(parse_go_note(&[]), None);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(ElfImage::from_bytes(Vec::new()).is_err());
        assert!(ElfImage::from_bytes(b"\x7fELF\x02\x01\x01".to_vec()).is_err());
    }
}
