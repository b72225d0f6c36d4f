//! Finding the runtime's goroutine list (`allglen` + `allgptr`, or the `allgs` slice).
//!
//! With data symbols the addresses are simply looked up. Stripped binaries have none, so the
//! addresses are recovered from code: `runtime.forEachGRace` (present in every supported
//! version, named by pclntab even when stripped) loads `allglen` and then `allgptr` with
//! RIP-relative `MOV`s (runtime/proc.go: `ptr, length := allgptr, allglen` reads them with
//! `atomic.Loaduintptr(&allglen)` first). Whatever was found is validated against the target
//! before it is trusted: a sane length, readable pointers, and `g` structs whose goids and
//! statuses make sense.

use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

use super::gstruct::{G_SCAN, GOffsets};
use crate::memory::MemorySource;

/// More goroutines than this means the length word is garbage.
pub const MAX_GOROUTINES: u64 = 50_000_000;

/// Where the goroutine list lives in the target (runtime addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllgsLocation {
    /// `runtime.allglen` and `runtime.allgptr` (lock-free pair, Go 1.16+).
    LenPtr {
        /// Address of `allglen` (uintptr).
        len_addr: u64,
        /// Address of `allgptr` (`**g`).
        ptr_addr: u64,
    },
    /// `runtime.allgs`, a `[]*g` slice header.
    Slice {
        /// Address of the slice header.
        addr: u64,
    },
}

/// Why the goroutine list could not be found or trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LocateError {
    /// Neither data symbols nor decodable code led to it.
    #[error(
        "cannot find the runtime's goroutine list: no runtime.allglen/allgptr/allgs symbols and no \
         usable reference in runtime.forEachGRace"
    )]
    NotFound,
    /// Candidates were found but the target's memory did not look like a goroutine list.
    #[error("the goroutine list candidate at {addr:#x} does not hold valid goroutines: {why}")]
    Invalid {
        /// The candidate's address.
        addr: u64,
        /// What did not look right.
        why: String,
    },
}

/// The RIP-relative memory operands of `MOV reg, [rip+disp]` loads in `code` (decoded at
/// runtime address `ip`), in program order, without repeats.
pub fn rip_relative_loads(code: &[u8], ip: u64) -> Vec<u64> {
    let mut decoder = Decoder::with_ip(64, code, ip, DecoderOptions::NONE);
    let mut insn = Instruction::default();
    let mut out = Vec::new();
    while decoder.can_decode() {
        decoder.decode_out(&mut insn);
        if insn.is_invalid() {
            break;
        }
        let mov = insn.mnemonic() == Mnemonic::Mov
            && insn.op_count() == 2
            && insn.op0_kind() == OpKind::Register
            && insn.op1_kind() == OpKind::Memory
            && insn.is_ip_rel_memory_operand()
            && insn.memory_base() == Register::RIP;
        if mov {
            let addr = insn.ip_rel_memory_address();
            if !out.contains(&addr) {
                out.push(addr);
            }
        }
    }
    out
}

/// Candidate locations from the code of `runtime.forEachGRace` (`allglen` is loaded first).
pub fn candidates_from_for_each_g_race(code: &[u8], entry: u64) -> Vec<AllgsLocation> {
    let loads = rip_relative_loads(code, entry);
    let mut out = Vec::new();
    if let [a, b, ..] = loads[..] {
        out.push(AllgsLocation::LenPtr {
            len_addr: a,
            ptr_addr: b,
        });
        // Should a compiler ever swap the loads, validation picks the right order.
        out.push(AllgsLocation::LenPtr {
            len_addr: b,
            ptr_addr: a,
        });
    }
    out
}

