//! [`GoBinary`]: one opened Go executable with everything gtrace asks of it — version, build
//! info, the pclntab function table with inline-aware symbolization, `.symtab` data symbols,
//! and link-time address ↔ file offset mapping. See the `gobin` module docs for the API
//! overview.

use std::{collections::HashMap, path::Path, sync::OnceLock};

use serde::Serialize;

use super::{
    buildinfo::{self, BuildInfo, RawBuildInfo},
    elf::ElfImage,
    error::{GobinError, Result},
    moduledata::{self, ModuleData},
    pclntab::{Frame, FuncRecord, Memory, PclnFormat, PclnLayout, Pclntab},
    version::GoVersion,
};

impl Memory for ElfImage {
    fn read(&self, vaddr: u64, len: usize) -> Option<&[u8]> {
        self.read_vaddr(vaddr, len).ok()
    }
}

/// Where symbol information comes from in this binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SymbolSources {
    /// DWARF (`.debug_info`) is present (unstripped, not `-w`).
    pub dwarf: bool,
    /// An ELF `.symtab` is present (not `-s`): data symbols like `runtime.allgs` resolve.
    pub symtab: bool,
    /// How the pclntab was found: `section`, `symbol` or `scan`.
    pub pclntab: &'static str,
    /// How the 1.18+ text start was found: `header`, `moduledata`, `symbol`, `section`, or
    /// `absolute` (older formats do not need it).
    pub text_start: &'static str,
    /// Whether inline trees can be expanded (funcdata base known, or pre-1.18 absolute).
    pub inline_trees: bool,
}

/// A function as gtrace reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Function {
    /// Fully qualified name.
    pub name: String,
    /// Entry address (link-time).
    pub entry: u64,
    /// End address (exclusive).
    pub end: u64,
}

/// An opened Go binary. All addresses are link-time virtual addresses; for a PIE add the load
/// bias to get runtime addresses.
#[derive(Debug)]
pub struct GoBinary {
    image: ElfImage,
    layout: PclnLayout,
    pcln_file_range: (usize, usize),
    sources: SymbolSources,
    build_info: Option<BuildInfo>,
    version: Option<GoVersion>,
    moduledata: Option<ModuleData>,
    names: OnceLock<HashMap<String, u32>>,
}

