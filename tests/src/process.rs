//! Running fixture processes under a guard that always kills and reaps them.
//!
//! Integration tests attach a tracer to a live Go process; if a test panics halfway, the
//! process must not outlive it (a leaked, still-traced process confuses later tests and leaks
//! uprobes). [`Spawned`] owns the child and kills + reaps it on drop, the way py-spy's test
//! `ScriptRunner` and aya's uprobe tests do. Stdout is read line by line on a thread so a test
//! can wait for `ready` with a timeout; stderr is collected whole (Go writes tracebacks there).

use std::ffi::OsStr;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// Environment variables that change the Go runtime's behaviour; [`Spawned::spawn`] does not
/// pass them on from the test's own environment.
pub const GO_RUNTIME_ENV: &[&str] = &[
    "GODEBUG",
    "GOGC",
    "GOMAXPROCS",
    "GOMEMLIMIT",
    "GOTRACEBACK",
    "GORACE",
    "GOEXPERIMENT",
];

/// The line fixtures print once they are in their steady state.
pub const READY: &str = "ready";

/// Default timeout for a fixture to become ready (generous: CI machines can be slow).
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A signal to send to a child (the ones tests use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGQUIT: Go dumps goroutines (per GOTRACEBACK) and exits with status 2.
    Quit,
    /// SIGUSR1.
    Usr1,
    /// SIGUSR2.
    Usr2,
    /// SIGTERM.
    Term,
    /// SIGKILL.
    Kill,
}

impl Signal {
    fn raw(self) -> libc::c_int {
        match self {
            Signal::Quit => libc::SIGQUIT,
            Signal::Usr1 => libc::SIGUSR1,
            Signal::Usr2 => libc::SIGUSR2,
            Signal::Term => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
        }
    }
}

/// A running child process; killed (SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub struct Spawned {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Receiver<String>,
    /// Every stdout line received so far (also those consumed by the `wait_*` helpers).
    seen: Vec<String>,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// Receives once when stderr reaches EOF (all writers, grandchildren too, closed it).
    stderr_eof: Receiver<()>,
    exited: Option<ExitStatus>,
    description: String,
}

impl Spawned {
    /// Spawns `program args…` with extra `env` added to the inherited environment, minus the
    /// Go runtime settings in [`GO_RUNTIME_ENV`] (a `GODEBUG` or `GOTRACEBACK` in the shell of
    /// whoever runs the tests must not change what fixtures do); pass them in `env` to set them.
    pub fn spawn<I, S, K, V>(program: &Path, args: I, env: &[(K, V)]) -> anyhow::Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let mut cmd = Command::new(program);
        cmd.args(args);
        for k in GO_RUNTIME_ENV {
            cmd.env_remove(k);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::from_command(cmd)
    }

