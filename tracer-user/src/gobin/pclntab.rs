//! Go's pclntab: the function table the runtime itself uses for tracebacks. It survives
//! `-ldflags=-s -w`, so it is how gtrace names functions and finds probe sites in stripped
//! binaries.
//!
//! Formats (see `runtime/symtab.go`, `runtime/runtime2.go` `_func`, `cmd/link/internal/ld/pcln.go`
//! of each release):
//! - `0xfffffffb` Go 1.2–1.15: one table; function entries are absolute addresses, names and
//!   pc-value tables are offsets from the table start, files go through a `filetab` of u32.
//! - `0xfffffffa` Go 1.16–1.17: header with offsets of separate sub-tables (funcnametab, cutab,
//!   filetab, pctab, pclntab); entries are still absolute.
//! - `0xfffffff0` Go 1.18–1.19: entries become u32 offsets from the text start; funcdata
//!   become u32 offsets from `moduledata.gofunc`.
//! - `0xfffffff1` Go 1.20+: `_func.startLine` added, the inline tree entry changed shape
//!   (`inlinedCall{funcID, nameOff, parentPc, startLine}`). Since 1.26 the header's text-start
//!   field is always 0 and the caller must supply the text start (moduledata, `runtime.text`).
//!
//! Every read is bounds-checked; malformed tables give [`GobinError::BadPclntab`].
//! Those errors are built lazily (`ok_or_else`): built eagerly, each successful read also
//! runs the error's destructor, which showed up at 7 % of symbolizing time.
#![allow(
    clippy::unnecessary_lazy_evaluations,
    reason = "see the module docs: eager errors cost a destructor call per read"
)]

use std::borrow::Cow;

use serde::Serialize;

use super::{
    error::{GobinError, Result},
    pcruns::{FuncTables, PcRuns},
};

/// `PCDATA_InlTreeIndex` (`internal/abi/symtab.go`).
pub const PCDATA_INL_TREE_INDEX: u32 = 2;
/// `FUNCDATA_InlTree`.
pub const FUNCDATA_INL_TREE: u32 = 3;
/// `PCDATA_ArgLiveIndex`: per PC, which liveness bitmap of `FUNCDATA_ArgLiveInfo` holds.
pub const PCDATA_ARG_LIVE_INDEX: u32 = 3;
/// `FUNCDATA_ArgInfo`: the argument layout `printArgs` walks (Go 1.17+).
pub const FUNCDATA_ARG_INFO: u32 = 5;
/// `FUNCDATA_ArgLiveInfo`: liveness of register arguments' spill slots (Go 1.18+).
pub const FUNCDATA_ARG_LIVE_INFO: u32 = 6;
/// `abi.TraceArgsMaxLen`: the longest `FUNCDATA_ArgInfo` program.
const TRACE_ARGS_MAX_LEN: usize = (5 * 3 + 2) * 10 + 1;
/// Deepest inline expansion accepted (a cycle in a corrupt tree must not loop forever).
const MAX_INLINE_DEPTH: usize = 1024;
/// Longest C string (function or file name) read from the tables.
const MAX_NAME: usize = 1 << 16;

/// The pclntab format, by header magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PclnFormat {
    /// `0xfffffffb`, Go 1.2–1.15 (the `_func` layout of 1.10+ is assumed).
    Go12,
    /// `0xfffffffa`, Go 1.16–1.17.
    Go116,
    /// `0xfffffff0`, Go 1.18–1.19.
    Go118,
    /// `0xfffffff1`, Go 1.20 and later.
    Go120,
}

impl PclnFormat {
    /// The format for a header magic.
    pub const fn from_magic(magic: u32) -> Option<Self> {
        match magic {
            0xffff_fffb => Some(Self::Go12),
            0xffff_fffa => Some(Self::Go116),
            0xffff_fff0 => Some(Self::Go118),
            0xffff_fff1 => Some(Self::Go120),
            _ => None,
        }
    }

    /// True when function entries are offsets from the text start (1.18+).
    pub const fn relative_entries(self) -> bool {
        matches!(self, Self::Go118 | Self::Go120)
    }
}

/// Where a pclntab's sub-tables are, decoded from its header. Plain data (no borrows) so a
/// [`super::GoBinary`] can keep it and make [`Pclntab`] views on demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PclnLayout {
    /// Table format.
    pub format: PclnFormat,
    /// Instruction size quantum (1 on x86).
    pub min_lc: u8,
    /// Pointer size (8 on 64-bit targets).
    pub ptr_size: u8,
    /// Number of functions.
    pub nfunc: u32,
    /// Link-time address of the header (0 when unknown).
    pub vaddr: u64,
    /// The text-start field of the header (1.18+; 0 since Go 1.26 and often in PIEs).
    pub header_text_start: u64,
    /// Base of function entry offsets (1.18+); the caller fills it in when the header has 0.
    pub text_start: u64,
    /// Address of `go:func.*` (1.18+ funcdata base), when known.
    pub gofunc: Option<u64>,
    pub(super) funcname: usize,
    cu: usize,
    filetab: usize,
    pctab: usize,
    /// Base of `_func` offsets; the function table starts at `functab`.
    pcln: usize,
    functab: usize,
    len: usize,
}

