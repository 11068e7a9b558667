//! `ShardSession`: a twemproxy-style pool's `MuxSession` bound to its pool
//! snapshot — the router is the snapshot's `ShardRing`, the server table
//! follows the snapshot's backends across reloads.
//!
//! Owner: one worker, one per redis/memcache pool. Sans-IO like the
//! session it wraps.
//!
//! Invariants:
//! - session server indices ("slots") are never renumbered: a backend
//!   that a reload adds gets a new slot, one it removes keeps its slot
//!   (no key routes there any more; its connections close once idle), and
//!   a backend with the same name and address keeps its slot and its open
//!   connections;
//! - every request is routed by the newest snapshot this session saw, so
//!   an ejection (a ring without the server) or a reload applies to the
//!   next request of every client, old clients included;
//! - `protocol` and `server_connections` shape the session; a snapshot
//!   that changes them is `Incompatible` and the driver starts afresh.

use crate::session::outbuf::Tx;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::mux::{
    BackendId, ClientClose, ClientId, LocalStats, MuxConfig, MuxIntent, MuxSession, MuxStats, Protocol, QueueGauges,
    Router, Unsupported,
};
use super::pool_session::{PoolSession, PoolUpdate};
use crate::config::{self, Mode, PoolConfig};
use crate::route::{PoolSnapshot, ShardRing};

/// One session server index.
#[derive(Debug, Clone)]
struct Slot {
    name: String,
    addr: SocketAddr,
    /// The host as written (`ServerSpec::host`; empty: use the IP).
    host: String,
    stat_id: usize,
    /// A backend of the current snapshot.
    in_pool: bool,
    /// Its connections predate an AUTH/SELECT change: reopen them once idle.
    recycle: bool,
}

pub struct ShardSession {
    mux: MuxSession,
    pool: Arc<PoolSnapshot>,
    /// The slot of each backend of `pool`, in config order (`ShardRing::pick`
    /// answers config positions).
    slot_of: Vec<u32>,
    slots: Vec<Slot>,
}

/// The current ring, answering slots instead of config positions.
struct RingRoute<'a> {
    ring: Option<&'a ShardRing>,
    slot_of: &'a [u32],
}

impl Router for RingRoute<'_> {
    #[inline]
    fn route(&self, key: &[u8]) -> Option<u32> {
        let i = self.ring?.pick(key)?;
        self.slot_of.get(i as usize).copied()
    }

    /// The slots of the pool's servers, ejected ones included: a command
    /// for all of them (`flush_all`) must not skip one that is down.
    fn servers(&self) -> Option<Vec<u32>> {
        Some(self.slot_of.to_vec())
    }
}

/// The router for `self`, borrowing only the fields the session does not.
macro_rules! route {
    ($s:expr) => {
        &RingRoute { ring: $s.pool.ring.as_deref(), slot_of: &$s.slot_of }
    };
}

/// The session settings a pool's config asks for (`None` for pools that
/// are not redis/memcache).
pub fn mux_config(cfg: &PoolConfig, servers: u32) -> Option<MuxConfig> {
    let shard = cfg.shard.as_ref()?;
    let protocol = match cfg.mode {
        Mode::Memcache => Protocol::Memcache,
        _ => Protocol::Redis,
    };
    let mut m = MuxConfig::new(protocol, servers);
    m.server_connections = shard.server_connections.max(1);
    m.timeout = shard.timeout;
    m.connect_timeout = cfg.connect_timeout;
    m.max_request_bytes = shard.max_request_bytes;
    m.output = shard.client_output_limit;
    m.client_queue_limit = shard.client_queue_limit;
    m.max_item_bytes = shard.max_item_bytes;
    m.max_keys_per_request = shard.max_keys_per_request;
    m.redis_auth = shard.redis_auth.as_ref().map(|p| p.as_bytes().to_vec());
    m.redis_db = shard.redis_db;
    m.users = cfg.users.clone();
    m.allow_scripts = shard.allow_scripts;
    m.allow_flush = shard.allow_flush;
    m.unsupported = match shard.unsupported {
        config::Unsupported::Close => Unsupported::Close,
        config::Unsupported::Error => Unsupported::Error,
    };
    Some(m)
}

