//! `gtrace profile --kind block`: attach the lifecycle probes for the window, feed the state
//! machine, and write where goroutines spent time parked (or who woke them) as a profile.
//! The numbers are [`crate::analysis::block`]'s; this file only runs the session and writes.

use std::{
    cell::Cell,
    fs::File,
    io::{BufWriter, Write as _},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result};

use super::{Format, ProfileArgs, View};
use crate::{
    analysis::block::{self, BlockProfile, BlockRecorder},
    cli::{
        attach::{ktime_now, stop_flag},
        exit::Exit,
    },
    gobin::waitreason::WaitReasons,
    goroutines::{symbols::CachedSymbols, target::BinarySymbols},
    output::{folded, pprof},
    probes::session::{self, Options, StopReason},
};

/// The window when `-d` is not given.
const DEFAULT_DURATION: Duration = Duration::from_secs(10);

/// Traces `args.pid` for `duration` and writes its block profile to `args.output`.
pub(super) fn run(args: &ProfileArgs) -> Result<Exit> {
    let duration = args.duration.unwrap_or(DEFAULT_DURATION);
    let view = args.view.unwrap_or_default();
    let pid = u32::try_from(args.pid).context("the PID must be positive")?;
    let target =
        session::Target::open(pid).with_context(|| format!("preparing to trace process {pid}"))?;
    let reasons: Vec<Arc<str>> =
        WaitReasons::for_go_binary(&target.binary, Some(&target.plan.version))
            .ok()
            .flatten()
            .map(|w| w.strings.iter().map(|s| Arc::from(s.as_ref())).collect())
            .unwrap_or_default();
    // Created before attaching, so a bad path fails before the target pays anything.
    let file = File::create(&args.output)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    let stop = stop_flag()?;
    let mut rec = BlockRecorder::new();
    let start = Cell::new((0u64, 0i64));
    let summary = session::run(
        &target,
        &Options {
            duration: Some(duration),
            stop,
            // Exact or not at all: parked-time totals would be wrong across sampling gaps,
            // which the block recorder does not handle.
            max_overhead: args.overhead.max_overhead.0,
            stop_over_budget: true,
            empty_probes: false,
            bench_parks: false,
        },
        || {
            let wall = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
            start.set((ktime_now(), wall));
            eprintln!(
                "gtrace: attached to pid {pid}; tracing for {:.1} s…",
                duration.as_secs_f64()
            );
        },
        |e| rec.apply(e),
        |_| {},
    )?;
    let (start_ktime, start_wall) = start.get();
    // The traced window ends when the session stopped, not after the backlog was drained
    // (seconds when the reader fell behind); `finish` still counts up to the last event.
    let window_ns = summary.stopped_ktime_ns.saturating_sub(start_ktime);
    let profile = rec.finish(start_ktime.saturating_add(window_ns));
    let syms = CachedSymbols::new(BinarySymbols::new(
        &target.binary,
        target.bias,
        target.plan.version.minor,
    ));
    let (samples, skip, pprof_view): (_, fn(&str) -> bool, _) = match view {
        View::Parked => (
            &profile.parked,
            block::is_park_plumbing,
            pprof::BlockView::Parked,
        ),
        View::Wakers => (
            &profile.wakers,
            block::is_wake_plumbing,
            pprof::BlockView::Wakers,
        ),
    };
    let stacks = block::symbolize(samples, &rec.model, &syms, skip, |r| {
        reasons
            .get(r as usize)
            .filter(|s| !s.is_empty())
            .cloned()
            .unwrap_or_else(|| format!("waitReason({r})").into())
    });
    let mut w = BufWriter::new(file);
    match args.format {
        Format::Pprof => {
            let exe = target.process.exe_display.display().to_string();
            let p = pprof::block_profile(
                &stacks,
                pprof_view,
                &exe,
                start_wall,
                i64::try_from(window_ns).unwrap_or(i64::MAX),
            );
            pprof::write(&mut w, &p)?;
        }
        Format::Folded => folded::write(&mut w, &folded::block_stacks(&stacks))?,
        Format::Svg => folded::write_svg_counting(
            &mut w,
            &folded::block_stacks(&stacks),
            &format!(
                "time parked in pid {pid} over {:.1} s{}",
                window_ns as f64 / 1e9,
                if view == View::Wakers {
                    ", by waker"
                } else {
                    ""
                }
            ),
            "ns",
        )?,
    }
    w.flush()
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    let (parks, ns) = BlockProfile::totals(samples);
    eprintln!(
        "gtrace: block profile of pid {pid} over {:.1} s ({} view): {parks} parks, {ns} ns \
         parked, {} stacks written to {}",
        window_ns as f64 / 1e9,
        if view == View::Wakers {
            "wakers"
        } else {
            "parked"
        },
        stacks.len(),
        args.output.display()
    );
    if view == View::Parked && profile.open > 0 {
        eprintln!(
            "gtrace: {} of those parks were still open at the end and count up to it",
            profile.open
        );
    }
    let before = rec.model.preexisting_wakes;
    if before > 0 {
        eprintln!(
            "gtrace: {before} wakes of goroutines that parked before the probes were attached \
             are not in the profile"
        );
    }
    eprintln!(
        "gtrace: lost events: {} dropped (ring buffer full), {} undecodable; {} probe read \
         failures",
        summary.counts.total_drops(),
        summary.decode_errors,
        summary.counts.total_errors()
    );
    if let Some(p) = &summary.detach_problem {
        eprintln!("warning: {p}");
    }
    if summary.reason == StopReason::OverBudget {
        eprintln!(
            "{}",
            crate::cli::record::over_budget_line(&summary, "the profile")
        );
    }
    Ok(if summary.reason == StopReason::TargetExited {
        eprintln!("gtrace: pid {pid} exited during the window; the profile covers what was seen");
        Exit::ProcessGone
    } else {
        Exit::Ok
    })
}
