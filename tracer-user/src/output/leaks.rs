//! `gtrace leaks` output: a text report for people and JSON for scripts
//! (docs/json/leaks.schema.json).

use std::io::{self, Write};

use serde::Serialize;

use crate::analysis::leaks::{
    GroupReport, Site,
    rules::{Verdict, human_secs},
};

/// Examples shown per group.
pub const EXAMPLES: usize = 10;

/// The whole report: what was sampled and the groups with their verdicts.
#[derive(Debug)]
pub struct Report<'a> {
    /// Target pid.
    pub pid: i32,
    /// Its Go version (`go1.27.3`).
    pub go_version: &'a str,
    /// Snapshots taken.
    pub snapshots: usize,
    /// Seconds between first and last snapshot.
    pub window_secs: f64,
    /// Requested seconds between snapshots.
    pub interval_secs: f64,
    /// Goroutines in the last snapshot (shown groups only).
    pub goroutines: usize,
    /// Groups hidden (runtime) because `--all` was not given.
    pub hidden_groups: usize,
    /// The lifecycle tracing of the window (`--trace`).
    pub trace: Option<&'a TraceSummary>,
    /// The shown groups with their verdicts, in display order.
    pub groups: &'a [(GroupReport, Verdict)],
}

/// What tracing the window cost and lost (`gtrace leaks --trace`).
#[derive(Debug, Clone, Serialize)]
pub struct TraceSummary {
    /// Seconds the probes were attached.
    pub seconds: f64,
    /// Events received.
    pub events: u64,
    /// Events lost because the ring buffer was full.
    pub dropped: u64,
    /// Records that could not be decoded.
    pub decode_errors: u64,
    /// Probe firings whose reads of target memory failed (no event).
    pub probe_errors: u64,
    /// Events about goroutines beyond the tracker's bound.
    pub untracked: u64,
    /// Set when the probed instructions were not verified restored after detaching.
    pub detach_problem: Option<String>,
    /// Tracing ended before the window did: every event would have cost the target more
    /// than `--max-overhead` (the snapshots stop with it).
    pub ended_over_budget: bool,
}

impl TraceSummary {
    /// Every event lost, in any way: a wake may have been missed when non-zero.
    pub fn lost(&self) -> u64 {
        self.dropped + self.decode_errors + self.probe_errors + self.untracked
    }
}

#[derive(Serialize)]
struct JsonTrace {
    watched: usize,
    woke: usize,
    exited: usize,
    created_in_window: usize,
    exact_ages: usize,
}

#[derive(Serialize)]
struct JsonSite<'a> {
    function: &'a str,
    file: &'a str,
    line: u32,
}

fn site(s: Option<&Site>) -> Option<JsonSite<'_>> {
    s.map(|s| JsonSite {
        function: &s.function,
        file: &s.file,
        line: s.line,
    })
}

#[derive(Serialize)]
struct JsonAges {
    min: f64,
    median: f64,
    max: f64,
}

#[derive(Serialize)]
#[allow(clippy::struct_excessive_bools)] // mirrors the documented JSON fields
struct JsonGroup<'a> {
    count: usize,
    wait_reason: &'a str,
    parked: bool,
    category: &'static str,
    created_by: Option<JsonSite<'a>>,
    block_frame: Option<JsonSite<'a>>,
    age_seconds: Option<JsonAges>,
    ages_from_runtime: usize,
    first_count: usize,
    max_count: usize,
    growth_per_min: f64,
    woken: bool,
    departed: u64,
    orphans: Option<usize>,
    new_members: usize,
    leak: bool,
    suspect: bool,
    rules: &'a [&'static str],
    reasons: &'a [String],
    example_goids: &'a [u64],
    goids: &'a [u64],
    runtime: bool,
    trace: Option<JsonTrace>,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    pid: i32,
    go_version: &'a str,
    snapshots: usize,
    window_seconds: f64,
    interval_seconds: f64,
    goroutines: usize,
    leaking_groups: usize,
    leaking_goroutines: usize,
    hidden_groups: usize,
    trace: Option<&'a TraceSummary>,
    groups: Vec<JsonGroup<'a>>,
}

