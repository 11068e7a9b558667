//! Per-client request order across route changes. Redis runs one
//! connection's commands in order; Puerta spreads a client's requests
//! over node connections, so it must keep that promise itself where the
//! route of a slot changes under a client's pipeline (a MOVED patch from
//! another client, a new snapshot, a redirect, a retry).
//!
//! Each client keeps `routes`: for its outstanding keyed units, the reply
//! slot they fill, their hash slot and the node they went to (`DETOUR`
//! once redirected or parked for retry). A new unit for hash slot `s`
//! goes out only if every unfinished earlier unit of the client for `s`
//! went to the same node and is still there: one node, one connection per
//! client (`affine_conn`), so the node runs them in order. Otherwise it
//! waits in the client's `held` queue, in order, until those units are
//! answered; then `release_held` sends it.
//!
//! Invariants:
//! - a held unit's reply slot is already queued, so replies stay in order;
//! - held units leave in the order they came, and while any is held every
//!   new keyed unit of the client queues behind it;
//! - units already redirected or retried are never held (they are the
//!   earlier ones);
//! - reads sent to replicas (`read_from`) are neither held nor recorded:
//!   a replica lags its master, so they promise no order anyway;
//! - checking a unit looks only at earlier units of its own slot
//!   (`routes.rs`): a 100k-key MGET split over 16k slots costs linear time.

use std::time::Instant;

use super::routes::Route;
use super::unit::{Dest, Target, Unit};
use super::{CClient, ClusterSession};
use crate::config::ReadFrom;
use crate::session::mux::ClientId;

/// The node of a unit that left its first route (redirected or waiting
/// for a retry): no later unit of its slot may pass it.
pub(super) const DETOUR: u32 = u32::MAX;

impl CClient {
    /// Whether the unit filling part `frag` of reply slot `seq` has its
    /// reply (or its slot left the queue).
    fn answered(&self, seq: u64, frag: u32) -> bool {
        let Some(i) = seq.checked_sub(self.base.head_seq) else { return true };
        let Some(s) = self.base.slots.get(i as usize) else { return true };
        s.answered(frag)
    }

    fn prune_routes(&mut self) {
        while let Some(r) = self.routes.front() {
            if !self.answered(r.seq, r.frag) {
                break;
            }
            self.routes.pop_front();
        }
    }

    /// Freed node ids may be reused: a route naming one becomes a detour
    /// (still ordered against, never mistaken for the new node's).
    pub(super) fn forget_nodes(&mut self, freed: &[u32]) {
        for r in self.routes.iter_mut().filter(|r| freed.contains(&r.node)) {
            r.node = DETOUR;
        }
    }

    /// Whether a unit for `slot` routed to `node` (`None`: no route now)
    /// must wait behind an earlier unit of this client.
    fn conflicts(&self, slot: u16, node: Option<u32>) -> bool {
        self.routes.of_slot(slot).any(|r| Some(r.node) != node && !self.answered(r.seq, r.frag))
    }
}

impl ClusterSession {
    /// Decides whether a fresh keyed unit may go now. `Ok(unit)` to send
    /// (its route recorded), `Err(())` when it was held.
    pub(super) fn order_gate(&mut self, unit: Unit, node: Option<u32>) -> Result<Unit, ()> {
        let (Target::Slot { slot, read }, Dest::Client { id, seq, frag }) = (unit.target, unit.dest) else {
            return Ok(unit);
        };
        if unit.redirects > 0 || unit.retries > 0 || self.replica_read(read) {
            return Ok(unit);
        }
        let Some(c) = self.client_mut(id) else { return Ok(unit) };
        c.prune_routes();
        if !c.held.is_empty() || c.conflicts(slot, node) {
            c.held.push_back(unit);
            return Err(());
        }
        c.routes.push(Route { seq, frag, slot, node: node.unwrap_or(DETOUR) });
        Ok(unit)
    }

    /// Reads that `read_from` sends to replicas are not ordered against
    /// the client's writes (a replica lags its master anyway).
    fn replica_read(&self, read: bool) -> bool {
        read && self.cfg.read_from != ReadFrom::Master
    }

    /// Marks `unit` as having left its first route (redirect or retry).
    pub(super) fn detour(&mut self, unit: &Unit) {
        let Dest::Client { id, seq, frag } = unit.dest else { return };
        let Some(c) = self.client_mut(id) else { return };
        let slot = match unit.target {
            Target::Slot { slot, .. } => Some(slot),
            _ => None,
        };
        if let Some(r) = c.routes.find_mut(seq, frag, slot) {
            r.node = DETOUR;
        }
    }

    /// Sends the client's held units that no longer wait, in order,
    /// stopping at the first that still does.
    pub(super) fn release_held(&mut self, id: ClientId, now: Instant) {
        loop {
            let Some(c) = self.client_mut(id) else { return };
            c.prune_routes();
            let Some(unit) = c.held.front() else { return };
            let (Target::Slot { slot, read }, Dest::Client { seq, frag, .. }) = (unit.target, unit.dest) else {
                // Only keyed client units are ever held.
                return;
            };
            let routed = self.nodes.route(slot, read, self.cfg.read_from);
            let node = routed.as_ref().ok().copied();
            let Some(c) = self.client_mut(id) else { return };
            if c.conflicts(slot, node) {
                return;
            }
            let Some(unit) = c.held.pop_front() else { return };
            c.routes.push(Route { seq, frag, slot, node: node.unwrap_or(DETOUR) });
            self.send_routed(unit, routed, now);
        }
    }

    /// The connection index among a node's `node_connections` for a unit:
    /// a client's units always share one (so the node runs them in order);
    /// other work takes turns.
    pub(super) fn affine_conn(dest: Dest, rr: u32, per: u32) -> u32 {
        match dest {
            Dest::Client { id, .. } => id.idx % per,
            Dest::Agg { .. } => rr % per,
        }
    }
}
