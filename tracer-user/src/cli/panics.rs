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
use tracer_common::{
    event::{self, Event, EventKind},
    panic::{PanicKind, decode},
};

use super::{
    attach::{TargetArgs, ktime_now, stop_flag},
    exit::Exit,
};
use crate::{
    gobin::GoBinary,
    goroutines::{DumpOptions, target::Target as DumpTarget},
    output,
    panics::{
        self,
        ancestry::{Ancestry, Creator},
        model::{FinishedPanic, PanicModel},
        report::{Location, Reporter},
    },
    probes::lifecycle,
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
    /// Also follow goroutine creations and exits while tracing (one probe hit per `go`
    /// statement and one per goroutine exit), so the ancestry of a panicking goroutine
    /// reaches `main` through creators that exited.
    #[arg(long)]
    pub ancestry: bool,
    /// Stop after this long (default: until the process exits or Ctrl-C).
    #[arg(short, long, value_parser = super::duration::parse)]
    pub duration: Option<Duration>,
}

/// Feeds every panic record in the ring buffer to the model; returns the undecodable count.
fn drain(
    ring: &mut aya::maps::RingBuf<aya::maps::MapData>,
    model: &mut PanicModel,
    ancestry: &mut Ancestry,
    finished: &mut VecDeque<FinishedPanic>,
) -> u64 {
    let mut errors = 0;
    while let Some(item) = ring.next() {
        let kind = item
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_le_bytes);
        if kind == EventKind::Create as u32 {
            match event::decode(&item) {
                Ok(Event::Create(c)) => ancestry.insert(
                    c.goid,
                    Creator::Pc {
                        parent: c.parent_goid,
                        gopc: c.gopc,
                    },
                ),
                _ => errors += 1,
            }
            continue;
        }
        if kind == EventKind::Exit as u32 {
            match event::decode(&item) {
                Ok(Event::Exit(x)) => ancestry.exited(x.goid),
                _ => errors += 1,
            }
            continue;
        }
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

/// The creators of the goroutines alive at attach time, read from process memory (the
/// reader of `gtrace dump`). Best effort: a failure only shortens ancestries.
fn baseline(pid: u32, ancestry: &mut Ancestry) {
    let Ok(pid_i) = i32::try_from(pid) else {
        return;
    };
    let target = match DumpTarget::open(pid_i) {
        Ok(t) => t,
        Err(e) => {
            log::warn!("no goroutine baseline for ancestry: {e}");
            return;
        }
    };
    let r = target.dump(DumpOptions { system: true }, &mut |g| {
        if let Some(c) = &g.created_by {
            ancestry.insert(
                g.goid,
                Creator::Resolved {
                    parent: g.parent_goid,
                    site: Location {
                        function: c.function.to_string(),
                        file: c.file.to_string(),
                        line: c.line,
                    },
                },
            );
        }
    });
    if let Err(e) = r {
        log::warn!("no goroutine baseline for ancestry: {e}");
    }
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
    let creations = if args.ancestry {
        Some(lifecycle::plan(&binary).context("planning the goroutine-creation probe")?)
    } else {
        None
    };
    let mut set = panics::attach(pid, &process.exe, &plan, creations.as_ref())
        .with_context(|| format!("attaching the panic probes to process {pid}"))?;
    let mut ring = set
        .take_events()
        .context("the eBPF object has no event ring buffer (rebuild gtrace)")?;
    let mut ancestry = Ancestry::new();
    if attached.child.is_none() {
        baseline(pid, &mut ancestry);
    }
    eprintln!(
        "gtrace: watching process {pid} for panics ({} probes{})",
        plan.sites.len(),
        if args.ancestry {
            ", following goroutine creations"
        } else {
            ""
        }
    );
    attached.resume();
    let start = Instant::now();
    let mut model = PanicModel::new();
    let mut reporter = Reporter::new(&binary, &plan.layout, plan.gopanic_site());
    // The load bias from the maps (the process has exec'd, also when started by gtrace);
    // otherwise it is learnt from the first gopanic event.
    if let Some(s) = plan.sites.first()
        && let Ok(Some(addr)) = process.address_of_file_offset(s.offset)
    {
        reporter.set_bias(addr.wrapping_sub(s.vaddr));
    }
    let mut finished = VecDeque::new();
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut decode_errors = 0u64;
    let mut reports = 0u64;
    let mut print = |finished: &mut VecDeque<_>,
                     ancestry: &mut Ancestry,
                     out: &mut BufWriter<_>|
     -> Result<()> {
        while let Some(f) = finished.pop_front() {
            let r = reporter.report(&f, ancestry);
            if args.json {
                output::panics::write_json(out, &r)?;
            } else {
                output::panics::write_text(out, &r)?;
            }
            reports += 1;
        }
        out.flush()?;
        Ok(())
    };
    loop {
        decode_errors += drain(&mut ring, &mut model, &mut ancestry, &mut finished);
        print(&mut finished, &mut ancestry, &mut out)?;
        // Exits read before the previous round take effect now: every panic they could
        // belong to has been reported.
        ancestry.settle();
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
    decode_errors += drain(&mut ring, &mut model, &mut ancestry, &mut finished);
    model.finish(ktime_now(), &mut finished);
    print(&mut finished, &mut ancestry, &mut out)?;
    let counts = set.counts().ok();
    drop(ring);
    drop(set);
    attached.release();
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
    if ancestry.dropped() > 0 {
        eprintln!(
            "gtrace: the creators of {} goroutines were dropped to bound memory (over {} goroutines kept); their ancestries may stop early",
            ancestry.dropped(),
            panics::ancestry::LIMIT
        );
    }
    log::info!("{reports} panics reported");
    Ok(Exit::Ok)
}
