//! Incremental decoder for client requests: RESP arrays of bulk strings and
//! inline commands, pipelined back to back in one buffer.
//!
//! Invariants:
//! - `decode` consumes bytes only when it returns a whole `Request`; between
//!   calls it remembers the frame's parsed prefix (`pos`, the argument
//!   ranges, where the CRLF search stopped), so a frame split at any byte
//!   boundary is scanned once;
//! - every `Request` holds RESP-encoded bytes (inline commands are
//!   re-encoded), so it can be forwarded as is;
//! - a frame (or the size it declares) over `max` bytes is an error as soon
//!   as that is known, before its data is buffered;
//! - numbers are read as Redis's `string2ll` reads them, and a request is
//!   returned only if Redis 7.0 would accept it and end it at the same byte
//!   (`processMultibulkBuffer`): `*` counts up to `MAX_ARGS` (Redis: up to
//!   INT_MAX; `*0` and negative counts are skipped, as Redis skips them),
//!   `$` lengths 0 to 512 MiB (`proto-max-bulk-len`). Redis also takes any
//!   byte after a `\r` and any two bytes after bulk data; Puerta wants
//!   `\r\n`. What Redis would refuse never reaches a backend: on a shared
//!   connection, Redis's protocol error would close it for every client.

use bytes::{Bytes, BytesMut};

use super::encode;
use super::inline::split_args;
use crate::protocol::num::{parse_i64, REDIS_LONG_STR_SIZE};
use crate::protocol::ProtoError;

/// Redis's own `proto-max-bulk-len` default: 512 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 512 << 20;
/// Longest inline line Redis accepts (`PROTO_INLINE_MAX_SIZE`).
const MAX_LINE: usize = 64 * 1024;
/// Longest `*`/`$` header line, type byte excluded, that can still hold a
/// valid number: `string2ll` refuses 21 bytes or more (`LONG_STR_SIZE`).
/// Redis waits up to 64 KiB for the CR before it says so; Puerta knows at
/// the 21st byte that the line cannot be valid.
const MAX_HEADER: usize = REDIS_LONG_STR_SIZE - 1;
/// Most arguments in one multibulk request. Redis 7 takes up to INT_MAX
/// (memory permitting); Puerta refuses more than 1M, which bounds the
/// argument table a client can make it build.
const MAX_ARGS: i64 = 1024 * 1024;

/// One client command, RESP encoded, with its arguments located in `raw`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    raw: Bytes,
    /// `(start, end)` of each argument's data inside `raw`.
    args: Vec<(u32, u32)>,
}

