//! What the host can do: privileges, kernel features and limits that tracing needs.
//!
//! Each check returns a [`Check`] with a one-line finding and, when something is wrong, the
//! exact fix; `gtrace doctor` prints them and every tracing command runs the fatal ones first
//! so that failures say what to do instead of surfacing as a bare `EPERM` from the kernel.

use std::{fs, path::Path};

/// How bad a failed check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// All good.
    Ok,
    /// Works, but something is degraded or worth knowing.
    Warn,
    /// Tracing cannot work until this is fixed.
    Fail,
}

/// The outcome of one check.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    /// Short name, e.g. `root`.
    pub name: &'static str,
    /// The finding, one line.
    pub level: Level,
    /// What was found.
    pub detail: String,
    /// How to fix it, when `level` is not `Ok`.
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            level: Level::Ok,
            detail: detail.into(),
            fix: None,
        }
    }
    fn bad(
        name: &'static str,
        level: Level,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            name,
            level,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

// Capability numbers from linux/capability.h.
const CAP_SYS_PTRACE: u32 = 19;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The effective capability mask of this process (`CapEff` in /proc/self/status).
fn effective_caps() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// Running as root, or with the capabilities eBPF tracing and memory reads need.
pub fn privileges() -> Check {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let caps = effective_caps().unwrap_or(0);
    let has = |c: u32| caps & (1 << c) != 0;
    let bpf_ok = has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON));
    let ptrace_ok = has(CAP_SYS_PTRACE);
    let who = if euid == 0 {
        "root".to_owned()
    } else {
        format!("uid {euid}")
    };
    if bpf_ok && ptrace_ok {
        Check::ok(
            "privileges",
            format!("{who}, capabilities for eBPF and process reads"),
        )
    } else {
        let mut missing = Vec::new();
        if !bpf_ok {
            missing.push("CAP_BPF+CAP_PERFMON (or CAP_SYS_ADMIN)");
        }
        if !ptrace_ok {
            missing.push("CAP_SYS_PTRACE");
        }
        Check::bad(
            "privileges",
            Level::Fail,
            format!("{who}, missing {}", missing.join(", ")),
            "run gtrace as root: sudo gtrace …",
        )
    }
}

/// The running kernel's release, e.g. `6.18.44`.
pub fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".into(), |s| s.trim().to_owned())
}

/// (major, minor) of a kernel release string.
fn parse_release(r: &str) -> Option<(u32, u32)> {
    let mut it = r.split(['.', '-']);
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// Kernel version: ring buffers need 5.8; we test on 6.x.
pub fn kernel() -> Check {
    let r = kernel_release();
    match parse_release(&r) {
        Some(v) if v >= (5, 8) => Check::ok("kernel", format!("Linux {r}")),
        Some(_) => Check::bad(
            "kernel",
            Level::Fail,
            format!("Linux {r} is older than 5.8"),
            "gtrace needs Linux 5.8 or newer (BPF ring buffer); upgrade the kernel",
        ),
        None => Check::bad(
            "kernel",
            Level::Warn,
            format!("unrecognised kernel release {r:?}"),
            "none known; tracing will be attempted",
        ),
    }
}

/// Kernel BTF, which the CO-RE loader uses.
pub fn btf() -> Check {
    if Path::new("/sys/kernel/btf/vmlinux").exists() {
        Check::ok("btf", "/sys/kernel/btf/vmlinux present")
    } else {
        Check::bad(
            "btf",
            Level::Warn,
            "no /sys/kernel/btf/vmlinux",
            "use a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distribution kernels are)",
        )
    }
}

/// The perf "uprobe" PMU, through which uprobes attach.
pub fn uprobes() -> Check {
    if Path::new("/sys/bus/event_source/devices/uprobe/type").exists() {
        Check::ok("uprobes", "perf uprobe PMU available")
    } else {
        Check::bad(
            "uprobes",
            Level::Fail,
            "no /sys/bus/event_source/devices/uprobe",
            "use a kernel with CONFIG_UPROBE_EVENTS=y",
        )
    }
}

/// The tracefs directory holding tracepoint ids, if mounted.
pub fn tracefs_dir() -> Option<&'static str> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .into_iter()
        .find(|d| Path::new(d).join("events").is_dir())
}

