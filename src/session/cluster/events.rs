//! Backend-side events of the cluster session: connect results, replies,
//! sends, failures, deadlines and retry timers.
//!
//! Failure rules:
//! - a connect that fails: the node is marked down for a backoff, reported
//!   once, and everything queued on the connection is retried (the
//!   refresh may move its slots meanwhile), within `max_retries`;
//! - a connection that dies, times out or sends garbage: requests already
//!   (partly) written get `-ERR <strerror>` (they may have run), requests
//!   never written are retried;
//! - a pinned connection that fails takes its pin with it: a subscribed
//!   client is closed (it resubscribes on reconnect), a WATCH is lost (its
//!   EXEC answers a null array, as when a watched key changed).

use crate::session::outbuf::Tx;
use std::time::{Duration, Instant};

use super::conns::Kind;
use super::reply::err;
use super::types::BackendId;
use super::unit::Entry;
use super::ClusterSession;
use crate::protocol::resp::value::{self, Value};
use crate::protocol::resp::{Reply, ReplyKind};
use crate::route::ClusterReport;
use crate::session::mux::backend::BState;
use crate::session::mux::reply::strerror;
use crate::session::mux::{BackendClose, ClientClose};

/// Longest a node stays marked down after failed connects.
const MAX_DOWN: Duration = Duration::from_secs(1);

impl ClusterSession {
    pub fn handle_backend_connected(&mut self, b: BackendId) {
        let Some(c) = self.conn_mut(b) else { return };
        if matches!(c.base.state, BState::Connecting { .. }) {
            c.base.state = BState::Ready;
        }
        let node = c.node;
        if let Some(n) = self.nodes.node_mut(node) {
            n.fail_streak = 0;
            n.down_until = None;
        }
        self.dirty_backends.push(b);
    }

    pub fn handle_backend_connect_failed(&mut self, b: BackendId, errno: i32, now: Instant) {
        self.fail_conn(b, errno, true, now);
        self.run_resumes(now);
    }

    /// The backend closed (`errno` None for a clean EOF) or errored.
    pub fn handle_backend_closed(&mut self, b: BackendId, errno: Option<i32>, now: Instant) {
        self.fail_conn(b, errno.unwrap_or(libc::ECONNRESET), false, now);
        self.run_resumes(now);
    }

