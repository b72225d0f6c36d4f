//! Which compiler builds the eBPF side — shared by `tracer-user/build.rs` (which builds the
//! object) and `cargo xtask test` (which lints it), so both always agree.
//!
//! Two setups are supported, detected rather than configured:
//! - a rustup nightly with `rust-src`: aya's usual path, `-Z build-std=core`;
//! - Debian's `rustc-web` with the prebuilt BPF `core` (`libstd-rust-web-dev-bpf`), linked into
//!   rustup as `gtrace-bpf` by `setup.sh`. It is a stable compiler, so the crates that use
//!   `#![feature]` need `RUSTC_BOOTSTRAP` (see ../shared/TOOLCHAIN.md).
//!
//! `GTRACE_EBPF_TOOLCHAIN` overrides the choice (a rustup toolchain name).

use std::{path::Path, process::Command};

/// The Debian toolchain's rustup name, as `setup.sh` links it.
pub(crate) const DEBIAN_TOOLCHAIN: &str = "gtrace-bpf";
/// Crates of the eBPF build that use `#![feature]` (the value for `RUSTC_BOOTSTRAP`).
pub(crate) const FEATURE_CRATES: &str = "aya_ebpf";

/// The compiler chosen for the eBPF side.
pub(crate) struct EbpfToolchain {
    /// rustup toolchain name.
    pub(crate) name: String,
    /// Whether `core` for the BPF target must be built from `rust-src` (`-Z build-std=core`);
    /// false when it ships prebuilt (Debian), which then needs `RUSTC_BOOTSTRAP` instead.
    pub(crate) build_std: bool,
}

fn rustup(args: &[&str]) -> Option<String> {
    let out = Command::new("rustup").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn has_rust_src(toolchain: &str) -> bool {
    rustup(&["run", toolchain, "rustc", "--print", "sysroot"]).is_some_and(|sysroot| {
        Path::new(sysroot.trim())
            .join("lib/rustlib/src/rust/library/core")
            .is_dir()
    })
}

/// Detects the eBPF compiler, or says how to install one.
pub(crate) fn detect() -> Result<EbpfToolchain, String> {
    if let Ok(name) = std::env::var("GTRACE_EBPF_TOOLCHAIN") {
        let build_std = has_rust_src(&name);
        return Ok(EbpfToolchain { name, build_std });
    }
    if has_rust_src("nightly") {
        return Ok(EbpfToolchain {
            name: "nightly".to_owned(),
            build_std: true,
        });
    }
    if rustup(&["toolchain", "list"])
        .is_some_and(|l| l.lines().any(|t| t.starts_with(DEBIAN_TOOLCHAIN)))
    {
        return Ok(EbpfToolchain {
            name: DEBIAN_TOOLCHAIN.to_owned(),
            build_std: false,
        });
    }
    Err(format!(
        "no compiler for the eBPF side: neither a rustup nightly with rust-src nor the \
         `{DEBIAN_TOOLCHAIN}` toolchain was found. Run `sudo ./setup.sh` from the repository \
         root (it installs Debian's rustc-web and bpf-linker), or \
         `rustup toolchain install nightly --component rust-src` and `cargo install bpf-linker`."
    ))
}
