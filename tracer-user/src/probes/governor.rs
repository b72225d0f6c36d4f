//! The overhead governor: keeps the estimated cost of the lifecycle probes within a budget
//! (`--max-overhead PCT`) by switching the hot probes to sampled windows.
//!
//! Model (docs/PERFORMANCE.md, "Governor"): a probe hit costs the target a fixed time, spent
//! in the target's own threads (the uprobe trap and the eBPF program run in its context), so
//! it shows in the target's CPU time. Over each evaluation interval:
//!
//! - `C(d)` = Σ rate(p) × cost(p), where a hot probe emits during a fraction `d` of the time
//!   (the duty) and is sampled out the rest: `d·cost_emit + (1−d)·cost_sampled_out`; exact
//!   probes (create, exit, panics) always pay `cost_emit`. Hits are counted even when sampled
//!   out, so `C(1)` stays known while sampling.
//! - the target's own work `W` = its CPU time per second minus `C(current duty)`, floored at
//!   [`MIN_BASE_CORES`] of a core (below that the target is idle and any cost is tiny in
//!   absolute terms; without the floor an idle process with a few timer wake-ups would look
//!   "100 % overhead").
//! - overhead(d) = `C(d) / W`. Exact tracing when `C(1) ≤ budget·W`; otherwise the largest
//!   duty `d` with `C(d) ≤ budget·W`, rounded down to a tenth and at least [`MIN_DUTY`]. A
//!   sampled-out hit still pays the trap, so `C(0)` is a floor no duty goes below: when it
//!   already exceeds the budget the decision says so (`reachable = false`).
//!
//! Pure (no clocks, no I/O): the session feeds it counters and CPU times.

use std::time::Duration;

use tracer_common::probe::ProbeId;

/// Default of `--max-overhead`, percent of the target's own CPU time.
pub const DEFAULT_MAX_OVERHEAD_PCT: f64 = 5.0;
/// The probes the governor samples: scheduler-hot, their events are the bulk of the stream.
/// Creation, exit and the panic path stay exact. A probe added here must call
/// `maps::sampled_out` in its eBPF program.
pub const HOT: [ProbeId; 6] = [
    ProbeId::Gopark,
    ProbeId::Ready,
    ProbeId::Execute,
    ProbeId::Gosched,
    ProbeId::SchedSwitch,
    ProbeId::SchedWakeup,
];
/// One sampling period: the hot probes emit for `duty × PERIOD` at its start.
pub const PERIOD: Duration = Duration::from_millis(100);
/// Smallest duty (one 10 ms window per period, the session's drain interval).
pub const MIN_DUTY: f64 = 0.1;
/// How often the governor re-evaluates.
pub const EVALUATE_EVERY: Duration = Duration::from_millis(500);
/// The first evaluation comes sooner: a 32 MiB ring buffer holds ~100 ms of the busiest
/// workloads.
pub const FIRST_EVALUATION: Duration = Duration::from_millis(100);
/// The target's own work is counted as at least this many cores: below it the target is not
/// CPU-bound and the absolute cost within budget (≤ 12.5 ms/s at 5 %) is small, so short
/// bursts of a mostly idle service stay exact.
pub const MIN_BASE_CORES: f64 = 0.25;
/// Back to exact only when the full cost is below this fraction of the budget (hysteresis).
const EXIT_MARGIN: f64 = 0.8;

/// Estimated cost of one hit to the target, ns: (emitting, sampled out). Measured by
/// `cargo xtask bench overhead` on this project's reference machine (docs/PERFORMANCE.md),
/// rounded up; the sampled-out cost is that of the empty probe at the same site.
pub const fn cost_ns(probe: ProbeId) -> (f64, f64) {
    match probe {
        // Trap + program + user stack walk.
        ProbeId::Gopark | ProbeId::Ready => (2_600.0, 1_400.0),
        // Trap + program reading a few words.
        ProbeId::Execute
        | ProbeId::Gosched
        | ProbeId::Goexit0
        | ProbeId::NewprocReturn
        | ProbeId::Newproc1 => (1_600.0, 1_400.0),
        // Tracepoints: no trap, a short program.
        ProbeId::SchedSwitch | ProbeId::SchedWakeup | ProbeId::ProcessExit => (400.0, 200.0),
        // Panic path: rare; the cost does not matter, count it as a stack-taking probe.
        _ => (3_000.0, 3_000.0),
    }
}

/// Whether `probe` is one the governor samples.
pub fn is_hot(probe: ProbeId) -> bool {
    HOT.contains(&probe)
}

/// What happened over one evaluation interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Length of the interval.
    pub elapsed: Duration,
    /// Hits per probe during the interval, indexed by `ProbeId as usize`.
    pub hits: [u64; ProbeId::COUNT as usize],
    /// The target's CPU time (user + system, all threads) during the interval.
    pub target_cpu: Duration,
    /// Fraction of the interval during which the hot probes emitted (1 = exact).
    pub duty: f64,
    /// Events lost to a full ring buffer during the interval: whatever the CPU estimate,
    /// the reader cannot keep up, so the duty is at least halved.
    pub drops: u64,
}

