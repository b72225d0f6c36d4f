//! The report behind `gtrace inspect`: what gtrace knows about a binary before attaching —
//! version and build info, where symbols come from (DWARF, `.symtab`, or the pclntab alone),
//! the pclntab and moduledata it found, data symbols, and the probe site chosen in each probed
//! runtime function with the decoded prologue. Serializable (JSON) and printable as text;
//! also the line format of `gtrace symbolize`.

use std::fmt::Write as _;

use serde::Serialize;

use super::{
    GoVersion,
    buildinfo::BuildInfo,
    layout::{RuntimeLayout, Source},
    moduledata::ModuleData,
    pclntab::{FrameRef, PclnFormat},
    probesite::{self, ProbeSite},
    symbols::{GoBinary, SymbolSources},
    waitreason::{TableSource, WaitReasons},
};

/// Data symbols gtrace reads when a `.symtab` has them.
pub const DATA_SYMBOLS: &[&str] = &[
    "runtime.allgs",
    "runtime.allglen",
    "runtime.allgptr",
    "runtime.waitReasonStrings",
    "runtime.buildVersion",
];

/// Instructions of each probed function's prologue shown in the report.
const PROLOGUE_SHOWN: usize = 5;

/// The pclntab as found.
#[derive(Debug, Clone, Serialize)]
pub struct PclntabSummary {
    /// Format (by magic).
    pub format: PclnFormat,
    /// Number of functions.
    pub functions: u32,
    /// Link-time address of the header.
    pub vaddr: u64,
    /// Base of function entry offsets (1.18+), 0 for older formats.
    pub text_start: u64,
}

/// A data symbol lookup.
#[derive(Debug, Clone, Serialize)]
pub struct DataSymbol {
    /// Symbol name.
    pub name: String,
    /// Address and size, if the `.symtab` has it.
    pub found: Option<(u64, u64)>,
}

/// The probe site of one function, or why there is none.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeEntry {
    /// Function name.
    pub function: String,
    /// The chosen site.
    pub site: Option<ProbeSite>,
    /// The first instructions, `(vaddr, text)`.
    pub prologue: Vec<(u64, String)>,
    /// Why no site (function absent in this version, decode error).
    pub error: Option<String>,
}

/// Everything `gtrace inspect` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Path the binary was opened from.
    pub path: String,
    /// Go version string as stored.
    pub go_version: Option<String>,
    /// Build info.
    pub build_info: Option<BuildInfo>,
    /// `ET_DYN` (position independent).
    pub pie: bool,
    /// `.note.go.buildid`.
    pub go_build_id: Option<String>,
    /// `.note.gnu.build-id` (hex).
    pub gnu_build_id: Option<String>,
    /// Symbol sources.
    pub symbols: SymbolSources,
    /// The pclntab.
    pub pclntab: PclntabSummary,
    /// The module descriptor, when found.
    pub moduledata: Option<ModuleData>,
    /// Data symbols.
    pub data_symbols: Vec<DataSymbol>,
    /// Probe sites of [`probesite::PROBED_FUNCTIONS`] (and any extra asked for).
    pub probe_sites: Vec<ProbeEntry>,
    /// The runtime struct layouts gtrace would use, or why there are none.
    pub layout: Result<LayoutReport, String>,
    /// The wait-reason strings gtrace would use (index = the runtime's `waitReason`), or why
    /// there are none.
    pub wait_reasons: Result<WaitReasonReport, String>,
}

/// The layouts in use: where they came from and every struct's offsets.
#[derive(Debug, Clone, Serialize)]
pub struct LayoutReport {
    /// `DWARF`, `DWARF + table (…)` or `table goX.Y.Z`.
    pub source: String,
    /// Struct name → size and field offsets (`None` = absent in this version).
    pub structs: Vec<StructReport>,
}

