//! What `/proc` says about a target process: its executable's load bias (PIE) and why we
//! may not be allowed to read its memory.

use std::{fmt::Write as _, fs, path::Path};

/// One mapping of the target's executable, from `/proc/PID/maps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExeMapping {
    /// Start address in the process.
    pub start: u64,
    /// End address (exclusive).
    pub end: u64,
    /// File offset of `start`.
    pub offset: u64,
}

/// The mappings of `exe_path` listed in a `/proc/PID/maps` text.
pub fn exe_mappings(maps: &str, exe_path: &str) -> Vec<ExeMapping> {
    maps.lines()
        .filter_map(|line| {
            let mut it = line.split_whitespace();
            let range = it.next()?;
            let _perms = it.next()?;
            let offset = u64::from_str_radix(it.next()?, 16).ok()?;
            let _dev = it.next()?;
            let _inode = it.next()?;
            let path = it.collect::<Vec<_>>().join(" ");
            if path != exe_path && path.strip_suffix(" (deleted)") != Some(exe_path) {
                return None;
            }
            let (s, e) = range.split_once('-')?;
            Some(ExeMapping {
                start: u64::from_str_radix(s, 16).ok()?,
                end: u64::from_str_radix(e, 16).ok()?,
                offset,
            })
        })
        .collect()
}

/// The load bias of a PIE executable: runtime address minus link-time virtual address.
///
/// `segments` are the ELF `PT_LOAD` `(p_vaddr, p_offset)` pairs; the bias comes from the
/// mapping that holds the first segment's file offset (0 for non-PIE executables).
pub fn load_bias(mappings: &[ExeMapping], segments: &[(u64, u64)]) -> Option<u64> {
    let &(vaddr, off) = segments.iter().min_by_key(|s| s.1)?;
    let m = mappings
        .iter()
        .find(|m| m.offset <= off && off < m.offset + (m.end - m.start))?;
    let runtime = m.start + (off - m.offset);
    Some(runtime.wrapping_sub(vaddr))
}

/// A human explanation of why reading `pid`'s memory is not permitted, with the fix.
pub fn permission_hint(pid: i32) -> String {
    let scope = fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    let target_uid = fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|u| u.parse::<u32>().ok())
                })
        });
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let cap = has_cap_sys_ptrace();
    let mut s = String::from("reading another process's memory needs ptrace access");
    if target_uid.is_some_and(|u| u != me) {
        let _ = write!(
            s,
            "; process {pid} belongs to uid {} and you are uid {me}: run gtrace as that user or as root",
            target_uid.unwrap_or_default()
        );
    }
    match scope {
        Some(1) if !cap => s.push_str(
            "; kernel.yama.ptrace_scope is 1 (only ancestors may trace): run with sudo, grant \
             CAP_SYS_PTRACE (setcap cap_sys_ptrace+ep $(which gtrace)), or set \
             `sysctl kernel.yama.ptrace_scope=0`",
        ),
        Some(2) if !cap => s.push_str("; kernel.yama.ptrace_scope is 2 (admin only): run as root with CAP_SYS_PTRACE"),
        Some(3) => s.push_str("; kernel.yama.ptrace_scope is 3: ptrace is disabled until reboot"),
        _ if !cap => s.push_str("; run as root or grant CAP_SYS_PTRACE"),
        _ => s.push_str("; CAP_SYS_PTRACE is present, so a security module (LSM) or a container boundary refuses it"),
    }
    s
}

/// True if our effective capabilities include `CAP_SYS_PTRACE` (bit 19).
pub fn has_cap_sys_ptrace() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << 19) != 0)
}

/// True if `/proc/PID` exists.
pub fn process_exists(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pie_bias() {
        let maps = "\
555555554000-555555556000 r--p 00000000 08:01 123 /tmp/x
555555556000-555555600000 r-xp 00002000 08:01 123 /tmp/x
7ffff7dd0000-7ffff7df0000 r-xp 00000000 08:01 9 /usr/lib/ld.so
";
        let m = exe_mappings(maps, "/tmp/x");
        assert_eq!(m.len(), 2);
        assert_eq!(
            load_bias(&m, &[(0, 0), (0x2000, 0x2000)]),
            Some(0x5555_5555_4000)
        );
        // Non-PIE: mapped at its link address.
        let maps = "00400000-00401000 r--p 00000000 08:01 1 /bin/y (deleted)\n";
        let m = exe_mappings(maps, "/bin/y");
        assert_eq!(load_bias(&m, &[(0x40_0000, 0)]), Some(0));
    }
}
