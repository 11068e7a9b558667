//! A double-buffered outbound queue that is safe for asynchronous sends.
//!
//! Invariant: while a send is in flight (`in_flight`), the bytes of
//! `sending` are never moved or modified — io_uring reads them from the
//! kernel side until the completion arrives. New data goes to `queued` and
//! is swapped in only when the in-flight send has completed. Both vectors
//! keep their capacity, so steady state allocates nothing.
//!
//! Large blocks (a reply of `SHARE_MIN` bytes or more passed through) are
//! not copied: `push_block` queues the `Bytes` itself, in stream order
//! with the copied bytes around it, and `start_send` hands it out as
//! `Tx::Block` for a driver to hold while the kernel reads it (so a send
//! in flight outlives even the session's own buffers without a copy).
//!
//! The buffers live behind one lazily allocated box: an `OutBuf` that never
//! sent anything, or was reset to `default()` while idle, is one pointer
//! (most of a proxy's clients are idle, and this sits in every client).

use std::collections::VecDeque;
use std::ops::Deref;

use bytes::Bytes;

/// Replies from this size up are queued as shared blocks, not copied.
pub const SHARE_MIN: usize = 16 * 1024;

/// The bytes of one send: a slice of the queue's own buffer, valid until
/// the next call into its owner (a driver that sends asynchronously copies
/// it), or a shared block the driver may hold until the send completes.
#[derive(Debug)]
pub enum Tx<'a> {
    Slice(&'a [u8]),
    Block(Bytes),
}

impl Deref for Tx<'_> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            Tx::Slice(s) => s,
            Tx::Block(b) => b,
        }
    }
}

#[derive(Debug, Default)]
pub struct OutBuf {
    bufs: Option<Box<Bufs>>,
}

#[derive(Debug, Default)]
struct Bufs {
    sending: Vec<u8>,
    /// When set, the block being sent instead of `sending` (then empty).
    block: Option<Bytes>,
    /// Bytes of `sending` (or `block`) already written.
    sent: usize,
    queued: Vec<u8>,
    /// What follows `queued` in the stream once a block was pushed: blocks
    /// and the bytes copied after each (`Chunk::Own`).
    later: VecDeque<Chunk>,
    /// Bytes in `later`.
    later_len: usize,
    in_flight: bool,
}

#[derive(Debug)]
enum Chunk {
    Own(Vec<u8>),
    Block(Bytes),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Own(v) => v,
            Chunk::Block(b) => b,
        }
    }
}

impl Bufs {
    /// The current send's bytes, written or not.
    #[inline]
    fn current(&self) -> &[u8] {
        match &self.block {
            Some(b) => b,
            None => &self.sending,
        }
    }

    #[inline]
    fn idle(&self) -> bool {
        !self.in_flight && self.sent == self.current().len() && self.queued.is_empty() && self.later.is_empty()
    }

    /// The current send is done: clear it for the next.
    #[inline]
    fn retire(&mut self) {
        self.sending.clear();
        self.block = None;
        self.sent = 0;
    }

    /// Moves the next run of queued bytes into the current send.
    fn advance(&mut self) -> bool {
        self.retire();
        if !self.queued.is_empty() {
            std::mem::swap(&mut self.sending, &mut self.queued);
        } else {
            match self.later.pop_front() {
                Some(Chunk::Own(v)) => {
                    self.later_len -= v.len();
                    self.sending = v;
                }
                Some(Chunk::Block(b)) => {
                    self.later_len -= b.len();
                    self.block = Some(b);
                }
                None => return false,
            }
        }
        true
    }
}

impl OutBuf {
    /// Appends bytes to be sent after everything already queued.
    #[inline]
    pub fn push(&mut self, data: &[u8]) {
        let b = match self.bufs {
            Some(ref mut b) => b,
            None => self.alloc(),
        };
        if b.idle() {
            b.retire();
            b.sending.extend_from_slice(data);
        } else if b.later.is_empty() {
            b.queued.extend_from_slice(data);
        } else {
            b.later_len += data.len();
            match b.later.back_mut() {
                Some(Chunk::Own(v)) => v.extend_from_slice(data),
                _ => b.later.push_back(Chunk::Own(data.to_vec())),
            }
        }
    }

    /// Appends `data`, sharing it when it is `SHARE_MIN` bytes or more.
    #[inline]
    pub fn push_bytes(&mut self, data: &Bytes) {
        if data.len() >= SHARE_MIN {
            self.push_block(data.clone());
        } else {
            self.push(data);
        }
    }

    /// Appends a block without copying it.
    pub fn push_block(&mut self, data: Bytes) {
        let b = match self.bufs {
            Some(ref mut b) => b,
            None => self.alloc(),
        };
        if b.idle() {
            b.retire();
            b.block = Some(data);
        } else {
            b.later_len += data.len();
            b.later.push_back(Chunk::Block(data));
        }
    }

