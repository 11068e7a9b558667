//! Incremental decoder for RESP2 and RESP3 replies from a backend: simple
//! strings, errors, integers, bulk strings, nil, and arrays (nested to any
//! depth), plus RESP3's maps, sets, pushes, nulls, doubles, booleans, big
//! numbers, verbatim strings and blob errors.
//!
//! RESP3 attributes (`|`) are framed as a prefix of the value they
//! annotate: the frame is attribute plus value, and its kind is the
//! value's. A top-level push (`>`) is its own frame of kind `Push`, which
//! the sessions never match to a request (it is out-of-band data).
//!
//! The decoder only frames and classifies: it finds where one whole reply
//! ends and what its top-level type is, so replies can be matched to
//! requests in order and merged. It keeps an explicit stack of open arrays
//! (no recursion, so hostile nesting cannot overflow the thread stack) and
//! resumes mid-frame without re-scanning.
//!
//! A backend is trusted for its data, not its framing: every length it
//! declares is checked (`MAX_REPLY_BULK`) and every position sum is checked
//! arithmetic, so a broken or hostile server gets its connection closed
//! (an `Err`), never a panic or a wrapped index.

use bytes::{Bytes, BytesMut};

use crate::protocol::num::parse_i64;
use crate::protocol::ProtoError;

/// The largest bulk reply length taken from a backend (1 TiB): far above
/// any value Redis stores, far below where a position sum could overflow.
pub const MAX_REPLY_BULK: u64 = 1 << 40;

/// The top-level shape of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    Status,
    Error,
    Integer(i64),
    Bulk,
    /// `$-1`
    Nil,
    Array(u32),
    /// `*-1`
    NilArray,
    /// RESP3 `%n`: n key-value pairs.
    Map(u32),
    /// RESP3 `~n`.
    Set(u32),
    /// RESP3 `>n`: out-of-band data (pub/sub messages, invalidations).
    Push(u32),
    /// RESP3 `_`.
    Null,
    /// RESP3 `,`.
    Double,
    /// RESP3 `#t` / `#f`.
    Boolean(bool),
    /// RESP3 `(`.
    BigNumber,
    /// RESP3 `=n`: a bulk string with a format prefix.
    Verbatim,
    /// RESP3 `!n`: an error as a bulk string.
    BlobError,
}

/// One whole reply frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub raw: Bytes,
    pub kind: ReplyKind,
}

impl Reply {
    pub fn is_error(&self) -> bool {
        matches!(self.kind, ReplyKind::Error | ReplyKind::BlobError)
    }

    /// An out-of-band RESP3 push, never the answer to a request.
    pub fn is_push(&self) -> bool {
        matches!(self.kind, ReplyKind::Push(_))
    }

    /// The top-level elements of an array reply, each a zero-copy slice of
    /// `raw`; empty for any other kind.
    pub fn elements(&self) -> Vec<Bytes> {
        let ReplyKind::Array(n) = self.kind else { return Vec::new() };
        let mut out = Vec::with_capacity(n as usize);
        let Some(mut at) = memchr::memchr(b'\n', &self.raw).and_then(|i| i.checked_add(1)) else { return out };
        let mut dec = ReplyDecoder::default();
        while out.len() < n as usize {
            let rest = self.raw.get(at..).unwrap_or_default();
            match dec.frame_len(rest) {
                Ok(Some((len, _))) => {
                    let Some(end) = at.checked_add(len) else { break };
                    out.push(self.raw.slice(at..end));
                    at = end;
                }
                // `raw` was validated when it was decoded.
                _ => break,
            }
        }
        out
    }
}

/// Resumable reply decoder; one per backend connection.
#[derive(Debug, Default)]
pub struct ReplyDecoder {
    /// Bytes of the current frame already parsed.
    pos: usize,
    /// Where to resume looking for a CR.
    scan: usize,
    /// Remaining elements of each open aggregate, innermost last, and
    /// whether it is an attribute (a prefix: its end completes nothing).
    stack: Vec<(u64, bool)>,
    /// Pending bulk data length (data starts at `pos`).
    bulk: Option<usize>,
    /// Top-level kind, once the first line is read.
    top: Option<ReplyKind>,
}

