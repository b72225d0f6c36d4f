//! Bytes captured from a process (or written by a test), replayed as a [`MemorySource`].
//!
//! [`Recording`] wraps a live source and keeps every range it read; the result replays the
//! same decode offline, so decoder logic is tested without root or a running target.

use std::{cell::RefCell, collections::BTreeMap};

use super::{MemoryError, MemorySource};

/// Memory made of non-overlapping byte regions keyed by start address.
#[derive(Debug, Clone, Default)]
pub struct RecordedMemory {
    regions: BTreeMap<u64, Vec<u8>>,
}

impl RecordedMemory {
    /// Empty memory: every read fails.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or overwrites) the bytes at `addr`, merging with regions it touches.
    pub fn insert(&mut self, addr: u64, bytes: &[u8]) {
        let end = addr + bytes.len() as u64;
        let mut start = addr;
        let mut merged: Vec<u8> = Vec::new();
        // Collect every region that overlaps or touches [addr, end).
        let touching: Vec<u64> = self
            .regions
            .range(..=end)
            .filter(|(a, r)| **a + r.len() as u64 >= addr)
            .map(|(a, _)| *a)
            .collect();
        let mut new_end = end;
        for a in &touching {
            start = start.min(*a);
            new_end = new_end.max(*a + self.regions[a].len() as u64);
        }
        merged.resize((new_end - start) as usize, 0);
        for a in touching {
            let r = self.regions.remove(&a).unwrap_or_default();
            let off = (a - start) as usize;
            merged[off..off + r.len()].copy_from_slice(&r);
        }
        let off = (addr - start) as usize;
        merged[off..off + bytes.len()].copy_from_slice(bytes);
        self.regions.insert(start, merged);
    }

    /// Number of separate regions held.
    pub fn region_count(&self) -> usize {
        self.regions.len()
    }
}

impl MemorySource for RecordedMemory {
    fn read_at(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let len = buf.len();
        let unmapped = MemoryError::Unmapped { addr, len };
        let (start, region) = self
            .regions
            .range(..=addr)
            .next_back()
            .ok_or(unmapped.clone())?;
        let off = usize::try_from(addr - start).map_err(|_| unmapped.clone())?;
        let src = region
            .get(off..off.checked_add(len).ok_or(unmapped.clone())?)
            .ok_or(unmapped)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// A source that remembers every successful read of an inner source.
#[derive(Debug)]
pub struct Recording<M> {
    inner: M,
    seen: RefCell<RecordedMemory>,
}

impl<M: MemorySource> Recording<M> {
    /// Starts recording reads of `inner`.
    pub fn new(inner: M) -> Self {
        Self {
            inner,
            seen: RefCell::new(RecordedMemory::new()),
        }
    }

    /// Everything read so far.
    pub fn into_recorded(self) -> RecordedMemory {
        self.seen.into_inner()
    }
}

impl<M: MemorySource> MemorySource for Recording<M> {
    fn read_at(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        self.inner.read_at(addr, buf)?;
        self.seen.borrow_mut().insert(addr, buf);
        Ok(())
    }

    fn read_scatter(&self, reqs: &[(u64, usize)], out: &mut [u8], ok: &mut [bool]) {
        self.inner.read_scatter(reqs, out, ok);
        let mut seen = self.seen.borrow_mut();
        let mut off = 0usize;
        for (&(addr, len), flag) in reqs.iter().zip(ok.iter()) {
            if *flag && let Some(chunk) = out.get(off..off + len) {
                seen.insert(addr, chunk);
            }
            off += len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_merges_and_reads_back() {
        let mut m = RecordedMemory::new();
        m.insert(0x1000, &[1, 2, 3, 4]);
        m.insert(0x1004, &[5, 6]);
        m.insert(0x0ffe, &[9, 9, 7]);
        assert_eq!(m.region_count(), 1);
        let mut b = [0u8; 8];
        m.read_at(0x0ffe, &mut b).unwrap();
        assert_eq!(b, [9, 9, 7, 2, 3, 4, 5, 6]);
        assert!(m.read_at(0x1005, &mut b).is_err());
        assert!(m.read_at(0x10, &mut b).is_err());
        m.insert(0x2000, &[1]);
        assert_eq!(m.region_count(), 2);
    }

    #[test]
    fn recording_replays() {
        let mut src = RecordedMemory::new();
        src.insert(0x100, &42u64.to_le_bytes());
        src.insert(0x200, &7u64.to_le_bytes());
        let rec = Recording::new(&src);
        assert_eq!(rec.read_u64(0x100).unwrap(), 42);
        let mut out = [0u8; 16];
        let mut ok = [false; 2];
        rec.read_scatter(&[(0x200, 8), (0x300, 8)], &mut out, &mut ok);
        assert_eq!(ok, [true, false]);
        let replay = rec.into_recorded();
        assert_eq!(replay.read_u64(0x100).unwrap(), 42);
        assert_eq!(replay.read_u64(0x200).unwrap(), 7);
        assert!(replay.read_u64(0x300).is_err());
    }
}
