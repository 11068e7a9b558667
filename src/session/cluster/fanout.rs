//! Whole-keyspace commands over every master: DBSIZE (summed), KEYS
//! (concatenated), FLUSHALL / FLUSHDB (all must say OK; `policy.rs`
//! refuses them with `allow_flush = false`), INFO (a proxy section, the first master's server
//! section, keyspace counts summed); SCAN is `scan.rs`.
//!
//! An aggregate collects one reply per master, then answers the client's
//! single reply slot; the first error in master order wins.

use std::time::Instant;

use bytes::Bytes;

use super::reply::{array, bulk};
use super::unit::{Dest, Target, Unit};
use super::{ClientId, ClusterSession};
use crate::protocol::cluster::commands::Local;
use crate::protocol::resp::encode;
use crate::protocol::resp::value::{self, Value};
use crate::protocol::resp::{Reply, ReplyKind, Request};
use crate::session::mux::reply::MergePlan;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AggKind {
    Sum,
    AllOk,
    Concat,
    Info,
}

pub(super) struct Agg {
    id: ClientId,
    seq: u64,
    kind: AggKind,
    parts: Vec<Option<Reply>>,
    left: usize,
}

impl ClusterSession {
    pub(super) fn fanout_cmd(&mut self, id: ClientId, req: Request, l: Local, now: Instant) {
        let shards = self.nodes.shard_slots();
        let raw = req.raw().clone();
        let (kind, units): (AggKind, Vec<Bytes>) = match l {
            Local::Scan => return self.scan(id, &req, &shards, now),
            Local::Dbsize => (AggKind::Sum, vec![raw; shards.len()]),
            Local::KeysCmd if req.argc() == 2 => (AggKind::Concat, vec![raw; shards.len()]),
            Local::KeysCmd => return self.reply_now(id, super::reply::arity(req.name())),
            Local::Flush => (AggKind::AllOk, vec![raw; shards.len()]),
            _ => {
                // INFO: the first master's server section, every master's keyspace.
                let server = encode::command([&b"INFO"[..], b"server"].into_iter());
                let keyspace = encode::command([&b"INFO"[..], b"keyspace"].into_iter());
                let mut v = vec![server];
                v.extend(std::iter::repeat_n(keyspace, shards.len()));
                (AggKind::Info, v)
            }
        };
        if shards.is_empty() {
            return self.reply_now(id, encode::error("CLUSTERDOWN Hash slot not served"));
        }
        let seq = self.push_slot(id, vec![vec![0]], MergePlan::Pass);
        let agg = Agg { id, seq, kind, parts: vec![None; units.len()], left: units.len() };
        let a = match self.free_aggs.pop() {
            Some(i) => {
                self.aggs[i as usize] = Some(agg);
                i
            }
            None => {
                self.aggs.push(Some(agg));
                (self.aggs.len() - 1) as u32
            }
        };
        self.stats.fragments += units.len() as u64;
        // INFO's extra first part goes to the first shard as well.
        let slots = if kind == AggKind::Info { std::iter::once(shards[0]).chain(shards).collect() } else { shards };
        for (part, (req, slot)) in units.into_iter().zip(slots).enumerate() {
            let unit = Unit::new(Dest::Agg { agg: a, part: part as u32 }, req, Target::Slot { slot, read: false });
            self.send(unit, now);
        }
    }

    /// One master's reply to an aggregate.
    pub(super) fn agg_part(&mut self, a: u32, part: u32, reply: Reply) {
        let Some(Some(agg)) = self.aggs.get_mut(a as usize) else { return };
        let Some(slot) = agg.parts.get_mut(part as usize) else { return };
        if slot.is_none() {
            *slot = Some(reply);
            agg.left -= 1;
        }
        if agg.left > 0 {
            return;
        }
        let Some(agg) = self.aggs[a as usize].take() else { return };
        self.free_aggs.push(a);
        let parts: Vec<Reply> = agg.parts.into_iter().flatten().collect();
        let out = match parts.iter().find(|r| r.is_error()) {
            Some(e) => e.clone(),
            None => finish(agg.kind, &parts, self),
        };
        self.deliver(agg.id, agg.seq, 0, out);
    }
}

fn finish(kind: AggKind, parts: &[Reply], s: &ClusterSession) -> Reply {
    match kind {
        AggKind::Sum => {
            let sum = parts.iter().map(|r| if let ReplyKind::Integer(n) = r.kind { n } else { 0 }).sum();
            Reply { raw: encode::integer(sum), kind: ReplyKind::Integer(sum) }
        }
        AggKind::AllOk => match parts.iter().find(|r| &r.raw[..] != b"+OK\r\n") {
            Some(bad) => bad.clone(),
            None => Reply { raw: Bytes::from_static(b"+OK\r\n"), kind: ReplyKind::Status },
        },
        AggKind::Concat => {
            let items: Vec<Bytes> = parts.iter().flat_map(Reply::elements).collect();
            let raw = array(items.iter().map(|b| &b[..]));
            Reply { raw, kind: ReplyKind::Array(items.len() as u32) }
        }
        AggKind::Info => Reply { raw: bulk(info_text(parts, s).as_bytes()), kind: ReplyKind::Bulk },
    }
}

/// INFO: proxy section, the first master's server section, keyspace sums.
fn info_text(parts: &[Reply], s: &ClusterSession) -> String {
    let text = |r: &Reply| match value::parse(&r.raw) {
        Ok(Value::Bulk(b)) => String::from_utf8_lossy(&b).into_owned(),
        _ => String::new(),
    };
    let v = &s.nodes.view;
    let st = &s.stats;
    let mut out = format!(
        "# Proxy\r\nproxy:puerta\r\npuerta_version:{}\r\npool:{}\r\nmode:redis_cluster\r\ncluster_masters:{}\r\n\
         cluster_nodes:{}\r\ncluster_slots_served:{}\r\nredirects_moved:{}\r\nredirects_ask:{}\r\nretries:{}\r\n\r\n",
        env!("CARGO_PKG_VERSION"),
        s.cfg.pool,
        v.shards().len(),
        v.nodes().len(),
        v.served(),
        st.moved,
        st.ask,
        st.retried,
    );
    if let Some(first) = parts.first() {
        out.push_str(text(first).trim_end());
        out.push_str("\r\n\r\n");
    }
    // db -> (keys, expires, avg_ttl weighted by keys)
    let mut dbs: Vec<(String, u64, u64, u128)> = Vec::new();
    for r in parts.iter().skip(1) {
        for line in text(r).lines() {
            let Some((db, rest)) = line.split_once(':').filter(|(d, _)| d.starts_with("db")) else { continue };
            let field = |k: &str| {
                rest.split(',')
                    .find_map(|kv| kv.strip_prefix(k))
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let (keys, expires, ttl) = (field("keys="), field("expires="), field("avg_ttl="));
            match dbs.iter_mut().find(|d| d.0 == db) {
                Some(d) => {
                    d.1 += keys;
                    d.2 += expires;
                    d.3 += u128::from(ttl) * u128::from(keys);
                }
                None => dbs.push((db.to_owned(), keys, expires, u128::from(ttl) * u128::from(keys))),
            }
        }
    }
    out.push_str("# Keyspace\r\n");
    for (db, keys, expires, ttl) in dbs {
        let avg = if keys == 0 { 0 } else { ttl / u128::from(keys) };
        out.push_str(&format!("{db}:keys={keys},expires={expires},avg_ttl={avg}\r\n"));
    }
    out
}
