//! Incremental decoder for memcached replies. The caller says whether the
//! reply answers a retrieval (get/gets), because only then is it a run of
//! `VALUE` blocks closed by `END`; every other reply is one line.
//!
//! Invariants: a retrieval reply is returned whole, with the position of
//! each VALUE block and its key, so a split multi-get can be merged without
//! parsing again; data blocks split across reads resume without re-parsing.

use bytes::{Bytes, BytesMut};

use crate::protocol::num::parse_u64;
use crate::protocol::ProtoError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum McReplyKind {
    /// VALUE blocks (maybe none) and END.
    Values,
    Stored,
    NotStored,
    Exists,
    NotFound,
    Deleted,
    Touched,
    /// incr/decr result.
    Number,
    Version,
    /// `ERROR`, `CLIENT_ERROR ...` or `SERVER_ERROR ...`.
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McReply {
    pub raw: Bytes,
    pub kind: McReplyKind,
    /// For `Values`: `(key start, key end, block start, block end)` offsets
    /// into `raw`, one per VALUE block in order.
    pub blocks: Vec<(u32, u32, u32, u32)>,
}

impl McReply {
    pub fn is_error(&self) -> bool {
        self.kind == McReplyKind::Error
    }

    /// VALUE block `i`: `(key, whole block including its data and CRLF)`.
    pub fn block(&self, i: usize) -> Option<(&[u8], Bytes)> {
        let &(ks, ke, bs, be) = self.blocks.get(i)?;
        Some((&self.raw[ks as usize..ke as usize], self.raw.slice(bs as usize..be as usize)))
    }
}

/// Resumable reply decoder; one per backend connection.
#[derive(Debug, Default)]
pub struct McReplyDecoder {
    pos: usize,
    scan: usize,
    /// Data bytes (plus CRLF) expected at `pos` for the current VALUE.
    data: Option<usize>,
    blocks: Vec<(u32, u32, u32, u32)>,
}

impl McReplyDecoder {
    pub fn decode(&mut self, buf: &mut BytesMut, retrieval: bool) -> Result<Option<McReply>, ProtoError> {
        loop {
            if let Some(n) = self.data {
                let end = self.pos + n;
                if buf.len() < end + 2 {
                    return Ok(None);
                }
                if &buf[end..end + 2] != b"\r\n" {
                    return Err(ProtoError::McBadData);
                }
                self.pos = end + 2;
                if let Some(b) = self.blocks.last_mut() {
                    b.3 = self.pos as u32;
                }
                self.data = None;
            }
            let start = self.pos.max(self.scan).min(buf.len());
            let Some(i) = memchr::memchr(b'\n', &buf[start..]) else {
                self.scan = buf.len();
                return Ok(None);
            };
            let nl = start + i;
            self.scan = 0;
            let line_start = self.pos;
            let line = &buf[line_start..nl];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            self.pos = nl + 1;
            let error = line == b"ERROR" || line.starts_with(b"CLIENT_ERROR") || line.starts_with(b"SERVER_ERROR");
            let kind = if retrieval && !error {
                if line == b"END" {
                    McReplyKind::Values
                } else if let Some(rest) = line.strip_prefix(b"VALUE ") {
                    // VALUE <key> <flags> <bytes> [<cas>]
                    let mut f = rest.split(|&b| b == b' ').filter(|t| !t.is_empty());
                    let key = f.next().ok_or(ProtoError::McBadLine)?;
                    let _flags = f.next().and_then(parse_u64).ok_or(ProtoError::McBadLine)?;
                    let len = f.next().and_then(parse_u64).ok_or(ProtoError::McBadLine)?;
                    let ks = line_start + 6 + (key.as_ptr() as usize - rest.as_ptr() as usize);
                    let ke = ks + key.len();
                    self.blocks.push((ks as u32, ke as u32, line_start as u32, 0));
                    self.data = Some(len as usize);
                    continue;
                } else {
                    return Err(ProtoError::McBadLine);
                }
            } else if error {
                McReplyKind::Error
            } else {
                match line {
                    b"STORED" => McReplyKind::Stored,
                    b"NOT_STORED" => McReplyKind::NotStored,
                    b"EXISTS" => McReplyKind::Exists,
                    b"NOT_FOUND" => McReplyKind::NotFound,
                    b"DELETED" => McReplyKind::Deleted,
                    b"TOUCHED" => McReplyKind::Touched,
                    l if l.starts_with(b"VERSION ") => McReplyKind::Version,
                    l if parse_u64(l).is_some() => McReplyKind::Number,
                    _ => return Err(ProtoError::McBadLine),
                }
            };
            let raw = buf.split_to(self.pos).freeze();
            let blocks = std::mem::take(&mut self.blocks);
            self.pos = 0;
            return Ok(Some(McReply { raw, kind, blocks }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GETS: &[u8] = b"VALUE a 0 1\r\nx\r\nVALUE bb 5 4 77\r\n\r\nyz\r\nEND\r\n";

    #[test]
    fn value_blocks_at_every_boundary() {
        for cut in 0..=GETS.len() {
            let mut dec = McReplyDecoder::default();
            let mut buf = BytesMut::from(&GETS[..cut]);
            let mut got = dec.decode(&mut buf, true).unwrap();
            if got.is_none() {
                buf.extend_from_slice(&GETS[cut..]);
                got = dec.decode(&mut buf, true).unwrap();
            }
            let r = got.unwrap_or_else(|| panic!("split at {cut}"));
            assert_eq!(r.kind, McReplyKind::Values);
            assert_eq!(&r.raw[..], GETS);
            let (k, b) = r.block(1).unwrap();
            assert_eq!(k, b"bb");
            assert_eq!(&b[..], b"VALUE bb 5 4 77\r\n\r\nyz\r\n");
            assert_eq!(r.block(0).unwrap().0, b"a");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn single_line_replies() {
        let lines = "STORED\r\nNOT_STORED\r\nEXISTS\r\nNOT_FOUND\r\nDELETED\r\nTOUCHED\r\n42\r\n\
VERSION 1.6.21\r\nERROR\r\nCLIENT_ERROR bad\r\nSERVER_ERROR out of memory\r\n";
        let mut buf = BytesMut::from(lines.as_bytes());
        let mut dec = McReplyDecoder::default();
        let mut kinds = Vec::new();
        while let Some(r) = dec.decode(&mut buf, false).unwrap() {
            kinds.push(r.kind);
        }
        use McReplyKind::*;
        assert_eq!(
            kinds,
            [Stored, NotStored, Exists, NotFound, Deleted, Touched, Number, Version, Error, Error, Error]
        );
        // An error can answer a get too.
        let r = dec.decode(&mut BytesMut::from(&b"SERVER_ERROR busy\r\n"[..]), true).unwrap().unwrap();
        assert!(r.is_error());
    }

    #[test]
    fn malformed_replies_are_errors() {
        let mut dec = McReplyDecoder::default();
        assert!(dec.decode(&mut BytesMut::from(&b"WHAT\r\n"[..]), false).is_err());
        let mut dec = McReplyDecoder::default();
        assert!(dec.decode(&mut BytesMut::from(&b"VALUE a 0 1\r\nxyz\r\n"[..]), true).is_err());
        let mut dec = McReplyDecoder::default();
        assert!(dec.decode(&mut BytesMut::from(&b"VALUE a x 1\r\n"[..]), true).is_err());
    }
}
