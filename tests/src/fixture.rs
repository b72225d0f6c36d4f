//! Building the Go fixture programs, once per (fixture, toolchain, variant), with a cache.
//!
//! Every test needs real Go binaries of every supported toolchain in every build variant the
//! tracer must handle; building them is the slow part of the suite, so binaries are cached under
//! `$GTRACE_CACHE/fixtures/<hash>/<name>`. The hash covers everything that changes the binary:
//! the fixture's source files (names and contents), the toolchain version, the variant, this
//! module's build recipe ([`RECIPE`]) and the absolute source directory (embedded in
//! binaries built without `-trimpath`). A cache hit is a directory lookup and never runs `go`.
//!
//! Builds are safe to run concurrently (parallel tests, `cargo xtask fixtures` next to
//! `cargo test`): each build goes to a private temporary directory that is renamed into place;
//! whoever renames first wins and the others discard their copy.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context as _, bail};
use sha2::{Digest as _, Sha256};

use crate::go::{self, Toolchain};

/// Bump when the way binaries are built changes, so stale cache entries are not reused.
pub const RECIPE: &str = "gtrace-fixture-v2 CGO_ENABLED=0 -buildvcs=false";

/// The fixtures the integration tests use (each a `main` package in `tests/fixtures/<name>/`).
pub const TEST_FIXTURES: &[&str] = &["blocked", "churn", "panics", "inline", "leaky", "pingpong"];

/// The demo program `cargo xtask demo` runs (also in `tests/fixtures/`).
pub const DEMO: &str = "demo";

/// Every program under `tests/fixtures/`: [`TEST_FIXTURES`] and [`DEMO`].
pub const ALL_PROGRAMS: &[&str] = &[
    "blocked", "churn", "panics", "inline", "leaky", "demo", "pingpong", "httpload",
];

/// How a fixture binary is built: the build shapes the tracer must cope with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Variant {
    /// `go build` with no extra flags: symbols and DWARF present.
    Default,
    /// `-ldflags=-s -w`: no symbol table, no DWARF (pclntab remains).
    Stripped,
    /// `-buildmode=pie`: position independent, loaded at a random base.
    Pie,
    /// `-trimpath`: file names in pclntab/DWARF are module-relative (`blocked/main.go`).
    Trimpath,
}

impl Variant {
    /// Every variant, in a stable order.
    pub const ALL: [Variant; 4] = [
        Variant::Default,
        Variant::Stripped,
        Variant::Pie,
        Variant::Trimpath,
    ];