/// The governor's verdict for the next interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Decision {
    /// Fraction of each [`PERIOD`] the hot probes emit (1 = exact tracing).
    pub duty: f64,
    /// Estimated overhead of exact tracing, percent of the target's own CPU time.
    pub full_pct: f64,
    /// Estimated overhead at the chosen duty, percent.
    pub chosen_pct: f64,
    /// Estimated overhead with every hot probe sampled out (the traps alone), percent.
    pub floor_pct: f64,
    /// False when even sampled-out probes (the trap alone) exceed the budget.
    pub reachable: bool,
}

/// Decides the duty of the hot probes from observed rates.
#[derive(Debug, Clone)]
pub struct Governor {
    max_pct: f64,
    duty: f64,
}

impl Governor {
    /// A governor for a budget of `max_pct` percent (exact tracing to start with).
    pub fn new(max_pct: f64) -> Self {
        Self {
            max_pct: max_pct.max(0.0),
            duty: 1.0,
        }
    }

    /// The current duty (1 = exact).
    pub fn duty(&self) -> f64 {
        self.duty
    }

    /// The budget, percent.
    pub fn max_pct(&self) -> f64 {
        self.max_pct
    }

    /// Takes one interval into account and returns the decision for the next.
    pub fn observe(&mut self, o: &Observation) -> Decision {
        let secs = o.elapsed.as_secs_f64();
        if secs <= 0.0 {
            return Decision {
                duty: self.duty,
                full_pct: 0.0,
                chosen_pct: 0.0,
                floor_pct: 0.0,
                reachable: true,
            };
        }
        // ns of probe cost per second of wall time at duty d.
        let cost = |d: f64| -> f64 {
            ProbeId::ALL
                .iter()
                .map(|&p| {
                    let rate = o.hits[p as usize] as f64 / secs;
                    let (emit, out) = cost_ns(p);
                    let per_hit = if is_hot(p) {
                        d * emit + (1.0 - d) * out
                    } else {
                        emit
                    };
                    rate * per_hit
                })
                .sum()
        };
        let (full, floor) = (cost(1.0), cost(0.0));
        let target = o.target_cpu.as_secs_f64() * 1e9 / secs;
        let own = (target - cost(o.duty.clamp(0.0, 1.0))).max(MIN_BASE_CORES * 1e9);
        let budget = self.max_pct / 100.0 * own;
        let limit = if self.duty < 1.0 {
            budget * EXIT_MARGIN
        } else {
            budget
        };
        let (duty, reachable) = if full <= limit {
            (1.0, true)
        } else {
            let d = if full > floor {
                (budget - floor) / (full - floor)
            } else {
                0.0
            };
            // Rounded down to whole 10 ms windows of the 100 ms period.
            let d = (d * 10.0).floor() / 10.0;
            (
                d.clamp(MIN_DUTY, 0.9),
                floor + MIN_DUTY * (full - floor) <= budget,
            )
        };
        let duty = if o.drops > 0 {
            duty.min(((self.duty / 2.0) * 10.0).floor() / 10.0)
                .max(MIN_DUTY)
        } else {
            duty
        };
        self.duty = duty;
        Decision {
            duty,
            full_pct: 100.0 * full / own,
            chosen_pct: 100.0 * cost(duty) / own,
            floor_pct: 100.0 * floor / own,
            reachable,
        }
    }
}

/// Whether the hot probes emit at `phase` (time since sampling started) for `duty`.
pub fn window_open(duty: f64, phase: Duration) -> bool {
    if duty >= 1.0 {
        return true;
    }
    let period = PERIOD.as_nanos();
    let into = phase.as_nanos() % period;
    (into as f64) < duty * period as f64
}

#[cfg(test)]
#[allow(
    clippy::float_cmp,
    reason = "duties are exact: constants, or tenths computed the same way"
)]
mod tests {
    use super::*;

    fn obs(rates: &[(ProbeId, u64)], cpu_ms: u64, duty: f64) -> Observation {
        let mut hits = [0; ProbeId::COUNT as usize];
        for &(p, n) in rates {
            hits[p as usize] = n;
        }
        Observation {
            elapsed: Duration::from_secs(1),
            hits,
            target_cpu: Duration::from_millis(cpu_ms),
            duty,
            drops: 0,
        }
    }

    #[test]
    fn low_rates_stay_exact() {
        let mut g = Governor::new(5.0);
        // 1 000 parks/s against a target busy on one core: 2.6 ms of 1 s = 0.26 %.
        let d = g.observe(&obs(&[(ProbeId::Gopark, 1_000)], 1_000, 1.0));
        assert_eq!(d.duty, 1.0);
        assert!(d.reachable);
        assert!((d.full_pct - 0.26).abs() < 0.01, "{d:?}");
    }

