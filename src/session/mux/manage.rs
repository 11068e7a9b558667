//! Life-cycle operations a worker applies to a running session from the
//! outside: growing the server set after a reload, retuning the pool keys
//! that do not change its shape, connecting ahead of traffic
//! (`preconnect`), closing connections to servers that left the pool,
//! draining clients at request boundaries, and the queue gauges for stats.
//!
//! Invariants kept here:
//! - server indices only grow: a server that leaves the pool keeps its
//!   index (no request routes to it any more), so the `BackendId`s the
//!   driver holds never change meaning;
//! - `protocol` and `server_connections` are fixed for the session's life
//!   (the backend table is laid out by them); everything else may change;
//! - a draining session closes each client once it is between requests
//!   (nothing pending, nothing buffered either way), never mid-reply.

use std::time::Instant;

use super::backend::{BState, Backend, Inflight};
use super::types::{BackendClose, ClientClose, ServerCounters};
use super::{BackendId, MuxConfig, MuxIntent, MuxSession};

/// Requests and bytes waiting on one server's connections, as nutcracker's
/// per-server `in_queue` (not yet written) and `out_queue` (written,
/// awaiting the reply) report them; declared in `stats::mux`.
pub use crate::stats::mux::QueueGauges;

impl MuxSession {
    /// Adds a server at the end of the server list; returns its index.
    pub fn add_server(&mut self) -> u32 {
        let s = self.cfg.servers;
        self.cfg.servers += 1;
        for _ in 0..self.width() {
            self.backends.push(Backend::new(self.cfg.protocol));
        }
        self.rr.push(0);
        self.stats.servers.push(ServerCounters::default());
        s
    }

    /// Takes every tunable of `cfg` except the ones that shape the session
    /// (protocol, servers, server_connections). New values apply to new
    /// requests and new backend connections.
    pub fn update_config(&mut self, cfg: MuxConfig) {
        let keep = (self.cfg.protocol, self.cfg.servers, self.cfg.server_connections);
        let users_changed = !crate::session::acl::same_users(self.cfg.users.as_ref(), cfg.users.as_ref());
        self.cfg = MuxConfig { protocol: keep.0, servers: keep.1, server_connections: keep.2, ..cfg };
        if users_changed {
            self.refresh_users();
        }
    }

    /// Moves every client to its user in the new set (`session::acl::
    /// refresh`); a client whose user was removed or disabled reads
    /// nothing more and is closed once the replies it is owed are out.
    fn refresh_users(&mut self) {
        let users = self.cfg.users.clone();
        let mut revoked = Vec::new();
        for (idx, c) in (0u32..).zip(self.clients.iter_mut()) {
            let Some(c) = c.as_deref_mut() else { continue };
            if !crate::session::acl::refresh(users.as_deref(), &mut c.user) {
                c.user = None;
                c.authed = false;
                revoked.push(super::ClientId { idx, gen: c.gen });
            }
        }
        for id in revoked {
            let Some(c) = self.client_mut(id) else { continue };
            let mut slot = super::client::Slot::ready(bytes::Bytes::new());
            slot.close = Some(ClientClose::Shutdown);
            c.slots.push_back(slot);
            c.stop_reading = true;
            self.flush_client(id, None);
        }
    }

    /// Starts connecting every idle connection of `server` now (nutcracker
    /// `preconnect`); AUTH and SELECT are queued ahead as usual.
    pub fn preconnect(&mut self, server: u32, now: Instant) {
        for conn in 0..self.cfg.server_connections {
            self.ensure_connecting(BackendId { server, conn }, now);
        }
    }

