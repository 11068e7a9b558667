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
//!   to per-client buffers, bounded by `client_output_limit` (hard, and
//!   soft for a while, as Redis's `client-output-buffer-limit`): past it
//!   the client is closed and counted (`limits.rs`);
//! - a client's request bytes queued or in flight toward backends
//!   (`noreply` ones until written) are bounded by `client_queue_limit`:
//!   past it nothing more is decoded or read from it; a partial request
//!   buffered past `max_request_bytes` closes it;
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
mod clients;
mod dispatch;
mod events;
mod forward;
mod identity;
mod idle;
mod intake;
pub(crate) mod limits;
mod manage;
pub(crate) mod reply;
mod types;

pub use limits::{OutputLimit, DEFAULT_CLIENT_QUEUE_LIMIT};
pub use manage::QueueGauges;
pub use types::{
    BackendClose, BackendId, ClientClose, ClientId, LocalStats, MuxConfig, MuxIntent, MuxStats, Protocol, Router,
    ServerCounters, Unsupported,
};

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

use backend::{Backend, Inflight};
use client::{Client, ClientDecoder, Slot};
use dispatch::{mc_error, plan_memcache, plan_redis, Plan};
use limits::Budget;
use reply::forward_error;

use crate::protocol::ProtoError;
use crate::session::ratelimit::RateGate;
use limits::rate_refusal;
pub(crate) use limits::RATE_ERROR_REDIS;

pub struct MuxSession {
    cfg: MuxConfig,
    /// Boxed: a free or idle slot costs one pointer, not a whole `Client`.
    clients: Vec<Option<Box<Client>>>,
    /// Generation per client slot; bumped when the slot is freed.
    gens: Vec<u32>,
    free: Vec<u32>,
    /// `servers * width()`, server-major: per server its RESP2 connections,
    /// then (redis) their RESP3 twins.
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
    /// Reply bytes buffered per client and in all (`limits.rs`).
    budget: Budget,
    /// Clients whose queue drained below `client_queue_limit`: decoded
    /// again at the end of the event (`run_resumes`).
    resume: Vec<ClientId>,
    /// The latest `now` an event passed in (for events that carry none).
    clock: Option<Instant>,
    /// memcached `stats` values (`set_local_stats`); none in unit tests.
    local_stats: Option<LocalStats>,
    /// Requests decoded from clients (INFO's `total_commands_processed`).
    commands: u64,
    /// Per-request timing, per-command counters, slow log (`obs`).
    obs: crate::obs::Recorder,
    /// The other workers' (clients, commands) of this pool, as last
    /// published (`set_peer_totals`).
    peers: (u64, u64),
    /// Clients that may hold buffers to release when idle (`idle.rs`).
    trim: Vec<ClientId>,
    /// Per-IP rate limits of the pool on this core (`session::ratelimit`).
    pub(super) rate: RateGate,
}

