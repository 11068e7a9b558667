//! Sending units and the redirect state machine: route a unit to a node's
//! connection, and judge its final reply: MOVED (patch the slot in the
//! core-local override, report it once, re-send at once), ASK (ASKING +
//! the request on the same connection to the named node; the map is not
//! touched), TRYAGAIN / CLUSTERDOWN / LOADING / MASTERDOWN (retry after a
//! backoff), anything else (deliver).
//!
//! Trust (DESIGN §5): a redirect is a hint. It is followed only to a node
//! of the current topology. One naming any other address connects nowhere
//! and sends nothing: it asks the control thread for a refresh (at most
//! one report per `UNKNOWN_REPORT_GAP`) and the unit waits on the retry
//! schedule; each time it comes due (or a new view names the node) the
//! redirect is judged again, and once retries run out the client gets
//! `-ERR MOVED|ASK <slot> <host:port> not followed: not a node of the
//! cluster topology`. A scripted unit (`Unit::scripted`: EVAL, FCALL...,
//! whose error text user code chooses) follows a MOVED for itself only:
//! no override, no MOVED report.
//!
//! Bounds: `max_redirects` MOVED/ASK hops and `max_retries` retries per
//! unit; past them the client gets the node's error as it was sent.
//! `tests_redirect.rs` drives these rules with simulated time.

use std::time::{Duration, Instant};

use super::nodes::NoRoute;
use super::reply::err;
use super::types::{BackendId, ClusterIntent};
use super::unit::{Dest, Hop, Target, Unit};
use super::ClusterSession;
use crate::protocol::cluster::{classify, Redirect};
use crate::protocol::resp::{Reply, ReplyKind};
use crate::route::ClusterReport;
use crate::session::mux::reply::strerror;

/// Least time between two reports of redirects to unknown nodes: they ask
/// for a refresh, and any client can make a script return one.
const UNKNOWN_REPORT_GAP: Duration = Duration::from_millis(100);
/// A unit routed to a node that has just left the topology.
const NOT_IN_VIEW: &str = "ERR the node left the cluster topology";

impl ClusterSession {
    /// Routes and queues `unit`; a keyed unit passes the order gate
    /// (`order.rs`) first. A unit waiting for a redirect's node is judged
    /// again instead.
    pub(super) fn send(&mut self, mut unit: Unit, now: Instant) {
        if let Some(hop) = unit.awaiting.take() {
            return self.redirect(unit, *hop, now);
        }
        let node = match unit.target {
            Target::Slot { slot, read } => {
                let node = self.nodes.route(slot, read, self.cfg.read_from);
                let Ok(unit) = self.order_gate(unit, node.as_ref().ok().copied()) else { return };
                return self.send_routed(unit, node, now);
            }
            Target::AnyMaster => self.nodes.any_master(),
            Target::Pinned { slot } => return self.send_pinned(unit, slot, now),
        };
        self.send_routed(unit, node, now);
    }

    /// Queues `unit` on the node it was routed to.
    pub(super) fn send_routed(&mut self, unit: Unit, node: Result<u32, NoRoute>, now: Instant) {
        match node {
            Ok(n) => self.send_to_node(unit, n, now),
            Err(e) => self.no_route(unit, e, now),
        }
    }

    fn no_route(&mut self, unit: Unit, e: NoRoute, now: Instant) {
        match e {
            NoRoute::NoMaster => self.retry_later(unit, err("CLUSTERDOWN Hash slot not served"), now),
            NoRoute::NoReplica => {
                self.fail_unit(unit, err("ERR no healthy replica serves this slot (read_from = replica)"))
            }
        }
    }

    /// Whether `node` refused recently (no new connection before its
    /// backoff ends); the error a unit gets if it runs out of retries.
    fn node_down(&self, node: u32, now: Instant) -> Option<Reply> {
        let n = self.nodes.node(node)?;
        n.down_until.filter(|&t| t > now)?;
        Some(err(&format!("ERR {} ({})", strerror(n.last_errno), n.addr)))
    }

    fn send_to_node(&mut self, unit: Unit, node: u32, now: Instant) {
        if let Some(e) = self.node_down(node, now) {
            return self.retry_later(unit, e, now);
        }
        if let Dest::Client { id, .. } = unit.dest {
            if let Some(c) = self.client_mut(id) {
                c.last_node = Some(node);
            }
        }
        match self.shared_conn(node, unit.dest, now) {
            Some(b) => self.push_unit(b, unit, false, now),
            None => self.retry_later(unit, err(NOT_IN_VIEW), now),
        }
    }

    /// Sends on the client's pinned connection, taking one for the slot's
    /// master (or the node of its previous command) if it has none.
    fn send_pinned(&mut self, unit: Unit, slot: Option<u16>, now: Instant) {
        let Dest::Client { id, .. } = unit.dest else {
            return self.fail_unit(unit, err("ERR internal: pinned work without a client"));
        };
        let Some(c) = self.client(id) else { return };
        if let Some(b) = c.pin.filter(|&b| self.conn(b).is_some()) {
            return self.push_unit(b, unit, false, now);
        }
        // The node of the previous command may have left the topology.
        let last = c.last_node.filter(|&n| self.nodes.in_view(n));
        let node = match slot {
            Some(s) => self.nodes.route(s, false, crate::config::ReadFrom::Master),
            None => last.map_or_else(|| self.nodes.any_master(), Ok),
        };
        let node = match node {
            Ok(n) => n,
            Err(e) => return self.no_route(unit, e, now),
        };
        self.pin_and_push(unit, id, node, false, now);
    }

