//! The client side of the mux session: moving ready replies to a client's
//! buffer, the byte bounds of `limits.rs` (output limit, queue refunds and
//! the reads they resume), EOF and close, and the driver's transmit and
//! read-interest calls.
//!
//! Invariants: a closed client's id never matches again (its generation
//! moved on), and its buffered bytes leave the session's `Budget` with it;
//! a client whose queue drops below `client_queue_limit` is listed in
//! `resume` and decoded again before the event that refunded it returns.

use crate::session::outbuf::Tx;
use std::time::Instant;

use super::{client_in, reply, ClientClose, ClientId, MuxIntent, MuxSession, Router};
use crate::session::ratelimit::{ClientRate, RateCtx};

impl MuxSession {
    /// Moves ready replies to the client's buffer, then judges its limits
    /// and closes it when done or past them. `before` is the client's
    /// `buffered()` before the change being settled (`None`: now).
    pub(super) fn flush_client(&mut self, id: ClientId, before: Option<usize>) {
        let queue_limit = self.cfg.client_queue_limit;
        let Some(c) = client_in(&mut self.clients, id) else { return };
        let before = before.unwrap_or_else(|| c.buffered());
        let (out_before, queued_before) = (c.out.len(), c.queued);
        c.flush_ready(&self.obs, id.index());
        if c.out.len() > out_before {
            self.dirty_clients.push(id);
        }
        if queued_before >= queue_limit && c.queued < queue_limit {
            self.resume.push(id);
        }
        // Nothing to settle when the bytes did not move, no soft timer runs
        // and no limit is in reach (the common case: 4 calls per request).
        let settle = c.buffered() != before || c.soft_since.is_some() || before >= self.cfg.output.floor();
        let why = if settle && self.budget.settle(&self.cfg.output, id, c, before, self.clock) {
            Some(ClientClose::SlowClient)
        } else if c.out.is_empty() && (c.closing.is_some() || (c.eof && c.slots.is_empty() && c.rate_wait().is_none()))
        {
            Some(c.closing.unwrap_or(ClientClose::Eof))
        } else {
            None
        };
        match why {
            Some(why) => {
                if why == ClientClose::SlowClient {
                    self.stats.slow_closed += 1;
                }
                self.close_client(id, why);
            }
            None => self.close_if_drained(id),
        }
    }

    /// Forgets a client now and tells the driver to close it. Replies still
    /// due to it are dropped when they arrive (the generation moved on).
    pub fn close_client(&mut self, id: ClientId, why: ClientClose) {
        let Some(c) = client_in(&mut self.clients, id) else { return };
        self.budget.forget(id, c);
        self.clients[id.idx as usize] = None;
        self.gens[id.idx as usize] = self.gens[id.idx as usize].wrapping_add(1);
        self.free.push(id.idx);
        self.intents.push_back(MuxIntent::CloseClient(id, why));
    }

    /// The pool's per-IP rates on this core (`None`: none).
    pub fn set_rate(&mut self, ctx: Option<RateCtx>) {
        self.rate.set(ctx);
    }

    /// Where a client comes from, for its per-IP limits.
    pub fn set_client_rate(&mut self, id: ClientId, rate: ClientRate) {
        if let Some(c) = self.client_mut(id) {
            c.rate = Some(Box::new(rate));
        }
    }

    /// Read EOF from a client: answer what it sent, then close.
    pub fn handle_client_eof(&mut self, id: ClientId) {
        let Some(c) = self.client_mut(id) else { return };
        // Whole requests still buffered (reads paused on a limit) are
        // answered first; a trailing partial one can never complete.
        c.eof = true;
        self.flush_client(id, None);
    }

    pub fn handle_client_error(&mut self, id: ClientId, errno: i32) {
        self.close_client(id, ClientClose::Error(errno));
    }

    /// Bytes to write to a client now, pinned until `handle_client_sent`.
    pub fn poll_client_transmit(&mut self, id: ClientId) -> Option<Tx<'_>> {
        self.client_mut(id)?.out.start_send()
    }

    pub fn handle_client_sent(&mut self, id: ClientId, n: usize, now: Instant, router: &dyn Router) {
        self.set_clock(now);
        let Some(c) = self.client_mut(id) else { return };
        let before = c.buffered();
        if c.out.in_flight() {
            c.out.complete(n);
        }
        // A drop below `soft` stops the soft timer (flush judges it).
        self.flush_client(id, Some(before));
        // Reads may have paused on the pending limit: resume decoding.
        self.process_client(id, now, router);
        self.run_resumes(now, router);
    }

    /// Whether the driver should keep reading this client.
    pub fn wants_client_read(&self, id: ClientId) -> bool {
        let Some(c) = self.clients.get(id.idx as usize).and_then(|c| c.as_deref()).filter(|c| c.gen == id.gen) else {
            return false;
        };
        !c.stop_reading
            && !c.eof
            && c.rate_wait().is_none()
            && c.slots.len() < self.cfg.max_pending_per_client
            && c.queued < self.cfg.client_queue_limit
    }

    /// Reply bytes buffered for all clients of this session.
    pub fn buffered_bytes(&self) -> usize {
        self.budget.total()
    }

    /// Every client holding reply bytes, with how many.
    pub fn buffered_clients(&self) -> impl Iterator<Item = (ClientId, usize)> + '_ {
        let ids = self.clients.iter().zip(0u32..);
        ids.filter_map(|(c, idx)| c.as_ref().map(|c| (ClientId { idx, gen: c.gen }, c.buffered())))
            .filter(|&(_, n)| n > 0)
    }

    /// Gives `n` request bytes back to `id`'s queue (a `noreply` request
    /// was written); lists the client for decoding if that unpaused it.
    pub(super) fn refund(&mut self, id: ClientId, n: usize) {
        let limit = self.cfg.client_queue_limit;
        let Some(c) = self.client_mut(id) else { return };
        let was = c.queued;
        c.queued -= n;
        if was >= limit && c.queued < limit {
            self.resume.push(id);
        }
    }

    /// Decodes again for clients whose queue drained below the limit.
    pub(super) fn run_resumes(&mut self, now: Instant, router: &dyn Router) {
        while let Some(id) = self.resume.pop() {
            self.process_client(id, now, router);
        }
    }

    /// Closes clients whose soft limit lasted `soft_seconds` (on a tick).
    pub(super) fn check_soft_timers(&mut self, now: Instant) {
        let due = self.budget.soft_due(&self.cfg.output, now, |id| self.clients_ref(id)?.soft_since);
        for id in due {
            self.flush_client(id, None);
        }
    }

    /// The earliest soft-limit deadline of any client.
    pub(super) fn next_soft_deadline(&self) -> Option<Instant> {
        self.budget.next_soft_deadline(&self.cfg.output, |id| self.clients_ref(id)?.soft_since)
    }

    pub(super) fn clients_ref(&self, id: ClientId) -> Option<&super::client::Client> {
        self.clients.get(id.idx as usize)?.as_deref().filter(|c| c.gen == id.gen)
    }

    /// Delivers fragment `frag` of request `seq`, then flushes.
    pub(super) fn deliver(&mut self, id: ClientId, seq: u64, frag: u32, reply: reply::AnyReply) {
        let Some(c) = self.client_mut(id) else { return };
        let before = c.buffered();
        if c.deliver(seq, frag, reply) {
            self.flush_client(id, Some(before));
        }
    }
}