    /// Bytes not yet acknowledged as written.
    #[inline]
    pub fn len(&self) -> usize {
        self.bufs.as_ref().map_or(0, |b| b.current().len() - b.sent + b.queued.len() + b.later_len)
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of `len` unsent bytes, `skip` bytes after the first unsent
    /// one (bytes of a send in flight count as unsent); `None` past the end.
    pub fn copy_unsent(&self, skip: usize, len: usize) -> Option<Vec<u8>> {
        let end = skip.checked_add(len).filter(|&e| e <= self.len())?;
        let mut v = Vec::with_capacity(len);
        let Some(b) = &self.bufs else { return Some(v) };
        let parts = [&b.current()[b.sent..], &b.queued[..]].into_iter().chain(b.later.iter().map(Chunk::bytes));
        let mut at = 0;
        for part in parts {
            let (lo, hi) = (skip.max(at), end.min(at + part.len()));
            if lo < hi {
                v.extend_from_slice(&part[lo - at..hi - at]);
            }
            at += part.len();
        }
        Some(v)
    }

    #[inline]
    pub fn in_flight(&self) -> bool {
        self.bufs.as_ref().is_some_and(|b| b.in_flight)
    }

    /// Marks the next bytes as in flight: `None` if a send already is or
    /// there is nothing to send.
    #[inline]
    fn begin(&mut self) -> Option<&Bufs> {
        let b = self.bufs.as_mut()?;
        if b.in_flight || (b.sent == b.current().len() && !b.advance()) {
            return None;
        }
        b.in_flight = true;
        Some(b)
    }

    /// Starts a send: returns the bytes to write, which stay pinned until
    /// `complete` is called. `None` if a send is already in flight or there is
    /// nothing to send.
    #[inline]
    pub fn start_send(&mut self) -> Option<Tx<'_>> {
        let b = self.begin()?;
        Some(match &b.block {
            Some(block) => Tx::Block(block.slice(b.sent..)),
            None => Tx::Slice(&b.sending[b.sent..]),
        })
    }

    /// `start_send` for a driver that writes at once (or copies): the bytes
    /// as a slice, whichever way they are held.
    #[inline]
    pub fn start_send_slice(&mut self) -> Option<&[u8]> {
        let b = self.begin()?;
        Some(&b.current()[b.sent..])
    }

    /// Records that `n` bytes of the in-flight send were written (0 for a
    /// send that would block or was cancelled).
    #[inline]
    pub fn complete(&mut self, n: usize) {
        let Some(b) = self.bufs.as_mut() else { return };
        debug_assert!(b.in_flight);
        b.in_flight = false;
        b.sent = (b.sent + n).min(b.current().len());
        if b.sent == b.current().len() {
            b.retire();
        }
    }

    /// The first push after a reset allocates (off the hot path).
    #[cold]
    #[inline(never)]
    fn alloc(&mut self) -> &mut Bufs {
        self.bufs.insert(Box::default())
    }

    /// Whether buffers are allocated (false once reset while idle).
    pub fn holds_buffers(&self) -> bool {
        self.bufs.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_sends_preserve_order() {
        let mut b = OutBuf::default();
        b.push(b"hello ");
        let s = b.start_send().unwrap().to_vec();
        assert_eq!(s, b"hello ");
        // Data pushed while in flight must not disturb the pinned bytes.
        b.push(b"world");
        assert!(b.start_send().is_none());
        b.complete(3);
        assert_eq!(b.len(), 8);
        assert_eq!(&*b.start_send().unwrap(), b"lo ");
        b.complete(3);
        assert_eq!(&*b.start_send().unwrap(), b"world");
        b.complete(5);
        assert!(b.is_empty());
        assert!(b.start_send().is_none());
    }

    #[test]
    fn unsent_bytes_are_copied_across_both_halves() {
        let mut b = OutBuf::default();
        b.push(b"abcd");
        b.start_send();
        b.push(b"efgh");
        b.complete(1);
        assert_eq!(b.copy_unsent(0, 7).as_deref(), Some(&b"bcdefgh"[..]));
        assert_eq!(b.copy_unsent(2, 3).as_deref(), Some(&b"def"[..]));
        assert_eq!(b.copy_unsent(4, 3).as_deref(), Some(&b"fgh"[..]));
        assert_eq!(b.copy_unsent(5, 3), None);
    }

    #[test]
    fn zero_byte_completion_retries_same_bytes() {
        let mut b = OutBuf::default();
        b.push(b"abc");
        b.start_send();
        b.complete(0);
        assert_eq!(&*b.start_send().unwrap(), b"abc");
    }

    #[test]
    fn blocks_keep_their_place_in_the_stream_without_a_copy() {
        let big = Bytes::from(vec![b'x'; SHARE_MIN]);
        let mut b = OutBuf::default();
        b.push(b"a");
        assert!(matches!(b.start_send(), Some(Tx::Slice(s)) if s == b"a"));
        b.push_bytes(&big);
        b.push(b"bc");
        b.push_bytes(&Bytes::from_static(b"small"));
        assert_eq!(b.len(), 1 + SHARE_MIN + 7);
        assert_eq!(b.copy_unsent(0, 3).as_deref(), Some(&b"axx"[..]));
        assert_eq!(b.copy_unsent(SHARE_MIN, 5).as_deref(), Some(&b"xbcsm"[..]));
        b.complete(1);
        match b.start_send() {
            Some(Tx::Block(blk)) => assert_eq!(blk.as_ptr(), big.as_ptr(), "the same bytes, not a copy"),
            other => panic!("expected the block, got {other:?}"),
        }
        b.complete(10);
        match b.start_send() {
            Some(Tx::Block(blk)) => assert_eq!((blk.len(), blk.as_ptr()), (SHARE_MIN - 10, big[10..].as_ptr())),
            other => panic!("expected the rest of the block, got {other:?}"),
        }
        b.complete(SHARE_MIN - 10);
        assert_eq!(&*b.start_send().unwrap(), b"bcsmall");
        b.complete(7);
        assert!(b.is_empty() && b.start_send().is_none());
        b.push_bytes(&big);
        assert!(matches!(b.start_send(), Some(Tx::Block(_))), "an idle queue sends a block at once");
    }
}
