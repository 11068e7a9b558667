//! A double-buffered outbound queue that is safe for asynchronous sends.
//!
//! Invariant: while a send is in flight (`in_flight`), the bytes of
//! `sending` are never moved or modified — io_uring reads them from the
//! kernel side until the completion arrives. New data goes to `queued` and
//! is swapped in only when the in-flight send has completed. Both vectors
//! keep their capacity, so steady state allocates nothing.
//!
//! The buffers live behind one lazily allocated box: an `OutBuf` that never
//! sent anything, or was reset to `default()` while idle, is one pointer
//! (most of a proxy's clients are idle, and this sits in every client).

#[derive(Debug, Default)]
pub struct OutBuf {
    bufs: Option<Box<Bufs>>,
}

#[derive(Debug, Default)]
struct Bufs {
    sending: Vec<u8>,
    /// Bytes of `sending` already written.
    sent: usize,
    queued: Vec<u8>,
    in_flight: bool,
}

impl OutBuf {
    /// Appends bytes to be sent after everything already queued.
    #[inline]
    pub fn push(&mut self, data: &[u8]) {
        let b = match self.bufs {
            Some(ref mut b) => b,
            None => self.alloc(),
        };
        if !b.in_flight && b.sent == b.sending.len() && b.queued.is_empty() {
            b.sending.clear();
            b.sent = 0;
            b.sending.extend_from_slice(data);
        } else {
            b.queued.extend_from_slice(data);
        }
    }

    /// Bytes not yet acknowledged as written.
    #[inline]
    pub fn len(&self) -> usize {
        self.bufs.as_ref().map_or(0, |b| b.sending.len() - b.sent + b.queued.len())
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of `len` unsent bytes, `skip` bytes after the first unsent
    /// one (bytes of a send in flight count as unsent); `None` past the end.
    pub fn copy_unsent(&self, skip: usize, len: usize) -> Option<Vec<u8>> {
        let (a, b) = match &self.bufs {
            Some(b) => (&b.sending[b.sent..], &b.queued[..]),
            None => (&[][..], &[][..]),
        };
        let end = skip.checked_add(len).filter(|&e| e <= a.len() + b.len())?;
        let mut v = Vec::with_capacity(len);
        if skip < a.len() {
            v.extend_from_slice(&a[skip..end.min(a.len())]);
        }
        if end > a.len() {
            v.extend_from_slice(&b[skip.saturating_sub(a.len())..end - a.len()]);
        }
        Some(v)
    }

    #[inline]
    pub fn in_flight(&self) -> bool {
        self.bufs.as_ref().is_some_and(|b| b.in_flight)
    }

    /// Starts a send: returns the bytes to write, which stay pinned until
    /// `complete` is called. `None` if a send is already in flight or there is
    /// nothing to send.
    #[inline]
    pub fn start_send(&mut self) -> Option<&[u8]> {
        let b = self.bufs.as_mut()?;
        if b.in_flight {
            return None;
        }
        if b.sent == b.sending.len() {
            if b.queued.is_empty() {
                return None;
            }
            b.sending.clear();
            b.sent = 0;
            std::mem::swap(&mut b.sending, &mut b.queued);
        }
        b.in_flight = true;
        Some(&b.sending[b.sent..])
    }

    /// Records that `n` bytes of the in-flight send were written (0 for a
    /// send that would block or was cancelled).
    #[inline]
    pub fn complete(&mut self, n: usize) {
        let Some(b) = self.bufs.as_mut() else { return };
        debug_assert!(b.in_flight);
        b.in_flight = false;
        b.sent = (b.sent + n).min(b.sending.len());
        if b.sent == b.sending.len() {
            b.sending.clear();
            b.sent = 0;
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
        assert_eq!(b.start_send().unwrap(), b"lo ");
        b.complete(3);
        assert_eq!(b.start_send().unwrap(), b"world");
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
        assert_eq!(b.start_send().unwrap(), b"abc");
    }
}