impl PclnLayout {
    /// Decodes and validates the header at the start of `data` (which may run past the
    /// table's end). `vaddr` is the header's link-time address.
    pub fn parse(data: &[u8], vaddr: u64) -> Result<Self> {
        let bad = GobinError::BadPclntab;
        let magic = u32::from_le_bytes(
            data.get(..4)
                .ok_or(bad("shorter than its header"))?
                .try_into()
                .expect("4"),
        );
        let format = PclnFormat::from_magic(magic).ok_or(GobinError::BadPclntabMagic(magic))?;
        let Some(&[pad1, pad2, min_lc, ptr_size]) = data.get(4..8) else {
            return Err(bad("shorter than its header"));
        };
        if pad1 != 0 || pad2 != 0 || !matches!(min_lc, 1 | 2 | 4) || !matches!(ptr_size, 4 | 8) {
            return Err(bad(
                "header pad, instruction size or pointer size is invalid",
            ));
        }
        let p = usize::from(ptr_size);
        let word = |i: usize| -> Result<u64> {
            read_word(data, 8 + i * p, ptr_size).ok_or(bad("shorter than its header"))
        };
        let off = |i: usize| -> Result<usize> {
            let v = word(i)?;
            usize::try_from(v)
                .ok()
                .filter(|&v| v < data.len())
                .ok_or(bad("a header offset points outside the data"))
        };
        let nfunc = u32::try_from(word(0)?).map_err(|_| bad("function count is too large"))?;
        let mut l = Self {
            format,
            min_lc,
            ptr_size,
            nfunc,
            vaddr,
            header_text_start: 0,
            text_start: 0,
            gofunc: None,
            funcname: 0,
            cu: 0,
            filetab: 0,
            pctab: 0,
            pcln: 0,
            functab: 8 + p,
            len: data.len(),
        };
        match format {
            PclnFormat::Go12 => {
                let ft_end = (nfunc as usize * 2 + 1)
                    .checked_mul(p)
                    .and_then(|n| n.checked_add(l.functab));
                let ft_end = ft_end.ok_or(bad("function table size overflows"))?;
                let filetab =
                    read_u32(data, ft_end).ok_or(bad("function table runs past the data"))?;
                l.filetab = filetab as usize;
            }
            PclnFormat::Go116 => {
                (l.funcname, l.cu, l.filetab, l.pctab, l.pcln) =
                    (off(2)?, off(3)?, off(4)?, off(5)?, off(6)?);
                l.functab = l.pcln;
            }
            PclnFormat::Go118 | PclnFormat::Go120 => {
                l.header_text_start = word(2)?;
                l.text_start = l.header_text_start;
                (l.funcname, l.cu, l.filetab, l.pctab, l.pcln) =
                    (off(3)?, off(4)?, off(5)?, off(6)?, off(7)?);
                l.functab = l.pcln;
            }
        }
        if nfunc == 0 {
            return Err(bad("the function table is empty"));
        }
        let ft_len = (nfunc as usize + 1)
            .checked_mul(l.functab_entry_size())
            .ok_or(bad("function table size overflows"))?;
        if l.functab.checked_add(ft_len).is_none_or(|e| e > data.len()) {
            return Err(bad("the function table runs past the data"));
        }
        Ok(l)
    }

    const fn functab_entry_size(&self) -> usize {
        if self.format.relative_entries() {
            8
        } else {
            2 * self.ptr_size as usize
        }
    }

    /// Size in bytes of the fixed part of `_func`.
    const fn func_fixed_size(&self) -> usize {
        match self.format {
            PclnFormat::Go12 => self.ptr_size as usize + 32,
            PclnFormat::Go116 => self.ptr_size as usize + 36,
            PclnFormat::Go118 => 40,
            PclnFormat::Go120 => 44,
        }
    }

    /// Byte length of the table data this layout was parsed from.
    pub const fn data_len(&self) -> usize {
        self.len
    }
}

/// Reads memory by link-time address: the inline trees of Go 1.18+ live in `go:func.*`,
/// outside the pclntab proper, and pre-1.18 funcdata are absolute pointers.
pub trait Memory {
    /// `len` bytes at `vaddr`, or `None` if not available.
    fn read(&self, vaddr: u64, len: usize) -> Option<&[u8]>;
}

/// A memory with nothing in it (inline trees are then not expanded).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMemory;

impl Memory for NoMemory {
    fn read(&self, _: u64, _: usize) -> Option<&[u8]> {
        None
    }
}

/// A view of a pclntab: its bytes, its layout, and memory for funcdata.
#[derive(Clone, Copy)]
pub struct Pclntab<'a> {
    data: &'a [u8],
    layout: PclnLayout,
    mem: &'a dyn Memory,
}

impl std::fmt::Debug for Pclntab<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pclntab")
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

