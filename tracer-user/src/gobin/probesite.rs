//! Where to put a uprobe in a Go function, and where its RET instructions are.
//!
//! A uprobe replaces an instruction with `int3`; after the handler the kernel either
//! *emulates* the original instruction (cheap) or *single-steps* a copy of it out of line
//! (a second trap: ~4.8 µs per hit against ~1.0 µs measured here, see `docs/PROBE_SITES.md`).
//! `arch/x86/kernel/uprobes.c` emulates relative `call`/`jmp`/`jcc` (`branch_xol_ops`) and
//! `push <reg>` (`push_xol_ops`, since 4.18); everything else — including the
//! `cmp rsp, [r14+0x10]` that opens every split-stack Go function — is single-stepped.
//!
//! The rule (see [`probe_site`]): skip an `ENDBR64`; if the function starts with a stack-bound
//! check (`cmp rsp, [r14+0x10]`, or `lea r12, [rsp-N]; cmp r12, [r14+0x10]` for big frames;
//! `[r14+0x18]` = `stackguard1` in `//go:systemstack` functions,
//! followed by `jbe`/`jb` to the morestack call), the site is the first instruction after
//! that branch — it runs once per real call (morestack re-enters at the top, so a probe at
//! the entry can fire twice) and on Go 1.21+ it is `push rbp`, which is emulated, and which
//! the kernel's stack unwinder special-cases so callchains stay complete. Go 1.19 builds its
//! frame with `sub rsp, N; mov [rsp+N-8], rbp` instead: the site is then that `sub`, which is
//! single-stepped (flagged `emulated: false`). Functions without a check (NOSPLIT, frameless)
//! get their first instruction.

use iced_x86::{
    Code, Decoder, DecoderOptions, FlowControl, Formatter, Instruction, IntelFormatter, Mnemonic,
    OpKind, Register,
};
use serde::Serialize;

use super::{
    error::{GobinError, Result},
    symbols::{Function, GoBinary},
};

/// The longest prologue we look through for the stack-bound check.
const PROLOGUE_INSNS: usize = 8;
/// Functions are decoded up to this many bytes (RET search).
const MAX_FUNC_BYTES: u64 = 1 << 20;

/// Runtime functions gtrace probes (those present in a given version).
pub const PROBED_FUNCTIONS: &[&str] = &[
    "runtime.newproc1",
    "runtime.gopark",
    "runtime.ready",
    "runtime.execute",
    "runtime.goexit0",
    "runtime.goexit1",
    "runtime.gopanic",
    "runtime.gorecover",
    "runtime.recovery",
    "runtime.fatalpanic",
    "runtime.park_m",
    "runtime.stopTheWorldWithSema",
    "runtime.startTheWorldWithSema",
    "runtime.goschedImpl",
    "runtime.preemptPark",
    "runtime.reentersyscall",
    "runtime.entersyscallblock",
    "runtime.exitsyscall",
    "runtime.exitsyscall0",
    "runtime.exitsyscallNoP",
    "runtime.injectglist",
    "runtime.goyield_m",
    "runtime.gcStart",
    "runtime.gcMarkTermination",
    "runtime.gcAssistAlloc",
];

/// Why a site was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SiteReason {
    /// First instruction after the stack-bound check and its branch.
    AfterStackCheck,
    /// No stack-bound check in the prologue (NOSPLIT or frameless): the first instruction.
    NoStackCheck,
}

/// A chosen probe site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeSite {
    /// The function.
    pub function: String,
    /// Its entry (link-time).
    pub entry: u64,
    /// The site's link-time address.
    pub vaddr: u64,
    /// The site's file offset (what a uprobe is attached at).
    pub offset: u64,
    /// The instruction at the site, Intel syntax.
    pub instruction: String,
    /// Why this instruction.
    pub reason: SiteReason,
    /// True if the kernel emulates this instruction (cheap probe); false if it single-steps it.
    pub emulated: bool,
    /// True if an `ENDBR64` was skipped.
    pub skipped_endbr: bool,
}

