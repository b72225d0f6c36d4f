//! Builds the eBPF object (`tracer-ebpf`) with aya-build so that `cargo build` builds all of
//! gtrace in one step; `probes/` embeds the result with `include_bytes_aligned!`.
//!
//! Two compiler setups are supported, detected here rather than configured:
//! - a rustup nightly with `rust-src`: aya's usual path, `-Z build-std=core`;
//! - Debian's `rustc-web` with the prebuilt BPF `core` (`libstd-rust-web-dev-bpf`), linked into
//!   rustup as `gtrace-bpf` by `setup.sh`. It is a stable compiler, so only the crates that use
//!   `#![feature]` get `RUSTC_BOOTSTRAP` (naming them keeps aya-build off `-Z build-std`).
//!
//! `GTRACE_EBPF_TOOLCHAIN` overrides the choice (a rustup toolchain name).

use std::{env, path::Path, process::Command};

use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

/// The Debian toolchain's rustup name, as `setup.sh` links it.
const DEBIAN_TOOLCHAIN: &str = "gtrace-bpf";
/// Crates of the eBPF build that use `#![feature]` (see ../shared/TOOLCHAIN.md).
const FEATURE_CRATES: &str = "aya_ebpf";

fn rustup(args: &[&str]) -> Option<String> {
    let out = Command::new("rustup").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn nightly_has_rust_src() -> bool {
    rustup(&["run", "nightly", "rustc", "--print", "sysroot"]).is_some_and(|sysroot| {
        Path::new(sysroot.trim())
            .join("lib/rustlib/src/rust/library/core")
            .is_dir()
    })
}

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=GTRACE_EBPF_TOOLCHAIN");
    // cargo-fuzz builds with `--cfg fuzzing`. The fuzz targets only parse binaries and never
    // load eBPF programs, so they get an empty object instead of an eBPF build (with its
    // toolchain requirements and a sanitizer-instrumented aya-build run); loading it would
    // fail with a parse error.
    if env::var_os("CARGO_CFG_FUZZING").is_some() {
        let out = env::var("OUT_DIR").context("OUT_DIR")?;
        std::fs::write(Path::new(&out).join("tracer-ebpf"), b"")
            .context("writing the empty eBPF object")?;
        return Ok(());
    }
    let toolchain = if let Ok(name) = env::var("GTRACE_EBPF_TOOLCHAIN") {
        name
    } else if nightly_has_rust_src() {
        "nightly".to_owned()
    } else if rustup(&["toolchain", "list"])
        .is_some_and(|l| l.lines().any(|t| t.starts_with(DEBIAN_TOOLCHAIN)))
    {
        // SAFETY: build scripts are single-threaded; aya-build's child cargo inherits this.
        unsafe { env::set_var("RUSTC_BOOTSTRAP", FEATURE_CRATES) };
        DEBIAN_TOOLCHAIN.to_owned()
    } else {
        return Err(anyhow!(
            "no compiler for the eBPF side: neither a rustup nightly with rust-src nor the \
             `{DEBIAN_TOOLCHAIN}` toolchain was found. Run `sudo ./setup.sh` from the repository \
             root (it installs Debian's rustc-web and bpf-linker), or \
             `rustup toolchain install nightly --component rust-src` and `cargo install bpf-linker`."
        ));
    };
    if Command::new("bpf-linker")
        .arg("--version")
        .output()
        .is_err()
    {
        return Err(anyhow!(
            "bpf-linker is not on PATH. Run `sudo ./setup.sh` (it builds bpf-linker for the LLVM \
             of the eBPF compiler), or `cargo install bpf-linker`."
        ));
    }

    let manifest = env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?;
    let ebpf_dir = Path::new(&manifest).join("../tracer-ebpf");
    let ebpf_dir = ebpf_dir.to_str().context("non-UTF-8 path")?;
    aya_build::build_ebpf(
        [Package {
            name: "tracer-ebpf",
            root_dir: ebpf_dir,
            ..Default::default()
        }],
        Toolchain::Custom(&toolchain),
    )
    .with_context(|| format!("building the eBPF object with the `{toolchain}` toolchain"))
}
