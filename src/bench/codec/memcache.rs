//! Memcached ASCII for the bench: `get`, multi-key `get`, `set`, and
//! replies framed by Puerta's `McReplyDecoder` (which needs to know whether
//! the request was a retrieval).

use bytes::BytesMut;

use super::{DecodeError, Outcome, Wire};
use crate::bench::keys::{put_key, put_u64};
use crate::bench::workload::{Op, OpKind};
use crate::protocol::memcache::{McReplyDecoder, McReplyKind};

pub fn encode(wire: &Wire, op: &Op, out: &mut Vec<u8>) {
    match op.kind {
        OpKind::Set => {
            let v = wire.values.of(op.key);
            out.extend_from_slice(b"set ");
            put_key(out, &wire.prefix, op.key);
            out.extend_from_slice(b" 0 0 ");
            put_u64(out, v.len() as u64);
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
        OpKind::MGet(n) => {
            out.extend_from_slice(b"get");
            for i in 0..u64::from(n) {
                out.push(b' ');
                put_key(out, &wire.prefix, (op.key + i) % wire.keys.max(1));
            }
            out.extend_from_slice(b"\r\n");
        }
        // Plan validation allows only get/set/mget for memcached; anything
        // else is sent as the read it most resembles.
        _ => {
            out.extend_from_slice(b"get ");
            put_key(out, &wire.prefix, op.key);
            out.extend_from_slice(b"\r\n");
        }
    }
}

pub fn decode(
    d: &mut McReplyDecoder,
    wire: &Wire,
    buf: &mut BytesMut,
    op: &Op,
) -> Result<Option<Outcome>, DecodeError> {
    let retrieval = op.kind != OpKind::Set;
    let Some(r) = d.decode(buf, retrieval)? else { return Ok(None) };
    Ok(Some(match (r.kind, op.kind) {
        (McReplyKind::Values, OpKind::MGet(_)) => Outcome::Ok,
        (McReplyKind::Values, _) => match r.block(0) {
            None => Outcome::Miss,
            Some((_, block)) => {
                // `VALUE k f n\r\n<data>\r\n`
                let start = memchr::memchr(b'\n', &block).map_or(block.len(), |i| i + 1);
                let data = block.get(start..block.len().saturating_sub(2)).unwrap_or(&[]);
                if data == wire.values.of(op.key) {
                    Outcome::Hit
                } else {
                    Outcome::Mismatch
                }
            }
        },
        (McReplyKind::Stored, OpKind::Set) => Outcome::Ok,
        _ => Outcome::ServerError,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::args::Protocol;
    use crate::bench::codec::test_wire;

    #[test]
    fn encodes_and_decodes() {
        let w = test_wire(Protocol::Memcache);
        let mut out = Vec::new();
        encode(&w, &Op { kind: OpKind::Set, key: 2 }, &mut out);
        encode(&w, &Op { kind: OpKind::Get, key: 2 }, &mut out);
        encode(&w, &Op { kind: OpKind::MGet(2), key: 99 }, &mut out);
        assert_eq!(out, b"set k:2 0 0 3\r\ncde\r\nget k:2\r\nget k:99 k:0\r\n");

        let mut buf = BytesMut::from(
            &b"STORED\r\nVALUE k:2 0 3\r\ncde\r\nEND\r\nVALUE k:2 0 3\r\nxxx\r\nEND\r\nEND\r\nEND\r\nSERVER_ERROR oom\r\n"[..],
        );
        let mut d = McReplyDecoder::default();
        let get = Op { kind: OpKind::Get, key: 2 };
        let set = Op { kind: OpKind::Set, key: 2 };
        let ops = [set, get, get, get, Op { kind: OpKind::MGet(3), key: 0 }, set];
        let got: Vec<Outcome> = ops.iter().map(|op| decode(&mut d, &w, &mut buf, op).unwrap().unwrap()).collect();
        use Outcome::*;
        assert_eq!(got, [Ok, Hit, Mismatch, Miss, Ok, ServerError]);
        assert!(buf.is_empty());
        assert!(decode(&mut d, &w, &mut BytesMut::from(&b"HUH\r\n"[..]), &get).is_err());
    }
}
