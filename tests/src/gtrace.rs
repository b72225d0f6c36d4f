//! Running the `gtrace` binary itself, as a user would, from integration tests.

use std::{path::PathBuf, process::Command};

/// The `gtrace` binary of this build (`target/<profile>/gtrace`).
///
/// `cargo test --workspace` builds it before any test runs; a missing binary means the tests
/// were run for this crate alone, and the panic says how to fix that.
pub fn bin() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    // This test binary lives in target/<profile>/deps; gtrace in target/<profile>.
    let profile = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent()?.parent()?.file_name().map(ToOwned::to_owned))
        .unwrap_or_else(|| "debug".into());
    let bin = target.join(profile).join("gtrace");
    assert!(
        bin.exists(),
        "{} does not exist: run the tests with `cargo test --workspace` (or `cargo build -p tracer-user` first)",
        bin.display()
    );
    bin
}

/// A `Command` for `gtrace ARGS`.
pub fn command<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new(bin());
    cmd.args(args);
    cmd
}

/// The standard output of `gtrace report FILE ARGS` (panics with gtrace's stderr on failure).
pub fn report(file: &std::path::Path, args: &[&str]) -> String {
    let out = command(["report".as_ref(), file.as_os_str()])
        .args(args)
        .output()
        .expect("run gtrace report");
    assert!(
        out.status.success(),
        "gtrace report {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The target's PID from gtrace's "attached to pid N …" line in `stderr` (how a test learns
/// the PID of a command gtrace started with `-- CMD`).
pub fn attached_pid(stderr: &str) -> Option<i32> {
    stderr
        .split_once("attached to pid ")
        .and_then(|(_, r)| r.split_whitespace().next()?.parse().ok())
}
