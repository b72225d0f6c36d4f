//! Byte offsets of the Go runtime structures gtrace reads (`g`, `m`, `p`, `gobuf`, `_panic`,
//! `_defer`, `sudog`, `hchan`, `moduledata`, `abi.Type`, …), for every supported Go version.
//!
//! Why typed and generated: the fields move between neighbouring releases (`g.goid` is at 152
//! in most versions but 160 in 1.23–1.24; `m.curg` moves from 192 to 184 in 1.25), so nothing
//! here is hand-written. A layout comes from the binary's own DWARF when it has some
//! ([`super::dwarf`]), otherwise from `gobin/layout_table.rs`, which `cargo xtask gen-offsets`
//! generates from probe programs built with each installed toolchain, through the same DWARF
//! code. Every layout goes through [`RuntimeLayout::check`] before use, so a wrong table fails
//! loudly at attach time instead of producing garbage.
//!
//! Related encodings, for readers of these structures (from the Go sources named):
//! - `eface` is `{_type *_type, data unsafe.Pointer}`, `iface` is `{tab *itab, data}`; the
//!   itab's type pointer is at [`ItabLayout::type_`] (runtime/runtime2.go; `internal/abi.ITab`
//!   in internal/abi/iface.go since 1.23, as the probes' DWARF shows).
//! - Type names (`abi.Type.Str` is a `nameOff` into the module's `types` section) use the
//!   `abi.Name` encoding: one flag byte, then the name length as a uvarint (since Go 1.17; a
//!   big-endian `uint16` before), then the bytes (internal/abi/type.go `Name.ReadVarint`,
//!   runtime/type.go in 1.19–1.20).

use std::fmt::Write as _;

use super::version::GoVersion;

/// Where a [`RuntimeLayout`] came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Read from the binary's DWARF. `from_table` names the structures DWARF did not
    /// describe (the linker only emits types some function uses), taken from the table instead.
    Dwarf {
        /// Go names of structures filled in from the generated table.
        from_table: Vec<&'static str>,
    },
    /// Taken from the generated table; `version` is the exact toolchain it was generated with.
    Table {
        /// The toolchain the table entry was generated from.
        version: GoVersion,
    },
}

/// Raised when a layout cannot be found, read or trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// The generated table has no entry for this Go minor version.
    #[error(
        "no runtime layout table for {version} (supported: {supported}); if the binary's Go \
         version is mislabelled, pass --assume-go-version with a supported version"
    )]
    UnsupportedVersion {
        /// The version asked for.
        version: GoVersion,
        /// The supported minors, e.g. "go1.19, go1.21, go1.22".
        supported: String,
    },
    /// DWARF has none of the Go names of a structure and there is no table to fall back on.
    #[error(
        "the binary's DWARF does not describe {go_name}, and no table entry covers its version"
    )]
    MissingStruct {
        /// Go name of the structure, e.g. `runtime.g`.
        go_name: &'static str,
    },
    /// DWARF (or a stale table) describes the structure but not a field every supported
    /// version has.
    #[error("{go_name} is described without its field {field} (DWARF, or a stale generated table)")]
    MissingField {
        /// Go name of the structure.
        go_name: &'static str,
        /// The field path, e.g. `stack.lo`.
        field: &'static str,
    },
    /// Neither DWARF nor a known Go version: nothing says which layout applies.
    #[error(
        "the binary has no DWARF and its Go version is unknown (no build info); pass \
         --assume-go-version with the version it was built with (supported: {supported})"
    )]
    UnknownVersion {
        /// The supported minors.
        supported: String,
    },
    /// The ELF file could not be parsed.
    #[error("cannot parse the binary as ELF: {0}")]
    Object(object::Error),
    /// The binary has DWARF but it could not be read.
    #[error("cannot read the runtime layouts from DWARF: {0}")]
    Dwarf(#[from] super::dwarf::DwarfError),
    /// A consistency check failed: the layout does not fit the Go runtime it claims to be.
    #[error("runtime layout fails a sanity check: {0}")]
    Insane(String),
}