/// Writes the report as one JSON object and a newline.
pub fn write_json(mut w: impl Write, r: &Report<'_>) -> io::Result<()> {
    let groups = r
        .groups
        .iter()
        .map(|(g, v)| JsonGroup {
            count: g.count,
            wait_reason: &g.key.state,
            parked: g.key.parked,
            category: g.category.name(),
            created_by: site(g.key.created_by.as_ref()),
            block_frame: site(g.key.block.as_ref()),
            age_seconds: g.ages.map(|a| JsonAges {
                min: a.min,
                median: a.median,
                max: a.max,
            }),
            ages_from_runtime: g.runtime_ages,
            first_count: g.first_count,
            max_count: g.max_count,
            growth_per_min: g.growth_per_min,
            woken: g.woken(),
            departed: g.departed,
            orphans: g.orphans,
            new_members: g.new_members,
            leak: v.leak,
            suspect: v.suspect,
            rules: &v.rules,
            reasons: &v.reasons,
            example_goids: &g.goids[..g.goids.len().min(EXAMPLES)],
            goids: &g.goids,
            runtime: g.is_runtime(),
            trace: g.trace.map(|t| JsonTrace {
                watched: t.watched,
                woke: t.woke,
                exited: t.exited,
                created_in_window: t.created_in_window,
                exact_ages: t.exact_ages,
            }),
        })
        .collect();
    let leaking = r.groups.iter().filter(|(_, v)| v.leak);
    let doc = JsonReport {
        pid: r.pid,
        go_version: r.go_version,
        snapshots: r.snapshots,
        window_seconds: r.window_secs,
        interval_seconds: r.interval_secs,
        goroutines: r.goroutines,
        leaking_groups: leaking.clone().count(),
        leaking_goroutines: leaking.map(|(g, _)| g.count).sum(),
        hidden_groups: r.hidden_groups,
        trace: r.trace,
        groups,
    };
    serde_json::to_writer(&mut w, &doc)?;
    writeln!(w)
}

/// `yes`, `not seen` (snapshots only), or the traced counts: `yes (3 of 4 traced ran again)`.
fn woke_text(g: &GroupReport) -> String {
    let yes = if g.woken() { "yes" } else { "not seen" };
    match g.trace {
        Some(t) if g.key.parked => format!(
            "{} ({} of {} traced ran again{})",
            if g.woken() { "yes" } else { "never" },
            t.woke,
            t.watched,
            if t.exited > 0 {
                format!(", {} exited", t.exited)
            } else {
                String::new()
            }
        ),
        Some(t) if t.exited > 0 => format!("{yes} ({} of {} traced exited)", t.exited, t.watched),
        _ => yes.to_owned(),
    }
}

fn short(s: &Site) -> String {
    let file = s.file.rsplit('/').next().unwrap_or(&s.file);
    format!("{}  {file}:{}", s.function, s.line)
}

