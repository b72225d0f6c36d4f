//! `gtrace symbolize`: program counters → frames (inlined calls expanded, innermost first),
//! like `go tool addr2line` but with inlining and for stripped binaries.

use std::{
    io::{Read as _, Write},
    os::fd::AsFd as _,
    path::PathBuf,
    sync::atomic::{AtomicUsize, Ordering},
};

use anyhow::Context as _;

use crate::gobin::inspect::write_frames;

/// Arguments of `gtrace symbolize`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "EXAMPLES:\n  gtrace symbolize ./server 0x4a1b2c 0x4a1b40\n  echo 0x4a1b2c | gtrace symbolize ./server\n  gtrace symbolize --pid 1234 --return-address 0x55d0c2a1b2c"
)]
pub struct SymbolizeArgs {
    /// The Go binary.
    #[arg(long, short, conflicts_with = "pid")]
    pub binary: Option<PathBuf>,
    /// The running process whose executable to use; addresses are then runtime addresses
    /// (a PIE's load bias is read from /proc/PID/maps).
    #[arg(long, short)]
    pub pid: Option<u32>,
    /// Treat addresses as return addresses (symbolize address-1, as Go tracebacks do).
    #[arg(long)]
    pub return_address: bool,
    /// Load bias to subtract from the addresses (hex), for runtime addresses of a PIE.
    #[arg(long, value_parser = parse_hex)]
    pub bias: Option<u64>,
    /// Addresses (hex); read from stdin, one per line, when none are given.
    pub pcs: Vec<String>,
}

fn parse_hex(s: &str) -> Result<u64, String> {
    let t = s.trim();
    u64::from_str_radix(t.strip_prefix("0x").unwrap_or(t), 16)
        .map_err(|e| format!("`{s}` is not a hex address: {e}"))
}

/// The addresses of `input`, one per line (blank lines skipped). Plain hex lines are parsed
/// in place; anything else goes through [`parse_hex`], which also words the error.
fn parse_addresses(input: &[u8]) -> anyhow::Result<Vec<u64>> {
    // About 8 bytes a line at least.
    let mut pcs = Vec::with_capacity(input.len() / 8);
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', input).chain(std::iter::once(input.len())) {
        let line = &input[start..end];
        start = end + 1;
        if let Some(pc) = parse_hex_fast(line) {
            pcs.push(pc);
            continue;
        }
        let t = line.trim_ascii();
        if t.is_empty() {
            continue;
        }
        let pc = if let Some(pc) = parse_hex_fast(t) {
            pc
        } else {
            let line = String::from_utf8_lossy(line);
            if line.trim().is_empty() {
                continue;
            }
            parse_hex(&line).map_err(anyhow::Error::msg)?
        };
        pcs.push(pc);
    }
    Ok(pcs)
}

