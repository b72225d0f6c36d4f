//! A finished panic symbolized against its binary: what `gtrace panics` prints.
//!
//! Addresses are turned into functions, files and lines with the binary's own pclntab
//! (inlined frames expanded); the load bias of a PIE is taken from the event itself (the
//! first stack entry is the probed instruction of `runtime.gopanic`, whose link-time address
//! is known), so reports can be built after the process is gone.

use serde::Serialize;

use super::{
    ancestry::{Ancestry, Creator},
    model::{FinishedPanic, Outcome},
    value::{Types, render, render_throw},
};
use crate::gobin::{GoBinary, layout::RuntimeLayout};

/// A source location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    /// Fully qualified function name.
    pub function: String,
    /// Source file.
    pub file: String,
    /// Line.
    pub line: u32,
}

/// One frame of the panicking goroutine's stack: the symbolizer's own frame type.
pub use crate::gobin::Frame;

/// One creator in the goroutine's ancestry, nearest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ancestor {
    /// The creating goroutine's id, when known (Go 1.21+ records it).
    pub goid: Option<u64>,
    /// The function containing the `go` statement.
    pub function: String,
    /// Its file.
    pub file: String,
    /// Its line.
    pub line: u32,
}

/// One panic, as printed (text) and serialized (`docs/json/panics.schema.json`).
// Each flag is a separate fact of the JSON schema; an enum would not fit them.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, Serialize)]
pub struct PanicReport {
    /// The panicking goroutine.
    pub goid: u64,
    /// The value as the runtime prints it after `panic: `.
    pub value: String,
    /// The value's dynamic type.
    pub value_type: String,
    /// False when `value` is gtrace's approximation (an error type whose `Error()` gtrace
    /// cannot reproduce, a string longer than the bytes captured).
    pub value_exact: bool,
    /// How it ended.
    pub outcome: Outcome,
    /// `recover()` returned its value.
    pub recovered: bool,
    /// It killed the process.
    pub fatal: bool,
    /// It started while another panic was in flight on the same goroutine.
    pub nested: bool,
    /// Fatal chains (Go 1.25+): the next panic re-panicked this value.
    pub repanicked: bool,
    /// The function that called the `recover()` that returned this value.
    pub recovered_by: Option<Location>,
    /// The goroutine's stack at the panic, innermost first, from `panic`'s caller.
    pub frames: Vec<Frame>,
    /// The `go` statement that created the goroutine (none for the main goroutine).
    pub created_by: Option<Location>,
    /// Creators, nearest first, as far as known.
    pub ancestry: Vec<Ancestor>,
    /// Deferred functions called by the panic machinery while this panic unwound, in order
    /// (closures by their compiler names, e.g. `main.run.func1`).
    pub defers_run: Vec<String>,
    /// Kernel monotonic time of the panic (`CLOCK_MONOTONIC` ns).
    pub ts_ns: u64,
    /// Kernel monotonic time its fate was known.
    pub end_ns: u64,
    /// Index in the goroutine's chain of panics ended together (oldest 0).
    #[serde(skip)]
    pub chain_index: usize,
}

/// Builds reports for one binary; holds the PIE bias once learnt.
pub struct Reporter<'a> {
    bin: &'a GoBinary,
    layout: &'a RuntimeLayout,
    /// Link-time address of the `runtime.gopanic` probe site.
    gopanic_site: u64,
    /// Runtime minus link-time addresses.
    bias: Option<u64>,
}

impl<'a> Reporter<'a> {
    /// A reporter for `bin`, whose `runtime.gopanic` probe site is at `gopanic_site`.
    pub fn new(bin: &'a GoBinary, layout: &'a RuntimeLayout, gopanic_site: u64) -> Self {
        Self {
            bin,
            layout,
            gopanic_site,
            bias: None,
        }
    }

    /// The load bias learnt from the first panic event (0 until then, and for non-PIE).
    pub fn bias(&self) -> u64 {
        self.bias.unwrap_or(0)
    }

    /// Sets the load bias (known from the process's maps when attaching to a running one).
    pub fn set_bias(&mut self, bias: u64) {
        self.bias = Some(bias);
    }

