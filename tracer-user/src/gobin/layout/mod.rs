//! Byte offsets of the Go runtime structures gtrace reads (`g`, `m`, `p`, `gobuf`, `_panic`,
//! `_defer`, `sudog`, `hchan`, `moduledata`, `abi.Type`, …), for every supported Go version.
//!
//! Why typed and generated: the fields move between neighbouring releases (`g.goid` is at 152
//! in most versions but 160 in 1.23–1.24; `m.curg` moves from 192 to 184 in 1.25), so nothing
//! here is hand-written. A layout comes from the binary's own DWARF when it has some
//! ([`super::dwarf`]), otherwise from [`super::layout_table`], which `cargo xtask gen-offsets`
//! generates from probe programs built with each installed toolchain, through the same DWARF
//! code. Every layout goes through [`RuntimeLayout::check`] before use, so a wrong table fails
//! loudly at attach time instead of producing garbage.
//!
//! Related encodings, for readers of these structures (from the Go sources named):
//! - `eface` is `{_type *_type, data unsafe.Pointer}`, `iface` is `{tab *itab, data}`; the
//!   itab's type pointer is at [`ItabLayout::type_`] (runtime/runtime2.go, internal/abi/iface.go
//!   since 1.22).
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
    /// DWARF describes the structure but not a field every supported version has.
    #[error("the binary's DWARF describes {go_name} without its field {field}")]
    MissingField {
        /// Go name of the structure.
        go_name: &'static str,
        /// The field path, e.g. `stack.lo`.
        field: &'static str,
    },
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

mod structs;
#[cfg(test)]
mod tests;

pub use structs::*;

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

/// One generated table entry: the layout of a Go minor version, taken from one exact release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEntry {
    /// The toolchain the entry was generated with (e.g. go1.23.9).
    pub taken_from: GoVersion,
    /// The layout (its `source` is `Table { version: taken_from }`).
    pub layout: RuntimeLayout,
}

/// A patch release whose layout differs from its minor's table entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchException {
    /// Applies to these patch releases of the minor, inclusive.
    pub first: GoVersion,
    /// Last affected patch release.
    pub last: GoVersion,
    /// Its layout.
    pub layout: RuntimeLayout,
}

impl RuntimeLayout {
    /// The generated-table layout for `version`: by major.minor, unless a known patch exception
    /// covers the exact release.
    pub fn for_version(version: &GoVersion) -> Result<Self, LayoutError> {
        let key = (version.major, version.minor);
        if let Some(exc) = super::layout_table::PATCH_EXCEPTIONS.iter().find(|e| {
            (e.first.major, e.first.minor) == key
                && e.first.patch <= version.patch
                && version.patch <= e.last.patch
        }) {
            return Ok(exc.layout.clone());
        }
        super::layout_table::TABLE
            .iter()
            .find(|e| (e.taken_from.major, e.taken_from.minor) == key)
            .map(|e| e.layout.clone())
            .ok_or_else(|| LayoutError::UnsupportedVersion {
                version: version.clone(),
                supported: supported_versions(),
            })
    }

    /// The layout for a binary: from its DWARF when it has some (structures DWARF lacks come
    /// from the table for `version`), else from the table for `version`; checked with
    /// [`Self::check`] either way.
    pub fn for_binary(file: &object::File<'_>, version: &GoVersion) -> Result<Self, LayoutError> {
        let layout = match super::dwarf::DwarfStructs::from_object(file) {
            Ok(structs) => Self::from_source(&structs, Some(version))?,
            Err(super::dwarf::DwarfError::NoDwarf) => Self::for_version(version)?,
            Err(e) => return Err(e.into()),
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

    /// This layout as a Rust expression with `source` replaced by `Table { version }`, for
    /// `cargo xtask gen-offsets`.
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