    #[test]
    fn an_idle_target_is_not_sampled_for_a_few_wakeups() {
        let mut g = Governor::new(5.0);
        // 200 parks/s of an almost idle target (1 ms CPU/s): measured against the floor of
        // 250 ms/s, 0.52 ms is ~0.2 %.
        let d = g.observe(&obs(
            &[(ProbeId::Gopark, 200), (ProbeId::Ready, 200)],
            1,
            1.0,
        ));
        assert_eq!(d.duty, 1.0, "{d:?}");
    }

    #[test]
    fn high_rates_switch_to_the_largest_duty_within_budget() {
        let mut g = Governor::new(20.0);
        // 100 k executes/s on a target using 1.2 s/s of CPU, of which 0.16 s is probes.
        let d = g.observe(&obs(&[(ProbeId::Execute, 100_000)], 1_200, 1.0));
        // own = 1.04 s; full = 160 ms = 15.4 % < 20 %: exact.
        assert_eq!(d.duty, 1.0, "{d:?}");
        let mut g = Governor::new(14.0);
        let d = g.observe(&obs(&[(ProbeId::Execute, 100_000)], 1_200, 1.0));
        // floor = 140 ms = 13.5 %, budget 145.6 ms: d = 5.6 / 20 = 0.28 → 0.2.
        assert!((d.duty - 0.2).abs() < 1e-9, "{d:?}");
        assert!(d.reachable);
        assert!(d.chosen_pct <= 14.0, "{d:?}");
        assert!(g.duty() < 1.0);
    }

    #[test]
    fn exact_probes_are_never_sampled_but_count() {
        let mut g = Governor::new(5.0);
        // Only creations and exits: nothing to sample, the duty stays at 1 whatever the cost.
        let d = g.observe(&obs(
            &[
                (ProbeId::NewprocReturn, 1_000_000),
                (ProbeId::Goexit0, 1_000_000),
            ],
            2_000,
            1.0,
        ));
        assert!(d.full_pct > 100.0);
        assert_eq!(
            d.duty, MIN_DUTY,
            "nothing hot: the duty is irrelevant but minimal"
        );
        assert!(!d.reachable, "exact probes alone exceed the budget: {d:?}");
    }

    #[test]
    fn unreachable_budget_takes_the_minimum_duty_and_says_so() {
        let mut g = Governor::new(1.0);
        // A ping-pong: 1 M parks/s + 1 M readies/s; the traps alone exceed 1 %.
        let d = g.observe(&obs(
            &[(ProbeId::Gopark, 1_000_000), (ProbeId::Ready, 1_000_000)],
            2_000,
            1.0,
        ));
        assert_eq!(d.duty, MIN_DUTY);
        assert!(!d.reachable);
    }

    #[test]
    fn hysteresis_on_the_way_back() {
        let mut g = Governor::new(10.0);
        let hot = |n, duty| obs(&[(ProbeId::Execute, n)], 1_000, duty);
        // 80 k/s: full 128 ms on own 872 ms → 14.7 %: sampled.
        assert!(g.observe(&hot(80_000, 1.0)).duty < 1.0);
        // 55 k/s: full 88 ms on own ~922 ms → 9.5 %: within 10 % but above 8 %: still
        // sampled.
        assert!(g.observe(&hot(55_000, g.duty())).duty < 1.0);
        // 30 k/s: ~5 %: back to exact.
        assert_eq!(g.observe(&hot(30_000, g.duty())).duty, 1.0);
    }

    #[test]
    fn drops_halve_the_duty_whatever_the_estimate() {
        let mut g = Governor::new(50.0);
        let mut o = obs(&[(ProbeId::Gopark, 1_000)], 1_000, 1.0);
        o.drops = 10;
        assert_eq!(g.observe(&o).duty, 0.5);
        assert_eq!(g.observe(&o).duty, 0.2);
        assert_eq!(g.observe(&o).duty, MIN_DUTY);
        o.drops = 0;
        assert_eq!(
            g.observe(&o).duty,
            1.0,
            "0.26 % is far below the budget: {g:?}"
        );
    }

    #[test]
    fn windows_follow_the_duty() {
        assert!(window_open(1.0, Duration::from_millis(95)));
        assert!(window_open(0.2, Duration::from_millis(5)));
        assert!(window_open(0.2, Duration::from_millis(119)));
        assert!(!window_open(0.2, Duration::from_millis(20)));
        assert!(!window_open(0.2, Duration::from_millis(199)));
        let open = (0..1000)
            .filter(|ms| window_open(0.3, Duration::from_millis(*ms)))
            .count();
        assert_eq!(open, 300);
    }

    #[test]
    fn zero_length_interval_changes_nothing() {
        let mut g = Governor::new(5.0);
        let mut o = obs(&[(ProbeId::Gopark, 5)], 0, 1.0);
        o.elapsed = Duration::ZERO;
        assert_eq!(g.observe(&o).duty, 1.0);
    }
}
