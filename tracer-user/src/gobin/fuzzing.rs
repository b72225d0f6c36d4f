//! Bodies of the cargo-fuzz targets in `fuzz/` (crate `gtrace-fuzz`), as plain functions so
//! ordinary tests run them over corpora of truncated and mutated real binaries without a
//! nightly compiler. Each must return normally for any input: malformed data is an error,
//! never a panic or an unbounded allocation.

use super::{
    buildinfo::{self, BuildInfo, RawBuildInfo},
    pclntab::{Memory, PclnLayout, Pclntab},
    probesite,
    symbols::GoBinary,
};

/// Functions looked at per input (keeps each run short on huge tables).
const FUNCS_PER_INPUT: u32 = 64;

/// Opens `data` as a Go ELF binary and exercises every query on it.
pub fn elf(data: &[u8]) {
    let Ok(bin) = GoBinary::from_bytes(data.to_vec()) else {
        return;
    };
    let _ = bin.build_info();
    let tab = bin.pclntab();
    for i in 0..tab.len().min(FUNCS_PER_INPUT) {
        let Ok(f) = tab.func(i) else { continue };
        let _ = bin.symbolize(f.entry);
        let _ = bin.symbolize(f.entry.wrapping_add((f.end.wrapping_sub(f.entry)) / 2));
        if let Ok(name) = tab.name(&f) {
            let _ = bin.func_by_name(&name);
            let _ = probesite::probe_site(&bin, &name);
            let _ = probesite::ret_sites(&bin, &name);
        }
    }
    let _ = bin.data_symbol("runtime.allgs");
    let _ = bin.read_vaddr(0x40_0000, 16);
}

/// Decodes `data` as a `.go.buildinfo` block and parses whatever strings it holds.
pub fn buildinfo(data: &[u8]) {
    if let Ok(RawBuildInfo::Inline { version, modinfo }) = buildinfo::decode_block(data) {
        let info = BuildInfo::parse(&version, &modinfo);
        let _ = (
            info.version(),
            info.trimpath(),
            info.cgo_enabled(),
            info.vcs().count(),
        );
    }
    // The modinfo parser on its own, on arbitrary text.
    let _ = BuildInfo::parse("go1.21.0", data);
}

/// The input's own bytes as memory at [`PCLNTAB_FUZZ_VADDR`], so inline trees can resolve.
struct SelfMemory<'a>(&'a [u8]);

/// Link address at which [`pclntab`] pretends the table (and funcdata) live.
pub const PCLNTAB_FUZZ_VADDR: u64 = 0x10_0000;

impl Memory for SelfMemory<'_> {
    fn read(&self, vaddr: u64, len: usize) -> Option<&[u8]> {
        let start = usize::try_from(vaddr.checked_sub(PCLNTAB_FUZZ_VADDR)?).ok()?;
        self.0.get(start..start.checked_add(len)?)
    }
}

/// Parses `data` as a pclntab (header first) and symbolizes through it.
pub fn pclntab(data: &[u8]) {
    let Ok(mut layout) = PclnLayout::parse(data, PCLNTAB_FUZZ_VADDR) else {
        return;
    };
    if layout.text_start == 0 {
        layout.text_start = 0x40_1000;
    }
    layout.gofunc = Some(PCLNTAB_FUZZ_VADDR);
    let mem = SelfMemory(data);
    let Ok(tab) = Pclntab::new(data, layout, &mem) else {
        return;
    };
    for i in 0..tab.len().min(FUNCS_PER_INPUT) {
        let Ok(f) = tab.func(i) else { continue };
        let _ = tab.name(&f);
        for pc in [f.entry, f.entry.wrapping_add(1), f.end.wrapping_sub(1)] {
            let _ = tab.frames_in(&f, pc);
            let _ = tab.sp_delta(&f, pc);
            let _ = tab.arg_items(&f, pc);
            let _ = tab.outermost_pc(&f, pc);
        }
        let _ = tab.find_func(f.entry);
    }
}