/// Something that knows struct sizes and field offsets by Go name: the DWARF reader, or a test.
pub trait StructSource {
    /// Size in bytes of the struct called `go_name` (e.g. `runtime.g`), if described.
    fn struct_size(&self, go_name: &str) -> Option<u32>;
    /// Byte offset of the (possibly nested, dot-separated) field `path` in `go_name`.
    fn field_offset(&self, go_name: &str, path: &str) -> Option<u32>;
}

mod known_changes;
mod structs;
mod table;
#[cfg(test)]
mod tests;

pub use known_changes::{KnownChange, exception_last, unseen_change};

pub use structs::*;
pub use table::{OwnedStructData, PatchException, Recorder, StructData, TableEntry, TableStructs};

/// Every runtime structure gtrace reads, for one Go version (linux/amd64: pointers are 8 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeLayout {
    /// DWARF or table.
    pub source: Source,
    /// `runtime.g`.
    pub g: GLayout,
    /// `runtime.gobuf` (embedded in `g.sched` and `m`).
    pub gobuf: GobufLayout,
    /// `runtime.m`.
    pub m: MLayout,
    /// `runtime.p`.
    pub p: PLayout,
    /// `runtime._panic`.
    pub panic: PanicLayout,
    /// `runtime._defer`.
    pub defer: DeferLayout,
    /// `runtime.sudog`.
    pub sudog: SudogLayout,
    /// `runtime.hchan`.
    pub hchan: HchanLayout,
    /// `runtime.waitq`.
    pub waitq: WaitqLayout,
    /// `runtime.moduledata`.
    pub moduledata: ModuledataLayout,
    /// `abi.Type` / `runtime._type`.
    pub type_: TypeLayout,
    /// `abi.ITab` / `runtime.itab`.
    pub itab: ItabLayout,
    /// `runtime.eface`.
    pub eface: EfaceLayout,
    /// `runtime.iface`.
    pub iface: IfaceLayout,
}

/// Calls `$m!(field, Type)` for every structure of [`RuntimeLayout`], in declaration order.
macro_rules! for_each_struct {
    ($m:ident) => {
        $m!(g, GLayout);
        $m!(gobuf, GobufLayout);
        $m!(m, MLayout);
        $m!(p, PLayout);
        $m!(panic, PanicLayout);
        $m!(defer, DeferLayout);
        $m!(sudog, SudogLayout);
        $m!(hchan, HchanLayout);
        $m!(waitq, WaitqLayout);
        $m!(moduledata, ModuledataLayout);
        $m!(type_, TypeLayout);
        $m!(itab, ItabLayout);
        $m!(eface, EfaceLayout);
        $m!(iface, IfaceLayout);
    };
}

impl RuntimeLayout {
    /// The generated-table layout for `version`: by major.minor, unless a known patch exception
    /// covers the exact release.
    pub fn for_version(version: &GoVersion) -> Result<Self, LayoutError> {
        let key = (version.major, version.minor);
        let (structs, taken_from) = if let Some(exc) =
            super::layout_exceptions::PATCH_EXCEPTIONS.iter().find(|e| {
                (e.first.major, e.first.minor) == key
                    && e.first.patch <= version.patch
                    && version.patch <= e.last.patch
            }) {
            (exc.structs, &exc.verified)
        } else {
            let entry = super::layout_table::TABLE
                .iter()
                .find(|e| (e.taken_from.major, e.taken_from.minor) == key)
                .ok_or_else(|| LayoutError::UnsupportedVersion {
                    version: version.clone(),
                    supported: supported_versions(),
                })?;
            (entry.structs, &entry.taken_from)
        };
        let mut layout = Self::from_source(&TableStructs(structs), None)?;
        layout.source = Source::Table {
            version: taken_from.clone(),
        };
        Ok(layout)
    }

    /// The layout for a binary: from its DWARF when it has some (structures DWARF lacks come
    /// from the table for `version`), else from the table for `version`; checked with
    /// [`Self::check`] either way.
    pub fn for_binary(file: &object::File<'_>, version: &GoVersion) -> Result<Self, LayoutError> {
        let layout = match super::dwarf::DwarfStructs::runtime_from_object(file) {
            Ok(structs) => {
                let layout = Self::from_source(&structs, Some(version))?;
                warn_if_table_differs(&layout, version);
                layout
            }
            Err(super::dwarf::DwarfError::NoDwarf) => Self::for_stripped(version)?,
            Err(e) => return Err(e.into()),
        };
        layout.check()?;
        Ok(layout)
    }

