//! Reading another process's memory without stopping it.
//!
//! Everything that decodes runtime state (the goroutine list, `g` structs, stacks) is generic
//! over [`MemorySource`], so the same decoder runs on a live process ([`ProcessMemory`],
//! `process_vm_readv`, no ptrace stop) and on recorded bytes ([`RecordedMemory`]) in tests that
//! need no root and no Go toolchain.

mod process;
mod recorded;

pub use process::ProcessMemory;
pub use recorded::{RecordedMemory, Recording};

/// A failed read of target memory.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryError {
    /// The process exited (or never existed).
    #[error("process {pid} does not exist (it may have exited)")]
    NoSuchProcess {
        /// The target process.
        pid: i32,
    },
    /// The kernel refused access (ptrace access mode check).
    #[error(
        "not permitted to read the memory of process {pid} (ptrace access mode check: run as the \
         same user with kernel.yama.ptrace_scope=0, or as root / with CAP_SYS_PTRACE)"
    )]
    PermissionDenied {
        /// The target process.
        pid: i32,
    },
    /// Some of the requested range is not mapped in the target.
    #[error("address range {addr:#x}+{len} is not readable in the target")]
    Unmapped {
        /// Start of the range.
        addr: u64,
        /// Length of the range in bytes.
        len: usize,
    },
    /// Any other errno from the kernel.
    #[error("reading {len} bytes at {addr:#x} failed: {source}")]
    Os {
        /// Start of the range.
        addr: u64,
        /// Length of the range in bytes.
        len: usize,
        /// The kernel's error.
        #[source]
        source: std::sync::Arc<std::io::Error>,
    },
}

/// Where bytes of a (possibly running) process come from.
pub trait MemorySource {
    /// Fills `buf` with the bytes at `addr`; all or nothing.
    fn read_at(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError>;

    /// Reads many ranges at once: range `i` is `reqs[i] = (addr, len)`, and the ranges land
    /// one after the other in `out` (range `i` starts at the sum of the earlier lengths);
    /// `ok[i]` says whether range `i` could be read.
    ///
    /// Live sources override this to batch system calls; the default reads one by one.
    /// `out` must hold the sum of the lengths and `ok` one flag per range; ranges that do not
    /// fit are reported as failed.
    fn read_scatter(&self, reqs: &[(u64, usize)], out: &mut [u8], ok: &mut [bool]) {
        let mut off = 0usize;
        for (&(addr, len), flag) in reqs.iter().zip(ok.iter_mut()) {
            *flag = match out.get_mut(off..off.saturating_add(len)) {
                Some(chunk) => self.read_at(addr, chunk).is_ok(),
                None => false,
            };
            off = off.saturating_add(len);
        }
    }

    /// Reads a little-endian `u64`.
    fn read_u64(&self, addr: u64) -> Result<u64, MemoryError> {
        let mut b = [0u8; 8];
        self.read_at(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
}

impl<M: MemorySource + ?Sized> MemorySource for &M {
    fn read_at(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        (**self).read_at(addr, buf)
    }

    fn read_scatter(&self, reqs: &[(u64, usize)], out: &mut [u8], ok: &mut [bool]) {
        (**self).read_scatter(reqs, out, ok);
    }
}