/// One runtime struct's layout.
#[derive(Debug, Clone, Serialize)]
pub struct StructReport {
    /// Go name, e.g. `runtime.g`.
    pub name: &'static str,
    /// Size in bytes.
    pub size: u32,
    /// Field → byte offset.
    pub fields: Vec<(&'static str, Option<u32>)>,
}

/// The wait-reason table in use.
#[derive(Debug, Clone, Serialize)]
pub struct WaitReasonReport {
    /// `binary` (read through the symbol table) or `table goX.Y.Z`.
    pub source: String,
    /// Index = `waitReason` value.
    pub strings: Vec<String>,
}

impl LayoutReport {
    fn new(l: &RuntimeLayout) -> Self {
        let source = match &l.source {
            Source::Dwarf { from_table } if from_table.is_empty() => "DWARF".to_owned(),
            Source::Dwarf { from_table } => format!("DWARF + table ({})", from_table.join(", ")),
            Source::Table { version } => format!("table {version}"),
        };
        macro_rules! structs {
            ($($go:literal => $f:ident),* $(,)?) => {
                vec![$(StructReport { name: $go, size: l.$f.size, fields: l.$f.fields() }),*]
            };
        }
        let structs = structs![
            "runtime.g" => g, "runtime.gobuf" => gobuf, "runtime.m" => m, "runtime.p" => p,
            "runtime._panic" => panic, "runtime._defer" => defer, "runtime.sudog" => sudog,
            "runtime.hchan" => hchan, "runtime.waitq" => waitq,
            "runtime.moduledata" => moduledata, "abi.Type" => type_, "abi.ITab" => itab,
            "runtime.eface" => eface, "runtime.iface" => iface,
        ];
        Self { source, structs }
    }
}

impl Report {
    /// Builds the report; `extra` functions get probe sites too; `assume` overrides the Go
    /// version for the layout and wait-reason tables (`--assume-go-version`).
    pub fn new(bin: &GoBinary, extra: &[String], assume: Option<&GoVersion>) -> Self {
        let tab = bin.pclntab();
        let l = tab.layout();
        let names = probesite::PROBED_FUNCTIONS
            .iter()
            .map(|s| (*s).to_owned())
            .chain(extra.iter().cloned());
        let probe_sites = names
            .map(|name| match bin.func_by_name(&name) {
                Err(e) => ProbeEntry {
                    function: name,
                    site: None,
                    prologue: Vec::new(),
                    error: Some(e.to_string()),
                },
                Ok(f) => {
                    let prologue =
                        probesite::disassemble(bin, &f, PROLOGUE_SHOWN).unwrap_or_default();
                    match probesite::probe_site_of(bin, &f) {
                        Ok(site) => ProbeEntry {
                            function: name,
                            site: Some(site),
                            prologue,
                            error: None,
                        },
                        Err(e) => ProbeEntry {
                            function: name,
                            site: None,
                            prologue,
                            error: Some(e.to_string()),
                        },
                    }
                }
            })
            .collect();
        Self {
            path: bin.image().path().display().to_string(),
            go_version: bin.build_info().map(|b| b.go_version.clone()),
            build_info: bin.build_info().cloned(),
            pie: bin.image().is_pie(),
            go_build_id: bin.image().go_build_id().map(str::to_owned),
            gnu_build_id: bin.image().gnu_build_id().map(str::to_owned),
            symbols: *bin.symbol_sources(),
            pclntab: PclntabSummary {
                format: l.format,
                functions: l.nfunc,
                vaddr: l.vaddr,
                text_start: if l.format.relative_entries() {
                    l.text_start
                } else {
                    0
                },
            },
            moduledata: bin.moduledata().copied(),
            data_symbols: DATA_SYMBOLS
                .iter()
                .map(|n| DataSymbol {
                    name: (*n).to_owned(),
                    found: bin.data_symbol(n),
                })
                .collect(),
            probe_sites,
            layout: RuntimeLayout::for_go_binary(bin, assume)
                .map(|l| LayoutReport::new(&l))
                .map_err(|e| e.to_string()),
            wait_reasons: match WaitReasons::for_go_binary(bin, assume) {
                Ok(Some(w)) => Ok(WaitReasonReport {
                    source: match &w.source {
                        TableSource::Binary => "binary".to_owned(),
                        TableSource::Table { version } => format!("table {version}"),
                    },
                    strings: w.strings.iter().map(ToString::to_string).collect(),
                }),
                Ok(None) => {
                    Err("stripped binary of unknown Go version: use --assume-go-version".to_owned())
                }
                Err(e) => Err(e.to_string()),
            },
        }
    }

