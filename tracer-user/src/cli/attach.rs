//! Choosing what to trace for `record` and `trace`: a running process (`-p PID`) or a command
//! started under gtrace (`-- CMD ARGS`), stopped right after `exec` (ptrace `TRACEME`) so that
//! the probes are in place before the Go runtime runs its first instruction.

use std::{
    ffi::OsString,
    os::unix::process::CommandExt as _,
    process::{Child, Command},
    sync::{Arc, atomic::AtomicBool},
};

use anyhow::{Context as _, Result, bail};

/// `-p PID` or `-- CMD ARGS`.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// The Go process to attach to.
    #[arg(
        short,
        long,
        required_unless_present = "command",
        conflicts_with = "command"
    )]
    pub pid: Option<u32>,
    /// A command to start and trace from its first instruction (after `--`).
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// The traced process.
pub struct Attached {
    /// Its PID.
    pub pid: u32,
    /// Set when gtrace started it: resumed by [`Attached::resume`], waited for at the end.
    pub child: Option<Child>,
}

impl TargetArgs {
    /// Resolves the target: the PID as given, or the command started and stopped at `exec`.
    pub fn start(&self) -> Result<Attached> {
        if let Some(pid) = self.pid {
            return Ok(Attached { pid, child: None });
        }
        let Some((prog, args)) = self.command.split_first() else {
            bail!("give a process (-p PID) or a command after `--`");
        };
        let mut cmd = Command::new(prog);
        cmd.args(args);
        // SAFETY: only async-signal-safe calls between fork and exec (ptrace).
        unsafe {
            cmd.pre_exec(|| {
                if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", prog.to_string_lossy()))?;
        let pid = child.id();
        let mut status = 0;
        // SAFETY: waiting for our own child; `status` is a valid out pointer.
        let r = unsafe { libc::waitpid(pid as i32, &raw mut status, 0) };
        if r != pid as i32 || !libc::WIFSTOPPED(status) {
            bail!("{} did not stop after exec", prog.to_string_lossy());
        }
        Ok(Attached {
            pid,
            child: Some(child),
        })
    }
}

impl Attached {
    /// Lets a command started by gtrace run (no-op for `-p`).
    pub fn resume(&self) {
        if self.child.is_some() {
            // SAFETY: detaching from our stopped tracee lets it continue.
            unsafe { libc::ptrace(libc::PTRACE_DETACH, self.pid as i32, 0, 0) };
        }
    }
}

impl Attached {
    /// Ends gtrace's part in a command it started: reaps it if it has exited; otherwise (the
    /// capture ended by duration or signal) leaves it running, untraced, and says so — the
    /// command is the user's program, not gtrace's to stop.
    pub fn release(mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if !matches!(child.try_wait(), Ok(Some(_))) {
            eprintln!(
                "note: process {} (started by gtrace) keeps running, no longer traced",
                self.pid
            );
        }
    }
}

/// A flag raised by SIGINT and SIGTERM, so captures end cleanly and detach.
pub fn stop_flag() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    Ok(stop)
}

/// `CLOCK_MONOTONIC` now, the clock of the events.
pub fn ktime_now() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
