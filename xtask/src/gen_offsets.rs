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
use gtrace_tests::go::{self, Toolchain};
use tracer_user::gobin::layout::{RuntimeLayout, Source};
use tracer_user::gobin::table_gen::{self, Probe};
use tracer_user::gobin::waitreason::{StatusNames, WaitReasons};

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
    /// Instead of generating: build the probe with these extra `go` binaries (other patch
    /// releases) and report how they differ from the committed table entry of their minor.
    /// A difference means a patch exception is needed (see `docs/NEW_GO_VERSION.md`).
    #[arg(long, value_name = "GO")]
    compare_go: Vec<PathBuf>,
    /// Also regenerate `layout_exceptions.rs` from these extra `go` binaries (other patch
    /// releases of supported minors); without it that file is left alone.
    #[arg(long, value_name = "GO")]
    exceptions_from: Vec<PathBuf>,
}

/// A toolchain outside the installed set, named by its `go` binary.
fn extra_toolchain(go_bin: &Path) -> anyhow::Result<Toolchain> {
    Ok(Toolchain {
        version: go::go_version(go_bin)?,
        go: go_bin.to_path_buf(),
    })
}

/// Builds the probe fixture with `tc` and extracts its tables.
fn probe_for(tc: &Toolchain) -> anyhow::Result<Probe> {
    let bin = fixture::build(PROBE_FIXTURE, tc, Variant::Default)?;
    let data = std::fs::read(&bin).with_context(|| format!("cannot read {}", bin.display()))?;
    let version = tc
        .version
        .parse()
        .with_context(|| format!("toolchain {tc}"))?;
    Probe::from_elf(&data, version).with_context(|| {
        format!(
            "cannot extract the runtime tables of {tc} from {}",
            bin.display()
        )
    })
}

fn gobin_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tracer-user/src/gobin")
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    if !args.compare_go.is_empty() {
        return compare(&args.compare_go);
    }
    let mut probes = Vec::new();
    for tc in go::all()? {
        let probe = probe_for(&tc)?;
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
    let mut files = vec![
        ("layout_table.rs", table_gen::render_layout_table(&probes)),
        (
            "waitreason_table.rs",
            table_gen::render_waitreason_table(&probes),
        ),
    ];
    if !args.exceptions_from.is_empty() {
        let extra = args
            .exceptions_from
            .iter()
            .map(|go_bin| probe_for(&extra_toolchain(go_bin)?))
            .collect::<anyhow::Result<Vec<_>>>()?;
        files.push((
            "layout_exceptions.rs",
            table_gen::render_exceptions(&probes, &extra),
        ));
    }
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

/// Builds the probe with each `go` binary and prints its differences from the committed table.
fn compare(gos: &[PathBuf]) -> anyhow::Result<()> {
    let mut differing = 0;
    for go_bin in gos {
        let tc = extra_toolchain(go_bin)?;
        let probe = probe_for(&tc)?;
        let version = probe.version.clone();
        let table = RuntimeLayout::for_version(&version)?;
        let Source::Table { version: base } = &table.source else {
            unreachable!("table layout")
        };
        let mut diffs: Vec<String> = probe
            .layout
            .to_rust(base)
            .lines()
            .zip(table.to_rust(base).lines())
            .filter(|(a, b)| a != b)
            .map(|(a, b)| format!("  {tc}: {}\n  {base}: {}", a.trim(), b.trim()))
            .collect();
        let reasons = WaitReasons::for_version(&version)?;
        let theirs: Vec<&str> = reasons.strings.iter().map(AsRef::as_ref).collect();
        if probe.wait_reasons != theirs {
            diffs.push(format!(
                "  wait reasons differ: {:?}\n  vs {base}: {theirs:?}",
                probe.wait_reasons
            ));
        }
        let statuses = StatusNames::for_version(&version)?;
        let theirs: Vec<&str> = statuses.strings.iter().map(AsRef::as_ref).collect();
        if probe.statuses != theirs {
            diffs.push(format!(
                "  status names differ: {:?}\n  vs {base}: {theirs:?}",
                probe.statuses
            ));
        }
        if diffs.is_empty() {
            println!("{tc}: same layout, wait reasons and status names as the {base} table entry");
        } else {
            differing += 1;
            println!(
                "{tc}: DIFFERS from the {base} table entry:\n{}",
                diffs.join("\n")
            );
        }
    }
    if differing > 0 {
        bail!(
            "{differing} toolchain(s) differ from their minor's table entry: add patch exceptions"
        );
    }
    Ok(())
}
