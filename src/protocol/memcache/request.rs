//! Incremental decoder for memcached ASCII requests.
//!
//! Invariants: a request is returned whole (command line plus, for storage
//! commands, its data block and CRLF) and split off the buffer without
//! copying; keys are ranges into it. A data block split across reads is
//! waited for without re-parsing the command line. Lines end in `\r\n` or
//! a bare `\n`, as memcached allows. The line's fields are validated by
//! `line` before anything is returned, and every length sum is checked:
//! a request that is returned ends exactly where memcached would end it.

use bytes::{Bytes, BytesMut};

use super::line::{parse_line, Line};
use crate::protocol::ProtoError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum McCmd {
    Get,
    Gets,
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    Cas,
    Delete,
    Incr,
    Decr,
    Touch,
    Quit,
    Version,
    /// `stats` with no argument: answered by Puerta itself.
    Stats,
    /// `flush_all [delay] [noreply]`: every server, or refused
    /// (`allow_flush`).
    FlushAll,
}

impl McCmd {
    pub(super) fn parse(word: &[u8]) -> Option<McCmd> {
        Some(match word {
            b"get" => McCmd::Get,
            b"gets" => McCmd::Gets,
            b"set" => McCmd::Set,
            b"add" => McCmd::Add,
            b"replace" => McCmd::Replace,
            b"append" => McCmd::Append,
            b"prepend" => McCmd::Prepend,
            b"cas" => McCmd::Cas,
            b"delete" => McCmd::Delete,
            b"incr" => McCmd::Incr,
            b"decr" => McCmd::Decr,
            b"touch" => McCmd::Touch,
            b"quit" => McCmd::Quit,
            b"version" => McCmd::Version,
            b"stats" => McCmd::Stats,
            b"flush_all" => McCmd::FlushAll,
            _ => return None,
        })
    }

    /// get/gets: the reply is VALUE blocks closed by END.
    pub fn is_retrieval(self) -> bool {
        matches!(self, McCmd::Get | McCmd::Gets)
    }

    pub fn is_storage(self) -> bool {
        matches!(self, McCmd::Set | McCmd::Add | McCmd::Replace | McCmd::Append | McCmd::Prepend | McCmd::Cas)
    }
}

/// One memcached request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McRequest {
    raw: Bytes,
    pub cmd: McCmd,
    keys: Vec<(u32, u32)>,
    /// The client asked for no reply.
    pub noreply: bool,
}

impl McRequest {
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    pub fn nkeys(&self) -> usize {
        self.keys.len()
    }

    pub fn key(&self, i: usize) -> &[u8] {
        self.keys.get(i).map_or(&[][..], |&(s, e)| &self.raw[s as usize..e as usize])
    }

    /// The command word as sent (`get` or `gets`), for sub-requests.
    pub fn word(&self) -> &'static [u8] {
        if self.cmd == McCmd::Gets {
            b"gets"
        } else {
            b"get"
        }
    }
}

/// Longest command line memcached keeps waiting for, except get/gets:
/// `try_read_command_ascii` closes a connection that buffered more than
/// 2048 bytes without a newline unless the line is a multi-get. The longest
/// valid storage line is about 320 bytes.
pub const MAX_LINE: usize = 2048;
/// memcached's default item size limit (`-I 1m`).
pub const DEFAULT_MAX_ITEM_BYTES: usize = 1 << 20;
/// The largest `-I` memcached takes (`ITEM_SIZE_MAX_UPPER_LIMIT`, 1 GiB).
pub const MAX_ITEM_BYTES_LIMIT: usize = 1 << 30;

/// Resumable request decoder; one per client connection.
#[derive(Debug)]
pub struct McRequestDecoder {
    max: usize,
    max_item: usize,
    /// Where to resume looking for the line's `\n`.
    scan: usize,
    /// A parsed storage line waiting for its data: (request so far, total
    /// frame length including the data's CRLF).
    pending: Option<(McRequest, usize)>,
}

impl McRequestDecoder {
    /// `max_request_bytes` bounds a whole frame (capped at 4 GiB - 1, as
    /// key offsets are u32); `max_item_bytes` bounds a data block.
    pub fn new(max_request_bytes: usize, max_item_bytes: usize) -> Self {
        McRequestDecoder {
            max: max_request_bytes.min(u32::MAX as usize),
            max_item: max_item_bytes.min(MAX_ITEM_BYTES_LIMIT),
            scan: 0,
            pending: None,
        }
    }

    pub fn is_idle(&self) -> bool {
        self.scan == 0 && self.pending.is_none()
    }

    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<McRequest>, ProtoError> {
        if let Some((_, total)) = &self.pending {
            let total = *total;
            if buf.len() < total {
                return Ok(None);
            }
            // `total` covers the line and at least the data's CRLF.
            if buf.get(total.saturating_sub(2)..total) != Some(&b"\r\n"[..]) {
                return Err(ProtoError::McBadData);
            }
            let (mut req, _) = self.pending.take().unwrap_or_else(|| unreachable!());
            req.raw = buf.split_to(total).freeze();
            return Ok(Some(req));
        }
        let start = self.scan.min(buf.len());
        let Some(nl) = memchr::memchr(b'\n', &buf[start..]).and_then(|i| start.checked_add(i)) else {
            if buf.len() > MAX_LINE && !is_multi_get(buf) {
                return Err(ProtoError::McLineTooLong);
            }
            if buf.len() > self.max {
                return Err(ProtoError::TooLarge { max: self.max });
            }
            self.scan = buf.len();
            return Ok(None);
        };
        self.scan = 0;
        let line = &buf[..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // `nl` counts the CR too: memcached may have seen those bytes
        // arrive without their LF.
        if nl > MAX_LINE && !is_multi_get(line) {
            return Err(ProtoError::McLineTooLong);
        }
        let line_len = nl.checked_add(1).ok_or(ProtoError::TooLarge { max: self.max })?;
        if line_len > self.max {
            return Err(ProtoError::TooLarge { max: self.max });
        }
        let Line { cmd, keys, noreply, data } = parse_line(line, self.max_item)?;
        let req = McRequest { raw: Bytes::new(), cmd, keys, noreply };
        match data {
            None => {
                let mut req = req;
                req.raw = buf.split_to(line_len).freeze();
                Ok(Some(req))
            }
            Some(n) => {
                // line + data + CRLF, checked: `n` came off the wire.
                let total = line_len.checked_add(n).and_then(|t| t.checked_add(2));
                let total = total.filter(|&t| t <= self.max).ok_or(ProtoError::TooLarge { max: self.max })?;
                self.pending = Some((req, total));
                self.decode(buf)
            }
        }
    }
}

/// A line memcached lets grow past `MAX_LINE`: one that starts with
/// `get ` or `gets ` (Puerta allows no leading spaces there).
fn is_multi_get(line: &[u8]) -> bool {
    line.starts_with(b"get ") || line.starts_with(b"gets ")
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
