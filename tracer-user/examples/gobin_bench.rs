//! Rough timings of the Go binary reader (not a test; numbers vary by machine):
//! `cargo run --release -p tracer-user --example gobin_bench -- BINARY [N_PCS [PCS_FILE]]`;
//! `cargo xtask bench gobin` runs it against a reference and writes docs/PERFORMANCE.md.
//! Prints the time to open the binary, to look up the first runtime function by name (which
//! indexes the `runtime.` package), to resolve the probe site of every probed runtime function,
//! and to symbolize N PCs one call at a time and in one batch (`symbolize_each`), then writes
//! the same PCs to `/tmp/gobin_bench_pcs.txt` for comparison with `gtrace symbolize` and
//! `go tool addr2line BINARY < that file`.

use std::{fmt::Write as _, time::Instant};

use tracer_user::gobin::{GoBinary, probesite};

/// CPU time of this thread so far (less disturbed by other load than wall time).
fn thread_cpu() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    std::time::Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: gobin_bench BINARY [N_PCS]");
    let n: usize = args.next().map_or(100_000, |s| s.parse().expect("N_PCS"));
    let pcs_out = args
        .next()
        .unwrap_or_else(|| "/tmp/gobin_bench_pcs.txt".to_owned());
    let cpu = thread_cpu();
    let t = Instant::now();
    let bin = GoBinary::open(&path).expect("open");
    let open = t.elapsed();
    let t = Instant::now();
    let _ = bin.func_by_name("runtime.gopark");
    let index = t.elapsed();
    let t = Instant::now();
    let sites = probesite::PROBED_FUNCTIONS
        .iter()
        .filter_map(|f| probesite::probe_site(&bin, f).ok())
        .count();
    let probe = t.elapsed();
    let open_cpu = thread_cpu().saturating_sub(cpu);
    let funcs = bin.functions().expect("functions");
    let pcs: Vec<u64> = (0..n)
        .map(|i| {
            let f = &funcs[(i * 7919) % funcs.len()];
            f.entry + (i as u64 * 104_729) % (f.end - f.entry).max(1)
        })
        .collect();
    let t = Instant::now();
    let mut frames = 0;
    for &pc in &pcs {
        frames += bin.symbolize(pc).map_or(0, |f| f.len());
    }
    let one_by_one = t.elapsed();
    let t = Instant::now();
    let mut batch = 0;
    bin.symbolize_each(&pcs, |_, r| batch += r.map_or(0, <[_]>::len));
    let sym = t.elapsed();
    assert_eq!(batch, frames, "symbolize_each and symbolize disagree");
    let text = pcs.iter().fold(String::new(), |mut s, pc| {
        let _ = writeln!(s, "{pc:#x}");
        s
    });
    std::fs::write(&pcs_out, text).expect("write pcs");
    println!(
        "{path}: {} functions; open {open:?}; first name lookup {index:?}; {sites} probe sites {probe:?}; \
         symbolize {n} pcs ({frames} frames) one by one {one_by_one:?}, \
         batched {sym:?} = {:.2} µs/pc",
        funcs.len(),
        sym.as_secs_f64() * 1e6 / n as f64
    );
    // Machine-readable totals for `cargo xtask bench gobin`.
    println!(
        "open_and_sites_ns={} open_and_sites_cpu_ns={} symbolize_ns={}",
        (open + index + probe).as_nanos(),
        open_cpu.as_nanos(),
        sym.as_nanos()
    );
}