    /// Short lower-case name (`"default"`, `"stripped"`, `"pie"`, `"trimpath"`).
    pub fn name(self) -> &'static str {
        match self {
            Variant::Default => "default",
            Variant::Stripped => "stripped",
            Variant::Pie => "pie",
            Variant::Trimpath => "trimpath",
        }
    }

    /// The extra `go build` flags of this variant.
    pub fn flags(self) -> &'static [&'static str] {
        match self {
            Variant::Default => &[],
            Variant::Stripped => &["-ldflags=-s -w"],
            Variant::Pie => &["-buildmode=pie"],
            Variant::Trimpath => &["-trimpath"],
        }
    }

    /// True if the binary keeps its symbol table and DWARF.
    pub fn has_symbols(self) -> bool {
        self != Variant::Stripped
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// Every program under `tests/fixtures/` (each directory with a `go.mod`), sorted: the
/// listed ones and any added later, so `cargo xtask fixtures` and the build tests pick new
/// fixtures up without a list to edit.
pub fn programs() -> anyhow::Result<Vec<String>> {
    let dir = fixtures_dir();
    let mut out = Vec::new();
    for entry in
        std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?
    {
        let entry = entry?;
        if entry.path().join("go.mod").is_file() {
            out.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    Ok(out)
}

/// `tests/fixtures/` of this checkout.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The source directory of fixture `name`.
pub fn source_dir(name: &str) -> PathBuf {
    fixtures_dir().join(name)
}

/// Every (toolchain, variant) pair, toolchains oldest first. Fails like [`go::all`] if any
/// toolchain is missing.
pub fn matrix() -> anyhow::Result<impl Iterator<Item = (Toolchain, Variant)>> {
    let toolchains = go::all()?;
    Ok(toolchains
        .into_iter()
        .flat_map(|tc| Variant::ALL.into_iter().map(move |v| (tc.clone(), v))))
}

/// One build of [`build_many`].
#[derive(Debug, Clone)]
pub struct Job {
    /// Fixture name.
    pub name: String,
    /// Toolchain to build with.
    pub toolchain: Toolchain,
    /// Build variant.
    pub variant: Variant,
}

/// The outcome of one [`Job`], passed to [`build_many`]'s progress callback.
#[derive(Debug)]
pub struct Outcome<'a> {
    /// The job.
    pub job: &'a Job,
    /// The binary and whether `go build` ran (`false`: cache hit), or the failure.
    pub result: &'a anyhow::Result<(PathBuf, bool)>,
    /// How long it took.
    pub elapsed: std::time::Duration,
    /// Jobs finished so far, this one included.
    pub done: usize,
    /// Jobs in total.
    pub total: usize,
}

/// Every (fixture, toolchain, variant) of `names` x [`matrix`], ordered for a cold cache:
/// toolchain varies fastest, so parallel workers compile the standard library of *different*
/// toolchains instead of racing to compile the same packages twice (Go's build cache does
/// not deduplicate in-flight compiles across processes).
pub fn jobs<S: AsRef<str>>(names: &[S]) -> anyhow::Result<Vec<Job>> {
    let toolchains = go::all()?;
    let mut out = Vec::new();
    for variant in Variant::ALL {
        for name in names {
            for tc in &toolchains {
                out.push(Job {
                    name: name.as_ref().to_owned(),
                    toolchain: tc.clone(),
                    variant,
                });
            }
        }
    }
    Ok(out)
}

/// Builds `jobs` on `workers` threads (`go build` parallelises compilation itself, so more
/// workers than cores only adds contention), calling `progress` after each one. Returns the
/// failures' messages (empty if all succeeded).
pub fn build_many(
    jobs: &[Job],
    workers: usize,
    progress: &(dyn Fn(Outcome<'_>) + Sync),
) -> Vec<String> {
    use std::sync::Mutex;
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers.max(1) {
            s.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(job) = jobs.get(index) else { break };
                    let began = std::time::Instant::now();
                    let result = build_reporting(&job.name, &job.toolchain, job.variant);
                    if let Err(e) = &result {
                        failures
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push(format!("{e:#}"));
                    }
                    progress(Outcome {
                        job,
                        result: &result,
                        elapsed: began.elapsed(),
                        done: done.fetch_add(1, Ordering::Relaxed) as usize + 1,
                        total: jobs.len(),
                    });
                }
            });
        }
    });
    failures
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Removes cached binaries built from *this* checkout's fixtures that `keep` no longer
/// produces (stale sources, old recipes), and build directories left by interrupted builds
/// more than an hour ago. Entries of other checkouts are left alone. Returns how many
/// entries were removed.
pub fn prune(keep: &[Job]) -> anyhow::Result<usize> {
    let root = go::cache_dir().join("fixtures");
    let mut wanted = std::collections::HashSet::new();
    for job in keep {
        wanted.insert(cache_key(&job.name, &job.toolchain, job.variant)?);
    }
    let ours = fixtures_dir();
    let mut removed = 0;
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Ok(0);
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        let stale = if file_name.starts_with(".tmp-") {
            entry
                .metadata()?
                .modified()?
                .elapsed()
                .is_ok_and(|age| age > std::time::Duration::from_hours(1))
        } else {
            let info = std::fs::read_to_string(path.join("build.txt")).unwrap_or_default();
            // Entries made before build.txt had a `source:` line name it in the command.
            let source = info.lines().find_map(|l| {
                l.strip_prefix("source: ").or_else(|| {
                    l.strip_prefix("command: cd \"")
                        .and_then(|c| c.split_once('"'))
                        .map(|(dir, _)| dir)
                })
            });
            source.is_some_and(|s| Path::new(s).starts_with(&ours))
                && !wanted.contains(file_name.as_ref())
        };
        if stale {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The regular files of a fixture, as sorted paths relative to its directory.
fn source_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let abs = dir.join(&rel);
        for entry in
            std::fs::read_dir(&abs).with_context(|| format!("cannot list {}", abs.display()))?
        {
            let entry = entry?;
            let rel_child = rel.join(entry.file_name());
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(rel_child);
            } else if kind.is_file() {
                out.push(rel_child);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The cache key of a build: hex SHA-256 (first 16 bytes) over recipe, toolchain, variant and
/// sources.
pub fn cache_key(name: &str, tc: &Toolchain, variant: Variant) -> anyhow::Result<String> {
    let dir = source_dir(name);
    if !dir.join("go.mod").is_file() {
        bail!("no fixture named {name:?}: {} has no go.mod", dir.display());
    }
    let mut h = Sha256::new();
    // The source directory is part of the key: non-trimpath binaries embed its absolute path,
    // so checkouts in different places (git worktrees) must not share binaries.
    let dir_text = dir.to_string_lossy();
    for part in [RECIPE, name, &tc.version, variant.name(), &dir_text] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    for rel in source_files(&dir)? {
        let bytes = std::fs::read(dir.join(&rel))
            .with_context(|| format!("cannot read {}", dir.join(&rel).display()))?;
        let rel = rel.to_string_lossy();
        h.update((rel.len() as u64).to_le_bytes());
        h.update(rel.as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    let digest = h.finalize();
    let mut hex = String::with_capacity(32);
    for b in &digest[..16] {
        use std::fmt::Write as _;
        let _ = write!(hex, "{b:02x}");
    }
    Ok(hex)
}

/// Where the cached binary of this build lives (whether or not it exists yet).
pub fn cached_path(name: &str, tc: &Toolchain, variant: Variant) -> anyhow::Result<PathBuf> {
    Ok(go::cache_dir()
        .join("fixtures")
        .join(cache_key(name, tc, variant)?)
        .join(name))
}

/// Builds fixture `name` with `tc` in `variant`, or returns the cached binary.
///
/// Fixtures are built with `CGO_ENABLED=0` (no libc, so the g pointer is at fsbase-8; non-PIE
/// builds are static, PIE builds only request `ld-linux` to relocate them) and
/// `-buildvcs=false` (the binary must not depend on the state of the git checkout).
pub fn build(name: &str, tc: &Toolchain, variant: Variant) -> anyhow::Result<PathBuf> {
    Ok(build_reporting(name, tc, variant)?.0)
}

/// Like [`build`], also saying whether `go build` ran (`true`) or the cache answered (`false`).
pub fn build_reporting(
    name: &str,
    tc: &Toolchain,
    variant: Variant,
) -> anyhow::Result<(PathBuf, bool)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let out = cached_path(name, tc, variant)?;
    if out.is_file() {
        return Ok((out, false));
    }
    let final_dir = out.parent().context("cache path has no parent")?;
    let root = final_dir.parent().context("cache path has no root")?;
    std::fs::create_dir_all(root).with_context(|| format!("cannot create {}", root.display()))?;

    let tmp = root.join(format!(
        ".tmp-{}-{}-{}",
        final_dir.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let result = build_into(name, tc, variant, &tmp, final_dir);
    // Best effort: on success the directory was renamed away, on failure it is garbage.
    let _ = std::fs::remove_dir_all(&tmp);
    result?;
    if !out.is_file() {
        bail!(
            "build of {name} reported success but {} is missing",
            out.display()
        );
    }
    Ok((out, true))
}

fn build_into(
    name: &str,
    tc: &Toolchain,
    variant: Variant,
    tmp: &Path,
    final_dir: &Path,
) -> anyhow::Result<()> {
    let src = source_dir(name);
    let bin = tmp.join(name);
    let mut cmd = tc.command();
    cmd.current_dir(&src)
        .env("CGO_ENABLED", "0")
        .arg("build")
        .arg("-buildvcs=false")
        .args(variant.flags())
        .arg("-o")
        .arg(&bin)
        .arg(".");
    let output = cmd
        .output()
        .with_context(|| format!("cannot run {}", tc.go.display()))?;
    if !output.status.success() {
        bail!(
            "building fixture {name} with Go {} ({variant}) failed ({}):\n{:?}\n{}",
            tc.version,
            output.status,
            cmd,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    std::fs::write(
        tmp.join("build.txt"),
        format!(
            "fixture: {name}\nsource: {}\ngo: {} ({})\nvariant: {variant}\nrecipe: {RECIPE}\ncommand: {cmd:?}\n",
            src.display(),
            tc.version,
            tc.go.display()
        ),
    )?;
    match std::fs::rename(tmp, final_dir) {
        Ok(()) => Ok(()),
        // Someone else finished the same build first; theirs is as good as ours.
        Err(_) if final_dir.join(name).is_file() => Ok(()),
        Err(e) => Err(e)
            .with_context(|| format!("cannot move {} to {}", tmp.display(), final_dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_depends_on_variant_and_version() {
        let a = Toolchain {
            version: "1.27.3".into(),
            go: "/nonexistent".into(),
        };
        let b = Toolchain {
            version: "1.26.6".into(),
            go: "/nonexistent".into(),
        };
        let k1 = cache_key("blocked", &a, Variant::Default).unwrap();
        let k2 = cache_key("blocked", &a, Variant::Pie).unwrap();
        let k3 = cache_key("blocked", &b, Variant::Default).unwrap();
        let k4 = cache_key("churn", &a, Variant::Default).unwrap();
        assert_eq!(k1, cache_key("blocked", &a, Variant::Default).unwrap());
        assert_eq!(k1.len(), 32);
        assert!(k1 != k2 && k1 != k3 && k1 != k4 && k2 != k3);
    }

    #[test]
    fn unknown_fixture_is_an_error() {
        let a = Toolchain {
            version: "1.27.3".into(),
            go: "/nonexistent".into(),
        };
        let err = cache_key("no-such-fixture", &a, Variant::Default).unwrap_err();
        assert!(err.to_string().contains("no fixture named"), "{err}");
    }
}
