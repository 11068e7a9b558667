//! Forwarding a planned request: the reply slot it owes its client, the
//! queue charge, and the backend connection it rides (`enqueue`: round
//! robin over `server_connections`, the RESP3 twins for a RESP3 client,
//! connecting first when needed).
//!
//! Invariants: a slot is pushed before any fragment is queued, so a reply
//! can never arrive for a slot that does not exist yet; the request bytes
//! charged to the client's queue come back when its slot leaves (or, for
//! memcached noreply, once written).

use std::time::Instant;

use bytes::Bytes;

use super::backend::{Inflight, RouteBy};
use super::client::Slot;
use super::dispatch::Forward;
use super::reply::MergePlan;
use super::{BackendId, ClientId, MuxSession};
use crate::obs::rec::NO_SERVER;
use crate::obs::ReqObs;

impl MuxSession {
    /// `Plan::One`: what `forward` does for one passed-through fragment,
    /// without the lists (no allocation besides the request's own bytes).
    pub(super) fn forward_one(
        &mut self,
        id: ClientId,
        server: u32,
        request: Bytes,
        route: RouteBy,
        mut obs: ReqObs,
        now: Instant,
    ) {
        let Some(c) = self.client_mut(id) else { return };
        let seq = c.next_seq();
        let mut slot = Slot::pending(Vec::new(), MergePlan::Pass);
        obs.server = server.min(u32::from(NO_SERVER)) as u16;
        slot.obs = obs;
        slot.charge = request.len();
        c.queued += request.len();
        c.slots.push_back(slot);
        let entry = Inflight {
            client: Some(id),
            seq,
            frag: 0,
            request,
            len: 0,
            route,
            retrieval: false,
            start: 0,
            sent_us: 0,
            deadline: None,
        };
        self.enqueue(server, entry, true, now);
    }

    pub(super) fn forward(&mut self, id: ClientId, f: Forward, mut obs: ReqObs, now: Instant) {
        let Forward { frags, route, merge, retrieval, noreply } = f;
        let Some(c) = self.client_mut(id) else { return };
        let seq = c.next_seq();
        // The request bytes count against the client's queue until its
        // reply leaves (with the slot) or, for noreply, until written.
        let charge: usize = frags.iter().map(|f| f.request.len()).sum();
        c.queued += charge;
        if !noreply {
            // A passed-through single reply needs no key map (`MergePlan::finish`
            // reads keys only to merge): no allocation for it per request.
            let keys = match (&merge, &frags[..]) {
                (MergePlan::Pass, [_]) => Vec::new(),
                _ => frags.iter().map(|f| f.keys.clone()).collect(),
            };
            let mut slot = Slot::pending(keys, merge);
            slot.charge = charge;
            if let [one] = &frags[..] {
                obs.server = one.server.min(u32::from(NO_SERVER)) as u16;
            }
            slot.obs = obs;
            c.slots.push_back(slot);
        }
        if frags.len() > 1 {
            self.stats.fragments += frags.len() as u64;
        }
        for (i, frag) in frags.into_iter().enumerate() {
            let entry = Inflight {
                client: Some(id),
                seq,
                frag: i as u32,
                request: frag.request,
                len: 0,
                // A per-server fan-out keeps each part on its server.
                route: match route {
                    RouteBy::Server(_) => RouteBy::Server(frag.server),
                    by => by,
                },
                retrieval,
                start: 0,
                sent_us: 0,
                deadline: None,
            };
            self.enqueue(frag.server, entry, !noreply, now);
        }
    }

    /// Queues a request on one of `server`'s connections, connecting it
    /// first if needed (with AUTH and SELECT ahead of any request).
    pub(super) fn enqueue(&mut self, server: u32, mut entry: Inflight, expect_reply: bool, now: Instant) {
        let per = self.cfg.server_connections;
        let mut conn = self.rr[server as usize] % per;
        self.rr[server as usize] = self.rr[server as usize].wrapping_add(1);
        // A RESP3 client's requests ride the twins that sent HELLO 3, so
        // its replies come back native.
        if entry.client.and_then(|id| self.clients_ref(id)).is_some_and(|c| c.hs.resp3) {
            conn += per;
        }
        let bid = BackendId { server, conn };
        entry.deadline = self.ensure_connecting(bid, now);
        entry.sent_us = self.obs.now_us();
        self.dirty_backends.push(bid);
        let sc = &mut self.stats.servers[server as usize];
        sc.requests += 1;
        sc.request_bytes += entry.request.len() as u64;
        let width = self.width();
        self.backends[(server * width + conn) as usize].push_request(entry, expect_reply);
    }
}
