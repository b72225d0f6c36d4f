//! The few fields of `runtime.g` a dump reads, decoded from raw bytes.
//!
//! Offsets come from the typed runtime layout ([`crate::gobin::layout`]) of the target's Go
//! version; this module copies only what the dump needs into [`GOffsets`] so one read of the
//! first [`GOffsets::read_len`] bytes of each `g` is enough.

use crate::gobin::layout::RuntimeLayout;

// The status values are defined once, next to the status-name tables.
pub use crate::gobin::waitreason::{GSTATUS_SCAN as G_SCAN, gstatus as status};

/// The runtime's `gStatusStrings` for a status without the scan bit; `None` prints `???`.
pub fn status_string(st: u32, minor: u32) -> Option<&'static str> {
    Some(match st {
        status::IDLE => "idle",
        status::RUNNABLE => "runnable",
        status::RUNNING => "running",
        status::SYSCALL => "syscall",
        status::WAITING => "waiting",
        // Unused slots of the array print as an empty string.
        5 | 7 => "",
        status::DEAD => "dead",
        status::COPYSTACK => "copystack",
        status::PREEMPTED => "preempted",
        status::LEAKED if minor >= 26 => "leaked",
        status::DEADEXTRA if minor >= 26 => "waiting for cgo callback",
        _ => return None,
    })
}

/// Byte offsets inside `runtime.g` (amd64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GOffsets {
    /// `stack.lo`.
    pub stack_lo: u32,
    /// `stack.hi`.
    pub stack_hi: u32,
    /// `m`.
    pub m: u32,
    /// `sched.sp`.
    pub sched_sp: u32,
    /// `sched.pc`.
    pub sched_pc: u32,
    /// `sched.bp`.
    pub sched_bp: u32,
    /// `syscallsp`.
    pub syscallsp: u32,
    /// `syscallpc`.
    pub syscallpc: u32,
    /// `syscallbp` (1.23+).
    pub syscallbp: Option<u32>,
    /// `atomicstatus` (u32).
    pub atomicstatus: u32,
    /// `goid` (u64; i64 before 1.20, same bits for real ids).
    pub goid: u32,
    /// `waitsince` (i64 nanotime).
    pub waitsince: u32,
    /// `waitreason` (u8).
    pub waitreason: u32,
    /// `lockedm` (muintptr).
    pub lockedm: u32,
    /// `parentGoid` (1.21+).
    pub parent_goid: Option<u32>,
    /// `gopc`.
    pub gopc: u32,
    /// `startpc`.
    pub startpc: u32,
    /// `m.procid` (in the `m` that `g.m` points to): the thread id.
    pub m_procid: Option<u32>,
}

impl GOffsets {
    /// Takes the offsets out of a full runtime layout.
    pub fn from_layout(l: &RuntimeLayout) -> Self {
        let g = &l.g;
        let s = g.sched;
        Self {
            stack_lo: g.stack_lo,
            stack_hi: g.stack_hi,
            m: g.m,
            sched_sp: s + l.gobuf.sp,
            sched_pc: s + l.gobuf.pc,
            sched_bp: s + l.gobuf.bp,
            syscallsp: g.syscallsp,
            syscallpc: g.syscallpc,
            syscallbp: g.syscallbp,
            atomicstatus: g.atomicstatus,
            goid: g.goid,
            waitsince: g.waitsince,
            waitreason: g.waitreason,
            lockedm: g.lockedm,
            parent_goid: g.parent_goid,
            gopc: g.gopc,
            startpc: g.startpc,
            m_procid: Some(l.m.procid),
        }
    }

