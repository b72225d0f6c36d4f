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

/// Runs the `gobin_bench` example once; returns open + all probe sites (wall, CPU), the
/// batched in-process symbolization of its PCs (one thread) and its summary line.
fn open_and_sites(
    example: &Path,
    bin: &Path,
    pcs_file: &Path,
) -> anyhow::Result<((Duration, Duration), Duration, String)> {
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
    let cpu_ns = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("open_and_sites_cpu_ns="))
        .with_context(|| format!("no open_and_sites_cpu_ns in {text}"))?;
    let sym_ns = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("symbolize_ns="))
        .with_context(|| format!("no symbolize_ns in {text}"))?;
    let summary = text.lines().next().unwrap_or_default().to_owned();
    Ok((
        (
            Duration::from_nanos(ns.parse()?),
            Duration::from_nanos(cpu_ns.parse()?),
        ),
        Duration::from_nanos(sym_ns.parse()?),
        summary,
    ))
}

/// User + system CPU time of the children waited for so far.
fn children_cpu() -> Duration {
    // SAFETY: all-zero is a valid `rusage` (plain integers).
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &raw mut ru) };
    let tv = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Runs `cmd` with `input` on stdin; returns its (wall, CPU) time and stdout. The CPU time
/// is its user + system time (all its threads and children), which other load on the machine
/// disturbs far less than the wall time.
fn timed(cmd: &mut Command, input: &[u8]) -> anyhow::Result<((Duration, Duration), String)> {
    let cpu = children_cpu();
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
    let cpu = children_cpu().saturating_sub(cpu);
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("writer thread panicked"))??;
    if !out.status.success() {
        bail!("{cmd:?} failed ({})", out.status);
    }
    Ok(((elapsed, cpu), String::from_utf8(out.stdout)?))
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

/// [`agreement`], failing on any difference but addr2line's known quirk.
fn checked_agreement(
    bin: &GoBinary,
    pcs: &[String],
    gtrace: &str,
    addr2line: &str,
) -> anyhow::Result<Agreement> {
    let a = agreement(bin, pcs, gtrace, addr2line)?;
    if !a.differ.is_empty() {
        bail!(
            "gtrace and addr2line differ on {} of {} PCs:\n{}",
            a.differ.len(),
            pcs.len(),
            a.differ[..a.differ.len().min(20)].join("\n")
        );
    }
    Ok(a)
}