impl ReplyDecoder {
    /// Decodes the next whole reply from the front of `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Reply>, ProtoError> {
        Ok(self.frame_len(buf)?.map(|(len, kind)| Reply { raw: buf.split_to(len).freeze(), kind }))
    }

    /// The length a reply still being decoded has at least (up to the end
    /// of the bulk string it is in the middle of), so a caller can size
    /// its buffer once instead of growing it read by read; `None` when no
    /// bulk string is pending.
    pub fn wants(&self) -> Option<usize> {
        self.pos.checked_add(self.bulk?)?.checked_add(2)
    }

    /// Sans-buffer core: the length and kind of the whole reply at the front
    /// of `buf`, or `None` if more bytes are needed (the state is kept, and
    /// the next call must see the same prefix plus more bytes).
    pub fn frame_len(&mut self, buf: &[u8]) -> Result<Option<(usize, ReplyKind)>, ProtoError> {
        loop {
            if let Some(len) = self.bulk {
                let end = self.pos.checked_add(len).ok_or(ProtoError::BulkLen)?;
                let after = end.checked_add(2).ok_or(ProtoError::BulkLen)?;
                if buf.len() < after {
                    return Ok(None);
                }
                if &buf[end..after] != b"\r\n" {
                    return Err(ProtoError::MissingCrlf);
                }
                self.pos = after;
                self.bulk = None;
                if let Some(done) = self.element_done() {
                    return Ok(Some(done));
                }
                continue;
            }
            let Some(&t) = buf.get(self.pos) else { return Ok(None) };
            // `pos < buf.len()`, so `pos + 1` cannot overflow.
            let line_start = self.pos.saturating_add(1);
            let start = line_start.max(self.scan);
            let Some(cr) = memchr::memchr(b'\r', buf.get(start..).unwrap_or(&[])).and_then(|i| start.checked_add(i))
            else {
                self.scan = buf.len();
                return Ok(None);
            };
            match buf.get(cr.saturating_add(1)) {
                None => {
                    self.scan = cr;
                    return Ok(None);
                }
                Some(b'\n') => {}
                Some(&got) => return Err(ProtoError::Expected { expected: '\n', got: got as char }),
            }
            let line = &buf[line_start..cr];
            self.pos = cr.saturating_add(2);
            self.scan = 0;
            let kind = match t {
                b'+' => ReplyKind::Status,
                b'-' => ReplyKind::Error,
                b':' => ReplyKind::Integer(parse_i64(line).ok_or(ProtoError::Integer)?),
                b'$' => match parse_i64(line).ok_or(ProtoError::BulkLen)? {
                    -1 => ReplyKind::Nil,
                    n => {
                        self.bulk = Some(bulk_len(n)?);
                        ReplyKind::Bulk
                    }
                },
                b'*' => match parse_i64(line).ok_or(ProtoError::ArrayLen)? {
                    -1 => ReplyKind::NilArray,
                    n => ReplyKind::Array(u32::try_from(n).map_err(|_| ProtoError::ArrayLen)?),
                },
                b'%' => ReplyKind::Map(agg_len(line)?),
                b'~' => ReplyKind::Set(agg_len(line)?),
                b'>' => ReplyKind::Push(agg_len(line)?),
                b'|' => {
                    // A prefix: its pairs, then the value it annotates.
                    let n = agg_len(line)?;
                    if n > 0 {
                        self.stack.push((u64::from(n) * 2, true));
                    }
                    continue;
                }
                b'_' if line.is_empty() => ReplyKind::Null,
                b',' if !line.is_empty() => ReplyKind::Double,
                b'#' => match line {
                    b"t" => ReplyKind::Boolean(true),
                    b"f" => ReplyKind::Boolean(false),
                    _ => return Err(ProtoError::ReplyType(b'#')),
                },
                b'(' if !line.is_empty() => ReplyKind::BigNumber,
                b'=' | b'!' => {
                    self.bulk = Some(bulk_len(parse_i64(line).ok_or(ProtoError::BulkLen)?)?);
                    if t == b'=' {
                        ReplyKind::Verbatim
                    } else {
                        ReplyKind::BlobError
                    }
                }
                other => return Err(ProtoError::ReplyType(other)),
            };
            if self.top.is_none() && self.stack.is_empty() {
                self.top = Some(kind);
            }
            match kind {
                ReplyKind::Bulk | ReplyKind::Verbatim | ReplyKind::BlobError => continue, // data next
                ReplyKind::Array(n) | ReplyKind::Set(n) | ReplyKind::Push(n) if n > 0 => {
                    self.stack.push((u64::from(n), false))
                }
                ReplyKind::Map(n) if n > 0 => self.stack.push((u64::from(n) * 2, false)),
                _ => {
                    if let Some(done) = self.element_done() {
                        return Ok(Some(done));
                    }
                }
            }
        }
    }

    /// One element (or a whole nested array) ended at `pos`: pops finished
    /// arrays and returns the frame once the top level is complete.
    fn element_done(&mut self) -> Option<(usize, ReplyKind)> {
        while let Some((left, attr)) = self.stack.last_mut() {
            // Only counts above zero are pushed.
            *left = left.saturating_sub(1);
            if *left > 0 {
                return None;
            }
            let attr = *attr;
            self.stack.pop();
            if attr {
                // The annotated value follows; it is the element.
                return None;
            }
        }
        let done = (self.pos, self.top.take().unwrap_or(ReplyKind::Nil));
        self.pos = 0;
        self.scan = 0;
        Some(done)
    }
}