impl Request {
    /// Builds a request from arguments (tests, inline commands, sub-requests).
    pub fn from_args<'a>(args: impl ExactSizeIterator<Item = &'a [u8]> + Clone) -> Request {
        let raw = encode::command(args.clone());
        let mut ranges = Vec::with_capacity(args.len());
        // Locate each argument after its `$<len>\r\n` header. `raw` is our
        // own encoding of in-memory arguments: the sums cannot overflow.
        let line_after = |from: usize| {
            let rest = raw.get(from..).unwrap_or_default();
            memchr::memchr(b'\n', rest).map_or(from, |i| from.saturating_add(i).saturating_add(1))
        };
        let mut pos = line_after(0);
        for a in args {
            let start = line_after(pos);
            let end = start.saturating_add(a.len());
            ranges.push((start as u32, end as u32));
            pos = end.saturating_add(2);
        }
        Request { raw, args: ranges }
    }

    /// The encoded frame, ready to forward.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    pub fn argc(&self) -> usize {
        self.args.len()
    }

    /// Argument `i` (0 is the command name); empty if out of range.
    #[inline]
    pub fn arg(&self, i: usize) -> &[u8] {
        match self.args.get(i) {
            Some(&(s, e)) => &self.raw[s as usize..e as usize],
            None => &[],
        }
    }

    /// Argument `i` as a zero-copy `Bytes` slice of the frame.
    pub fn arg_bytes(&self, i: usize) -> Bytes {
        self.args.get(i).map_or_else(Bytes::new, |&(s, e)| self.raw.slice(s as usize..e as usize))
    }

    pub fn args(&self) -> impl ExactSizeIterator<Item = &[u8]> + Clone + '_ {
        self.args.iter().map(|&(s, e)| &self.raw[s as usize..e as usize])
    }

    /// The command name as sent (any case).
    pub fn name(&self) -> &[u8] {
        self.arg(0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between frames.
    Start,
    /// Inside an array: `left` bulk strings still to read, the next header
    /// at `pos`.
    Args { left: u32 },
    /// A bulk header was read: `len` data bytes + CRLF start at `pos`.
    Bulk { len: u32, left: u32 },
}

/// Resumable request decoder; one per client connection.
#[derive(Debug)]
pub struct RequestDecoder {
    max: usize,
    state: State,
    /// Bytes of the current frame already parsed.
    pos: usize,
    /// Where to resume looking for a line end (bytes before it hold none).
    scan: usize,
    args: Vec<(u32, u32)>,
    /// nutcracker's rule (twemproxy pools): an empty line, `*0` and a
    /// negative count close the client instead of being skipped.
    refuse_empty: bool,
}

impl RequestDecoder {
    /// `max_request_bytes`: the largest frame accepted (capped at 4 GiB - 1
    /// since argument offsets are u32).
    pub fn new(max_request_bytes: usize) -> Self {
        RequestDecoder {
            max: max_request_bytes.min(u32::MAX as usize),
            state: State::Start,
            pos: 0,
            scan: 0,
            args: Vec::new(),
            refuse_empty: false,
        }
    }

    /// As `new`, refusing empty requests (an empty inline line, `*0`,
    /// `*-1`) as nutcracker does: it closes the client for them, where
    /// Redis skips them silently.
    pub fn nutcracker(max_request_bytes: usize) -> Self {
        RequestDecoder { refuse_empty: true, ..Self::new(max_request_bytes) }
    }

    /// True when no partial frame is buffered.
    pub fn is_idle(&self) -> bool {
        self.state == State::Start && self.scan == 0
    }

    /// Decodes the next request from the front of `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, ProtoError> {
        loop {
            match self.state {
                State::Start => {
                    let Some(&first) = buf.first() else { return Ok(None) };
                    if first != b'*' {
                        match self.inline(buf)? {
                            Step::Frame(r) => return Ok(Some(r)),
                            Step::Again => continue,
                            Step::Incomplete => return Ok(None),
                        }
                    }
                    let Some(cr) = self.header_end(buf, 0, ProtoError::ArrayLen)? else { return Ok(None) };
                    let n = parse_i64(&buf[1..cr]).ok_or(ProtoError::ArrayLen)?;
                    if n > MAX_ARGS {
                        return Err(ProtoError::ArrayLen);
                    }
                    let next = crlf_end(cr)?;
                    match u32::try_from(n) {
                        Ok(n) if n > 0 => {
                            self.pos = next;
                            self.scan = 0;
                            self.args.clear();
                            // Declared counts are untrusted: grow as arguments arrive.
                            self.args.reserve((n as usize).min(64));
                            self.state = State::Args { left: n };
                        }
                        _ if self.refuse_empty => return Err(ProtoError::EmptyRequest),
                        // Redis skips `*0` and negative counts: no reply.
                        _ => {
                            let _ = buf.split_to(next);
                            self.reset();
                        }
                    }
                }
                State::Args { left: 0 } => {
                    let raw = buf.split_to(self.pos).freeze();
                    let args = std::mem::take(&mut self.args);
                    self.reset();
                    return Ok(Some(Request { raw, args }));
                }
                State::Args { left } => {
                    let Some(&c) = buf.get(self.pos) else { return Ok(None) };
                    if c != b'$' {
                        return Err(ProtoError::Expected { expected: '$', got: c as char });
                    }
                    let Some(cr) = self.header_end(buf, self.pos, ProtoError::BulkLen)? else {
                        return Ok(None);
                    };
                    let digits = buf.get(self.pos.saturating_add(1)..cr).unwrap_or_default();
                    let len = parse_i64(digits).ok_or(ProtoError::BulkLen)?;
                    let len = u32::try_from(len)
                        .ok()
                        .filter(|&l| l as usize <= DEFAULT_MAX_REQUEST_BYTES)
                        .ok_or(ProtoError::BulkLen)?;
                    // Declared size known: refuse now rather than buffer it.
                    let data = crlf_end(cr)?;
                    let frame = data.checked_add(len as usize).and_then(|e| e.checked_add(2));
                    if frame.is_none_or(|f| f > self.max) {
                        return Err(ProtoError::TooLarge { max: self.max });
                    }
                    self.pos = data;
                    self.scan = 0;
                    self.state = State::Bulk { len, left };
                }
                State::Bulk { len, left } => {
                    // `pos + len + 2 <= max <= u32::MAX` was checked above.
                    let end = self.pos.saturating_add(len as usize);
                    let after = end.saturating_add(2);
                    if buf.len() < after {
                        return Ok(None);
                    }
                    if &buf[end..after] != b"\r\n" {
                        return Err(ProtoError::MissingCrlf);
                    }
                    self.args.push((self.pos as u32, end as u32));
                    self.pos = after;
                    self.state = State::Args { left: left.saturating_sub(1) };
                }
            }
        }
    }

    /// Finds the CR ending the `*`/`$` header line whose type byte is at
    /// `at`; `Ok(None)` if the line is not complete yet. A line that can
    /// no longer hold a valid number is `invalid`.
    fn header_end(&mut self, buf: &[u8], at: usize, invalid: ProtoError) -> Result<Option<usize>, ProtoError> {
        let from = at.saturating_add(1);
        let start = from.max(self.scan).min(buf.len());
        match memchr::memchr(b'\r', &buf[start..]).and_then(|i| start.checked_add(i)) {
            Some(cr) if cr.saturating_sub(from) > MAX_HEADER => Err(invalid),
            Some(cr) => match buf.get(cr.saturating_add(1)) {
                None => {
                    self.scan = cr; // re-check this CR once its LF arrives
                    Ok(None)
                }
                Some(b'\n') => Ok(Some(cr)),
                Some(&got) => Err(ProtoError::Expected { expected: '\n', got: got as char }),
            },
            None if buf.len().saturating_sub(from) > MAX_HEADER => Err(invalid),
            None => {
                self.scan = buf.len();
                Ok(None)
            }
        }
    }

    fn inline(&mut self, buf: &mut BytesMut) -> Result<Step, ProtoError> {
        let start = self.scan.min(buf.len());
        let Some(nl) = memchr::memchr(b'\n', &buf[start..]).and_then(|i| start.checked_add(i)) else {
            if buf.len() > MAX_LINE {
                return Err(ProtoError::InlineTooBig);
            }
            self.scan = buf.len();
            return Ok(Step::Incomplete);
        };
        if nl > MAX_LINE {
            return Err(ProtoError::InlineTooBig);
        }
        let line = buf.split_to(nl.saturating_add(1));
        self.reset();
        let body = &line[..nl];
        // Redis finds the newline with strchr: a NUL hides it for good, and
        // Redis waits for a newline that never comes.
        if body.contains(&0) {
            return Err(ProtoError::InlineTooBig);
        }
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        let parts = split_args(body)?;
        if parts.is_empty() && self.refuse_empty {
            return Err(ProtoError::EmptyRequest);
        }
        if parts.is_empty() {
            return Ok(Step::Again); // empty lines are skipped, as Redis does
        }
        // Re-encoded size: each argument plus at most 16 bytes of header.
        let total = parts.iter().try_fold(0usize, |t, p| t.checked_add(p.len())?.checked_add(16));
        if total.is_none_or(|t| t > self.max) {
            return Err(ProtoError::TooLarge { max: self.max });
        }
        Ok(Step::Frame(Request::from_args(parts.iter().map(|p| &p[..]))))
    }

    fn reset(&mut self) {
        self.state = State::Start;
        self.pos = 0;
        self.scan = 0;
    }
}

/// Where the next line starts after the CR at `cr` (its LF was checked).
fn crlf_end(cr: usize) -> Result<usize, ProtoError> {
    cr.checked_add(2).ok_or(ProtoError::MissingCrlf)
}

enum Step {
    Frame(Request),
    Again,
    Incomplete,
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