    /// Moves an idle connection to `Connecting` (with the Connect intent and
    /// the on-connect commands); returns the connect deadline.
    pub(super) fn ensure_connecting(&mut self, bid: BackendId, now: Instant) -> Option<Instant> {
        let deadline = self.cfg.timeout.map(|t| now + t);
        let width = self.width();
        if bid.server >= self.cfg.servers || bid.conn >= width {
            return deadline;
        }
        let idx = (bid.server * width + bid.conn) as usize;
        if self.backends[idx].state != BState::Idle {
            return deadline;
        }
        // The connect itself is bounded even when replies are not
        // (computed only here: the common case above is a live backend).
        let connect_by = now + self.cfg.timeout.map_or(self.cfg.connect_timeout, |t| t.min(self.cfg.connect_timeout));
        self.backends[idx].state = BState::Connecting { deadline: Some(connect_by) };
        self.intents.push_back(MuxIntent::Connect(bid));
        for hidden in self.on_connect_commands(self.is_resp3(bid)) {
            let e = Inflight {
                client: None,
                seq: 0,
                frag: 0,
                request: hidden,
                len: 0,
                route: super::backend::RouteBy::Empty,
                retrieval: false,
                start: 0,
                sent_us: 0,
                deadline,
            };
            self.backends[idx].push_request(e, true);
        }
        deadline
    }

    /// Closes `server`'s connections that have nothing in flight or queued
    /// (a server that left the pool; busy ones are retried on a later call).
    /// Returns true when none of its connections is open any more.
    pub fn close_idle_server(&mut self, server: u32) -> bool {
        let width = self.width();
        let mut all_closed = true;
        for conn in 0..width {
            let Some(be) = self.backends.get_mut((server * width + conn) as usize) else { return true };
            if be.state == BState::Idle {
                continue;
            }
            if be.inflight.is_empty() && be.out.is_empty() {
                be.reset(self.cfg.protocol);
                self.intents.push_back(MuxIntent::CloseBackend(BackendId { server, conn }, BackendClose::Other));
            } else {
                all_closed = false;
            }
        }
        all_closed
    }

    /// Whether any backend connection is open (or connecting).
    pub fn has_open_backends(&self) -> bool {
        self.backends.iter().any(|b| b.state != BState::Idle)
    }

    /// The queue gauges of `server`, summed over its connections.
    pub fn server_queues(&self, server: u32) -> QueueGauges {
        let per = self.width() as usize;
        let start = server as usize * per;
        let mut q = QueueGauges::default();
        for be in self.backends.iter().skip(start).take(per) {
            for e in be.inflight.iter().chain(&be.silent).filter(|e| e.client.is_some()) {
                let n = e.len as u64;
                if e.start >= be.sent {
                    q.in_queue += 1;
                    q.in_queue_bytes += n;
                } else {
                    q.out_queue += 1;
                    q.out_queue_bytes += n;
                }
            }
        }
        q
    }