/// Medians of the wall and of the CPU times of `runs`, each taken separately.
fn med(runs: Vec<(Duration, Duration)>) -> (Duration, Duration) {
    let (wall, cpu): (Vec<_>, Vec<_>) = runs.into_iter().unzip();
    (median(wall), median(cpu))
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
    let (mut core, mut empty, mut output_only) = (Vec::new(), Vec::new(), Vec::new());
    let out_file = tmp.join("gtrace-out.txt");
    let bin = GoBinary::open(&compile)?;
    for _ in 0..runs {
        let (d, _, s) = open_and_sites(&example, &big, &big_pcs)?;
        open_big.push(d);
        big_summary = s;
        let (d, sym, s) = open_and_sites(&example, &compile, &pcs_file)?;
        open_compile.push(d);
        core.push(sym);
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
        // The floor's other parts: a process in a pipeline that does nothing, and one that
        // only pushes gtrace's finished output through the pipe.
        std::fs::write(&out_file, &g_out)?;
        empty.push(timed(&mut Command::new("true"), b"")?.0.0);
        output_only.push(timed(Command::new("cat").arg(&out_file), b"")?.0.0);
        let (d, a_out) = timed(Command::new(&a2l).arg(&compile), input.as_bytes())?;
        theirs.push(d);
        let (d, _) = timed(
            tc.command().args(["tool", "addr2line"]).arg(&compile),
            input.as_bytes(),
        )?;
        go_tool.push(d);
        agree = checked_agreement(&bin, &pcs, &g_out, &a_out)?;
    }
    let curve = by_count(runs, &example, &compile, &gtrace, &a2l, &bin, &tmp)?;
    let (open_big, open_compile) = (med(open_big), med(open_compile));
    let (ours, theirs, go_tool) = (med(ours), med(theirs), med(go_tool));
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let (core, empty, output_only) = (ms(median(core)), ms(median(empty)), ms(median(output_only)));
    let floor = output_only + core / cores as f64;
    let floor_note = format!(
        "The floor for {n_pcs} PCs on this machine ({cores} cores), measured in the same rounds: \
         10× would mean {allowed:.1} ms. A process in a pipeline that does nothing (`true`) \
         takes {empty:.1} ms; one that only pushes gtrace's finished output ({out_mb:.1} MB) \
         through the pipe (`cat`) {output_only:.1} ms; the symbolization proper (tables, \
         inline expansion, names; `gobin_bench` batched, in process, one thread) {core:.1} ms, \
         {split:.1} ms if split perfectly over the cores. Together {floor:.1} ms before reading \
         and parsing the input and formatting the text: {verdict}.",
        allowed = ms(theirs.0) / 10.0,
        out_mb = std::fs::metadata(&out_file).map_or(0.0, |m| m.len() as f64 / 1e6),
        split = core / cores as f64,
        verdict = if floor > ms(theirs.0) / 10.0 {
            "above what 10× allows"
        } else {
            "within what 10× allows"
        },
    );
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    let table = format!(
        "Measured by `cargo xtask bench gobin` ({runs} runs, medians), Go {ver}. Wall time and \
         CPU time (user + system, every thread; other load on the machine disturbs it far less).\n\n\
         | what | gtrace wall / CPU | reference wall / CPU | ratio wall / CPU |\n|---|---|---|---|\n\
         | open + resolve all probe sites, generated stripped binary ({big_mb:.1} MB) | {obw:.1} / {obc:.1} ms | goal ≤ 20 ms | {rbw:.2} / {rbc:.2} of the goal |\n\
         | open + resolve all probe sites, stripped `compile` ({compile_mb:.1} MB) | {ocw:.1} / {occ:.1} ms | | |\n\
         | symbolize {n_pcs} PCs of the stripped `compile` (whole process; inlined frames expanded) | {ow:.1} / {oc:.1} ms | addr2line binary: {tw:.1} / {tc_:.1} ms | {rw:.1}× / {rc:.1}× faster |\n\
         | the same, against `go tool addr2line` as typed | | {gw:.1} / {gc:.1} ms | {rgw:.1}× / {rgc:.1}× faster |\n\n\
         The outputs agree on {same} of {n_pcs} PCs (addr2line's function = gtrace's outermost \
         frame, its `file:line` = gtrace's innermost). {quirk}\n\n\
         {floor_note}\n\n\
         By number of PCs (spread the same way, about N / 20 000 per function; whole \
         processes, interleaved, outputs checked the same way):\n\n{curve}\n\n\
         In-process detail (`gobin_bench` example):\n\n- {big_summary}\n- {compile_summary}",
        ver = tc.version,
        same = agree.same,
        quirk = quirk_note(&agree.addr2line_quirk),
        obw = ms(open_big.0),
        obc = ms(open_big.1),
        rbw = ms(open_big.0) / 20.0,
        rbc = ms(open_big.1) / 20.0,
        ocw = ms(open_compile.0),
        occ = ms(open_compile.1),
        ow = ms(ours.0),
        oc = ms(ours.1),
        tw = ms(theirs.0),
        tc_ = ms(theirs.1),
        gw = ms(go_tool.0),
        gc = ms(go_tool.1),
        rw = ratio(theirs.0, ours.0),
        rc = ratio(theirs.1, ours.1),
        rgw = ratio(go_tool.0, ours.0),
        rgc = ratio(go_tool.1, ours.1),
    );
    println!("{table}");
    write_section("gobin", &table)
}

/// The PC counts [`by_count`] measures.
const COUNTS: [usize; 4] = [1_000, 10_000, 100_000, 1_000_000];

/// `gtrace symbolize` against the addr2line binary for each of [`COUNTS`]: a Markdown table
/// of medians and ratios.
fn by_count(
    runs: usize,
    example: &Path,
    compile: &Path,
    gtrace: &Path,
    a2l: &Path,
    bin: &GoBinary,
    tmp: &Path,
) -> anyhow::Result<String> {
    let mut rows = vec![
        "| PCs | gtrace wall / CPU | addr2line binary wall / CPU | ratio wall / CPU |".to_owned(),
        "|---|---|---|---|".to_owned(),
    ];
    for n in COUNTS {
        let file = tmp.join(format!("pcs-{n}.txt"));
        let out = Command::new(example)
            .arg(compile)
            .arg(n.to_string())
            .arg(&file)
            .output()?;
        if !out.status.success() {
            bail!(
                "gobin_bench {n} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let input = std::fs::read(&file)?;
        let pcs: Vec<String> = String::from_utf8(input.clone())?
            .lines()
            .map(str::to_owned)
            .collect();
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let (d, g_out) = timed(
                Command::new(gtrace).arg("symbolize").arg("-b").arg(compile),
                &input,
            )?;
            ours.push(d);
            let (d, a_out) = timed(Command::new(a2l).arg(compile), &input)?;
            theirs.push(d);
            checked_agreement(bin, &pcs, &g_out, &a_out)?;
        }
        let ms =
            |(wall, cpu): (Duration, Duration)| (wall.as_secs_f64() * 1e3, cpu.as_secs_f64() * 1e3);
        let ((ow, oc), (tw, tc)) = (ms(med(ours)), ms(med(theirs)));
        rows.push(format!(
            "| {n} | {ow:.1} / {oc:.1} ms | {tw:.1} / {tc:.1} ms | {:.1}× / {:.1}× |",
            tw / ow,
            tc / oc
        ));
    }
    Ok(rows.join("\n"))
}