    fn pin_and_push(&mut self, unit: Unit, id: super::ClientId, node: u32, asking: bool, now: Instant) {
        if !self.nodes.in_view(node) {
            return self.retry_later(unit, err(NOT_IN_VIEW), now);
        }
        if let Some(e) = self.node_down(node, now) {
            return self.retry_later(unit, e, now);
        }
        let Some(b) = self.acquire_pinned(node, id, now) else {
            let max = self.cfg.pinned_connections;
            return self.fail_unit(
                unit,
                err(&format!("ERR too many pinned connections to this node (pinned_connections = {max})")),
            );
        };
        if let Some(c) = self.client_mut(id) {
            c.pin = Some(b);
            c.last_node = Some(node);
        }
        self.push_unit(b, unit, asking, now);
    }

    /// A redirected pinned unit leaves its connection (clean: its reply
    /// just came) for one on the new node.
    fn unpin(&mut self, dest: Dest) {
        let Dest::Client { id, .. } = dest else { return };
        if let Some(b) = self.client_mut(id).and_then(|c| c.pin.take()) {
            self.release_pinned(b);
        }
    }

    /// Judges the final reply of `unit`, which came from connection `b`.
    /// `noted` is a redirect or retry error seen earlier in the same batch
    /// (a queued command of a transaction): it explains an EXECABORT.
    pub(super) fn handle_final(&mut self, b: BackendId, unit: Unit, reply: Reply, noted: Option<Reply>, now: Instant) {
        let from = self.conn(b).and_then(|c| self.nodes.node(c.node)).map(|n| n.addr);
        let judged = match noted {
            Some(n) if reply.kind == ReplyKind::Error => n,
            _ => reply.clone(),
        };
        let redirect = if judged.kind == ReplyKind::Error { classify(&judged.raw) } else { None };
        let hop = |ask, slot, to| from.map(|from| Hop { ask, slot, to, from, since: now });
        let hop = match redirect {
            Some(r) if r.is_retry() => return self.retry_later(unit, judged, now),
            _ if unit.redirects >= self.cfg.max_redirects => None,
            Some(Redirect::Moved { slot, to }) => hop(false, slot, to),
            Some(Redirect::Ask { slot, to }) => hop(true, slot, to),
            _ => None,
        };
        match hop {
            Some(hop) => self.redirect(unit, hop, now),
            None => self.complete(unit, reply),
        }
    }

    /// Follows `hop` if the topology knows its node, else waits for a
    /// refresh that may name it.
    fn redirect(&mut self, unit: Unit, hop: Hop, now: Instant) {
        match self.nodes.known(&hop.to, hop.from) {
            Some(node) => self.follow(unit, &hop, node, now),
            None => self.await_topology(unit, hop, now),
        }
    }

    fn follow(&mut self, mut unit: Unit, hop: &Hop, node: u32, now: Instant) {
        unit.redirects += 1;
        self.detour(&unit);
        if hop.ask {
            self.stats.ask += 1;
            return self.send_to(unit, node, true, now);
        }
        self.stats.moved += 1;
        if unit.scripted {
            // User code chose this text: it moves this request, never the map.
            return self.send_to(unit, node, false, now);
        }
        let slot = hop.slot;
        self.nodes.patch(slot, node);
        if self.nodes.take_moved_report(slot) {
            if let Some(addr) = self.nodes.node(node).map(|n| n.addr) {
                self.report(ClusterReport::Moved { slot, addr });
            }
        }
        if unit.target == Target::AnyMaster {
            unit.target = Target::Slot { slot, read: false };
        }
        if matches!(unit.target, Target::Pinned { .. }) {
            self.unpin(unit.dest);
        }
        self.send(unit, now)
    }

    /// Sends `unit` to `node` for this once (ASK, a scripted MOVED),
    /// with ASKING first when `asking`.
    fn send_to(&mut self, unit: Unit, node: u32, asking: bool, now: Instant) {
        if matches!(unit.target, Target::Pinned { .. }) {
            self.unpin(unit.dest);
            if let Dest::Client { id, .. } = unit.dest {
                return self.pin_and_push(unit, id, node, asking, now);
            }
        }
        if let Some(e) = self.node_down(node, now) {
            return self.retry_later(unit, e, now);
        }
        match self.shared_conn(node, unit.dest, now) {
            Some(b) => self.push_unit(b, unit, asking, now),
            None => self.retry_later(unit, err(NOT_IN_VIEW), now),
        }
    }

    /// A redirect to an address the topology does not list: nothing is
    /// connected or sent; a refresh is asked for and the unit waits on the
    /// retry schedule for a view that names the node.
    fn await_topology(&mut self, mut unit: Unit, hop: Hop, now: Instant) {
        if self.unknown_reported.is_none_or(|t| now >= t + UNKNOWN_REPORT_GAP) {
            self.unknown_reported = Some(now);
            self.report(ClusterReport::UnknownNode { slot: hop.slot });
        }
        let word = if hop.ask { "ASK" } else { "MOVED" };
        let text =
            format!("ERR {word} {} {} not followed: not a node of the cluster topology", hop.slot, hop.to.text());
        unit.awaiting = Some(Box::new(hop));
        self.retry_later(unit, err(&text), now);
    }

    /// A new view arrived: units waiting for a node it names are due now
    /// (from the moment their redirect came).
    pub(super) fn wake_awaiting(&mut self) {
        for r in &mut self.retries {
            if let Some(hop) = r.unit.awaiting.as_deref() {
                if self.nodes.known(&hop.to, hop.from).is_some() {
                    r.at = r.at.min(hop.since);
                }
            }
        }
    }

    pub(super) fn report(&mut self, r: ClusterReport) {
        self.stats.reports += 1;
        self.intents.push_back(ClusterIntent::Report(r));
    }
}