impl ShardSession {
    /// A session for `pool`; `None` unless it is a redis/memcache pool.
    /// With `preconnect`, connects to every server at once.
    pub fn new(pool: Arc<PoolSnapshot>, now: Instant) -> Option<ShardSession> {
        let cfg = mux_config(&pool.cfg, pool.backends.len() as u32)?;
        let slots = pool
            .backends
            .iter()
            .map(|b| Slot {
                name: b.spec.name.clone(),
                addr: b.spec.addr,
                host: b.spec.host.clone(),
                stat_id: b.stat_id,
                in_pool: true,
                recycle: false,
            })
            .collect();
        let mut s =
            ShardSession { mux: MuxSession::new(cfg), slot_of: (0..pool.backends.len() as u32).collect(), slots, pool };
        if s.preconnect_wanted() {
            for slot in 0..s.slots.len() as u32 {
                s.mux.preconnect(slot, now);
            }
        }
        Some(s)
    }

    fn preconnect_wanted(&self) -> bool {
        self.pool.cfg.shard.as_ref().is_some_and(|s| s.preconnect)
    }

    /// The pool snapshot this session routes by.
    pub fn pool(&self) -> &Arc<PoolSnapshot> {
        &self.pool
    }

    /// The wrapped session (tests, fuzzing).
    pub fn mux(&self) -> &MuxSession {
        &self.mux
    }
}

impl PoolSession for ShardSession {
    fn set_rate(&mut self, ctx: Option<crate::session::ratelimit::RateCtx>) {
        self.mux.set_rate(ctx);
    }

    fn set_client_rate(&mut self, id: ClientId, rate: crate::session::ratelimit::ClientRate) {
        self.mux.set_client_rate(id, rate);
    }

    fn add_client(&mut self, _local: Option<SocketAddr>) -> ClientId {
        self.mux.add_client()
    }

    fn set_local_stats(&mut self, source: LocalStats) {
        self.mux.set_local_stats(source);
    }

    fn set_recorder(&mut self, rec: crate::obs::Recorder) {
        self.mux.set_recorder(rec);
    }

    fn recorder_mut(&mut self) -> &mut crate::obs::Recorder {
        self.mux.recorder_mut()
    }

    /// memcache pools with users need each client's address (its user).
    fn wants_client_peer(&mut self) -> bool {
        self.mux.wants_client_source() || self.mux.recorder_mut().wants_peers()
    }

    fn set_client_peer(&mut self, id: ClientId, peer: Option<SocketAddr>) {
        self.mux.set_client_source(id, peer.map(|a| a.ip()));
        self.mux.recorder_mut().set_peer(id.index(), peer);
    }

    fn set_client_cert(&mut self, id: ClientId, names: Option<&crate::acl::CertNames>) {
        self.mux.set_client_cert(id, names);
    }

    fn name_backends(&self) {
        for (i, s) in self.slots.iter().enumerate() {
            self.mux.recorder().set_backend_name(i as u32, &s.name);
        }
    }

    #[inline]
    fn handle_client_data(&mut self, id: ClientId, data: &[u8], now: Instant) {
        self.mux.handle_client_data(id, data, now, route!(self));
    }

    fn handle_client_eof(&mut self, id: ClientId) {
        self.mux.handle_client_eof(id);
    }

    fn handle_client_error(&mut self, id: ClientId, errno: i32) {
        self.mux.handle_client_error(id, errno);
    }

