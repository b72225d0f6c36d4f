//! What the `blocked` fixture makes, and the wait reason Go reports for each kind per version.
//!
//! `blocked` prints one JSON line per kind of blocked goroutine before `ready` (see
//! `tests/fixtures/blocked/main.go`); [`parse_report`] reads them. [`expected_status`] is the
//! status Go's own goroutine dump shows for each kind, checked against real dumps of every
//! toolchain (`tests/testdata/dumps/blocked-sigquit-go*.txt` and the live test in
//! `tests/tests/fixtures_build.rs`), so tests of gtrace can compare against it directly.

use anyhow::Context as _;
use serde::Deserialize;

use crate::go::Toolchain;

/// One kind of blocked goroutine the fixture created.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Made {
    /// Kind, e.g. `"chan_recv"`, `"mutex"`, `"tcp_read"`.
    pub name: String,
    /// How many goroutines of this kind exist.
    pub count: usize,
    /// The user function the goroutine blocks in (its innermost `main.` frame that is not
    /// inlined), e.g. `"main.blockChanRecv"`.
    pub func: String,
    /// The function containing the `go` statement (the `created by` function).
    pub creator: String,
}

/// Parses the JSON lines `blocked` prints before `ready` (as returned by
/// [`crate::process::Spawned::wait_ready`]).
pub fn parse_report(lines: &[String]) -> anyhow::Result<Vec<Made>> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).with_context(|| format!("bad report line {l:?}")))
        .collect()
}

/// The status (wait reason) Go's dump prints for goroutines of kind `name` built with `tc`.
///
/// Version differences: Go 1.20 split `semacquire` into `sync.Mutex.Lock`,
/// `sync.RWMutex.RLock` and `sync.RWMutex.Lock`; Go 1.24 added `sync.WaitGroup.Wait`.
/// Returns `None` for an unknown kind.
pub fn expected_status(tc: &Toolchain, name: &str) -> Option<&'static str> {
    let sync_reasons = tc.at_least(1, 20);
    Some(match name {
        "chan_recv" | "chain_parent" | "chain_child" | "inlined" => "chan receive",
        "chan_send" => "chan send",
        "select" => "select",
        "select_nocases" => "select (no cases)",
        "nil_chan_recv" => "chan receive (nil chan)",
        "mutex" if sync_reasons => "sync.Mutex.Lock",
        "rwmutex_rlock" if sync_reasons => "sync.RWMutex.RLock",
        "rwmutex_lock" if sync_reasons => "sync.RWMutex.Lock",
        "waitgroup" if tc.at_least(1, 24) => "sync.WaitGroup.Wait",
        "mutex" | "rwmutex_rlock" | "rwmutex_lock" | "waitgroup" => "semacquire",
        "cond" => "sync.Cond.Wait",
        "sleep" => "sleep",
        "pipe_read" | "tcp_accept" | "tcp_read" => "IO wait",
        "pipe_syscall" => "syscall",
        _ => return None,
    })
}

/// Every kind the fixture makes, in the order it prints them.
pub const KINDS: &[&str] = &[
    "chan_recv",
    "chan_send",
    "select",
    "select_nocases",
    "nil_chan_recv",
    "mutex",
    "rwmutex_rlock",
    "rwmutex_lock",
    "waitgroup",
    "cond",
    "sleep",
    "pipe_read",
    "pipe_syscall",
    "tcp_accept",
    "tcp_read",
    "chain_parent",
    "chain_child",
    "inlined",
];