    /// How many bytes from the start of a `g` hold every field used here.
    pub fn read_len(&self) -> usize {
        let ends = [
            self.stack_lo + 8,
            self.stack_hi + 8,
            self.m + 8,
            self.sched_sp + 8,
            self.sched_pc + 8,
            self.sched_bp + 8,
            self.syscallsp + 8,
            self.syscallpc + 8,
            self.syscallbp.map_or(0, |o| o + 8),
            self.atomicstatus + 4,
            self.goid + 8,
            self.waitsince + 8,
            self.waitreason + 1,
            self.lockedm + 8,
            self.parent_goid.map_or(0, |o| o + 8),
            self.gopc + 8,
            self.startpc + 8,
        ];
        ends.into_iter().max().unwrap_or(0) as usize
    }

    /// Decodes the fields; `None` if `bytes` is shorter than [`Self::read_len`].
    pub fn decode(&self, addr: u64, bytes: &[u8]) -> Option<RawG> {
        let u64_at = |off: u32| -> Option<u64> {
            let off = off as usize;
            Some(u64::from_le_bytes(
                bytes.get(off..off + 8)?.try_into().ok()?,
            ))
        };
        let u32_at = |off: u32| -> Option<u32> {
            let off = off as usize;
            Some(u32::from_le_bytes(
                bytes.get(off..off + 4)?.try_into().ok()?,
            ))
        };
        Some(RawG {
            addr,
            goid: u64_at(self.goid)?,
            status: u32_at(self.atomicstatus)?,
            waitreason: *bytes.get(self.waitreason as usize)?,
            waitsince: u64_at(self.waitsince)? as i64,
            stack_lo: u64_at(self.stack_lo)?,
            stack_hi: u64_at(self.stack_hi)?,
            m: u64_at(self.m)?,
            sched_sp: u64_at(self.sched_sp)?,
            sched_pc: u64_at(self.sched_pc)?,
            sched_bp: u64_at(self.sched_bp)?,
            syscallsp: u64_at(self.syscallsp)?,
            syscallpc: u64_at(self.syscallpc)?,
            syscallbp: match self.syscallbp {
                Some(o) => u64_at(o)?,
                None => 0,
            },
            lockedm: u64_at(self.lockedm)?,
            parent_goid: match self.parent_goid {
                Some(o) => u64_at(o)?,
                None => 0,
            },
            gopc: u64_at(self.gopc)?,
            startpc: u64_at(self.startpc)?,
        })
    }
}

/// The fields of one `g`, as read (possibly torn: the goroutine keeps running).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawG {
    /// Address of the `g`.
    pub addr: u64,
    /// `goid`.
    pub goid: u64,
    /// `atomicstatus`, scan bit included.
    pub status: u32,
    /// `waitreason`.
    pub waitreason: u8,
    /// `waitsince` (nanotime, 0 = not yet stamped by a GC).
    pub waitsince: i64,
    /// `stack.lo`.
    pub stack_lo: u64,
    /// `stack.hi`.
    pub stack_hi: u64,
    /// `m`.
    pub m: u64,
    /// `sched.sp`.
    pub sched_sp: u64,
    /// `sched.pc`.
    pub sched_pc: u64,
    /// `sched.bp`.
    pub sched_bp: u64,
    /// `syscallsp`.
    pub syscallsp: u64,
    /// `syscallpc`.
    pub syscallpc: u64,
    /// `syscallbp` (0 before 1.23).
    pub syscallbp: u64,
    /// `lockedm`.
    pub lockedm: u64,
    /// `parentGoid` (0 before 1.21).
    pub parent_goid: u64,
    /// `gopc`.
    pub gopc: u64,
    /// `startpc`.
    pub startpc: u64,
}

impl RawG {
    /// The status without the scan bit.
    pub fn base_status(&self) -> u32 {
        self.status & !G_SCAN
    }

    /// The fields that say whether the goroutine moved between two reads.
    pub fn same_state(&self, other: &Self) -> bool {
        (
            self.goid,
            self.status,
            self.waitreason,
            self.sched_sp,
            self.sched_pc,
        ) == (
            other.goid,
            other.status,
            other.waitreason,
            other.sched_sp,
            other.sched_pc,
        ) && (self.syscallsp, self.syscallpc) == (other.syscallsp, other.syscallpc)
    }
}