/// One instruction of a function probed in place (a RET, or a call to another function).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RetSite {
    /// Link-time address.
    pub vaddr: u64,
    /// File offset.
    pub offset: u64,
}

/// Decodes up to `max` instructions of `f`.
fn decode(bin: &GoBinary, f: &Function, max: usize) -> Result<Vec<Instruction>> {
    let len = (f.end - f.entry).min(MAX_FUNC_BYTES) as usize;
    let bytes = bin.image().read_vaddr_upto(f.entry, len)?;
    let mut dec = Decoder::with_ip(64, bytes, f.entry, DecoderOptions::NONE);
    let mut out = Vec::new();
    while dec.can_decode() && out.len() < max {
        let insn = dec.decode();
        if insn.is_invalid() {
            return Err(GobinError::Decode {
                function: f.name.clone(),
                vaddr: insn.ip(),
                reason: "invalid instruction",
            });
        }
        out.push(insn);
    }
    Ok(out)
}

/// True if `arch/x86/kernel/uprobes.c` emulates the instruction rather than single-stepping.
pub fn kernel_emulates(insn: &Instruction) -> bool {
    // `branch_setup_xol_ops`: call rel32 (e8), jmp rel8/rel32 (eb/e9), jcc (7x, 0f 8x) — not
    // loop/jrcxz or indirect branches; `push_setup_xol_ops`: push r64 (50+r, REX.B 41 50+r).
    insn.code() == Code::Push_r64
        || insn.is_jcc_short_or_near()
        || insn.is_jmp_short_or_near()
        || insn.is_call_near()
}

/// `cmp <reg>, [r14+0x10]` / `[r14+0x18]`: comparing a stack pointer with `g.stackguard0`, or
/// `g.stackguard1` in `//go:systemstack` functions (e.g. `stopTheWorldWithSema`).
fn is_stack_guard_cmp(insn: &Instruction) -> bool {
    insn.mnemonic() == Mnemonic::Cmp
        && insn.op0_kind() == OpKind::Register
        && insn.op1_kind() == OpKind::Memory
        && insn.memory_base() == Register::R14
        && insn.memory_index() == Register::None
        && matches!(insn.memory_displacement64(), 0x10 | 0x18)
}

/// Formats one instruction in Intel syntax.
pub fn format(insn: &Instruction) -> String {
    let mut f = IntelFormatter::new();
    let mut s = String::new();
    f.format(insn, &mut s);
    s
}

/// The probe site of function `name` (rule in the module docs).
pub fn probe_site(bin: &GoBinary, name: &str) -> Result<ProbeSite> {
    let f = bin.func_by_name(name)?;
    probe_site_of(bin, &f)
}

/// [`probe_site`] for a function already looked up.
pub fn probe_site_of(bin: &GoBinary, f: &Function) -> Result<ProbeSite> {
    if bin.image().machine() != object::elf::EM_X86_64 {
        return Err(GobinError::Decode {
            function: f.name.clone(),
            vaddr: f.entry,
            reason: "probe sites are only computed for x86-64",
        });
    }
    let insns = decode(bin, f, PROLOGUE_INSNS)?;
    let skipped_endbr = insns.first().is_some_and(|i| i.code() == Code::Endbr64);
    let body = &insns[usize::from(skipped_endbr)..];
    let check = body.windows(2).position(|w| {
        is_stack_guard_cmp(&w[0]) && w[1].flow_control() == FlowControl::ConditionalBranch
    });
    let (site, reason) = match check {
        Some(i) => (body.get(i + 2), SiteReason::AfterStackCheck),
        None => (body.first(), SiteReason::NoStackCheck),
    };
    let site = site.ok_or(GobinError::Decode {
        function: f.name.clone(),
        vaddr: f.entry,
        reason: "the function ends inside its prologue",
    })?;
    let offset = bin
        .vaddr_to_offset(site.ip())
        .ok_or(GobinError::UnmappedVaddr {
            vaddr: site.ip(),
            len: 1,
        })?;
    Ok(ProbeSite {
        function: f.name.clone(),
        entry: f.entry,
        vaddr: site.ip(),
        offset,
        instruction: format(site),
        reason,
        emulated: kernel_emulates(site),
        skipped_endbr,
    })
}

