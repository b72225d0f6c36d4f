//! What the goroutine decoder needs to know about the target's code, as a small trait.
//!
//! The unwinder works in the target's runtime addresses and asks only four things: which
//! function holds a PC (with the flags the runtime's unwinder looks at), the function's SP
//! delta at a PC (the pclntab `pcsp` table), the logical frames (inlined calls expanded) at
//! a PC, and how the runtime prints the function's arguments there (`FUNCDATA_ArgInfo` and
//! the spill slots' liveness). Keeping that behind [`Symbols`] lets the same decoder run on a live binary and in
//! unit tests with hand-made functions; [`CachedSymbols`] memoizes per PC, because 100 000
//! goroutines share a few hundred distinct PCs.

pub use crate::gobin::pclntab::ArgItem;

use std::{
    cell::RefCell,
    collections::HashMap,
    hash::{BuildHasherDefault, Hasher},
    sync::Arc,
};

/// Hashes PCs (u64 keys, chosen by no adversary) with one multiply instead of `SipHash`: the
/// caches are hit several times per goroutine.
#[derive(Debug, Default, Clone, Copy)]
pub struct PcHasher(u64);

impl Hasher for PcHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

type PcMap<V> = HashMap<u64, V, BuildHasherDefault<PcHasher>>;

/// The functions the runtime's traceback treats specially (its `abi.FuncID`), by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[non_exhaustive]
pub enum FuncKind {
    /// Any other function.
    #[default]
    Normal,
    /// Compiler-generated wrapper (`abi.FuncIDWrapper`): hidden unless it called a panic.
    Wrapper,
    /// `runtime.goexit`, the outermost frame of every goroutine.
    Goexit,
    /// `runtime.gopanic`.
    Gopanic,
    /// `runtime.sigpanic`, injected by a signal.
    Sigpanic,
    /// `runtime.panicwrap`.
    Panicwrap,
    /// `runtime.main`: the main goroutine's start function (never a system goroutine).
    RuntimeMain,
    /// `runtime.corostart` (iter.Pull coroutines): a user goroutine.
    Corostart,
    /// `runtime.runFinalizers` (`runtime.runfinq` before 1.24).
    RunFinalizers,
    /// `runtime.runCleanups` (1.24+).
    RunCleanups,
    /// `runtime.asyncPreempt`, injected by a preemption signal.
    AsyncPreempt,
    /// `runtime.debugCallV2`, injected by a debugger.
    DebugCall,
}

impl FuncKind {
    /// The kind of a function known by name only (wrappers are not recognizable by name).
    pub fn from_name(name: &str) -> Self {
        match name {
            "runtime.goexit" => Self::Goexit,
            "runtime.gopanic" => Self::Gopanic,
            "runtime.sigpanic" => Self::Sigpanic,
            "runtime.panicwrap" => Self::Panicwrap,
            "runtime.main" => Self::RuntimeMain,
            "runtime.corostart" => Self::Corostart,
            "runtime.runFinalizers" | "runtime.runfinq" => Self::RunFinalizers,
            "runtime.runCleanups" => Self::RunCleanups,
            "runtime.asyncPreempt" => Self::AsyncPreempt,
            "runtime.debugCallV2" => Self::DebugCall,
            _ => Self::Normal,
        }
    }

    /// Frames the runtime entered through a signal rather than a call (`isInjectedCall`):
    /// their caller's PC is not a return address.
    pub fn is_injected(self) -> bool {
        matches!(self, Self::Sigpanic | Self::AsyncPreempt | Self::DebugCall)
    }
}

/// One function of the target, at runtime addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuncInfo {
    /// Entry PC.
    pub entry: u64,
    /// Full symbol name, e.g. `main.(*T).run.func1`.
    pub name: Arc<str>,
    /// Special role, if any.
    pub kind: FuncKind,
    /// `FuncFlagTopFrame`: the outermost frame of a stack (goexit, mstart, …).
    pub top_frame: bool,
    /// `FuncFlagSPWrite`: writes SP arbitrarily, so unwinding cannot continue past it.
    pub sp_write: bool,
}

