//! `PoolSession`: the interface between an I/O driver and a multiplexing
//! session — one per pool per worker, serving every client of that pool on
//! that worker over a few backend connections.
//!
//! Implemented by `ShardSession` (twemproxy-style redis/memcache pools:
//! `MuxSession` routed by the snapshot's ring) and `ClusterPoolSession`
//! (redis_cluster pools: `ClusterSession` on the snapshot's slot map,
//! whose backends are the nodes it learns). The driver owns sockets only;
//! it never knows how keys are placed, so it asks the session where a
//! backend lives (`backend_addr`) each time it connects, and forwards
//! what the session reports (`MuxIntent::ServerFailed`, `Report`) to the
//! control thread.
//!
//! Driver contract (both drivers follow it):
//! - feed every socket event through a `handle_*` method, with `now`;
//! - after a batch of events, drain `poll_intent` (connects, closes,
//!   failure reports), then `poll_dirty_backend` / `poll_dirty_client` and
//!   for each `poll_*_transmit` (one write per connection per batch);
//! - bytes from `poll_*_transmit` are valid only until the next call into
//!   the session: a completion-based driver copies them into a buffer it
//!   owns until the send completes, then reports `handle_*_sent`; at most
//!   one send per connection is outstanding;
//! - read a client only while `wants_client_read` (a paused client is
//!   resumed by the session's own progress; re-check after each batch);
//! - call `handle_tick` at `next_deadline` (request and connect timeouts,
//!   soft output limits) and on the worker's periodic tick;
//! - after each batch, publish `buffered_bytes` for the process-wide cap
//!   and close what `buffered_clients` names when over it
//!   (`MuxPools::enforce_buffer_cap`).

use crate::session::outbuf::Tx;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::cluster::ClusterStats;
use super::mux::{BackendId, ClientClose, ClientId, LocalStats, MuxIntent, MuxStats, QueueGauges};
use super::ratelimit::{ClientRate, RateCtx};
use crate::route::PoolSnapshot;

/// Whether a session could take a new snapshot of its pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolUpdate {
    /// New requests follow the new snapshot from now on.
    Applied,
    /// The change reshapes the session (protocol, connections per server):
    /// the driver starts a fresh session for new clients and drains this one.
    Incompatible,
}

pub trait PoolSession {
    /// Registers a newly accepted client; `local` is the address it
    /// connected to, when the driver looked it up (`wants_local_addr`).
    fn add_client(&mut self, local: Option<SocketAddr>) -> ClientId;
    /// Whether `add_client` uses the client's local address (a cluster
    /// session announces it in CLUSTER SLOTS); saves a syscall per accept
    /// for sessions that do not.
    fn wants_local_addr(&self) -> bool {
        false
    }
    /// The pool's per-IP rates on this worker (`None`: not limited); set
    /// when the session starts and again with every snapshot applied.
    fn set_rate(&mut self, ctx: Option<RateCtx>);
    /// A client's address key and connection guard, right after
    /// `add_client` (only for pools with `per_ip`).
    fn set_client_rate(&mut self, id: ClientId, rate: ClientRate);
    fn handle_client_data(&mut self, id: ClientId, data: &[u8], now: Instant);
    /// The client half-closed: answer what it sent, then close.
    fn handle_client_eof(&mut self, id: ClientId);
    fn handle_client_error(&mut self, id: ClientId, errno: i32);
    fn poll_client_transmit(&mut self, id: ClientId) -> Option<Tx<'_>>;
    fn handle_client_sent(&mut self, id: ClientId, n: usize, now: Instant);
    fn wants_client_read(&self, id: ClientId) -> bool;
    /// Forgets a client at once (driver-side close, shutdown).
    fn close_client(&mut self, id: ClientId, why: ClientClose);

