//! `cargo xtask bench gobin`: the Go binary layer against its goals, written into
//! docs/PERFORMANCE.md.
//!
//! - Open + resolve every probe site, on a generated ≥ 100 MB stripped Go binary
//!   ([`crate::bigbin`]) and on the toolchain's `compile` (the `gobin_bench` example, in
//!   process: this is what `gtrace` does before attaching).
//! - Symbolize N PCs: `gtrace symbolize` against the toolchain's addr2line on the same PCs of
//!   the stripped `compile`, both as whole processes (start, open, symbolize, print: what a
//!   user runs), reading the PCs on stdin and writing into a pipe we drain, interleaved run by
//!   run. The addr2line binary is run directly (`go tool -n addr2line` gives its path), so the
//!   `go` command's own start (~0.2 s) is not charged to it; `go tool addr2line` as typed is
//!   measured too, for reference. Each output is checked against the other.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use gtrace_tests::go;
use tracer_user::gobin::GoBinary;

use crate::bench::{median, root, write_section};

/// Runs the `gobin_bench` example once; returns (open + all probe sites, its summary line).
fn open_and_sites(
    example: &Path,
    bin: &Path,
    pcs_file: &Path,
) -> anyhow::Result<(Duration, String)> {
    let out = Command::new(example)
        .arg(bin)
        .arg("100000")
        .arg(pcs_file)
        .output()?;
    if !out.status.success() {
        bail!(
            "gobin_bench failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let ns = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("open_and_sites_ns="))
        .with_context(|| format!("no open_and_sites_ns in {text}"))?;
    let summary = text.lines().next().unwrap_or_default().to_owned();
    Ok((Duration::from_nanos(ns.parse()?), summary))
}

/// Runs `cmd` with `input` on stdin; returns its wall time and stdout.
fn timed(cmd: &mut Command, input: &[u8]) -> anyhow::Result<(Duration, String)> {
    let t = Instant::now();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("running {cmd:?}"))?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output()?;
    let elapsed = t.elapsed();
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("writer thread panicked"))??;
    if !out.status.success() {
        bail!("{cmd:?} failed ({})", out.status);
    }
    Ok((elapsed, String::from_utf8(out.stdout)?))
}

/// How the two outputs compare, PC by PC.
#[derive(Debug, Default)]
struct Agreement {
    /// addr2line's function is gtrace's outermost frame and its `file:line` gtrace's
    /// innermost (addr2line does not expand inlining).
    same: usize,
    /// PCs of functions without a pc-line table (linker markers such as `go:textfipsstart`):
    /// the runtime (and gtrace) say `?:0`; Go's addr2line (`debug/gosym`) does not check for
    /// the absent table (offset 0) and decodes the pc-value data from its padding byte, so it
    /// prints a made-up `file:line`. Same function on both sides.
    addr2line_quirk: Vec<String>,
    /// Anything else, described.
    differ: Vec<String>,
}

fn agreement(
    bin: &GoBinary,
    pcs: &[String],
    gtrace: &str,
    addr2line: &str,
) -> anyhow::Result<Agreement> {
    let mut frames: std::collections::HashMap<&str, Vec<(&str, &str)>> =
        std::collections::HashMap::new();
    for line in gtrace.lines() {
        let mut f = line.split('\t');
        let (Some(pc), Some(func), Some(pos)) = (f.next(), f.next(), f.next()) else {
            bail!("unexpected gtrace output line {line:?}");
        };
        frames.entry(pc).or_default().push((func, pos));
    }
    let lines: Vec<&str> = addr2line.lines().collect();
    if lines.len() != 2 * pcs.len() {
        bail!(
            "addr2line answered {} lines for {} PCs",
            lines.len(),
            pcs.len()
        );
    }
    let mut a = Agreement::default();
    for (pc, want) in pcs.iter().zip(lines.chunks(2)) {
        let (inner, outer) = match frames.get(pc.as_str()).map(Vec::as_slice) {
            Some([inner, .., outer]) => (*inner, *outer),
            Some([only]) => (*only, *only),
            _ => (("-", "-"), ("-", "-")),
        };
        // addr2line prints `:-1` where the tables have no position; gtrace `?:0`.
        let pos = if want[1] == ":-1" { "?:0" } else { want[1] };
        if outer.0 == want[0] && inner.1 == pos {
            a.same += 1;
            continue;
        }
        let what = format!(
            "{pc}: addr2line {} {} / gtrace {} {}",
            want[0], want[1], outer.0, inner.1
        );
        let no_table = u64::from_str_radix(pc.trim_start_matches("0x"), 16)
            .ok()
            .and_then(|pc| bin.has_line_table(pc).ok().flatten())
            == Some(false);
        if no_table && outer.0 == want[0] && inner.1 == "?:0" {
            a.addr2line_quirk.push(what);
        } else {
            a.differ.push(what);
        }
    }
    Ok(a)
}