    /// Human-readable text.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "binary:      {}{}",
            self.path,
            if self.pie { " (PIE)" } else { "" }
        );
        let _ = writeln!(
            s,
            "go version:  {}",
            self.go_version.as_deref().unwrap_or("unknown")
        );
        if let Some(b) = &self.build_info {
            let _ = writeln!(s, "main:        {}", b.path.as_deref().unwrap_or("?"));
            for (k, v) in &b.settings {
                let _ = writeln!(s, "  build      {k}={v}");
            }
        }
        for (k, v) in [
            ("go build id", &self.go_build_id),
            ("gnu build id", &self.gnu_build_id),
        ] {
            if let Some(v) = v {
                let _ = writeln!(s, "{k:<12} {v}");
            }
        }
        let y = |b: bool| if b { "yes" } else { "no" };
        let sy = &self.symbols;
        let _ = writeln!(
            s,
            "symbols:     DWARF {}, .symtab {}, pclntab ({}, text start from {}), inline trees {}",
            y(sy.dwarf),
            y(sy.symtab),
            sy.pclntab,
            sy.text_start,
            y(sy.inline_trees)
        );
        let p = &self.pclntab;
        let _ = writeln!(
            s,
            "pclntab:     {:?} at {:#x}, {} functions, text {:#x}",
            p.format, p.vaddr, p.functions, p.text_start
        );
        if let Some(m) = &self.moduledata {
            let _ = writeln!(
                s,
                "moduledata:  {:#x} (text {:#x}-{:#x})",
                m.addr, m.text, m.etext
            );
        }
        for d in &self.data_symbols {
            let at = d.found.map_or_else(
                || "absent".to_owned(),
                |(a, n)| format!("{a:#x} ({n} bytes)"),
            );
            let _ = writeln!(s, "  symbol     {:<28} {at}", d.name);
        }
        let _ = writeln!(s, "probe sites:");
        for e in &self.probe_sites {
            match (&e.site, &e.error) {
                (Some(site), _) => {
                    let _ = writeln!(
                        s,
                        "  {:<32} {:#x} (+{}, file offset {:#x}) {:<14} {:?}, {}",
                        e.function,
                        site.vaddr,
                        site.vaddr - site.entry,
                        site.offset,
                        site.instruction,
                        site.reason,
                        if site.emulated {
                            "emulated"
                        } else {
                            "single-stepped"
                        }
                    );
                }
                (None, err) => {
                    let _ = writeln!(
                        s,
                        "  {:<32} none: {}",
                        e.function,
                        err.as_deref().unwrap_or("?")
                    );
                }
            }
        }
        match &self.layout {
            Ok(l) => {
                let _ = writeln!(s, "layouts:     from {}", l.source);
                for st in &l.structs {
                    let fields: Vec<String> = st
                        .fields
                        .iter()
                        .map(|(f, o)| o.map_or_else(|| format!("{f}=-"), |o| format!("{f}={o}")))
                        .collect();
                    let _ = writeln!(
                        s,
                        "  {:<20} size {:<5} {}",
                        st.name,
                        st.size,
                        fields.join(" ")
                    );
                }
            }
            Err(e) => {
                let _ = writeln!(s, "layouts:     none: {e}");
            }
        }
        match &self.wait_reasons {
            Ok(w) => {
                let _ = writeln!(s, "wait reasons: from {}", w.source);
                for (i, r) in w.strings.iter().enumerate() {
                    let _ = writeln!(s, "  {i:>3} {r:?}");
                }
            }
            Err(e) => {
                let _ = writeln!(s, "wait reasons: none: {e}");
            }
        }
        s
    }
}

/// `gtrace symbolize` output for one PC, appended to `out`: one line per frame, innermost
/// first, `0xPC  function  file:line` with ` (inlined)` on inlined frames. Written piece by
/// piece (the PC and line digits by hand) rather than through `format!`: it is the hot loop
/// of symbolizing many PCs.
pub fn write_frames(out: &mut Vec<u8>, pc: u64, frames: &[FrameRef<'_>]) {
    let mut hex = [0u8; 18];
    let mut i = hex.len();
    let mut v = pc;
    loop {
        i -= 1;
        hex[i] = b"0123456789abcdef"[(v & 0xf) as usize];
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    i -= 2;
    hex[i..i + 2].copy_from_slice(b"0x");
    let hex = &hex[i..];
    for f in frames {
        out.extend_from_slice(hex);
        out.push(b'\t');
        out.extend_from_slice(f.function.as_bytes());
        out.push(b'\t');
        out.extend_from_slice(f.file.as_bytes());
        out.push(b':');
        let mut digits = [0u8; 10];
        let mut d = digits.len();
        let mut line = f.line;
        loop {
            d -= 1;
            digits[d] = b'0' + (line % 10) as u8;
            line /= 10;
            if line == 0 {
                break;
            }
        }
        out.extend_from_slice(&digits[d..]);
        out.extend_from_slice(if f.inlined { b"\t(inlined)\n" } else { b"\n" });
    }
}
