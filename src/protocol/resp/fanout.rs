//! Fan-out of multi-key commands: split one client request into one
//! sub-request per server, and merge the servers' replies back into the
//! single reply the client expects, in the client's key order.
//!
//! Routing is a caller-supplied `FnMut(&[u8]) -> Option<u32>` (in production
//! the pool ring's `pick`), so this module knows nothing about placement.
//! Invariants:
//! - fragments are ordered by the position of their first key, and keys
//!   keep their client order inside a fragment;
//! - a request whose keys all land on one server is forwarded unchanged
//!   (one fragment holding the original bytes, no re-encoding);
//! - merging never reorders: element `i` of a merged MGET is the reply for
//!   the client's key `i`. The first error (in fragment order) wins.

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

use super::command::{Kind, Merge};
use super::encode::{self, put_bulk, put_header};
use super::reply::{Reply, ReplyKind};
use super::request::Request;

/// One server's share of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    pub server: u32,
    /// The RESP request to send to `server`.
    pub request: Bytes,
    /// Client key positions (0-based, among the keys) carried by this part.
    pub keys: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SplitError {
    /// The ring has no server for a key (every server ejected).
    #[error("no server available for key")]
    NoServer,
}

/// Splits a routable request. `Single`/`Eval`/`NoKey` give one fragment
/// routed by their key; `MultiKey`/`KeyValues` group keys by server.
pub fn split(
    req: &Request,
    kind: Kind,
    mut route: impl FnMut(&[u8]) -> Option<u32>,
) -> Result<Vec<Fragment>, SplitError> {
    let (first, step) = match kind {
        Kind::MultiKey(_) => (1, 1),
        Kind::KeyValues => (1, 2),
        Kind::Eval => return one(req, route(req.arg(3))),
        Kind::NoKey => return one(req, route(b"")),
        _ => return one(req, route(req.arg(1))),
    };
    // (server, key positions) in order of first appearance.
    let mut groups: Vec<(u32, Vec<u32>)> = Vec::new();
    let nkeys = (req.argc() - first) / step;
    for k in 0..nkeys {
        let server = route(req.arg(first + k * step)).ok_or(SplitError::NoServer)?;
        match groups.iter_mut().find(|(s, _)| *s == server) {
            Some((_, keys)) => keys.push(k as u32),
            None => groups.push((server, vec![k as u32])),
        }
    }
    if groups.len() == 1 {
        let (server, keys) = groups.pop().unwrap_or_default();
        return Ok(vec![Fragment { server, request: req.raw().clone(), keys }]);
    }
    let frags = groups
        .into_iter()
        .map(|(server, keys)| {
            let mut out = BytesMut::new();
            put_header(&mut out, b'*', (1 + keys.len() * step) as i64);
            put_bulk(&mut out, req.name());
            for &k in &keys {
                for j in 0..step {
                    put_bulk(&mut out, req.arg(first + k as usize * step + j));
                }
            }
            Fragment { server, request: out.freeze(), keys }
        })
        .collect();
    Ok(frags)
}

fn one(req: &Request, server: Option<u32>) -> Result<Vec<Fragment>, SplitError> {
    let server = server.ok_or(SplitError::NoServer)?;
    Ok(vec![Fragment { server, request: req.raw().clone(), keys: vec![0] }])
}

/// Merges the replies of a split request. `parts[i]` answers fragment `i`:
/// `(its key positions, its reply)`. A single part passes through as is.
pub fn merge_replies(merge: Merge, nkeys: usize, parts: &[(&[u32], &Reply)]) -> Bytes {
    if let [(_, only)] = parts {
        return only.raw.clone();
    }
    if let Some((_, err)) = parts.iter().find(|(_, r)| r.is_error()) {
        return err.raw.clone();
    }
    match merge {
        Merge::Sum => {
            let mut sum: i64 = 0;
            for (_, r) in parts {
                match r.kind {
                    ReplyKind::Integer(n) => sum = sum.saturating_add(n),
                    _ => return invalid(),
                }
            }
            encode::integer(sum)
        }
        Merge::AllOk => match parts.iter().find(|(_, r)| &r.raw[..] != b"+OK\r\n") {
            Some((_, bad)) => bad.raw.clone(),
            None => Bytes::from_static(b"+OK\r\n"),
        },
        Merge::Array => {
            let mut slots: Vec<Option<Bytes>> = vec![None; nkeys];
            for (keys, r) in parts {
                let el = r.elements();
                if el.len() != keys.len() {
                    return invalid();
                }
                for (&k, e) in keys.iter().zip(el) {
                    if let Some(slot) = slots.get_mut(k as usize) {
                        *slot = Some(e);
                    }
                }
            }
            let mut out = BytesMut::new();
            put_header(&mut out, b'*', nkeys as i64);
            for s in slots {
                match s {
                    Some(e) => out.put_slice(&e),
                    None => return invalid(),
                }
            }
            out.freeze()
        }
    }
}

/// What nutcracker answers when a fragment's reply has the wrong shape
/// (`-ERR` + strerror(EINVAL)).
fn invalid() -> Bytes {
    encode::error("ERR Invalid argument")
}

#[cfg(test)]
#[path = "fanout_tests.rs"]
mod tests;
