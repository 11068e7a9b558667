//! Sending units and the redirect state machine: route a unit to a node's
//! connection, and judge its final reply: MOVED (patch the slot in the
//! core-local override, report it once, re-send at once), ASK (ASKING +
//! the request on the same connection to the named node; the map is not
//! touched), TRYAGAIN / CLUSTERDOWN / LOADING / MASTERDOWN (retry after a
//! backoff), anything else (deliver).
//!
//! Bounds: `max_redirects` MOVED/ASK hops and `max_retries` retries per
//! unit; past them the client gets the node's error as it was sent.
//! `tests_redirect.rs` drives these rules with simulated time.

use std::time::Instant;

use super::nodes::NoRoute;
use super::reply::err;
use super::types::{BackendId, ClusterIntent};
use super::unit::{Dest, Target, Unit};
use super::ClusterSession;
use crate::protocol::cluster::{classify, Redirect};
use crate::protocol::resp::{Reply, ReplyKind};
use crate::route::ClusterReport;
use crate::session::mux::reply::strerror;

impl ClusterSession {
    /// Routes and queues `unit`; a keyed unit passes the order gate
    /// (`order.rs`) first.
    pub(super) fn send(&mut self, unit: Unit, now: Instant) {
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
        let b = self.shared_conn(node, unit.dest, now);
        self.push_unit(b, unit, false, now);
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
        let last = c.last_node;
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
    pub(super) fn handle_final(
        &mut self,
        b: BackendId,
        mut unit: Unit,
        reply: Reply,
        noted: Option<Reply>,
        now: Instant,
    ) {
        let from = self.conn(b).map(|c| c.node);
        let judged = match noted {
            Some(n) if reply.kind == ReplyKind::Error => n,
            _ => reply.clone(),
        };
        let redirect = if judged.kind == ReplyKind::Error { classify(&judged.raw) } else { None };
        let pinned = matches!(unit.target, Target::Pinned { .. });
        match (redirect, from) {
            (Some(Redirect::Moved { slot, to }), Some(from)) if unit.redirects < self.cfg.max_redirects => {
                if let Some(node) = self.nodes.resolve(&to, from) {
                    unit.redirects += 1;
                    self.stats.moved += 1;
                    self.detour(&unit);
                    self.nodes.patch(slot, node);
                    if self.nodes.take_moved_report(slot) {
                        if let Some(addr) = self.nodes.node(node).map(|n| n.addr) {
                            self.report(ClusterReport::Moved { slot, addr });
                        }
                    }
                    if unit.target == Target::AnyMaster {
                        // A keyed command Puerta did not know: follow its slot.
                        unit.target = Target::Slot { slot, read: false };
                    }
                    if pinned {
                        self.unpin(unit.dest);
                    }
                    return self.send(unit, now);
                }
            }
            (Some(Redirect::Ask { to, .. }), Some(from)) if unit.redirects < self.cfg.max_redirects => {
                if let Some(node) = self.nodes.resolve(&to, from) {
                    unit.redirects += 1;
                    self.stats.ask += 1;
                    self.detour(&unit);
                    if pinned {
                        self.unpin(unit.dest);
                        if let Dest::Client { id, .. } = unit.dest {
                            return self.pin_and_push(unit, id, node, true, now);
                        }
                    }
                    if let Some(e) = self.node_down(node, now) {
                        return self.retry_later(unit, e, now);
                    }
                    let nb = self.shared_conn(node, unit.dest, now);
                    return self.push_unit(nb, unit, true, now);
                }
            }
            (Some(r), _) if r.is_retry() => return self.retry_later(unit, judged, now),
            _ => {}
        }
        self.complete(unit, reply);
    }

    pub(super) fn report(&mut self, r: ClusterReport) {
        self.stats.reports += 1;
        self.intents.push_back(ClusterIntent::Report(r));
    }
}
