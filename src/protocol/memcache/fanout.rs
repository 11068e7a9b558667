//! Multi-key get/gets fan-out: one `get` per server, and the VALUE blocks
//! merged back in the client's key order under a single END.
//!
//! Invariant: within one server's reply, VALUE blocks come in the order of
//! the keys sent (misses are simply absent), so matching each sent key in
//! order against the next block's key places every hit without searching.

use bytes::{BufMut, Bytes, BytesMut};

use super::reply::McReply;
use super::request::McRequest;
use crate::protocol::resp::fanout::{Fragment, Groups, SplitError};

/// Splits a get/gets by server. Keys all on one server forward unchanged.
pub fn split_get(req: &McRequest, mut route: impl FnMut(&[u8]) -> Option<u32>) -> Result<Vec<Fragment>, SplitError> {
    // Linear in the keys, whatever the number of servers (see `Groups`).
    let mut groups = Groups::default();
    for k in 0..req.nkeys() {
        let server = route(req.key(k)).ok_or(SplitError::NoServer)?;
        // Keys are at most one per 2 bytes of a line under 4 GiB.
        groups.add(server, u32::try_from(k).unwrap_or(u32::MAX));
    }
    let mut groups = groups.groups;
    if groups.len() == 1 {
        let (server, keys) = groups.pop().unwrap_or_default();
        return Ok(vec![Fragment { server, request: req.raw().clone(), keys }]);
    }
    Ok(groups
        .into_iter()
        .map(|(server, keys)| {
            let mut out = BytesMut::new();
            out.put_slice(req.word());
            for &k in &keys {
                out.put_u8(b' ');
                out.put_slice(req.key(k as usize));
            }
            out.put_slice(b"\r\n");
            Fragment { server, request: out.freeze(), keys }
        })
        .collect())
}

/// Merges the parts of a split get. The first error part (in fragment
/// order) is the answer, as in RESP fan-out; a single part passes through.
pub fn merge_gets(req: &McRequest, parts: &[(&[u32], &McReply)]) -> Bytes {
    if let [(_, only)] = parts {
        return only.raw.clone();
    }
    if let Some((_, e)) = parts.iter().find(|(_, r)| r.is_error()) {
        return e.raw.clone();
    }
    let mut slots: Vec<Option<Bytes>> = vec![None; req.nkeys()];
    for (keys, r) in parts {
        let mut next = 0;
        for &k in keys.iter() {
            match r.block(next) {
                Some((key, block)) if key == req.key(k as usize) => {
                    slots[k as usize] = Some(block);
                    next = next.saturating_add(1);
                }
                _ => {}
            }
        }
    }
    let mut out = BytesMut::new();
    for s in slots.into_iter().flatten() {
        out.put_slice(&s);
    }
    out.put_slice(b"END\r\n");
    out.freeze()
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // test arithmetic on constants
mod tests {
    use super::*;
    use crate::protocol::memcache::{McReplyDecoder, McRequestDecoder};

    fn req(s: &str) -> McRequest {
        McRequestDecoder::new(1 << 20, 1 << 20).decode(&mut BytesMut::from(s.as_bytes())).unwrap().unwrap()
    }

    fn reply(s: &str) -> McReply {
        McReplyDecoder::default().decode(&mut BytesMut::from(s.as_bytes()), true).unwrap().unwrap()
    }

    fn route(k: &[u8]) -> Option<u32> {
        k.first().map(|b| (b - b'a') as u32)
    }

    #[test]
    fn splits_and_merges_in_key_order() {
        let r = req("gets b1 a1 b2 a2 b1\r\n");
        let f = split_get(&r, route).unwrap();
        assert_eq!(&f[0].request[..], b"gets b1 b2 b1\r\n");
        assert_eq!(f[0].keys, [0, 2, 4]);
        assert_eq!(&f[1].request[..], b"gets a1 a2\r\n");
        // b2 missed; b1 asked twice answers twice.
        let rb = reply("VALUE b1 0 1 9\r\nB\r\nVALUE b1 0 1 9\r\nB\r\nEND\r\n");
        let ra = reply("VALUE a1 0 1 8\r\nA\r\nVALUE a2 0 2 7\r\nAA\r\nEND\r\n");
        let m = merge_gets(&r, &[(&f[0].keys, &rb), (&f[1].keys, &ra)]);
        assert_eq!(
            &m[..],
            &b"VALUE b1 0 1 9\r\nB\r\nVALUE a1 0 1 8\r\nA\r\nVALUE a2 0 2 7\r\nAA\r\nVALUE b1 0 1 9\r\nB\r\nEND\r\n"[..]
        );
    }

    #[test]
    fn one_server_and_errors() {
        let r = req("get a1 a2\r\n");
        let f = split_get(&r, route).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(&f[0].request, r.raw());
        let r = req("get a1 b1\r\n");
        let (ok, bad) = (reply("END\r\n"), reply("SERVER_ERROR Connection timed out\r\n"));
        let m = merge_gets(&r, &[(&[0], &ok), (&[1], &bad)]);
        assert_eq!(&m[..], b"SERVER_ERROR Connection timed out\r\n");
        let m = merge_gets(&r, &[(&[0], &ok), (&[1], &ok)]);
        assert_eq!(&m[..], b"END\r\n");
    }
}