    /// Starts draining: every client closes (`ClientClose::Shutdown`) as
    /// soon as it is between requests; idle ones close now.
    pub fn set_draining(&mut self) {
        self.draining = true;
        let ids: Vec<_> = self.clients.iter().flatten().map(|c| c.gen).zip(0u32..).collect();
        for (gen, idx) in ids {
            self.close_if_drained(super::ClientId { idx, gen });
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// Closes `id` if the session drains and the client is between
    /// requests: no reply owed, none unsent, no partial request buffered.
    pub(super) fn close_if_drained(&mut self, id: super::ClientId) {
        if !self.draining {
            return;
        }
        let Some(c) = self.client_mut(id) else { return };
        if c.slots.is_empty() && c.out.is_empty() && !c.out.in_flight() && c.inbuf.is_empty() {
            self.close_client(id, ClientClose::Shutdown);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{b, cmd, route, H};
    use super::super::*;

    #[test]
    fn added_servers_get_fresh_connections_and_stats() {
        let mut h = H::redis();
        assert_eq!(h.s.add_server(), 3);
        let c = h.s.add_client();
        // Route "d..." to the new server 3.
        h.s.handle_client_data(c, &cmd(&["GET", "d1"]), h.now, &route);
        assert_eq!(h.s.poll_intent(), Some(MuxIntent::Connect(b(3))));
        h.s.handle_backend_connected(b(3));
        assert_eq!(h.take_backend(b(3)), cmd(&["GET", "d1"]));
        assert_eq!(h.s.stats().servers[3].requests, 1);
        let q = h.s.server_queues(3);
        assert_eq!((q.in_queue, q.out_queue, q.out_queue_bytes), (0, 1, cmd(&["GET", "d1"]).len() as u64));
        h.reply(b(3), b"$-1\r\n");
        assert_eq!(h.take_client(c), b"$-1\r\n");
        assert_eq!(h.s.server_queues(3), QueueGauges::default());
    }

    #[test]
    fn preconnect_sends_auth_before_any_request_and_close_idle_waits_for_replies() {
        let mut cfg = MuxConfig::new(Protocol::Redis, 2);
        cfg.redis_auth = Some(b"pw".to_vec());
        let mut h = H::new(cfg);
        h.s.preconnect(1, h.now);
        assert_eq!(h.intents(), [MuxIntent::Connect(b(1))]);
        assert_eq!(h.take_backend(b(1)), cmd(&["AUTH", "pw"]));
        // AUTH's reply is still owed: the connection is busy.
        assert!(!h.s.close_idle_server(1));
        h.reply(b(1), b"+OK\r\n");
        assert!(h.s.close_idle_server(1));
        assert_eq!(h.intents(), [MuxIntent::CloseBackend(b(1), BackendClose::Other)]);
        assert!(!h.s.has_open_backends());
    }

    #[test]
    fn draining_closes_clients_between_requests_only() {
        let mut h = H::redis();
        let (idle, busy) = (h.s.add_client(), h.s.add_client());
        h.send(busy, &cmd(&["GET", "a"]));
        h.intents();
        h.take_backend(b(0));
        h.s.set_draining();
        assert_eq!(h.intents(), [MuxIntent::CloseClient(idle, ClientClose::Shutdown)]);
        // The busy client gets its reply first, then is closed.
        h.reply(b(0), b"$1\r\nv\r\n");
        assert_eq!(h.take_client(busy), b"$1\r\nv\r\n");
        assert_eq!(h.intents(), [MuxIntent::CloseClient(busy, ClientClose::Shutdown)]);
    }

    #[test]
    fn a_connect_is_bounded_by_connect_timeout_even_without_a_reply_timeout() {
        use std::time::Duration;
        // nutcracker's `timeout` unset: replies may take forever, but a
        // connect that never completes (a blackholed server) must not hold
        // the request forever.
        let mut h = H::redis();
        let c = h.s.add_client();
        h.send(c, &cmd(&["GET", "a"]));
        assert_eq!(h.s.poll_intent(), Some(MuxIntent::Connect(b(0))));
        assert_eq!(h.s.next_deadline(), Some(h.now + crate::config::DEFAULT_TWEM_CONNECT_TIMEOUT));
        h.s.handle_tick(h.now + Duration::from_millis(9999), &route);
        assert!(h.take_client(c).is_empty(), "not yet");
        h.s.handle_tick(h.now + crate::config::DEFAULT_TWEM_CONNECT_TIMEOUT, &route);
        assert_eq!(h.take_client(c), b"-ERR Connection timed out\r\n");
        // Once connected, a reply may take forever again.
        h.send(c, &cmd(&["GET", "a"]));
        h.intents();
        h.s.handle_backend_connected(b(0));
        assert_eq!(h.s.next_deadline(), None);

        // With both set, the shorter bounds the connect.
        let mut cfg = MuxConfig::new(Protocol::Redis, 3);
        cfg.timeout = Some(Duration::from_secs(5));
        cfg.connect_timeout = Duration::from_millis(300);
        let mut h = H::new(cfg);
        let c = h.s.add_client();
        h.send(c, &cmd(&["GET", "a"]));
        assert_eq!(h.s.next_deadline(), Some(h.now + Duration::from_millis(300)));
    }

    #[test]
    fn update_config_keeps_the_shape() {
        let mut h = H::redis();
        let mut cfg = MuxConfig::new(Protocol::Memcache, 9);
        cfg.server_connections = 4;
        cfg.timeout = Some(std::time::Duration::from_millis(5));
        h.s.update_config(cfg);
        let c = h.s.config();
        assert_eq!((c.protocol, c.servers, c.server_connections), (Protocol::Redis, 3, 1));
        assert_eq!(c.timeout, Some(std::time::Duration::from_millis(5)));
    }
}