/// One function of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FuncRecord {
    /// Index in the function table.
    pub index: u32,
    /// Entry address (link-time).
    pub entry: u64,
    /// End address: the next function's entry (or the end-of-text sentinel).
    pub end: u64,
    /// Offset of the `_func` record in the table data.
    off: usize,
    name_off: i32,
    pcsp: u32,
    pcfile: u32,
    pcln: u32,
    npcdata: u32,
    cu_offset: u32,
    /// Line of the `func` keyword (1.20+; 0 before).
    pub start_line: i32,
    /// `abi.FuncID` (special runtime functions; values differ by version).
    pub func_id: u8,
    /// `abi.FuncFlag` (1.18+; 0 before).
    pub flag: u8,
    nfuncdata: u8,
}

/// One step of a function's `FUNCDATA_ArgInfo` program, as `runtime.printArgs` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgItem {
    /// A word of `size` bytes at `offset` from the frame's argument pointer; `live` is false
    /// for a register argument's spill slot not yet written at the PC (printed with `?`).
    Word {
        /// Offset from `argp`.
        offset: u8,
        /// Size in bytes (1–8).
        size: u8,
        /// Known to hold the argument at the PC.
        live: bool,
    },
    /// `{`: an aggregate starts.
    StartAgg,
    /// `}`.
    EndAgg,
    /// `...`: more than the runtime prints.
    Dots,
    /// `_`: an offset too large to encode.
    TooLarge,
}

/// One frame of a symbolized PC, innermost first (as `runtime.CallersFrames` yields them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Frame {
    /// Fully qualified function name (`main.(*T).method`).
    pub function: String,
    /// Source file (`?` if unknown).
    pub file: String,
    /// Source line (0 if unknown).
    pub line: u32,
    /// True for a call inlined into the next (outer) frame.
    pub inlined: bool,
}

/// A [`Frame`] whose names borrow from the binary's tables (no allocation when they are
/// valid UTF-8, as the Go linker writes them): what the batch paths produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameRef<'a> {
    /// Fully qualified function name.
    pub function: Cow<'a, str>,
    /// Source file (`?` if unknown).
    pub file: Cow<'a, str>,
    /// Source line (0 if unknown).
    pub line: u32,
    /// True for a call inlined into the next (outer) frame.
    pub inlined: bool,
}

impl FrameRef<'_> {
    /// The owned frame.
    pub fn to_frame(&self) -> Frame {
        Frame {
            function: self.function.clone().into_owned(),
            file: self.file.clone().into_owned(),
            line: self.line,
            inlined: self.inlined,
        }
    }
}

impl<'a> Pclntab<'a> {
    /// A view over `data` (starting at the header) with a layout from [`PclnLayout::parse`].
    pub fn new(data: &'a [u8], layout: PclnLayout, mem: &'a dyn Memory) -> Result<Self> {
        if data.len() < layout.len {
            return Err(GobinError::BadPclntab(
                "the data is shorter than when the layout was parsed",
            ));
        }
        if layout.format.relative_entries() && layout.text_start == 0 {
            return Err(GobinError::NoTextStart);
        }
        Ok(Self { data, layout, mem })
    }

    /// The layout.
    pub const fn layout(&self) -> &PclnLayout {
        &self.layout
    }

    /// Number of functions.
    pub const fn len(&self) -> u32 {
        self.layout.nfunc
    }

    /// True if the table has no functions (never, for a parsed layout).
    pub const fn is_empty(&self) -> bool {
        self.layout.nfunc == 0
    }

    fn word(&self, off: usize) -> Result<u64> {
        read_word(self.data, off, self.layout.ptr_size)
            .ok_or_else(|| GobinError::BadPclntab("a pointer-sized read runs past the data"))
    }

    fn u32_at(&self, off: usize) -> Result<u32> {
        read_u32(self.data, off)
            .ok_or_else(|| GobinError::BadPclntab("a 32-bit read runs past the data"))
    }

    /// Entry address and `_func` offset of function table slot `i` (`i == nfunc` is the
    /// end-of-text sentinel, whose `_func` offset is meaningless).
    fn ftab(&self, i: u32) -> Result<(u64, usize)> {
        let l = &self.layout;
        let at = l.functab + i as usize * l.functab_entry_size();
        if l.format.relative_entries() {
            let entry = l.text_start.wrapping_add(u64::from(self.u32_at(at)?));
            Ok((entry, l.pcln + self.u32_at(at + 4)? as usize))
        } else {
            let p = usize::from(l.ptr_size);
            let entry = self.word(at)?;
            let off = usize::try_from(self.word(at + p)?)
                .map_err(|_| GobinError::BadPclntab("a function offset is too large"))?;
            Ok((entry, l.pcln.saturating_add(off)))
        }
    }