/// An aggregate's element count (arrays, maps, sets, pushes, attributes).
fn agg_len(line: &[u8]) -> Result<u32, ProtoError> {
    parse_i64(line).and_then(|n| u32::try_from(n).ok()).ok_or(ProtoError::ArrayLen)
}

/// A bulk-like length (`$`, `=`, `!`), within `MAX_REPLY_BULK`.
fn bulk_len(n: i64) -> Result<usize, ProtoError> {
    let n = u64::try_from(n).ok().filter(|&n| n <= MAX_REPLY_BULK);
    n.and_then(|n| usize::try_from(n).ok()).ok_or(ProtoError::BulkLen)
}

#[cfg(test)]
#[path = "reply_resp3_tests.rs"]
mod resp3_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn all(dec: &mut ReplyDecoder, buf: &mut BytesMut) -> Vec<Reply> {
        let mut out = Vec::new();
        while let Some(r) = dec.decode(buf).unwrap() {
            out.push(r);
        }
        out
    }

    const STREAM: &[u8] = b"+OK\r\n-ERR no\r\n:42\r\n$3\r\na\r\n\r\n$-1\r\n*-1\r\n*0\r\n\
*3\r\n$1\r\nx\r\n*2\r\n:1\r\n*1\r\n+deep\r\n$-1\r\n:-7\r\n";

    #[test]
    fn every_kind_at_every_boundary() {
        let kinds = [
            ReplyKind::Status,
            ReplyKind::Error,
            ReplyKind::Integer(42),
            ReplyKind::Bulk,
            ReplyKind::Nil,
            ReplyKind::NilArray,
            ReplyKind::Array(0),
            ReplyKind::Array(3),
            ReplyKind::Integer(-7),
        ];
        let whole = all(&mut ReplyDecoder::default(), &mut BytesMut::from(STREAM));
        assert_eq!(whole.iter().map(|r| r.kind).collect::<Vec<_>>(), kinds);
        let joined: Vec<u8> = whole.iter().flat_map(|r| r.raw.to_vec()).collect();
        assert_eq!(joined, STREAM, "frames tile the stream exactly");
        for cut in 0..=STREAM.len() {
            let mut dec = ReplyDecoder::default();
            let mut buf = BytesMut::from(&STREAM[..cut]);
            let mut got = all(&mut dec, &mut buf);
            buf.extend_from_slice(&STREAM[cut..]);
            got.extend(all(&mut dec, &mut buf));
            assert_eq!(got, whole, "split at {cut}");
        }
        let (mut dec, mut buf, mut got) = (ReplyDecoder::default(), BytesMut::new(), Vec::new());
        for &b in STREAM {
            buf.extend_from_slice(&[b]);
            got.extend(all(&mut dec, &mut buf));
        }
        assert_eq!(got, whole, "byte by byte");
    }

    #[test]
    fn elements_split_top_level_only() {
        let mut buf = BytesMut::from(&b"*3\r\n$1\r\nx\r\n*2\r\n:1\r\n$-1\r\n:5\r\n"[..]);
        let r = ReplyDecoder::default().decode(&mut buf).unwrap().unwrap();
        let el: Vec<Vec<u8>> = r.elements().iter().map(|b| b.to_vec()).collect();
        assert_eq!(el, vec![b"$1\r\nx\r\n".to_vec(), b"*2\r\n:1\r\n$-1\r\n".to_vec(), b":5\r\n".to_vec()]);
    }

    #[test]
    fn bad_replies_are_errors() {
        for (bad, e) in [
            (&b"?x\r\n"[..], ProtoError::ReplyType(b'?')),
            (b":x\r\n", ProtoError::Integer),
            (b"$-2\r\n", ProtoError::BulkLen),
            (b"*-5\r\n", ProtoError::ArrayLen),
            (b"$1\r\nab\r\n", ProtoError::MissingCrlf),
            // Lengths that wrapped the data end before checked arithmetic.
            (b"$9223372036854775807\r\n", ProtoError::BulkLen),
            (b"$1099511627777\r\n", ProtoError::BulkLen),
            (b"$01\r\na\r\n", ProtoError::BulkLen),
            (b"*4294967296\r\n", ProtoError::ArrayLen),
            (b"+OK\rx", ProtoError::Expected { expected: '\n', got: 'x' }),
        ] {
            assert_eq!(ReplyDecoder::default().decode(&mut BytesMut::from(bad)), Err(e), "{bad:?}");
        }
    }

    #[test]
    fn deep_nesting_does_not_recurse() {
        let mut s = Vec::new();
        for _ in 0..100_000 {
            s.extend_from_slice(b"*1\r\n");
        }
        s.extend_from_slice(b":1\r\n");
        let r = ReplyDecoder::default().decode(&mut BytesMut::from(&s[..])).unwrap().unwrap();
        assert_eq!(r.raw.len(), s.len());
    }
}