/// One logical frame (an inlined call or the physical function itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFrame {
    /// Function name as the runtime prints it before generic shape elision.
    pub function: Arc<str>,
    /// Source file.
    pub file: Arc<str>,
    /// Source line.
    pub line: u32,
    /// True for a call inlined into the physical function.
    pub inlined: bool,
    /// Special role of this logical function (wrappers can be inlined too).
    pub kind: FuncKind,
}

/// Code knowledge about the target, at runtime addresses (load bias already applied).
pub trait Symbols {
    /// The function containing `pc`, if any.
    fn func_at(&self, pc: u64) -> Option<FuncInfo>;

    /// The pcsp value of `func` at `pc`: bytes of frame below the return address.
    fn sp_delta(&self, func: &FuncInfo, pc: u64) -> Option<u32>;

    /// Logical frames at `pc` inside `func`, innermost first; the last one is `func` itself
    /// (`inlined == false`) with its file and line at `pc`.
    fn source_frames(&self, func: &FuncInfo, pc: u64) -> Vec<SourceFrame>;

    /// How the runtime prints `func`'s arguments in a frame whose symbolization PC is `pc`
    /// (`printArgs`): [`ArgLayout::Absent`] without argument info. The default knows none,
    /// so frames print `(...)`.
    fn arg_layout(&self, func: &FuncInfo, pc: u64) -> ArgLayout {
        let _ = (func, pc);
        ArgLayout::Unknown
    }
}

/// A function's argument layout at a PC, for printing its frame like the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgLayout {
    /// Not known (unreadable tables, or a source without them): printed `(...)`.
    Unknown,
    /// The function has no argument info (assembly): the runtime prints `()`.
    Absent,
    /// The `FUNCDATA_ArgInfo` program with each word's liveness at the PC.
    Items(Arc<[ArgItem]>),
}

/// Memoizes a [`Symbols`] per PC. Single-threaded by design (the dump is sequential).
#[derive(Debug)]
pub struct CachedSymbols<S> {
    inner: S,
    funcs: RefCell<PcMap<Option<FuncInfo>>>,
    deltas: RefCell<PcMap<Option<u32>>>,
    frames: RefCell<PcMap<Arc<[SourceFrame]>>>,
    args: RefCell<PcMap<ArgLayout>>,
}

impl<S: Symbols> CachedSymbols<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            funcs: RefCell::default(),
            deltas: RefCell::default(),
            frames: RefCell::default(),
            args: RefCell::default(),
        }
    }

    /// The wrapped symbols.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Cached [`Symbols::func_at`].
    pub fn func_at(&self, pc: u64) -> Option<FuncInfo> {
        if let Some(f) = self.funcs.borrow().get(&pc) {
            return f.clone();
        }
        let f = self.inner.func_at(pc);
        self.funcs.borrow_mut().insert(pc, f.clone());
        f
    }

    /// Cached [`Symbols::sp_delta`].
    pub fn sp_delta(&self, func: &FuncInfo, pc: u64) -> Option<u32> {
        if let Some(d) = self.deltas.borrow().get(&pc) {
            return *d;
        }
        let d = self.inner.sp_delta(func, pc);
        self.deltas.borrow_mut().insert(pc, d);
        d
    }

    /// Cached [`Symbols::source_frames`].
    pub fn source_frames(&self, func: &FuncInfo, pc: u64) -> Arc<[SourceFrame]> {
        if let Some(f) = self.frames.borrow().get(&pc) {
            return f.clone();
        }
        let f: Arc<[SourceFrame]> = self.inner.source_frames(func, pc).into();
        self.frames.borrow_mut().insert(pc, f.clone());
        f
    }

    /// Cached [`Symbols::arg_layout`].
    pub fn arg_layout(&self, func: &FuncInfo, pc: u64) -> ArgLayout {
        if let Some(a) = self.args.borrow().get(&pc) {
            return a.clone();
        }
        let a = self.inner.arg_layout(func, pc);
        self.args.borrow_mut().insert(pc, a.clone());
        a
    }
}