/// All RET instructions of function `name`.
pub fn ret_sites(bin: &GoBinary, name: &str) -> Result<Vec<RetSite>> {
    let f = bin.func_by_name(name)?;
    sites(bin, &decode(bin, &f, usize::MAX)?, |i| {
        i.flow_control() == FlowControl::Return
    })
}

/// The direct calls (`call rel32`, which the kernel emulates) from function `from` to function
/// `to`, in address order; empty when `to` is inlined or not called.
pub fn call_sites(bin: &GoBinary, from: &str, to: &str) -> Result<Vec<RetSite>> {
    let target = bin.func_by_name(to)?.entry;
    let f = bin.func_by_name(from)?;
    sites(bin, &decode(bin, &f, usize::MAX)?, |i| {
        i.flow_control() == FlowControl::Call && i.near_branch_target() == target
    })
}

/// The instructions of `insns` that `keep` selects, as probe sites.
fn sites(
    bin: &GoBinary,
    insns: &[Instruction],
    keep: impl Fn(&Instruction) -> bool,
) -> Result<Vec<RetSite>> {
    insns
        .iter()
        .filter(|i| keep(i))
        .map(|i| {
            let offset = bin
                .vaddr_to_offset(i.ip())
                .ok_or(GobinError::UnmappedVaddr {
                    vaddr: i.ip(),
                    len: 1,
                })?;
            Ok(RetSite {
                vaddr: i.ip(),
                offset,
            })
        })
        .collect()
}

/// The first `n` instructions of a function as `(vaddr, text)` (for `gtrace inspect`).
pub fn disassemble(bin: &GoBinary, f: &Function, n: usize) -> Result<Vec<(u64, String)>> {
    Ok(decode(bin, f, n)?
        .iter()
        .map(|i| (i.ip(), format(i)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(bytes: &[u8]) -> Instruction {
        Decoder::with_ip(64, bytes, 0x1000, DecoderOptions::NONE).decode()
    }

    #[test]
    fn emulation_follows_the_kernel() {
        for (bytes, emulated) in [
            (&[0x55][..], true),                // push rbp
            (&[0x41, 0x54], true),              // push r12
            (&[0x76, 0x10], true),              // jbe rel8
            (&[0x0f, 0x86, 0, 1, 0, 0], true),  // jbe rel32
            (&[0xe8, 0, 0, 0, 0], true),        // call rel32
            (&[0xeb, 0x00], true),              // jmp rel8
            (&[0x49, 0x3b, 0x66, 0x10], false), // cmp rsp,[r14+10h]
            (&[0x48, 0x83, 0xec, 0x18], false), // sub rsp,18h
            (&[0x48, 0x89, 0xe5], false),       // mov rbp,rsp
            (&[0xff, 0xd0], false),             // call rax
            (&[0xe3, 0x00], false),             // jrcxz
            (&[0xc3], false),                   // ret
        ] {
            let insn = one(bytes);
            assert_eq!(kernel_emulates(&insn), emulated, "{}", format(&insn));
        }
    }

    #[test]
    fn stack_guard_checks() {
        assert!(is_stack_guard_cmp(&one(&[0x49, 0x3b, 0x66, 0x10]))); // cmp rsp,[r14+10h]
        assert!(is_stack_guard_cmp(&one(&[0x4d, 0x3b, 0x66, 0x18]))); // cmp r12,[r14+18h]
        assert!(!is_stack_guard_cmp(&one(&[0x49, 0x3b, 0x66, 0x20]))); // other g field
        assert!(!is_stack_guard_cmp(&one(&[0x48, 0x3b, 0x61, 0x10]))); // cmp rsp,[rcx+10h]
    }
}