    /// Spawns a prepared command; stdin, stdout and stderr are replaced by pipes.
    pub fn from_command(mut cmd: Command) -> anyhow::Result<Self> {
        let description = format!("{cmd:?}");
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child =
            spawn_busy_aware(&mut cmd).with_context(|| format!("cannot spawn {description}"))?;
        let stdin = child.stdin.take();
        let out = child.stdout.take().context("child has no stdout pipe")?;
        let mut err = child.stderr.take().context("child has no stderr pipe")?;

        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&stderr);
        let (eof_tx, stderr_eof) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match err.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .extend_from_slice(&buf[..n]),
                }
            }
            let _ = eof_tx.send(());
        });
        Ok(Self {
            child,
            stdin,
            stdout: rx,
            seen: Vec::new(),
            stderr,
            stderr_eof,
            exited: None,
            description,
        })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The address the child's executable is mapped at: the start of the lowest mapping of
    /// `/proc/PID/exe` with file offset 0 (for a PIE binary, add it to link-time addresses;
    /// for a non-PIE Go binary it is the link-time base, 0x400000).
    pub fn load_base(&self) -> anyhow::Result<u64> {
        let pid = self.pid();
        let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
            .with_context(|| format!("cannot read /proc/{pid}/exe"))?;
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
            .with_context(|| format!("cannot read /proc/{pid}/maps"))?;
        maps.lines()
            .filter_map(|line| {
                // start-end perms offset dev inode path
                let mut f = line.split_whitespace();
                let range = f.next()?;
                let offset = f.nth(1)?;
                let path = f.nth(2)?;
                let start = u64::from_str_radix(range.split_once('-')?.0, 16).ok()?;
                (u64::from_str_radix(offset, 16).ok()? == 0 && Path::new(path) == exe)
                    .then_some(start)
            })
            .min()
            .with_context(|| format!("{} is not mapped in process {pid}", exe.display()))
    }

    /// What to add to a link-time address of the executable to get its runtime address:
    /// [`Self::load_base`] minus the virtual address of the ELF segment at file offset 0.
    /// Zero for a non-PIE binary. Go links PIE executables at 0x400000 too (not at 0), so
    /// this is *not* the load base itself.
    pub fn load_bias(&self) -> anyhow::Result<u64> {
        use object::read::elf::{ElfFile64, ProgramHeader as _};
        let base = self.load_base()?;
        let exe = format!("/proc/{}/exe", self.pid());
        let bytes = std::fs::read(&exe).with_context(|| format!("cannot read {exe}"))?;
        let elf = ElfFile64::<object::Endianness>::parse(&*bytes)
            .with_context(|| format!("cannot parse {exe} as a 64-bit ELF file"))?;
        let endian = elf.endian();
        // Only PT_LOAD: Go PIE binaries also have TLS/GNU_STACK headers at offset 0, vaddr 0.
        let link_base = elf
            .elf_program_headers()
            .iter()
            .filter(|ph| ph.p_type(endian) == object::elf::PT_LOAD && ph.p_offset(endian) == 0)
            .map(|ph| ph.p_vaddr(endian))
            .min()
            .with_context(|| format!("{exe} has no PT_LOAD segment at file offset 0"))?;
        Ok(base.wrapping_sub(link_base))
    }

    /// Waits up to `timeout` for the next stdout line.
    pub fn next_line(&mut self, timeout: Duration) -> anyhow::Result<String> {
        match self.stdout.recv_timeout(timeout) {
            Ok(line) => {
                self.seen.push(line.clone());
                Ok(line)
            }
            Err(RecvTimeoutError::Timeout) => bail!(
                "no stdout line from {} within {timeout:?}\n{}",
                self.description,
                self.context()
            ),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.try_status();
                bail!(
                    "{} closed stdout (exit status {status:?})\n{}",
                    self.description,
                    self.context()
                )
            }
        }
    }

    /// Reads stdout lines until one satisfies `pred`; returns the lines before it (the matching
    /// line is last). Fails after `timeout` overall.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> anyhow::Result<Vec<String>> {
        let deadline = Instant::now() + timeout;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.next_line(left)?;
            let done = pred(&line);
            lines.push(line);
            if done {
                return Ok(lines);
            }
        }
    }

    /// Waits for the exact stdout line `want`; returns every line up to and including it.
    pub fn wait_for_line(&mut self, want: &str, timeout: Duration) -> anyhow::Result<Vec<String>> {
        self.wait_for(timeout, |l| l == want)
            .with_context(|| format!("waiting for line {want:?}"))
    }

    /// Waits for `ready` (with [`READY_TIMEOUT`]); returns the lines printed before it.
    pub fn wait_ready(&mut self) -> anyhow::Result<Vec<String>> {
        let mut lines = self.wait_for_line(READY, READY_TIMEOUT)?;
        lines.pop();
        Ok(lines)
    }

    /// Every stdout line seen so far.
    pub fn stdout_seen(&self) -> &[String] {
        &self.seen
    }

    /// Writes `line` plus a newline to the child's stdin.
    pub fn write_line(&mut self, line: &str) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("stdin already closed")?;
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .with_context(|| format!("cannot write to stdin of {}", self.description))
    }

    /// Closes the child's stdin (it sees EOF).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Sends `sig` to the child.
    pub fn signal(&self, sig: Signal) -> anyhow::Result<()> {
        let pid = libc::pid_t::try_from(self.pid()).context("pid out of range")?;
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own unreaped
        // child, so it cannot have been recycled for another process.
        let rc = unsafe { libc::kill(pid, sig.raw()) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("cannot send {sig:?} to {}", self.pid()));
        }
        Ok(())
    }

    /// Stderr collected so far (lossy UTF-8).
    pub fn stderr(&self) -> String {
        let buf = self
            .stderr
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// Waits up to `timeout` for the child to exit, then (within the same deadline) for its
    /// stderr to reach EOF, so [`Self::stderr`] holds everything it wrote. A grandchild that
    /// keeps stderr open does not hold this up past the deadline.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status() {
                let left = deadline.saturating_duration_since(Instant::now());
                let _ = self.stderr_eof.recv_timeout(left);
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not exit within {timeout:?}\n{}",
                    self.description,
                    self.context()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The exit status if the child has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    /// Kills the child (SIGKILL) and reaps it. Idempotent.
    pub fn kill(&mut self) {
        if self.try_status().is_none() {
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
    }

    /// Stdout tail and stderr, for error messages.
    fn context(&self) -> String {
        let tail = self.seen.len().saturating_sub(20);
        format!(
            "--- stdout (last lines) ---\n{}\n--- stderr ---\n{}",
            self.seen[tail..].join("\n"),
            self.stderr()
        )
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Environment for a fixture whose goroutine dump a test wants: `GOTRACEBACK=all`.
pub const GOTRACEBACK_ALL: (&str, &str) = ("GOTRACEBACK", "all");

/// Sends SIGQUIT to a running Go process and returns what the runtime printed on stderr.
///
/// The process must have been started with `GOTRACEBACK=all` (or `system`) to dump every
/// goroutine; it exits with status 2 afterwards.
pub fn quit_and_collect(p: &mut Spawned) -> anyhow::Result<String> {
    p.signal(Signal::Quit)?;
    let status = p.wait_exit(Duration::from_secs(30))?;
    let stderr = p.stderr();
    if status.success() {
        bail!("process exited successfully after SIGQUIT; stderr:\n{stderr}");
    }
    Ok(stderr)
}

/// Runs `binary args…` with `GOTRACEBACK=all`, waits for `ready`, sends SIGQUIT and returns
/// `(stdout lines before ready, stderr dump)`.
pub fn goroutine_dump<S: AsRef<OsStr>>(
    binary: &Path,
    args: &[S],
) -> anyhow::Result<(Vec<String>, String)> {
    let mut p = Spawned::spawn(binary, args, &[GOTRACEBACK_ALL])?;
    let lines = p.wait_ready()?;
    let dump = quit_and_collect(&mut p)?;
    Ok((lines, dump))
}

/// Spawns `cmd`, retrying for a while when the kernel answers `ETXTBSY`.
///
/// Tests copy fixture binaries to private paths (uprobes belong to the inode). While one test
/// thread writes such a copy, another may fork a child of its own: until that child execs,
/// it holds an inherited descriptor open for writing on the copy, and executing the copy fails
/// with "Text file busy" — a race inside the test process, not a gtrace bug. The window ends
/// when the other child execs, so a short retry closes it.
fn spawn_busy_aware(cmd: &mut Command) -> std::io::Result<Child> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_stdin_and_kill() {
        let mut p = Spawned::spawn(
            Path::new("/bin/sh"),
            [
                "-c",
                "echo hello; echo ready; read x; echo oops >&2; echo got $x; exec sleep 100",
            ],
            &[("A", "b")],
        )
        .unwrap();
        assert_eq!(p.wait_ready().unwrap(), vec!["hello".to_owned()]);
        p.write_line("42").unwrap();
        assert_eq!(p.next_line(READY_TIMEOUT).unwrap(), "got 42");
        p.signal(Signal::Term).unwrap();
        let status = p.wait_exit(READY_TIMEOUT).unwrap();
        assert!(!status.success());
        assert_eq!(p.stderr(), "oops\n");
    }

    /// A descriptor open for writing on the executable (as a concurrently forked child
    /// inherits it) makes exec fail with ETXTBSY until it is closed; the spawn must wait.
    #[test]
    fn spawn_waits_out_a_busy_executable() {
        let dir = std::env::temp_dir().join(format!("gtrace-txtbusy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let exe = dir.join("true");
        std::fs::copy("/bin/true", &exe).unwrap();
        let writer = std::fs::OpenOptions::new().write(true).open(&exe).unwrap();
        let busy = Command::new(&exe).status().unwrap_err();
        assert_eq!(busy.raw_os_error(), Some(libc::ETXTBSY), "{busy}");
        let closer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(writer);
        });
        let status = spawn_busy_aware(&mut Command::new(&exe))
            .unwrap()
            .wait()
            .unwrap();
        assert!(status.success());
        closer.join().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn load_base_of_a_running_program() {
        let p = Spawned::spawn(Path::new("/bin/sleep"), ["100"], &[] as &[(&str, &str)]).unwrap();
        // exec may not have happened yet right after spawn: retry briefly.
        let deadline = Instant::now() + READY_TIMEOUT;
        let base = loop {
            match p.load_base() {
                Ok(b) => break b,
                Err(e) if Instant::now() > deadline => panic!("{e:#}"),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        assert!(base > 0 && base % 4096 == 0, "{base:#x}");
    }

    #[test]
    fn timeout_is_an_error() {
        let mut p =
            Spawned::spawn(Path::new("/bin/sleep"), ["100"], &[] as &[(&str, &str)]).unwrap();
        let err = p.next_line(Duration::from_millis(50)).unwrap_err();
        assert!(err.to_string().contains("no stdout line"), "{err}");
    }
}
