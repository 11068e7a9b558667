//! RESP2 for the bench: GET / SET / MGET / `--command` templates / ASKING
//! as arrays of bulk strings, and replies framed by Puerta's
//! `ReplyDecoder` (zero-copy: the frame is measured in place and dropped
//! from the buffer, never copied out).

use std::net::SocketAddr;

use bytes::{Buf, BytesMut};

use super::{DecodeError, Outcome, Wire};
use crate::bench::keys::{put_key, put_u64, u64_len};
use crate::bench::workload::{Op, OpKind, Piece};
use crate::protocol::resp::{ReplyDecoder, ReplyKind};

fn header(out: &mut Vec<u8>, prefix: u8, n: u64) {
    out.push(prefix);
    put_u64(out, n);
    out.extend_from_slice(b"\r\n");
}

fn bulk(out: &mut Vec<u8>, b: &[u8]) {
    header(out, b'$', b.len() as u64);
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

fn bulk_key(out: &mut Vec<u8>, wire: &Wire, key: u64) {
    header(out, b'$', (wire.prefix.len() + u64_len(key)) as u64);
    put_key(out, &wire.prefix, key);
    out.extend_from_slice(b"\r\n");
}

pub fn encode(wire: &Wire, op: &Op, out: &mut Vec<u8>) {
    match op.kind {
        OpKind::Get | OpKind::Find => {
            out.extend_from_slice(b"*2\r\n$3\r\nGET\r\n");
            bulk_key(out, wire, op.key);
        }
        OpKind::Set => {
            out.extend_from_slice(b"*3\r\n$3\r\nSET\r\n");
            bulk_key(out, wire, op.key);
            bulk(out, wire.values.of(op.key));
        }
        OpKind::MGet(n) => {
            header(out, b'*', u64::from(n) + 1);
            out.extend_from_slice(b"$4\r\nMGET\r\n");
            for i in 0..u64::from(n) {
                bulk_key(out, wire, (op.key + i) % wire.keys.max(1));
            }
        }
        OpKind::Template => {
            let Some(t) = &wire.template else { return };
            header(out, b'*', t.args.len() as u64);
            let value = wire.values.of(op.key);
            for arg in &t.args {
                let len: usize = arg
                    .iter()
                    .map(|p| match p {
                        Piece::Lit(b) => b.len(),
                        Piece::Key => wire.prefix.len() + u64_len(op.key),
                        Piece::Value => value.len(),
                    })
                    .sum();
                header(out, b'$', len as u64);
                for p in arg {
                    match p {
                        Piece::Lit(b) => out.extend_from_slice(b),
                        Piece::Key => put_key(out, &wire.prefix, op.key),
                        Piece::Value => out.extend_from_slice(value),
                    }
                }
                out.extend_from_slice(b"\r\n");
            }
        }
        OpKind::Asking => out.extend_from_slice(b"*1\r\n$6\r\nASKING\r\n"),
        OpKind::Ping => out.extend_from_slice(b"*1\r\n$4\r\nPING\r\n"),
    }
}

pub fn decode(d: &mut ReplyDecoder, wire: &Wire, buf: &mut BytesMut, op: &Op) -> Result<Option<Outcome>, DecodeError> {
    let Some((len, kind)) = d.frame_len(buf)? else { return Ok(None) };
    let frame = &buf[..len];
    let out = match (kind, op.kind) {
        (_, OpKind::Asking) => Outcome::Ignore,
        (ReplyKind::Error, _) => redirect(frame).unwrap_or(Outcome::ServerError),
        (ReplyKind::Bulk, OpKind::Get) => {
            // `$<n>\r\n<data>\r\n`: the data sits between the first CRLF
            // and the trailing one.
            let start = memchr::memchr(b'\n', frame).map_or(len, |i| i + 1);
            let data = frame.get(start..len.saturating_sub(2)).unwrap_or(&[]);
            if data == wire.values.of(op.key) {
                Outcome::Hit
            } else {
                Outcome::Mismatch
            }
        }
        (ReplyKind::Nil, OpKind::Get) => Outcome::Miss,
        _ => Outcome::Ok,
    };
    buf.advance(len);
    Ok(Some(out))
}

/// `-MOVED <slot> <host>:<port>` / `-ASK <slot> <host>:<port>`.
pub fn redirect(frame: &[u8]) -> Option<Outcome> {
    let line = std::str::from_utf8(frame.get(1..)?).ok()?.trim_end();
    let mut words = line.split(' ');
    let word = words.next()?;
    let slot: u16 = words.next()?.parse().ok().filter(|s| *s < 16384)?;
    let addr: SocketAddr = words.next()?.parse().ok()?;
    match word {
        "MOVED" => Some(Outcome::Moved { slot, addr }),
        "ASK" => Some(Outcome::Ask { slot, addr }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::args::Protocol;
    use crate::bench::codec::test_wire;
    use crate::bench::workload::Template;

    fn enc(wire: &Wire, kind: OpKind, key: u64) -> Vec<u8> {
        let mut out = Vec::new();
        encode(wire, &Op { kind, key }, &mut out);
        out
    }

    #[test]
    fn encodes_each_command() {
        let mut w = test_wire(Protocol::Redis);
        assert_eq!(enc(&w, OpKind::Get, 7), b"*2\r\n$3\r\nGET\r\n$3\r\nk:7\r\n");
        assert_eq!(enc(&w, OpKind::Set, 12), b"*3\r\n$3\r\nSET\r\n$4\r\nk:12\r\n$3\r\nmno\r\n");
        assert_eq!(enc(&w, OpKind::MGet(2), 99), b"*3\r\n$4\r\nMGET\r\n$4\r\nk:99\r\n$3\r\nk:0\r\n");
        assert_eq!(enc(&w, OpKind::Asking, 0), b"*1\r\n$6\r\nASKING\r\n");
        w.template = Some(std::sync::Arc::new(Template::parse("HSET h{key} f {value}").unwrap()));
        assert_eq!(enc(&w, OpKind::Template, 1), b"*4\r\n$4\r\nHSET\r\n$4\r\nhk:1\r\n$1\r\nf\r\n$3\r\nbcd\r\n");
    }

    #[test]
    fn decodes_replies_against_their_request() {
        let w = test_wire(Protocol::Redis);
        let get = Op { kind: OpKind::Get, key: 1 };
        let set = Op { kind: OpKind::Set, key: 1 };
        let mut buf = BytesMut::from(
            &b"$3\r\nbcd\r\n$3\r\nxyz\r\n$-1\r\n+OK\r\n-ERR no\r\n-MOVED 12 127.0.0.1:7001\r\n-ASK 5 127.0.0.1:7002\r\n+OK\r\n"[..],
        );
        let mut d = ReplyDecoder::default();
        let mut got = Vec::new();
        for op in [get, get, get, set, set, get, get, Op { kind: OpKind::Asking, key: 0 }] {
            got.push(decode(&mut d, &w, &mut buf, &op).unwrap().unwrap());
        }
        let a1 = "127.0.0.1:7001".parse().unwrap();
        let a2 = "127.0.0.1:7002".parse().unwrap();
        assert_eq!(
            got,
            [
                Outcome::Hit,
                Outcome::Mismatch,
                Outcome::Miss,
                Outcome::Ok,
                Outcome::ServerError,
                Outcome::Moved { slot: 12, addr: a1 },
                Outcome::Ask { slot: 5, addr: a2 },
                Outcome::Ignore
            ]
        );
        assert!(buf.is_empty());
        let mut part = BytesMut::from(&b"$3\r\nbc"[..]);
        assert_eq!(decode(&mut d, &w, &mut part, &get), Ok(None));
        part.extend_from_slice(b"d\r\n");
        assert_eq!(decode(&mut d, &w, &mut part, &get), Ok(Some(Outcome::Hit)));
        assert!(decode(&mut d, &w, &mut BytesMut::from(&b"?\r\n"[..]), &get).is_err());
        assert_eq!(redirect(b"-MOVED 99999 1.2.3.4:5\r\n"), None, "slot out of range");
    }
}
