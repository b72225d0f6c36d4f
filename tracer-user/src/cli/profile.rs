//! `gtrace profile`: a goroutine profile of a live process from one snapshot, as pprof
//! (what Go's `/debug/pprof/goroutine` serves), folded stacks, or an SVG flame graph.

use std::{
    fs::File,
    io::{BufWriter, Write as _},
    path::PathBuf,
};

use anyhow::{Context as _, Result, bail};

use crate::{
    analysis::stacks::StackCounter,
    goroutines::{DumpOptions, target::Target},
    output::{folded, pprof},
};

const EXAMPLES: &str = "\
Examples:
  gtrace profile -p 1234 -o goroutines.pb.gz     then: go tool pprof -top goroutines.pb.gz
  gtrace profile -p 1234 -o g.folded --format folded
  gtrace profile -p 1234 -o g.svg --format svg   flame graph, width = goroutines";

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
    /// Time spent blocked, per stack: needs the lifecycle event stream (`gtrace record`).
    Block,
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
}

/// Takes the snapshot and writes the profile; prints a one-line summary on stderr.
pub fn run(args: &ProfileArgs) -> Result<()> {
    if args.kind == Kind::Block {
        bail!(
            "--kind block is not yet available: it needs the goroutine lifecycle event stream \
             (`gtrace record`), which this build does not have; use --kind goroutine"
        );
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
    Ok(())
}
