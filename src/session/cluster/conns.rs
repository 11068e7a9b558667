//! Backend connections of the cluster session: a slab of `Conn`s (each a
//! shared `mux::backend::Backend` queue plus what the cluster needs), the
//! shared connections per node, and the small per-node pool of pinned
//! connections.
//!
//! Invariants: a node's `shared[i]` and `idle_pinned` name only live
//! connections of that node, and its `conns` counts them all; a pinned
//! connection has at most one owner; a connection is opened only to a node
//! of the current view (so backend credentials go only to nodes the
//! topology lists, DESIGN §5), and every connection starts with its hidden
//! AUTH (when configured) and, for shared connections when replicas may
//! serve reads, READONLY. A connection to a node that left the view is
//! closed once idle (`retire_if_gone`), and the node's id is freed with
//! its last connection.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::types::{BackendId, ClusterIntent};
use super::unit::{CEntry, Dest, Entry, Retry, Unit};
use super::ClusterSession;
use crate::config::ReadFrom;
use crate::protocol::cluster;
use crate::protocol::resp::{Reply, ReplyKind};
use crate::session::mux::backend::{BState, Backend};
use crate::session::mux::{BackendClose, ClientId, Protocol};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Shared,
    Pinned { owner: Option<ClientId> },
}

pub(super) struct Conn {
    pub base: Backend<CEntry>,
    pub gen: u32,
    pub node: u32,
    pub kind: Kind,
    /// A redirect or retry error seen in a hidden reply (a queued command
    /// of a batch), for the unit that follows it.
    pub note: Option<Reply>,
    /// The subscribed client this pinned connection relays to.
    pub relay: Option<ClientId>,
    /// Subscriptions the node reported: channels + patterns, shard channels.
    pub subs: (i64, i64),
    /// Sent HELLO 3 on connect: serves RESP3 clients only.
    pub resp3: bool,
}

/// What a RESP3 twin sends after AUTH and READONLY.
const HELLO_3: &[u8] = b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n";

/// Longest pause between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

impl ClusterSession {
    pub(super) fn conn(&self, b: BackendId) -> Option<&Conn> {
        self.conns.get(b.idx as usize)?.as_ref().filter(|c| c.gen == b.gen)
    }

    pub(super) fn conn_mut(&mut self, b: BackendId) -> Option<&mut Conn> {
        self.conns.get_mut(b.idx as usize)?.as_mut().filter(|c| c.gen == b.gen)
    }