impl GoBinary {
    /// Opens the Go binary at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_image(ElfImage::open(path)?)
    }

    /// Opens a running process's executable through `/proc/PID/exe`.
    pub fn open_pid(pid: u32) -> Result<Self> {
        Self::from_image(ElfImage::open_pid(pid)?)
    }

    /// Opens `path` as seen from inside process `pid`'s mount namespace.
    pub fn open_in_root(pid: u32, path: impl AsRef<Path>) -> Result<Self> {
        Self::from_image(ElfImage::open_in_root(pid, path)?)
    }

    /// Parses a binary held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Self::from_image(ElfImage::from_bytes(bytes)?)
    }

    /// Finds the tables of an already parsed ELF image.
    pub fn from_image(image: ElfImage) -> Result<Self> {
        let build_info = find_build_info(&image).ok();
        let version = build_info.as_ref().and_then(BuildInfo::version);
        let (pcln_vaddr, (start, end), how) = find_pclntab(&image)?;
        let mut layout = PclnLayout::parse(&image.bytes()[start..end], pcln_vaddr)?;
        let mut text_how = "absolute";
        let mut moduledata = None;
        let mut inline_trees = true;
        if layout.format != PclnFormat::Go12 {
            moduledata = moduledata::find(&image, pcln_vaddr, &layout, version.as_ref());
        }
        if layout.format.relative_entries() {
            // In a PIE the header's field is a relocation target: read it as the loader would.
            let header = image
                .read_ptr(pcln_vaddr.wrapping_add(8 + 2 * u64::from(layout.ptr_size)))
                .unwrap_or(0);
            let (text, how) = if header != 0 {
                (Some(header), "header")
            } else if let Some(md) = &moduledata {
                (Some(md.text), "moduledata")
            } else if let Some(s) = image.symbol("runtime.text") {
                (Some(s.addr), "symbol")
            } else {
                (
                    image
                        .sections()
                        .iter()
                        .find(|s| s.name == ".text")
                        .map(|s| s.addr),
                    "section",
                )
            };
            layout.text_start = text.ok_or(GobinError::NoTextStart)?;
            text_how = how;
            // Not the `.go.func` section of 1.27: that holds other data; `go:func.*` is in
            // `.rodata`.
            layout.gofunc = moduledata.and_then(|m| m.gofunc).or_else(|| {
                ["go:func.*", "go.func.*"]
                    .iter()
                    .find_map(|n| image.symbol(n).map(|s| s.addr))
            });
            if layout.gofunc.is_none()
                && let Some(md) = &moduledata
            {
                layout.gofunc = guess_gofunc(&image, (start, end), layout, md.addr);
            }
            inline_trees = layout.gofunc.is_some();
        }
        let sources = SymbolSources {
            dwarf: image.has_dwarf(),
            symtab: image.has_symtab(),
            pclntab: how,
            text_start: text_how,
            inline_trees,
        };
        let bin = Self {
            image,
            layout,
            pcln_file_range: (start, end),
            sources,
            build_info,
            version,
            moduledata,
            names: OnceLock::new(),
        };
        // Fail now, not on first use, if the function table is unusable.
        bin.pclntab().func(0)?;
        Ok(bin)
    }

    /// The ELF image (segments, sections, `.symtab`, build ids, raw reads).
    pub const fn image(&self) -> &ElfImage {
        &self.image
    }

    /// The Go release that built the binary, when the build info names a release.
    pub const fn version(&self) -> Option<&GoVersion> {
        self.version.as_ref()
    }

    /// The build info (`go version -m`), if found.
    pub const fn build_info(&self) -> Option<&BuildInfo> {
        self.build_info.as_ref()
    }

    /// Where symbols come from.
    pub const fn symbol_sources(&self) -> &SymbolSources {
        &self.sources
    }

    /// The module descriptor's text bounds and funcdata base, if it was found.
    pub const fn moduledata(&self) -> Option<&ModuleData> {
        self.moduledata.as_ref()
    }

    /// A view of the function table.
    pub fn pclntab(&self) -> Pclntab<'_> {
        let (s, e) = self.pcln_file_range;
        Pclntab::new(&self.image.bytes()[s..e], self.layout, &self.image)
            .expect("validated in from_image")
    }

    /// Every function of the pclntab, in address order.
    pub fn functions(&self) -> Result<Vec<Function>> {
        let tab = self.pclntab();
        tab.funcs().map(|f| Self::describe(&tab, &f?)).collect()
    }

    fn describe(tab: &Pclntab<'_>, f: &FuncRecord) -> Result<Function> {
        Ok(Function {
            name: tab.name(f)?.into_owned(),
            entry: f.entry,
            end: f.end,
        })
    }

    /// The function named `name` (exact, e.g. `runtime.gopark`, `main.(*T).method`).
    pub fn func_by_name(&self, name: &str) -> Result<Function> {
        let tab = self.pclntab();
        let names = self.names.get_or_init(|| {
            let mut m = HashMap::with_capacity(tab.len() as usize);
            for f in tab.funcs().filter_map(Result::ok) {
                if let Ok(n) = tab.name(&f) {
                    m.entry(n.into_owned()).or_insert(f.index);
                }
            }
            m
        });
        let &i = names
            .get(name)
            .ok_or_else(|| GobinError::NoSuchFunction(name.to_owned()))?;
        Self::describe(&tab, &tab.func(i)?)
    }

    /// The function containing `pc`.
    pub fn func_for_pc(&self, pc: u64) -> Result<Option<Function>> {
        let tab = self.pclntab();
        tab.find_func(pc)?
            .map(|f| Self::describe(&tab, &f))
            .transpose()
    }

    /// Frames for `pc`, innermost first, inlined calls expanded as `runtime.CallersFrames`
    /// does. For a return address pass `pc - 1` (as Go's tracebacks do).
    pub fn symbolize(&self, pc: u64) -> Result<Vec<Frame>> {
        self.pclntab().frames(pc)
    }

    /// File offset of link-time address `vaddr` (for uprobe attachment).
    pub fn vaddr_to_offset(&self, vaddr: u64) -> Option<u64> {
        self.image.vaddr_to_offset(vaddr)
    }

    /// A data (or any) symbol from `.symtab`: `(address, size)`. `None` in stripped builds.
    pub fn data_symbol(&self, name: &str) -> Option<(u64, u64)> {
        self.image.symbol(name).map(|s| (s.addr, s.size))
    }

    /// `len` bytes of the file at link-time address `vaddr`.
    pub fn read_vaddr(&self, vaddr: u64, len: usize) -> Result<&[u8]> {
        self.image.read_vaddr(vaddr, len)
    }
}

/// `moduledata.gofunc` when the version is unknown (a `devel` toolchain, damaged build info):
/// tries the field offsets of every known layout and keeps the one under which the inline
/// trees of the first functions that have one decode sensibly (names resolve, `parentPc`
/// inside the function).
fn guess_gofunc(
    image: &ElfImage,
    (s, e): (usize, usize),
    layout: PclnLayout,
    md: u64,
) -> Option<u64> {
    let data = &image.bytes()[s..e];
    let offsets: &[u64] = if layout.format == PclnFormat::Go118 {
        &[304]
    } else {
        &moduledata::GOFUNC_OFFSETS
    };
    offsets.iter().find_map(|&off| {
        let gofunc = image.read_ptr(md.wrapping_add(off)).ok()?;
        image.read_vaddr(gofunc, 1).ok()?;
        let mut l = layout;
        l.gofunc = Some(gofunc);
        let tab = Pclntab::new(data, l, image).ok()?;
        let mut checked = 0;
        for f in tab.funcs().filter_map(Result::ok).take(4096) {
            checked += tab.check_inline_tree(&f).ok()?;
            if checked >= 256 {
                break;
            }
        }
        (checked > 0).then_some(gofunc)
    })
}

