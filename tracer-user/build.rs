//! Builds the eBPF object (`tracer-ebpf`) with aya-build so that `cargo build` builds all of
//! gtrace in one step; `probes/` embeds the result with `include_bytes_aligned!`.
//!
//! The compiler is detected by `build/ebpf_toolchain.rs` (shared with `cargo xtask test`,
//! which lints the eBPF crate with the same one).

#[path = "build/ebpf_toolchain.rs"]
mod ebpf_toolchain;

use std::{env, path::Path, process::Command};

use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

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
    let toolchain = ebpf_toolchain::detect().map_err(|e| anyhow!(e))?;
    if !toolchain.build_std {
        // SAFETY: build scripts are single-threaded; aya-build's child cargo inherits this.
        // Naming only the `#![feature]` crates keeps aya-build off `-Z build-std`.
        unsafe { env::set_var("RUSTC_BOOTSTRAP", ebpf_toolchain::FEATURE_CRATES) };
    }
    let toolchain = toolchain.name;
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
