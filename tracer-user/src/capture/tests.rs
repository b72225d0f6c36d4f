use tracer_common::event::{Event, EventKind, GoCreate, GoId, encode};

use super::*;

fn header() -> Header {
    Header {
        pid: 42,
        exe: "/bin/app".into(),
        go_version: "go1.27.3".into(),
        bias: 0,
        wait_reasons: vec![String::new(), "chan receive".into()],
        started_unix_ns: 1,
        started_ktime_ns: 2,
        baseline_goids: vec![1, 2],
        baseline_note: String::new(),
        baseline: vec![Preexisting {
            goid: 1,
            state: "chan receive".into(),
            created_by: String::new(),
            parent_goid: 0,
            start_function: "main.main".into(),
        }],
        max_overhead_pct: 5.0,
    }
}

/// An event header.
fn hdr(kind: EventKind, tid: u32, ktime_ns: u64) -> tracer_common::event::Header {
    tracer_common::event::Header {
        kind: kind as u32,
        tid,
        ktime_ns,
    }
}

fn sample() -> Vec<u8> {
    let mut w = Writer::new(Vec::new(), header()).unwrap();
    let e = Event::Create(GoCreate {
        header: hdr(EventKind::Create, 1, 5),
        goid: 7,
        parent_goid: 1,
        gopc: 0x10,
        startpc: 0x20,
    });
    w.event(encode(&e)).unwrap();
    let x = Event::Exit(GoId {
        header: hdr(EventKind::Exit, 1, 9),
        goid: 7,
    });
    w.event(encode(&x)).unwrap();
    let symbols = Symbols {
        pcs: vec![PcInfo {
            pc: 0x10,
            return_address: true,
            frames: vec![Frame {
                function: "main.spawn".into(),
                file: "main.go".into(),
                line: 46,
                inlined: false,
            }],
        }],
    };
    let footer = Footer {
        stop_reason: "signal".into(),
        events: 2,
        decode_errors: 0,
        probes: vec![ProbeCount {
            probe: "runtime.gopark".into(),
            hits: 3,
            errors: 0,
            drops: 1,
        }],
        elapsed_ns: 100,
        detach_problem: String::new(),
        sampled_out_ns: 0,
        attached_ktime_ns: 3,
        ended_ktime_ns: 103,
        latency_probes: true,
        degraded: vec!["runtime.x: y".into()],
    };
    w.finish(symbols, footer).unwrap()
}

#[test]
fn compact_and_expand_are_inverse_for_events() {
    let e = park_with(0, &[0x1234]);
    let raw = encode(&e);
    let small = compact(raw);
    assert!(small.len() < 64, "{}", small.len());
    assert_eq!(expand(small.to_vec()), raw);
    // An all-zero body keeps its header.
    let x = Event::Exit(GoId {
        header: hdr(EventKind::Exit, 0, 0),
        goid: 0,
    });
    assert_eq!(compact(encode(&x)).len(), 16);
    assert_eq!(expand(compact(encode(&x)).to_vec()), encode(&x));
    // Garbage stays garbage (decode rejects it), bounded.
    assert_eq!(expand(vec![0xff; 3]), vec![0xff; 3]);
}

#[test]
fn round_trip() {
    let bytes = sample();
    let cap = parse(&bytes).unwrap();
    assert_eq!(cap.header, header());
    assert_eq!(cap.events.len(), 2);
    let e = tracer_common::event::decode(&cap.events[0]).unwrap();
    assert!(matches!(e, Event::Create(c) if c.goid == 7 && c.parent_goid == 1));
    assert_eq!(cap.symbols.location(0x10, true), "main.spawn (main.go:46)");
    assert_eq!(cap.symbols.function(0x10, false), "0x10");
    let f = cap.footer.unwrap();
    assert_eq!(f.lost(), 1);
    assert_eq!(f.events, 2);
}

#[test]
fn truncated_and_foreign_files_are_errors() {
    let bytes = sample();
    assert!(matches!(parse(b"hello"), Err(CaptureError::Magic)));
    let mut v = bytes.clone();
    v[MAGIC.len()] = 9;
    assert!(matches!(parse(&v), Err(CaptureError::Version(9))));
    // Every strict prefix either parses (cut between records) or fails cleanly.
    for n in MAGIC.len() + 4..bytes.len() {
        match parse(&bytes[..n]) {
            Ok(c) => assert!(c.footer.is_none() || n == bytes.len()),
            Err(CaptureError::Malformed { .. } | CaptureError::NoHeader) => {}
            Err(e) => panic!("prefix {n}: unexpected {e}"),
        }
    }
    // A huge declared length is refused without allocating.
    let mut v = bytes[..MAGIC.len() + 4].to_vec();
    v.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert!(matches!(parse(&v), Err(CaptureError::Malformed { .. })));
}

