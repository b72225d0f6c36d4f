//! Exit codes and the user-facing rendering of errors.
//!
//! Scripts can tell apart "this host cannot trace" from "this target cannot be traced" from
//! "the target went away". The error chain is walked for known library errors; each gets a
//! one-line message plus the exact fix. No backtraces.

use std::process::ExitCode;

use crate::{
    capture::CaptureError,
    gobin::GobinError,
    goroutines::target::DumpError,
    probes::{AbiError, ProbeError, lifecycle::LifecycleError, session::SessionError},
    target::TargetError,
};

/// gtrace's exit codes (also listed in `gtrace --help` and the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// Any other failure.
    Failure = 1,
    /// Bad command line (clap uses 2 as well).
    Usage = 2,
    /// This host cannot trace: privileges or kernel features missing.
    Environment = 3,
    /// The target cannot be traced: not Go, unsupported Go version, unreadable binary.
    Target = 4,
    /// The target process does not exist or exited.
    ProcessGone = 5,
    /// `gtrace leaks --fail-on N`: a leaking group reached N goroutines.
    LeaksFound = 6,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// True when some error in the chain is an OS permission error.
fn permission_denied(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| matches!(io.raw_os_error(), Some(libc::EPERM | libc::EACCES)))
    })
}

/// Chooses the exit code for `err` and an optional line saying how to fix it.
pub fn classify(err: &anyhow::Error) -> (Exit, Option<String>) {
    for e in err.chain() {
        if let Some(t) = e.downcast_ref::<TargetError>() {
            return match t {
                TargetError::NoSuchProcess { .. } => (
                    Exit::ProcessGone,
                    Some("check the PID with `ps -e` or `pgrep NAME`".into()),
                ),
                TargetError::PermissionDenied { .. } => (
                    Exit::Environment,
                    Some("run gtrace as root: sudo gtrace …".into()),
                ),
                _ => (Exit::Target, None),
            };
        }
        if let Some(d) = e.downcast_ref::<DumpError>() {
            // The messages of DumpError already carry their fix.
            return match d {
                DumpError::NoSuchProcess { .. } => (Exit::ProcessGone, None),
                DumpError::PermissionDenied { .. } => (Exit::Environment, None),
                DumpError::Output(_) => (Exit::Failure, None),
                _ => (Exit::Target, None),
            };
        }
        if let Some(SessionError::Gone(_)) = e.downcast_ref::<SessionError>() {
            return (Exit::ProcessGone, None);
        }
        if let Some(a) = e.downcast_ref::<AbiError>() {
            return match a {
                AbiError::Layout(_) => (
                    Exit::Target,
                    Some(
                        "`gtrace inspect BINARY` shows the Go version and probe sites found".into(),
                    ),
                ),
                _ => (
                    Exit::Target,
                    Some("rebuild the program with Go 1.17 or newer (amd64)".into()),
                ),
            };
        }
        // Other lifecycle errors (binary, probes, ABI) are classified by their sources.
        if let Some(LifecycleError::NoNewprocCall) = e.downcast_ref::<LifecycleError>() {
            return (
                Exit::Target,
                Some("`gtrace inspect BINARY` shows the Go version and probe sites found".into()),
            );
        }
        if let Some(c) = e.downcast_ref::<CaptureError>() {
            return match c {
                CaptureError::Io(_) => (Exit::Failure, None),
                _ => (
                    Exit::Usage,
                    Some("give `gtrace report` a file written by `gtrace record`".into()),
                ),
            };
        }
        if let Some(g) = e.downcast_ref::<GobinError>() {
            return match g {
                GobinError::Open { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                    (Exit::Target, Some("check the path of the binary".into()))
                }
                GobinError::Open { .. } if permission_denied(err) => {
                    (Exit::Environment, Some("run gtrace as root: sudo gtrace …".into()))
                }
                GobinError::NoPclntab | GobinError::NotElf { .. } => {
                    (Exit::Target, Some("point gtrace at a Go program: this file has no Go symbol table".into()))
                }
                _ => (Exit::Target, Some("gtrace reads Go binaries for linux/amd64; `gtrace inspect BINARY` shows what it found".into())),
            };
        }
        if let Some(ProbeError::Load(_) | ProbeError::Attach { .. }) =
            e.downcast_ref::<ProbeError>()
        {
            if permission_denied(err) {
                return (Exit::Environment, Some("run gtrace as root (it needs CAP_BPF, CAP_PERFMON and CAP_SYS_PTRACE): sudo gtrace …".into()));
            }
            return (
                Exit::Environment,
                Some("run `gtrace doctor` to see which kernel feature is missing".into()),
            );
        }
    }
    if permission_denied(err) {
        return (
            Exit::Environment,
            Some("run gtrace as root: sudo gtrace …".into()),
        );
    }
    (Exit::Failure, None)
}

/// Prints `err` for a person: the message, its causes, and the fix.
pub fn report(err: &anyhow::Error) -> Exit {
    let (code, fix) = classify(err);
    eprintln!("gtrace: error: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
    if let Some(fix) = fix {
        eprintln!("  fix: {fix}");
    }
    code
}
