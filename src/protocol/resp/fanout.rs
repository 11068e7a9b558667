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
//!   the client's key `i`. The first error (in fragment order) wins;
//! - grouping takes time linear in the number of keys (times log of the
//!   number of groups), whatever the number of servers or slots: a 100k-key
//!   MGET over 16384 slots must not stall a worker.

use std::collections::BTreeMap;

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

/// Keys one request may name by default (`max_keys_per_request`).
pub const DEFAULT_MAX_KEYS_PER_REQUEST: usize = 100_000;

/// Groups scanned linearly before `Groups` builds an index: few servers is
/// the common case, and a scan of a handful allocates nothing.
const LINEAR_GROUPS: usize = 16;

/// Key positions grouped by server, in order of each server's first key.
#[derive(Debug, Default)]
pub(crate) struct Groups {
    pub groups: Vec<(u32, Vec<u32>)>,
    /// server -> index in `groups`, once there are more than `LINEAR_GROUPS`.
    index: Option<BTreeMap<u32, usize>>,
}

impl Groups {
    pub fn add(&mut self, server: u32, key: u32) {
        let at = match &mut self.index {
            Some(index) => index.get(&server).copied(),
            None => self.groups.iter().position(|(s, _)| *s == server),
        };
        if let Some(keys) = at.and_then(|i| self.groups.get_mut(i)) {
            keys.1.push(key);
            return;
        }
        let i = self.groups.len();
        self.groups.push((server, vec![key]));
        match &mut self.index {
            Some(index) => {
                index.insert(server, i);
            }
            None if self.groups.len() > LINEAR_GROUPS => {
                self.index = Some(self.groups.iter().enumerate().map(|(i, (s, _))| (*s, i)).collect());
            }
            None => {}
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SplitError {
    /// The ring has no server for a key (every server ejected).
    #[error("no server available for key")]
    NoServer,
}

/// Splits a routable request. `Keyed`/`Eval`/`NoKey` give one fragment
/// routed by argument 1, 3 or the empty key; `MultiKey`/`KeyValues` group
/// keys by server.
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
    // (server, key positions) in order of first appearance. Key positions
    // fit u32: a request has at most 1M arguments (`RequestDecoder`).
    // A trailing key without its value (MSET's odd arity) is left out.
    let nkeys = req.argc().saturating_sub(first).checked_div(step).unwrap_or(0);
    let mut groups = Groups::default();
    for (k, key) in req.args().skip(first).step_by(step).take(nkeys).enumerate() {
        let server = route(key).ok_or(SplitError::NoServer)?;
        groups.add(server, u32::try_from(k).unwrap_or(u32::MAX));
    }
    let mut groups = groups.groups;
    if groups.len() == 1 {
        let (server, keys) = groups.pop().unwrap_or_default();
        return Ok(vec![Fragment { server, request: req.raw().clone(), keys }]);
    }
    let frags = groups
        .into_iter()
        .map(|(server, keys)| {
            let mut out = BytesMut::new();
            // Bounded by argc, itself at most 1M: no overflow.
            let argc = keys.len().saturating_mul(step).saturating_add(1);
            put_header(&mut out, b'*', i64::try_from(argc).unwrap_or(i64::MAX));
            put_bulk(&mut out, req.name());
            for &k in &keys {
                let at = (k as usize).saturating_mul(step).saturating_add(first);
                for j in 0..step {
                    put_bulk(&mut out, req.arg(at.saturating_add(j)));
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
        Merge::Same => super::scripts::merge_same(parts.iter().map(|(_, r)| *r)),
        Merge::And => super::scripts::merge_and(parts.iter().map(|(_, r)| *r)),
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
#[allow(clippy::arithmetic_side_effects)] // test arithmetic on constants
#[path = "fanout_tests.rs"]
mod tests;