/// Value of each byte as a hex digit; [`NOT_HEX`] for any other byte.
const HEX: [u8; 256] = {
    let mut t = [NOT_HEX; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};
const NOT_HEX: u8 = 0xff;

/// Up to 16 hex digits, optionally after `0x`; `None` for anything else.
fn parse_hex_fast(t: &[u8]) -> Option<u64> {
    let digits = t.strip_prefix(b"0x").unwrap_or(t);
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    let mut v = 0u64;
    for &b in digits {
        let d = HEX[usize::from(b)];
        if d == NOT_HEX {
            return None;
        }
        v = v << 4 | u64::from(d);
    }
    Some(v)
}

/// Runs `gtrace symbolize`. All addresses are read first (parsed on several threads) and
/// split into address ranges ([`range_bounds`]); one thread per core takes ranges in turn,
/// picks its addresses out, sorts them and symbolizes them
/// ([`crate::gobin::GoBinary::symbolize_sorted`], in address order) onto its own text (the
/// names it copies are then read from the binary with locality); the pieces are then written
/// in input order ([`write_output`]).
pub fn run(args: &SymbolizeArgs) -> anyhow::Result<()> {
    let bin = super::inspect::open(args.binary.as_ref(), args.pid)?;
    let bias = match (args.bias, args.pid) {
        (Some(b), _) => b,
        (None, Some(pid)) if bin.image().is_pie() => load_bias(pid, &bin)?,
        _ => 0,
    };
    let mut input = Vec::new();
    if args.pcs.is_empty() {
        let stdin = std::io::stdin();
        // Room for all of a file at once (no regrowing copies); a pipe's size is unknown.
        let size = stdin
            .as_fd()
            .try_clone_to_owned()
            .ok()
            .and_then(|fd| std::fs::File::from(fd).metadata().ok())
            .map_or(0, |m| m.len());
        input.reserve(usize::try_from(size).unwrap_or(0).max(1 << 20) + 1);
        stdin
            .lock()
            .read_to_end(&mut input)
            .context("reading addresses from stdin")?;
    } else {
        input = args.pcs.join("\n").into_bytes();
    }
    // The addresses as looked up; the callback gets each back and undoes the shift.
    let unbias = bias.wrapping_add(u64::from(args.return_address));
    // Parsed in parts, one per thread (about 8 bytes a line at least).
    let lookups = parse_in_parts(&input, thread_count(input.len() / 8), unbias)?;
    let n: usize = lookups.iter().map(Vec::len).sum();
    let spans: Vec<Span> = std::iter::repeat_with(Span::default).take(n).collect();
    let threads = thread_count(n);
    // More ranges than threads, taken in turn: the work per address varies (inlining depth,
    // table lengths), so equal counts would leave one thread idle while another finishes.
    let bounds = range_bounds(&lookups, threads * RANGES_PER_THREAD);
    let next = AtomicUsize::new(0);
    let per_thread = n / threads;
    let texts: Vec<Vec<u8>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (bin, spans, bounds, next, lookups) = (&bin, &spans, &bounds, &next, &lookups);
                s.spawn(move || {
                    let mut text: Vec<u8> = Vec::with_capacity(per_thread * 128);
                    advise_huge_pages(&text);
                    let mut part = Vec::new();
                    loop {
                        let r = next.fetch_add(1, Ordering::Relaxed);
                        if r > bounds.len() {
                            break text;
                        }
                        let lo = if r == 0 { 0 } else { bounds[r - 1] };
                        in_range(lookups, lo, bounds.get(r).copied(), &mut part);
                        // Stable, and `part` is in input order: equal PCs stay in it.
                        radsort::sort_by_key(&mut part, |&(pc, _)| pc);
                        symbolize_range(bin, &part, unbias, (t, &mut text), spans);
                    }
                })
            })
            .collect();
        workers.into_iter().map(joined).collect()
    });
    write_output(&mut std::io::stdout(), &texts, &spans)?;
    // The process exits next and the kernel takes the memory back in one go; freeing these
    // (tens of megabytes, the mapped binary) first only delays it (~2.7 ms of ~30 measured).
    std::mem::forget((texts, spans, lookups, input, bin));
    Ok(())
}

