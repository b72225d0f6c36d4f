//! The process gtrace looks at: a PID given with `-p`, resolved through `/proc`.
//!
//! Paths go through `/proc/PID/exe` and `/proc/PID/root` so that a binary that was deleted
//! after start, or that lives in another mount namespace (a container), is still the exact
//! file the process runs — the file uprobes must be attached to.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

/// Why a PID cannot be used as a target.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// `/proc/PID` does not exist.
    #[error("no process with PID {pid} exists (it may have exited)")]
    NoSuchProcess {
        /// The PID asked for.
        pid: u32,
    },
    /// `/proc/PID/exe` could not be read for lack of privileges.
    #[error(
        "permission denied reading /proc/{pid}/exe: gtrace needs root (or CAP_SYS_PTRACE) to \
         look inside another process; run it with sudo"
    )]
    PermissionDenied {
        /// The PID asked for.
        pid: u32,
    },
    /// The process is a kernel thread or a zombie and has no executable.
    #[error("process {pid} has no executable (a kernel thread or a zombie)")]
    NoExecutable {
        /// The PID asked for.
        pid: u32,
    },
    /// Another I/O error while reading `/proc/PID`.
    #[error("reading /proc/{pid}: {source}")]
    Proc {
        /// The PID asked for.
        pid: u32,
        /// The underlying error.
        source: io::Error,
    },
}

/// A running process chosen as the target.
#[derive(Debug, Clone)]
pub struct Process {
    /// Its PID (tgid) in gtrace's PID namespace.
    pub pid: u32,
    /// The executable's path as the process sees it (may not exist in our mount namespace,
    /// may be `… (deleted)`), for display.
    pub exe_display: PathBuf,
    /// A path that opens the very file the process runs: `/proc/PID/exe`.
    pub exe: PathBuf,
}

impl Process {
    /// Resolves `pid`, checking that it exists and has an executable we may open.
    pub fn from_pid(pid: u32) -> Result<Self, TargetError> {
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        if !proc_dir.exists() {
            return Err(TargetError::NoSuchProcess { pid });
        }
        let exe = proc_dir.join("exe");
        let exe_display = match fs::read_link(&exe) {
            Ok(p) => p,
            Err(e) => return Err(classify(pid, e)),
        };
        // Opening proves we may read it (ptrace access mode check), not just readlink.
        if let Err(e) = fs::File::open(&exe) {
            return Err(classify(pid, e));
        }
        Ok(Self {
            pid,
            exe_display,
            exe,
        })
    }

    /// True while the process still exists (and is not a zombie).
    pub fn is_alive(&self) -> bool {
        fs::read_to_string(format!("/proc/{}/stat", self.pid)).is_ok_and(|s| {
            s.rsplit_once(')')
                .is_none_or(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
    }

    /// The address where `file_offset` of the executable is mapped, from `/proc/PID/maps`.
    pub fn address_of_file_offset(&self, file_offset: u64) -> io::Result<Option<u64>> {
        let exe = fs::read_link(&self.exe)?;
        let maps = fs::read_to_string(format!("/proc/{}/maps", self.pid))?;
        Ok(maps.lines().find_map(|line| {
            let m = MapsLine::parse(line)?;
            (m.path == exe.as_os_str()
                && file_offset >= m.offset
                && file_offset < m.offset + (m.end - m.start))
                .then(|| m.start + (file_offset - m.offset))
        }))
    }

    /// `/proc/PID/root` joined with an absolute path seen by the process.
    pub fn in_root(&self, path: &Path) -> PathBuf {
        let rel = path.strip_prefix("/").unwrap_or(path);
        PathBuf::from(format!("/proc/{}/root", self.pid)).join(rel)
    }
}

/// One line of `/proc/PID/maps`.
#[derive(Debug, PartialEq, Eq)]
pub struct MapsLine<'a> {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Permissions, e.g. `r-xp`.
    pub perms: &'a str,
    /// File offset of `start`.
    pub offset: u64,
    /// The mapped file (or `[heap]`, empty for anonymous), ` (deleted)` kept.
    pub path: &'a std::ffi::OsStr,
}

impl<'a> MapsLine<'a> {
    /// Parses one line; `None` when it is not in the kernel's format.
    pub fn parse(line: &'a str) -> Option<Self> {
        let mut it = line.splitn(6, ' ');
        let (start, end) = it.next()?.split_once('-')?;
        let perms = it.next()?;
        let offset = u64::from_str_radix(it.next()?, 16).ok()?;
        let _dev = it.next()?;
        let _inode = it.next()?;
        let path = it.next().unwrap_or("").trim_start();
        Some(Self {
            start: u64::from_str_radix(start, 16).ok()?,
            end: u64::from_str_radix(end, 16).ok()?,
            perms,
            offset,
            path: std::ffi::OsStr::new(path),
        })
    }
}

fn classify(pid: u32, e: io::Error) -> TargetError {
    match e.kind() {
        io::ErrorKind::NotFound => {
            if Path::new(&format!("/proc/{pid}")).exists() {
                TargetError::NoExecutable { pid }
            } else {
                TargetError::NoSuchProcess { pid }
            }
        }
        io::ErrorKind::PermissionDenied => TargetError::PermissionDenied { pid },
        _ => TargetError::Proc { pid, source: e },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_is_a_target() {
        let me = Process::from_pid(std::process::id()).unwrap();
        assert!(me.is_alive());
        assert_eq!(
            fs::canonicalize(&me.exe).unwrap(),
            fs::canonicalize(std::env::current_exe().unwrap()).unwrap()
        );
        assert_eq!(
            me.in_root(Path::new("/etc/hostname")),
            PathBuf::from(format!("/proc/{}/root/etc/hostname", me.pid))
        );
    }

    #[test]
    fn maps_lines() {
        let l = MapsLine::parse(
            "55d0c0a00000-55d0c0b00000 r-xp 00001000 fd:00 1234          /usr/bin/x (deleted)",
        )
        .unwrap();
        assert_eq!(
            (l.start, l.end, l.perms, l.offset),
            (0x55d0_c0a0_0000, 0x55d0_c0b0_0000, "r-xp", 0x1000)
        );
        assert_eq!(l.path, "/usr/bin/x (deleted)");
        assert_eq!(
            MapsLine::parse("7ffd-7ffe rw-p 00000000 00:00 0")
                .unwrap()
                .path,
            ""
        );
        assert!(MapsLine::parse("garbage").is_none());
        // Our own text is mapped from our executable.
        let me = Process::from_pid(std::process::id()).unwrap();
        let text_off = 0x1000;
        assert!(me.address_of_file_offset(text_off).unwrap().is_some());
    }

    #[test]
    fn missing_pid() {
        // PIDs are below pid_max (<= 2^22), so this one cannot exist.
        assert!(matches!(
            Process::from_pid(u32::MAX - 1),
            Err(TargetError::NoSuchProcess { .. })
        ));
    }
}
