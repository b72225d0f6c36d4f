//! The event ring buffer, read in batches.
//!
//! aya's `RingBuf` publishes the consumer position after every record. The kernel reads that
//! position on every reservation (to see whether the record fits), so at high rates each
//! record moves the consumer's cache line from the reader's CPU to the target's and back.
//! [`EventRing`] reads the same mapping the same way (producer position with acquire, each
//! record header with acquire, busy records end the batch, discarded ones are skipped) but
//! publishes the consumer position once per batch of up to [`BATCH`] records, and before it
//! returns: the kernel may reuse a record's bytes only after that.
//!
//! Layout (kernel/bpf/ringbuf.c): one consumer page (read-write) at offset 0; at one page, the
//! producer page followed by the data pages mapped twice in a row, so a record that wraps
//! around the end reads as one slice.

use std::{
    io,
    os::fd::{AsFd as _, AsRawFd as _},
    ptr::NonNull,
    sync::atomic::{AtomicU32, AtomicUsize, Ordering},
};

use aya::maps::MapData;

/// Records handed out between two publications of the consumer position.
pub const BATCH: usize = 256;

/// Header of each record (`BPF_RINGBUF_HDR_SZ`): length and flags, then the page offset.
const HDR: usize = 8;
const BUSY: u32 = 1 << 31;
const DISCARD: u32 = 1 << 30;

/// A shared mapping of the ring buffer's file descriptor, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(fd: i32, len: usize, prot: i32, offset: usize) -> io::Result<Self> {
        let offset = libc::off_t::try_from(offset).map_err(io::Error::other)?;
        // SAFETY: a fresh shared mapping of a BPF map's fd; the kernel checks length, offset
        // and protection against the map (read-only for the producer and data pages).
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd,
                offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Self { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr..ptr + len` is the mapping made in `new`, unmapped once, here; no
        // borrow of it outlives `EventRing::drain` (its slices live only for the callback).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// The consumer side of the event ring buffer (see the module docs).
pub struct EventRing {
    /// Keeps the map (and its fd) alive as long as the mappings.
    _map: MapData,
    consumer: Mapping,
    /// Producer page, then the data pages twice.
    producer: Mapping,
    page: usize,
    mask: usize,
    /// Our consumer position (published to the consumer page once per batch).
    pos: usize,
}

impl EventRing {
    /// Maps the ring buffer `map` for reading.
    pub fn new(map: MapData) -> io::Result<Self> {
        let size = usize::try_from(map.info().map_err(io::Error::other)?.max_entries())
            .map_err(io::Error::other)?;
        if !size.is_power_of_two() {
            return Err(io::Error::other(format!(
                "ring buffer size {size} is not a power of two"
            )));
        }
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .map_err(io::Error::other)?;
        let fd = map.fd().as_fd().as_raw_fd();
        let consumer = Mapping::new(fd, page, libc::PROT_READ | libc::PROT_WRITE, 0)?;
        let producer = Mapping::new(fd, page + 2 * size, libc::PROT_READ, page)?;
        let mut ring = Self {
            _map: map,
            consumer,
            producer,
            page,
            mask: size - 1,
            pos: 0,
        };
        ring.pos = ring.consumer_pos().load(Ordering::Acquire);
        Ok(ring)
    }

    fn consumer_pos(&self) -> &AtomicUsize {
        // SAFETY: the consumer page starts with the kernel's `unsigned long consumer_pos`,
        // page-aligned, shared with the kernel, which only reads it.
        unsafe { self.consumer.ptr.cast::<AtomicUsize>().as_ref() }
    }

    fn producer_pos(&self) -> usize {
        // SAFETY: the producer page starts with `unsigned long producer_pos`, written by the
        // kernel with release semantics after a record's header.
        unsafe { self.producer.ptr.cast::<AtomicUsize>().as_ref() }.load(Ordering::Acquire)
    }

    /// Hands every committed record to `each`, in order, until the ring is empty (or the next
    /// record is still being written), `each` returns false, or `max` records were handed
    /// out; returns how many were. The consumer position is published every [`BATCH`]
    /// records and before returning.
    pub fn drain(&mut self, max: usize, mut each: impl FnMut(&[u8]) -> bool) -> usize {
        let mut n = 0;
        let mut unpublished = 0;
        let mut producer = self.producer_pos();
        'outer: while n < max {
            if self.pos == producer {
                producer = self.producer_pos();
                if self.pos == producer {
                    break;
                }
            }
            let offset = self.pos & self.mask;
            // SAFETY: `offset < size` and the data pages are mapped twice after the producer
            // page, so the header (8 bytes) and the record (length < size) lie inside the
            // mapping. The header word is written by the kernel with a full barrier (xchg)
            // when the record is committed.
            let header = unsafe {
                self.producer
                    .ptr
                    .add(self.page + offset)
                    .cast::<AtomicU32>()
                    .as_ref()
            }
            .load(Ordering::Acquire);
            if header & BUSY != 0 {
                break;
            }
            let len = (header & !(BUSY | DISCARD)) as usize;
            if len > self.mask {
                // Not a record the kernel could write: stop rather than read past the data.
                break;
            }
            if header & DISCARD == 0 {
                // SAFETY: see above; the bytes stay unchanged until the consumer position
                // passes them, which happens after `each` returns.
                let data = unsafe {
                    std::slice::from_raw_parts(
                        self.producer.ptr.as_ptr().add(self.page + offset + HDR),
                        len,
                    )
                };
                n += 1;
                let more = each(data);
                self.pos += (HDR + len).next_multiple_of(8);
                unpublished += 1;
                if !more {
                    break 'outer;
                }
            } else {
                self.pos += (HDR + len).next_multiple_of(8);
                unpublished += 1;
            }
            if unpublished >= BATCH {
                self.consumer_pos().store(self.pos, Ordering::Release);
                unpublished = 0;
            }
        }
        if unpublished > 0 {
            self.consumer_pos().store(self.pos, Ordering::Release);
        }
        n
    }
}