/// A scoped thread's result, its panic passed on.
fn joined<T>(w: std::thread::ScopedJoinHandle<'_, T>) -> T {
    w.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// How many threads share `n` addresses: one per core (at most 8) and at most one per 4 096
/// addresses (a thread's start costs more than it saves on fewer), so one below 8 192.
fn thread_count(n: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    cores.min(8).min(n / 4096).max(1)
}

/// Address ranges per thread (see [`run`]).
const RANGES_PER_THREAD: usize = 8;

/// The addresses of `input` (see [`parse_addresses`]) less `unbias`, parsed in `k` parts
/// (split at line ends) on as many threads; the first error in input order wins.
fn parse_in_parts(input: &[u8], k: usize, unbias: u64) -> anyhow::Result<Vec<Vec<u64>>> {
    let mut parts = Vec::with_capacity(k);
    let mut rest = input;
    for left in (1..=k).rev() {
        let cut = rest.len() / left;
        let end = match rest[cut..].iter().position(|&b| b == b'\n') {
            Some(nl) if left > 1 => cut + nl + 1,
            _ => rest.len(),
        };
        parts.push(&rest[..end]);
        rest = &rest[end..];
    }
    std::thread::scope(|s| {
        let parsers: Vec<_> = parts
            .into_iter()
            .map(|part| {
                s.spawn(move || {
                    let mut pcs = parse_addresses(part)?;
                    for pc in &mut pcs {
                        *pc = pc.wrapping_sub(unbias);
                    }
                    Ok(pcs)
                })
            })
            .collect();
        parsers.into_iter().map(joined).collect()
    })
}

/// Bounds splitting the addresses of `parts` into `k` ranges of about equal counts (from a
/// sorted sample): range `r` holds `bounds[r - 1] <= pc < bounds[r]` (no lower bound for the
/// first, no upper one for the last). Equal PCs share a range.
fn range_bounds(parts: &[Vec<u64>], k: usize) -> Vec<u64> {
    let n: usize = parts.iter().map(Vec::len).sum();
    if k <= 1 || n == 0 {
        return Vec::new();
    }
    let step = (n / 1024).max(1);
    let mut sample: Vec<u64> = parts.iter().flatten().step_by(step).copied().collect();
    sample.sort_unstable();
    let mut bounds: Vec<u64> = (1..k).map(|c| sample[c * sample.len() / k]).collect();
    bounds.dedup();
    bounds
}

/// Replaces `out` with the `(pc, index)` pairs of `parts` (indices counted across the parts)
/// whose PC is in `lo..hi` (`hi` `None`: no upper bound), unsorted.
fn in_range(parts: &[Vec<u64>], lo: u64, hi: Option<u64>, out: &mut Vec<(u64, usize)>) {
    out.clear();
    let mut base = 0;
    for part in parts {
        for (j, &pc) in part.iter().enumerate() {
            if pc >= lo && hi.is_none_or(|h| pc < h) {
                out.push((pc, base + j));
            }
        }
        base += part.len();
    }
}

/// Where one address's lines are: thread `c`'s text, bytes `start..end`, stored as
/// `c << CHUNK_SHIFT | start` and `end`. Atomics (relaxed: the threads' joins order them)
/// let each thread fill the entries of its own addresses in place.
#[derive(Default)]
struct Span {
    start: AtomicUsize,
    end: AtomicUsize,
}

/// Where a span's thread number starts: texts are far smaller than 2^48 bytes.
const CHUNK_SHIFT: u32 = 48;

/// Symbolizes the address-ordered `part` onto the text of thread `t` (the names it copies are
/// then read from the binary with locality), recording each address's piece in `spans`.
fn symbolize_range(
    bin: &crate::gobin::GoBinary,
    part: &[(u64, usize)],
    unbias: u64,
    (t, text): (usize, &mut Vec<u8>),
    spans: &[Span],
) {
    bin.symbolize_sorted(part, |i, lookup, frames| {
        let start = text.len();
        // The address as given, without reading the input again (in input order: a cache
        // miss per address).
        let pc = lookup.wrapping_add(unbias);
        match frames {
            Ok(frames) => write_frames(text, pc, frames),
            Err(e) => {
                let _ = writeln!(text, "{pc:#x}\t?\t({e})");
            }
        }
        spans[i]
            .start
            .store(t << CHUNK_SHIFT | start, Ordering::Relaxed);
        spans[i].end.store(text.len(), Ordering::Relaxed);
    });
}

/// Writes every span's bytes (of its thread's text), in order. The spans are cut into chunks
/// of [`CHUNK`]; one thread per text gathers every so-many'th chunk into a buffer of its own,
/// reused, and the threads take turns writing them (gathering the next while one writes).
/// The first write error stops them all and is returned.
fn write_output(
    out: &mut (impl Write + Send),
    texts: &[Vec<u8>],
    spans: &[Span],
) -> std::io::Result<()> {
    let threads = texts.len().max(1);
    let turn = std::sync::Mutex::new(Turn {
        next: 0,
        out,
        failed: None,
    });
    let ready = std::sync::Condvar::new();
    let write_chunks = |t: usize| {
        // Should this thread panic, the others must not wait for its turn forever.
        let _unblock = Unblock(&turn, &ready);
        let mut buf = Vec::with_capacity(CHUNK * 160);
        for (c, chunk) in spans.chunks(CHUNK).enumerate().skip(t).step_by(threads) {
            buf.clear();
            for span in chunk {
                buf.extend_from_slice(piece(texts, span));
            }
            let mut turn = turn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            while turn.next != c && turn.failed.is_none() {
                turn = ready
                    .wait(turn)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            if turn.failed.is_some() {
                return;
            }
            if let Err(e) = turn.out.write_all(&buf) {
                turn.failed = Some(e);
            }
            turn.next += 1;
            ready.notify_all();
        }
    };
    std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads)
            .map(|t| s.spawn(move || write_chunks(t)))
            .collect();
        write_chunks(0);
        helpers.into_iter().for_each(joined);
    });
    let turn = turn
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match turn.failed {
        Some(e) => Err(e),
        None => turn.out.flush(),
    }
}

