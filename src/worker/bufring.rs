//! A provided-buffer ring (IORING_REGISTER_PBUF_RING) owned by one worker.
//!
//! The kernel picks a buffer from this ring for every multishot recv
//! completion; the worker parses or copies straight out of it and hands the
//! buffer back at once with `recycle`, publishing the new tail once per event
//! batch (`publish`). Invariants: the ring memory is page-aligned and lives
//! (with the buffers) until the ring is dropped, after unregistering; a
//! buffer id is given back exactly once per completion that carried it.
//!
//! Lazy growth: the ring has room for `entries` buffers and their memory is
//! reserved (not populated) up front, but only the first `live` ids are
//! handed to the kernel; `grow` hands over more (doubling) when the kernel
//! runs out (a recv completes with ENOBUFS). A page of buffer memory
//! becomes resident only once the kernel writes into it, and the kernel
//! cycles through the live buffers only, so an idle or lightly loaded
//! worker holds `live` buffers (16 x 16 KiB at start), not `entries`.
//! Ids at or past `live` never reach the kernel, so the ring never holds
//! more than `live <= entries` buffers and cannot overflow.
//!
//! Soundness: the kernel writes into every buffer it holds at any moment,
//! so no Rust reference may ever span a buffer the kernel holds. The
//! buffers are therefore one raw mapping reached only through a pointer,
//! never a `Vec` or slice of the whole (a `&[u8]` over all of them, even
//! one made only to index into it, asserts that none of those bytes change
//! while it lives). `get` makes a slice of exactly the one buffer a
//! completion handed over, which the kernel does not touch again until
//! `recycle` gives it back, and `recycle` takes `&mut self`, so that slice
//! is gone by then.

use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::IoUring;

pub struct BufRing {
    /// mmap'd ring of `entries` BufRingEntry.
    ring: *mut BufRingEntry,
    ring_bytes: usize,
    entries: u16,
    /// Buffers handed to the kernel: ids `0..live` (`live <= entries`).
    live: u16,
    /// Local copy of the tail; published to the kernel by `publish`.
    tail: u16,
    buf_size: usize,
    /// mmap'd `entries * buf_size` bytes; only ever reached through this
    /// pointer (see the module note on soundness).
    bufs: *mut u8,
    bufs_bytes: usize,
    pub bgid: u16,
}