    #[inline]
    fn poll_client_transmit(&mut self, id: ClientId) -> Option<Tx<'_>> {
        self.mux.poll_client_transmit(id)
    }

    #[inline]
    fn handle_client_sent(&mut self, id: ClientId, n: usize, now: Instant) {
        self.mux.handle_client_sent(id, n, now, route!(self));
    }

    #[inline]
    fn wants_client_read(&self, id: ClientId) -> bool {
        self.mux.wants_client_read(id)
    }

    fn close_client(&mut self, id: ClientId, why: ClientClose) {
        self.mux.close_client(id, why);
    }

    fn backend_addr(&self, b: BackendId) -> Option<SocketAddr> {
        self.slots.get(b.server as usize).map(|s| s.addr)
    }

    fn backend_host(&self, b: BackendId) -> Option<&str> {
        self.slots.get(b.server as usize).map(|s| s.host.as_str()).filter(|h| !h.is_empty())
    }

    fn handle_backend_connected(&mut self, b: BackendId) {
        self.mux.handle_backend_connected(b);
    }

    fn handle_backend_connect_failed(&mut self, b: BackendId, errno: i32, now: Instant) {
        self.mux.handle_backend_connect_failed(b, errno, now, route!(self));
    }

    fn handle_backend_closed(&mut self, b: BackendId, errno: Option<i32>, now: Instant) {
        self.mux.handle_backend_closed(b, errno, now, route!(self));
    }

    #[inline]
    fn handle_backend_data(&mut self, b: BackendId, data: &[u8], now: Instant) {
        self.mux.handle_backend_data(b, data, now, route!(self));
    }

    #[inline]
    fn handle_backend_rx(&mut self, b: BackendId, rx: &mut bytes::BytesMut, now: Instant) {
        self.mux.handle_backend_rx(b, rx, now, route!(self));
    }

    #[inline]
    fn poll_backend_transmit(&mut self, b: BackendId) -> Option<Tx<'_>> {
        self.mux.poll_backend_transmit(b)
    }

    #[inline]
    fn handle_backend_sent(&mut self, b: BackendId, n: usize, now: Instant) {
        self.mux.handle_backend_sent(b, n, now, route!(self));
    }

    fn handle_tick(&mut self, now: Instant) {
        self.mux.handle_tick(now, route!(self));
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if (!slot.in_pool || slot.recycle) && self.mux.close_idle_server(i as u32) {
                slot.recycle = false;
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.mux.next_deadline()
    }

    fn buffered_bytes(&self) -> usize {
        self.mux.buffered_bytes()
    }

    fn buffered_clients(&self, out: &mut Vec<(ClientId, usize)>) {
        out.extend(self.mux.buffered_clients());
    }

    #[inline]
    fn poll_intent(&mut self) -> Option<MuxIntent> {
        self.mux.poll_intent()
    }

    #[inline]
    fn poll_dirty_client(&mut self) -> Option<ClientId> {
        self.mux.poll_dirty_client()
    }

    #[inline]
    fn poll_dirty_backend(&mut self) -> Option<BackendId> {
        self.mux.poll_dirty_backend()
    }

    fn handle_pool_update(&mut self, pool: &Arc<PoolSnapshot>, now: Instant) -> PoolUpdate {
        if Arc::ptr_eq(pool, &self.pool) {
            return PoolUpdate::Applied;
        }
        let Some(cfg) = mux_config(&pool.cfg, 0) else { return PoolUpdate::Incompatible };
        let cur = self.mux.config();
        if cfg.protocol != cur.protocol || cfg.server_connections != cur.server_connections {
            return PoolUpdate::Incompatible;
        }
        let reauth = cfg.redis_auth != cur.redis_auth || cfg.redis_db != cur.redis_db;
        for s in &mut self.slots {
            s.in_pool = false;
            s.recycle |= reauth;
        }
        let mut added = Vec::new();
        self.slot_of.clear();
        for b in &pool.backends {
            let found = self.slots.iter().position(|s| s.name == b.spec.name && s.addr == b.spec.addr);
            let slot = match found {
                Some(i) => i,
                None => {
                    let i = self.mux.add_server() as usize;
                    self.slots.push(Slot {
                        name: b.spec.name.clone(),
                        addr: b.spec.addr,
                        host: b.spec.host.clone(),
                        stat_id: b.stat_id,
                        in_pool: true,
                        recycle: false,
                    });
                    added.push(i as u32);
                    i
                }
            };
            self.slots[slot].in_pool = true;
            self.slots[slot].stat_id = b.stat_id;
            self.slot_of.push(slot as u32);
        }
        self.mux.update_config(cfg);
        self.pool = pool.clone();
        if self.preconnect_wanted() {
            for slot in added {
                self.mux.preconnect(slot, now);
            }
        }
        PoolUpdate::Applied
    }

    fn set_draining(&mut self) {
        self.mux.set_draining();
    }

    fn client_count(&self) -> usize {
        self.mux.client_count()
    }

    fn commands(&self) -> u64 {
        self.mux.commands()
    }

    fn set_peer_totals(&mut self, clients: u64, commands: u64) {
        self.mux.set_peer_totals(clients, commands);
    }

    fn has_open_backends(&self) -> bool {
        self.mux.has_open_backends()
    }

    fn stats(&self) -> &MuxStats {
        self.mux.stats()
    }

    fn server_stat_id(&self, server: u32) -> Option<usize> {
        self.slots.get(server as usize).map(|s| s.stat_id)
    }

    fn server_queues(&self, server: u32) -> QueueGauges {
        self.mux.server_queues(server)
    }
}

#[cfg(test)]
#[path = "shard_tests.rs"]
mod tests;
