//! `gtrace symbolize`: program counters → frames (inlined calls expanded, innermost first),
//! like `go tool addr2line` but with inlining and for stripped binaries.

use std::{
    fmt::Write as _,
    io::{Read as _, Write as _},
    path::PathBuf,
};

use anyhow::Context as _;

use crate::gobin::inspect::write_frames;

/// Arguments of `gtrace symbolize`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "EXAMPLES:\n  gtrace symbolize ./server 0x4a1b2c 0x4a1b40\n  echo 0x4a1b2c | gtrace symbolize ./server\n  gtrace symbolize --pid 1234 --return-address 0x55d0c2a1b2c"
)]
pub struct SymbolizeArgs {
    /// The Go binary.
    #[arg(long, short, conflicts_with = "pid")]
    pub binary: Option<PathBuf>,
    /// The running process whose executable to use; addresses are then runtime addresses
    /// (a PIE's load bias is read from /proc/PID/maps).
    #[arg(long, short)]
    pub pid: Option<u32>,
    /// Treat addresses as return addresses (symbolize address-1, as Go tracebacks do).
    #[arg(long)]
    pub return_address: bool,
    /// Load bias to subtract from the addresses (hex), for runtime addresses of a PIE.
    #[arg(long, value_parser = parse_hex)]
    pub bias: Option<u64>,
    /// Addresses (hex); read from stdin, one per line, when none are given.
    pub pcs: Vec<String>,
}

fn parse_hex(s: &str) -> Result<u64, String> {
    let t = s.trim();
    u64::from_str_radix(t.strip_prefix("0x").unwrap_or(t), 16)
        .map_err(|e| format!("`{s}` is not a hex address: {e}"))
}

/// Runs `gtrace symbolize`. All addresses are read first and symbolized in one batch
/// ([`crate::gobin::GoBinary::symbolize_each`], in address order), then printed in input order.
pub fn run(args: &SymbolizeArgs) -> anyhow::Result<()> {
    let bin = super::inspect::open(args.binary.as_ref(), args.pid)?;
    let bias = match (args.bias, args.pid) {
        (Some(b), _) => b,
        (None, Some(pid)) if bin.image().is_pie() => load_bias(pid, &bin)?,
        _ => 0,
    };
    let mut input = String::new();
    if args.pcs.is_empty() {
        std::io::stdin()
            .read_to_string(&mut input)
            .context("reading addresses from stdin")?;
    } else {
        input = args.pcs.join("\n");
    }
    let pcs = input
        .lines()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_hex)
        .collect::<Result<Vec<u64>, _>>()
        .map_err(anyhow::Error::msg)?;
    let lookups: Vec<u64> = pcs
        .iter()
        .map(|pc| {
            pc.wrapping_sub(bias)
                .wrapping_sub(u64::from(args.return_address))
        })
        .collect();
    // One text buffer in address order, then its pieces in input order.
    let mut text = String::with_capacity(pcs.len() * 160);
    let mut spans = vec![(0, 0); pcs.len()];
    bin.symbolize_each(&lookups, |i, frames| {
        let start = text.len();
        match frames {
            Ok(frames) => write_frames(&mut text, pcs[i], frames),
            Err(e) => {
                let _ = writeln!(text, "{:#x}\t?\t({e})", pcs[i]);
            }
        }
        spans[i] = (start, text.len());
    });
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    for &(start, end) in &spans {
        out.write_all(&text.as_bytes()[start..end])?;
    }
    out.flush()?;
    Ok(())
}

/// Runtime minus link-time address of a running PIE: where its file offset 0 is mapped.
fn load_bias(pid: u32, bin: &crate::gobin::GoBinary) -> anyhow::Result<u64> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .with_context(|| format!("cannot read /proc/{pid}/maps"))?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))?;
    let start = maps
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (range, off, path) = (f.first()?, f.get(2)?, f.get(5..)?.join(" "));
            let path = path.trim_end_matches(" (deleted)");
            (std::path::Path::new(path) == exe && u64::from_str_radix(off, 16).ok()? == 0)
                .then(|| u64::from_str_radix(range.split('-').next()?, 16).ok())?
        })
        .context("the executable's first mapping is not in /proc/PID/maps")?;
    let seg = bin
        .image()
        .segments()
        .iter()
        .min_by_key(|s| s.offset)
        .context("no loadable segment")?;
    Ok(start.wrapping_sub(seg.vaddr - seg.offset))
}