impl BufRing {
    /// Reserves `entries` (a power of two) buffers of `buf_size` bytes,
    /// registers the ring as group `bgid` and hands the first `initial` of
    /// them (at most `entries`) to the kernel.
    pub fn new(ring: &IoUring, entries: u16, buf_size: usize, bgid: u16, initial: u16) -> io::Result<BufRing> {
        if !entries.is_power_of_two() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "entries must be a power of two"));
        }
        let ring_bytes = entries as usize * std::mem::size_of::<BufRingEntry>();
        let bufs_bytes = (entries as usize)
            .checked_mul(buf_size)
            .filter(|&n| n > 0 && buf_size <= u32::MAX as usize)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "buffer ring size"))?;
        let ptr = map(ring_bytes, libc::MAP_POPULATE)?;
        // Not populated: a buffer's pages become resident when first used.
        let bufs = match map(bufs_bytes, 0) {
            Ok(b) => b,
            Err(e) => {
                // SAFETY: mapped just above with this size.
                unsafe { libc::munmap(ptr, ring_bytes) };
                return Err(e);
            }
        };
        // From here on Drop unmaps both.
        let mut br = BufRing {
            ring: ptr.cast(),
            ring_bytes,
            entries,
            live: 0,
            tail: 0,
            buf_size,
            bufs: bufs.cast(),
            bufs_bytes,
            bgid,
        };
        // SAFETY: the ring memory stays mapped until Drop, which runs after
        // the worker has unregistered it (or the ring itself is gone).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(ptr as u64, entries, bgid, 0)?;
        }
        br.grow_to(initial.clamp(1, entries));
        br.publish();
        Ok(br)
    }

    /// Buffers handed to the kernel so far.
    pub fn live(&self) -> u16 {
        self.live
    }

    /// The kernel ran out of buffers: doubles the live ones (up to
    /// `entries`), visible after `publish`. Returns false at the maximum.
    pub fn grow(&mut self) -> bool {
        let want = self.live.saturating_mul(2).min(self.entries);
        let grew = want > self.live;
        self.grow_to(want);
        grew
    }

    /// Hands ids `live..n` to the kernel (each for the first time).
    fn grow_to(&mut self, n: u16) {
        let old = self.live;
        self.live = n.min(self.entries).max(old);
        for bid in old..self.live {
            self.recycle(bid);
        }
    }

    /// The bytes the kernel wrote into buffer `bid`, which a completion just
    /// handed over (empty for an id the ring does not have).
    pub fn get(&self, bid: u16, len: usize) -> &[u8] {
        if bid >= self.live {
            return &[];
        }
        // SAFETY: `bid < live <= entries`, so the range lies inside the mapping; the
        // slice covers only buffer `bid`, which the kernel handed to us and
        // does not write until `recycle` (which needs `&mut self`, so this
        // borrow has ended by then).
        unsafe { std::slice::from_raw_parts(self.bufs.add(bid as usize * self.buf_size), len.min(self.buf_size)) }
    }

    /// Hands buffer `bid` back to the kernel (visible after `publish`).
    pub fn recycle(&mut self, bid: u16) {
        if bid >= self.live {
            return;
        }
        let mask = self.entries - 1;
        // SAFETY: the index is masked into the mapped ring, and the entry at
        // the local tail is not yet published, so the kernel does not read
        // it while we write it.
        let entry = unsafe { &mut *self.ring.add((self.tail & mask) as usize) };
        // SAFETY: `bid < entries`: an address inside the mapping (no
        // reference is made to the buffer itself).
        entry.set_addr(unsafe { self.bufs.add(bid as usize * self.buf_size) } as u64);
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

/// An anonymous, private mapping of `bytes` (`extra`: MAP_POPULATE or 0).
fn map(bytes: usize, extra: libc::c_int) -> io::Result<*mut libc::c_void> {
    // SAFETY: anonymous private mapping; checked for MAP_FAILED below.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_ANONYMOUS | libc::MAP_PRIVATE | extra,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(ptr)
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: mappings created in `new` with these sizes.
        unsafe {
            libc::munmap(self.ring.cast(), self.ring_bytes);
            libc::munmap(self.bufs.cast(), self.bufs_bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::BufRing;

    #[test]
    fn an_id_the_ring_does_not_have_reads_empty_and_is_not_recycled() {
        let Ok(ring) = crate::worker::uring::new_ring() else {
            return eprintln!("note: no io_uring here; skipped");
        };
        let mut br = BufRing::new(&ring, 4, 64, 7, 4).unwrap();
        assert_eq!(br.get(3, 10).len(), 10);
        assert_eq!(br.get(3, 1000).len(), 64, "never past the buffer");
        assert!(br.get(4, 10).is_empty(), "a bad id from a CQE cannot index out of the mapping");
        let tail = br.tail;
        br.recycle(4);
        assert_eq!(br.tail, tail, "nor be handed to the kernel");
        br.recycle(3);
        assert_eq!(br.tail, tail.wrapping_add(1));
    }

    #[test]
    fn the_ring_grows_by_doubling_up_to_its_entries_and_ids_past_live_are_refused() {
        let Ok(ring) = crate::worker::uring::new_ring() else {
            return eprintln!("note: no io_uring here; skipped");
        };
        let mut br = BufRing::new(&ring, 8, 64, 9, 2).unwrap();
        assert_eq!(br.live(), 2);
        assert!(br.get(2, 10).is_empty(), "id 2 was never handed to the kernel");
        let tail = br.tail;
        br.recycle(2);
        assert_eq!(br.tail, tail, "so it is not given back either");
        assert!(br.grow());
        assert_eq!((br.live(), br.tail), (4, tail.wrapping_add(2)), "ids 2 and 3 handed over once");
        assert_eq!(br.get(3, 10).len(), 10);
        assert!(br.grow());
        assert_eq!(br.live(), 8);
        assert!(!br.grow(), "capped at entries");
        assert_eq!(br.live(), 8);
    }
}
