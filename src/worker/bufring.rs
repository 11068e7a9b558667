//! A provided-buffer ring (IORING_REGISTER_PBUF_RING) owned by one worker.
//!
//! The kernel picks a buffer from this ring for every multishot recv
//! completion; the worker parses or copies straight out of it and hands the
//! buffer back at once with `recycle`, publishing the new tail once per event
//! batch (`publish`). Invariants: the ring memory is page-aligned and lives
//! (with the buffers) until the ring is dropped, after unregistering; a
//! buffer id is given back exactly once per completion that carried it.

use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::IoUring;

pub struct BufRing {
    /// mmap'd ring of `entries` BufRingEntry.
    ring: *mut BufRingEntry,
    ring_bytes: usize,
    entries: u16,
    /// Local copy of the tail; published to the kernel by `publish`.
    tail: u16,
    buf_size: usize,
    bufs: Vec<u8>,
    pub bgid: u16,
}

impl BufRing {
    /// Allocates `entries` (a power of two) buffers of `buf_size` bytes and
    /// registers them as group `bgid`.
    pub fn new(ring: &IoUring, entries: u16, buf_size: usize, bgid: u16) -> io::Result<BufRing> {
        if !entries.is_power_of_two() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "entries must be a power of two"));
        }
        let ring_bytes = entries as usize * std::mem::size_of::<BufRingEntry>();
        // SAFETY: anonymous private mapping; checked for MAP_FAILED below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ring_bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_ANONYMOUS | libc::MAP_PRIVATE | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut br = BufRing {
            ring: ptr.cast(),
            ring_bytes,
            entries,
            tail: 0,
            buf_size,
            bufs: vec![0u8; entries as usize * buf_size],
            bgid,
        };
        // SAFETY: the ring memory stays mapped until Drop, which runs after
        // the worker has unregistered it (or the ring itself is gone).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(ptr as u64, entries, bgid, 0)?;
        }
        for bid in 0..entries {
            br.recycle(bid);
        }
        br.publish();
        Ok(br)
    }

    /// The bytes the kernel wrote into buffer `bid`.
    pub fn get(&self, bid: u16, len: usize) -> &[u8] {
        let start = bid as usize * self.buf_size;
        &self.bufs[start..start + len.min(self.buf_size)]
    }

    /// Hands buffer `bid` back to the kernel (visible after `publish`).
    pub fn recycle(&mut self, bid: u16) {
        let mask = self.entries - 1;
        // SAFETY: index is masked into the mapped ring.
        let entry = unsafe { &mut *self.ring.add((self.tail & mask) as usize) };
        entry.set_addr(self.bufs.as_ptr() as u64 + (bid as usize * self.buf_size) as u64);
        entry.set_len(self.buf_size as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Publishes recycled buffers to the kernel: one release store per batch.
    pub fn publish(&mut self) {
        // SAFETY: the tail field overlays the first entry's `resv`; the
        // kernel reads it with acquire semantics.
        unsafe {
            let tail = BufRingEntry::tail(self.ring) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: mapping created in `new` with this size.
        unsafe {
            libc::munmap(self.ring.cast(), self.ring_bytes);
        }
    }
}
