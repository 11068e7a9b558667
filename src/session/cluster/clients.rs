//! The client side of the cluster session: moving ready replies to a
//! client's buffer, relaying pub/sub frames, reply limits, EOF and close,
//! and the driver's transmit / read-interest calls.
//!
//! Invariant: a closed client's id never matches again (its generation
//! moved on), and its pinned connection is closed with it, since that
//! connection may be blocked or subscribed on the client's behalf.

use std::time::Instant;

use bytes::Bytes;

use super::types::ClusterIntent;
use super::ClusterSession;
use crate::session::mux::{ClientClose, ClientId};

impl ClusterSession {
    /// Moves ready replies to the client's buffer and closes it when done
    /// or past its reply limit.
    pub(super) fn flush_client(&mut self, id: ClientId) {
        let limit = self.cfg.client_reply_limit;
        let Some(c) = self.client_mut(id) else { return };
        let before = c.base.out.len();
        c.base.flush_ready();
        let grew = c.base.out.len() > before;
        let drained = c.base.slots.is_empty() && c.parked.is_some();
        let b = &c.base;
        let why = if b.out.len() > limit {
            Some(ClientClose::SlowClient)
        } else if b.out.is_empty() && (b.closing.is_some() || (b.eof && b.slots.is_empty() && !c.subscribed)) {
            Some(b.closing.unwrap_or(ClientClose::Eof))
        } else {
            None
        };
        if grew {
            self.dirty_clients.push(id);
        }
        if drained {
            self.resume.push(id);
        }
        if let Some(why) = why {
            if why == ClientClose::SlowClient {
                self.stats.slow_closed += 1;
            }
            self.close_client(id, why);
        } else {
            self.close_if_drained(id);
        }
    }

    /// Appends relayed pub/sub bytes for a subscribed client.
    pub(super) fn relay_to(&mut self, id: ClientId, frame: &Bytes) {
        let limit = self.cfg.client_reply_limit;
        let Some(c) = self.client_mut(id) else { return };
        c.base.out.push(frame);
        self.dirty_clients.push(id);
        if self.client(id).is_some_and(|c| c.base.out.len() > limit) {
            self.stats.slow_closed += 1;
            self.close_client(id, ClientClose::SlowClient);
        }
    }

    /// Forgets a client now and tells the driver to close it. Replies still
    /// due to it are dropped when they arrive; its pinned connection is
    /// closed (it may be blocked or subscribed).
    pub fn close_client(&mut self, id: ClientId, why: ClientClose) {
        let Some(c) = self.client_mut(id) else { return };
        let pin = c.pin.take();
        self.clients[id.idx as usize] = None;
        self.gens[id.idx as usize] = self.gens[id.idx as usize].wrapping_add(1);
        self.free.push(id.idx);
        if let Some(b) = pin {
            self.close_conn(b);
        }
        self.intents.push_back(ClusterIntent::CloseClient(id, why));
    }

    /// Read EOF from a client: answer what it sent, then close.
    pub fn handle_client_eof(&mut self, id: ClientId) {
        let Some(c) = self.client_mut(id) else { return };
        c.base.eof = true;
        if c.subscribed {
            // Nothing more is owed to a subscriber that hung up.
            return self.close_client(id, ClientClose::Eof);
        }
        self.flush_client(id);
    }

    pub fn handle_client_error(&mut self, id: ClientId, errno: i32) {
        self.close_client(id, ClientClose::Error(errno));
    }

    /// Bytes to write to a client now, pinned until `handle_client_sent`.
    pub fn poll_client_transmit(&mut self, id: ClientId) -> Option<&[u8]> {
        self.client_mut(id)?.base.out.start_send()
    }

    pub fn handle_client_sent(&mut self, id: ClientId, n: usize, now: Instant) {
        let Some(c) = self.client_mut(id) else { return };
        if c.base.out.in_flight() {
            c.base.out.complete(n);
        }
        // Reads may have paused on the pending limit: resume decoding.
        self.process_client(id, now);
        self.run_resumes(now);
    }

    /// Whether the driver should keep reading this client.
    pub fn wants_client_read(&self, id: ClientId) -> bool {
        let Some(c) = self.client(id) else { return false };
        !c.base.stop_reading && !c.base.eof && !c.blocked && c.base.slots.len() < self.cfg.max_pending_per_client
    }
}
