//! Message framing over a byte stream: where each message starts and ends.
//!
//! Owner: one per direction of a mongos session. Sans-IO: bytes go in as
//! they arrive, in chunks of any size, and each complete message comes out
//! as a `Frame` (its header and a captured prefix of its body). Invariants:
//! - bytes are only looked at, never changed or held back: the caller
//!   forwards every chunk as it was;
//! - `at_boundary` is true exactly when everything fed so far forms whole
//!   messages;
//! - a header with `messageLength < 16` or above `max` is an error, and the
//!   framer stays failed (the connection must close).

use super::header::{FrameError, Header, HEADER_LEN};

/// A complete message.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub header: Header,
    /// The first `min(capture, body length)` bytes of the body.
    pub body: &'a [u8],
    /// True when `body` is shorter than the whole body.
    pub truncated: bool,
}

#[derive(Debug)]
pub struct Framer {
    max: u32,
    capture: usize,
    hdr: [u8; HEADER_LEN],
    hdr_len: usize,
    cur: Option<Header>,
    /// Body bytes of `cur` still to come.
    left: usize,
    body: Vec<u8>,
    failed: Option<FrameError>,
}

impl Framer {
    /// `max`: the largest messageLength accepted; `capture`: how many body
    /// bytes of each message to keep for `Frame::body`.
    pub fn new(max: u32, capture: usize) -> Self {
        Framer { max, capture, hdr: [0; HEADER_LEN], hdr_len: 0, cur: None, left: 0, body: Vec::new(), failed: None }
    }

    pub fn at_boundary(&self) -> bool {
        self.hdr_len == 0 && self.cur.is_none() && self.failed.is_none()
    }

    /// Consumes `data`, calling `on_frame` for each message it completes.
    pub fn feed(&mut self, mut data: &[u8], mut on_frame: impl FnMut(Frame<'_>)) -> Result<(), FrameError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        while !data.is_empty() {
            if self.cur.is_none() {
                // Fast path: a whole message inside `data`, nothing copied.
                if self.hdr_len == 0 && data.len() >= HEADER_LEN {
                    let h = self.header(&data[..HEADER_LEN])?;
                    if data.len() >= h.length as usize {
                        let body = &data[HEADER_LEN..h.length as usize];
                        let kept = &body[..body.len().min(self.capture)];
                        on_frame(Frame { header: h, body: kept, truncated: kept.len() < body.len() });
                        data = &data[h.length as usize..];
                        continue;
                    }
                }
                // `hdr_len < HEADER_LEN` here; `n` fills at most the rest.
                let n = HEADER_LEN.saturating_sub(self.hdr_len).min(data.len());
                let (head, rest) = data.split_at(n);
                if let Some(dst) = self.hdr.get_mut(self.hdr_len..).and_then(|d| d.get_mut(..n)) {
                    dst.copy_from_slice(head);
                }
                self.hdr_len = self.hdr_len.saturating_add(n);
                data = rest;
                if self.hdr_len < HEADER_LEN {
                    return Ok(());
                }
                let hdr = self.hdr;
                let h = self.header(&hdr)?;
                self.cur = Some(h);
                self.left = h.body_len();
                self.body.clear();
            }
            let n = self.left.min(data.len());
            let want = self.capture.saturating_sub(self.body.len()).min(n);
            self.body.extend_from_slice(&data[..want]);
            self.left = self.left.saturating_sub(n); // n <= left
            data = &data[n..];
            if self.left == 0 {
                if let Some(h) = self.cur.take() {
                    on_frame(Frame { header: h, body: &self.body, truncated: self.body.len() < h.body_len() });
                }
                self.hdr_len = 0;
            }
        }
        Ok(())
    }

    fn header(&mut self, b: &[u8]) -> Result<Header, FrameError> {
        match Header::parse(b, self.max) {
            Some(Ok(h)) => Ok(h),
            Some(Err(e)) => {
                self.failed = Some(e);
                Err(e)
            }
            // Unreachable: callers pass exactly 16 bytes.
            None => Err(FrameError::Short(0)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // test arithmetic on constants
mod tests {
    use super::*;
    use crate::protocol::mongo::header::OP_MSG;

    fn msg(id: i32, body: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        Header { length: (16 + body.len()) as u32, request_id: id, response_to: 0, op_code: OP_MSG }.write(&mut v);
        v.extend_from_slice(body);
        v
    }

    fn stream() -> Vec<u8> {
        let mut s = msg(1, b"abcdefghij");
        s.extend(msg(2, b""));
        s.extend(msg(3, &[7u8; 40]));
        s
    }

    type Seen = Vec<(i32, Vec<u8>, bool)>;

    /// Feeds `s` split at `cut` and returns (id, body, truncated) per frame
    /// plus whether the framer was at a boundary after the first half.
    fn run(s: &[u8], cuts: &[usize], capture: usize) -> (Seen, Vec<bool>) {
        let mut f = Framer::new(1000, capture);
        let mut got = Vec::new();
        let mut bounds = Vec::new();
        let mut last = 0;
        for &c in cuts.iter().chain(std::iter::once(&s.len())) {
            f.feed(&s[last..c], |fr| got.push((fr.header.request_id, fr.body.to_vec(), fr.truncated))).unwrap();
            bounds.push(f.at_boundary());
            last = c;
        }
        (got, bounds)
    }

    #[test]
    fn split_at_every_byte_boundary() {
        let s = stream();
        let ends = [26usize, 42, 98];
        let (whole, _) = run(&s, &[], 1 << 20);
        assert_eq!(whole.len(), 3);
        for cut in 0..=s.len() {
            let (got, bounds) = run(&s, &[cut], 1 << 20);
            assert_eq!(got, whole, "cut at {cut}");
            assert_eq!(bounds[0], cut == 0 || ends.contains(&cut), "boundary after cut {cut}");
            assert!(bounds[1]);
        }
        // Byte by byte.
        let cuts: Vec<usize> = (1..s.len()).collect();
        assert_eq!(run(&s, &cuts, 1 << 20).0, whole);
    }

    #[test]
    fn capture_keeps_a_prefix() {
        let s = stream();
        for cut in 0..=s.len() {
            let (got, _) = run(&s, &[cut], 4);
            assert_eq!(got[0], (1, b"abcd".to_vec(), true));
            assert_eq!(got[1], (2, vec![], false));
            assert_eq!(got[2], (3, vec![7; 4], true));
        }
    }

    #[test]
    fn short_and_oversized_headers_fail_and_stay_failed() {
        let mut short = msg(1, b"");
        short[0] = 15;
        let mut f = Framer::new(1000, 16);
        assert_eq!(f.feed(&short, |_| {}), Err(FrameError::Short(15)));
        assert!(!f.at_boundary());
        assert_eq!(f.feed(&msg(2, b""), |_| panic!("no frame after failure")), Err(FrameError::Short(15)));

        let big = msg(1, &[0u8; 100]);
        let mut f = Framer::new(50, 16);
        // Split inside the header: the error comes once all 16 bytes arrived.
        assert_eq!(f.feed(&big[..10], |_| {}), Ok(()));
        assert_eq!(f.feed(&big[10..], |_| {}), Err(FrameError::Oversized { length: 116, max: 50 }));
    }
}
