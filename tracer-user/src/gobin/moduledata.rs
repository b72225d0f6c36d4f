//! Finding `runtime.firstmoduledata`, the runtime's descriptor of the binary's own module,
//! in binaries where the symbol is gone (stripped) and pointers are relocations (PIE).
//!
//! gtrace needs two of its fields: `text` (the base of 1.18+ pclntab entry offsets, the only
//! place it is stored since Go 1.26 zeroed the pclntab header's copy) and `gofunc` (the base of
//! 1.18+ funcdata offsets, where inline trees live). The struct starts with `pcHeader
//! *pcHeader` followed by the `funcnametab` slice, which lets us recognise it: a pointer to
//! the pclntab header followed by a pointer to its funcnametab. Field offsets below are from
//! `runtime/symtab.go` of each release (checked for 1.19 and 1.21–1.27).

use serde::Serialize;

use super::{elf::ElfImage, pclntab::PclnLayout, version::GoVersion};

/// `moduledata.text` (the same in every release since 1.16).
const TEXT_OFF: u64 = 176;
/// `moduledata.etext`.
const ETEXT_OFF: u64 = 184;

/// `moduledata.gofunc`: 1.18–1.19 had no `covctrs`; 1.27 added `typedesclen`, `itaboffset`,
/// `itabsize`.
fn gofunc_offset(v: &GoVersion) -> u64 {
    if !v.at_least(1, 20) {
        304
    } else if !v.at_least(1, 27) {
        320
    } else {
        344
    }
}

/// The `moduledata.gofunc` offsets of the known 1.20+ layouts, tried when the version is
/// unknown (1.18–1.19 tables have their own magic and always use 304).
pub const GOFUNC_OFFSETS: [u64; 2] = [344, 320];

/// What gtrace reads from the module descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ModuleData {
    /// Link-time address of `runtime.firstmoduledata`.
    pub addr: u64,
    /// Start of Go text (`runtime.text`).
    pub text: u64,
    /// End of Go text.
    pub etext: u64,
    /// `go:func.*`, when the version tells where the field is.
    pub gofunc: Option<u64>,
}

/// Locates and reads the moduledata of a 1.16+ binary whose pclntab header is at `pcln_vaddr`.
pub fn find(
    image: &ElfImage,
    pcln_vaddr: u64,
    layout: &PclnLayout,
    version: Option<&GoVersion>,
) -> Option<ModuleData> {
    let matches = |addr: u64| {
        image.read_ptr(addr).ok() == Some(pcln_vaddr)
            && image.read_ptr(addr.wrapping_add(8)).ok()
                == Some(pcln_vaddr.wrapping_add(layout.funcname as u64))
    };
    let mut candidates: Vec<u64> = Vec::new();
    candidates.extend(image.symbol("runtime.firstmoduledata").map(|s| s.addr));
    candidates.extend(image.section_data(".go.module").map(|(a, _)| a));
    let addr = candidates.into_iter().find(|&a| matches(a)).or_else(|| {
        image
            .relocs_to(pcln_vaddr)
            .find(|&a| matches(a))
            .or_else(|| scan(image, pcln_vaddr, &matches))
    })?;
    let text = image.read_ptr(addr.wrapping_add(TEXT_OFF)).ok()?;
    let etext = image.read_ptr(addr.wrapping_add(ETEXT_OFF)).ok()?;
    let in_exec = image
        .segments()
        .iter()
        .any(|s| s.executable() && text.checked_sub(s.vaddr).is_some_and(|r| r < s.memsz));
    if !in_exec || etext < text {
        return None;
    }
    let gofunc = version
        .and_then(|v| image.read_ptr(addr.wrapping_add(gofunc_offset(v))).ok())
        .filter(|&g| image.read_vaddr(g, 1).is_ok());
    Some(ModuleData {
        addr,
        text,
        etext,
        gofunc,
    })
}

/// Scans the writable segments for a pointer-aligned word equal to `pcln_vaddr`.
fn scan(image: &ElfImage, pcln_vaddr: u64, matches: &dyn Fn(u64) -> bool) -> Option<u64> {
    let needle = pcln_vaddr.to_le_bytes();
    image.aligned_data(8).find_map(|(base, data)| {
        data.chunks_exact(8)
            .enumerate()
            .filter(|(_, w)| *w == needle)
            .map(|(i, _)| base.wrapping_add(8 * i as u64))
            .find(|&a| matches(a))
    })
}
