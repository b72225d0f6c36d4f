//! The leak rules: small named checks over a finished [`GroupReport`], each with a
//! one-line summary (for docs and help), a check, and the reason it gives when it fires.
//!
//! Modelled on the warnings of tokio-console: adding a heuristic means adding one type here,
//! not touching the sampling loop or the outputs. A [`Severity::Leak`] finding makes the
//! group a leak (and counts for `--fail-on`); [`Severity::Suspect`] findings are shown but do
//! not.

use std::time::Duration;

use super::{Category, GroupReport, Site, TraceEvidence};
use crate::gobin::waitreason::WaitCategory;

/// How much a finding weighs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Worth a look; not a leak on its own.
    Suspect,
    /// A leak.
    Leak,
}

/// Thresholds of the rules.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Smallest rise (last − first snapshot) that counts as growth.
    pub min_growth: usize,
    /// Parked this long without anyone waking is suspect.
    pub long_parked: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            min_growth: 2,
            long_parked: Duration::from_mins(10),
        }
    }
}

/// One leak heuristic.
pub trait Rule {
    /// Stable name (`growing`, shown in `--json` findings).
    fn name(&self) -> &'static str;
    /// What a finding weighs.
    fn severity(&self) -> Severity;
    /// One line saying what the rule looks for.
    fn summary(&self) -> &'static str;
    /// Whether the rule fires for `g`.
    fn check(&self, g: &GroupReport, cfg: &Config) -> bool;
    /// The reason shown when it fires.
    fn format(&self, g: &GroupReport, cfg: &Config) -> String;
}

/// Count grew over the window and no member ever left.
#[derive(Debug, Clone, Copy)]
pub struct Growing;

/// Parked where nothing can ever wake it: a nil channel or `select {}`.
#[derive(Debug, Clone, Copy)]
pub struct BlockedForever;

/// Parked, never woke, and the goroutine that started it has exited.
#[derive(Debug, Clone, Copy)]
pub struct Orphaned;

/// Parked for a long time and nobody woke during the window.
#[derive(Debug, Clone, Copy)]
pub struct LongParked;

/// Every rule, in the order their reasons are shown.
pub const RULES: &[&dyn Rule] = &[&Growing, &BlockedForever, &Orphaned, &LongParked];

fn stuck(g: &GroupReport) -> bool {
    g.key.parked && !g.woken()
}

/// `12 s`, `14 min`, `3.2 h`.
pub fn human_secs(s: f64) -> String {
    if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 7200.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

impl Rule for Growing {
    fn name(&self) -> &'static str {
        "growing"
    }
    fn severity(&self) -> Severity {
        Severity::Leak
    }
    fn summary(&self) -> &'static str {
        "the group's count grew during the window by goroutines that did not exist at its \
         start, and no member woke up or exited"
    }
    fn check(&self, g: &GroupReport, cfg: &Config) -> bool {
        stuck(g)
            && g.snapshots >= 3
            && g.count >= g.first_count + cfg.min_growth
            && g.new_members >= cfg.min_growth
            && g.growth_per_min > 0.0
    }
    fn format(&self, g: &GroupReport, _: &Config) -> String {
        format!(
            "count grew {} → {} in {} ({:+.1}/min), none woke",
            g.first_count,
            g.count,
            human_secs(g.window_secs),
            g.growth_per_min
        )
    }
}

impl Rule for BlockedForever {
    fn name(&self) -> &'static str {
        "blocked-forever"
    }
    fn severity(&self) -> Severity {
        Severity::Leak
    }
    fn summary(&self) -> &'static str {
        "parked on a nil channel or in `select {}` (never woken by anything), in a goroutine \
         started by a `go` statement (the main goroutine's `select {}` is an idiom)"
    }
    fn check(&self, g: &GroupReport, _: &Config) -> bool {
        stuck(g)
            && g.key.created_by.is_some()
            && matches!(
                g.category,
                Category::Wait(WaitCategory::NilChan | WaitCategory::SelectNoCases)
            )
    }
    fn format(&self, g: &GroupReport, _: &Config) -> String {
        format!("{}: nothing can ever wake it", g.key.state)
    }
}

impl Rule for Orphaned {
    fn name(&self) -> &'static str {
        "orphaned"
    }
    fn severity(&self) -> Severity {
        Severity::Suspect
    }
    fn summary(&self) -> &'static str {
        "parked, none woke, and the goroutines that started them have exited (Go 1.21+ only)"
    }
    fn check(&self, g: &GroupReport, _: &Config) -> bool {
        stuck(g) && g.orphans.is_some_and(|o| o > 0)
    }
    fn format(&self, g: &GroupReport, _: &Config) -> String {
        format!(
            "{} of {} outlived the goroutine that started them",
            g.orphans.unwrap_or(0),
            g.count
        )
    }
}

