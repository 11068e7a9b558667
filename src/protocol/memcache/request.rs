//! Incremental decoder for memcached ASCII requests.
//!
//! Invariants: a request is returned whole (command line plus, for storage
//! commands, its data block and CRLF) and split off the buffer without
//! copying; keys are ranges into it. A data block split across reads is
//! waited for without re-parsing the command line. Lines end in `\r\n` or
//! a bare `\n`, as memcached allows.

use bytes::{Bytes, BytesMut};

use super::MAX_KEY;
use crate::protocol::num::parse_u64;
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
}

impl McCmd {
    fn parse(word: &[u8]) -> Option<McCmd> {
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

/// Resumable request decoder; one per client connection.
#[derive(Debug)]
pub struct McRequestDecoder {
    max: usize,
    /// Where to resume looking for the line's `\n`.
    scan: usize,
    /// A parsed storage line waiting for its data: (request so far, total
    /// frame length including the data's CRLF).
    pending: Option<(McRequest, usize)>,
}

impl McRequestDecoder {
    pub fn new(max_request_bytes: usize) -> Self {
        McRequestDecoder { max: max_request_bytes.min(u32::MAX as usize), scan: 0, pending: None }
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
            if &buf[total - 2..total] != b"\r\n" {
                return Err(ProtoError::McBadData);
            }
            let (mut req, _) = self.pending.take().unwrap_or_else(|| unreachable!());
            req.raw = buf.split_to(total).freeze();
            return Ok(Some(req));
        }
        let start = self.scan.min(buf.len());
        let Some(i) = memchr::memchr(b'\n', &buf[start..]) else {
            if buf.len() > self.max {
                return Err(ProtoError::TooLarge { max: self.max });
            }
            self.scan = buf.len();
            return Ok(None);
        };
        self.scan = 0;
        let nl = start + i;
        let line_end = if nl > 0 && buf[nl - 1] == b'\r' { nl - 1 } else { nl };
        let (req, data_len) = parse_line(&buf[..line_end])?;
        match data_len {
            None => {
                let mut req = req;
                req.raw = buf.split_to(nl + 1).freeze();
                Ok(Some(req))
            }
            Some(n) => {
                let total = nl + 1 + n + 2;
                if total > self.max {
                    return Err(ProtoError::TooLarge { max: self.max });
                }
                self.pending = Some((req, total));
                self.decode(buf)
            }
        }
    }
}

/// Parses a command line; returns the request (keys located in `line`,
/// which is the front of the frame) and the data block length, if any.
fn parse_line(line: &[u8]) -> Result<(McRequest, Option<usize>), ProtoError> {
    let mut toks = Vec::with_capacity(8);
    let mut i = 0;
    while i < line.len() {
        while i < line.len() && line[i] == b' ' {
            i += 1;
        }
        let s = i;
        while i < line.len() && line[i] != b' ' {
            i += 1;
        }
        if i > s {
            toks.push((s, i));
        }
    }
    let tok = |k: usize| toks.get(k).map(|&(s, e)| &line[s..e]);
    let cmd = McCmd::parse(tok(0).ok_or(ProtoError::McUnknown)?).ok_or(ProtoError::McUnknown)?;
    let n = toks.len();
    let noreply = |at: usize| -> Result<bool, ProtoError> {
        match n {
            _ if n == at => Ok(false),
            _ if n == at + 1 && tok(at) == Some(b"noreply") => Ok(true),
            _ => Err(ProtoError::McBadLine),
        }
    };
    let num = |k: usize| tok(k).and_then(parse_u64).ok_or(ProtoError::McBadLine);
    let (nkeys, noreply, data) = match cmd {
        McCmd::Get | McCmd::Gets if n >= 2 => (n - 1, false, None),
        McCmd::Quit | McCmd::Version if n == 1 => (0, false, None),
        McCmd::Cas if n >= 6 => {
            let (_, _, len, _) = (num(2)?, num(3)?, num(4)?, num(5)?);
            (1, noreply(6)?, Some(len as usize))
        }
        c if c.is_storage() && c != McCmd::Cas && n >= 5 => {
            let (_, _, len) = (num(2)?, num(3)?, num(4)?);
            (1, noreply(5)?, Some(len as usize))
        }
        McCmd::Delete if n >= 2 => {
            // `delete <key> [0] [noreply]`: the old hold time must be 0.
            let at = if tok(2) == Some(b"0") { 3 } else { 2 };
            (1, noreply(at)?, None)
        }
        McCmd::Incr | McCmd::Decr | McCmd::Touch if n >= 3 => {
            num(2)?;
            (1, noreply(3)?, None)
        }
        _ => return Err(ProtoError::McBadLine),
    };
    let mut keys = Vec::with_capacity(nkeys);
    for &(s, e) in &toks[1..1 + nkeys] {
        if e - s > MAX_KEY {
            return Err(ProtoError::McKeyTooLong);
        }
        keys.push((s as u32, e as u32));
    }
    Ok((McRequest { raw: Bytes::new(), cmd, keys, noreply }, data))
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
