//! Real Go programs nobody here wrote: Debian's packaged Go servers, fetched with `apt-get
//! download` and unpacked with `dpkg-deb -x` into the cache, never installed (no service
//! starts, nothing in `/usr` changes).
//!
//! Debian 12 builds them with its Go 1.19, stripped, with cgo (so dynamically linked, and
//! `.text` starts with C code before `runtime.text`) and `-trimpath`: everything that fixtures
//! built by this project make too easy. [`fetch`] returns the unpacked binary, cached under
//! `<cache>/debian/<package>_<version>/` ([`crate::go::cache_dir`]) keyed by the archive's
//! candidate version, so a Debian point release fetches the new build.
//!
//! Failures are errors naming the fix, never skips: a test that needs these programs fails
//! when the archive cannot be reached.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use anyhow::{Context as _, bail};

/// A Debian package and the Go program in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Package {
    /// Package name (`apt-get download NAME`).
    pub name: &'static str,
    /// The program's path inside the package (no leading `/`).
    pub binary: &'static str,
}

/// Prometheus' node exporter (Debian 12: 1.5.0): a long-running HTTP server with pprof
/// handlers; `--web.listen-address=127.0.0.1:PORT`.
pub const NODE_EXPORTER: Package = Package {
    name: "prometheus-node-exporter",
    binary: "usr/bin/prometheus-node-exporter",
};

/// etcd (Debian 12: 3.4.23): a Raft key-value server with gRPC and an HTTP gateway.
pub const ETCD: Package = Package {
    name: "etcd-server",
    binary: "usr/bin/etcd",
};

/// containerd (Debian 12: 1.6.20): the container runtime daemon.
pub const CONTAINERD: Package = Package {
    name: "containerd",
    binary: "usr/bin/containerd",
};

/// restic (Debian 12: 0.14.0): a backup program (a CLI, not a server).
pub const RESTIC: Package = Package {
    name: "restic",
    binary: "usr/bin/restic",
};

/// rclone (Debian 12: 1.60.1): cloud storage sync, one of the largest Go programs packaged.
pub const RCLONE: Package = Package {
    name: "rclone",
    binary: "usr/bin/rclone",
};

/// Packages whose binaries are checked statically only (inspect, symbols).
pub const STATIC_ONLY: &[Package] = &[CONTAINERD, RESTIC, RCLONE];

/// A package unpacked in the cache.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Its version in the archive (`1.5.0-1+b6`).
    pub version: String,
    /// Where the package was unpacked (its `/`).
    pub root: PathBuf,
    /// The Go program.
    pub binary: PathBuf,
}

/// Numbers temporary directories of [`fetch`].
static CALLS: AtomicU64 = AtomicU64::new(0);

/// `apt-get update` runs at most once per process (it is slow and needs the network).
static UPDATED: Mutex<bool> = Mutex::new(false);

/// Fetches and unpacks `pkg` unless the cache already holds its candidate version.
///
/// # Errors
/// When `apt-cache`, `apt-get` or `dpkg-deb` are missing, the package has no candidate even
/// after `apt-get update` (not Debian 12, or no network to the archive), or unpacking fails.
pub fn fetch(pkg: &Package) -> anyhow::Result<Fetched> {
    let version = if let Some(v) = candidate(pkg.name)? {
        v
    } else {
        update_once()?;
        candidate(pkg.name)?.with_context(|| {
            format!(
                "package {} has no install candidate even after `apt-get update`: these \
                 tests need Debian 12 (bookworm) with its main archive in the apt sources",
                pkg.name
            )
        })?
    };
    let dir = crate::go::cache_dir().join("debian").join(format!(
        "{}_{}",
        pkg.name,
        version.replace(':', "%3a")
    ));
    let binary = dir.join(pkg.binary);
    if binary.is_file() {
        return Ok(Fetched {
            version,
            root: dir,
            binary,
        });
    }
    let parent = dir.parent().context("cache dir has a parent")?;
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    // Download and unpack in a private directory, then rename: concurrent test processes
    // never see a half-unpacked tree.
    // Unique per process and call: test threads of one process fetch concurrently.
    let tmp = parent.join(format!(
        ".tmp-{}-{}-{}",
        pkg.name,
        std::process::id(),
        CALLS.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let result = download_and_unpack(pkg, &version, &tmp, &dir);
    let _ = std::fs::remove_dir_all(&tmp);
    result?;
    if !binary.is_file() {
        bail!(
            "{} {version} unpacked to {} but has no {}",
            pkg.name,
            dir.display(),
            pkg.binary
        );
    }
    Ok(Fetched {
        version,
        root: dir,
        binary,
    })
}

fn download_and_unpack(pkg: &Package, version: &str, tmp: &Path, dir: &Path) -> anyhow::Result<()> {
    let spec = format!("{}={version}", pkg.name);
    if run(apt_download(&spec, tmp)).is_err() {
        // A stale package list names a file the mirror no longer has.
        update_once()?;
        run(apt_download(&spec, tmp))?;
    }
    let deb = std::fs::read_dir(tmp)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .with_context(|| format!("apt-get download {spec} left no .deb in {}", tmp.display()))?;
    let root = tmp.join("root");
    let mut x = Command::new("dpkg-deb");
    x.arg("-x").arg(&deb).arg(&root);
    run(x)?;
    match std::fs::rename(&root, dir) {
        Ok(()) => Ok(()),
        // Another test process unpacked the same version first.
        Err(_) if dir.join(pkg.binary).is_file() => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot move the package to {}", dir.display())),
    }
}

fn apt_download(spec: &str, dir: &Path) -> Command {
    let mut cmd = Command::new("apt-get");
    // As root, apt would hand the download to its `_apt` user, who cannot write here.
    cmd.args(["-q", "-o", "APT::Sandbox::User=root", "download", spec])
        .current_dir(dir);
    cmd
}

/// The archive's candidate version of `name` (`apt-cache policy`), `None` if it has none.
fn candidate(name: &str) -> anyhow::Result<Option<String>> {
    let mut cmd = Command::new("apt-cache");
    cmd.args(["policy", name]);
    let out = run(cmd)?;
    Ok(out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Candidate:"))
        .map(str::trim)
        .filter(|v| !v.is_empty() && *v != "(none)")
        .map(str::to_owned))
}

fn update_once() -> anyhow::Result<()> {
    let mut done = UPDATED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !*done {
        let mut cmd = Command::new("apt-get");
        cmd.args(["-q", "update"]);
        run(cmd).context("apt-get update (needs root and the network)")?;
        *done = true;
    }
    Ok(())
}

/// Runs `cmd`, returns its stdout; an error with its stderr if it fails or cannot start.
fn run(mut cmd: Command) -> anyhow::Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?} (is this a Debian system?)"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A free TCP port on 127.0.0.1 (bound, then released for the server to take).
///
/// # Errors
/// When no port can be bound.
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// `GET path` over HTTP/1.0 on 127.0.0.1:`port`; returns the status code and body.
///
/// # Errors
/// When the connection fails or the answer is not HTTP.
pub fn http_get(port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))
        .with_context(|| format!("connect to 127.0.0.1:{port}"))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("not an HTTP answer from 127.0.0.1:{port}{path}: {head:?}"))?;
    Ok((code, body.to_owned()))
}
