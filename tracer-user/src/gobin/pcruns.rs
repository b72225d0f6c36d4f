//! A function's pc-value tables decoded once, for symbolizing many PCs of it.
//!
//! Evaluating a pc-value table ([`super::pclntab::eval_pcvalue`], like the runtime's
//! `pcvalue`) walks it from the function's entry, so every lookup costs the table's length up
//! to the PC — and one frame needs the file, line and inline-index tables. When many PCs fall
//! in one function ([`super::GoBinary::symbolize_many`] sorts them so they do), decoding each
//! table once into runs `(end pc, value)` and binary-searching them is several times cheaper.
//! For every PC inside the function the answers are the streaming evaluator's, errors included.

use std::borrow::Cow;

use super::{
    error::{GobinError, Result},
    pclntab::read_varint32,
};

/// A pc-value table decoded into runs: `runs[i].1` holds below `runs[i].0` (and at or above
/// the previous run's end). Empty runs are dropped and decoding stops at the function's end,
/// so a table holds at most one run per byte of code and per two bytes of table.
#[derive(Debug, Clone, Default)]
pub(super) struct PcRuns {
    runs: Vec<(u64, i32)>,
    /// Why lookups past the last run fail (the table was unreadable or truncated), if they do.
    fail: Option<&'static str>,
}

impl PcRuns {
    /// Makes this an absent table (offset 0): every lookup gives -1.
    pub(super) fn set_absent(&mut self) {
        self.runs.clear();
        self.fail = None;
    }

    /// Makes this a table whose start could not be read: every lookup fails with `why`.
    pub(super) fn set_unreadable(&mut self, why: &'static str) {
        self.runs.clear();
        self.fail = Some(why);
    }

    /// Decodes the table at the start of `p` for a function spanning `entry..end` with
    /// instruction quantum `quantum`, replacing what this held (its allocation is reused).
    pub(super) fn decode(&mut self, mut p: &[u8], entry: u64, end: u64, quantum: u8) {
        const TRUNCATED: &str = "a pc-value table runs past the data";
        self.set_absent();
        let mut pc = entry;
        let mut val: i32 = -1;
        loop {
            let first = pc == entry;
            let Some((uv, n)) = read_varint32(p) else {
                self.fail = Some(TRUNCATED);
                return;
            };
            if uv == 0 && !first {
                return;
            }
            p = &p[n..];
            val = val.wrapping_add((uv >> 1) as i32 ^ -((uv & 1) as i32));
            let Some((pcd, n)) = read_varint32(p) else {
                self.fail = Some(TRUNCATED);
                return;
            };
            p = &p[n..];
            let Some(next) = pc.checked_add(u64::from(pcd) * u64::from(quantum)) else {
                // The streaming evaluator wraps around here; no real table does.
                self.fail = Some("a pc-value table overflows the address space");
                return;
            };
            if next > pc {
                self.runs.push((next, val));
            }
            pc = next;
            if pc >= end {
                // No lookup inside the function reaches the rest.
                return;
            }
        }
    }

    /// The value at `target` (at or after the entry): -1 when the table does not cover it.
    pub(super) fn get(&self, target: u64) -> Result<i32> {
        let i = self.runs.partition_point(|&(end, _)| end <= target);
        match (self.runs.get(i), self.fail) {
            (Some(&(_, v)), _) => Ok(v),
            (None, None) => Ok(-1),
            (None, Some(why)) => Err(GobinError::BadPclntab(why)),
        }
    }
}

/// The tables [`super::pclntab::Pclntab::frames_cached`] reads, decoded once per function by
/// [`super::pclntab::Pclntab::func_tables`], and the names its frames have used so far (a
/// function has few: looking them up again would find and check the same strings).
#[derive(Debug, Clone, Default)]
pub struct FuncTables<'a> {
    /// File names by file number.
    pub(super) files: Vec<(i32, Cow<'a, str>)>,
    /// Function names (the function's and its inlined calls') by name offset.
    pub(super) names: Vec<(i32, Cow<'a, str>)>,
    pub(super) file: PcRuns,
    pub(super) line: PcRuns,
    pub(super) inline_index: PcRuns,
    /// True when the inline tree's address and the index table's offset were readable.
    pub(super) tree_read: bool,
    /// The inline tree's address, if `f` has one (valid when `tree_read`).
    pub(super) tree: Option<u64>,
}

impl<'a> FuncTables<'a> {
    /// Forgets the names (the tables are being replaced by another function's).
    pub(super) fn clear_names(&mut self) {
        self.files.clear();
        self.names.clear();
    }

    /// The name under `key` in `list`, from `get` the first time.
    pub(super) fn cached(
        list: &mut Vec<(i32, Cow<'a, str>)>,
        key: i32,
        get: impl FnOnce() -> Result<Cow<'a, str>>,
    ) -> Result<Cow<'a, str>> {
        if let Some((_, name)) = list.iter().find(|(k, _)| *k == key) {
            return Ok(name.clone());
        }
        let name = get()?;
        list.push((key, name.clone()));
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gobin::pclntab::eval_pcvalue;

    /// Zig-zag varint pairs as the linker writes them.
    fn table(pairs: &[(i32, u32)]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut prev = -1i32;
        let put = |mut v: u32, out: &mut Vec<u8>| {
            while v >= 0x80 {
                out.push((v as u8) | 0x80);
                v >>= 7;
            }
            out.push(v as u8);
        };
        for &(val, pcd) in pairs {
            let d = val - prev;
            prev = val;
            put(((d << 1) ^ (d >> 31)) as u32, &mut out);
            put(pcd, &mut out);
        }
        out.push(0);
        out
    }

    /// Every PC of the function gets the streaming evaluator's answer, including the
    /// zero-length runs the decoder drops and a table that ends before the function does.
    #[test]
    fn runs_agree_with_the_streaming_evaluator() {
        let entry = 0x1000;
        for (pairs, len) in [
            (vec![(5, 4), (7, 0), (9, 3), (2, 200)], 207u64),
            (vec![(0, 1), (1, 1), (2, 1)], 10),
            (vec![(-1, 0), (3, 300)], 300),
            (vec![(12, 0), (13, 8)], 8),
        ] {
            let p = table(&pairs);
            let mut runs = PcRuns::default();
            runs.decode(&p, entry, entry + len, 1);
            for pc in entry..entry + len {
                let want = eval_pcvalue(&p, entry, pc, 1).unwrap().unwrap_or(-1);
                assert_eq!(runs.get(pc).unwrap(), want, "{pairs:?} at {pc:#x}");
            }
        }
    }

    /// A truncated table answers where it can and fails past its end, like the evaluator.
    #[test]
    fn truncated_tables_fail_only_past_their_end() {
        let entry = 0x1000;
        let mut p = table(&[(5, 4), (6, 4)]);
        p.truncate(p.len() - 2);
        let mut runs = PcRuns::default();
        runs.decode(&p, entry, entry + 16, 1);
        assert_eq!(runs.get(entry + 1).unwrap(), 5);
        assert!(eval_pcvalue(&p, entry, entry + 6, 1).is_err());
        assert!(runs.get(entry + 6).is_err());
        runs.set_absent();
        assert_eq!(runs.get(entry).unwrap(), -1);
        runs.set_unreadable("x");
        assert!(runs.get(entry).is_err());
    }
}