    /// Bytes to write to a backend now (only once connected).
    pub fn poll_backend_transmit(&mut self, b: BackendId) -> Option<Tx<'_>> {
        let c = self.conn_mut(b)?;
        if c.base.state != BState::Ready {
            return None;
        }
        c.base.out.start_send()
    }

    pub fn handle_backend_sent(&mut self, b: BackendId, n: usize) {
        let Some(c) = self.conn_mut(b) else { return };
        if c.base.out.in_flight() {
            c.base.out.complete(n);
            c.base.sent += n as u64;
        }
    }

    /// `handle_backend_data` without copying: the driver's receive buffer
    /// is the connection's reply buffer for the call, and comes back
    /// holding the start of the next reply (as in the mux session).
    pub fn handle_backend_rx(&mut self, b: BackendId, rx: &mut bytes::BytesMut, now: Instant) {
        let Some(c) = self.conn_mut(b) else { return rx.clear() };
        if c.base.rbuf.is_empty() {
            std::mem::swap(&mut c.base.rbuf, rx);
        } else {
            c.base.rbuf.extend_from_slice(rx);
            rx.clear();
        }
        self.handle_backend_data(b, &[], now);
        if let Some(c) = self.conn_mut(b) {
            std::mem::swap(&mut c.base.rbuf, rx);
        }
    }

    /// Bytes read from a backend: frames replies and hands each to the
    /// entry at the head of the connection's queue (or, on a subscribed
    /// pinned connection with nothing queued, to its client).
    pub fn handle_backend_data(&mut self, b: BackendId, data: &[u8], now: Instant) {
        self.set_clock(now);
        let Some(c) = self.conn_mut(b) else { return };
        if c.base.state != BState::Ready {
            return;
        }
        c.base.rbuf.extend_from_slice(data);
        // The round trips of this read, equal ones recorded together.
        let mut rtt = crate::obs::Run::default();
        while let Some(c) = self.conn_mut(b) {
            let crate::session::mux::backend::ReplyDec::Resp(dec) = &mut c.base.dec else { break };
            let reply = match dec.decode(&mut c.base.rbuf) {
                Ok(Some(r)) => r,
                Ok(None) => {
                    crate::session::mux::backend::presize(&mut c.base.rbuf, dec.wants());
                    break;
                }
                Err(e) => {
                    tracing::warn!(err = %e, "bad reply from a cluster node; closing its connection");
                    self.fail_conn(b, libc::EPROTO, false, now);
                    break;
                }
            };
            if reply.is_push() {
                // Out-of-band (RESP3): relayed to a subscribed client, never
                // matched to a request; elsewhere nothing asked for it.
                if let Some(id) = c.relay {
                    self.relay_frame(b, id, reply);
                }
                continue;
            }
            let Some(entry) = c.base.inflight.pop_front() else {
                match c.relay {
                    Some(id) => self.relay_frame(b, id, reply),
                    None => {
                        tracing::warn!("reply with no request outstanding from a cluster node; closing it");
                        self.fail_conn(b, libc::EPROTO, false, now);
                        break;
                    }
                }
                continue;
            };
            match entry.what {
                Entry::Hidden { note: true } => {
                    let redirect = reply.is_error() && crate::protocol::cluster::classify(&reply.raw).is_some();
                    if redirect && c.note.is_none() {
                        c.note = Some(reply);
                    }
                }
                Entry::Hidden { note: false } => {
                    if reply.is_error() {
                        tracing::warn!(reply = ?reply.raw, "AUTH/READONLY/ASKING on a cluster connection failed");
                    }
                }
                Entry::Unit(unit) => {
                    let noted = c.note.take();
                    let node = c.node;
                    self.obs.backend_rtt(node, entry.sent_us, &mut rtt);
                    self.handle_final(b, *unit, reply, noted, now);
                }
            }
        }
        self.obs.flush_backend(&mut rtt);
        // A connection to a node that left the topology closes once idle.
        self.retire_if_gone(b);
        self.run_resumes(now);
    }

    /// One frame on a subscribed connection: relayed to its client; the
    /// subscription counts it carries say when the client leaves pub/sub.
    fn relay_frame(&mut self, b: BackendId, id: super::ClientId, reply: Reply) {
        let counts = sub_count(&reply);
        self.relay_to(id, &reply.raw);
        let Some((kind, n)) = counts else { return };
        let Some(c) = self.conn_mut(b) else { return };
        if kind == b"ssubscribe" || kind == b"sunsubscribe" {
            c.subs.1 = n;
        } else {
            c.subs.0 = n;
        }
        let unsub = kind.ends_with(b"unsubscribe");
        if unsub && c.subs == (0, 0) {
            c.relay = None;
            if let Some(cl) = self.client_mut(id) {
                cl.subscribed = false;
                cl.pin = None;
            }
            self.release_pinned(b);
            self.resume.push(id);
        }
    }

    /// Checks deadlines and runs due retries; call on every timer tick.
    pub fn handle_tick(&mut self, now: Instant) {
        self.set_clock(now);
        let expired: Vec<BackendId> = self
            .conns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|c| (BackendId { idx: i as u32, gen: c.gen }, c)))
            .filter(|(_, c)| c.base.deadline().is_some_and(|d| now >= d))
            .map(|(b, _)| b)
            .collect();
        for b in expired {
            self.fail_conn(b, libc::ETIMEDOUT, false, now);
        }
        let due: Vec<_> = {
            let (due, later) = std::mem::take(&mut self.retries).into_iter().partition(|r| r.at <= now);
            self.retries = later;
            due
        };
        for r in due {
            self.send(r.unit, now);
        }
        self.check_soft_timers();
        let clients = &self.clients;
        let wait_of = |id: crate::session::mux::ClientId| {
            clients.get(id.idx as usize)?.as_deref().filter(|c| c.base.gen == id.gen)?.base.rate_wait()
        };
        for id in self.rate.due(now, wait_of) {
            if let Some(r) = self.client_mut(id).and_then(|c| c.base.rate.as_deref_mut()) {
                r.wait = None;
                self.resume.push(id);
            }
        }
        self.stats.rate_limited = self.rate.limited;
        self.stats.rate_limited_any = self.rate.limited_any;
        self.run_resumes(now);
    }

    /// The earliest instant at which `handle_tick` could change something.
    pub fn next_deadline(&self) -> Option<Instant> {
        let conns = self.conns.iter().flatten().filter_map(|c| c.base.deadline());
        let waits = self.rate.next_deadline();
        conns.chain(self.retries.iter().map(|r| r.at)).chain(self.next_soft_deadline()).chain(waits).min()
    }

    /// Tears a connection down and settles everything that was on it.
    pub(super) fn fail_conn(&mut self, b: BackendId, errno: i32, connect: bool, now: Instant) {
        let Some(c) = self.conn(b) else { return };
        let (node, sent, kind) = (c.node, c.base.sent, c.kind);
        let entries = self.close_conn_as(b, BackendClose::of_errno(errno));
        if let Some(n) = self.nodes.node_mut(node) {
            n.last_errno = errno;
            if connect {
                n.fail_streak = n.fail_streak.saturating_add(1);
                // The same schedule as a unit's retries, so a retry finds
                // the node's pause over and really tries again.
                let exp = (n.fail_streak - 1).min(16);
                let wait = self.cfg.retry_backoff.saturating_mul(1 << exp).min(MAX_DOWN);
                n.down_until = Some(now + wait);
            }
        }
        if self.nodes.take_node_report(node) {
            if let Some(addr) = self.nodes.node(node).map(|n| n.addr) {
                self.report(ClusterReport::NodeFailed { addr });
            }
        }
        if let Kind::Pinned { owner: Some(id) } = kind {
            if let Some(cl) = self.client_mut(id) {
                cl.pin = None;
                if cl.subscribed {
                    self.close_client(id, ClientClose::Error(errno));
                }
            }
        }
        let text = format!("ERR {}", strerror(errno));
        for e in entries {
            let Entry::Unit(unit) = e.what else { continue };
            if connect || e.start >= sent {
                self.retry_later(*unit, err(&text), now);
            } else {
                self.fail_unit(*unit, err(&text));
            }
        }
    }
}

/// `(kind, count)` of a subscribe/unsubscribe confirmation frame
/// (`[subscribe, channel, count]`), `None` for messages.
fn sub_count(reply: &Reply) -> Option<(Vec<u8>, i64)> {
    if !matches!(reply.kind, ReplyKind::Array(3) | ReplyKind::Push(3)) {
        return None;
    }
    let Ok(Value::Array(items)) = value::parse(&reply.raw) else { return None };
    let kind = items.first()?.as_bytes()?.to_ascii_lowercase();
    let known: [&[u8]; 6] =
        [b"subscribe", b"psubscribe", b"ssubscribe", b"unsubscribe", b"punsubscribe", b"sunsubscribe"];
    if !known.contains(&&kind[..]) {
        return None;
    }
    Some((kind, items.get(2)?.as_int()?))
}
