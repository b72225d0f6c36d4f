//! [`GoBinary`]: one opened Go executable with everything gtrace asks of it — version, build
//! info, the pclntab function table with inline-aware symbolization, `.symtab` data symbols,
//! and link-time address ↔ file offset mapping. See the `gobin` module docs for the API
//! overview.

use std::{collections::HashMap, path::Path, sync::Mutex};

use serde::Serialize;

use super::{
    buildinfo::{self, BuildInfo, RawBuildInfo},
    elf::ElfImage,
    error::{GobinError, Result},
    moduledata::{self, ModuleData},
    pclntab::{Frame, FrameRef, FuncRecord, Memory, PclnFormat, PclnLayout, Pclntab},
    pcruns::FuncTables,
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
    /// Name → function index, built lazily one name prefix (package) at a time: see
    /// [`Self::func_by_name`].
    names: Mutex<HashMap<String, HashMap<String, u32>>>,
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
            names: Mutex::new(HashMap::new()),
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
    ///
    /// Cheap for the few runtime functions gtrace asks for on every attach: no index of all
    /// names is built. The first lookup under a package (`runtime.`, `main.`, …: see
    /// [`name_prefix`]) scans the function table once, comparing that prefix in place, and
    /// indexes only the functions that have it; later lookups in the package are hash lookups.
    pub fn func_by_name(&self, name: &str) -> Result<Function> {
        let tab = self.pclntab();
        let prefix = name_prefix(name);
        let index = {
            let mut packages = self
                .names
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let package = packages.entry(prefix.to_owned()).or_insert_with(|| {
                tab.funcs_with_prefix(prefix.as_bytes())
                    .into_iter()
                    .rev() // the first function of a name wins, as before
                    .collect()
            });
            package.get(name).copied()
        };
        let i = index.ok_or_else(|| GobinError::NoSuchFunction(name.to_owned()))?;
        Self::describe(&tab, &tab.func(i)?)
    }

    /// The function containing `pc`.
    pub fn func_for_pc(&self, pc: u64) -> Result<Option<Function>> {
        let tab = self.pclntab();
        tab.find_func(pc)?
            .map(|f| Self::describe(&tab, &f))
            .transpose()
    }

    /// Whether the function containing `pc` has a pc-line table (`None` if no function
    /// contains it): see [`Pclntab::has_line_table`]. Where it has none, every frame is at
    /// `?:0` and `go tool addr2line` invents a position.
    pub fn has_line_table(&self, pc: u64) -> Result<Option<bool>> {
        Ok(self
            .pclntab()
            .find_func(pc)?
            .map(|f| Pclntab::has_line_table(&f)))
    }

    /// Frames for `pc`, innermost first, inlined calls expanded as `runtime.CallersFrames`
    /// does. For a return address pass `pc - 1` (as Go's tracebacks do).
    pub fn symbolize(&self, pc: u64) -> Result<Vec<Frame>> {
        self.pclntab().frames(pc)
    }

    /// [`Self::symbolize`] for many PCs, answers in the order of `pcs`; built on
    /// [`Self::symbolize_each`].
    pub fn symbolize_many(&self, pcs: &[u64]) -> Vec<Result<Vec<Frame>>> {
        let mut answers: Vec<(usize, Result<Vec<Frame>>)> = Vec::with_capacity(pcs.len());
        self.symbolize_each(pcs, |i, frames| {
            answers.push((
                i,
                frames.map(|f| f.iter().map(FrameRef::to_frame).collect()),
            ));
        });
        answers.sort_unstable_by_key(|&(i, _)| i);
        answers.into_iter().map(|(_, a)| a).collect()
    }

    /// Symbolizes every PC of `pcs` (as [`Self::symbolize`] would), calling `each` with the
    /// PC's index in `pcs` and its frames, innermost first. The PCs are visited in address
    /// order, so each function's pc-value tables are decoded once for all of its PCs (see
    /// [`super::pcruns`]) and the frames borrow their names from the binary: the fast path
    /// for many PCs (`gtrace symbolize`, profiles, tracebacks).
    pub fn symbolize_each<'s>(
        &'s self,
        pcs: &[u64],
        mut each: impl FnMut(usize, Result<&[FrameRef<'s>]>),
    ) {
        self.symbolize_each_pc(pcs, |i, _, frames| each(i, frames));
    }

    /// [`Self::symbolize_each`], also handing `each` the PC (`pcs[i]`): a caller that would
    /// read it from `pcs` reads that array in random order, a cache miss per PC.
    pub fn symbolize_each_pc<'s>(
        &'s self,
        pcs: &[u64],
        each: impl FnMut(usize, u64, Result<&[FrameRef<'s>]>),
    ) {
        let mut order: Vec<(u64, usize)> = pcs.iter().copied().zip(0..).collect();
        // A radix sort (about 1.5x faster than a comparison sort here); stable, so equal PCs
        // stay in index order.
        radsort::sort_by_key(&mut order, |&(pc, _)| pc);
        self.symbolize_sorted(&order, each);
    }

    /// The core of [`Self::symbolize_each_pc`]: `order` holds `(pc, index)` pairs sorted by PC
    /// (any other order gives the same answers, only slower), and `each` gets each pair back
    /// with the PC's frames. Callers that split the sorted PCs into chunks (one per thread:
    /// the binary is `Sync`) call this once per chunk.
    pub fn symbolize_sorted<'s>(
        &'s self,
        order: &[(u64, usize)],
        mut each: impl FnMut(usize, u64, Result<&[FrameRef<'s>]>),
    ) {
        let tab = self.pclntab();
        let mut current: Option<FuncRecord> = None;
        let mut tables = FuncTables::default();
        let mut frames = Vec::new();
        for &(pc, i) in order {
            let inside = |f: &FuncRecord| f.entry <= pc && pc < f.end;
            if !current.as_ref().is_some_and(inside) {
                // In address order the next function is usually the one after.
                let next = current
                    .and_then(|f| tab.func(f.index + 1).ok())
                    .filter(inside);
                let found = match next {
                    Some(f) => Ok(Some(f)),
                    None => tab.find_func(pc),
                };
                current = match found {
                    Ok(Some(f)) => {
                        tab.decode_func_tables(&f, &mut tables);
                        Some(f)
                    }
                    Ok(None) => {
                        each(i, pc, Err(GobinError::NoFunctionForPc(pc)));
                        continue;
                    }
                    Err(e) => {
                        each(i, pc, Err(e));
                        continue;
                    }
                };
            }
            if let Some(f) = &current {
                frames.clear();
                match tab.frames_cached(f, &mut tables, pc, &mut frames) {
                    Ok(()) => each(i, pc, Ok(&frames)),
                    Err(e) => each(i, pc, Err(e)),
                }
            }
        }
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

/// The part of a function name that [`GoBinary::func_by_name`] indexes by: its package path
/// and the dot after it (`runtime.`, `cmd/compile/internal/ir.`), looking only before any
/// type arguments (`main.f[example.com/x.T]` → `main.`); the whole name when it has no dot.
/// Any prefix of the name would be correct; the package keeps the indexes few and small.
fn name_prefix(name: &str) -> &str {
    let head = &name[..name.find('[').unwrap_or(name.len())];
    let pkg_start = head.rfind('/').map_or(0, |i| i + 1);
    match head[pkg_start..].find('.') {
        Some(dot) => &name[..=pkg_start + dot],
        None => name,
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

#[cfg(test)]
mod tests {
    use super::name_prefix;

    /// Every name starts with its prefix, which is its package path and dot where it has one.
    #[test]
    fn name_prefixes_are_packages() {
        for (name, prefix) in [
            ("runtime.gopark", "runtime."),
            ("main.(*T).method", "main."),
            (
                "cmd/compile/internal/ir.(*Name).Sym",
                "cmd/compile/internal/ir.",
            ),
            ("main.f[example.com/x.T]", "main."),
            ("example.com/m/v2.F.func1", "example.com/m/v2."),
            ("go:buildid", "go:buildid"),
            ("", ""),
        ] {
            assert_eq!(name_prefix(name), prefix, "{name}");
            assert!(name.starts_with(name_prefix(name)));
        }
    }
}
