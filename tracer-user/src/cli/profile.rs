//! `gtrace profile`: a goroutine profile of a live process from one snapshot (what Go's
//! `/debug/pprof/goroutine` serves), or a block profile of a traced window (where goroutines
//! spent time parked, and who woke them), as pprof, folded stacks, or an SVG flame graph.

use std::{
    fs::File,
    io::{BufWriter, Write as _},
    path::PathBuf,
    time::Duration,
};

use anyhow::{Context as _, Result};

use super::{duration, exit::Exit};
use crate::{
    analysis::stacks::StackCounter,
    goroutines::{DumpOptions, target::Target},
    output::{folded, pprof},
};

mod block;

const EXAMPLES: &str = "\
Examples:
  gtrace profile -p 1234 -o goroutines.pb.gz     then: go tool pprof -top goroutines.pb.gz
  gtrace profile -p 1234 -o g.folded --format folded
  gtrace profile -p 1234 -o g.svg --format svg   flame graph, width = goroutines
  gtrace profile -p 1234 --kind block -d 30s -o block.pb.gz
                                                 then: go tool pprof -tags block.pb.gz
  gtrace profile -p 1234 --kind block --view wakers -o wakers.pb.gz
  gtrace profile -p 1234 --kind block --format svg -o block.svg

--kind block attaches the lifecycle probes for -d (the target pays per scheduler event);
docs/leaks.md describes both kinds.";

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// gzip'd profile.proto, for `go tool pprof`.
    Pprof,
    /// Folded stacks: `root;…;leaf count` per line.
    Folded,
    /// SVG flame graph.
    Svg,
}

/// What to profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Where every goroutine is, from one snapshot (like /debug/pprof/goroutine).
    Goroutine,
    /// Time spent parked during a traced window (-d), per stack and wait reason.
    Block,
}

/// Which stacks a block profile is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum View {
    /// The parking goroutines' stacks.
    #[default]
    Parked,
    /// The stacks of the goroutines (or runtime code) that woke them.
    Wakers,
}

/// Flags of `gtrace profile`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct ProfileArgs {
    /// Process id of the running Go program.
    #[arg(short, long)]
    pub pid: i32,
    /// Output file.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Pprof)]
    pub format: Format,
    /// Profile kind.
    #[arg(long, value_enum, default_value_t = Kind::Goroutine)]
    pub kind: Kind,
    /// How long to trace (--kind block; default 10s).
    #[arg(short, long, value_parser = duration::parse)]
    pub duration: Option<Duration>,
    /// Stacks of a block profile: where goroutines parked (default), or who woke them
    /// (--kind block).
    #[arg(long, value_enum)]
    pub view: Option<View>,
    /// With --kind block: the probes' cost budget.
    #[command(flatten)]
    pub overhead: super::record::ExactOverheadArgs,
}

/// Takes the snapshot (or traces the window) and writes the profile; prints a one-line
/// summary on stderr.
pub fn run(args: &ProfileArgs) -> Result<Exit> {
    if args.kind == Kind::Block {
        return block::run(args);
    }
    if args.duration.is_some() || args.view.is_some() {
        eprintln!(
            "gtrace: error: -d/--duration and --view apply to --kind block only (a goroutine \
             profile is one snapshot)"
        );
        return Ok(Exit::Usage);
    }
    let target = Target::open(args.pid)?;
    let mut counter = StackCounter::new();
    let stats = target.dump(DumpOptions { system: true }, &mut |g| counter.add(&g))?;
    let total = counter.total();
    let stacks = counter.finish();
    let file = File::create(&args.output)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    let mut w = BufWriter::new(file);
    match args.format {
        Format::Pprof => {
            let exe = std::fs::read_link(format!("/proc/{}/exe", args.pid))
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as i64);
            pprof::write(&mut w, &pprof::goroutine_profile(&stacks, &exe, now))?;
        }
        Format::Folded => folded::write(&mut w, &stacks)?,
        Format::Svg => folded::write_svg(
            &mut w,
            &stacks,
            &format!("goroutines of pid {} ({total})", args.pid),
        )?,
    }
    w.flush()
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    eprintln!(
        "gtrace: {total} goroutines in {} distinct stacks written to {}{}",
        stacks.len(),
        args.output.display(),
        if stats.errors + stats.torn > 0 {
            format!(
                " ({} with decoding errors, {} torn)",
                stats.errors, stats.torn
            )
        } else {
            String::new()
        }
    );
    Ok(Exit::Ok)
}
