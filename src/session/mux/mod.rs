//! The sans-IO multiplexing session of a sharded Redis or memcached pool
//! (twemproxy mode), one per pool per worker.
//!
//! Owner: the worker thread. It multiplexes every client of the pool on
//! this worker over `server_connections` connections per server. Drivers
//! feed events (`handle_*`, time passed in) and then take bytes
//! (`poll_client_transmit`, `poll_backend_transmit`) and decisions
//! (`poll_intent`). Nothing here touches a socket or reads a clock.
//!
//! Invariants:
//! - each client's replies leave in its request order (per-client slot
//!   queue); a fan-out slot is ready only when all its fragments answered;
//! - requests of many clients for one backend connection accumulate in one
//!   buffer, so the driver sends them with one write per batch;
//! - a client that does not read never delays another client: replies go
//!   to per-client buffers, and a client with more than
//!   `client_reply_limit` unread bytes is closed and counted;
//! - when a backend connection fails, only requests already (partly)
//!   written to it get an error; requests still queued in Puerta are routed
//!   again by the current router. A connect failure or timeout errors all.
//!
//! Bytes from `poll_*_transmit` stay valid only until the next call into
//! the session that concerns that connection; a completion-based driver
//! must copy them (or finish the send) before calling back.

// `backend`, `client` and `reply` are shared with `session::cluster`.
pub(crate) mod backend;
pub(crate) mod client;
mod dispatch;
mod events;
mod manage;
pub(crate) mod reply;
mod types;

pub use manage::QueueGauges;
pub use types::{
    BackendId, ClientClose, ClientId, MuxConfig, MuxIntent, MuxStats, Protocol, Router, ServerCounters, Unsupported,
};

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

use backend::{Backend, Inflight};
use client::{Client, ClientDecoder, Slot};
use dispatch::{mc_error, plan_memcache, plan_redis, Forward, Plan};
use reply::forward_error;

pub struct MuxSession {
    cfg: MuxConfig,
    clients: Vec<Option<Client>>,
    /// Generation per client slot; bumped when the slot is freed.
    gens: Vec<u32>,
    free: Vec<u32>,
    /// `servers * server_connections`, server-major.
    backends: Vec<Backend>,
    /// Next connection to use, per server (round robin).
    rr: Vec<u32>,
    intents: VecDeque<MuxIntent>,
    /// Connections that got bytes to send since the driver last asked
    /// (may repeat; the driver just tries to write).
    dirty_clients: Vec<ClientId>,
    dirty_backends: Vec<BackendId>,
    stats: MuxStats,
    /// Close clients as they reach a request boundary (`set_draining`).
    draining: bool,
}

impl MuxSession {
    pub fn new(mut cfg: MuxConfig) -> Self {
        cfg.server_connections = cfg.server_connections.max(1);
        let n = (cfg.servers * cfg.server_connections) as usize;
        let stats = MuxStats { servers: vec![Default::default(); cfg.servers as usize], ..Default::default() };
        MuxSession {
            backends: (0..n).map(|_| Backend::new(cfg.protocol)).collect(),
            rr: vec![0; cfg.servers as usize],
            cfg,
            clients: Vec::new(),
            gens: Vec::new(),
            free: Vec::new(),
            intents: VecDeque::new(),
            dirty_clients: Vec::new(),
            dirty_backends: Vec::new(),
            stats,
            draining: false,
        }
    }

    pub fn config(&self) -> &MuxConfig {
        &self.cfg
    }

    pub fn stats(&self) -> &MuxStats {
        &self.stats
    }

