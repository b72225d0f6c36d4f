//! `cargo xtask fuzz [--seconds N] [TARGET...]`: builds the cargo-fuzz targets of `fuzz/`
//! and runs each for a short budget from seed corpora cut out of real fixture binaries;
//! any crash (panic, sanitizer report, out-of-memory, timeout) fails the run. `cargo xtask
//! test` runs it; longer runs are documented in docs/FUZZING.md.
//!
//! Toolchain: cargo-fuzz needs unstable rustc flags (`-Z sanitizer`, sanitizer coverage
//! passes). A fresh machine has only the stable rustup toolchain and no nightly can be
//! fetched, so we use stable with `RUSTC_BOOTSTRAP=1`, which unlocks those flags (stable ships
//! the address sanitizer's runtime, `librustc-stable_rt.asan.a`). The same command works where a
//! nightly is installed (it is simply not used). Artifacts go to `target/fuzz/`, apart from the
//! workspace's own builds.

use std::{path::PathBuf, process::Command, time::Instant};

use anyhow::{Context as _, bail};
use gtrace_tests::{
    fixture::{self, Variant},
    go,
};
use tracer_user::gobin::elf::ElfImage;

/// The targets, as named in fuzz/Cargo.toml.
const TARGETS: &[&str] = &["elf", "pclntab", "buildinfo", "capture"];

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Seconds to fuzz each target.
    #[arg(long, default_value_t = 25)]
    seconds: u64,
    /// Targets to run (default: all).
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(TARGETS))]
    targets: Vec<String>,
}

impl Args {
    /// All targets, `seconds` each.
    pub(crate) const fn new(seconds: u64) -> Self {
        Self {
            seconds,
            targets: Vec::new(),
        }
    }
}

fn root() -> PathBuf {
    crate::bench::root()
}

/// `cargo +stable fuzz …` with the flags every invocation shares.
fn cargo_fuzz(sub: &str) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root().join("fuzz"))
        .env("RUSTC_BOOTSTRAP", "1")
        .args(["+stable", "fuzz", sub])
        // The address sanitizer catches memory errors in the `unsafe` around the mmap and
        // libFuzzer's -malloc_limit_mb needs its allocator hooks to flag a huge allocation.
        .args(["--sanitizer", "address"])
        // The default of one codegen unit makes the cold build several times slower.
        .args(["--codegen-units", "16"])
        .arg("--target-dir")
        .arg(root().join("target/fuzz"));
    cmd
}

/// Writes the seed corpora: for a few fixture binaries, the whole file (elf), its pclntab
/// (pclntab) and its build-info block (buildinfo); the committed captures of
/// `fuzz/seeds/capture` (capture).
fn seed_corpora() -> anyhow::Result<PathBuf> {
    let dir = root().join("target/fuzz/corpus");
    let toolchains = go::all()?;
    let (Some(oldest), Some(newest)) = (toolchains.first(), toolchains.last()) else {
        bail!("no Go toolchains: run `cargo xtask go-toolchains`");
    };
    for (tc, v) in [
        (oldest, Variant::Stripped),
        (newest, Variant::Stripped),
        (newest, Variant::Pie),
    ] {
        let path = fixture::build("inline", tc, v)?;
        let name = format!("inline-{}-{}", tc.version, v.name());
        let image = ElfImage::open(&path)?;
        let write = |target: &str, bytes: &[u8]| -> anyhow::Result<()> {
            let d = dir.join(target);
            std::fs::create_dir_all(&d)?;
            Ok(std::fs::write(d.join(&name), bytes)?)
        };
        write("elf", image.bytes())?;
        for (target, section) in [
            ("pclntab", ".gopclntab"),
            ("pclntab", ".data.rel.ro.gopclntab"),
            ("buildinfo", ".go.buildinfo"),
        ] {
            if let Some((_, data)) = image.section_data(section) {
                write(target, data)?;
            }
        }
    }
    let seeds = root().join("fuzz/seeds/capture");
    let d = dir.join("capture");
    std::fs::create_dir_all(&d)?;
    for entry in std::fs::read_dir(&seeds).with_context(|| format!("{}", seeds.display()))? {
        let path = entry?.path();
        if let Some(name) = path.file_name()
            && path.extension().is_some_and(|e| e == "gtc")
        {
            std::fs::copy(&path, d.join(name))?;
        }
    }
    Ok(dir)
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let have = Command::new("cargo")
        .args(["+stable", "fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        bail!(
            "cargo-fuzz is not installed: run `sudo ./setup.sh` (or `cargo install --locked cargo-fuzz`)"
        );
    }
    let targets: Vec<&str> = if args.targets.is_empty() {
        TARGETS.to_vec()
    } else {
        args.targets.iter().map(String::as_str).collect()
    };
    let corpus = seed_corpora()?;
    let t = Instant::now();
    let mut build = cargo_fuzz("build");
    if !build
        .status()
        .context("running cargo fuzz build")?
        .success()
    {
        bail!("building the fuzz targets failed");
    }
    println!("==> fuzz targets built in {:.0?}", t.elapsed());
    for target in targets {
        let d = corpus.join(target);
        std::fs::create_dir_all(&d)?;
        let mut run = cargo_fuzz("run");
        run.arg(target).arg(&d).arg("--").args([
            format!("-max_total_time={}", args.seconds),
            // Whole binaries are seeds: let inputs be as long as they are.
            "-max_len=4000000".to_owned(),
            "-rss_limit_mb=3072".to_owned(),
            "-malloc_limit_mb=1024".to_owned(),
            "-timeout=20".to_owned(),
            "-print_final_stats=1".to_owned(),
        ]);
        let t = Instant::now();
        let status = run.status().context("running cargo fuzz run")?;
        println!("==> fuzz {target}: {status} after {:.0?}", t.elapsed());
        if !status.success() {
            bail!(
                "fuzz target {target} crashed: the input is saved under fuzz/artifacts/{target}/ \
                 (see docs/FUZZING.md to reproduce and minimize it)"
            );
        }
    }
    Ok(())
}
