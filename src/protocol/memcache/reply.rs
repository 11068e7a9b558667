//! Incremental decoder for memcached replies. The caller says whether the
//! reply answers a retrieval (get/gets), because only then is it a run of
//! `VALUE` blocks closed by `END`; every other reply is one line.
//!
//! Invariants: a retrieval reply is returned whole, with the position of
//! each VALUE block and its key, so a split multi-get can be merged without
//! parsing again; data blocks split across reads resume without re-parsing.

use bytes::{Bytes, BytesMut};

use crate::protocol::num::{parse_u32, parse_u64};
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
    /// `OK` (flush_all).
    Ok,
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

/// The largest data block a VALUE line may declare: memcached's own upper
/// bound on its item size (`ITEM_SIZE_MAX_UPPER_LIMIT`, 1 GiB). A backend
/// is trusted for its data, not its framing: a larger length is an error
/// for that backend connection, never a wrapped sum.
pub const MAX_VALUE_BYTES: usize = 1 << 30;
/// The longest reply line taken from a backend. memcached's longest is a
/// VALUE line of about 320 bytes (a 250-byte key and three numbers); its
/// error lines are short. A backend that sends more without a newline is
/// broken, and is not buffered without bound.
pub const MAX_REPLY_LINE: usize = 8 << 10;

/// Resumable reply decoder; one per backend connection.
#[derive(Debug, Default)]
pub struct McReplyDecoder {
    pos: usize,
    scan: usize,
    /// Data bytes (plus CRLF) expected at `pos` for the current VALUE.
    data: Option<usize>,
    blocks: Vec<(u32, u32, u32, u32)>,
}

/// A reply offset as stored in `McReply::blocks`; a reply past 4 GiB is
/// refused rather than truncated.
fn off(n: usize) -> Result<u32, ProtoError> {
    u32::try_from(n).map_err(|_| ProtoError::TooLarge { max: u32::MAX as usize })
}

impl McReplyDecoder {
    /// The length a reply still being decoded has at least (through the
    /// value it is in the middle of, plus the `END` line that follows a
    /// last value), so a caller can size its buffer once instead of
    /// growing it read by read; `None` when no value is pending.
    pub fn wants(&self) -> Option<usize> {
        self.pos.checked_add(self.data?)?.checked_add(b"\r\nEND\r\n".len())
    }

    pub fn decode(&mut self, buf: &mut BytesMut, retrieval: bool) -> Result<Option<McReply>, ProtoError> {
        loop {
            if let Some(n) = self.data {
                // `n <= MAX_VALUE_BYTES` and `pos <= buf.len()`: no overflow,
                // but checked all the same.
                let end = self.pos.checked_add(n).ok_or(ProtoError::McBadData)?;
                let after = end.checked_add(2).ok_or(ProtoError::McBadData)?;
                if buf.len() < after {
                    return Ok(None);
                }
                if &buf[end..after] != b"\r\n" {
                    return Err(ProtoError::McBadData);
                }
                self.pos = after;
                if let Some(b) = self.blocks.last_mut() {
                    b.3 = off(after)?;
                }
                self.data = None;
            }
            let start = self.pos.max(self.scan).min(buf.len());
            let Some(nl) = memchr::memchr(b'\n', &buf[start..]).and_then(|i| start.checked_add(i)) else {
                if buf.len().saturating_sub(self.pos) > MAX_REPLY_LINE {
                    return Err(ProtoError::McBadLine);
                }
                self.scan = buf.len();
                return Ok(None);
            };
            if nl.saturating_sub(self.pos) > MAX_REPLY_LINE {
                return Err(ProtoError::McBadLine);
            }
            self.scan = 0;
            let line_start = self.pos;
            let line = &buf[line_start..nl];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            self.pos = nl.checked_add(1).ok_or(ProtoError::McBadLine)?;
            let error = line == b"ERROR" || line.starts_with(b"CLIENT_ERROR") || line.starts_with(b"SERVER_ERROR");
            let kind = if retrieval && !error {
                if line == b"END" {
                    McReplyKind::Values
                } else if let Some(rest) = line.strip_prefix(b"VALUE ") {
                    // VALUE <key> <flags> <bytes> [<cas>]
                    let mut f = rest.split(|&b| b == b' ').filter(|t| !t.is_empty());
                    let key = f.next().ok_or(ProtoError::McBadLine)?;
                    let _flags = f.next().and_then(parse_u32).ok_or(ProtoError::McBadLine)?;
                    let len = f.next().and_then(parse_u64).ok_or(ProtoError::McBadLine)?;
                    let len = usize::try_from(len).ok().filter(|&l| l <= MAX_VALUE_BYTES);
                    let len = len.ok_or(ProtoError::McBadLine)?;
                    // The key's offset inside `rest`, then inside the reply.
                    let in_rest = (key.as_ptr() as usize).checked_sub(rest.as_ptr() as usize);
                    let ks = in_rest.and_then(|k| line_start.checked_add(6)?.checked_add(k));
                    let ks = ks.ok_or(ProtoError::McBadLine)?;
                    let ke = ks.checked_add(key.len()).ok_or(ProtoError::McBadLine)?;
                    self.blocks.push((off(ks)?, off(ke)?, off(line_start)?, 0));
                    self.data = Some(len);
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
                    b"OK" => McReplyKind::Ok,
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
    fn wants_covers_the_pending_value_and_end() {
        let mut dec = McReplyDecoder::default();
        let head = b"VALUE big 0 100000\r\n";
        let mut buf = BytesMut::from(&head[..]);
        assert_eq!(dec.wants(), None);
        assert!(dec.decode(&mut buf, true).unwrap().is_none());
        let want = dec.wants().unwrap();
        assert_eq!(want, head.len() + 100_000 + b"\r\nEND\r\n".len());
        buf.extend_from_slice(&vec![b'x'; 100_000]);
        buf.extend_from_slice(b"\r\nEND\r\n");
        assert_eq!(buf.len(), want);
        let r = dec.decode(&mut buf, true).unwrap().unwrap();
        assert_eq!(r.raw.len(), want);
        assert_eq!(dec.wants(), None);
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

    /// The issue's crasher: a backend's VALUE length near u64::MAX wrapped
    /// the block end in release builds and panicked on a slice index.
    #[test]
    fn huge_value_lengths_are_errors_not_wraps() {
        for line in [
            &b"VALUE k 0 18446744073709551582\r\n"[..],
            b"VALUE k 0 18446744073709551615\r\n",
            b"VALUE k 0 1073741825\r\n",
            b"VALUE k 4294967296 1\r\n",
            b"VALUE k -1 1\r\n",
            b"VALUE k 0 -1\r\n",
        ] {
            let mut buf = BytesMut::from(line);
            buf.extend_from_slice(b"x\r\nEND\r\n");
            assert_eq!(McReplyDecoder::default().decode(&mut buf, true), Err(ProtoError::McBadLine), "{line:?}");
        }
        // A line that never ends is refused once it passes the cap.
        let mut buf = BytesMut::from(&b"VALUE k 0 1"[..]);
        buf.extend(std::iter::repeat_n(b' ', MAX_REPLY_LINE));
        assert_eq!(McReplyDecoder::default().decode(&mut buf, true), Err(ProtoError::McBadLine));
        // The largest length accepted waits for its data.
        let mut buf = BytesMut::from(&b"VALUE k 4294967295 1073741824\r\nabc"[..]);
        assert_eq!(McReplyDecoder::default().decode(&mut buf, true), Ok(None));
    }
}