    /// Every backend connection id, server-major.
    pub fn backend_ids(&self) -> impl Iterator<Item = BackendId> + '_ {
        let per = self.cfg.server_connections;
        (0..self.cfg.servers).flat_map(move |s| (0..per).map(move |c| BackendId { server: s, conn: c }))
    }

    /// Registers a newly accepted client.
    pub fn add_client(&mut self) -> ClientId {
        let idx = self.free.pop().unwrap_or_else(|| {
            self.clients.push(None);
            self.gens.push(0);
            (self.clients.len() - 1) as u32
        });
        let gen = self.gens[idx as usize];
        let cfg = &self.cfg;
        let client = Client::new(gen, cfg.protocol, cfg.max_request_bytes, cfg.max_item_bytes);
        self.clients[idx as usize] = Some(client);
        ClientId { idx, gen }
    }

    pub fn client_count(&self) -> usize {
        self.clients.len() - self.free.len()
    }

    fn client_mut(&mut self, id: ClientId) -> Option<&mut Client> {
        client_in(&mut self.clients, id)
    }

    /// Bytes read from a client.
    pub fn handle_client_data(&mut self, id: ClientId, data: &[u8], now: Instant, router: &dyn Router) {
        let Some(c) = self.client_mut(id) else { return };
        if c.stop_reading {
            return;
        }
        c.inbuf.extend_from_slice(data);
        self.process_client(id, now, router);
    }

    /// Decodes and dispatches buffered requests until the buffer runs dry,
    /// the client must stop, or its pending limit is reached.
    fn process_client(&mut self, id: ClientId, now: Instant, router: &dyn Router) {
        let max_pending = self.cfg.max_pending_per_client;
        loop {
            let cfg = &self.cfg;
            let Some(c) = client_in(&mut self.clients, id) else { return };
            if c.stop_reading || c.slots.len() >= max_pending {
                break;
            }
            let plan = match &mut c.dec {
                ClientDecoder::Resp(d) => match d.decode(&mut c.inbuf) {
                    Ok(Some(req)) => plan_redis(cfg, &mut c.authed, req, router),
                    Ok(None) => break,
                    Err(e) => Plan::Close(
                        ClientClose::Protocol,
                        Some(crate::protocol::resp::encode::error(&format!("ERR {e}"))),
                    ),
                },
                ClientDecoder::Mc(d) => match d.decode(&mut c.inbuf) {
                    Ok(Some(req)) => plan_memcache(cfg, req, router),
                    Ok(None) => break,
                    // Never forwarded: memcached might read it differently.
                    Err(e) => Plan::Close(ClientClose::Protocol, Some(mc_error(&e))),
                },
            };
            self.apply(id, plan, now);
        }
        self.flush_client(id);
    }

    fn apply(&mut self, id: ClientId, plan: Plan, now: Instant) {
        let Some(c) = self.client_mut(id) else { return };
        match plan {
            Plan::Reply(bytes) => c.slots.push_back(Slot::ready(bytes)),
            Plan::Close(why, reply) => {
                let mut slot = Slot::ready(reply.unwrap_or_default());
                slot.close = Some(why);
                c.slots.push_back(slot);
                c.stop_reading = true;
                if why == ClientClose::Protocol {
                    self.stats.client_err += 1;
                }
            }
            Plan::Forward(f) => self.forward(id, f, now),
        }
    }

    fn forward(&mut self, id: ClientId, f: Forward, now: Instant) {
        let Forward { frags, route_keys, merge, retrieval, noreply } = f;
        let Some(c) = self.client_mut(id) else { return };
        let seq = c.next_seq();
        if !noreply {
            c.slots.push_back(Slot {
                ready: None,
                parts: vec![None; frags.len()],
                keys: frags.iter().map(|f| f.keys.clone()).collect(),
                left: frags.len() as u32,
                merge,
                close: None,
            });
        }
        if frags.len() > 1 {
            self.stats.fragments += frags.len() as u64;
        }
        for (i, (frag, key)) in frags.into_iter().zip(route_keys).enumerate() {
            let entry = Inflight {
                client: Some(id),
                seq,
                frag: i as u32,
                request: frag.request,
                route_key: key,
                retrieval,
                start: 0,
                deadline: None,
            };
            self.enqueue(frag.server, entry, !noreply, now);
        }
    }

    /// Queues a request on one of `server`'s connections, connecting it
    /// first if needed (with AUTH and SELECT ahead of any request).
    fn enqueue(&mut self, server: u32, mut entry: Inflight, expect_reply: bool, now: Instant) {
        let per = self.cfg.server_connections;
        let conn = self.rr[server as usize] % per;
        self.rr[server as usize] = self.rr[server as usize].wrapping_add(1);
        let bid = BackendId { server, conn };
        entry.deadline = self.ensure_connecting(bid, now);
        self.dirty_backends.push(bid);
        let sc = &mut self.stats.servers[server as usize];
        sc.requests += 1;
        sc.request_bytes += entry.request.len() as u64;
        self.backends[(server * per + conn) as usize].push(entry, expect_reply);
    }

    /// AUTH and SELECT for a new Redis backend connection.
    fn on_connect_commands(&self) -> Vec<Bytes> {
        use crate::protocol::resp::encode::command;
        let mut v = Vec::new();
        if self.cfg.protocol == Protocol::Redis {
            if let Some(p) = &self.cfg.redis_auth {
                v.push(command([&b"AUTH"[..], &p[..]].into_iter()));
            }
            if self.cfg.redis_db != 0 {
                v.push(command([&b"SELECT"[..], self.cfg.redis_db.to_string().as_bytes()].into_iter()));
            }
        }
        v
    }

    /// Moves ready replies to the client's buffer and closes it when done
    /// or past its reply limit.
    fn flush_client(&mut self, id: ClientId) {
        let limit = self.cfg.client_reply_limit;
        let Some(c) = self.client_mut(id) else { return };
        let before = c.out.len();
        c.flush_ready();
        let grew = c.out.len() > before;
        let why = if c.out.len() > limit {
            Some(ClientClose::SlowClient)
        } else if c.out.is_empty() && (c.closing.is_some() || (c.eof && c.slots.is_empty())) {
            Some(c.closing.unwrap_or(ClientClose::Eof))
        } else {
            None
        };
        if grew {
            self.dirty_clients.push(id);
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

    /// Forgets a client now and tells the driver to close it. Replies still
    /// due to it are dropped when they arrive (the generation moved on).
    pub fn close_client(&mut self, id: ClientId, why: ClientClose) {
        if self.client_mut(id).is_none() {
            return;
        }
        self.clients[id.idx as usize] = None;
        self.gens[id.idx as usize] = self.gens[id.idx as usize].wrapping_add(1);
        self.free.push(id.idx);
        self.intents.push_back(MuxIntent::CloseClient(id, why));
    }

    /// Read EOF from a client: answer what it sent, then close.
    pub fn handle_client_eof(&mut self, id: ClientId) {
        let Some(c) = self.client_mut(id) else { return };
        // Whole requests still buffered (reads paused on the pending limit)
        // are answered first; a trailing partial one can never complete.
        c.eof = true;
        self.flush_client(id);
    }

    pub fn handle_client_error(&mut self, id: ClientId, errno: i32) {
        self.close_client(id, ClientClose::Error(errno));
    }

    /// Bytes to write to a client now, pinned until `handle_client_sent`.
    pub fn poll_client_transmit(&mut self, id: ClientId) -> Option<&[u8]> {
        self.client_mut(id)?.out.start_send()
    }

    pub fn handle_client_sent(&mut self, id: ClientId, n: usize, now: Instant, router: &dyn Router) {
        let Some(c) = self.client_mut(id) else { return };
        if c.out.in_flight() {
            c.out.complete(n);
        }
        // Reads may have paused on the pending limit: resume decoding.
        self.process_client(id, now, router);
    }

    /// Whether the driver should keep reading this client.
    pub fn wants_client_read(&self, id: ClientId) -> bool {
        let Some(c) = self.clients.get(id.idx as usize).and_then(|c| c.as_ref()).filter(|c| c.gen == id.gen) else {
            return false;
        };
        !c.stop_reading && !c.eof && c.slots.len() < self.cfg.max_pending_per_client
    }

    /// A client that may have bytes to send (`poll_client_transmit`).
    pub fn poll_dirty_client(&mut self) -> Option<ClientId> {
        self.dirty_clients.pop()
    }

    /// A backend connection that may have bytes to send.
    pub fn poll_dirty_backend(&mut self) -> Option<BackendId> {
        self.dirty_backends.pop()
    }

    /// The next decision for the driver, if any.
    pub fn poll_intent(&mut self) -> Option<MuxIntent> {
        self.intents.pop_front()
    }

    fn deliver(&mut self, id: ClientId, seq: u64, frag: u32, reply: reply::AnyReply) {
        let Some(c) = self.client_mut(id) else { return };
        if c.deliver(seq, frag, reply) {
            self.flush_client(id);
        }
    }

    fn error_entry(&mut self, e: Inflight, errno: i32) {
        if let Some(id) = e.client {
            self.stats.forward_error += 1;
            self.deliver(id, e.seq, e.frag, forward_error(self.cfg.protocol, errno));
        }
    }
}

/// The live client behind `id` (a field-level borrow, so `cfg` stays usable).
fn client_in(clients: &mut [Option<Client>], id: ClientId) -> Option<&mut Client> {
    clients.get_mut(id.idx as usize)?.as_mut().filter(|c| c.gen == id.gen)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_fail;
#[cfg(test)]
mod tests_hostile;
#[cfg(test)]
mod tests_local;
