//! `gtrace leaks`: goroutine leaks of a live process, from periodic `dump` snapshots.
//!
//! Each snapshot is the same memory read as `gtrace dump` (no ptrace stop, no eBPF), so the
//! target pays nothing measurable; the analysis lives in [`crate::analysis::leaks`].

use std::{
    io::{IsTerminal as _, Write},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use super::{duration, exit::Exit};
use crate::{
    analysis::leaks::{
        Sample, Tracker,
        rules::{self, Config},
    },
    goroutines::{DumpOptions, target::Target},
    output::leaks::{Report, write_json, write_text},
};

const EXAMPLES: &str = "\
Examples:
  gtrace leaks -p 1234                  10 s of snapshots, one per second
  gtrace leaks -p 1234 -d 2m            a longer window finds slower leaks
  gtrace leaks -p 1234 --json | jq .    machine-readable (docs/json/leaks.schema.json)
  gtrace leaks -p 1234 --fail-on 100    exit 6 if a leaking group reaches 100 goroutines

A group is a leak when its count grows and none of its goroutines wakes up or exits during
the window, or when it is parked where nothing can wake it (nil channel, `select {}`).
docs/leaks.md explains every rule.";

/// Flags of `gtrace leaks`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct LeaksArgs {
    /// Process id of the running Go program.
    #[arg(short, long)]
    pub pid: i32,
    /// How long to watch (30, 500ms, 10s, 2m).
    #[arg(short, long, default_value = "10s", value_parser = duration::parse)]
    pub duration: Duration,
    /// Time between snapshots.
    #[arg(long, default_value = "1s", value_parser = duration::parse)]
    pub interval: Duration,
    /// One JSON object instead of text (docs/json/leaks.schema.json).
    #[arg(long)]
    pub json: bool,
    /// Also show runtime goroutines and runtime-internal waits (GC workers, finalizers, …).
    #[arg(long)]
    pub all: bool,
    /// Exit with code 6 when a leaking group has at least N goroutines.
    #[arg(long, value_name = "N")]
    pub fail_on: Option<usize>,
}

/// Samples the target, writes the report to `out`, and says whether `--fail-on` tripped.
pub fn run(args: &LeaksArgs, out: &mut dyn Write) -> Result<Exit> {
    if args.interval > args.duration {
        eprintln!(
            "gtrace: error: --interval ({:?}) is longer than the window -d ({:?}): no growth \
             can be measured",
            args.interval, args.duration
        );
        return Ok(Exit::Usage);
    }
    let target = Target::open(args.pid)?;
    let steps = (args.duration.as_secs_f64() / args.interval.as_secs_f64()).floor() as u32;
    let total = steps + 1;
    let tty = std::io::stderr().is_terminal();
    if !tty {
        eprintln!(
            "gtrace: sampling pid {} for {:.1} s, {total} snapshots…",
            args.pid,
            args.duration.as_secs_f64()
        );
    }
    let mut tracker = Tracker::new();
    let mut gone = false;
    let start = Instant::now();
    for i in 0..total {
        let due = start + args.interval * i;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let t = start.elapsed().as_secs_f64();
        let mut samples = Vec::new();
        let read = target.dump(DumpOptions { system: true }, &mut |g| {
            samples.push(Sample::from_goroutine(&g));
        });
        if let Err(e) = read {
            if !process_alive(args.pid) && tracker.snapshots() > 0 {
                // Report what was seen; the exit code still says the process is gone.
                eprintln!(
                    "gtrace: pid {} exited during snapshot {} of {total}; reporting the {} taken",
                    args.pid,
                    i + 1,
                    tracker.snapshots()
                );
                gone = true;
                break;
            }
            return Err(e).with_context(|| format!("snapshot {} of {total}", i + 1));
        }
        let n = samples.len();
        tracker.snapshot(t, samples);
        if tty {
            eprint!(
                "\rgtrace: sampling pid {}: snapshot {}/{total}, {n} goroutines ",
                args.pid,
                i + 1
            );
        }
    }
    if tty {
        eprint!("\r\x1b[K");
    }
    let cfg = Config::default();
    let all = tracker.finish();
    let hidden = if args.all {
        0
    } else {
        all.iter().filter(|g| g.is_runtime()).count()
    };
    let mut groups: Vec<_> = all
        .into_iter()
        .filter(|g| args.all || !g.is_runtime())
        .map(|g| {
            let v = rules::evaluate(&g, &cfg);
            (g, v)
        })
        .collect();
    groups.sort_by_key(|(g, v)| (!v.leak, !v.suspect, std::cmp::Reverse(g.count)));
    let version = target.version_string();
    let report = Report {
        pid: args.pid,
        go_version: &version,
        snapshots: tracker.snapshots(),
        window_secs: groups.first().map_or(0.0, |(g, _)| g.window_secs),
        interval_secs: args.interval.as_secs_f64(),
        goroutines: groups.iter().map(|(g, _)| g.count).sum(),
        hidden_groups: hidden,
        groups: &groups,
    };
    if args.json {
        write_json(&mut *out, &report)?;
    } else {
        write_text(&mut *out, &report)?;
    }
    out.flush()?;
    let tripped = args
        .fail_on
        .is_some_and(|n| groups.iter().any(|(g, v)| v.leak && g.count >= n));
    Ok(if gone {
        Exit::ProcessGone
    } else if tripped {
        Exit::LeaksFound
    } else {
        Exit::Ok
    })
}

/// False once `pid` has exited (gone, or a zombie: its memory is no longer readable).
fn process_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the parenthesised command name, which may contain spaces.
        stat.rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .is_some_and(|state| !matches!(state, 'Z' | 'X'))
    })
}
