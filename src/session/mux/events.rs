//! Backend-side events of the session: connect results, replies, sends,
//! failures and deadlines.
//!
//! Failure rules (nutcracker's, plus re-routing of unsent work):
//! - connect refused or timed out: every request queued on that connection
//!   gets `-ERR <strerror>` (`SERVER_ERROR ...` for memcached);
//! - a reply timeout: the connection is closed and everything on it gets
//!   `Connection timed out`;
//! - a `noreply` request not wholly written by its deadline times the
//!   connection out the same way (counted in `server_timedout` and
//!   reported as a server failure). Nothing comes back for noreply, so the
//!   deadline bounds the write: once the server's socket took the bytes,
//!   Puerta cannot tell whether it ran them, and a request written later
//!   that does get a reply is what proves the connection alive;
//! - the connection dies or sends garbage: requests already written get the
//!   error, requests never written are routed again by the current router.

use crate::session::outbuf::Tx;
use std::time::Instant;

use bytes::BytesMut;

use super::backend::{route_key, BState, Inflight, ReplyDec, RouteBy};
use super::reply::AnyReply;
use super::{BackendClose, BackendId, MuxIntent, MuxSession, Router};

/// Which queued requests a failure errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fail {
    All,
    SentOnly,
}

impl MuxSession {
    fn bidx(&self, b: BackendId) -> Option<usize> {
        let width = self.width();
        (b.server < self.cfg.servers && b.conn < width).then_some((b.server * width + b.conn) as usize)
    }

    pub fn handle_backend_connected(&mut self, b: BackendId) {
        let Some(i) = self.bidx(b) else { return };
        if matches!(self.backends[i].state, BState::Connecting { .. }) {
            self.backends[i].state = BState::Ready;
        }
    }

    pub fn handle_backend_connect_failed(&mut self, b: BackendId, errno: i32, now: Instant, router: &dyn Router) {
        self.set_clock(now);
        self.fail_backend(b, errno, Fail::All, now, router);
        self.run_resumes(now, router);
    }

    /// The backend closed (`errno` None for a clean EOF) or errored.
    pub fn handle_backend_closed(&mut self, b: BackendId, errno: Option<i32>, now: Instant, router: &dyn Router) {
        self.set_clock(now);
        if let Some(s) = self.stats.servers.get_mut(b.server as usize) {
            if errno.is_some() {
                s.server_err += 1;
            } else {
                s.server_eof += 1;
            }
        }
        self.fail_backend(b, errno.unwrap_or(libc::ECONNRESET), Fail::SentOnly, now, router);
        self.run_resumes(now, router);
    }

