//! The per-structure layout types (`GLayout`, `MLayout`, …), declared once with the Go names
//! and field paths they are read from, so DWARF reading, table rendering and checks cannot
//! disagree about which fields exist.

use std::fmt::Write as _;

use super::{LayoutError, StructSource};

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

            /// This value as Rust-like text (for diffs and debugging).
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
        /// `atomicstatus`: the `_G*` status (`uint32` in 1.19, `atomic.Uint32` in 1.21+).
        atomicstatus: req = ["atomicstatus"],
        /// `goid`: the goroutine id (`int64` in 1.19, `uint64` in 1.21+).
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
        /// `coroarg`: coroutine argument during `coroswitch` (added in 1.22; iter.Pull uses
        /// coroutines from 1.23).
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
        /// `ret`: syscall return value (removed in 1.25).
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
        /// `argp`: pointer to the deferred call's arguments (removed in 1.26).
        argp: opt = ["argp"],
        /// `arg`: the panic value (an `eface`).
        arg: req = ["arg"],
        /// `link`: the previous (outer) panic.
        link: req = ["link"],
        /// `startPC` (1.22+).
        start_pc: opt = ["startPC"],
        /// `startSP` (1.22+).
        start_sp: opt = ["startSP"],
        /// Before 1.22 `pc`: where to return in the runtime if this panic is bypassed. Since
        /// 1.22 the return PC of the frame whose defers run: `lr` in 1.22–1.26, renamed `pc`
        /// in 1.27 (runtime/runtime2.go, panic.go).
        pc: opt = ["pc", "lr"],
        /// `sp`: before 1.22 with `pc` above; since 1.22 the SP of the frame being processed.
        sp: opt = ["sp"],
        /// `fp`: frame pointer of that frame (1.22+).
        fp: opt = ["fp"],
        /// `retpc`: where `recover` resumes (1.22+).
        retpc: opt = ["retpc"],
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
        rodata: req = ["rodata"],
        /// `gofunc`.
        gofunc: req = ["gofunc"],
        /// `textsectmap`.
        textsectmap: req = ["textsectmap"],
        /// `typelinks` (removed in 1.27, runtime/symtab.go).
        typelinks: opt = ["typelinks"],
        /// `itablinks` (removed in 1.27).
        itablinks: opt = ["itablinks"],
        /// `epclntab` (1.26+).
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
    /// The interface table: `internal/abi.ITab` since 1.23, `runtime.itab` before.
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
