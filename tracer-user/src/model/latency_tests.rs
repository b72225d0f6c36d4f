//! The time model on generated event sequences: states land where they must and every
//! goroutine's buckets sum to its part of the window.

use tracer_common::event::{
    Event, EventKind, GoArg, GoCreate, GoId, GoPark, GoReady, Header, STW_REASON_NONE,
    SYSCALL_BLOCKING, SchedSwitch,
};

use super::{
    Model,
    latency::{BaselineState, REASON_UNKNOWN, stw_reason_name},
};

const SLEEP: u32 = 19;
const CHAN: u32 = 14;

fn h(kind: EventKind, t: u64, tid: u32) -> Header {
    Header {
        kind: kind as u32,
        tid,
        ktime_ns: t,
    }
}

fn create(t: u64, goid: u64) -> Event {
    Event::Create(GoCreate {
        header: h(EventKind::Create, t, 1),
        goid,
        parent_goid: 1,
        gopc: 0x1000,
        startpc: 0x2000,
    })
}

fn go(kind: EventKind, t: u64, tid: u32, goid: u64) -> Event {
    let e = GoId {
        header: h(kind, t, tid),
        goid,
    };
    match kind {
        EventKind::Exit => Event::Exit(e),
        EventKind::Yield => Event::Yield(e),
        _ => Event::Execute(e),
    }
}

fn park(t: u64, tid: u32, goid: u64, reason: u32) -> Event {
    Event::Park(GoPark {
        header: h(EventKind::Park, t, tid),
        goid,
        reason,
        ..GoPark::default()
    })
}

fn ready(t: u64, goid: u64) -> Event {
    Event::Ready(GoReady {
        header: h(EventKind::Ready, t, 9),
        goid,
        ..GoReady::default()
    })
}

fn sched(kind: EventKind, t: u64, tid: u32, goid: u64, arg: u32) -> Event {
    Event::Sched(
        kind,
        GoArg {
            header: h(kind, t, tid),
            goid,
            arg,
            pad: 0,
        },
    )
}

fn switch(t: u64, prev: u32, next: u32, prev_state: u64) -> Event {
    Event::Switch(SchedSwitch {
        header: h(EventKind::Switch, t, prev),
        prev_tid: prev,
        next_tid: next,
        prev_state,
    })
}

fn run(start: u64, end: u64, baseline: &[(u64, BaselineState)], events: &[Event]) -> Model {
    let mut m = Model::new();
    m.start_window(start);
    m.baseline(baseline.iter().map(|b| b.0));
    m.baseline_states(baseline.iter().copied());
    for e in events {
        m.apply(e);
    }
    m.finish(end);
    m
}

/// Every goroutine's buckets sum to the time it existed in the window.
fn check_totals(m: &Model) {
    let (start, end) = m.window().unwrap();
    for g in m.goroutines.values() {
        let from = g.created.map_or(start, |c| c.at);
        let to = g.exited.unwrap_or(end);
        assert_eq!(
            g.clock.times.total(),
            to - from,
            "goroutine {} {:?}",
            g.goid,
            g.clock.times
        );
    }
}

#[test]
fn sleeper_without_events_is_parked_all_window() {
    let m = run(1000, 5000, &[(5, BaselineState::Parked(SLEEP))], &[]);
    let t = &m.goroutines[&5].clock.times;
    assert_eq!(t.parked[&SLEEP], 4000);
    check_totals(&m);
}

#[test]
fn goroutine_without_baseline_or_event_is_parked_unknown() {
    let mut m = Model::new();
    m.start_window(0);
    m.baseline([3]);
    m.finish(100);
    assert_eq!(m.goroutines[&3].clock.times.parked[&REASON_UNKNOWN], 100);
}

#[test]
fn full_life_with_chan_wait_and_sched_wait() {
    let m = run(
        0,
        1000,
        &[],
        &[
            create(100, 7),
            go(EventKind::Execute, 150, 11, 7),
            park(200, 11, 7, CHAN),
            ready(500, 7),
            go(EventKind::Execute, 520, 12, 7),
            go(EventKind::Exit, 600, 12, 7),
        ],
    );
    let t = &m.goroutines[&7].clock.times;
    assert_eq!(t.runnable, 50 + 20);
    assert_eq!(t.running, 50 + 80);
    assert_eq!(t.parked[&CHAN], 300);
    check_totals(&m);
}