#[test]
fn panic_records_round_trip() {
    let mut w = Writer::new(Vec::new(), header()).unwrap();
    w.panic(r#"{"goid":1,"value":"boom"}"#.into()).unwrap();
    let bytes = w.finish(Symbols::default(), Footer::default()).unwrap();
    let cap = parse(&bytes).unwrap();
    assert_eq!(cap.panics, vec![r#"{"goid":1,"value":"boom"}"#.to_string()]);
    assert!(cap.events.is_empty());
}

#[test]
fn gaps_and_governor_notes_round_trip() {
    let mut w = Writer::new(Vec::new(), header()).unwrap();
    let note = GovernorNote {
        ktime_ns: 5,
        duty: 0.2,
        full_pct: 300.0,
        chosen_pct: 80.0,
        floor_pct: 60.0,
        reachable: false,
    };
    w.governor(note).unwrap();
    // A gap is written open, then closed; a last one stays open (capture cut short).
    for (start, end) in [(10, 0), (10, 20), (30, 0), (30, 40), (50, 0)] {
        w.gap(Gap {
            start_ktime_ns: start,
            end_ktime_ns: end,
        })
        .unwrap();
    }
    let bytes = w.finish(Symbols::default(), Footer::default()).unwrap();
    let cap = parse(&bytes).unwrap();
    assert_eq!(cap.governor, vec![note]);
    assert_eq!(
        cap.gap_intervals(),
        vec![(10, 20), (30, 40), (50, u64::MAX)]
    );
    assert!((cap.header.max_overhead_pct - 5.0).abs() < f64::EPSILON);
}

#[test]
fn event_records_are_written_as_prost_would() {
    let pcs: Vec<u64> = (0..20).map(|i| 0x40_0000 + 0x100 * i).collect();
    let park = park_with(12, &pcs);
    let exit = Event::Exit(GoId {
        header: hdr(EventKind::Exit, 0, 0),
        goid: 0,
    });
    // Sizes around the one-byte varint limit (127) too.
    let mut odd = encode(&exit).to_vec();
    odd.resize(200, 0x55);
    let mut big = encode(&exit).to_vec();
    big.resize(20_000, 0x66);
    for raw in [
        encode(&park),
        encode(&exit),
        &odd[..126],
        &odd[..127],
        &odd[..128],
        &odd,
        &big,
    ] {
        let mut w = Writer::new(Vec::new(), header()).unwrap();
        let start = w.out.len();
        w.event(raw).unwrap();
        let mut want = Vec::new();
        Record {
            body: Some(Body::Event(compact(raw).to_vec())),
        }
        .encode_length_delimited(&mut want)
        .unwrap();
        assert_eq!(&w.out[start..], want, "record of {} bytes", raw.len());
        let bytes = w.finish(Symbols::default(), Footer::default()).unwrap();
        let cap = parse(&bytes).unwrap();
        assert_eq!(cap.events, vec![expand(compact(raw).to_vec())]);
    }
    // What the reader gives back decodes to the event written.
    let mut w = Writer::new(Vec::new(), header()).unwrap();
    w.event(encode(&park)).unwrap();
    let cap = parse(&w.finish(Symbols::default(), Footer::default()).unwrap()).unwrap();
    assert_eq!(tracer_common::event::decode(&cap.events[0]), Ok(park));
}

fn park_with(goid: u64, pcs: &[u64]) -> Event {
    use tracer_common::event::{GoPark, MAX_STACK};
    let mut stack = [0u64; MAX_STACK];
    stack[..pcs.len()].copy_from_slice(pcs);
    Event::Park(GoPark {
        header: hdr(EventKind::Park, 3, 100 + goid),
        goid,
        reason: 2,
        stack_len: u32::try_from(pcs.len()).unwrap(),
        stack,
    })
}

#[test]
fn stacks_are_stored_once_and_records_come_back_whole() {
    use tracer_common::event::{GoReady, MAX_STACK};
    let a: Vec<u64> = (0..10).map(|i| 0x40_0000 + 0x10 * i).collect();
    let b: Vec<u64> = (0..3).map(|i| 0x50_0000 + 0x10 * i).collect();
    let mut rstack = [0u64; MAX_STACK];
    rstack[..3].copy_from_slice(&b);
    let ready = Event::Ready(GoReady {
        header: hdr(EventKind::Ready, 4, 500),
        goid: 9,
        waker_goid: 8,
        stack_len: 3,
        pad: 0,
        stack: rstack,
    });
    let events = [
        park_with(1, &a),
        park_with(2, &a),
        ready,
        park_with(3, &b),
        park_with(4, &[]),
        park_with(5, &a),
    ];
    let mut whole = Writer::new(Vec::new(), header()).unwrap();
    let mut once = Writer::new(Vec::new(), header()).unwrap();
    let mut fresh = Vec::new();
    for e in &events {
        whole.event(encode(e)).unwrap();
        fresh.push(once.event_raw(Raw::new(encode(e)).unwrap()).unwrap());
    }
    // a, a again, b (ready: the same bytes as park b), b again, no stack, a again. Stored
    // once, a (80 bytes) twice and b (24) once fewer: at least 100 bytes less.
    assert_eq!(fresh, [true, false, true, false, false, false]);
    let whole = whole.finish(Symbols::default(), Footer::default()).unwrap();
    let once = once.finish(Symbols::default(), Footer::default()).unwrap();
    assert!(
        once.len() + 100 < whole.len(),
        "{} vs {}",
        once.len(),
        whole.len()
    );
    let cap = parse(&once).unwrap();
    assert_eq!(cap.events, parse(&whole).unwrap().events);
    assert_eq!(decoded(&cap), events);
}

/// The events of `cap`, decoded.
fn decoded(cap: &Capture) -> Vec<Event> {
    cap.events
        .iter()
        .map(|r| tracer_common::event::decode(r).unwrap())
        .collect()
}

#[test]
fn version_1_captures_still_read() {
    let mut v = sample();
    v[MAGIC.len()..MAGIC.len() + 4].copy_from_slice(&1u32.to_le_bytes());
    assert_eq!(parse(&v).unwrap().events.len(), 2);
}

/// A capture holding `records` after the header.
fn with_records(records: Vec<Body>) -> Vec<u8> {
    let mut w = Writer::new(Vec::new(), header()).unwrap();
    for r in records {
        w.record(r).unwrap();
    }
    w.finish(Symbols::default(), Footer::default()).unwrap()
}

#[test]
fn bad_stack_references_are_errors() {
    let a: Vec<u64> = (0..4).map(|i| 0x40_0000 + 0x10 * i).collect();
    let pcs: Vec<u8> = a.iter().flat_map(|p| p.to_ne_bytes()).collect();
    let park = encode(&park_with(1, &a)).to_vec();
    let prefix = &park[..32];
    let reference = |id: u8, prefix: &[u8]| {
        let mut b = vec![id];
        b.extend_from_slice(prefix);
        Body::EventStack(b)
    };
    let def = |id: u64, pcs: Vec<u8>| Body::Stack(StackDef { id, pcs });
    // Well formed: reads back as the park.
    let ok = with_records(vec![def(5, pcs.clone()), reference(5, prefix)]);
    assert_eq!(parse(&ok).unwrap().events[0], park);
    let malformed = |recs: Vec<Body>, why: &str| {
        let err = parse(&with_records(recs)).unwrap_err();
        assert!(
            matches!(err, CaptureError::Malformed { .. }),
            "{why}: {err}"
        );
    };
    malformed(vec![reference(5, prefix)], "use before definition");
    malformed(
        vec![def(5, pcs[..16].to_vec()), reference(5, prefix)],
        "stack shorter than the record says",
    );
    malformed(
        vec![def(5, pcs[..13].to_vec()), reference(5, prefix)],
        "stack not whole PCs",
    );
    malformed(vec![def(5, vec![0; 8 * 49])], "stack over MAX_STACK");
    malformed(
        vec![def(5, pcs), reference(5, &prefix[..20])],
        "prefix cut short",
    );
}

/// Many stacks in turn and past the writer's bound (its map forgotten, stacks defined again
/// under new ids): every record still comes back as written, and `fresh` says when PCs are
/// new to it.
#[test]
fn stack_ids_survive_forgetting() {
    let stack = |i: u64| vec![0x40_0000, 0x41_0000 + i * 0x10, 0x42_0000 + (i % 7) * 0x10];
    let mut events = Vec::new();
    for round in 0..5u64 {
        for i in 0..40 {
            events.push(park_with(round * 100 + i, &stack(i)));
        }
    }
    let many = u64::try_from(MAX_STACKS).unwrap() + 10;
    for i in 0..many {
        events.push(park_with(10_000 + i, &stack(1000 + i)));
    }
    // The first of those was forgotten; the last is remembered.
    events.push(park_with(1, &stack(1000)));
    events.push(park_with(2, &stack(1000 + many - 1)));
    let mut w = Writer::new(Vec::new(), header()).unwrap();
    let fresh: Vec<bool> = events
        .iter()
        .map(|e| w.event_raw(Raw::new(encode(e)).unwrap()).unwrap())
        .collect();
    assert!(fresh[..40].iter().all(|&f| f) && fresh[40..200].iter().all(|&f| !f));
    assert_eq!(fresh[fresh.len() - 2..], [true, false]);
    let cap = parse(&w.finish(Symbols::default(), Footer::default()).unwrap()).unwrap();
    assert_eq!(decoded(&cap), events);
}