impl MuxSession {
    pub fn new(mut cfg: MuxConfig) -> Self {
        cfg.server_connections = cfg.server_connections.max(1);
        let n = (cfg.servers * cfg.server_connections * lanes(cfg.protocol)) as usize;
        let kind = obs_kind(cfg.protocol);
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
            budget: Budget::default(),
            resume: Vec::new(),
            clock: None,
            local_stats: None,
            obs: crate::obs::Recorder::off(kind),
            commands: 0,
            peers: (0, 0),
            trim: Vec::new(),
            rate: RateGate::default(),
        }
    }

    /// Where this session records timing, counters and slow requests.
    pub fn set_recorder(&mut self, rec: crate::obs::Recorder) {
        self.obs = rec;
    }

    pub fn recorder(&self) -> &crate::obs::Recorder {
        &self.obs
    }

    pub fn recorder_mut(&mut self) -> &mut crate::obs::Recorder {
        &mut self.obs
    }

    /// The batch's clock, for events that carry none and for timing.
    #[inline]
    fn set_clock(&mut self, now: Instant) {
        self.clock = Some(now);
        self.obs.set_now(now);
    }

    /// Where memcached `stats` reads its values.
    pub fn set_local_stats(&mut self, source: LocalStats) {
        self.local_stats = Some(source);
    }

    pub fn config(&self) -> &MuxConfig {
        &self.cfg
    }

    pub fn stats(&self) -> &MuxStats {
        &self.stats
    }

    /// Every backend connection id, server-major (RESP3 twins included).
    pub fn backend_ids(&self) -> impl Iterator<Item = BackendId> + '_ {
        let per = self.width();
        (0..self.cfg.servers).flat_map(move |s| (0..per).map(move |c| BackendId { server: s, conn: c }))
    }

    /// Backend connection slots per server: `server_connections`, twice
    /// that for redis (`conn >= server_connections` are the RESP3 twins,
    /// opened on first use by a client that sent HELLO 3).
    pub(super) fn width(&self) -> u32 {
        self.cfg.server_connections * lanes(self.cfg.protocol)
    }

    /// Whether `b` is a RESP3 twin.
    pub(super) fn is_resp3(&self, b: BackendId) -> bool {
        b.conn >= self.cfg.server_connections
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
        self.clients[idx as usize] = Some(Box::new(client));
        ClientId { idx, gen }
    }

    pub fn client_count(&self) -> usize {
        self.clients.len() - self.free.len()
    }

    /// Client requests decoded so far.
    pub fn commands(&self) -> u64 {
        self.commands
    }

    /// The other workers' clients and commands of this pool (INFO).
    pub fn set_peer_totals(&mut self, clients: u64, commands: u64) {
        self.peers = (clients, commands);
    }

    fn client_mut(&mut self, id: ClientId) -> Option<&mut Client> {
        client_in(&mut self.clients, id)
    }

    /// AUTH and SELECT for a new Redis backend connection, then HELLO 3
    /// on a RESP3 twin.
    fn on_connect_commands(&self, resp3: bool) -> Vec<Bytes> {
        use crate::protocol::resp::encode::command;
        let mut v = Vec::new();
        if self.cfg.protocol == Protocol::Redis {
            if let Some(p) = &self.cfg.redis_auth {
                v.push(command([&b"AUTH"[..], &p[..]].into_iter()));
            }
            if self.cfg.redis_db != 0 {
                v.push(command([&b"SELECT"[..], self.cfg.redis_db.to_string().as_bytes()].into_iter()));
            }
            if resp3 {
                v.push(command([&b"HELLO"[..], b"3"].into_iter()));
            }
        }
        v
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

    fn error_entry(&mut self, e: Inflight, errno: i32) {
        if let Some(id) = e.client {
            self.stats.forward_error += 1;
            self.deliver(id, e.seq, e.frag, forward_error(self.cfg.protocol, errno));
        }
    }
}

/// The label list a protocol's pools use.
fn obs_kind(p: Protocol) -> crate::obs::Kind {
    match p {
        Protocol::Redis => crate::obs::Kind::Redis,
        Protocol::Memcache => crate::obs::Kind::Memcache,
    }
}

/// Connection sets per server: RESP2 and RESP3 for redis, one for memcached.
fn lanes(p: Protocol) -> u32 {
    match p {
        Protocol::Redis => 2,
        Protocol::Memcache => 1,
    }
}

fn too_large(cfg: &MuxConfig) -> ProtoError {
    ProtoError::TooLarge { max: cfg.max_request_bytes }
}

/// The reply and close for a RESP request that cannot be served.
fn resp_error(e: ProtoError) -> Plan {
    Plan::Close(ClientClose::Protocol, Some(crate::protocol::resp::encode::error(&format!("ERR {e}"))))
}

/// The same for memcached: `ERROR` for an unknown command, else
/// `CLIENT_ERROR <why>`.
/// A memcached request that does not parse: memcached's words, then close.
fn mc_close(e: ProtoError) -> Plan {
    Plan::Close(ClientClose::Protocol, Some(mc_error(&e)))
}

/// The live client behind `id` (a field-level borrow, so `cfg` stays usable).
fn client_in(clients: &mut [Option<Box<Client>>], id: ClientId) -> Option<&mut Client> {
    clients.get_mut(id.idx as usize)?.as_deref_mut().filter(|c| c.gen == id.gen)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_fail;
#[cfg(test)]
mod tests_hostile;
#[cfg(test)]
mod tests_limits;
#[cfg(test)]
mod tests_local;
#[cfg(test)]
mod tests_memcache;
#[cfg(test)]
mod tests_rate;
#[cfg(test)]
mod tests_resp3;
#[cfg(test)]
mod tests_size;
