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
//! - routes are indexed by hash slot, so checking a unit looks only at
//!   earlier units of its own slot: a 100k-key MGET split over 16k slots
//!   costs linear time, not one scan of every earlier part per part.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use super::unit::{Dest, Target, Unit};
use super::{CClient, ClusterSession};
use crate::config::ReadFrom;
use crate::session::mux::ClientId;

/// The node of a unit that left its first route (redirected or waiting
/// for a retry): no later unit of its slot may pass it.
pub(super) const DETOUR: u32 = u32::MAX;

/// One outstanding keyed unit of a client.
#[derive(Debug, Clone, Copy)]
pub(super) struct Route {
    seq: u64,
    frag: u32,
    slot: u16,
    node: u32,
}

/// Hashes a slot number as itself, spread by one multiply: slots are
/// small integers, not hostile strings (at most 16384 of them).
#[derive(Default)]
pub(super) struct SlotHasher(u64);

impl Hasher for SlotHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u16(&mut self, n: u16) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A client's outstanding keyed units: in send order (to forget answered
/// ones from the front) and per slot (to check one slot without a scan).
/// Invariant: both hold the same routes, and each slot's queue is in send
/// order, so the oldest route overall is the front of its slot's queue.
#[derive(Default)]
pub(super) struct Routes {
    order: VecDeque<(u64, u32, u16)>,
    by_slot: HashMap<u16, VecDeque<Route>, BuildHasherDefault<SlotHasher>>,
}

impl Routes {
    fn push(&mut self, r: Route) {
        self.order.push_back((r.seq, r.frag, r.slot));
        self.by_slot.entry(r.slot).or_default().push_back(r);
    }

    fn slot(&self, slot: u16) -> impl Iterator<Item = &Route> {
        self.by_slot.get(&slot).into_iter().flatten()
    }
}

impl CClient {
    /// Whether the unit filling part `frag` of reply slot `seq` has its
    /// reply (or its slot left the queue).
    fn answered(&self, seq: u64, frag: u32) -> bool {
        let Some(i) = seq.checked_sub(self.base.head_seq) else { return true };
        let Some(s) = self.base.slots.get(i as usize) else { return true };
        s.ready.is_some() || s.parts.get(frag as usize).is_none_or(|p| p.is_some())
    }

    fn prune_routes(&mut self) {
        while let Some(&(seq, frag, slot)) = self.routes.order.front() {
            if !self.answered(seq, frag) {
                break;
            }
            self.routes.order.pop_front();
            // The oldest route overall is the oldest of its slot.
            if let Some(q) = self.routes.by_slot.get_mut(&slot) {
                q.pop_front();
                if q.is_empty() {
                    self.routes.by_slot.remove(&slot);
                }
            }
        }
    }

    /// Whether a unit for `slot` routed to `node` (`None`: no route now)
    /// must wait behind an earlier unit of this client.
    fn conflicts(&self, slot: u16, node: Option<u32>) -> bool {
        self.routes.slot(slot).any(|r| Some(r.node) != node && !self.answered(r.seq, r.frag))
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
        // Look in the unit's own slot first; a unit whose target changed
        // since (redirects are rare) is looked for everywhere.
        let slot = match unit.target {
            Target::Slot { slot, .. } => Some(slot),
            _ => None,
        };
        let own = slot
            .and_then(|s| c.routes.by_slot.get_mut(&s))
            .and_then(|q| q.iter_mut().find(|r| r.seq == seq && r.frag == frag));
        let found = match own {
            Some(r) => Some(r),
            None => c.routes.by_slot.values_mut().flatten().find(|r| r.seq == seq && r.frag == frag),
        };
        if let Some(r) = found {
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
