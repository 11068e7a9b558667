//! A small owned RESP2 value tree for control-plane replies (CLUSTER SLOTS,
//! INFO, SCAN), never for the per-request hot path, which only frames.
//!
//! Input is one whole frame, normally a `Reply::raw` that `ReplyDecoder`
//! already validated; the parser still checks every length and byte so it
//! cannot panic on anything, and it refuses nesting deeper than
//! `MAX_DEPTH` instead of recursing without bound.

use bytes::Bytes;

use crate::protocol::num::parse_i64;
use crate::protocol::ProtoError;

/// Nesting limit; cluster replies are at most four levels deep.
pub const MAX_DEPTH: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Status(Bytes),
    Error(Bytes),
    Int(i64),
    Bulk(Bytes),
    Nil,
    Array(Vec<Value>),
}

impl Value {
    /// Bulk or status bytes.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bulk(b) | Value::Status(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(v) => Some(v),
            _ => None,
        }
    }
}

/// Parses the one frame in `raw` (trailing bytes are an error).
pub fn parse(raw: &Bytes) -> Result<Value, ProtoError> {
    let (v, used) = parse_at(raw, 0, 0)?;
    if used != raw.len() {
        return Err(ProtoError::Expected { expected: '\r', got: raw[used] as char });
    }
    Ok(v)
}

fn parse_at(raw: &Bytes, at: usize, depth: usize) -> Result<(Value, usize), ProtoError> {
    if depth > MAX_DEPTH {
        return Err(ProtoError::TooDeep);
    }
    let t = *raw.get(at).ok_or(ProtoError::MissingCrlf)?;
    // `at < raw.len()` and every index below stays inside `raw`, but the
    // sums are checked all the same: a length here came off the wire.
    let line_start = at.checked_add(1).ok_or(ProtoError::MissingCrlf)?;
    let cr = memchr::memchr(b'\r', raw.get(line_start..).unwrap_or(&[])).and_then(|i| line_start.checked_add(i));
    let cr = cr.ok_or(ProtoError::MissingCrlf)?;
    let next = cr.checked_add(2).ok_or(ProtoError::MissingCrlf)?;
    if raw.get(cr..next) != Some(&b"\r\n"[..]) {
        return Err(ProtoError::MissingCrlf);
    }
    let line = raw.slice(line_start..cr);
    match t {
        b'+' => Ok((Value::Status(line), next)),
        b'-' => Ok((Value::Error(line), next)),
        b':' => Ok((Value::Int(parse_i64(&line).ok_or(ProtoError::Integer)?), next)),
        b'$' => match parse_i64(&line).ok_or(ProtoError::BulkLen)? {
            -1 => Ok((Value::Nil, next)),
            n if n >= 0 => {
                let end = usize::try_from(n).ok().and_then(|n| next.checked_add(n)).ok_or(ProtoError::BulkLen)?;
                let after = end.checked_add(2).ok_or(ProtoError::BulkLen)?;
                if raw.get(end..after) != Some(&b"\r\n"[..]) {
                    return Err(ProtoError::MissingCrlf);
                }
                Ok((Value::Bulk(raw.slice(next..end)), after))
            }
            _ => Err(ProtoError::BulkLen),
        },
        // RESP3: a null, and a push read as the array it carries.
        b'_' if line.is_empty() => Ok((Value::Nil, next)),
        b'*' | b'>' => match parse_i64(&line).ok_or(ProtoError::ArrayLen)? {
            -1 => Ok((Value::Nil, next)),
            n if n >= 0 => {
                // Each element takes at least 3 bytes, which bounds an
                // untrusted count before anything is reserved.
                let n = usize::try_from(n).map_err(|_| ProtoError::ArrayLen)?;
                if n > raw.len().saturating_sub(next).checked_div(3).unwrap_or(0) {
                    return Err(ProtoError::ArrayLen);
                }
                let mut items = Vec::with_capacity(n);
                let mut pos = next;
                for _ in 0..n {
                    let (v, p) = parse_at(raw, pos, depth.saturating_add(1))?;
                    items.push(v);
                    pos = p;
                }
                Ok((Value::Array(items), pos))
            }
            _ => Err(ProtoError::ArrayLen),
        },
        other => Err(ProtoError::ReplyType(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &[u8]) -> Result<Value, ProtoError> {
        parse(&Bytes::copy_from_slice(s))
    }

    #[test]
    fn parses_every_kind() {
        let v = p(b"*5\r\n+OK\r\n-ERR x\r\n:-3\r\n$-1\r\n*2\r\n$3\r\nabc\r\n*0\r\n").unwrap();
        assert_eq!(
            v,
            Value::Array(vec![
                Value::Status(Bytes::from_static(b"OK")),
                Value::Error(Bytes::from_static(b"ERR x")),
                Value::Int(-3),
                Value::Nil,
                Value::Array(vec![Value::Bulk(Bytes::from_static(b"abc")), Value::Array(vec![])]),
            ])
        );
        assert_eq!(v.as_array().map(|a| a.len()), Some(5));
        assert_eq!(p(b"$2\r\nhi\r\n").unwrap().as_str(), Some("hi"));
    }

    #[test]
    fn refuses_bad_frames_without_panicking() {
        for bad in [
            &b""[..],
            b"*2\r\n:1\r\n",
            b"$5\r\nab\r\n",
            b"*99999999\r\n",
            b":x\r\n",
            b"?\r\n",
            b"+OK\r\n+extra\r\n",
            b"$3\r\nabcde",
        ] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
        let deep: Vec<u8> = b"*1\r\n".repeat(MAX_DEPTH + 2).into_iter().chain(b":1\r\n".iter().copied()).collect();
        assert_eq!(p(&deep), Err(ProtoError::TooDeep));
    }
}
