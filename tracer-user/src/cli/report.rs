//! `gtrace report`: analyse a capture offline (no binary, no process, no root needed), with
//! the same state machine as the live path.

use std::{
    fs::File,
    io::{BufReader, BufWriter, Write as _},
    path::PathBuf,
};

use anyhow::{Context as _, Result, bail};
use tracer_common::event::decode;

use super::exit::Exit;
use crate::{
    capture::{self, Capture},
    model::Model,
    output::{
        latency as latency_out,
        lifecycle::{self, Context, Losses, TargetInfo},
        perfetto,
    },
};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable text.
    Text,
    /// One JSON document.
    Json,
    /// Chrome trace-event JSON for ui.perfetto.dev (one track per goroutine).
    Perfetto,
}

/// Flags of `gtrace report`.
#[derive(Debug, clap::Args)]
#[command(after_help = "EXAMPLES:
    gtrace report app.gtc
    gtrace report app.gtc --goid 42
    gtrace report app.gtc --format perfetto > app.json   # open in ui.perfetto.dev")]
pub struct Args {
    /// A capture written by `gtrace record`.
    pub file: PathBuf,
    /// Same as `--format json`.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Show one goroutine's life in detail.
    #[arg(long)]
    pub goid: Option<u64>,
}

/// Losses recorded in a capture.
pub fn losses(cap: &Capture, undecodable: u64) -> Losses {
    match &cap.footer {
        Some(f) => Losses {
            dropped: f.probes.iter().map(|p| p.drops).sum(),
            decode_errors: f.decode_errors + undecodable,
            probe_errors: f.probes.iter().map(|p| p.errors).sum(),
            complete: true,
            probes: f.probes.clone(),
        },
        None => Losses {
            decode_errors: undecodable,
            ..Losses::default()
        },
    }
}

/// Runs `gtrace report`.
pub fn run(args: &Args) -> Result<Exit> {
    let file =
        File::open(&args.file).with_context(|| format!("opening {}", args.file.display()))?;
    let cap = capture::read(BufReader::new(file))
        .with_context(|| format!("reading {}", args.file.display()))?;
    let format = if args.json { Format::Json } else { args.format };
    let ctx = Context {
        symbols: &cap.symbols,
        wait_reasons: &cap.header.wait_reasons,
        start_ktime: cap.header.started_ktime_ns,
        baseline: &cap.header.baseline,
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut model = Model::new();
    model.baseline(cap.header.baseline_goids.iter().copied());
    let latency = cap.footer.as_ref().is_some_and(|f| f.latency_probes);
    if let Some(f) = cap.footer.as_ref().filter(|f| f.attached_ktime_ns > 0) {
        model.start_window(f.attached_ktime_ns);
    }
    model.baseline_states(super::latency::baseline_states(
        &cap.header.baseline,
        &cap.header.wait_reasons,
    ));
    // Every gap up front: the model then never measures across one, whatever the order of
    // the records.
    for (start, end) in cap.gap_intervals() {
        model.unobserved(start, end);
    }
    let mut undecodable = 0;
    let mut trace = (format == Format::Perfetto).then(|| {
        let mut b = perfetto::Builder::new(cap.header.pid);
        b.unobserved(cap.gap_intervals());
        b
    });
    for raw in &cap.events {
        match decode(raw) {
            Ok(e) => {
                model.apply(&e);
                if let Some(t) = &mut trace {
                    t.push(&e, &ctx);
                }
            }
            Err(_) => undecodable += 1,
        }
    }
    let losses = losses(&cap, undecodable);
    let last = model.span.map_or(0, |s| s.1);
    let end = cap
        .footer
        .as_ref()
        .map_or(0, |f| f.ended_ktime_ns)
        .max(last);
    model.finish(end);
    let latency_report = |goid: Option<u64>| {
        latency.then(|| {
            let meta = latency_out::Meta {
                pid: cap.header.pid,
                go_version: cap.header.go_version.clone(),
                sampling: super::latency::sampling_of(&model),
                degraded: cap
                    .footer
                    .as_ref()
                    .map(|f| f.degraded.clone())
                    .unwrap_or_default(),
                losses: losses.clone(),
            };
            let filter = latency_out::Filter { goid, func: None };
            latency_out::report(&model, &ctx, &filter, meta)
        })
    };
    if let Some(t) = trace {
        t.finish(&mut out, &ctx)?;
        out.flush()?;
        lifecycle::write_losses(&mut std::io::stderr(), &losses)?;
        return Ok(Exit::Ok);
    }
    if let Some(goid) = args.goid {
        let Some(g) = lifecycle::goroutine(&model, &ctx, goid) else {
            bail!(
                "goroutine {goid} does not appear in {}",
                args.file.display()
            );
        };
        let mut sampling = lifecycle::sampling(&model);
        sampling.from_capture(&cap);
        let times = latency_report(Some(goid)).and_then(|r| r.goroutines.into_iter().next());
        if format == Format::Json {
            serde_json::to_writer_pretty(
                &mut out,
                &serde_json::json!({
                    "goroutine": g, "latency": times, "losses": losses, "sampling": sampling,
                }),
            )?;
            writeln!(out)?;
        } else {
            lifecycle::write_goroutine(&mut out, &g)?;
            if let Some(t) = &times {
                latency_out::write_goroutine(&mut out, t)?;
            }
            lifecycle::write_sampling(&mut out, &sampling)?;
            lifecycle::write_losses(&mut out, &losses)?;
        }
        out.flush()?;
        return Ok(Exit::Ok);
    }
    let h = &cap.header;
    let info = TargetInfo {
        pid: h.pid,
        exe: h.exe.clone(),
        go_version: h.go_version.clone(),
        stop_reason: cap
            .footer
            .as_ref()
            .map_or_else(|| "(cut short)".into(), |f| f.stop_reason.clone()),
        detach_problem: cap
            .footer
            .as_ref()
            .map(|f| f.detach_problem.clone())
            .unwrap_or_default(),
    };
    let mut s = lifecycle::summary(&model, &ctx, info, losses.clone());
    s.sampling.from_capture(&cap);
    if format == Format::Json {
        let mut v = serde_json::to_value(&s)?;
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "panics".into(),
                crate::output::panics::capture_panics_json(&cap.panics).into(),
            );
            if let Some(r) = latency_report(None) {
                o.insert("latency".into(), serde_json::to_value(r)?);
            }
        }
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
    } else {
        lifecycle::write_summary(&mut out, &s)?;
        crate::output::panics::write_capture_panics(&mut out, &cap.panics)?;
        if let Some(r) = latency_report(None) {
            writeln!(out, "\nWHERE THE TIME WENT (gtrace latency)")?;
            latency_out::write_text(&mut out, &r)?;
        }
    }
    out.flush()?;
    Ok(Exit::Ok)
}