    /// Function `i` of the table.
    #[allow(
        clippy::many_single_char_names,
        reason = "b/l/p/r are local shorthands for field reads"
    )]
    pub fn func(&self, i: u32) -> Result<FuncRecord> {
        let bad = GobinError::BadPclntab;
        if i >= self.layout.nfunc {
            return Err(bad("function index out of range"));
        }
        let (entry, off) = self.ftab(i)?;
        let (end, _) = self.ftab(i + 1)?;
        let l = &self.layout;
        let p = usize::from(l.ptr_size);
        if off
            .checked_add(l.func_fixed_size())
            .is_none_or(|e| e > self.data.len())
        {
            return Err(bad("a _func record lies outside the table"));
        }
        let b = |o: usize| self.data[off + o];
        let i32_at = |o: usize| self.u32_at(off + o).map(|v| v as i32);
        let u32_at = |o: usize| self.u32_at(off + o);
        let rec = |own_entry: u64,
                   base: usize,
                   cu: u32,
                   start_line: i32,
                   tail: usize,
                   flag: u8|
         -> Result<FuncRecord> {
            if own_entry != entry {
                return Err(bad("a _func entry disagrees with the function table"));
            }
            Ok(FuncRecord {
                index: i,
                entry,
                end,
                off,
                name_off: i32_at(base)?,
                pcsp: u32_at(base + 12)?,
                pcfile: u32_at(base + 16)?,
                pcln: u32_at(base + 20)?,
                npcdata: u32_at(base + 24)?,
                cu_offset: cu,
                start_line,
                func_id: b(tail),
                flag,
                nfuncdata: b(tail + 3),
            })
        };
        let r = match l.format {
            PclnFormat::Go12 => rec(self.word(off)?, p, 0, 0, p + 28, 0)?,
            PclnFormat::Go116 => rec(self.word(off)?, p, u32_at(p + 28)?, 0, p + 32, 0)?,
            PclnFormat::Go118 => rec(
                l.text_start.wrapping_add(u64::from(u32_at(0)?)),
                4,
                u32_at(32)?,
                0,
                36,
                b(37),
            )?,
            PclnFormat::Go120 => rec(
                l.text_start.wrapping_add(u64::from(u32_at(0)?)),
                4,
                u32_at(32)?,
                i32_at(36)?,
                40,
                b(41),
            )?,
        };
        if r.end < r.entry {
            return Err(bad("function table entries are not sorted"));
        }
        Ok(r)
    }

    /// All functions in address order; a malformed record ends the iteration with its error.
    pub fn funcs(&self) -> impl Iterator<Item = Result<FuncRecord>> + '_ {
        (0..self.layout.nfunc).map(|i| self.func(i))
    }

    /// `(name, index)` of every function whose name starts with `prefix`, in table order;
    /// other names are compared in place, never copied. Records that do not parse are skipped.
    pub fn funcs_with_prefix(&self, prefix: &[u8]) -> Vec<(String, u32)> {
        // Offset of `nameOff` in `_func`: after the entry field.
        let name_field = match self.layout.format {
            PclnFormat::Go12 | PclnFormat::Go116 => usize::from(self.layout.ptr_size),
            PclnFormat::Go118 | PclnFormat::Go120 => 4,
        };
        let mut out = Vec::new();
        for i in 0..self.layout.nfunc {
            let Ok((_, off)) = self.ftab(i) else { continue };
            let Some(name_off) = off
                .checked_add(name_field)
                .and_then(|at| read_u32(self.data, at))
            else {
                continue;
            };
            let at = self.layout.funcname.saturating_add(name_off as usize);
            let matches = at
                .checked_add(prefix.len())
                .and_then(|end| self.data.get(at..end))
                .is_some_and(|b| b == prefix);
            if matches
                && self.func(i).is_ok()
                && let Ok(name) = self.name_at(name_off as i32)
            {
                out.push((name.into_owned(), i));
            }
        }
        out
    }

    /// The function containing `pc`, if any.
    pub fn find_func(&self, pc: u64) -> Result<Option<FuncRecord>> {
        let n = self.layout.nfunc;
        let (first, _) = self.ftab(0)?;
        let (end, _) = self.ftab(n)?;
        if pc < first || pc >= end {
            return Ok(None);
        }
        // Largest i with entry(i) <= pc.
        let (mut lo, mut hi) = (0u32, n);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.ftab(mid)?.0 <= pc {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        self.func(lo).map(Some)
    }

    fn cstr(&self, off: usize) -> Result<Cow<'a, str>> {
        let data: &'a [u8] = self.data;
        let rest = data
            .get(off..)
            .ok_or_else(|| GobinError::BadPclntab("a name offset points outside the table"))?;
        let rest = &rest[..rest.len().min(MAX_NAME)];
        let n = memchr::memchr(0, rest)
            .ok_or_else(|| GobinError::BadPclntab("a name is not NUL-terminated"))?;
        // Names are UTF-8 in every binary the Go linker writes: check that first, cheaply.
        Ok(std::str::from_utf8(&rest[..n])
            .map_or_else(|_| String::from_utf8_lossy(&rest[..n]), Cow::Borrowed))
    }

    /// A name by `nameOff` (funcnametab offset, or table offset for Go 1.2).
    fn name_at(&self, name_off: i32) -> Result<Cow<'a, str>> {
        let off = usize::try_from(name_off)
            .map_err(|_| GobinError::BadPclntab("a negative name offset"))?;
        self.cstr(self.layout.funcname.saturating_add(off))
    }

    /// The function's name.
    pub fn name(&self, f: &FuncRecord) -> Result<Cow<'a, str>> {
        self.name_at(f.name_off)
    }

    /// Evaluates pc-value table `table` (an offset as stored in `_func`) at `target`; -1 if
    /// the table is absent or does not cover `target` (the runtime's `pcvalue`).
    pub fn pcvalue(&self, f: &FuncRecord, table: u32, target: u64) -> Result<i32> {
        if table == 0 {
            return Ok(-1);
        }
        let start = self.layout.pctab.saturating_add(table as usize);
        let p = self.data.get(start..).ok_or_else(|| {
            GobinError::BadPclntab("a pc-value table offset points outside the table")
        })?;
        Ok(eval_pcvalue(p, f.entry, target, self.layout.min_lc)?.unwrap_or(-1))
    }

    /// Source file and line of `pc` in `f` (`("?", 0)` when unknown, like `funcline1`).
    pub fn file_line(&self, f: &FuncRecord, pc: u64) -> Result<(Cow<'a, str>, u32)> {
        let fileno = self.pcvalue(f, f.pcfile, pc)?;
        let line = self.pcvalue(f, f.pcln, pc)?;
        if fileno < 0 || line < 0 {
            return Ok((Cow::Borrowed("?"), 0));
        }
        Ok((self.file_name(f, fileno as u32)?, line as u32))
    }

    fn file_name(&self, f: &FuncRecord, fileno: u32) -> Result<Cow<'a, str>> {
        let l = &self.layout;
        if l.format == PclnFormat::Go12 {
            let count = self.u32_at(l.filetab)?;
            if fileno == 0 || fileno >= count {
                return Ok(Cow::Borrowed("?"));
            }
            let off = self.u32_at(l.filetab + 4 * fileno as usize)?;
            return self.cstr(off as usize);
        }
        let idx = u64::from(f.cu_offset) + u64::from(fileno);
        let at = usize::try_from(idx * 4)
            .ok()
            .and_then(|o| o.checked_add(l.cu));
        let at = at.ok_or_else(|| GobinError::BadPclntab("a file index is out of range"))?;
        let off = self.u32_at(at)?;
        if off == u32::MAX {
            return Ok(Cow::Borrowed("?"));
        }
        self.cstr(l.filetab.saturating_add(off as usize))
    }

    /// True when `f` has a pc-line table. Marker symbols of the linker (`go:textfipsstart`,
    /// Go 1.24+) have none (offset 0): every PC of theirs is at `?:0`, as the runtime's
    /// `pcvalue` answers -1 for offset 0. Go's `debug/gosym` (and so `go tool addr2line`)
    /// does not check for 0 and decodes the pc-value data from its first byte, a padding
    /// byte, giving made-up positions there.
    pub const fn has_line_table(f: &FuncRecord) -> bool {
        f.pcln != 0
    }

    /// Stack-frame size at `pc` (the `pcsp` table; 0 at the entry).
    pub fn sp_delta(&self, f: &FuncRecord, pc: u64) -> Result<i32> {
        self.pcvalue(f, f.pcsp, pc)
    }

    /// The offset of pc-data table `i` (0 = absent).
    pub fn pcdata_table(&self, f: &FuncRecord, i: u32) -> Result<u32> {
        if i >= f.npcdata {
            return Ok(0);
        }
        self.u32_at(f.off + self.layout.func_fixed_size() + 4 * i as usize)
    }

    /// Link-time address of funcdata `i`, if present.
    pub fn funcdata(&self, f: &FuncRecord, i: u32) -> Result<Option<u64>> {
        if i >= u32::from(f.nfuncdata) {
            return Ok(None);
        }
        let l = &self.layout;
        let start = f.off + l.func_fixed_size() + 4 * f.npcdata as usize;
        if l.format.relative_entries() {
            let v = self.u32_at(start + 4 * i as usize)?;
            return Ok(match (v, l.gofunc) {
                (u32::MAX, _) | (_, None) => None,
                (v, Some(base)) => Some(base.wrapping_add(u64::from(v))),
            });
        }
        let mut start = start;
        if l.ptr_size == 8 && (l.vaddr.wrapping_add(start as u64)) & 4 != 0 {
            start += 4;
        }
        let v = self.word(start + usize::from(l.ptr_size) * i as usize)?;
        Ok((v != 0).then_some(v))
    }

    /// The argument layout of `f` as `runtime.printArgs` walks it at `pc` (liveness of
    /// register spill slots depends on the PC): `None` when `f` has no `FUNCDATA_ArgInfo`
    /// (assembly; the runtime then prints `()`).
    pub fn arg_items(&self, f: &FuncRecord, pc: u64) -> Result<Option<Vec<ArgItem>>> {
        const END_SEQ: u8 = 0xff;
        const START_AGG: u8 = 0xfe;
        const END_AGG: u8 = 0xfd;
        const DOTS: u8 = 0xfc;
        const TOO_LARGE: u8 = 0xfb;
        let bad = GobinError::BadPclntab;
        let Some(info) = self.funcdata(f, FUNCDATA_ARG_INFO)? else {
            return Ok(None);
        };
        let byte = |at: u64| -> Result<u8> {
            self.mem
                .read(at, 1)
                .map(|b| b[0])
                .ok_or_else(|| bad("argument info is outside the mapped data"))
        };
        let live_info = self.funcdata(f, FUNCDATA_ARG_LIVE_INFO)?;
        let live_idx = match live_info {
            Some(_) => self.pcvalue(f, self.pcdata_table(f, PCDATA_ARG_LIVE_INDEX)?, pc)?,
            None => -1,
        };
        let start_offset = match live_info {
            Some(l) => byte(l)?,
            None => 0xff,
        };
        let mut items = Vec::new();
        let (mut i, mut slot) = (0u64, 0u8);
        loop {
            if i as usize >= TRACE_ARGS_MAX_LEN {
                return Err(bad("argument info has no end"));
            }
            let op = byte(info.wrapping_add(i))?;
            i += 1;
            items.push(match op {
                END_SEQ => return Ok(Some(items)),
                START_AGG => ArgItem::StartAgg,
                END_AGG => ArgItem::EndAgg,
                DOTS => ArgItem::Dots,
                TOO_LARGE => ArgItem::TooLarge,
                offset => {
                    let size = byte(info.wrapping_add(i))?;
                    i += 1;
                    let live = match live_info {
                        Some(l) if live_idx > 0 && offset >= start_offset => {
                            let at = l
                                .wrapping_add(live_idx as u64)
                                .wrapping_add(u64::from(slot / 8));
                            byte(at)? & (1 << (slot % 8)) != 0
                        }
                        _ => true,
                    };
                    if offset >= start_offset {
                        slot = slot.wrapping_add(1);
                    }
                    ArgItem::Word { offset, size, live }
                }
            });
        }
    }

    /// The PC of `f` itself at `pc`: past every inlined call there (`parentPc` of the
    /// outermost one), as the runtime's traceback before Go 1.21 ends up with.
    pub fn outermost_pc(&self, f: &FuncRecord, pc: u64) -> Result<u64> {
        let Some(tree) = self.funcdata(f, FUNCDATA_INL_TREE)? else {
            return Ok(pc);
        };
        let table = self.pcdata_table(f, PCDATA_INL_TREE_INDEX)?;
        let mut pc = pc;
        for _ in 0..MAX_INLINE_DEPTH {
            let ix = self.pcvalue(f, table, pc)?;
            let Ok(ix) = u32::try_from(ix) else {
                return Ok(pc);
            };
            let call = self.inlined_call(tree, ix)?;
            let parent = u64::try_from(call.parent_pc)
                .map_err(|_| GobinError::BadPclntab("a negative inline parent pc"))?;
            pc = f.entry.wrapping_add(parent);
        }
        Err(GobinError::BadPclntab("inline tree deeper than the limit"))
    }

    /// Expands `pc` into its frames, innermost first, exactly as `runtime.CallersFrames`
    /// does: each inlined call is named from the inline tree, every frame's `file:line` comes
    /// from the pc-line tables at that frame's pc, and the next frame's pc is the inlined
    /// call's `parentPc`. Errors if no function contains `pc`.
    pub fn frames(&self, pc: u64) -> Result<Vec<Frame>> {
        let f = self.find_func(pc)?.ok_or(GobinError::NoFunctionForPc(pc))?;
        self.frames_in(&f, pc)
    }

    /// [`Self::frames`] for a function already looked up.
    pub fn frames_in(&self, f: &FuncRecord, pc: u64) -> Result<Vec<Frame>> {
        let mut frames = Vec::new();
        self.expand(f, None, pc, &mut frames)?;
        Ok(frames.iter().map(FrameRef::to_frame).collect())
    }

    /// `f`'s file, line and inline-index tables decoded once, for [`Self::frames_cached`]
    /// (worth it from about two PCs in the same function). Never fails: a table that cannot
    /// be read fails the lookups that need it, as [`Self::frames_in`] would.
    pub fn func_tables(&self, f: &FuncRecord) -> FuncTables<'a> {
        let mut t = FuncTables::default();
        self.decode_func_tables(f, &mut t);
        t
    }

    /// [`Self::func_tables`] into `t`, reusing its allocations.
    pub fn decode_func_tables(&self, f: &FuncRecord, t: &mut FuncTables<'a>) {
        t.clear_names();
        let decode = |table: u32, runs: &mut PcRuns| {
            if table == 0 {
                runs.set_absent();
                return;
            }
            match self
                .data
                .get(self.layout.pctab.saturating_add(table as usize)..)
            {
                Some(p) => runs.decode(p, f.entry, f.end, self.layout.min_lc),
                None => runs.set_unreadable("a pc-value table offset points outside the table"),
            }
        };
        decode(f.pcfile, &mut t.file);
        decode(f.pcln, &mut t.line);
        // When either read fails, `expand` repeats it to report the error.
        let tree = self.funcdata(f, FUNCDATA_INL_TREE);
        let index = self.pcdata_table(f, PCDATA_INL_TREE_INDEX);
        (t.tree_read, t.tree) = match (tree, &index) {
            (Ok(tree), Ok(_)) => (true, tree),
            _ => (false, None),
        };
        match (t.tree, index) {
            (Some(_), Ok(index)) => decode(index, &mut t.inline_index),
            _ => t.inline_index.set_absent(),
        }
    }

    /// [`Self::frames_in`] with `f`'s tables from [`Self::func_tables`]: the same frames, found
    /// by binary search instead of a walk of each table, appended to `out` (which a caller
    /// reuses across PCs). On error `out` may hold some frames of `pc`.
    pub fn frames_cached(
        &self,
        f: &FuncRecord,
        tables: &mut FuncTables<'a>,
        pc: u64,
        out: &mut Vec<FrameRef<'a>>,
    ) -> Result<()> {
        self.expand(f, Some(tables), pc, out)
    }

    /// Value of one of `f`'s tables at `pc`, from `tables` when given.
    fn table_value(
        &self,
        f: &FuncRecord,
        tables: Option<&FuncTables>,
        which: Table,
        pc: u64,
    ) -> Result<i32> {
        match (tables, which) {
            (Some(t), Table::File) => t.file.get(pc),
            (Some(t), Table::Line) => t.line.get(pc),
            (Some(t), Table::InlineIndex) => t.inline_index.get(pc),
            (None, Table::File) => self.pcvalue(f, f.pcfile, pc),
            (None, Table::Line) => self.pcvalue(f, f.pcln, pc),
            (None, Table::InlineIndex) => {
                let table = self.pcdata_table(f, PCDATA_INL_TREE_INDEX)?;
                self.pcvalue(f, table, pc)
            }
        }
    }

    fn expand(
        &self,
        f: &FuncRecord,
        mut tables: Option<&mut FuncTables<'a>>,
        mut pc: u64,
        frames: &mut Vec<FrameRef<'a>>,
    ) -> Result<()> {
        let tree = if let Some(t) = tables.as_deref().filter(|t| t.tree_read) {
            t.tree
        } else {
            let tree = self.funcdata(f, FUNCDATA_INL_TREE)?;
            // Fails, as it always has, when the index table's offset is unreadable.
            self.pcdata_table(f, PCDATA_INL_TREE_INDEX)?;
            tree
        };
        for _ in 0..MAX_INLINE_DEPTH {
            let fileno = self.table_value(f, tables.as_deref(), Table::File, pc)?;
            let line = self.table_value(f, tables.as_deref(), Table::Line, pc)?;
            let (file, line) = if fileno < 0 || line < 0 {
                (Cow::Borrowed("?"), 0)
            } else {
                let get = || self.file_name(f, fileno as u32);
                let file = match tables.as_deref_mut() {
                    Some(t) => FuncTables::cached(&mut t.files, fileno, get)?,
                    None => get()?,
                };
                (file, line as u32)
            };
            let ix = match tree {
                Some(_) => self.table_value(f, tables.as_deref(), Table::InlineIndex, pc)?,
                None => -1,
            };
            let Some(tree) = tree.filter(|_| ix >= 0) else {
                let get = || self.name(f);
                let function = match tables.as_deref_mut() {
                    Some(t) => FuncTables::cached(&mut t.names, f.name_off, get)?,
                    None => get()?,
                };
                frames.push(FrameRef {
                    function,
                    file,
                    line,
                    inlined: false,
                });
                return Ok(());
            };
            let call = self.inlined_call(tree, ix as u32)?;
            let get = || self.name_at(call.name_off);
            let function = match tables.as_deref_mut() {
                Some(t) => FuncTables::cached(&mut t.names, call.name_off, get)?,
                None => get()?,
            };
            frames.push(FrameRef {
                function,
                file,
                line,
                inlined: true,
            });
            let parent = u64::try_from(call.parent_pc)
                .map_err(|_| GobinError::BadPclntab("a negative inline parentPc"))?;
            pc = f.entry.wrapping_add(parent);
            if pc >= f.end {
                return Err(GobinError::BadPclntab(
                    "an inline parentPc lies outside its function",
                ));
            }
        }
        Err(GobinError::BadPclntab(
            "the inline tree is deeper than 1024 frames (a cycle?)",
        ))
    }

    /// Checks every inline-tree entry `f`'s index table refers to: the name offset starts a
    /// name (preceded by a NUL) and `parentPc` lies inside `f`. Returns how many entries were
    /// checked (0 if `f` has no tree); `Ok(false)`-like failures are errors. Used to recognise
    /// the right funcdata base when the binary's version is unknown.
    pub fn check_inline_tree(&self, f: &FuncRecord) -> Result<usize> {
        let bad = GobinError::BadPclntab;
        let Some(tree) = self.funcdata(f, FUNCDATA_INL_TREE)? else {
            return Ok(0);
        };
        let table = self.pcdata_table(f, PCDATA_INL_TREE_INDEX)?;
        if table == 0 {
            return Ok(0);
        }
        let mut p = self
            .data
            .get(self.layout.pctab.saturating_add(table as usize)..)
            .ok_or(bad("a pc-value table offset points outside the table"))?;
        let (mut val, mut first, mut checked) = (-1i32, true, 0);
        while let Some((uv, n)) = read_varint32(p) {
            if uv == 0 && !first {
                return Ok(checked);
            }
            first = false;
            val = val.wrapping_add((uv >> 1) as i32 ^ -((uv & 1) as i32));
            p = &p[n..];
            let (_, n) = read_varint32(p).ok_or(bad("a pc-value table runs past the data"))?;
            p = &p[n..];
            if val < 0 {
                continue;
            }
            let call = self.inlined_call(tree, val as u32)?;
            let name =
                usize::try_from(call.name_off).map_err(|_| bad("a negative inline name offset"))?;
            let at = self.layout.funcname.saturating_add(name);
            let starts_name = name == 0 || self.data.get(at - 1) == Some(&0);
            let parent_ok = u64::try_from(call.parent_pc).is_ok_and(|pc| pc < f.end - f.entry);
            if !starts_name || !parent_ok || self.name_at(call.name_off)?.is_empty() {
                return Err(bad("an inline tree entry does not decode"));
            }
            checked += 1;
        }
        Err(bad("a pc-value table runs past the data"))
    }

    fn inlined_call(&self, tree: u64, ix: u32) -> Result<InlinedCall> {
        let new = self.layout.format == PclnFormat::Go120;
        let size = if new { 16 } else { 20 };
        let at = tree.wrapping_add(u64::from(ix) * size);
        let b = self.mem.read(at, size as usize).ok_or_else(|| {
            GobinError::BadPclntab("an inline tree entry is outside the mapped data")
        })?;
        let i32_at = |o: usize| i32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        Ok(if new {
            InlinedCall {
                name_off: i32_at(4),
                parent_pc: i32_at(8),
            }
        } else {
            InlinedCall {
                name_off: i32_at(12),
                parent_pc: i32_at(16),
            }
        })
    }
}

