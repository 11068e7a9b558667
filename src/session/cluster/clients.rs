//! The client side of the cluster session: moving ready replies to a
//! client's buffer, relaying pub/sub frames, reply limits, EOF and close,
//! and the driver's transmit / read-interest calls.
//!
//! Invariants: a closed client's id never matches again (its generation
//! moved on), and its pinned connection is closed with it, since that
//! connection may be blocked or subscribed on the client's behalf; every
//! change to a client's buffered reply bytes is settled in the session's
//! `Budget` (`mux::limits`), and a closed client leaves it.

use crate::session::outbuf::Tx;
use std::time::Instant;

use bytes::Bytes;

use super::types::ClusterIntent;
use super::ClusterSession;
use crate::session::mux::{ClientClose, ClientId};

impl ClusterSession {
    /// Moves ready replies to the client's buffer and closes it when done
    /// or past its output limit.
    pub(super) fn flush_client(&mut self, id: ClientId) {
        self.flush_client_from(id, None);
    }

    /// `flush_client`, settling a change of the client's buffered bytes
    /// from `before` (`None`: no change before this call).
    pub(super) fn flush_client_from(&mut self, id: ClientId, before: Option<usize>) {
        let (queue_limit, clock) = (self.cfg.client_queue_limit, self.clock);
        let Some(c) = self.clients.get_mut(id.idx as usize).and_then(|c| c.as_mut()).filter(|c| c.base.gen == id.gen)
        else {
            return;
        };
        let before = before.unwrap_or_else(|| c.base.buffered());
        let (out_before, queued_before) = (c.base.out.len(), c.base.queued);
        c.base.flush_ready(&self.obs, id.index());
        let grew = c.base.out.len() > out_before;
        let drained = c.base.slots.is_empty() && c.parked.is_some();
        let unpaused = queued_before >= queue_limit && c.base.queued < queue_limit;
        let over = self.budget.settle(&self.cfg.output, id, &mut c.base, before, clock);
        let b = &c.base;
        let why = if over {
            Some(ClientClose::SlowClient)
        } else if b.out.is_empty()
            && (b.closing.is_some() || (b.eof && b.slots.is_empty() && !c.subscribed && b.rate_wait().is_none()))
        {
            Some(b.closing.unwrap_or(ClientClose::Eof))
        } else {
            None
        };
        if grew {
            self.dirty_clients.push(id);
        }
        if drained || unpaused {
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
        let clock = self.clock;
        let Some(c) = self.clients.get_mut(id.idx as usize).and_then(|c| c.as_mut()).filter(|c| c.base.gen == id.gen)
        else {
            return;
        };
        let before = c.base.buffered();
        c.base.out.push(frame);
        self.dirty_clients.push(id);
        if self.budget.settle(&self.cfg.output, id, &mut c.base, before, clock) {
            self.stats.slow_closed += 1;
            self.close_client(id, ClientClose::SlowClient);
        }
    }

    /// Forgets a client now and tells the driver to close it. Replies still
    /// due to it are dropped when they arrive; its pinned connection is
    /// closed (it may be blocked or subscribed).
    pub fn close_client(&mut self, id: ClientId, why: ClientClose) {
        let Some(c) = self.clients.get_mut(id.idx as usize).and_then(|c| c.as_mut()).filter(|c| c.base.gen == id.gen)
        else {
            return;
        };
        self.budget.forget(id, &c.base);
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
    pub fn poll_client_transmit(&mut self, id: ClientId) -> Option<Tx<'_>> {
        self.client_mut(id)?.base.out.start_send()
    }

    pub fn handle_client_sent(&mut self, id: ClientId, n: usize, now: Instant) {
        self.set_clock(now);
        let Some(c) = self.client_mut(id) else { return };
        let before = c.base.buffered();
        if c.base.out.in_flight() {
            c.base.out.complete(n);
        }
        // A drop below `soft` stops the soft timer.
        self.flush_client_from(id, Some(before));
        // Reads may have paused on the pending limit: resume decoding.
        self.process_client(id, now);
        self.run_resumes(now);
    }

    /// The pool's per-IP rates on this core (`None`: none).
    pub fn set_rate(&mut self, ctx: Option<crate::session::ratelimit::RateCtx>) {
        self.rate.set(ctx);
    }

    /// Where a client comes from, for its per-IP limits.
    /// A TLS client's handshake completed: the user its certificate names
    /// (`[[user]] cert_cn`/`cert_san`) logs it in, as AUTH would.
    pub fn set_client_cert(&mut self, id: ClientId, names: Option<&crate::acl::CertNames>) {
        let Some(users) = self.cfg.users.clone() else { return };
        let Some(user) = names.and_then(|n| users.by_cert(n)).cloned() else { return };
        if let Some(c) = self.client_mut(id) {
            c.base.user = Some(user);
            c.base.authed = true;
        }
    }

    pub fn set_client_rate(&mut self, id: ClientId, rate: crate::session::ratelimit::ClientRate) {
        if let Some(c) = self.client_mut(id) {
            c.base.rate = Some(Box::new(rate));
        }
    }

    /// Whether the driver should keep reading this client.
    pub fn wants_client_read(&self, id: ClientId) -> bool {
        let Some(c) = self.client(id) else { return false };
        !c.base.stop_reading
            && !c.base.eof
            && c.base.rate_wait().is_none()
            && !c.blocked
            && c.base.slots.len() < self.cfg.max_pending_per_client
            && c.base.queued < self.cfg.client_queue_limit
    }

    /// Reply bytes buffered for all clients of this session.
    pub fn buffered_bytes(&self) -> usize {
        self.budget.total()
    }

    /// Every client holding reply bytes, with how many.
    pub fn buffered_clients(&self) -> impl Iterator<Item = (ClientId, usize)> + '_ {
        let ids = self.clients.iter().zip(0u32..);
        ids.filter_map(|(c, idx)| c.as_ref().map(|c| (ClientId { idx, gen: c.base.gen }, c.base.buffered())))
            .filter(|&(_, n)| n > 0)
    }

    /// Closes clients whose soft limit lasted `soft_seconds` (on a tick).
    pub(super) fn check_soft_timers(&mut self) {
        let Some(now) = self.clock else { return };
        let due = self.budget.soft_due(&self.cfg.output, now, |id| self.client(id)?.base.soft_since);
        for id in due {
            self.flush_client(id);
        }
    }

    /// The earliest soft-limit deadline of any client.
    pub(super) fn next_soft_deadline(&self) -> Option<Instant> {
        self.budget.next_soft_deadline(&self.cfg.output, |id| self.client(id)?.base.soft_since)
    }
}
