//! A live process read with `process_vm_readv(2)`: no ptrace stop, the target keeps running.
//!
//! The kernel checks `PTRACE_MODE_ATTACH_REALCREDS` for this call, so the permission rules are
//! those of ptrace (same uid and Yama `ptrace_scope` 0, or `CAP_SYS_PTRACE`), but the target
//! is never stopped. Reads are therefore racy by nature; callers detect torn reads.

use std::{io, sync::Arc};

use super::{MemoryError, MemorySource};

/// The kernel's limit on iovecs per call (`UIO_MAXIOV`).
const MAX_IOV: usize = 1024;

/// The memory of a running process.
#[derive(Debug, Clone, Copy)]
pub struct ProcessMemory {
    pid: i32,
}

impl ProcessMemory {
    /// Reads the memory of `pid`. Nothing is checked until the first read.
    pub const fn new(pid: i32) -> Self {
        Self { pid }
    }

    /// The target's process id.
    pub const fn pid(&self) -> i32 {
        self.pid
    }

    fn error(self, addr: u64, len: usize, err: io::Error) -> MemoryError {
        match err.raw_os_error() {
            Some(libc::ESRCH) => MemoryError::NoSuchProcess { pid: self.pid },
            Some(libc::EPERM | libc::EACCES) => MemoryError::PermissionDenied { pid: self.pid },
            Some(libc::EFAULT | libc::EIO) => MemoryError::Unmapped { addr, len },
            _ => MemoryError::Os {
                addr,
                len,
                source: Arc::new(err),
            },
        }
    }

    /// One `process_vm_readv` call: returns the number of bytes read (reads stop at the first
    /// remote range that faults).
    fn readv(&self, local: &mut [libc::iovec], remote: &[libc::iovec]) -> io::Result<usize> {
        debug_assert!(local.len() <= MAX_IOV && remote.len() <= MAX_IOV);
        // SAFETY: every local iovec points into a live `&mut [u8]` owned by the caller for the
        // duration of the call, with its exact length; remote iovecs are only addresses in the
        // other process, which the kernel validates.
        let n = unsafe {
            libc::process_vm_readv(
                self.pid,
                local.as_ptr(),
                local.len() as libc::c_ulong,
                remote.as_ptr(),
                remote.len() as libc::c_ulong,
                0,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}

impl MemorySource for ProcessMemory {
    fn read_at(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let len = buf.len();
        if len == 0 {
            return Ok(());
        }
        let mut local = [libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: len,
        }];
        let remote = [libc::iovec {
            iov_base: addr as usize as *mut libc::c_void,
            iov_len: len,
        }];
        match self.readv(&mut local, &remote) {
            Ok(n) if n == len => Ok(()),
            Ok(_) => Err(MemoryError::Unmapped { addr, len }),
            Err(e) => Err(self.error(addr, len, e)),
        }
    }

    /// Batches up to 1024 ranges per system call. A faulting range ends the kernel's copy, so
    /// the batch resumes right after it; a range that faults costs one extra call.
    fn read_scatter(&self, reqs: &[(u64, usize)], out: &mut [u8], ok: &mut [bool]) {
        ok.fill(false);
        // Start offset of every range in `out`; ranges that do not fit are dropped.
        let mut offs = Vec::with_capacity(reqs.len().min(ok.len()));
        let mut off = 0usize;
        for &(_, len) in reqs.iter().take(ok.len()) {
            match off.checked_add(len) {
                Some(end) if end <= out.len() => offs.push(off),
                _ => break,
            }
            off += len;
        }
        let n = offs.len();
        let mut start = 0;
        while start < n {
            let end = (start + MAX_IOV).min(n);
            let base = out.as_mut_ptr();
            let mut local = Vec::with_capacity(end - start);
            let mut remote = Vec::with_capacity(end - start);
            for i in start..end {
                let (addr, len) = reqs[i];
                // SAFETY: offs[i] + len <= out.len() was checked above, so the pointer stays
                // inside `out`, which is exclusively borrowed for this whole function.
                let p = unsafe { base.add(offs[i]) };
                local.push(libc::iovec {
                    iov_base: p.cast(),
                    iov_len: len,
                });
                remote.push(libc::iovec {
                    iov_base: addr as usize as *mut libc::c_void,
                    iov_len: len,
                });
            }
            match self.readv(&mut local, &remote) {
                Ok(mut bytes) => {
                    let mut i = start;
                    while i < end && bytes >= reqs[i].1 {
                        bytes -= reqs[i].1;
                        ok[i] = true;
                        i += 1;
                    }
                    // Range `i` faulted (or was cut short): skip it.
                    start = i + 1;
                }
                Err(e) if e.raw_os_error() == Some(libc::EFAULT) => start += 1,
                // The process is gone or forbidden: nothing else will succeed.
                Err(_) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_memory() {
        let data: Vec<u8> = (0..=255).collect();
        let me = ProcessMemory::new(std::process::id() as i32);
        let mut buf = [0u8; 16];
        me.read_at(data.as_ptr() as u64 + 10, &mut buf).unwrap();
        assert_eq!(buf[..], data[10..26]);
        assert!(matches!(
            me.read_at(8, &mut buf),
            Err(MemoryError::Unmapped { .. })
        ));
    }

    #[test]
    fn scatter_skips_bad_ranges() {
        let a = [1u8; 8];
        let b = [2u8; 8];
        let me = ProcessMemory::new(std::process::id() as i32);
        let reqs = [
            (a.as_ptr() as u64, 8),
            (16, 8),
            (b.as_ptr() as u64 + 2, 6),
            (0, 8),
            (a.as_ptr() as u64, 4),
        ];
        let mut out = [0u8; 34];
        let mut ok = [false; 5];
        me.read_scatter(&reqs, &mut out, &mut ok);
        assert_eq!(ok, [true, false, true, false, true]);
        assert_eq!(out[16..22], b[2..]);
        assert_eq!(out[30..34], a[..4]);
    }

    #[test]
    fn missing_process() {
        // PID numbers above pid_max (at most 2^22) never exist.
        let gone = ProcessMemory::new(0x7fff_fff0);
        let mut buf = [0u8; 8];
        assert!(matches!(
            gone.read_at(0x1000, &mut buf),
            Err(MemoryError::NoSuchProcess { .. })
        ));
    }
}