    /// [`Self::for_version`] for a binary without DWARF, with a warning when a documented
    /// layout change came in after the table entry's release ([`unseen_change`]).
    fn for_stripped(version: &GoVersion) -> Result<Self, LayoutError> {
        let layout = Self::for_version(version)?;
        if let Source::Table {
            version: taken_from,
        } = &layout.source
        {
            warn_if_known_change(version, taken_from);
        }
        Ok(layout)
    }

    /// [`Self::for_binary`] for an opened [`GoBinary`](super::GoBinary): its build-info
    /// version unless `assume` overrides it (`--assume-go-version`). A binary with complete
    /// DWARF needs no version at all.
    pub fn for_go_binary(
        bin: &super::GoBinary,
        assume: Option<&GoVersion>,
    ) -> Result<Self, LayoutError> {
        let file = object::File::parse(bin.image().bytes()).map_err(LayoutError::Object)?;
        let version = assume.or(bin.version());
        let layout = match (
            super::dwarf::DwarfStructs::runtime_from_object(&file),
            version,
        ) {
            (Ok(structs), v) => {
                let layout = Self::from_source(&structs, v)?;
                if let Some(v) = v {
                    warn_if_table_differs(&layout, v);
                }
                layout
            }
            (Err(super::dwarf::DwarfError::NoDwarf), Some(v)) => Self::for_stripped(v)?,
            (Err(super::dwarf::DwarfError::NoDwarf), None) => {
                return Err(LayoutError::UnknownVersion {
                    supported: supported_versions(),
                });
            }
            (Err(e), _) => return Err(e.into()),
        };
        layout.check()?;
        Ok(layout)
    }

    /// Reads every structure from `src` (DWARF). Structures `src` does not describe are taken
    /// from the table for `version` when given (and listed in [`Source::Dwarf`]); without a
    /// version a missing structure is an error.
    pub fn from_source(
        src: &dyn StructSource,
        version: Option<&GoVersion>,
    ) -> Result<Self, LayoutError> {
        let table = version.and_then(|v| Self::for_version(v).ok());
        let t = table.as_ref();
        let mut ft = Vec::new();
        Ok(Self {
            g: pick(
                GLayout::from_source(src)?,
                t,
                |l| l.g,
                GLayout::GO_NAMES[0],
                &mut ft,
            )?,
            gobuf: pick(
                GobufLayout::from_source(src)?,
                t,
                |l| l.gobuf,
                GobufLayout::GO_NAMES[0],
                &mut ft,
            )?,
            m: pick(
                MLayout::from_source(src)?,
                t,
                |l| l.m,
                MLayout::GO_NAMES[0],
                &mut ft,
            )?,
            p: pick(
                PLayout::from_source(src)?,
                t,
                |l| l.p,
                PLayout::GO_NAMES[0],
                &mut ft,
            )?,
            panic: pick(
                PanicLayout::from_source(src)?,
                t,
                |l| l.panic,
                PanicLayout::GO_NAMES[0],
                &mut ft,
            )?,
            defer: pick(
                DeferLayout::from_source(src)?,
                t,
                |l| l.defer,
                DeferLayout::GO_NAMES[0],
                &mut ft,
            )?,
            sudog: pick(
                SudogLayout::from_source(src)?,
                t,
                |l| l.sudog,
                SudogLayout::GO_NAMES[0],
                &mut ft,
            )?,
            hchan: pick(
                HchanLayout::from_source(src)?,
                t,
                |l| l.hchan,
                HchanLayout::GO_NAMES[0],
                &mut ft,
            )?,
            waitq: pick(
                WaitqLayout::from_source(src)?,
                t,
                |l| l.waitq,
                WaitqLayout::GO_NAMES[0],
                &mut ft,
            )?,
            moduledata: pick(
                ModuledataLayout::from_source(src)?,
                t,
                |l| l.moduledata,
                ModuledataLayout::GO_NAMES[0],
                &mut ft,
            )?,
            type_: pick(
                TypeLayout::from_source(src)?,
                t,
                |l| l.type_,
                TypeLayout::GO_NAMES[0],
                &mut ft,
            )?,
            itab: pick(
                ItabLayout::from_source(src)?,
                t,
                |l| l.itab,
                ItabLayout::GO_NAMES[0],
                &mut ft,
            )?,
            eface: pick(
                EfaceLayout::from_source(src)?,
                t,
                |l| l.eface,
                EfaceLayout::GO_NAMES[0],
                &mut ft,
            )?,
            iface: pick(
                IfaceLayout::from_source(src)?,
                t,
                |l| l.iface,
                IfaceLayout::GO_NAMES[0],
                &mut ft,
            )?,
            source: Source::Dwarf { from_table: ft },
        })
    }

