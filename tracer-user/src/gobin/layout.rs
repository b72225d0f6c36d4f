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

/// Expands to a field's Rust type: `req` fields exist in every supported version.
macro_rules! field_ty {
    (req) => { u32 };
    (opt) => { Option<u32> };
}

/// Reads one field from a source: `req` fails with `MissingField`, `opt` may be absent.
macro_rules! read_field {
    (req, $src:expr, $go:expr, $paths:expr) => {
        read_first($src, $go, $paths).ok_or(LayoutError::MissingField {
            go_name: $go,
            field: $paths[0],
        })?
    };
    (opt, $src:expr, $go:expr, $paths:expr) => {
        read_first($src, $go, $paths)
    };
}

/// Converts a field to `Option<u32>` for the generic checks.
macro_rules! field_opt {
    (req, $v:expr) => {
        Some($v)
    };
    (opt, $v:expr) => {
        $v
    };
}

/// Writes a field as a Rust literal (for the generated table).
macro_rules! field_lit {
    (req, $v:expr) => {
        format!("{}", $v)
    };
    (opt, $v:expr) => {
        match $v {
            Some(v) => format!("Some({v})"),
            None => "None".to_owned(),
        }
    };
}

fn read_first(src: &dyn StructSource, go_name: &str, paths: &[&str]) -> Option<u32> {
    paths.iter().find_map(|p| src.field_offset(go_name, p))
}

