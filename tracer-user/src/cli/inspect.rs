//! `gtrace inspect`: what gtrace knows about a Go binary (version, build info, symbol
//! sources, probe sites) without attaching to anything.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::gobin::{GoBinary, inspect::Report};

/// Arguments of `gtrace inspect`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "EXAMPLES:\n  gtrace inspect ./server\n  gtrace inspect --pid 1234 --json\n  gtrace inspect ./server --probe main.handle"
)]
pub struct InspectArgs {
    /// The Go binary.
    #[arg(required_unless_present = "pid", conflicts_with = "pid")]
    pub binary: Option<PathBuf>,
    /// Inspect the executable of this running process (through /proc/PID/exe).
    #[arg(long, short)]
    pub pid: Option<u32>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also show the probe site of this function (repeatable).
    #[arg(long = "probe", value_name = "FUNCTION")]
    pub probes: Vec<String>,
    /// Use this Go version's tables when the binary's own version is unknown or unsupported
    /// (e.g. `go1.23.4`); layouts are still checked for sanity.
    #[arg(long, value_name = "VERSION")]
    pub assume_go_version: Option<crate::gobin::GoVersion>,
}

/// Runs `gtrace inspect`.
pub fn run(args: &InspectArgs) -> anyhow::Result<()> {
    let bin = open(args.binary.as_ref(), args.pid)?;
    let report = Report::new(&bin, &args.probes, args.assume_go_version.as_ref());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

/// Opens a binary by path or PID with a message naming what was opened.
pub(crate) fn open(binary: Option<&PathBuf>, pid: Option<u32>) -> anyhow::Result<GoBinary> {
    match (binary, pid) {
        (_, Some(pid)) => GoBinary::open_pid(pid)
            .with_context(|| format!("cannot read the Go binary of process {pid}")),
        (Some(path), None) => GoBinary::open(path)
            .with_context(|| format!("cannot read Go binary {}", path.display())),
        (None, None) => anyhow::bail!("give a binary path or --pid"),
    }
}