    /// Sanity checks that a wrong table or misread DWARF cannot pass: every field inside its
    /// structure, the field orders every supported Go version has (runtime/runtime2.go of
    /// 1.19 … 1.27), and plausible sizes.
    pub fn check(&self) -> Result<(), LayoutError> {
        let bad = |msg: String| Err(LayoutError::Insane(msg));
        macro_rules! inside {
            ($f:ident, $ty:ident) => {
                for (name, off) in self.$f.fields() {
                    if let Some(off) = off
                        && off >= self.$f.size
                    {
                        return bad(format!(
                            "{}.{name} at {off} is outside its size {}",
                            $ty::GO_NAMES[0],
                            self.$f.size
                        ));
                    }
                }
            };
        }
        for_each_struct!(inside);
        let g = &self.g;
        // Declaration order in runtime/runtime2.go `type g struct`, identical in 1.19 … 1.27.
        let g_order = [
            ("stack.lo", Some(g.stack_lo)),
            ("stack.hi", Some(g.stack_hi)),
            ("stackguard0", Some(g.stackguard0)),
            ("_panic", Some(g.panic)),
            ("_defer", Some(g.defer)),
            ("m", Some(g.m)),
            ("sched", Some(g.sched)),
            ("syscallsp", Some(g.syscallsp)),
            ("syscallpc", Some(g.syscallpc)),
            ("syscallbp", g.syscallbp),
            ("param", Some(g.param)),
            ("atomicstatus", Some(g.atomicstatus)),
            ("goid", Some(g.goid)),
            ("schedlink", Some(g.schedlink)),
            ("waitsince", Some(g.waitsince)),
            ("waitreason", Some(g.waitreason)),
            ("preempt", Some(g.preempt)),
            ("lockedm", Some(g.lockedm)),
            ("sig", Some(g.sig)),
            ("sigcode0", Some(g.sigcode0)),
            ("parentGoid", g.parent_goid),
            ("gopc", Some(g.gopc)),
            ("ancestors", Some(g.ancestors)),
            ("startpc", Some(g.startpc)),
            ("waiting", Some(g.waiting)),
            ("labels", Some(g.labels)),
            ("timer", Some(g.timer)),
            ("coroarg", g.coroarg),
        ];
        check_order("runtime.g", &g_order)?;
        if g.sched + self.gobuf.size > g.syscallsp {
            return bad(format!(
                "runtime.g.sched at {} (gobuf of {} bytes) overlaps syscallsp at {}",
                g.sched, self.gobuf.size, g.syscallsp
            ));
        }
        let b = &self.gobuf;
        check_order(
            "runtime.gobuf",
            &[
                ("sp", Some(b.sp)),
                ("pc", Some(b.pc)),
                ("g", Some(b.g)),
                ("ctxt", Some(b.ctxt)),
            ],
        )?;
        check_order(
            "runtime.m",
            &[("g0", Some(self.m.g0)), ("curg", Some(self.m.curg))],
        )?;
        let h = &self.hchan;
        check_order(
            "runtime.hchan",
            &[
                ("qcount", Some(h.qcount)),
                ("dataqsiz", Some(h.dataqsiz)),
                ("buf", Some(h.buf)),
                ("elemsize", Some(h.elemsize)),
                ("closed", Some(h.closed)),
                ("elemtype", Some(h.elemtype)),
                ("recvq", Some(h.recvq)),
                ("sendq", Some(h.sendq)),
            ],
        )?;
        // Pointer-sized fields at the start of small structs, fixed since Go 1.0 (amd64).
        let fixed = [
            ("runtime.g.stack.lo", g.stack_lo, 0),
            ("runtime.g.stack.hi", g.stack_hi, 8),
            ("runtime.gobuf.sp", b.sp, 0),
            ("runtime.sudog.g", self.sudog.g, 0),
            ("runtime.waitq.first", self.waitq.first, 0),
            ("runtime.eface._type", self.eface.type_, 0),
            ("runtime.eface.data", self.eface.data, 8),
            ("runtime.iface.data", self.iface.data, 8),
            ("runtime.hchan.qcount", h.qcount, 0),
        ];
        for (name, got, want) in fixed {
            if got != want {
                return bad(format!(
                    "{name} is at {got}, every Go version has it at {want}"
                ));
            }
        }
        if !(200..=1024).contains(&g.size) {
            return bad(format!(
                "runtime.g is {} bytes, expected 200..=1024",
                g.size
            ));
        }
        if self.waitq.size != 16 || self.eface.size != 16 || self.iface.size != 16 {
            return bad("runtime.waitq, eface and iface must be 16 bytes".to_owned());
        }
        Ok(())
    }