/// Declares one layout struct: its Go names (newest spelling first), and per field the Go
/// field paths that name it across versions.
macro_rules! go_struct {
    (
        $(#[$doc:meta])*
        $name:ident = [$($go:literal),+ $(,)?] {
            $( $(#[$fdoc:meta])* $field:ident : $kind:ident = [$($path:literal),+ $(,)?] ),* $(,)?
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name {
            /// Size of the whole structure in bytes.
            pub size: u32,
            $( $(#[$fdoc])* pub $field: field_ty!($kind), )*
        }

        impl $name {
            /// The structure's Go names across versions, newest first.
            pub const GO_NAMES: &'static [&'static str] = &[$($go),+];

            /// Reads the layout from `src`; `Ok(None)` if `src` has none of the Go names.
            pub fn from_source(src: &dyn StructSource) -> Result<Option<Self>, LayoutError> {
                let Some((go, size)) = Self::GO_NAMES
                    .iter()
                    .find_map(|g| src.struct_size(g).map(|s| (*g, s)))
                else {
                    return Ok(None);
                };
                Ok(Some(Self {
                    size,
                    $( $field: read_field!($kind, src, go, &[$($path),+]), )*
                }))
            }

            /// `(Rust field name, offset)` for every field, `None` for absent ones.
            pub fn fields(&self) -> Vec<(&'static str, Option<u32>)> {
                vec![$( (stringify!($field), field_opt!($kind, self.$field)), )*]
            }

            /// This value as a Rust expression (used by `cargo xtask gen-offsets`).
            pub fn to_rust(&self) -> String {
                let mut s = format!("{} {{ size: {}", stringify!($name), self.size);
                $( let _ = write!(s, ", {}: {}", stringify!($field), field_lit!($kind, self.$field)); )*
                s.push_str(" }");
                s
            }
        }
    };
}

go_struct! {
    /// `runtime.g`, one goroutine (runtime/runtime2.go).
    GLayout = ["runtime.g"] {
        /// `stack.lo`: lowest address of the goroutine stack.
        stack_lo: req = ["stack.lo"],
        /// `stack.hi`: one past the highest stack address.
        stack_hi: req = ["stack.hi"],
        /// `stackguard0`: compared in function prologues; `stackPreempt` requests preemption.
        stackguard0: req = ["stackguard0"],
        /// `_panic`: innermost `*_panic`.
        panic: req = ["_panic"],
        /// `_defer`: innermost `*_defer`.
        defer: req = ["_defer"],
        /// `m`: the M running this goroutine, or nil.
        m: req = ["m"],
        /// `sched`: saved registers ([`GobufLayout`]) while not running.
        sched: req = ["sched"],
        /// `syscallsp`: SP saved at syscall entry.
        syscallsp: req = ["syscallsp"],
        /// `syscallpc`: PC saved at syscall entry.
        syscallpc: req = ["syscallpc"],
        /// `syscallbp`: BP saved at syscall entry (added in 1.23).
        syscallbp: opt = ["syscallbp"],
        /// `param`: wake-up parameter (e.g. the sudog that completed a channel operation).
        param: req = ["param"],
        /// `atomicstatus`: the `_G*` status (`uint32`; `atomic.Uint32` since 1.20).
        atomicstatus: req = ["atomicstatus"],
        /// `goid`: the goroutine id (`uint64`; `int64` before 1.20).
        goid: req = ["goid"],
        /// `schedlink`: next g on a run queue.
        schedlink: req = ["schedlink"],
        /// `waitsince`: approximate nanotime when the goroutine blocked.
        waitsince: req = ["waitsince"],
        /// `waitreason`: a `waitReason` (`uint8`) while `_Gwaiting`.
        waitreason: req = ["waitreason"],
        /// `preempt`: preemption requested.
        preempt: req = ["preempt"],
        /// `lockedm`: M this goroutine is locked to (`LockOSThread`).
        lockedm: req = ["lockedm"],
        /// `sig`: signal number for a signal panic.
        sig: req = ["sig"],
        /// `sigcode0`: signal code for a signal panic.
        sigcode0: req = ["sigcode0"],
        /// `parentGoid`: goid of the creator (added in 1.21).
        parent_goid: opt = ["parentGoid"],
        /// `gopc`: PC of the `go` statement that created the goroutine.
        gopc: req = ["gopc"],
        /// `ancestors`: `*[]ancestorInfo` (only with `GODEBUG=tracebackancestors`).
        ancestors: req = ["ancestors"],
        /// `startpc`: PC of the goroutine function.
        startpc: req = ["startpc"],
        /// `waiting`: sudogs this goroutine waits on, in lock order.
        waiting: req = ["waiting"],
        /// `labels`: profiler labels (`unsafe.Pointer` to a label map/set).
        labels: req = ["labels"],
        /// `timer`: cached timer for `time.Sleep`.
        timer: req = ["timer"],
        /// `coroarg`: coroutine argument during `coroswitch` (added in 1.23, iter.Pull).
        coroarg: opt = ["coroarg"],
    }
}

go_struct! {
    /// `runtime.gobuf`, registers saved when a goroutine is descheduled (runtime/runtime2.go).
    GobufLayout = ["runtime.gobuf"] {
        /// `sp`.
        sp: req = ["sp"],
        /// `pc`.
        pc: req = ["pc"],
        /// `g`: back pointer (`guintptr`).
        g: req = ["g"],
        /// `ctxt`: closure context.
        ctxt: req = ["ctxt"],
        /// `ret`: syscall return value (removed in 1.24).
        ret: opt = ["ret"],
        /// `lr`: link register (0 on amd64).
        lr: req = ["lr"],
        /// `bp`: frame pointer.
        bp: req = ["bp"],
    }
}

go_struct! {
    /// `runtime.m`, an OS thread (runtime/runtime2.go).
    MLayout = ["runtime.m"] {
        /// `g0`: the scheduling goroutine with the system stack.
        g0: req = ["g0"],
        /// `gsignal`: the signal-handling goroutine.
        gsignal: req = ["gsignal"],
        /// `tls`: thread-local storage slots.
        tls: req = ["tls"],
        /// `curg`: the user goroutine currently running on this M.
        curg: req = ["curg"],
        /// `p`: attached P (`puintptr`), 0 if none.
        p: req = ["p"],
        /// `id`: the M's id.
        id: req = ["id"],
        /// `procid`: the thread id (for debuggers, per runtime2.go).
        procid: req = ["procid"],
        /// `lockedg`: goroutine locked to this thread.
        lockedg: req = ["lockedg"],
    }
}

go_struct! {
    /// `runtime.p`, a processor (runtime/runtime2.go).
    PLayout = ["runtime.p"] {
        /// `id`.
        id: req = ["id"],
        /// `status`: `_Pidle`, `_Prunning`, … .
        status: req = ["status"],
        /// `m`: back link to the M (`muintptr`).
        m: req = ["m"],
        /// `runqhead`.
        runqhead: req = ["runqhead"],
        /// `runqtail`.
        runqtail: req = ["runqtail"],
        /// `runq`: `[256]guintptr`.
        runq: req = ["runq"],
        /// `runnext`: the goroutine to run next (`guintptr`).
        runnext: req = ["runnext"],
    }
}

go_struct! {
    /// `runtime._panic`, one active panic (runtime/runtime2.go; reworked in 1.22).
    PanicLayout = ["runtime._panic"] {
        /// `argp`: pointer to the deferred call's arguments (removed in 1.22... check table).
        argp: opt = ["argp"],
        /// `arg`: the panic value (an `eface`).
        arg: req = ["arg"],
        /// `link`: the previous (outer) panic.
        link: req = ["link"],
        /// `startPC` (1.22+).
        start_pc: opt = ["startPC"],
        /// `startSP` (1.22+).
        start_sp: opt = ["startSP"],
        /// `pc`: where to return in the runtime if this panic is bypassed / current frame PC.
        pc: opt = ["pc"],
        /// `sp`.
        sp: opt = ["sp"],
        /// `recovered`.
        recovered: req = ["recovered"],
        /// `repanicked` (1.25+: printed as `[recovered, repanicked]`).
        repanicked: opt = ["repanicked"],
        /// `aborted` (before 1.22).
        aborted: opt = ["aborted"],
        /// `goexit`: this "panic" is `runtime.Goexit`.
        goexit: req = ["goexit"],
    }
}

go_struct! {
    /// `runtime._defer`, one pending deferred call (runtime/runtime2.go).
    DeferLayout = ["runtime._defer"] {
        /// `started` (before 1.22).
        started: opt = ["started"],
        /// `heap`: heap-allocated.
        heap: req = ["heap"],
        /// `openDefer` (before 1.22).
        open_defer: opt = ["openDefer"],
        /// `rangefunc` (1.22+).
        rangefunc: opt = ["rangefunc"],
        /// `sp` at the time of the defer.
        sp: req = ["sp"],
        /// `pc` at the time of the defer.
        pc: req = ["pc"],
        /// `fn`: the deferred closure (`func()`), nil for open-coded defers.
        fn_: req = ["fn"],
        /// `_panic`: panic running this defer (before 1.22).
        panic: opt = ["_panic"],
        /// `link`: next defer on the goroutine.
        link: req = ["link"],
    }
}

go_struct! {
    /// `runtime.sudog`, a goroutine waiting on a channel or semaphore (runtime/runtime2.go).
    SudogLayout = ["runtime.sudog"] {
        /// `g`: the waiting goroutine.
        g: req = ["g"],
        /// `next` in the wait queue.
        next: req = ["next"],
        /// `prev` in the wait queue.
        prev: req = ["prev"],
        /// `elem`: data element (may point into a stack).
        elem: req = ["elem"],
        /// `acquiretime`.
        acquiretime: req = ["acquiretime"],
        /// `releasetime`.
        releasetime: req = ["releasetime"],
        /// `ticket`.
        ticket: req = ["ticket"],
        /// `isSelect`: the goroutine is in a select.
        is_select: req = ["isSelect"],
        /// `success`: woken by a completed communication (not a close).
        success: req = ["success"],
        /// `parent` (semaRoot tree).
        parent: req = ["parent"],
        /// `waitlink`: next sudog in `g.waiting`.
        waitlink: req = ["waitlink"],
        /// `waittail`.
        waittail: req = ["waittail"],
        /// `c`: the channel.
        c: req = ["c"],
    }
}

go_struct! {
    /// `runtime.hchan`, a channel (runtime/chan.go).
    HchanLayout = ["runtime.hchan"] {
        /// `qcount`: elements in the buffer.
        qcount: req = ["qcount"],
        /// `dataqsiz`: buffer capacity.
        dataqsiz: req = ["dataqsiz"],
        /// `buf`.
        buf: req = ["buf"],
        /// `elemsize` (`uint16`).
        elemsize: req = ["elemsize"],
        /// `closed` (`uint32`).
        closed: req = ["closed"],
        /// `timer`: the timer feeding a `time.Timer` channel (1.23+).
        timer: opt = ["timer"],
        /// `elemtype`: `*_type`.
        elemtype: req = ["elemtype"],
        /// `sendx`.
        sendx: req = ["sendx"],
        /// `recvx`.
        recvx: req = ["recvx"],
        /// `recvq`: [`WaitqLayout`] of receivers.
        recvq: req = ["recvq"],
        /// `sendq`: [`WaitqLayout`] of senders.
        sendq: req = ["sendq"],
        /// `bubble`: synctest bubble (1.25+).
        bubble: opt = ["bubble"],
        /// `lock`.
        lock: req = ["lock"],
    }
}

go_struct! {
    /// `runtime.waitq`, a channel's list of waiting sudogs (runtime/chan.go).
    WaitqLayout = ["runtime.waitq"] {
        /// `first`.
        first: req = ["first"],
        /// `last`.
        last: req = ["last"],
    }
}

go_struct! {
    /// `runtime.moduledata`, per-module tables (runtime/symtab.go). Slice fields are
    /// `{ptr, len, cap}`; offsets point at the slice header.
    ModuledataLayout = ["runtime.moduledata"] {
        /// `pcHeader`.
        pc_header: req = ["pcHeader"],
        /// `funcnametab`.
        funcnametab: req = ["funcnametab"],
        /// `cutab`.
        cutab: req = ["cutab"],
        /// `filetab`.
        filetab: req = ["filetab"],
        /// `pctab`.
        pctab: req = ["pctab"],
        /// `pclntable`.
        pclntable: req = ["pclntable"],
        /// `ftab`.
        ftab: req = ["ftab"],
        /// `findfunctab`.
        findfunctab: req = ["findfunctab"],
        /// `minpc`.
        minpc: req = ["minpc"],
        /// `maxpc`.
        maxpc: req = ["maxpc"],
        /// `text`.
        text: req = ["text"],
        /// `etext`.
        etext: req = ["etext"],
        /// `noptrdata`.
        noptrdata: req = ["noptrdata"],
        /// `enoptrdata`.
        enoptrdata: req = ["enoptrdata"],
        /// `data`.
        data: req = ["data"],
        /// `edata`.
        edata: req = ["edata"],
        /// `bss`.
        bss: req = ["bss"],
        /// `ebss`.
        ebss: req = ["ebss"],
        /// `noptrbss`.
        noptrbss: req = ["noptrbss"],
        /// `enoptrbss`.
        enoptrbss: req = ["enoptrbss"],
        /// `covctrs` (1.20+).
        covctrs: opt = ["covctrs"],
        /// `end`.
        end: req = ["end"],
        /// `gcdata`.
        gcdata: req = ["gcdata"],
        /// `gcbss`.
        gcbss: req = ["gcbss"],
        /// `types`: start of the type data that `nameOff`/`typeOff` are relative to.
        types: req = ["types"],
        /// `etypes`.
        etypes: req = ["etypes"],
        /// `itaboffset` (1.27+).
        itaboffset: opt = ["itaboffset"],
        /// `rodata`.
        rodata: opt = ["rodata"],
        /// `gofunc`.
        gofunc: req = ["gofunc"],
        /// `textsectmap`.
        textsectmap: req = ["textsectmap"],
        /// `typelinks` (removed in 1.27, runtime/symtab.go).
        typelinks: opt = ["typelinks"],
        /// `itablinks` (removed in 1.27).
        itablinks: opt = ["itablinks"],
        /// `epclntab` (1.27+).
        epclntab: opt = ["epclntab"],
        /// `modulename`.
        modulename: req = ["modulename"],
        /// `next` module.
        next: req = ["next"],
    }
}

go_struct! {
    /// The type descriptor: `internal/abi.Type` since 1.21, `runtime._type` before.
    TypeLayout = ["internal/abi.Type", "runtime._type"] {
        /// `Size_` / `size`.
        size_: req = ["Size_", "size"],
        /// `PtrBytes` / `ptrdata`.
        ptrdata: req = ["PtrBytes", "ptrdata"],
        /// `Hash` / `hash`.
        hash: req = ["Hash", "hash"],
        /// `TFlag` / `tflag`.
        tflag: req = ["TFlag", "tflag"],
        /// `Align_` / `align`.
        align: req = ["Align_", "align"],
        /// `FieldAlign_` / `fieldAlign`.
        field_align: req = ["FieldAlign_", "fieldAlign"],
        /// `Kind_` / `kind`.
        kind: req = ["Kind_", "kind"],
        /// `Equal` / `equal`.
        equal: req = ["Equal", "equal"],
        /// `GCData` / `gcdata`.
        gcdata: req = ["GCData", "gcdata"],
        /// `Str` / `str`: a `nameOff` (relative to `moduledata.types`).
        str_: req = ["Str", "str"],
        /// `PtrToThis` / `ptrToThis`: a `typeOff`.
        ptr_to_this: req = ["PtrToThis", "ptrToThis"],
    }
}

go_struct! {
    /// The interface table: `internal/abi.ITab` since 1.22, `runtime.itab` before.
    ItabLayout = ["internal/abi.ITab", "runtime.itab"] {
        /// `Inter` / `inter`: the interface type.
        inter: req = ["Inter", "inter"],
        /// `Type` / `_type`: the dynamic type.
        type_: req = ["Type", "_type"],
        /// `Hash` / `hash`.
        hash: req = ["Hash", "hash"],
        /// `Fun` / `fun`: method table.
        fun: req = ["Fun", "fun"],
    }
}

go_struct! {
    /// `runtime.eface`, an empty interface value (runtime/runtime2.go).
    EfaceLayout = ["runtime.eface"] {
        /// `_type`.
        type_: req = ["_type"],
        /// `data`.
        data: req = ["data"],
    }
}

go_struct! {
    /// `runtime.iface`, a non-empty interface value (runtime/runtime2.go).
    IfaceLayout = ["runtime.iface"] {
        /// `tab`: `*itab`.
        tab: req = ["tab"],
        /// `data`.
        data: req = ["data"],
    }
}

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
