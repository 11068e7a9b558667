//! SCAN over a cluster: the masters are walked one after another with the
//! shard in the cursor, and one client call keeps going (the same node's
//! next page, then the next master) until it holds COUNT keys or the walk
//! ends, so a small keyspace comes back in one call with cursor 0, as it
//! does from one Redis.
//!
//! Cursor: `node_cursor << 14 | shard`, where `shard` is the lowest slot
//! of the master being scanned (routing by that slot survives a failover).
//! Cursor 0 starts at the first master; when a master's own cursor returns
//! to 0 the walk goes on at the next master's shard, and ends after the
//! last. A node cursor of 2^50 or more cannot be encoded and is an error
//! (Redis cursors stay far below that).
//!
//! Invariants: a call sends at most `MAX_HOPS` node SCANs (a sparse
//! keyspace cannot hold a client's reply slot for long); keys come back in
//! the order the nodes returned them, each node page whole (a page is never
//! split, so no key is lost between calls).

use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};

use super::reply::err;
use super::unit::{Dest, Post, Target, Unit};
use super::{ClientId, ClusterSession};
use crate::protocol::num::parse_u64;
use crate::protocol::resp::encode::{self, put_bulk, put_header};
use crate::protocol::resp::value::{self, Value};
use crate::protocol::resp::{Reply, ReplyKind, Request};
use crate::route::SLOTS;
use crate::session::mux::reply::MergePlan;

const SHARD_BITS: u32 = 14;
/// Node SCANs one client call may send.
const MAX_HOPS: u32 = 64;
/// Redis's default SCAN COUNT.
const DEFAULT_COUNT: u64 = 10;

/// A SCAN call in progress, carried by its unit (`Post::Scan`).
#[derive(Debug, Clone)]
pub(super) struct Walk {
    /// The shard (lowest slot) of the master the unit in flight scans.
    shard: u16,
    /// The client's request: its arguments after the cursor are sent to
    /// every node.
    req: Request,
    /// Keys wanted in this call (the client's COUNT, or 10).
    count: u64,
    /// Keys gathered so far, each as its RESP element bytes.
    keys: Vec<Bytes>,
    hops: u32,
}

impl ClusterSession {
    pub(super) fn scan(&mut self, id: ClientId, req: &Request, shards: &[u16], now: Instant) {
        let Some(cursor) = parse_u64(req.arg(1)).filter(|_| req.argc() >= 2) else {
            return self.reply_now(id, encode::error("ERR invalid cursor"));
        };
        let Some(&first) = shards.first() else {
            return self.reply_now(id, encode::error("CLUSTERDOWN Hash slot not served"));
        };
        let (node_cursor, shard) =
            if cursor == 0 { (0, first) } else { (cursor >> SHARD_BITS, (cursor & (SLOTS as u64 - 1)) as u16) };
        let seq = self.push_slot(id, vec![vec![0]], MergePlan::Pass);
        let walk = Walk { shard, req: req.clone(), count: count_of(req), keys: Vec::new(), hops: 0 };
        self.send_scan(Dest::Client { id, seq, frag: 0 }, walk, node_cursor, now);
    }

    fn send_scan(&mut self, dest: Dest, mut walk: Walk, node_cursor: u64, now: Instant) {
        let node_cursor = node_cursor.to_string();
        let args = std::iter::once(walk.req.arg(0))
            .chain(std::iter::once(node_cursor.as_bytes()))
            .chain(walk.req.args().skip(2));
        let sub = encode::command(args.collect::<Vec<_>>().into_iter());
        walk.hops = walk.hops.saturating_add(1);
        let mut unit = Unit::new(dest, sub, Target::Slot { slot: walk.shard, read: false });
        unit.post = Post::Scan(Box::new(walk));
        self.send(unit, now);
    }

    /// A node's SCAN reply: either the client's reply, or `None` when the
    /// call went on to the next page (a new unit for the same `dest`).
    pub(super) fn scan_reply(&mut self, dest: Dest, mut walk: Walk, reply: Reply) -> Option<Reply> {
        if reply.is_error() {
            return Some(reply);
        }
        let Ok(Value::Array(items)) = value::parse(&reply.raw) else { return Some(bad_scan()) };
        let (Some(cur), Some(Value::Array(page))) =
            (items.first().and_then(Value::as_bytes).and_then(parse_u64), items.get(1))
        else {
            return Some(bad_scan());
        };
        for k in page {
            let mut b = BytesMut::new();
            match k.as_bytes() {
                Some(key) => put_bulk(&mut b, key),
                None => return Some(bad_scan()),
            }
            walk.keys.push(b.freeze());
        }
        let next = self.nodes.shard_slots().into_iter().find(|&s| s > walk.shard);
        // Where the walk goes on: this node's next page, or the next master.
        let (cursor, go_on) = match (cur, next) {
            (0, Some(n)) => (u64::from(n), Some((n, 0))),
            (0, None) => (0, None),
            (c, _) if c >> (64 - SHARD_BITS) == 0 => ((c << SHARD_BITS) | u64::from(walk.shard), Some((walk.shard, c))),
            _ => return Some(err("ERR node SCAN cursor too large to combine with a shard")),
        };
        let want_more = (walk.keys.len() as u64) < walk.count && walk.hops < MAX_HOPS;
        if let (Some((shard, node_cursor)), true, Some(now)) = (go_on, want_more, self.clock) {
            walk.shard = shard;
            self.send_scan(dest, walk, node_cursor, now);
            return None;
        }
        let mut out = BytesMut::new();
        out.put_slice(b"*2\r\n");
        put_bulk(&mut out, cursor.to_string().as_bytes());
        put_header(&mut out, b'*', i64::try_from(walk.keys.len()).unwrap_or(i64::MAX));
        for k in &walk.keys {
            out.put_slice(k);
        }
        Some(Reply { raw: out.freeze(), kind: ReplyKind::Array(2) })
    }
}

/// The request's COUNT (the last one given, as Redis reads it), or 10.
fn count_of(req: &Request) -> u64 {
    let mut count = DEFAULT_COUNT;
    let mut i = 2;
    while i < req.argc() {
        if req.arg(i).eq_ignore_ascii_case(b"COUNT") {
            if let Some(n) = parse_u64(req.arg(i.saturating_add(1))) {
                count = n.max(1);
            }
            i = i.saturating_add(1);
        }
        i = i.saturating_add(1);
    }
    count
}

fn bad_scan() -> Reply {
    err("ERR unexpected SCAN reply from a node")
}
