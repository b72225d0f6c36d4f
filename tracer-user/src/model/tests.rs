use tracer_common::event::{EventKind, GoCreate, GoId, GoPark, GoReady, Header, MAX_STACK};

use super::*;

fn h(kind: EventKind, t: u64) -> Header {
    Header {
        kind: kind as u32,
        tid: 100,
        ktime_ns: t,
    }
}

fn create(t: u64, goid: u64, parent: u64) -> Event {
    Event::Create(GoCreate {
        header: h(EventKind::Create, t),
        goid,
        parent_goid: parent,
        gopc: 0x1000,
        startpc: 0x2000,
    })
}

fn park(t: u64, goid: u64, reason: u32, pcs: &[u64]) -> Event {
    let mut stack = [0; MAX_STACK];
    stack[..pcs.len()].copy_from_slice(pcs);
    Event::Park(GoPark {
        header: h(EventKind::Park, t),
        goid,
        reason,
        stack_len: pcs.len() as u32,
        stack,
    })
}

fn ready(t: u64, goid: u64, waker: u64) -> Event {
    Event::Ready(GoReady {
        header: h(EventKind::Ready, t),
        goid,
        waker_goid: waker,
        ..GoReady::default()
    })
}

fn one(kind: EventKind, t: u64, goid: u64) -> Event {
    let e = GoId {
        header: h(kind, t),
        goid,
    };
    if kind == EventKind::Exit {
        Event::Exit(e)
    } else {
        Event::Execute(e)
    }
}

#[test]
fn full_life_of_one_goroutine() {
    let mut m = Model::new();
    m.baseline([1]);
    for e in [
        create(10, 7, 1),
        one(EventKind::Execute, 15, 7),
        park(20, 7, 14, &[0xa, 0xb]),
        ready(50, 7, 1),
        one(EventKind::Execute, 53, 7),
        one(EventKind::Exit, 60, 7),
    ] {
        m.apply(&e);
    }
    let g = &m.goroutines[&7];
    assert_eq!(g.created.unwrap().parent, 1);
    assert!(!g.preexisting);
    assert_eq!(g.parks.len(), 1);
    let p = g.parks[0];
    assert_eq!(p.reason, 14);
    assert_eq!(m.stacks.get(p.stack), &[0xa, 0xb]);
    assert_eq!(p.wake.unwrap().waker, 1);
    assert_eq!(p.duration(), Some(30));
    assert_eq!(p.resumed, Some(53));
    assert_eq!(g.exited, Some(60));
    assert_eq!(m.sched_latencies, vec![5, 3]);
    assert_eq!(m.sites[&(14, p.stack)].total_ns, 30);
    assert_eq!(m.wakers[&1], 1);
    assert_eq!(m.goroutines[&1].woke_others, 1);
    assert_eq!((m.created, m.exited, m.alive()), (1, 1, 1));
    assert_eq!(m.anomalies, Anomalies::default());
}

#[test]
fn yield_makes_runnable_and_measures_latency() {
    let mut m = Model::new();
    m.apply(&one(EventKind::Execute, 10, 4));
    m.apply(&Event::Yield(GoId {
        header: h(EventKind::Yield, 20),
        goid: 4,
    }));
    m.apply(&one(EventKind::Execute, 27, 4));
    let g = &m.goroutines[&4];
    assert_eq!(g.yields, 1);
    assert_eq!(m.sched_latencies, vec![7]);
    assert!(matches!(g.state, State::Running { since: 27, .. }));
}

#[test]
fn park_ended_without_ready_closes_at_execute() {
    let mut m = Model::new();
    m.apply(&park(100, 3, 2, &[1]));
    m.apply(&one(EventKind::Execute, 180, 3));
    let g = &m.goroutines[&3];
    assert!(g.preexisting, "first seen without creation");
    assert_eq!(g.parks[0].duration(), Some(80));
    assert!(m.sched_latencies.is_empty());
    assert_eq!(m.sites.values().next().unwrap().count, 1);
}

#[test]
fn anomalies_are_counted_not_fatal() {
    let mut m = Model::new();
    m.apply(&ready(3, 9, 0)); // unknown goroutine (parked before attach): normal order
    assert_eq!(m.anomalies.ready_not_waiting, 0);
    assert_eq!(m.preexisting_wakes, 1);
    m.apply(&one(EventKind::Execute, 4, 9));
    m.apply(&ready(5, 9, 0)); // running, not parked
    m.apply(&one(EventKind::Exit, 6, 9));
    m.apply(&park(7, 9, 1, &[])); // after exit
    m.apply(&create(8, 4, 1));
    m.apply(&create(9, 4, 1));
    assert_eq!(m.anomalies.ready_not_waiting, 1);
    assert_eq!(m.anomalies.after_exit, 1);
    assert_eq!(m.anomalies.duplicate_create, 1);
    assert_eq!(m.wakers[&0], 2);
}