/// On unwinding, marks the output failed and wakes the other writers of [`write_output`].
struct Unblock<'a, 'w, W>(&'a std::sync::Mutex<Turn<'w, W>>, &'a std::sync::Condvar);

impl<W> Drop for Unblock<'_, '_, W> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut turn = self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            turn.failed
                .get_or_insert_with(|| std::io::Error::other("an output thread panicked"));
            self.1.notify_all();
        }
    }
}

/// Spans per chunk of output (about 250 KiB of text).
const CHUNK: usize = 2048;

/// Whose turn it is to write, in [`write_output`].
struct Turn<'w, W> {
    /// The chunk to be written next.
    next: usize,
    out: &'w mut W,
    /// The first write error; the other writers then stop.
    failed: Option<std::io::Error>,
}

/// The bytes of `span`.
fn piece<'t>(texts: &'t [Vec<u8>], span: &Span) -> &'t [u8] {
    let start = span.start.load(Ordering::Relaxed);
    let end = span.end.load(Ordering::Relaxed);
    &texts[start >> CHUNK_SHIFT][start & ((1 << CHUNK_SHIFT) - 1)..end]
}

/// Asks for transparent huge pages under `buf`'s allocation (where the system leaves it to
/// `madvise`): a buffer of many megabytes written once otherwise costs a page fault per 4 KiB.
fn advise_huge_pages<T>(buf: &Vec<T>) {
    const PAGE: usize = 4096;
    let start = (buf.as_ptr() as usize).next_multiple_of(PAGE);
    let end = (buf.as_ptr() as usize + buf.capacity() * size_of::<T>()) / PAGE * PAGE;
    if end > start {
        // SAFETY: the range lies inside `buf`'s allocation, which we own; MADV_HUGEPAGE only
        // changes how the kernel backs it, never its contents. Failure is harmless.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

/// Runtime minus link-time address of a running PIE: where its file offset 0 is mapped.
fn load_bias(pid: u32, bin: &crate::gobin::GoBinary) -> anyhow::Result<u64> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .with_context(|| format!("cannot read /proc/{pid}/maps"))?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))?;
    let start = maps
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (range, off, path) = (f.first()?, f.get(2)?, f.get(5..)?.join(" "));
            let path = path.trim_end_matches(" (deleted)");
            (std::path::Path::new(path) == exe && u64::from_str_radix(off, 16).ok()? == 0)
                .then(|| u64::from_str_radix(range.split('-').next()?, 16).ok())?
        })
        .context("the executable's first mapping is not in /proc/PID/maps")?;
    let seg = bin
        .image()
        .segments()
        .iter()
        .min_by_key(|s| s.offset)
        .context("no loadable segment")?;
    Ok(start.wrapping_sub(seg.vaddr - seg.offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;

    /// Pieces come out in span order, whole, each from its thread's text, even through a writer that takes a few bytes at
    /// a time (as a pipe may).
    #[test]
    fn pieces_are_written_in_order_and_whole() {
        struct Trickle(Vec<u8>);
        impl Write for Trickle {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                let n = b.len().min(3);
                self.0.extend_from_slice(&b[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let texts = [b"aaaa\nbb\ncccccc\n".to_vec(), b"xyz\n".to_vec()];
        let pieces: Vec<(usize, usize, usize)> = [(0, 8, 15), (1, 0, 4), (0, 0, 5), (0, 5, 8)]
            .into_iter()
            .cycle()
            .take(3 * CHUNK + 5)
            .collect();
        let spans: Vec<Span> = pieces
            .iter()
            .map(|&(c, s, e)| Span {
                start: AtomicUsize::new(c << CHUNK_SHIFT | s),
                end: AtomicUsize::new(e),
            })
            .collect();
        let mut out = Trickle(Vec::new());
        write_output(&mut out, &texts, &spans).unwrap();
        let want: Vec<u8> = pieces
            .iter()
            .flat_map(|&(c, s, e)| texts[c][s..e].iter().copied())
            .collect();
        assert_eq!(out.0, want);
    }

    /// A failed write is returned and stops every writer (none waits forever for its turn).
    #[test]
    fn a_write_error_stops_the_writers() {
        struct Full(usize);
        impl Write for Full {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                if self.0 == 0 {
                    return Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "full"));
                }
                let n = b.len().min(self.0);
                self.0 -= n;
                Ok(n)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let texts = [b"aaaa\n".to_vec(), b"bb\n".to_vec(), b"c\n".to_vec()];
        let spans: Vec<Span> = (0..10 * CHUNK)
            .map(|i| Span {
                start: AtomicUsize::new((i % 3) << CHUNK_SHIFT),
                end: AtomicUsize::new(texts[i % 3].len()),
            })
            .collect();
        for room in [0, 1, 5 * CHUNK] {
            let err = write_output(&mut Full(room), &texts, &spans).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe, "room {room}");
        }
    }

    /// A writer thread that panics (a span outside its text) passes the panic on instead of
    /// leaving the others waiting for its turn.
    #[test]
    #[should_panic(expected = "out of range")]
    fn a_panicking_writer_does_not_hang_the_others() {
        let texts = [b"a\n".to_vec(), b"b\n".to_vec()];
        let spans: Vec<Span> = (0..4 * CHUNK)
            .map(|i| Span {
                start: AtomicUsize::new((i % 2) << CHUNK_SHIFT),
                // The second chunk (the helper's) reaches past its text.
                end: AtomicUsize::new(if i == CHUNK + 1 { 99 } else { 2 }),
            })
            .collect();
        let _ = write_output(&mut Vec::new(), &texts, &spans);
    }

    /// Plain hex goes through the fast path; anything else gets `parse_hex`'s answer.
    #[test]
    fn addresses_parse_like_parse_hex() {
        let input = "0x4a1b2c\n\n  4A1B2D \r\n+ff\n0x00000000000000000001\n";
        assert_eq!(
            parse_addresses(input.as_bytes()).unwrap(),
            [0x4a_1b2c, 0x4a_1b2d, 0xff, 1]
        );
        let err = parse_addresses(b"0x10\nzz\n").unwrap_err().to_string();
        assert!(err.contains("`zz` is not a hex address"), "{err}");
        assert_eq!(parse_hex_fast(b"0x"), None);
        assert_eq!(parse_hex_fast(b"ffffffffffffffff"), Some(u64::MAX));
        assert_eq!(parse_hex_fast(b"10000000000000000"), None);
        assert_eq!(parse_hex_fast(b"0xaBcDeF09"), Some(0xabcd_ef09));
        assert_eq!(parse_hex_fast(b"12g"), None);
        // No newline at the end; a line of non-ASCII blanks is blank too.
        let input = "0x10\n\u{a0}\u{2003}\n 0x11\t\n0x12";
        assert_eq!(
            parse_addresses(input.as_bytes()).unwrap(),
            [0x10, 0x11, 0x12]
        );
    }

    /// Parsing in parts gives the whole input's addresses in order, whatever the number of
    /// parts, and the first error in input order.
    #[test]
    fn parts_parse_like_the_whole() {
        let input = (0..5000u64).fold(String::new(), |mut s, i| {
            let _ = writeln!(s, "{:#x}", i * 7 + 1);
            s
        });
        let whole: Vec<u64> = parse_addresses(input.as_bytes())
            .unwrap()
            .into_iter()
            .map(|pc| pc - 1)
            .collect();
        for k in [1, 2, 3, 7, 64] {
            let parts = parse_in_parts(input.as_bytes(), k, 1).unwrap();
            assert_eq!(parts.concat(), whole, "{k} parts");
        }
        let bad = "0x1\nyy\n".repeat(10) + &"0x2\n".repeat(1000) + "zz\n";
        let err = parse_in_parts(bad.as_bytes(), 4, 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`yy`"), "{err}");
    }

    /// The ranges take every address exactly once, with its index across the parts.
    #[test]
    fn ranges_cover_every_address_once() {
        let parts: Vec<Vec<u64>> = vec![
            (0..3000).map(|i| (i * 7919) % 5003).collect(),
            vec![u64::MAX, 0, 42, 42, 42],
            (0..2000).map(|i| 5003 - i % 17).collect(),
        ];
        let n: usize = parts.iter().map(Vec::len).sum();
        for k in [1, 2, 16] {
            let bounds = range_bounds(&parts, k);
            let mut seen = vec![0u8; n];
            let mut part = Vec::new();
            for r in 0..=bounds.len() {
                let lo = if r == 0 { 0 } else { bounds[r - 1] };
                in_range(&parts, lo, bounds.get(r).copied(), &mut part);
                for &(pc, i) in &part {
                    assert_eq!(parts.concat()[i], pc);
                    seen[i] += 1;
                }
            }
            assert!(seen.iter().all(|&c| c == 1), "{k} ranges");
        }
    }
}
