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
//!   as that is known, before its data is buffered.

use bytes::{Bytes, BytesMut};

use super::encode;
use super::inline::split_args;
use crate::protocol::num::parse_i64;
use crate::protocol::ProtoError;

/// Redis's own `proto-max-bulk-len` default: 512 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 512 << 20;
/// Longest inline line or header line Redis accepts (`PROTO_INLINE_MAX_SIZE`).
const MAX_LINE: usize = 64 * 1024;
/// Most arguments in one multibulk request (Redis: 1024*1024).
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
        // Locate each argument after its `$<len>\r\n` header.
        let mut pos = memchr::memchr(b'\n', &raw).map_or(0, |i| i + 1);
        for a in args {
            let hdr_end = pos + memchr::memchr(b'\n', &raw[pos..]).map_or(0, |i| i + 1);
            ranges.push((hdr_end as u32, (hdr_end + a.len()) as u32));
            pos = hdr_end + a.len() + 2;
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
    pub fn arg(&self, i: usize) -> &[u8] {
        self.args.get(i).map_or(&[][..], |&(s, e)| &self.raw[s as usize..e as usize])
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
        }
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
                    let Some(cr) = self.line_end(buf, 1, ProtoError::ArrayLen)? else { return Ok(None) };
                    let n = parse_i64(&buf[1..cr]).ok_or(ProtoError::ArrayLen)?;
                    if n > MAX_ARGS {
                        return Err(ProtoError::ArrayLen);
                    }
                    if n <= 0 {
                        // Redis ignores `*0` and `*-1` requests: no reply.
                        let _ = buf.split_to(cr + 2);
                        self.reset();
                        continue;
                    }
                    self.pos = cr + 2;
                    self.scan = 0;
                    self.args.clear();
                    // Declared counts are untrusted: grow as arguments arrive.
                    self.args.reserve((n as usize).min(64));
                    self.state = State::Args { left: n as u32 };
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
                    let Some(cr) = self.line_end(buf, self.pos + 1, ProtoError::BulkLen)? else {
                        return Ok(None);
                    };
                    let len = parse_i64(&buf[self.pos + 1..cr]).ok_or(ProtoError::BulkLen)?;
                    if !(0..=DEFAULT_MAX_REQUEST_BYTES as i64).contains(&len) {
                        return Err(ProtoError::BulkLen);
                    }
                    // Declared size known: refuse now rather than buffer it.
                    if cr + 2 + len as usize + 2 > self.max {
                        return Err(ProtoError::TooLarge { max: self.max });
                    }
                    self.pos = cr + 2;
                    self.scan = 0;
                    self.state = State::Bulk { len: len as u32, left };
                }
                State::Bulk { len, left } => {
                    let end = self.pos + len as usize;
                    if buf.len() < end + 2 {
                        return Ok(None);
                    }
                    if &buf[end..end + 2] != b"\r\n" {
                        return Err(ProtoError::MissingCrlf);
                    }
                    self.args.push((self.pos as u32, end as u32));
                    self.pos = end + 2;
                    self.state = State::Args { left: left - 1 };
                }
            }
        }
    }

    /// Finds the CR of a `\r\n` at or after `from`; `Ok(None)` if the line
    /// is not complete yet. A line longer than `MAX_LINE` is `too_long`.
    fn line_end(&mut self, buf: &[u8], from: usize, too_long: ProtoError) -> Result<Option<usize>, ProtoError> {
        let start = from.max(self.scan);
        match memchr::memchr(b'\r', &buf[start.min(buf.len())..]) {
            Some(i) => {
                let cr = start + i;
                if cr + 1 >= buf.len() {
                    self.scan = cr; // re-check this CR once its LF arrives
                    return Ok(None);
                }
                if buf[cr + 1] != b'\n' {
                    return Err(ProtoError::Expected { expected: '\n', got: buf[cr + 1] as char });
                }
                Ok(Some(cr))
            }
            None if buf.len() - from > MAX_LINE => Err(too_long),
            None => {
                self.scan = buf.len();
                Ok(None)
            }
        }
    }

    fn inline(&mut self, buf: &mut BytesMut) -> Result<Step, ProtoError> {
        let start = self.scan.min(buf.len());
        let Some(i) = memchr::memchr(b'\n', &buf[start..]) else {
            if buf.len() > MAX_LINE {
                return Err(ProtoError::InlineTooBig);
            }
            self.scan = buf.len();
            return Ok(Step::Incomplete);
        };
        let nl = start + i;
        let line = buf.split_to(nl + 1);
        self.reset();
        let body = line[..nl].strip_suffix(b"\r").unwrap_or(&line[..nl]);
        let parts = split_args(body)?;
        if parts.is_empty() {
            return Ok(Step::Again); // empty lines are skipped, as Redis does
        }
        let total: usize = parts.iter().map(|p| p.len() + 16).sum();
        if total > self.max {
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

enum Step {
    Frame(Request),
    Again,
    Incomplete,
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
