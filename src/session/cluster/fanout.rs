//! Whole-keyspace commands over every master: DBSIZE (summed), KEYS
//! (concatenated), FLUSHALL / FLUSHDB (all must say OK; `policy.rs`
//! refuses them with `allow_flush = false`), INFO (`session::info`), SCRIPT and
//! FUNCTION changes (`protocol::resp::scripts`); SCAN is `scan.rs`.
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
use crate::protocol::resp::scripts::{self, Scope};
use crate::protocol::resp::ReplyDecoder;
use crate::protocol::resp::{Reply, ReplyKind, Request};
use crate::session::info::{render, ProxyFields};
use crate::session::mux::reply::{bulk_text, MergePlan};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AggKind {
    Sum,
    AllOk,
    Concat,
    Info,
    /// SCRIPT / FUNCTION changes: every master's reply must agree.
    Same,
    /// SCRIPT EXISTS: 1 where every master says 1.
    And,
}

pub(super) struct Agg {
    id: ClientId,
    seq: u64,
    kind: AggKind,
    /// The client's request (INFO renders its sections).
    req: Request,
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
            Local::Scripts => match scripts::scope(&req) {
                Scope::EverySame => (AggKind::Same, vec![raw; shards.len()]),
                Scope::EveryAnd => (AggKind::And, vec![raw; shards.len()]),
                Scope::One => return self.forward_one(id, raw, Target::AnyMaster, now),
            },
            // INFO: the client's INFO to every master (`session::info`).
            _ => (AggKind::Info, vec![raw; shards.len()]),
        };
        if shards.is_empty() {
            return self.reply_now(id, encode::error("CLUSTERDOWN Hash slot not served"));
        }
        let seq = self.push_slot(id, vec![vec![0]], MergePlan::Pass);
        let agg = Agg { id, seq, kind, req, parts: vec![None; units.len()], left: units.len() };
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
        for (part, (req, slot)) in units.into_iter().zip(shards).enumerate() {
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
            None => finish(agg.kind, &agg.req, &parts, self),
        };
        self.deliver(agg.id, agg.seq, 0, out);
    }
}

fn finish(kind: AggKind, req: &Request, parts: &[Reply], s: &ClusterSession) -> Reply {
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
        AggKind::Info => Reply { raw: bulk(info_text(req, parts, s).as_bytes()), kind: ReplyKind::Bulk },
        AggKind::Same => decoded(scripts::merge_same(parts.iter())),
        AggKind::And => decoded(scripts::merge_and(parts.iter())),
    }
}

/// A merged reply as a `Reply` (it is one whole frame by construction).
fn decoded(raw: Bytes) -> Reply {
    let mut buf = bytes::BytesMut::from(&raw[..]);
    match ReplyDecoder::default().decode(&mut buf) {
        Ok(Some(r)) => r,
        _ => Reply { raw, kind: ReplyKind::Error },
    }
}

/// INFO: Puerta's `# Proxy` fields, the first master's text, keyspace
/// summed over every master.
fn info_text(req: &Request, parts: &[Reply], s: &ClusterSession) -> String {
    let v = &s.nodes.view;
    let st = &s.stats;
    let fields = ProxyFields {
        mode: "redis_cluster",
        cluster: true,
        clients: (s.client_count() as u64).saturating_add(s.peers.0),
        commands: s.commands.saturating_add(s.peers.1),
        extra: vec![
            format!("pool:{}", s.cfg.pool),
            format!("cluster_masters:{}", v.shards().len()),
            format!("cluster_nodes:{}", v.nodes().len()),
            format!("cluster_slots_served:{}", v.served()),
            format!("redirects_moved:{}", st.moved),
            format!("redirects_ask:{}", st.ask),
            format!("retries:{}", st.retried),
        ],
    };
    let texts: Vec<String> = parts.iter().map(bulk_text).collect();
    render(req, &fields, &texts)
}