/// The bench output's explanation of the PCs where addr2line is known to be wrong.
fn quirk_note(quirk: &[String]) -> String {
    if quirk.is_empty() {
        return String::new();
    }
    format!(
        "The other {} lie in functions without a pc-line table (the linker's \
         `go:textfipsstart` marker and the padding after it), where the runtime's `pcvalue` \
         answers -1 (`runtime.FuncForPC(pc).FileLine` gives `?:0`, as gtrace does) but \
         addr2line's `debug/gosym` decodes the pc-value data from offset 0, a padding byte, and \
         prints a made-up position; checked against the runtime by the test \
         `gobin_symbols::functions_without_line_tables_match_the_runtime`:\n\n{}",
        quirk.len(),
        quirk
            .iter()
            .map(|q| format!("- `{q}`"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

/// Path of the toolchain's addr2line binary (built into the Go cache if needed).
fn addr2line_tool(tc: &go::Toolchain) -> anyhow::Result<PathBuf> {
    let out = tc.command().args(["tool", "-n", "addr2line"]).output()?;
    if !out.status.success() {
        bail!("go tool -n addr2line failed");
    }
    Ok(PathBuf::from(String::from_utf8(out.stdout)?.trim()))
}

pub(crate) fn run(runs: usize, n_pcs: usize) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let st = Command::new(&cargo)
        .args(["build", "--release", "-p", "tracer-user", "--bin", "gtrace"])
        .args(["--example", "gobin_bench"])
        .status()?;
    if !st.success() {
        bail!("building gtrace and the benchmark failed");
    }
    let example = root().join("target/release/examples/gobin_bench");
    let gtrace = root().join("target/release/gtrace");
    let tc = go::newest()?;
    let a2l = addr2line_tool(&tc)?;
    let big = crate::bigbin::stripped(&tc)?;
    let tmp = std::env::temp_dir().join("gtrace-bench-gobin");
    std::fs::create_dir_all(&tmp)?;
    let compile = tmp.join("compile.stripped");
    let st = Command::new("strip")
        .arg("-o")
        .arg(&compile)
        .arg(tc.goroot().join("pkg/tool/linux_amd64/compile"))
        .status()
        .context("running strip (binutils)")?;
    if !st.success() {
        bail!("strip failed");
    }
    let mb = |p: &Path| -> anyhow::Result<f64> { Ok(std::fs::metadata(p)?.len() as f64 / 1e6) };
    let (big_mb, compile_mb) = (mb(&big)?, mb(&compile)?);
    let pcs_file = tmp.join("pcs.txt");
    let big_pcs = tmp.join("big-pcs.txt");

    let (mut open_big, mut open_compile) = (Vec::new(), Vec::new());
    let (mut ours, mut theirs, mut go_tool) = (Vec::new(), Vec::new(), Vec::new());
    let (mut big_summary, mut compile_summary) = (String::new(), String::new());
    let mut agree = Agreement::default();
    let bin = GoBinary::open(&compile)?;
    for _ in 0..runs {
        let (d, s) = open_and_sites(&example, &big, &big_pcs)?;
        open_big.push(d);
        big_summary = s;
        let (d, s) = open_and_sites(&example, &compile, &pcs_file)?;
        open_compile.push(d);
        compile_summary = s;

        let input = std::fs::read(&pcs_file)?;
        let pcs: Vec<String> = String::from_utf8(input.clone())?
            .lines()
            .take(n_pcs)
            .map(str::to_owned)
            .collect();
        let input = pcs.iter().fold(String::new(), |s, pc| s + pc + "\n");
        let (d, g_out) = timed(
            Command::new(&gtrace)
                .arg("symbolize")
                .arg("-b")
                .arg(&compile),
            input.as_bytes(),
        )?;
        ours.push(d);
        let (d, a_out) = timed(Command::new(&a2l).arg(&compile), input.as_bytes())?;
        theirs.push(d);
        let (d, _) = timed(
            tc.command().args(["tool", "addr2line"]).arg(&compile),
            input.as_bytes(),
        )?;
        go_tool.push(d);
        let a = agreement(&bin, &pcs, &g_out, &a_out)?;
        if !a.differ.is_empty() {
            bail!(
                "gtrace and addr2line differ on {} of {} PCs:\n{}",
                a.differ.len(),
                pcs.len(),
                a.differ[..a.differ.len().min(20)].join("\n")
            );
        }
        agree = a;
    }
    let (open_big, open_compile) = (median(open_big), median(open_compile));
    let (ours, theirs, go_tool) = (median(ours), median(theirs), median(go_tool));
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let table = format!(
        "Measured by `cargo xtask bench gobin` ({runs} runs, medians), Go {ver}.\n\n\
         | what | gtrace | reference | ratio |\n|---|---|---|---|\n\
         | open + resolve all probe sites, generated stripped binary ({big_mb:.1} MB) | {ob:.1} ms | goal ≤ 20 ms | {rb:.2} of the goal |\n\
         | open + resolve all probe sites, stripped `compile` ({compile_mb:.1} MB) | {oc:.1} ms | | |\n\
         | symbolize {n_pcs} PCs of the stripped `compile` (whole process; inlined frames expanded) | {ours:.1} ms | addr2line binary: {theirs:.1} ms | {ratio:.1}× faster |\n\
         | the same, against `go tool addr2line` as typed | | {go_tool:.1} ms | {ratio_go:.1}× faster |\n\n\
         The outputs agree on {same} of {n_pcs} PCs (addr2line's function = gtrace's outermost \
         frame, its `file:line` = gtrace's innermost). {quirk}\n\n\
         In-process detail (`gobin_bench` example):\n\n- {big_summary}\n- {compile_summary}",
        ver = tc.version,
        same = agree.same,
        quirk = quirk_note(&agree.addr2line_quirk),
        ob = ms(open_big),
        rb = ms(open_big) / 20.0,
        oc = ms(open_compile),
        ours = ms(ours),
        theirs = ms(theirs),
        go_tool = ms(go_tool),
        ratio = theirs.as_secs_f64() / ours.as_secs_f64(),
        ratio_go = go_tool.as_secs_f64() / ours.as_secs_f64(),
    );
    println!("{table}");
    write_section("gobin", &table)
}