    /// Checks the bytes `raw` of one live `g` at address `gp` from `allgs`, read with this
    /// layout: a status an allgs entry can have; and for goroutines that are not dead
    /// `sched.g == gp` (set once in newproc1, runtime/proc.go), a stack of at most 1 GiB
    /// (`maxstacksize` on 64-bit) with `lo < hi`, a goid in `1..2^40` (handed out
    /// sequentially from 1, `goidgen`) and a wait reason below 128 (the runtime has < 64).
    pub fn check_g_bytes(&self, gp: u64, raw: &[u8]) -> Result<GSample, LayoutError> {
        let g = &self.g;
        let bad = |msg: String| Err(LayoutError::Insane(format!("g at {gp:#x}: {msg}")));
        if raw.len() < g.size as usize {
            return bad(format!("{} bytes read, the g is {}", raw.len(), g.size));
        }
        let u64_at = |off: u32| {
            raw.get(off as usize..off as usize + 8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_le_bytes)
        };
        let status = u64_at(g.atomicstatus) as u32;
        let base = status & !0x1000;
        // _Grunnable (1) … _Gdeadextra (11), runtime/runtime2.go; 5 and 7 are unused. _Gidle
        // (0) never shows in allgs: newproc1 and oneNewExtraM switch a fresh g to _Gdead (or
        // _Gdeadextra) before allgadd (runtime/proc.go, 1.19 … 1.27).
        if base == 0 || base > 11 || base == 5 || base == 7 || status & !0x1fff != 0 {
            return bad(format!(
                "status {status:#x} is not the status of a g in allgs"
            ));
        }
        let sample = GSample {
            goid: u64_at(g.goid),
            status,
        };
        if sample.is_dead() {
            return Ok(sample);
        }
        let sched_g = u64_at(g.sched + self.gobuf.g);
        if sched_g != gp {
            return bad(format!("sched.g is {sched_g:#x}, not the g itself"));
        }
        let (lo, hi) = (u64_at(g.stack_lo), u64_at(g.stack_hi));
        if lo >= hi || hi - lo > 1 << 30 {
            return bad(format!("stack [{lo:#x}, {hi:#x}) is not a goroutine stack"));
        }
        if sample.goid == 0 || sample.goid >= 1 << 40 {
            return bad(format!("goid {} is implausible", sample.goid));
        }
        let reason = raw.get(g.waitreason as usize).copied().unwrap_or(0);
        if base == 4 && reason >= 128 {
            return bad(format!("wait reason {reason} is implausible"));
        }
        Ok(sample)
    }

