//! `gtrace dump`: every goroutine of a live Go process, read from its memory without stopping
//! it (no ptrace stop, no eBPF).

use std::io::{self, Write};

use crate::{
    goroutines::{
        DumpOptions, DumpStats,
        group::Grouper,
        target::{DumpError, Target},
    },
    output::{dump_json, traceback},
};

const EXAMPLES: &str = "\
Examples:
  gtrace dump -p 1234                 goroutines as Go's own SIGQUIT dump shows them
  gtrace dump -p 1234 --group         identical stacks folded, largest groups first
  gtrace dump -p 1234 --json | jq .   machine-readable (docs/json/dump.schema.json)
  gtrace dump -p 1234 --system        include runtime goroutines (GOTRACEBACK=system)";

/// Flags of `gtrace dump`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct DumpArgs {
    /// Process id of the running Go program.
    #[arg(short, long)]
    pub pid: i32,
    /// One JSON object instead of Go's traceback text.
    #[arg(long)]
    pub json: bool,
    /// Fold goroutines with identical state and stack into one entry with a count.
    #[arg(long)]
    pub group: bool,
    /// GOTRACEBACK=system view, as Go's own SIGQUIT dump: runtime goroutines and runtime
    /// frames included (default: GOTRACEBACK=all view, as panics and runtime.Stack print).
    #[arg(long, alias = "all")]
    pub system: bool,
}

/// Runs the dump and writes it to `out`; returns the totals (the caller reports errors and
/// torn reads on stderr).
pub fn run(args: &DumpArgs, out: &mut dyn Write) -> Result<DumpStats, DumpError> {
    let target = Target::open(args.pid)?;
    let opts = DumpOptions {
        system: args.system,
    };
    let minor = target.version().minor;
    let version = target.version_string();
    let io_err = |e: io::Error| DumpError::Output(e.into());
    if args.group {
        let mut grouper = Grouper::new();
        let stats = target.dump(opts, &mut |g| grouper.add(g))?;
        let groups = grouper.finish();
        if args.json {
            dump_json::write_groups(&mut *out, args.pid, &version, minor, &groups, &stats)
                .map_err(io_err)?;
        } else {
            for g in &groups {
                traceback::write_group(out, g, minor).map_err(io_err)?;
            }
        }
        return Ok(stats);
    }
    let mut failed: Option<io::Error> = None;
    let stats = if args.json {
        let mut w = dump_json::JsonDumpWriter::start(&mut *out, args.pid, &version, minor)
            .map_err(io_err)?;
        let stats = target.dump(opts, &mut |g| {
            if failed.is_none() {
                failed = w.goroutine(&g).err();
            }
        })?;
        if let Some(e) = failed.take() {
            return Err(io_err(e));
        }
        w.finish(&stats).map_err(io_err)?;
        stats
    } else {
        let stats = target.dump(opts, &mut |g| {
            if failed.is_none() {
                failed = traceback::write_goroutine(out, &g, minor).err();
            }
        })?;
        if let Some(e) = failed.take() {
            return Err(io_err(e));
        }
        stats
    };
    Ok(stats)
}

/// One line for stderr when something deserves attention (errors, torn reads), else `None`.
pub fn summary(stats: &DumpStats) -> Option<String> {
    (stats.errors > 0 || stats.torn > 0 || stats.unreadable > 0).then(|| {
        format!(
            "gtrace: {} goroutines shown; {} with decoding errors, {} torn (changed during every re-read), \
             {} unreadable g structs",
            stats.shown, stats.errors, stats.torn, stats.unreadable
        )
    })
}
