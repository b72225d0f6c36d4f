//! `cargo xtask gen-offsets`: regenerates the per-version runtime tables
//! (`tracer-user/src/gobin/layout_table.rs` and `waitreason_table.rs`).
//!
//! For every installed toolchain it builds the `layoutprobe` fixture (with DWARF and symbols),
//! reads struct layouts, `runtime.waitReasonStrings` and `runtime.gStatusStrings` through the
//! same library code gtrace uses on real binaries (`gobin::dwarf`, `gobin::waitreason`), and
//! renders the tables with `gobin::table_gen`. The drift test in
//! `tests/tests/gobin_layout.rs` does the same and diffs against the committed files.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use gtrace_tests::fixture::{self, Variant};
use gtrace_tests::go;
use tracer_user::gobin::table_gen::{self, Probe};

/// The fixture whose DWARF the tables are generated from.
pub(crate) const PROBE_FIXTURE: &str = "layoutprobe";

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Only compare with the committed files; fail if they differ (nothing is written).
    #[arg(long)]
    check: bool,
    /// Directory to write the tables to (default: tracer-user/src/gobin of this checkout).
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

fn gobin_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tracer-user/src/gobin")
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let mut probes = Vec::new();
    for tc in go::all()? {
        let bin = fixture::build(PROBE_FIXTURE, &tc, Variant::Default)?;
        let data = std::fs::read(&bin).with_context(|| format!("cannot read {}", bin.display()))?;
        let version = tc
            .version
            .parse()
            .with_context(|| format!("toolchain {tc}"))?;
        let probe = Probe::from_elf(&data, version).with_context(|| {
            format!(
                "cannot extract the runtime tables of {tc} from {}",
                bin.display()
            )
        })?;
        println!(
            "{tc:<10} g={} bytes goid@{} waitreason@{} m.curg@{} {} wait reasons",
            probe.layout.g.size,
            probe.layout.g.goid,
            probe.layout.g.waitreason,
            probe.layout.m.curg,
            probe.wait_reasons.len()
        );
        probes.push(probe);
    }
    let files = [
        ("layout_table.rs", table_gen::render_layout_table(&probes)),
        (
            "waitreason_table.rs",
            table_gen::render_waitreason_table(&probes),
        ),
    ];
    let dir = args.out_dir.clone().unwrap_or_else(gobin_dir);
    let mut stale = Vec::new();
    for (name, text) in &files {
        let path = dir.join(name);
        if args.check {
            let old = std::fs::read_to_string(&path).unwrap_or_default();
            if &old != text {
                stale.push(path.display().to_string());
            }
        } else {
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    if !stale.is_empty() {
        bail!(
            "{} differ from the installed toolchains: run cargo xtask gen-offsets",
            stale.join(", ")
        );
    }
    Ok(())
}