    /// Where to connect for `b` (None: the backend is gone; fail the connect).
    fn backend_addr(&self, b: BackendId) -> Option<SocketAddr>;
    /// The host `backend_tls` presents and verifies for `b`: its host as
    /// written in `servers` or as its cluster announced it. `None`: the
    /// IP of `backend_addr` (checked against the certificate's IP SANs).
    fn backend_host(&self, _b: BackendId) -> Option<&str> {
        None
    }
    fn handle_backend_connected(&mut self, b: BackendId);
    fn handle_backend_connect_failed(&mut self, b: BackendId, errno: i32, now: Instant);
    /// The backend closed (`None`: clean EOF) or failed.
    fn handle_backend_closed(&mut self, b: BackendId, errno: Option<i32>, now: Instant);
    fn handle_backend_data(&mut self, b: BackendId, data: &[u8], now: Instant);
    /// `handle_backend_data` from a driver's own receive buffer, all of
    /// whose bytes are unread: the session may keep what it frames without
    /// copying, and may leave unread bytes (the start of the next reply)
    /// in `rx`, sized for the rest of it.
    fn handle_backend_rx(&mut self, b: BackendId, rx: &mut bytes::BytesMut, now: Instant) {
        let data = rx.split();
        self.handle_backend_data(b, &data, now);
    }
    fn poll_backend_transmit(&mut self, b: BackendId) -> Option<Tx<'_>>;
    /// `n` bytes of the backend send in flight were written (`now`:
    /// written requests may leave a client's queue and resume it).
    fn handle_backend_sent(&mut self, b: BackendId, n: usize, now: Instant);

    /// Deadlines and housekeeping.
    fn handle_tick(&mut self, now: Instant);
    fn next_deadline(&self) -> Option<Instant>;
    fn poll_intent(&mut self) -> Option<MuxIntent>;
    fn poll_dirty_client(&mut self) -> Option<ClientId>;
    fn poll_dirty_backend(&mut self) -> Option<BackendId>;

    /// A new snapshot of this session's pool (same name).
    fn handle_pool_update(&mut self, pool: &Arc<PoolSnapshot>, now: Instant) -> PoolUpdate;
    /// Close every client at its next request boundary.
    fn set_draining(&mut self);
    fn client_count(&self) -> usize;
    fn has_open_backends(&self) -> bool;
    /// Client requests decoded so far (INFO).
    fn commands(&self) -> u64;
    /// The other workers' clients and commands of this pool, as last
    /// published, so INFO reports process totals (`session::info`).
    fn set_peer_totals(&mut self, clients: u64, commands: u64);

    /// Counters, per server index; `server_stat_id` maps an index to the
    /// backend's stat id (None: not a backend of the current pool).
    fn stats(&self) -> &MuxStats;
    fn server_stat_id(&self, server: u32) -> Option<usize>;
    fn server_queues(&self, server: u32) -> QueueGauges;
    /// Reply bytes buffered for this session's clients (unsent, or parked
    /// behind an earlier reply), for `[server] max_buffered_bytes`.
    fn buffered_bytes(&self) -> usize;
    /// Appends every client holding reply bytes, with how many.
    fn buffered_clients(&self, out: &mut Vec<(ClientId, usize)>);

    /// Redis Cluster counters (MOVED, ASK, retries ...), for cluster
    /// sessions only.
    fn cluster_stats(&self) -> Option<&ClusterStats> {
        None
    }

    /// Where a memcache pool's local `stats` reads its values (the
    /// driver's counters and clock); ignored by other sessions.
    fn set_local_stats(&mut self, _source: LocalStats) {}

    /// Where the session records timing, per-command counters and slow
    /// requests (`obs`); the driver sets it once, then adjusts its
    /// settings on reload (`recorder_mut`).
    fn set_recorder(&mut self, rec: crate::obs::Recorder);
    fn recorder_mut(&mut self) -> &mut crate::obs::Recorder;
    /// Whether slow log entries would name clients: then the driver looks
    /// up each new client's address (a syscall per accept) for
    /// `set_client_peer`.
    fn wants_client_peer(&mut self) -> bool {
        self.recorder_mut().wants_peers()
    }
    fn set_client_peer(&mut self, id: ClientId, peer: Option<SocketAddr>) {
        self.recorder_mut().set_peer(id.index(), peer);
    }
    /// A TLS client's handshake completed, with `names` from its verified
    /// certificate (`None`: it sent none): a user claiming them
    /// (`[[user]] cert_cn`/`cert_san`) logs it in (`session::mux::identity`).
    fn set_client_cert(&mut self, _id: ClientId, _names: Option<&crate::acl::CertNames>) {}
    /// Names the recorder's backend slots (after `set_recorder` and each
    /// applied pool update; cluster sessions name nodes as they connect).
    fn name_backends(&self) {}
}