/// Reads the current `(pointer to the *g array, length)` of the list.
pub fn read_list<M: MemorySource>(mem: &M, loc: AllgsLocation) -> Result<(u64, u64), LocateError> {
    let invalid = |addr: u64, why: &str| LocateError::Invalid {
        addr,
        why: why.to_owned(),
    };
    let (ptr, len, at) = match loc {
        AllgsLocation::LenPtr { len_addr, ptr_addr } => {
            // Length first, as forEachGRace: allgptr always holds at least allglen entries.
            let len = mem
                .read_u64(len_addr)
                .map_err(|_| invalid(len_addr, "length unreadable"))?;
            let ptr = mem
                .read_u64(ptr_addr)
                .map_err(|_| invalid(ptr_addr, "pointer unreadable"))?;
            (ptr, len, len_addr)
        }
        AllgsLocation::Slice { addr } => {
            let mut b = [0u8; 16];
            mem.read_at(addr, &mut b)
                .map_err(|_| invalid(addr, "slice header unreadable"))?;
            let ptr = u64::from_le_bytes(b[..8].try_into().unwrap_or_default());
            let len = u64::from_le_bytes(b[8..].try_into().unwrap_or_default());
            (ptr, len, addr)
        }
    };
    if len > MAX_GOROUTINES {
        return Err(invalid(at, &format!("length {len} is not plausible")));
    }
    if len > 0 && (ptr == 0 || ptr % 8 != 0) {
        return Err(invalid(
            at,
            &format!("array pointer {ptr:#x} is not plausible"),
        ));
    }
    Ok((ptr, len))
}

/// Checks that `loc` holds a goroutine list: up to 64 of its first `g`s must be readable,
/// with in-range statuses, and the live ones with distinct non-zero goids and sane stacks.
pub fn validate<M: MemorySource>(
    mem: &M,
    offs: &GOffsets,
    loc: AllgsLocation,
) -> Result<(), LocateError> {
    let (ptr, len) = read_list(mem, loc)?;
    let at = match loc {
        AllgsLocation::LenPtr { len_addr, .. } => len_addr,
        AllgsLocation::Slice { addr } => addr,
    };
    let invalid = |why: String| LocateError::Invalid { addr: at, why };
    if len == 0 {
        return Err(invalid(
            "the list is empty (a running Go program has at least one goroutine)".into(),
        ));
    }
    let n = len.min(64) as usize;
    let mut raw = vec![0u8; n * 8];
    mem.read_at(ptr, &mut raw)
        .map_err(|_| invalid(format!("array at {ptr:#x} unreadable")))?;
    let mut goids = Vec::with_capacity(n);
    let mut buf = vec![0u8; offs.read_len()];
    for chunk in raw.chunks_exact(8) {
        let gp = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        if gp == 0 || gp % 8 != 0 {
            return Err(invalid(format!("entry {gp:#x} is not a g pointer")));
        }
        mem.read_at(gp, &mut buf)
            .map_err(|_| invalid(format!("g at {gp:#x} unreadable")))?;
        let g = offs
            .decode(gp, &buf)
            .ok_or_else(|| invalid("short g".into()))?;
        if g.status & !G_SCAN > 11 {
            return Err(invalid(format!("g at {gp:#x} has status {:#x}", g.status)));
        }
        if g.base_status() != super::gstruct::status::DEAD {
            if g.stack_lo >= g.stack_hi || g.stack_hi - g.stack_lo > (1 << 30) {
                return Err(invalid(format!(
                    "g at {gp:#x} has stack [{:#x}, {:#x})",
                    g.stack_lo, g.stack_hi
                )));
            }
            if g.goid == 0 || goids.contains(&g.goid) {
                return Err(invalid(format!("g at {gp:#x} has goid {}", g.goid)));
            }
            goids.push(g.goid);
        }
    }
    if goids.is_empty() {
        return Err(invalid("no live goroutine among the first entries".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_rip_relative_movs() {
        // mov rax, [rip+0x10]; mov rcx, [rip+0x20]; lea rdx, [rip+0x30]; mov rax, [rip+0x10]
        let code = [
            0x48, 0x8b, 0x05, 0x10, 0, 0, 0, //
            0x48, 0x8b, 0x0d, 0x20, 0, 0, 0, //
            0x48, 0x8d, 0x15, 0x30, 0, 0, 0, //
            0x48, 0x8b, 0x05, 0xfb, 0xff, 0xff, 0xff,
        ];
        let ip = 0x40_0000;
        let loads = rip_relative_loads(&code, ip);
        assert_eq!(loads, vec![ip + 7 + 0x10, ip + 14 + 0x20]);
        let c = candidates_from_for_each_g_race(&code, ip);
        assert_eq!(
            c[0],
            AllgsLocation::LenPtr {
                len_addr: ip + 0x17,
                ptr_addr: ip + 0x2e
            }
        );
    }
}