impl Rule for LongParked {
    fn name(&self) -> &'static str {
        "long-parked"
    }
    fn severity(&self) -> Severity {
        Severity::Suspect
    }
    fn summary(&self) -> &'static str {
        "parked longer than the threshold (10 min) and none woke; network I/O, syscalls and \
         runtime waits are exempt (idle connections wait that long), and so is the main \
         goroutine (a server's main waits for its whole life)"
    }
    fn check(&self, g: &GroupReport, cfg: &Config) -> bool {
        stuck(g)
            && g.key.created_by.is_some()
            && !matches!(
                g.category,
                Category::Wait(WaitCategory::Io | WaitCategory::Runtime) | Category::Syscall
            )
            && g.ages
                .is_some_and(|a| a.max >= cfg.long_parked.as_secs_f64())
    }
    fn format(&self, g: &GroupReport, _: &Config) -> String {
        format!(
            "oldest parked {}",
            human_secs(g.ages.map_or(0.0, |a| a.max))
        )
    }
}

/// What the rules say about one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Some [`Severity::Leak`] rule fired.
    pub leak: bool,
    /// Some rule fired.
    pub suspect: bool,
    /// Names of the rules that fired.
    pub rules: Vec<&'static str>,
    /// Why: each firing rule's reason, then the age, blocking and creation sites.
    pub reasons: Vec<String>,
}

fn at(s: &Site) -> String {
    let file = s.file.rsplit('/').next().unwrap_or(&s.file);
    format!("{file}:{} ({})", s.line, s.function)
}

/// The "never woken" evidence of a traced window, qualified when events were lost.
pub fn never_woken(t: &TraceEvidence) -> String {
    let seen = format!(
        "the {} goroutine(s) seen here in {} of tracing",
        t.watched,
        human_secs(t.traced_secs)
    );
    if t.events_lost == 0 {
        format!("never woken: none of {seen} ran again")
    } else {
        format!(
            "no wake seen among {seen}, but {} events were lost: a wake may have been missed",
            t.events_lost
        )
    }
}

/// Runs every rule on `g`.
pub fn evaluate(g: &GroupReport, cfg: &Config) -> Verdict {
    let mut v = Verdict {
        leak: false,
        suspect: false,
        rules: Vec::new(),
        reasons: Vec::new(),
    };
    for r in RULES {
        if r.check(g, cfg) {
            v.suspect = true;
            v.leak |= r.severity() == Severity::Leak;
            v.rules.push(r.name());
            v.reasons.push(r.format(g, cfg));
        }
    }
    if v.suspect {
        if let Some(t) = &g.trace
            && g.key.parked
            && !g.woken()
        {
            v.reasons.push(never_woken(t));
        }
        if let Some(a) = g.ages
            && !v.rules.contains(&"long-parked")
        {
            v.reasons.push(format!("oldest {}", human_secs(a.max)));
        }
        if let Some(b) = &g.key.block {
            v.reasons
                .push(format!("blocked in {} at {}", g.key.state, at(b)));
        }
        if let Some(c) = &g.key.created_by {
            v.reasons.push(format!("created at {}", at(c)));
        }
    }
    v
}

#[cfg(test)]
#[allow(clippy::float_cmp)]
mod tests {
    use super::super::{Ages, GroupKey, tests::site};
    use super::*;

    fn group(state: &str, parked: bool) -> GroupReport {
        GroupReport {
            key: GroupKey {
                created_by: Some(site("main.handleRequest", 17)),
                block: Some(site("main.awaitReply", 42)),
                state: state.into(),
                parked,
            },
            category: Category::of(parked, state),
            system: false,
            count: 61,
            first_count: 37,
            max_count: 61,
            growth_per_min: 24.0,
            window_secs: 60.0,
            snapshots: 61,
            departed: 0,
            ages: Some(Ages {
                min: 0.5,
                median: 300.0,
                max: 840.0,
            }),
            runtime_ages: 61,
            orphans: Some(0),
            new_members: 24,
            goids: (100..161).collect(),
            trace: None,
        }
    }

    fn cfg() -> Config {
        Config::default()
    }

    #[test]
    fn growing_fires_on_a_growing_stuck_group() {
        let g = group("chan receive", true);
        assert!(Growing.check(&g, &cfg()));
        let v = evaluate(&g, &cfg());
        assert!(v.leak);
        assert_eq!(v.rules, ["growing", "long-parked"]);
        assert_eq!(
            v.reasons,
            [
                "count grew 37 → 61 in 60 s (+24.0/min), none woke",
                "oldest parked 14 min",
                "blocked in chan receive at main.go:42 (main.awaitReply)",
                "created at main.go:17 (main.handleRequest)",
            ]
        );
    }

