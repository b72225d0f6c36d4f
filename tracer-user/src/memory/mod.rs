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

    /// Reads many equally sized ranges at once: range `i` (at `addrs[i]`) lands in
    /// `out[i * len..(i + 1) * len]` and `ok[i]` says whether it could be read.
    ///
    /// Live sources override this to batch system calls; the default reads one by one.
    /// `out` must hold `addrs.len() * len` bytes and `ok` `addrs.len()` flags.
    fn read_scatter(&self, addrs: &[u64], len: usize, out: &mut [u8], ok: &mut [bool]) {
        for ((addr, chunk), flag) in addrs
            .iter()
            .zip(out.chunks_exact_mut(len))
            .zip(ok.iter_mut())
        {
            *flag = self.read_at(*addr, chunk).is_ok();
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

    fn read_scatter(&self, addrs: &[u64], len: usize, out: &mut [u8], ok: &mut [bool]) {
        (**self).read_scatter(addrs, len, out, ok);
    }
}