    /// Bytes to write to a backend now (only once connected).
    pub fn poll_backend_transmit(&mut self, b: BackendId) -> Option<Tx<'_>> {
        let i = self.bidx(b)?;
        let be = &mut self.backends[i];
        if be.state != BState::Ready {
            return None;
        }
        be.out.start_send()
    }

    /// `n` bytes of the send in flight were written. Wholly written
    /// `noreply` requests leave the client's queue (and may resume it).
    pub fn handle_backend_sent(&mut self, b: BackendId, n: usize, now: Instant, router: &dyn Router) {
        self.set_clock(now);
        let Some(i) = self.bidx(b) else { return };
        let be = &mut self.backends[i];
        if be.out.in_flight() {
            be.out.complete(n);
            be.sent += n as u64;
        }
        while let Some(e) = self.backends[i].pop_written_silent() {
            if let Some(id) = e.client {
                self.refund(id, e.len);
            }
        }
        self.run_resumes(now, router);
    }

    /// Bytes read from a backend: frames replies and hands each to the
    /// request at the head of that connection's queue.
    pub fn handle_backend_data(&mut self, b: BackendId, data: &[u8], now: Instant, router: &dyn Router) {
        self.set_clock(now);
        // The round trips of this read, equal ones recorded together.
        let mut rtt = crate::obs::Run::default();
        self.backend_data(b, data, now, router, &mut rtt);
        self.obs.flush_backend(&mut rtt);
        self.run_resumes(now, router);
    }

    /// `handle_backend_data` without copying: the driver's receive buffer
    /// is the connection's reply buffer for the call. Whole replies leave
    /// it as shared blocks (a large one reaches the client uncopied), and
    /// it comes back holding the start of the next reply, sized for it
    /// (`backend::presize`); the session keeps no buffer between reads.
    pub fn handle_backend_rx(&mut self, b: BackendId, rx: &mut BytesMut, now: Instant, router: &dyn Router) {
        let Some(i) = self.bidx(b) else { return rx.clear() };
        let rbuf = &mut self.backends[i].rbuf;
        if rbuf.is_empty() {
            std::mem::swap(rbuf, rx);
        } else {
            rbuf.extend_from_slice(rx);
            rx.clear();
        }
        self.handle_backend_data(b, &[], now, router);
        // A connection that failed meanwhile was reset: its buffer is empty.
        if let Some(i) = self.bidx(b) {
            std::mem::swap(&mut self.backends[i].rbuf, rx);
        }
    }

    fn backend_data(
        &mut self,
        b: BackendId,
        data: &[u8],
        now: Instant,
        router: &dyn Router,
        rtt: &mut crate::obs::Run,
    ) {
        let Some(i) = self.bidx(b) else { return };
        if self.backends[i].state != BState::Ready {
            return;
        }
        self.backends[i].rbuf.extend_from_slice(data);
        loop {
            let be = &mut self.backends[i];
            let retrieval = be.inflight.front().is_some_and(|e| e.retrieval);
            let decoded = match &mut be.dec {
                ReplyDec::Resp(d) => d.decode(&mut be.rbuf).map(|r| r.map(AnyReply::Resp)),
                ReplyDec::Mc(d) => d.decode(&mut be.rbuf, retrieval).map(|r| r.map(AnyReply::Mc)),
            };
            let reply = match decoded {
                Ok(Some(r)) => r,
                Ok(None) => {
                    let want = match &be.dec {
                        ReplyDec::Resp(d) => d.wants(),
                        ReplyDec::Mc(d) => d.wants(),
                    };
                    super::backend::presize(&mut be.rbuf, want);
                    return;
                }
                Err(e) => {
                    tracing::warn!(server = b.server, err = %e, "bad reply from backend; closing it");
                    return self.fail_backend(b, libc::EPROTO, Fail::SentOnly, now, router);
                }
            };
            if matches!(&reply, AnyReply::Resp(r) if r.is_push()) {
                // Out-of-band (RESP3): answers no request; nothing asked
                // for it on a shared connection, so it is dropped.
                continue;
            }
            let Some(entry) = be.inflight.pop_front() else {
                tracing::warn!(server = b.server, "reply with no request outstanding; closing backend");
                return self.fail_backend(b, libc::EPROTO, Fail::SentOnly, now, router);
            };
            self.obs.backend_rtt(b.server, entry.sent_us, rtt);
            let sc = &mut self.stats.servers[b.server as usize];
            sc.responses += 1;
            sc.response_bytes += reply.raw().len() as u64;
            match entry.client {
                Some(id) => self.deliver(id, entry.seq, entry.frag, reply),
                None if reply.is_error() => {
                    tracing::warn!(server = b.server, reply = ?reply.raw(), "AUTH/SELECT on connect failed")
                }
                None => {}
            }
        }
    }

    /// Checks deadlines (requests, connects, soft output limits); call on
    /// every timer tick.
    pub fn handle_tick(&mut self, now: Instant, router: &dyn Router) {
        self.set_clock(now);
        let expired: Vec<BackendId> = self
            .backend_ids()
            .zip(&self.backends)
            .filter(|(_, be)| be.deadline().is_some_and(|d| now >= d))
            .map(|(id, _)| id)
            .collect();
        for b in expired {
            self.stats.servers[b.server as usize].server_timedout += 1;
            self.fail_backend(b, libc::ETIMEDOUT, Fail::All, now, router);
        }
        self.check_soft_timers(now);
        let clients = &self.clients;
        let wait_of =
            |id: super::ClientId| clients.get(id.idx as usize)?.as_deref().filter(|c| c.gen == id.gen)?.rate_wait();
        for id in self.rate.due(now, wait_of) {
            if let Some(r) = self.client_mut(id).and_then(|c| c.rate.as_deref_mut()) {
                r.wait = None;
                self.resume.push(id);
            }
        }
        self.stats.rate_limited = self.rate.limited;
        self.stats.rate_limited_any = self.rate.limited_any;
        self.run_resumes(now, router);
        self.trim_idle();
    }

    /// The earliest instant at which `handle_tick` could change something.
    pub fn next_deadline(&self) -> Option<Instant> {
        let backends = self.backends.iter().filter_map(|b| b.deadline());
        backends.chain(self.next_soft_deadline()).chain(self.rate.next_deadline()).min()
    }

    fn fail_backend(&mut self, b: BackendId, errno: i32, mode: Fail, now: Instant, router: &dyn Router) {
        let Some(i) = self.bidx(b) else { return };
        if self.backends[i].state == BState::Idle {
            return;
        }
        let be = &mut self.backends[i];
        let sent = be.sent;
        let mut silent = std::mem::take(&mut be.silent);
        let mut entries = std::mem::take(&mut be.inflight);
        if mode == Fail::SentOnly {
            // Requests that never left Puerta may go elsewhere: take their
            // bytes back out of the connection's buffer before it goes.
            for e in entries.iter_mut().chain(silent.iter_mut()).filter(|e| e.client.is_some()) {
                if let Some(bytes) = be.unsent_request(e) {
                    e.request = bytes;
                }
            }
        }
        be.reset(self.cfg.protocol);
        self.intents.push_back(MuxIntent::CloseBackend(b, BackendClose::of_errno(errno)));
        self.intents.push_back(MuxIntent::ServerFailed { server: b.server, errno });
        let mut again: Vec<(Inflight, bool)> = Vec::new();
        for e in entries {
            if !e.request.is_empty() && e.start >= sent && e.client.is_some() {
                again.push((e, true));
            } else {
                self.error_entry(e, errno);
            }
        }
        // A noreply request owes no reply: unwritten ones go elsewhere
        // like the rest (or are dropped), and leave the client's queue.
        for e in silent {
            match e.client {
                Some(_) if !e.request.is_empty() && e.start >= sent => again.push((e, false)),
                Some(id) => self.refund(id, e.len),
                None => {}
            }
        }
        // Both queues hold one stream: re-send in its order.
        again.sort_by_key(|(e, _)| e.start);
        for (e, expect_reply) in again {
            let server = match e.route {
                RouteBy::Server(s) => Some(s),
                by => router.route(&route_key(self.cfg.protocol, &e.request, by)),
            };
            match server.filter(|&s| s < self.cfg.servers) {
                Some(server) => self.enqueue(server, e, expect_reply, now),
                None if expect_reply => self.error_entry(e, errno),
                None => {
                    if let Some(id) = e.client {
                        self.refund(id, e.len);
                    }
                }
            }
        }
    }
}