/// Finds the pclntab: its link-time address, file byte range and how it was found.
fn find_pclntab(image: &ElfImage) -> Result<(u64, (usize, usize), &'static str)> {
    let base = image.bytes().as_ptr() as usize;
    for name in [".gopclntab", ".data.rel.ro.gopclntab"] {
        if let Some((addr, d)) = image.section_data(name) {
            let start = d.as_ptr() as usize - base;
            return Ok((addr, (start, start + d.len()), "section"));
        }
    }
    let to_range = |vaddr: u64| -> Option<(u64, (usize, usize))> {
        let off = usize::try_from(image.vaddr_to_offset(vaddr)?).ok()?;
        let seg = image
            .segments()
            .iter()
            .find(|s| vaddr.checked_sub(s.vaddr).is_some_and(|r| r < s.filesz))?;
        let end = usize::try_from(seg.offset + seg.filesz).ok()?;
        Some((vaddr, (off, end)))
    };
    for name in ["runtime.pcheader", "runtime.pclntab"] {
        if let Some((vaddr, range)) = image.symbol(name).and_then(|s| to_range(s.addr)) {
            return Ok((vaddr, range, "symbol"));
        }
    }
    // Scan the non-executable segments for a header that validates.
    for seg in image.segments().iter().filter(|s| !s.executable()) {
        let Ok(data) = image.read_vaddr(seg.vaddr, usize::try_from(seg.filesz).unwrap_or(0)) else {
            continue;
        };
        let mut i = ((4 - seg.vaddr % 4) % 4) as usize;
        while i + 8 <= data.len() {
            let w = &data[i..i + 8];
            if w[0] >= 0xf0 && w[1..4] == [0xff; 3] && w[4] == 0 && w[5] == 0 && w[7] == 8 {
                let vaddr = seg.vaddr.wrapping_add(i as u64);
                if let Ok(l) = PclnLayout::parse(&data[i..], vaddr)
                    && plausible(&data[i..], &l)
                {
                    {
                        let (_, range) = to_range(vaddr).ok_or(GobinError::NoPclntab)?;
                        return Ok((vaddr, range, "scan"));
                    }
                }
            }
            i += 4;
        }
    }
    Err(GobinError::NoPclntab)
}

/// An extra check for scanned headers: the first function starts at offset 0 of the text
/// (1.18+) and its record parses.
fn plausible(data: &[u8], l: &PclnLayout) -> bool {
    let mut l = *l;
    if l.format.relative_entries() {
        l.text_start = 0x1000; // any non-zero base; only the structure is checked here
    }
    let Ok(tab) = Pclntab::new(data, l, &super::pclntab::NoMemory) else {
        return false;
    };
    tab.func(0)
        .is_ok_and(|f| !l.format.relative_entries() || f.entry == 0x1000)
        && tab.func(l.nfunc - 1).is_ok()
}

/// Finds and decodes the build info: `.go.buildinfo`, a scan of the data segments for its
/// magic (16-byte aligned), or the `runtime.buildVersion` symbol.
pub(super) fn find_build_info(image: &ElfImage) -> Result<BuildInfo> {
    let block = image
        .section_data(".go.buildinfo")
        .map(|(_, d)| d)
        .or_else(|| {
            image.aligned_data(16).find_map(|(_, data)| {
                let pos = data
                    .chunks(16)
                    .position(|c| c.starts_with(buildinfo::MAGIC))?;
                data.get(pos * 16..)
            })
        });
    if let Some(block) = block {
        match buildinfo::decode_block(block)? {
            RawBuildInfo::Inline { version, modinfo } => {
                return Ok(BuildInfo::parse(&version, &modinfo));
            }
            RawBuildInfo::Pointers {
                version_at,
                modinfo_at,
                ..
            } => {
                let version =
                    String::from_utf8_lossy(read_go_string(image, version_at)?).into_owned();
                let modinfo = read_go_string(image, modinfo_at).unwrap_or_default();
                return Ok(BuildInfo::parse(&version, modinfo));
            }
        }
    }
    let sym = image
        .symbol("runtime.buildVersion")
        .ok_or(GobinError::NoBuildInfo)?;
    Ok(BuildInfo::parse(
        &String::from_utf8_lossy(read_go_string(image, sym.addr)?),
        b"",
    ))
}

/// Reads a Go `string` header `{data, len}` at `at` and its bytes.
fn read_go_string(image: &ElfImage, at: u64) -> Result<&[u8]> {
    let data = image.read_ptr(at)?;
    let len = image.read_u64(at.wrapping_add(8))?;
    if len > buildinfo::MAX_POINTED_STRING {
        return Err(GobinError::BadBuildInfo("a string is implausibly long"));
    }
    image.read_vaddr(data, len as usize)
}