#[test]
fn spinner_split_by_the_os() {
    let m = run(
        0,
        1000,
        &[(8, BaselineState::Running)],
        &[
            go(EventKind::Execute, 0, 11, 8),
            switch(100, 11, 50, 0),     // preempted by the kernel
            switch(300, 50, 11, 0),     // back
            switch(400, 11, 50, 1),     // blocked (S)
            switch(450, 50, 11, 0),     // back
            switch(500, 11, 50, 0x100), // preempted (TASK_REPORT_MAX)
            go(EventKind::Yield, 700, 11, 8),
            go(EventKind::Execute, 800, 11, 8),
        ],
    );
    let t = &m.goroutines[&8].clock.times;
    assert_eq!(t.os_preempted, 200 + 200);
    assert_eq!(t.os_blocked, 50);
    assert_eq!(t.runnable, 100);
    assert_eq!(t.running, 100 + 100 + 50 + 200);
    check_totals(&m);
}

#[test]
fn syscalls_with_and_without_a_p() {
    let m = run(
        0,
        1000,
        &[],
        &[
            create(0, 9),
            go(EventKind::Execute, 10, 11, 9),
            sched(EventKind::Syscall, 20, 11, 9, 0),
            switch(25, 11, 50, 1), // blocked in the syscall: still syscall time
            sched(EventKind::SyscallExit, 120, 11, 9, 0),
            sched(EventKind::Syscall, 200, 11, 9, SYSCALL_BLOCKING),
            sched(EventKind::SyscallExit, 400, 11, 9, 0),
            sched(EventKind::SyscallNoP, 410, 11, 9, 0),
            go(EventKind::Execute, 500, 13, 9),
        ],
    );
    let t = &m.goroutines[&9].clock.times;
    assert_eq!(t.syscall, 100 + 200);
    assert_eq!(t.runnable, 10 + 90);
    assert_eq!(t.os_offcpu(), 0);
    assert_eq!(t.running, 10 + 80 + 10 + 500);
    check_totals(&m);
}

#[test]
fn stop_the_world_charges_running_and_runnable_not_parked() {
    let m = run(
        0,
        1000,
        &[
            (1, BaselineState::Running),
            (2, BaselineState::Runnable),
            (3, BaselineState::Parked(SLEEP)),
        ],
        &[
            go(EventKind::Execute, 0, 11, 1),
            go(EventKind::Execute, 0, 12, 4),
            sched(EventKind::StwStart, 100, 11, 1, 2),
            go(EventKind::Yield, 110, 12, 4),
            sched(EventKind::StwDone, 300, 11, 1, 0),
            go(EventKind::Execute, 350, 12, 2),
        ],
    );
    let g = |id: u64| &m.goroutines[&id].clock.times;
    assert_eq!(g(1).stw, 200);
    assert_eq!(g(2).stw, 200);
    assert_eq!(g(2).runnable, 100 + 50);
    assert_eq!(g(3).stw, 0);
    assert_eq!(g(4).stw, 200);
    assert_eq!(m.time.stw.len(), 1);
    assert_eq!(
        stw_reason_name(m.time.stw[0].reason),
        "GC sweep termination"
    );
    check_totals(&m);
}

#[test]
fn stw_reasons_inferred_before_go_1_21() {
    let m = run(
        0,
        1000,
        &[],
        &[
            sched(EventKind::GcStart, 10, 11, 1, 0),
            sched(EventKind::StwStart, 20, 11, 1, STW_REASON_NONE),
            sched(EventKind::StwDone, 30, 11, 1, 0),
            sched(EventKind::StwStart, 400, 11, 1, STW_REASON_NONE),
            sched(EventKind::GcMarkTerm, 410, 11, 1, 0),
            sched(EventKind::StwDone, 450, 11, 1, 0),
            sched(EventKind::StwStart, 600, 11, 1, STW_REASON_NONE),
            sched(EventKind::StwDone, 610, 11, 1, 0),
        ],
    );
    let names: Vec<_> = m
        .time
        .stw
        .iter()
        .map(|w| stw_reason_name(w.reason))
        .collect();
    assert_eq!(
        names,
        [
            "GC sweep termination",
            "GC mark termination",
            "unknown (not passed before go1.21)"
        ]
    );
    assert_eq!(m.time.gc.len(), 1);
    let c = m.time.gc[0];
    assert_eq!(
        (c.start, c.mark_termination, c.end),
        (Some(20), Some(400), Some(450))
    );
}