    /// Symbolizes and renders one finished panic; its creator is added to `ancestry`, whose
    /// chain above the goroutine becomes the report's ancestry.
    pub fn report(&mut self, f: &FinishedPanic, ancestry: &mut Ancestry) -> PanicReport {
        let s = &f.start;
        let stack = &s.stack[..(s.stack_len as usize).min(s.stack.len())];
        // Only a gopanic event's first stack entry is the gopanic probe site.
        if self.bias.is_none()
            && !f.throw
            && let Some(&ip) = stack.first()
        {
            self.bias = Some(ip.wrapping_sub(self.gopanic_site));
        }
        let bias = self.bias.unwrap_or(0);
        let types = Types::new(self.bin, self.layout, bias);
        let value = if f.throw {
            render_throw(&types, s)
        } else {
            render(&types, s)
        };
        // The caller of gopanic may be missing from the frame-pointer walk (probe site before
        // `push rbp`): put the return address read at [rsp] back.
        let mut pcs: Vec<u64> = stack.iter().skip(1).copied().collect();
        if s.ret_pc != 0 && pcs.first() != Some(&s.ret_pc) {
            pcs.insert(0, s.ret_pc);
        }
        let mut frames = Vec::new();
        for pc in pcs {
            let link = pc.wrapping_sub(bias).wrapping_sub(1);
            match self.bin.symbolize(link) {
                Ok(fs) if !fs.is_empty() => frames.extend(fs),
                _ => frames.push(Frame {
                    function: format!("?{pc:#x}"),
                    file: "?".into(),
                    line: 0,
                    inlined: false,
                }),
            }
        }
        // The runtime's own deferred recover() (preprintpanics) is no recovery.
        if s.goid == 0 {
            // The system stack (g0): only runtime frames belong to it; past them the
            // frame-pointer walk reads stale words.
            let n = frames
                .iter()
                .position(|x| !x.function.starts_with("runtime."))
                .unwrap_or(frames.len());
            frames.truncate(n);
        }
        let recovered_by = f
            .recovered_by_pc
            .filter(|_| f.recovered)
            .and_then(|pc| self.outer(pc, bias))
            .filter(|l| !l.function.starts_with("runtime."));
        if s.goid != 1 && s.gopc != 0 {
            // A creation event seen earlier knows as much or more (the creator's goid before
            // Go 1.21): keep it.
            ancestry.insert_if_absent(
                s.goid,
                Creator::Pc {
                    parent: s.parent_goid,
                    gopc: s.gopc,
                },
            );
        }
        let chain = ancestry.chain(s.goid, &mut |pc| self.created_site(pc, bias));
        let created_by = chain.first().map(|(_, site)| site.clone());
        let ancestry = chain
            .into_iter()
            .map(|(goid, c)| Ancestor {
                goid,
                function: c.function,
                file: c.file,
                line: c.line,
            })
            .collect();
        PanicReport {
            goid: s.goid,
            value: value.text,
            value_type: value.type_name,
            value_exact: value.exact,
            outcome: f.outcome,
            recovered: f.recovered,
            fatal: f.outcome == Outcome::Fatal,
            nested: f.nested,
            // Go 1.25+ marks and folds a re-panic of the same value (preprintpanics).
            repanicked: f.repanicked && self.bin.version().is_some_and(|v| v.at_least(1, 25)),
            recovered_by,
            frames,
            created_by,
            ancestry,
            defers_run: f
                .defers
                .iter()
                .map(|&(pc, closure)| {
                    // The kernel reads no page the process never touched: a static funcval
                    // is in the binary file.
                    let pc = if pc == 0 {
                        self.bin
                            .image()
                            .read_ptr(closure.wrapping_sub(bias))
                            .map_or(0, |p| p.wrapping_add(bias))
                    } else {
                        pc
                    };
                    self.function_at(pc, bias)
                })
                .collect(),
            ts_ns: s.header.ktime_ns,
            end_ns: f.end_ns,
            chain_index: f.chain_index,
        }
    }

    /// The `go` statement at return address `pc` as `printcreatedby` prints it: the physical
    /// function's name, the innermost (inlined) file and line.
    pub fn created_site(&self, pc: u64, bias: u64) -> Option<Location> {
        let fs = self
            .bin
            .symbolize(pc.wrapping_sub(bias).wrapping_sub(1))
            .ok()?;
        let inner = fs.first()?;
        let outer = fs.last()?;
        Some(Location {
            function: outer.function.clone(),
            file: inner.file.clone(),
            line: inner.line,
        })
    }

    /// The name of the function whose entry is `pc` (a deferred function value).
    fn function_at(&self, pc: u64, bias: u64) -> String {
        match self.bin.func_for_pc(pc.wrapping_sub(bias)) {
            Ok(Some(f)) => f.name,
            _ => format!("?{pc:#x}"),
        }
    }

    /// The innermost frame of the call whose return address is `pc` (`pc - 1` lies in the
    /// CALL), as the runtime's `printcreatedby` names a `go` statement's site.
    fn outer(&self, pc: u64, bias: u64) -> Option<Location> {
        let fs = self
            .bin
            .symbolize(pc.wrapping_sub(bias).wrapping_sub(1))
            .ok()?;
        let f = fs.into_iter().next()?;
        Some(Location {
            function: f.function,
            file: f.file,
            line: f.line,
        })
    }
}
