//! A Go process held perfectly still for two readers in turn: first gtrace (reading its
//! memory), then the Go runtime itself (printing its `SIGQUIT` dump), with nothing of the
//! program running in between.
//!
//! `SIGSTOP` is not enough for a busy program: after `SIGCONT`, every thread runs while the
//! runtime's `SIGQUIT` handler stops the world, and goroutines move (a timer fires, a socket
//! becomes readable). Here every thread is stopped under ptrace ([`Frozen::freeze`]); the
//! signal is then delivered to one thread only, which alone runs: the handler prints the
//! dump (goroutines on the other, stopped threads show as running, as they were) and exits
//! the process. What each reader sees is then the same state, even under load.

use std::{collections::BTreeSet, time::Duration};

use anyhow::{Context as _, bail};

use crate::process::Spawned;

/// How long to wait for the process to dump and exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Every thread of a child process stopped under ptrace.
#[derive(Debug)]
pub struct Frozen {
    pid: i32,
    tids: BTreeSet<i32>,
}

impl Frozen {
    /// Seizes and stops every thread of `p` (threads started meanwhile included).
    pub fn freeze(p: &Spawned) -> anyhow::Result<Self> {
        let pid = i32::try_from(p.pid()).context("pid")?;
        let mut tids = BTreeSet::new();
        loop {
            let mut new = 0;
            for tid in threads(pid)? {
                if tids.contains(&tid) {
                    continue;
                }
                // SAFETY: ptrace on a thread of our own child; no pointers passed.
                if unsafe { libc::ptrace(libc::PTRACE_SEIZE, tid, 0, 0) } != 0 {
                    // The thread exited since the directory was read.
                    continue;
                }
                // SAFETY: as above; the thread is now our tracee.
                unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0) };
                let mut status = 0;
                // SAFETY: waiting for our tracee; `status` is a valid out pointer.
                let r = unsafe { libc::waitpid(tid, &raw mut status, libc::__WALL) };
                if r != tid || !libc::WIFSTOPPED(status) {
                    bail!("thread {tid} of {pid} did not stop (status {status:#x})");
                }
                tids.insert(tid);
                new += 1;
            }
            // A stopped thread starts no thread: once a pass finds none new, all are held.
            if new == 0 {
                return Ok(Self { pid, tids });
            }
        }
    }

    /// Delivers `SIGQUIT` to one thread and lets only that thread run: the Go runtime prints
    /// its dump (`GOTRACEBACK=all` in the environment) and exits. Returns its stderr.
    pub fn quit_and_collect(mut self, p: &mut Spawned) -> anyhow::Result<String> {
        // Not the leader: its exit is reported to Spawned's own wait, which must reap it.
        // A thread that does not block SIGQUIT, so the handler runs at once.
        let tid = *self
            .tids
            .iter()
            .find(|&&t| t != self.pid && !blocks_sigquit(self.pid, t))
            .context("no thread to deliver SIGQUIT to")?;
        // SAFETY: tgkill to a thread of our own stopped child.
        if unsafe { libc::syscall(libc::SYS_tgkill, self.pid, tid, libc::SIGQUIT) } != 0 {
            return Err(std::io::Error::last_os_error()).context("tgkill SIGQUIT");
        }
        let deadline = std::time::Instant::now() + EXIT_TIMEOUT;
        let mut pending: BTreeSet<i32> = self
            .tids
            .iter()
            .copied()
            .filter(|&t| t != self.pid)
            .collect();
        // SAFETY: resuming our own tracee.
        unsafe { libc::ptrace(libc::PTRACE_CONT, tid, 0, 0) };
        while !pending.is_empty() {
            if std::time::Instant::now() > deadline {
                bail!("{} did not exit after SIGQUIT\n{}", self.pid, p.stderr());
            }
            let mut progressed = false;
            for &t in &pending.clone() {
                let mut status = 0;
                // SAFETY: waiting for our tracee; `status` is a valid out pointer.
                let r = unsafe { libc::waitpid(t, &raw mut status, libc::__WALL | libc::WNOHANG) };
                if r == 0 {
                    continue;
                }
                progressed = true;
                if r < 0 || libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
                    pending.remove(&t);
                    self.tids.remove(&t);
                } else if libc::WIFSTOPPED(status) && t == tid {
                    // A signal for the running thread (SIGQUIT itself, SIGURG, …): pass it on.
                    let sig = libc::WSTOPSIG(status);
                    let deliver = if status >> 16 == 0 { sig } else { 0 };
                    // SAFETY: resuming our own tracee with the signal it stopped for.
                    unsafe { libc::ptrace(libc::PTRACE_CONT, t, 0, deliver) };
                }
            }
            if !progressed {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        // The leader is reaped by Spawned, its parent; nothing is left to detach.
        self.tids.clear();
        let status = p.wait_exit(EXIT_TIMEOUT)?;
        let stderr = p.stderr();
        if status.success() {
            bail!("process exited successfully after SIGQUIT; stderr:\n{stderr}");
        }
        Ok(stderr)
    }
}

impl Drop for Frozen {
    /// Lets the threads go if the dump was never taken (a failed test): a traced thread
    /// left stopped would keep its process from ever being reaped.
    fn drop(&mut self) {
        for &t in &self.tids {
            // SAFETY: detaching our own stopped tracee; no pointers passed.
            unsafe { libc::ptrace(libc::PTRACE_DETACH, t, 0, 0) };
        }
    }
}

fn threads(pid: i32) -> anyhow::Result<Vec<i32>> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/task"))
        .with_context(|| format!("threads of {pid}"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect())
}

/// Whether thread `tid` has `SIGQUIT` in its blocked mask (`SigBlk` in its status).
fn blocks_sigquit(pid: i32, tid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status"))
        .ok()
        .and_then(|s| {
            let hex = s
                .lines()
                .find_map(|l| l.strip_prefix("SigBlk:"))?
                .trim()
                .to_owned();
            u64::from_str_radix(&hex, 16).ok()
        })
        .is_none_or(|mask| mask & (1 << (libc::SIGQUIT - 1)) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A single-threaded process has no non-leader thread to signal: the error leaves it
    /// detached, so it can still be killed and reaped (no hang).
    #[test]
    fn a_failed_quit_leaves_the_process_reapable() {
        let mut p = Spawned::spawn(
            std::path::Path::new("/bin/sleep"),
            ["100"],
            &[] as &[(&str, &str)],
        )
        .unwrap();
        let frozen = Frozen::freeze(&p).unwrap();
        assert_eq!(frozen.tids.len(), 1);
        let err = frozen.quit_and_collect(&mut p).unwrap_err();
        assert!(err.to_string().contains("no thread"), "{err}");
        p.kill();
        assert!(p.try_status().is_some(), "killed and reaped");
    }
}