/// One of the pc-value tables a frame is built from.
#[derive(Clone, Copy)]
enum Table {
    File,
    Line,
    InlineIndex,
}

struct InlinedCall {
    name_off: i32,
    parent_pc: i32,
}

/// Reads a Go pc-value varint (`runtime.readvarint`: 7 bits a byte, at most 5 bytes → u32).
pub fn read_varint32(p: &[u8]) -> Option<(u32, usize)> {
    let mut v = 0u32;
    let mut shift = 0;
    for (i, &b) in p.iter().enumerate().take(5) {
        v |= u32::from(b & 0x7f).wrapping_shl(shift);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
        shift += 7;
    }
    None
}

/// Evaluates a pc-value table at `target` (`runtime.pcvalue` / `step`): a sequence of
/// (zig-zag value delta, pc delta × quantum) varint pairs starting from value -1 at `entry`;
/// the value of the first range whose end passes `target`. `Ok(None)` if the table ends
/// first; errors if it runs past `p`.
pub fn eval_pcvalue(mut p: &[u8], entry: u64, target: u64, quantum: u8) -> Result<Option<i32>> {
    let trunc = || GobinError::BadPclntab("a pc-value table runs past the data");
    let mut pc = entry;
    let mut val: i32 = -1;
    loop {
        let first = pc == entry;
        let (uv, n) = read_varint32(p).ok_or_else(trunc)?;
        if uv == 0 && !first {
            return Ok(None);
        }
        p = &p[n..];
        val = val.wrapping_add((uv >> 1) as i32 ^ -((uv & 1) as i32));
        let (pcd, n) = read_varint32(p).ok_or_else(trunc)?;
        p = &p[n..];
        pc = pc.wrapping_add(u64::from(pcd) * u64::from(quantum));
        if target < pc {
            return Ok(Some(val));
        }
    }
}

fn read_u32(d: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        d.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn read_word(d: &[u8], off: usize, ptr_size: u8) -> Option<u64> {
    match ptr_size {
        8 => Some(u64::from_le_bytes(
            d.get(off..off.checked_add(8)?)?.try_into().ok()?,
        )),
        _ => read_u32(d, off).map(u64::from),
    }
}

#[cfg(test)]
#[path = "pclntab_tests.rs"]
mod tests;

/// A function name as the runtime prints it since Go 1.21 (`funcNameForPrint`): the type
/// arguments of a generic instantiation become `[...]` (`main.f[go.shape.int]` → `main.f[...]`).
pub fn name_for_print(name: &str) -> String {
    let Some(i) = name.find('[') else {
        return name.to_owned();
    };
    match name.rfind(']') {
        Some(j) if j > i => format!("{}[...]{}", &name[..i], &name[j + 1..]),
        _ => name.to_owned(),
    }
}