#[test]
fn parks_beyond_the_limit_are_counted() {
    let mut m = Model::new();
    for i in 0..(MAX_PARKS_PER_GOROUTINE as u64 + 10) {
        m.apply(&park(i * 10, 5, 1, &[1]));
        m.apply(&ready(i * 10 + 3, 5, 2));
    }
    let g = &m.goroutines[&5];
    assert_eq!(g.parks.len(), MAX_PARKS_PER_GOROUTINE);
    assert_eq!(g.parks_dropped, 10);
    assert_eq!(
        m.sites.values().next().unwrap().count,
        MAX_PARKS_PER_GOROUTINE as u64 + 10
    );
}

#[test]
fn percentiles() {
    assert_eq!(percentile(&[], 50.0), None);
    assert_eq!(percentile(&[5, 1, 3, 2, 4], 50.0), Some(3));
    assert_eq!(percentile(&[5, 1, 3, 2, 4], 100.0), Some(5));
    assert_eq!(percentile(&[5, 1, 3, 2, 4], 0.0), Some(1));
    assert_eq!(percentile(&[10; 100], 99.0), Some(10));
}

#[test]
fn gaps_are_merged_and_queried() {
    let mut m = Model::new();
    m.unobserved(100, 200);
    m.unobserved(300, 400);
    m.unobserved(150, 250);
    m.unobserved(1_000, u64::MAX);
    assert_eq!(m.gaps, vec![(100, 250), (300, 400), (1_000, u64::MAX)]);
    assert_eq!(m.unobserved.gaps, 4);
    assert!(!m.crosses_gap(10, 100));
    assert!(m.crosses_gap(10, 101));
    assert!(!m.crosses_gap(250, 300));
    assert!(m.crosses_gap(399, 500));
    assert!(m.crosses_gap(500, 2_000));
    assert!(!m.crosses_gap(400, 1_000));
    assert!((m.observed_fraction(0, 1_000) - 0.75).abs() < 1e-9);
    assert!((m.observed_fraction(5, 5) - 1.0).abs() < f64::EPSILON);
    m.unobserved(50, 1_200);
    assert_eq!(m.gaps, vec![(50, u64::MAX)]);
}

#[test]
fn no_duration_across_a_gap() {
    let mut m = Model::new();
    // Park seen in a window; its ready falls in the gap [100, 900); the next ready seen is
    // for a later park: the first park must not be reported as 990 ns long.
    m.unobserved(100, 900);
    for e in [
        create(1, 7, 1),
        one(EventKind::Execute, 5, 7),
        park(10, 7, 14, &[0xa]),
        ready(1_000, 7, 1),
        one(EventKind::Execute, 1_003, 7),
        // A park wholly inside the next window is measured.
        park(1_010, 7, 14, &[0xa]),
        ready(1_040, 7, 1),
        one(EventKind::Execute, 1_045, 7),
    ] {
        m.apply(&e);
    }
    let g = &m.goroutines[&7];
    assert!(g.parks[0].cut);
    assert_eq!(g.parks[0].duration(), None);
    assert_eq!(g.parks[0].wake, None);
    assert_eq!(g.parks[1].duration(), Some(30));
    assert_eq!(m.unobserved.parks_cut, 1);
    let site = m.sites[&(14, m.goroutines[&7].parks[0].stack)];
    assert_eq!(
        (site.count, site.max_ns),
        (1, 30),
        "only the observed park is totalled"
    );
    // Latencies: create→execute (4) and the two ready→execute (3, 5) are all observed.
    assert_eq!(m.sched_latencies, vec![4, 3, 5]);
    assert_eq!(m.anomalies, Anomalies::default());
}

#[test]
fn latency_and_unreadied_parks_across_a_gap() {
    let mut m = Model::new();
    m.unobserved(20, 80);
    for e in [
        create(10, 8, 1),
        // Runnable since 10, executed at 100 after a gap: no latency sample.
        one(EventKind::Execute, 100, 8),
        park(110, 8, 2, &[0xb]),
    ] {
        m.apply(&e);
    }
    m.unobserved(120, 200);
    // Executed again without a ready seen (it happened in the gap): cut, not 90 ns parked.
    m.apply(&one(EventKind::Execute, 200, 8));
    // A ready of a goroutine seen running before a gap is expected, not an anomaly.
    m.unobserved(210, 300);
    m.apply(&ready(310, 8, 1));
    assert!(m.sched_latencies.is_empty(), "{:?}", m.sched_latencies);
    assert_eq!(m.unobserved.latencies_cut, 1);
    assert_eq!(m.unobserved.parks_cut, 1);
    assert_eq!(m.unobserved.after_gap, 1);
    assert!(m.sites.is_empty());
    assert_eq!(m.anomalies, Anomalies::default());
}