    #[test]
    fn growing_ignores_pools_that_wake_and_flat_or_tiny_growth() {
        let mut g = group("chan receive", true);
        g.departed = 1;
        assert!(!Growing.check(&g, &cfg()));
        let mut g = group("chan receive", true);
        g.first_count = 60;
        assert!(!Growing.check(&g, &cfg()), "growth below min_growth");
        let mut g = group("chan receive", true);
        g.new_members = 1;
        assert!(
            !Growing.check(&g, &cfg()),
            "growth by goroutines that already existed (a pool seen running at first)"
        );
        let mut g = group("chan receive", true);
        g.snapshots = 2;
        assert!(!Growing.check(&g, &cfg()), "too few snapshots");
        let g = group("running", false);
        assert!(!Growing.check(&g, &cfg()), "not parked");
        let v = evaluate(&group("running", false), &cfg());
        assert!(!v.leak && !v.suspect && v.reasons.is_empty());
    }

    #[test]
    fn blocked_forever_needs_a_creator_and_the_right_wait() {
        let mut g = group("chan receive (nil chan)", true);
        g.first_count = g.count;
        g.ages = None;
        assert!(BlockedForever.check(&g, &cfg()));
        assert!(evaluate(&g, &cfg()).leak);
        let mut main = group("select (no cases)", true);
        main.key.created_by = None;
        assert!(!BlockedForever.check(&main, &cfg()));
        assert!(!BlockedForever.check(&group("select", true), &cfg()));
    }

    #[test]
    fn orphaned_and_long_parked_are_only_suspect() {
        let mut g = group("sync.Mutex.Lock", true);
        g.first_count = g.count;
        g.orphans = Some(3);
        let v = evaluate(&g, &cfg());
        assert!(!v.leak && v.suspect);
        assert_eq!(v.rules, ["orphaned", "long-parked"]);
        assert_eq!(
            v.reasons[0],
            "3 of 61 outlived the goroutine that started them"
        );
        let mut io = group("IO wait", true);
        io.first_count = io.count;
        assert!(!LongParked.check(&io, &cfg()));
        io.orphans = None;
        assert!(!Orphaned.check(&io, &cfg()));
        // A server's main goroutine (no creator) waiting on its workers all its life.
        let mut main = group("sync.WaitGroup.Wait", true);
        main.first_count = main.count;
        assert!(LongParked.check(&main, &cfg()));
        main.key.created_by = None;
        assert!(!LongParked.check(&main, &cfg()));
    }

    #[test]
    fn traced_evidence_feeds_the_verdict() {
        let mut g = group("chan receive", true);
        g.trace = Some(TraceEvidence {
            watched: 61,
            woke: 0,
            exited: 0,
            created_in_window: 24,
            exact_ages: 24,
            events_lost: 0,
            traced_secs: 60.0,
        });
        let v = evaluate(&g, &cfg());
        assert!(v.leak);
        assert_eq!(
            v.reasons[2],
            "never woken: none of the 61 goroutine(s) seen here in 60 s of tracing ran again"
        );
        // Lost events qualify the evidence; the snapshots still make it a leak.
        g.trace.as_mut().unwrap().events_lost = 12;
        let v = evaluate(&g, &cfg());
        assert!(v.leak);
        assert!(
            v.reasons[2].ends_with("but 12 events were lost: a wake may have been missed"),
            "{}",
            v.reasons[2]
        );
        // One traced wake makes it a pool that wakes: not flagged, even though it grew.
        g.trace.as_mut().unwrap().woke = 1;
        assert!(g.woken());
        assert!(!evaluate(&g, &cfg()).leak);
        let mut g = group("chan receive", true);
        g.trace = Some(TraceEvidence {
            exited: 1,
            ..g.trace.unwrap_or(TraceEvidence {
                watched: 3,
                woke: 0,
                exited: 0,
                created_in_window: 0,
                exact_ages: 0,
                events_lost: 0,
                traced_secs: 1.0,
            })
        });
        assert!(g.woken(), "an exit counts as leaving the group");
    }

    #[test]
    fn every_rule_has_a_unique_name_and_summary() {
        let mut names: Vec<_> = RULES.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), RULES.len());
        assert!(RULES.iter().all(|r| !r.summary().is_empty()));
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_secs(12.2), "12 s");
        assert_eq!(human_secs(840.0), "14 min");
        assert_eq!(human_secs(3.0 * 3600.0), "3.0 h");
    }
}
