//! `cargo xtask record-dumps`: records real Go goroutine dumps as parser test data.
//!
//! The dump parser (`gtrace_tests::traceback`) is tested on text Go itself printed, for every
//! toolchain: SIGQUIT dumps of the `blocked` fixture and fatal panics of the `panics`
//! fixture. Binaries are built with `-trimpath` so the samples hold no machine-specific paths.
//! Re-run after adding a toolchain or changing those fixtures, and review the diff.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use gtrace_tests::fixture::{self, Variant};
use gtrace_tests::go;
use gtrace_tests::process::{self, Spawned};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Output directory (default: tests/testdata/dumps).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Fatal `panics` modes recorded for every toolchain.
const PANIC_MODES: &[&str] = &[
    "goroutine",
    "repanic_fatal",
    "nested_fatal",
    "deep_fatal",
    "nil_deref_fatal",
    "deadlock",
];

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let out = args.out.clone().unwrap_or_else(|| {
        fixture::fixtures_dir()
            .with_file_name("testdata")
            .join("dumps")
    });
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    for tc in go::all()? {
        let blocked = fixture::build("blocked", &tc, Variant::Trimpath)?;
        let (_, dump) = process::goroutine_dump(&blocked, &[] as &[&str])?;
        let path = out.join(format!("blocked-sigquit-go{}.txt", tc.minor_str()));
        std::fs::write(&path, dump)?;
        println!("wrote {}", path.display());
        if tc.minor() == (1, 19) || tc.version == go::PYPI_VERSIONS[go::PYPI_VERSIONS.len() - 1] {
            // Oldest and newest only: creation stacks of ancestors (`[originating from …]`).
            let mut p = Spawned::spawn(
                &blocked,
                [] as [&str; 0],
                &[
                    process::GOTRACEBACK_ALL,
                    ("GODEBUG", "tracebackancestors=2"),
                ],
            )?;
            p.wait_ready()?;
            let dump = process::quit_and_collect(&mut p)?;
            let path = out.join(format!("blocked-ancestors-go{}.txt", tc.minor_str()));
            std::fs::write(&path, dump)?;
            println!("wrote {}", path.display());
        }

        let panics = fixture::build("panics", &tc, Variant::Trimpath)?;
        for mode in PANIC_MODES {
            let mut p = Spawned::spawn(&panics, [mode], &[process::GOTRACEBACK_ALL])?;
            p.wait_ready()?;
            p.write_line("go")?;
            p.wait_exit(Duration::from_secs(30))?;
            let path = out.join(format!("panics-{mode}-go{}.txt", tc.minor_str()));
            std::fs::write(&path, p.stderr())?;
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}
