//! `gtrace panics`: every panic of a live process (or a command started under gtrace),
//! printed once its fate is known — recovered (and by which function), aborted by a nested
//! panic, or fatal (printed even though the process is gone: the events outlive it in the
//! ring buffer).

use std::{
    collections::VecDeque,
    io::{BufWriter, Write as _},
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use tracer_common::panic::{PanicKind, decode};

use super::{
    attach::{TargetArgs, ktime_now, stop_flag},
    exit::Exit,
};
use crate::{
    gobin::GoBinary,
    panics::{
        self,
        model::{FinishedPanic, PanicModel},
        render,
        report::Reporter,
    },
    target::Process,
};

/// How often the ring buffer is drained.
const DRAIN_INTERVAL: Duration = Duration::from_millis(20);

/// Flags of `gtrace panics`.
#[derive(Debug, clap::Args)]
#[command(after_help = "EXAMPLES:
    sudo gtrace panics -p 1234                every panic of process 1234 until Ctrl-C
    sudo gtrace panics -p 1234 --json -d 1m   one JSON object per panic (docs/json/panics.schema.json)
    sudo gtrace panics -- ./server --flag     start ./server under gtrace, nothing missed")]
pub struct Args {
    /// What to watch.
    #[command(flatten)]
    pub target: TargetArgs,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// Stop after this long (default: until the process exits or Ctrl-C).
    #[arg(short, long, value_parser = super::duration::parse)]
    pub duration: Option<Duration>,
}

/// Feeds every panic record in the ring buffer to the model; returns the undecodable count.
fn drain(
    ring: &mut aya::maps::RingBuf<aya::maps::MapData>,
    model: &mut PanicModel,
    finished: &mut VecDeque<FinishedPanic>,
) -> u64 {
    let mut errors = 0;
    while let Some(item) = ring.next() {
        let kind = item
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_le_bytes);
        if !PanicKind::is_panic(kind) {
            continue;
        }
        match decode(&item) {
            Ok(e) => model.apply(&e, finished),
            Err(_) => errors += 1,
        }
    }
    errors
}

/// Runs `gtrace panics`.
pub fn run(args: &Args) -> Result<Exit> {
    let stop = stop_flag()?;
    let mut attached = args.target.start()?;
    let pid = attached.pid;
    let process = Process::from_pid(pid).with_context(|| format!("inspecting process {pid}"))?;
    let binary = GoBinary::open(&process.exe)
        .with_context(|| format!("reading the executable of process {pid}"))?;
    let plan = panics::plan(&binary).context("planning the panic probes")?;
    let mut set = panics::attach(pid, &process.exe, &plan)
        .with_context(|| format!("attaching the panic probes to process {pid}"))?;
    let mut ring = set
        .take_events()
        .context("the eBPF object has no event ring buffer (rebuild gtrace)")?;
    attached.resume();
    let start = Instant::now();
    let mut model = PanicModel::new();
    let mut reporter = Reporter::new(&binary, &plan.layout, plan.gopanic_site());
    let mut finished = VecDeque::new();
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut decode_errors = 0u64;
    let mut reports = 0u64;
    let mut print = |finished: &mut VecDeque<_>, out: &mut BufWriter<_>| -> Result<()> {
        while let Some(f) = finished.pop_front() {
            let r = reporter.report(&f);
            if args.json {
                render::write_json(out, &r)?;
            } else {
                render::write_text(out, &r)?;
            }
            reports += 1;
        }
        out.flush()?;
        Ok(())
    };
    loop {
        decode_errors += drain(&mut ring, &mut model, &mut finished);
        print(&mut finished, &mut out)?;
        let exited = match attached.child.as_mut() {
            Some(c) => c.try_wait().ok().flatten().is_some(),
            None => !process.is_alive(),
        };
        if exited
            || stop.load(Ordering::Relaxed)
            || args.duration.is_some_and(|d| start.elapsed() >= d)
        {
            break;
        }
        std::thread::sleep(DRAIN_INTERVAL);
    }
    decode_errors += drain(&mut ring, &mut model, &mut finished);
    model.finish(ktime_now(), &mut finished);
    print(&mut finished, &mut out)?;
    let counts = set.counts().ok();
    drop(ring);
    drop(set);
    if let Some(mut c) = attached.child.take() {
        // Started by gtrace and still running (duration or Ctrl-C): leave it be, but reap it
        // if it is already gone.
        let _ = c.try_wait();
    }
    let lost = counts
        .as_ref()
        .map_or(0, crate::probes::Counts::total_drops)
        + decode_errors;
    if lost > 0 {
        eprintln!("gtrace: {lost} panic events lost (ring buffer full or undecodable)");
    }
    if model.unmatched > 0 {
        eprintln!(
            "gtrace: {} panic events matched no panic seen (attached mid-panic?)",
            model.unmatched
        );
    }
    log::info!("{reports} panics reported");
    Ok(Exit::Ok)
}