/// Mounts tracefs at `/sys/kernel/tracing` when no tracefs is mounted, as bpftool does for
/// bpffs: the kernel only exposes tracepoint ids there. Returns where it is.
pub fn ensure_tracefs() -> std::io::Result<&'static str> {
    if let Some(d) = tracefs_dir() {
        return Ok(d);
    }
    let target = "/sys/kernel/tracing";
    // SAFETY: all pointers are NUL-terminated literals that outlive the call.
    let rc = unsafe {
        libc::mount(
            c"nodev".as_ptr(),
            c"/sys/kernel/tracing".as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    log::info!("mounted tracefs at {target}");
    Ok(target)
}

/// tracefs and the scheduler tracepoints gtrace uses (mounting tracefs if needed).
pub fn tracepoints() -> Check {
    let mounted_before = tracefs_dir().is_some();
    match ensure_tracefs() {
        Ok(d) if Path::new(d).join("events/sched/sched_switch/id").exists() => {
            let how = if mounted_before {
                ""
            } else {
                " (tracefs was not mounted: gtrace mounted it)"
            };
            Check::ok("tracepoints", format!("{d} with sched:sched_switch{how}"))
        }
        Ok(d) => Check::bad(
            "tracepoints",
            Level::Fail,
            format!("{d} has no sched:sched_switch"),
            "use a kernel with CONFIG_TRACEPOINTS and sched events",
        ),
        Err(e) => Check::bad(
            "tracepoints",
            Level::Fail,
            format!("tracefs is not mounted and mounting it failed: {e}"),
            "mount it as root: mount -t tracefs nodev /sys/kernel/tracing",
        ),
    }
}

/// bpffs, only needed for pinning (the background agent); a warning otherwise.
pub fn bpffs() -> Check {
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    if mounts
        .lines()
        .any(|l| l.split_whitespace().nth(2) == Some("bpf"))
    {
        Check::ok("bpffs", "mounted")
    } else {
        Check::bad(
            "bpffs",
            Level::Warn,
            "not mounted (only the background agent pins maps)",
            "mount -t bpf bpf /sys/fs/bpf",
        )
    }
}

/// `RLIMIT_MEMLOCK`: kernels ≥ 5.11 charge BPF memory to the memory cgroup instead, so raising
/// the limit is attempted and a failure (no `CAP_SYS_RESOURCE`) is only a warning.
pub fn memlock() -> Check {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads the struct we pass; no other effect on memory.
    let raised = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raw const unlimited) } == 0;
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &raw mut cur) };
    let shown = if cur.rlim_cur == libc::RLIM_INFINITY {
        "unlimited".to_owned()
    } else {
        format!("{} KiB", cur.rlim_cur / 1024)
    };
    if raised {
        Check::ok("memlock", format!("RLIMIT_MEMLOCK {shown}"))
    } else if parse_release(&kernel_release()).is_some_and(|v| v >= (5, 11)) {
        Check::bad(
            "memlock",
            Level::Warn,
            format!("RLIMIT_MEMLOCK {shown}, cannot raise it (no CAP_SYS_RESOURCE)"),
            "harmless on Linux ≥ 5.11 (BPF memory is charged to the cgroup); nothing to do",
        )
    } else {
        Check::bad(
            "memlock",
            Level::Fail,
            format!("RLIMIT_MEMLOCK {shown}, cannot raise it"),
            "run as root with CAP_SYS_RESOURCE, or raise the limit: ulimit -l unlimited",
        )
    }
}

/// Every host check, in the order `doctor` prints them.
pub fn all() -> Vec<Check> {
    vec![
        privileges(),
        kernel(),
        btf(),
        uprobes(),
        tracepoints(),
        bpffs(),
        memlock(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_parsing() {
        assert_eq!(parse_release("6.18.44-fc-v782"), Some((6, 18)));
        assert_eq!(parse_release("5.4.0-150-generic"), Some((5, 4)));
        assert_eq!(parse_release("garbage"), None);
    }

    #[test]
    fn checks_run_everywhere() {
        // Whatever the host, every check answers, and any non-Ok one carries a fix.
        for c in all() {
            assert_eq!(c.fix.is_some(), c.level != Level::Ok, "{c:?}");
        }
    }
}