    /// Checks a sample of live goroutines (`(address, bytes)` from `allgs`) with
    /// [`Self::check_g_bytes`], and that the live ones have distinct goids: a field read at a
    /// wrong offset tends to be equal across goroutines.
    pub fn check_g_sample<'a>(
        &self,
        sample: impl IntoIterator<Item = (u64, &'a [u8])>,
    ) -> Result<Vec<GSample>, LayoutError> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (gp, raw) in sample {
            let s = self.check_g_bytes(gp, raw)?;
            if !s.is_dead() && !seen.insert(s.goid) {
                return Err(LayoutError::Insane(format!(
                    "two live goroutines read as goid {}",
                    s.goid
                )));
            }
            out.push(s);
        }
        if seen.is_empty() {
            // A running program has at least the goroutine that is running or blocked.
            return Err(LayoutError::Insane(
                "no live goroutine in the sample".to_owned(),
            ));
        }
        Ok(out)
    }

    /// This layout as Rust-like text, one structure per line, with `source` shown as
    /// `Table { version }` (for `cargo xtask gen-offsets --compare-go` diffs and debugging).
    pub fn to_rust(&self, version: &GoVersion) -> String {
        let mut s = String::from("RuntimeLayout {\n");
        let _ = writeln!(
            s,
            "    source: Source::Table {{ version: GoVersion::new({}, {}, {}) }},",
            version.major, version.minor, version.patch
        );
        macro_rules! lit {
            ($f:ident, $ty:ident) => {
                let _ = writeln!(s, "    {}: {},", stringify!($f), self.$f.to_rust());
            };
        }
        for_each_struct!(lit);
        s.push('}');
        s
    }
}

/// What [`RuntimeLayout::check_g_bytes`] read from one `g`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GSample {
    /// `goid`.
    pub goid: u64,
    /// `atomicstatus`, `_Gscan` bit included.
    pub status: u32,
}

impl GSample {
    /// `_Gdead` or `_Gdeadextra`: a free g (its other fields are stale).
    pub fn is_dead(&self) -> bool {
        matches!(self.status & !0x1000, 6 | 11)
    }
}

/// A DWARF layout that differs from the table of its version means the table is wrong for
/// this release (a layout change inside a minor): stripped binaries of the same release would
/// be misread. Worth a warning with the fix.
fn warn_if_table_differs(dwarf: &RuntimeLayout, version: &GoVersion) {
    let Ok(table) = RuntimeLayout::for_version(version) else {
        return;
    };
    if let Some((d, t)) = dwarf
        .to_rust(version)
        .lines()
        .zip(table.to_rust(version).lines())
        .skip(1)
        .find(|(d, t)| d != t)
    {
        log::warn!(
            "the runtime layout in this binary's DWARF differs from gtrace's table for {version} \
             (a change inside a Go minor release); DWARF is used. Stripped binaries of this \
             release need a patch exception: see docs/NEW_GO_VERSION.md. DWARF: {} table: {}",
            d.trim(),
            t.trim()
        );
    }
}

/// A table entry taken from a release before a documented layout change that `version`
/// has ([`unseen_change`]) may misplace the fields that change moved: worth a warning.
fn warn_if_known_change(version: &GoVersion, taken_from: &GoVersion) {
    if let Some(change) = unseen_change(version, taken_from) {
        log::warn!(
            "gtrace's runtime layout table for go{}.{} comes from {taken_from}, but {} changed \
             {}: {}. A build of this binary with DWARF (not stripped) gives exact layouts.",
            version.major,
            version.minor,
            change.first,
            change.structs.join(", "),
            change.what
        );
    }
}

/// The minors the generated table supports, e.g. "go1.19, go1.21, …".
pub fn supported_versions() -> String {
    super::layout_table::TABLE
        .iter()
        .map(|e| format!("go{}.{}", e.taken_from.major, e.taken_from.minor))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A structure read from DWARF, or else from the table entry `table` (recorded in `from_table`).
fn pick<T: Copy>(
    read: Option<T>,
    table: Option<&RuntimeLayout>,
    get: fn(&RuntimeLayout) -> T,
    go_name: &'static str,
    from_table: &mut Vec<&'static str>,
) -> Result<T, LayoutError> {
    match (read, table) {
        (Some(v), _) => Ok(v),
        (None, Some(t)) => {
            from_table.push(go_name);
            Ok(get(t))
        }
        (None, None) => Err(LayoutError::MissingStruct { go_name }),
    }
}

/// Fails unless the present fields of `fields` have strictly increasing offsets.
fn check_order(go_name: &str, fields: &[(&str, Option<u32>)]) -> Result<(), LayoutError> {
    let mut prev: Option<(&str, u32)> = None;
    for &(name, off) in fields {
        let Some(off) = off else { continue };
        if let Some((pname, poff)) = prev
            && poff >= off
        {
            return Err(LayoutError::Insane(format!(
                "{go_name}.{pname} (at {poff}) must come before {name} (at {off})"
            )));
        }
        prev = Some((name, off));
    }
    Ok(())
}
