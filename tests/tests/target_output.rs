//! The target is never harmed: its output is identical with and without tracing. Each
//! fixture is fed the same input lines untraced, under `gtrace record -- CMD` and under
//! `gtrace trace -- CMD`, and its stdout compared line by line (gtrace writes only to stderr
//! and the capture file with `record`; `trace` interleaves its own event lines, `<seconds>
//! tid <tid> …`, on the same stdout and they are filtered out). Oldest and newest Go.
//! Needs root and the `gtrace` binary (`cargo build -p tracer-user`, same profile).

use std::{path::PathBuf, time::Duration};

use gtrace_tests::{
    fixture::{self, Variant},
    go,
    process::Spawned,
};

const TIMEOUT: Duration = Duration::from_mins(3);

/// The `gtrace` binary of this build.
fn gtrace() -> PathBuf {
    gtrace_tests::gtrace::bin()
}

/// Feeds `script` (line, expected line prefix) to `p`; returns the target's stdout lines.
fn drive(mut p: Spawned, script: &[(&str, &str)], own: impl Fn(&str) -> bool) -> Vec<String> {
    p.wait_ready().expect("fixture ready");
    for (line, reply) in script {
        p.write_line(line).unwrap();
        p.wait_for(TIMEOUT, |l| l.starts_with(reply))
            .unwrap_or_else(|e| panic!("no reply to {line:?}: {e:#}"));
    }
    p.write_line("quit").unwrap();
    let st = p.wait_exit(TIMEOUT).expect("exits");
    assert!(st.success(), "{}", p.stderr());
    while p.next_line(Duration::from_millis(300)).is_ok() {}
    p.stdout_seen()
        .iter()
        .filter(|l| !own(l))
        .map(|l| normalize(l))
        .collect()
}

/// Goroutine ids are not reproducible from run to run even untraced (each P takes ids from
/// the scheduler in batches), so pingpong's `pp A B` keeps only its shape.
fn normalize(line: &str) -> String {
    let f: Vec<&str> = line.split_whitespace().collect();
    match f[..] {
        ["pp", a, b] if a.parse::<u64>().is_ok() && b.parse::<u64>().is_ok() => {
            "pp <goid> <goid>".to_owned()
        }
        _ => line.to_owned(),
    }
}

fn compare(name: &str, script: &[(&str, &str)]) {
    for v in ["1.19", "1.27"] {
        let tc = go::by_version(v).expect("Go toolchain (cargo xtask go-toolchains)");
        let bin = fixture::build(name, &tc, Variant::Default).expect("build fixture");
        let env = [("GOGC", "off")];
        let plain = drive(
            Spawned::spawn(&bin, std::iter::empty::<&str>(), &env).unwrap(),
            script,
            |_| false,
        );
        let file =
            std::env::temp_dir().join(format!("gtrace-output-{}-{name}.gtc", std::process::id()));
        let recorded = drive(
            Spawned::spawn(
                &gtrace(),
                [
                    "record",
                    "-o",
                    file.to_str().unwrap(),
                    "--",
                    bin.to_str().unwrap(),
                ],
                &env,
            )
            .unwrap(),
            script,
            |_| false,
        );
        let _ = std::fs::remove_file(&file);
        // `trace` lines: "  0.012345 tid 4242 create …" in text mode.
        let traced = drive(
            Spawned::spawn(
                &gtrace(),
                [
                    "trace",
                    "--kind",
                    "create,exit",
                    "--",
                    bin.to_str().unwrap(),
                ],
                &env,
            )
            .unwrap(),
            script,
            |l| {
                let mut w = l.split_whitespace();
                w.next().is_some_and(|t| t.parse::<f64>().is_ok()) && w.next() == Some("tid")
            },
        );
        assert_eq!(
            plain, recorded,
            "{name} go{v}: output differs under gtrace record"
        );
        assert_eq!(
            plain, traced,
            "{name} go{v}: output differs under gtrace trace"
        );
        assert!(plain.len() > script.len(), "{name}: {plain:?}");
    }
}

#[test]
fn churn_output_is_unchanged_by_tracing() {
    compare(
        "churn",
        &[
            ("200", "done 200"),
            ("calls 1000", "called 1000"),
            // Not `goroutines`: NumGoroutine still counts workers that called wg.Done but
            // have not exited yet, a race of the fixture itself, traced or not.
            ("count", "count "),
        ],
    );
}

#[test]
fn pingpong_output_is_unchanged_by_tracing() {
    compare(
        "pingpong",
        &[
            ("pp 500", "pp "),
            ("park", "parked"),
            ("yield 20", "yielded"),
        ],
    );
}