    /// Opens a connection to `node`: a Connect intent, then the hidden
    /// AUTH and READONLY ahead of anything else. `None` (nothing opened,
    /// nothing sent) unless `node` is in the current view.
    fn open(&mut self, node: u32, kind: Kind, resp3: bool, now: Instant) -> Option<BackendId> {
        let n = self.nodes.node_mut(node).filter(|n| n.in_view)?;
        n.conns += 1;
        // Names the node's histogram slot (a connect is rare: off the
        // request path).
        self.obs.set_backend_name(node, &n.addr.to_string());
        let idx = self.free_conns.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conn_gens.push(0);
            (self.conns.len() - 1) as u32
        });
        let gen = self.conn_gens[idx as usize];
        let b = BackendId { idx, gen };
        let mut base = Backend::new(Protocol::Redis);
        let deadline = self.cfg.request_timeout.map(|t| now + t);
        // The connect itself is bounded even when replies are not.
        let connect = self.cfg.request_timeout.map_or(self.cfg.connect_timeout, |t| t.min(self.cfg.connect_timeout));
        base.state = BState::Connecting { deadline: Some(now + connect) };
        let hidden = |wire: Bytes| CEntry { wire, start: 0, deadline, what: Entry::Hidden { note: false }, sent_us: 0 };
        if let Some((user, pw)) = &self.cfg.backend_auth {
            base.push(hidden(cluster::auth(user.as_deref(), pw)), true);
        }
        if kind == Kind::Shared && self.cfg.read_from != ReadFrom::Master {
            base.push(hidden(Bytes::from_static(cluster::READONLY)), true);
        }
        if resp3 {
            base.push(hidden(Bytes::from_static(HELLO_3)), true);
        }
        self.conns[idx as usize] = Some(Conn { base, gen, node, kind, note: None, relay: None, subs: (0, 0), resp3 });
        self.intents.push_back(ClusterIntent::Connect(b));
        self.dirty_backends.push(b);
        self.stats.connects += 1;
        Some(b)
    }

    /// A shared connection to `node`: a client's units always take the same
    /// one of the `node_connections` (`order.rs`), other work takes turns.
    /// `None` if the node is not in the view.
    pub(super) fn shared_conn(&mut self, node: u32, dest: Dest, now: Instant) -> Option<BackendId> {
        let per = self.cfg.node_connections.max(1);
        // A client's units ride connections of its protocol; aggregates
        // (merged by Puerta) always RESP2 ones.
        let resp3 = match dest {
            Dest::Client { id, .. } => self.client(id).is_some_and(|c| c.base.hs.resp3),
            Dest::Agg { .. } => false,
        };
        let n = self.nodes.node_mut(node).filter(|n| n.in_view)?;
        let i = (Self::affine_conn(dest, n.rr, per) + if resp3 { per } else { 0 }) as usize;
        n.rr = n.rr.wrapping_add(1);
        if let Some(b) = n.shared[i] {
            if self.conn(b).is_some() {
                return Some(b);
            }
        }
        let b = self.open(node, Kind::Shared, resp3, now)?;
        if let Some(n) = self.nodes.node_mut(node) {
            n.shared[i] = Some(b);
        }
        Some(b)
    }

    /// A pinned connection to `node` for `owner`: an idle one if any, else
    /// a new one within `pinned_connections`. `None` past that limit or if
    /// the node is not in the view (callers check `in_view` first).
    pub(super) fn acquire_pinned(&mut self, node: u32, owner: ClientId, now: Instant) -> Option<BackendId> {
        let resp3 = self.client(owner).is_some_and(|c| c.base.hs.resp3);
        let idle = self.nodes.node(node).filter(|n| n.in_view)?.idle_pinned.clone();
        // An idle connection of the owner's protocol.
        let pick = idle.iter().rposition(|&b| self.conn(b).is_some_and(|c| c.resp3 == resp3));
        let n = self.nodes.node_mut(node)?;
        if let Some(b) = pick.map(|i| n.idle_pinned.remove(i)) {
            if let Some(c) = self.conn_mut(b) {
                c.kind = Kind::Pinned { owner: Some(owner) };
                self.stats.pinned_reused += 1;
                return Some(b);
            }
        }
        let n = self.nodes.node_mut(node)?;
        if n.pinned_open >= self.cfg.pinned_connections {
            return None;
        }
        n.pinned_open += 1;
        let b = self.open(node, Kind::Pinned { owner: Some(owner) }, resp3, now);
        if b.is_none() {
            if let Some(n) = self.nodes.node_mut(node) {
                n.pinned_open -= 1;
            }
        }
        b
    }

    /// Gives a pinned connection back: kept idle when it is clean (nothing
    /// in flight, not subscribed), its node is still in the view and the
    /// pool has room, else closed.
    pub(super) fn release_pinned(&mut self, b: BackendId) {
        let idle_max = self.cfg.pinned_idle as usize;
        let Some(c) = self.conn_mut(b) else { return };
        let clean = c.base.inflight.is_empty() && c.relay.is_none() && c.subs == (0, 0) && c.base.state != BState::Idle;
        let node = c.node;
        c.kind = Kind::Pinned { owner: None };
        let room = self.nodes.node(node).is_some_and(|n| n.in_view && n.idle_pinned.len() < idle_max);
        if clean && room {
            if let Some(n) = self.nodes.node_mut(node) {
                n.idle_pinned.push(b);
            }
        } else {
            self.close_conn(b);
        }
    }

    /// Forgets a connection and tells the driver to close it; returns
    /// what was queued on it.
    pub(super) fn close_conn(&mut self, b: BackendId) -> Vec<CEntry> {
        self.close_conn_as(b, BackendClose::Other)
    }

    /// `close_conn`, telling the driver why (`BackendClose`).
    pub(super) fn close_conn_as(&mut self, b: BackendId, why: BackendClose) -> Vec<CEntry> {
        let Some(mut c) = self.conns.get_mut(b.idx as usize).and_then(|s| s.take_if(|c| c.gen == b.gen)) else {
            return Vec::new();
        };
        self.conn_gens[b.idx as usize] = b.gen.wrapping_add(1);
        self.free_conns.push(b.idx);
        if let Some(n) = self.nodes.node_mut(c.node) {
            for s in n.shared.iter_mut().filter(|s| **s == Some(b)) {
                *s = None;
            }
            n.idle_pinned.retain(|&x| x != b);
            if matches!(c.kind, Kind::Pinned { .. }) {
                n.pinned_open = n.pinned_open.saturating_sub(1);
            }
            n.conns = n.conns.saturating_sub(1);
            if n.conns == 0 && !n.in_view {
                let freed = self.nodes.prune();
                self.forget_nodes(&freed);
            }
        }
        self.intents.push_back(ClusterIntent::CloseBackend(b, why));
        c.base.reset(Protocol::Redis).into()
    }

    /// Closes `b` if it is idle (nothing in flight, no relay, no owner) and
    /// its node left the view: nothing new is ever routed there.
    pub(super) fn retire_if_gone(&mut self, b: BackendId) {
        let Some(c) = self.conn(b) else { return };
        let idle =
            c.base.inflight.is_empty() && c.relay.is_none() && !matches!(c.kind, Kind::Pinned { owner: Some(_) });
        if idle && !self.nodes.in_view(c.node) {
            self.close_conn(b);
        }
    }

    /// Drops the session's references to freed node ids (a freed id may be
    /// reused for another node).
    pub(super) fn forget_nodes(&mut self, freed: &[u32]) {
        if freed.is_empty() {
            return;
        }
        for c in self.clients.iter_mut().flatten() {
            if c.last_node.is_some_and(|n| freed.contains(&n)) {
                c.last_node = None;
            }
            c.forget_nodes(freed);
        }
    }

    /// Queues `unit` on `b`: ASKING first when asked, then its hidden
    /// prefix (MULTI and queued commands), then the unit itself.
    pub(super) fn push_unit(&mut self, b: BackendId, unit: Unit, asking: bool, now: Instant) {
        let sent_us = self.obs.now_us();
        let deadline = if unit.blocking { None } else { self.cfg.request_timeout.map(|t| now + t) };
        let Some(c) = self.conn_mut(b) else {
            return self.fail_unit(unit, super::reply::err("ERR internal: connection vanished"));
        };
        let hidden = |wire: Bytes, note| CEntry { wire, start: 0, deadline, what: Entry::Hidden { note }, sent_us: 0 };
        if asking {
            c.base.push(hidden(Bytes::from_static(cluster::ASKING), false), true);
        }
        for p in &unit.pre {
            c.base.push(hidden(p.clone(), true), true);
        }
        let wire = unit.req.clone();
        c.base.push(CEntry { wire, start: 0, deadline, what: Entry::Unit(Box::new(unit)), sent_us }, true);
        self.dirty_backends.push(b);
    }

    /// Retries `unit` after a backoff, or answers `err` once retries ran out.
    pub(super) fn retry_later(&mut self, mut unit: Unit, err: Reply, now: Instant) {
        if unit.retries >= self.cfg.max_retries {
            return self.fail_unit(unit, err);
        }
        unit.retries += 1;
        self.stats.retried += 1;
        self.detour(&unit);
        let exp = (unit.retries - 1).min(16);
        let wait = self.cfg.retry_backoff.saturating_mul(1 << exp).min(MAX_BACKOFF);
        self.retries.push(Retry { at: now + wait, unit });
    }

    /// Answers `unit` with an error the session made up.
    pub(super) fn fail_unit(&mut self, unit: Unit, err: Reply) {
        debug_assert_eq!(err.kind, ReplyKind::Error);
        self.stats.forward_error += 1;
        self.complete(unit, err);
    }
}