#[test]
fn assist_inside_running_and_preexisting_inference() {
    let m = run(
        0,
        1000,
        &[(20, BaselineState::Parked(CHAN))],
        &[
            // 21: no baseline, first seen readied: parked (unknown) before.
            ready(100, 21),
            go(EventKind::Execute, 150, 11, 21),
            sched(EventKind::AssistStart, 200, 11, 21, 0),
            sched(EventKind::AssistDone, 260, 11, 21, 0),
            // 20: first event execute without ready: netpoll; parked by its baseline reason.
            go(EventKind::Execute, 300, 12, 20),
            sched(EventKind::Suspended, 400, 12, 20, 0),
            ready(450, 20),
            go(EventKind::Execute, 460, 12, 20),
        ],
    );
    let g21 = &m.goroutines[&21].clock.times;
    assert_eq!(g21.parked[&REASON_UNKNOWN], 100);
    assert_eq!(g21.assist, 60);
    assert_eq!(g21.runnable, 50);
    let g20 = &m.goroutines[&20].clock.times;
    assert_eq!(g20.parked[&CHAN], 300);
    assert_eq!(g20.parked[&super::latency::REASON_PREEMPTED], 50);
    check_totals(&m);
}

#[test]
fn out_of_order_and_after_exit_events_never_break_the_sum() {
    let m = run(
        100,
        1000,
        &[],
        &[
            create(200, 5),
            go(EventKind::Execute, 190, 11, 5), // slightly out of order
            go(EventKind::Exit, 300, 11, 5),
            go(EventKind::Execute, 400, 11, 5), // after exit: ignored
            switch(500, 11, 12, 0),
        ],
    );
    check_totals(&m);
}

#[test]
fn sampling_gaps_are_unobserved_and_states_inferred_again() {
    let mut m = Model::new();
    m.start_window(0);
    m.baseline([1, 2]);
    m.baseline_states([
        (1, BaselineState::Parked(SLEEP)),
        (2, BaselineState::Running),
    ]);
    m.apply(&go(EventKind::Execute, 0, 11, 2));
    // Gap 100..300 opens live, closes later.
    m.time_gap(100, None);
    m.unobserved(100, 300);
    // After the gap, 1 is readied: parked (its old reason) until then; 2 parks: running.
    m.apply(&ready(400, 1));
    m.apply(&park(500, 11, 2, CHAN));
    m.finish(1000);
    let t1 = &m.goroutines[&1].clock.times;
    assert_eq!(t1.unobserved, 200);
    assert_eq!(t1.parked[&SLEEP], 100 + 100);
    assert_eq!(t1.runnable, 600);
    let t2 = &m.goroutines[&2].clock.times;
    assert_eq!(t2.unobserved, 200);
    assert_eq!(t2.running, 100 + 200);
    assert_eq!(t2.parked[&CHAN], 500);
    check_totals(&m);
}

#[test]
fn restarted_mark_termination_stays_in_its_cycle() {
    let m = run(
        0,
        1000,
        &[],
        &[
            sched(EventKind::StwStart, 10, 11, 1, 2),
            sched(EventKind::StwDone, 20, 11, 1, 0),
            sched(EventKind::StwStart, 100, 11, 1, 1),
            sched(EventKind::StwDone, 110, 11, 1, 0),
            sched(EventKind::StwStart, 150, 11, 1, 1),
            sched(EventKind::StwDone, 160, 11, 1, 0),
            sched(EventKind::StwStart, 500, 11, 1, 2),
        ],
    );
    assert_eq!(m.time.stw.len(), 4);
    assert_eq!(m.time.mark_restarts, 1);
    let c: Vec<_> = m
        .time
        .gc
        .iter()
        .map(|c| (c.start, c.mark_termination, c.end))
        .collect();
    assert_eq!(
        c,
        [(Some(10), Some(100), Some(160)), (Some(500), None, None)]
    );
}