/// Writes the report as text: leaks first (the caller's order), one block per group.
pub fn write_text(mut w: impl Write, r: &Report<'_>) -> io::Result<()> {
    let leaks = r.groups.iter().filter(|(_, v)| v.leak).count();
    let suspects = r
        .groups
        .iter()
        .filter(|(_, v)| v.suspect && !v.leak)
        .count();
    writeln!(
        w,
        "pid {} ({}): {} snapshots over {:.1} s, {} goroutines in {} groups; {} leaking{}{}",
        r.pid,
        r.go_version,
        r.snapshots,
        r.window_secs,
        r.goroutines,
        r.groups.len(),
        if leaks == 0 {
            "none".to_owned()
        } else {
            format!("{leaks} group(s)")
        },
        if suspects > 0 {
            format!(", {suspects} suspect")
        } else {
            String::new()
        },
        if r.hidden_groups > 0 {
            format!(
                " ({} runtime group(s) hidden; --all shows them)",
                r.hidden_groups
            )
        } else {
            String::new()
        }
    )?;
    if let Some(t) = r.trace {
        let lost = t.lost();
        writeln!(
            w,
            "traced {:.1} s{}: {} events, {}",
            t.seconds,
            if t.ended_over_budget {
                " (ended early: over the overhead budget)"
            } else {
                ""
            },
            t.events,
            if lost == 0 {
                "none lost".to_owned()
            } else {
                format!(
                    "{lost} lost ({} ring buffer full, {} undecodable, {} failed reads, {} \
                     untracked): \"never woken\" may miss wakes",
                    t.dropped, t.decode_errors, t.probe_errors, t.untracked
                )
            }
        )?;
    }
    for (g, v) in r.groups {
        let tag = if v.leak {
            "LEAK"
        } else if v.suspect {
            "SUSPECT"
        } else {
            "ok"
        };
        let ages = g.ages.map_or_else(
            || "-".to_owned(),
            |a| {
                format!(
                    "{}/{}/{}",
                    human_secs(a.min),
                    human_secs(a.median),
                    human_secs(a.max)
                )
            },
        );
        writeln!(w)?;
        writeln!(
            w,
            "{tag:<7} {:>6} goroutines  [{}] ({})  growth {:+.1}/min  age min/median/max {ages}  woke {}{}",
            g.count,
            g.key.state,
            g.category.name(),
            g.growth_per_min,
            woke_text(g),
            g.orphans
                .map(|o| format!("  orphans {o}"))
                .unwrap_or_default(),
        )?;
        if let Some(b) = &g.key.block {
            writeln!(w, "        blocked at  {}", short(b))?;
        }
        if let Some(c) = &g.key.created_by {
            writeln!(w, "        created by  {}", short(c))?;
        }
        for (i, reason) in v.reasons.iter().enumerate() {
            let lead = if i == 0 { "why:" } else { "" };
            writeln!(w, "        {lead:<4} {reason}")?;
        }
        let ex: Vec<String> = g.goids.iter().take(EXAMPLES).map(u64::to_string).collect();
        let more = if g.goids.len() > EXAMPLES { " …" } else { "" };
        writeln!(w, "        goroutines  {}{more}", ex.join(" "))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::leaks::{
        Sample, Site, Tracker,
        rules::{Config, evaluate},
    };

    fn sample(goid: u64) -> Sample {
        let site = |f: &str, line| Site {
            function: f.into(),
            file: "/src/app/main.go".into(),
            line,
        };
        Sample {
            goid,
            parent_goid: Some(1),
            state: "chan receive".into(),
            parked: true,
            wait_ns: None,
            created_by: Some(site("main.handle", 17)),
            block: Some(site("main.await", 42)),
            system: false,
        }
    }

    fn report_of(tracker: &Tracker) -> Vec<(GroupReport, Verdict)> {
        tracker
            .finish()
            .into_iter()
            .map(|g| {
                let v = evaluate(&g, &Config::default());
                (g, v)
            })
            .collect()
    }

    #[test]
    fn text_and_json_say_the_same() {
        let mut t = Tracker::new();
        for i in 0..3u64 {
            t.snapshot(i as f64 * 30.0, (0..=i * 2).map(|g| sample(100 + g)));
        }
        let groups = report_of(&t);
        let r = Report {
            pid: 7,
            go_version: "go1.27.3",
            snapshots: 3,
            window_secs: 60.0,
            interval_secs: 30.0,
            goroutines: 5,
            hidden_groups: 2,
            trace: None,
            groups: &groups,
        };
        let mut text = Vec::new();
        write_text(&mut text, &r).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.starts_with("pid 7 (go1.27.3): 3 snapshots over 60.0 s, 5 goroutines in 1 groups; 1 group(s) leaking (2 runtime group(s) hidden; --all shows them)"), "{text}");
        assert!(
            text.contains(
                "LEAK         5 goroutines  [chan receive] (chan_receive)  growth +4.0/min"
            ),
            "{text}"
        );
        assert!(
            text.contains("why: count grew 1 → 5 in 60 s (+4.0/min), none woke"),
            "{text}"
        );
        assert!(
            text.contains("blocked at  main.await  main.go:42"),
            "{text}"
        );
        assert!(text.contains("goroutines  100 101 102 103 104\n"), "{text}");
        let mut json = Vec::new();
        write_json(&mut json, &r).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["leaking_groups"], 1);
        assert_eq!(v["leaking_goroutines"], 5);
        let g = &v["groups"][0];
        assert_eq!(g["count"], 5);
        assert_eq!(g["created_by"]["line"], 17);
        assert_eq!(g["block_frame"]["function"], "main.await");
        assert_eq!(g["category"], "chan_receive");
        assert_eq!(g["age_seconds"]["max"], 60.0);
        assert_eq!(g["rules"][0], "growing");
        assert_eq!(g["example_goids"].as_array().unwrap().len(), 5);
    }

    #[test]
    fn traced_windows_show_their_losses_and_wakes() {
        use crate::analysis::leaks::{TraceEvidence, TraceInput, trace::Lifecycle};
        let mut t = Tracker::new();
        for i in 0..3u64 {
            t.snapshot_read(
                i as f64,
                Some((i * 1_000, i * 1_000 + 10)),
                (0..=i * 2).map(|g| sample(100 + g)),
            );
        }
        let life = Lifecycle::new();
        let groups: Vec<_> = t
            .finish_traced(&TraceInput {
                life: &life,
                lost: 7,
                traced_secs: 2.0,
                reasons: &[],
            })
            .into_iter()
            .map(|g| {
                let v = evaluate(&g, &Config::default());
                (g, v)
            })
            .collect();
        assert_eq!(
            groups[0].0.trace,
            Some(TraceEvidence {
                watched: 5,
                woke: 0,
                exited: 0,
                created_in_window: 0,
                exact_ages: 0,
                events_lost: 7,
                traced_secs: 2.0,
            })
        );
        let summary = TraceSummary {
            seconds: 2.0,
            events: 1234,
            dropped: 5,
            decode_errors: 0,
            probe_errors: 2,
            untracked: 0,
            detach_problem: None,
            ended_over_budget: false,
        };
        let r = Report {
            pid: 7,
            go_version: "go1.27.3",
            snapshots: 3,
            window_secs: 2.0,
            interval_secs: 1.0,
            goroutines: 5,
            hidden_groups: 0,
            trace: Some(&summary),
            groups: &groups,
        };
        let mut text = Vec::new();
        write_text(&mut text, &r).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("traced 2.0 s: 1234 events, 7 lost (5 ring buffer full, 0 undecodable, 2 failed reads, 0 untracked)"),
            "{text}"
        );
        assert!(
            text.contains("woke never (0 of 5 traced ran again)"),
            "{text}"
        );
        assert!(
            text.contains("no wake seen among the 5 goroutine(s) seen here in 2 s of tracing, but 7 events were lost"),
            "{text}"
        );
        let mut json = Vec::new();
        write_json(&mut json, &r).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["trace"]["dropped"], 5);
        assert_eq!(v["groups"][0]["trace"]["watched"], 5);
        assert_eq!(v["groups"][0]["woken"], false);
    }
}
