//! Driver-independent worker logic: snapshot swaps, admission, balancing,
//! counters and reports to the control thread.
//!
//! Owner: one worker thread. Both the io_uring and the epoll driver embed a
//! `WorkerCore`, so admission and routing behave identically under both.
//! Invariants: the snapshot is swapped only by `refresh`, which drivers call
//! between event batches; every counter written here belongs to this worker.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::accept_backoff::AcceptBackoff;
use crate::fdlimit::client_units;
use crate::route::balance::Balancer;
use crate::route::{Listener, PoolSnapshot, Snapshot};
use crate::session::{CloseReason, Limits};
use crate::shared::{ControlMsg, Shared};
use crate::stats::WorkerStats;

/// Bytes buffered toward one side before the other side's reads pause.
pub const HIGH_WATER: usize = 1 << 20;

/// Why a new client was turned away at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    MaxConnections,
    NoBackend,
    Draining,
    /// The process-wide client limit derived from RLIMIT_NOFILE.
    ClientLimit,
}

pub struct WorkerCore {
    pub id: usize,
    pub shared: Arc<Shared>,
    pub stats: Arc<WorkerStats>,
    pub snap: Arc<Snapshot>,
    /// Per-pool balancing state, keyed by pool stat id.
    balancers: HashMap<usize, Balancer>,
    /// This core's per-IP buckets of each mongos pool with `per_ip` rates,
    /// by pool stat id (`ip_limits::limit_mongo`).
    pub(super) mongo_ip: HashMap<usize, super::ip_limits::MongoIp>,
    /// Set once the drain started: (deadline).
    pub drain_deadline: Option<Instant>,
    /// Last time a rejection was logged at warn level (rate limit: 1/s).
    last_reject_log: Option<Instant>,
    /// Accepting pauses while descriptors are exhausted (`accept.rs`).
    pub(super) accept: AcceptBackoff,
    /// Last time a non-exhaustion accept error was logged (1/s).
    pub(super) last_accept_err_log: Option<Instant>,
    /// Set when the worker cannot go on (a failpoint, a ring that makes no
    /// progress): the driver's loop returns it, and `main` exits non-zero.
    pub fatal: Option<io::Error>,
}

impl WorkerCore {
    pub fn new(id: usize, shared: Arc<Shared>) -> Self {
        let snap = shared.cell.load();
        let stats = shared.workers[id].clone();
        stats.epoch.set(snap.epoch);
        WorkerCore {
            id,
            shared,
            stats,
            snap,
            balancers: HashMap::new(),
            mongo_ip: HashMap::new(),
            drain_deadline: None,
            last_reject_log: None,
            accept: AcceptBackoff::default(),
            last_accept_err_log: None,
            fatal: None,
        }
    }

    /// Swaps in the latest snapshot if the epoch moved. One relaxed-cost
    /// atomic load per loop pass; returns true when a new snapshot applied.
    #[inline]
    pub fn refresh(&mut self, now: Instant) -> bool {
        if self.shared.cell.epoch() == self.snap.epoch {
            return false;
        }
        self.snap = self.shared.cell.load();
        self.stats.epoch.set(self.snap.epoch);
        if self.snap.draining && self.drain_deadline.is_none() {
            self.drain_deadline = Some(now + self.snap.config.server.shutdown_timeout);
        }
        tracing::debug!(worker = self.id, epoch = self.snap.epoch, "snapshot applied");
        true
    }

    /// Some pool of the current snapshot terminates TLS (so the periodic
    /// handshake-timeout scan is worth running).
    pub fn any_tls(&self) -> bool {
        self.snap.pools.iter().any(|p| p.cfg.tls.server.is_some())
    }

    /// Listeners this worker should have armed: (pool, listener) pairs.
    pub fn wanted_listeners(&self) -> Vec<(Arc<PoolSnapshot>, Arc<Listener>)> {
        if self.snap.draining {
            return Vec::new();
        }
        let per_pool = self.snap.pools.iter().zip(&self.snap.listeners);
        let mut out: Vec<_> = per_pool.filter_map(|(p, ls)| Some((p.clone(), ls.get(self.id)?.clone()))).collect();
        let plain = self.snap.pools.iter().zip(&self.snap.plain_listeners);
        out.extend(plain.filter_map(|(p, ls)| Some((p.clone(), ls.get(self.id)?.clone()))));
        out
    }

    /// Decides whether a just-accepted client may stay, and where it goes.
    /// On success the client is counted; the caller must later call
    /// `client_closed`.
    pub fn admit(&mut self, pool: &PoolSnapshot, client_key: &[u8]) -> Result<u32, Reject> {
        if self.snap.draining {
            return Err(Reject::Draining);
        }
        self.take_client_units(pool)?;
        let pc = &self.stats.pools[pool.stat_id];
        if let Some(max) = pool.cfg.max_client_connections {
            // Shared across workers, but touched only at accept and close.
            if pool.clients.fetch_add(1, Ordering::Relaxed) >= max as u64 {
                pool.clients.fetch_sub(1, Ordering::Relaxed);
                self.shared.clients.give_back(client_units(&pool.cfg));
                pc.rejected_max_conns.incr();
                self.log_reject(pool, Reject::MaxConnections);
                return Err(Reject::MaxConnections);
            }
        } else {
            pool.clients.fetch_add(1, Ordering::Relaxed);
        }
        let rtt = &self.shared.health.rtt_us;
        let bal = self.balancers.entry(pool.stat_id).or_default();
        match bal.pick_with(pool, client_key, None, &|sid| rtt[sid].get()) {
            Some(b) => {
                pc.client_conns.incr();
                pc.client_conns_total.incr();
                self.stats.sessions.incr();
                Ok(b)
            }
            None => {
                pool.clients.fetch_sub(1, Ordering::Relaxed);
                self.shared.clients.give_back(client_units(&pool.cfg));
                pc.rejected_no_backend.incr();
                self.log_reject(pool, Reject::NoBackend);
                Err(Reject::NoBackend)
            }
        }
    }

    /// Takes the new client's units from the process-wide budget (nutcracker
    /// closes a client past its derived limit at once, as the caller does).
    pub(super) fn take_client_units(&mut self, pool: &PoolSnapshot) -> Result<(), Reject> {
        if self.shared.clients.try_take(client_units(&pool.cfg)) {
            return Ok(());
        }
        self.stats.pools[pool.stat_id].rejected_client_limit.incr();
        self.log_reject(pool, Reject::ClientLimit);
        Err(Reject::ClientLimit)
    }

    /// Logs a rejected client at warn level, at most once a second per
    /// worker, so a flood of clients cannot flood the log; counters carry
    /// the exact numbers.
    pub(super) fn log_reject(&mut self, pool: &PoolSnapshot, reason: Reject) {
        let now = Instant::now();
        if self.last_reject_log.is_some_and(|t| now.duration_since(t) < std::time::Duration::from_secs(1)) {
            return;
        }
        self.last_reject_log = Some(now);
        let why = match reason {
            Reject::MaxConnections => "max_client_connections reached",
            Reject::NoBackend => "no healthy backend",
            Reject::Draining => "draining",
            Reject::ClientLimit => "the process-wide client limit (derived from RLIMIT_NOFILE) reached",
        };
        let (open, limit) = (self.shared.clients.open(), self.shared.clients.limit());
        tracing::warn!(pool = %pool.cfg.name, worker = self.id, open, limit, "closing new client: {why}");
    }

    /// Another backend after `failed` refused; reports the failure.
    pub fn repick(&mut self, pool: &PoolSnapshot, client_key: &[u8], failed: u32) -> Option<u32> {
        self.report_backend_failed(pool, failed);
        let rtt = &self.shared.health.rtt_us;
        let bal = self.balancers.entry(pool.stat_id).or_default();
        bal.pick_with(pool, client_key, Some(failed), &|sid| rtt[sid].get()).filter(|&b| b != failed)
    }

    pub(super) fn balancer(&mut self, pool: &PoolSnapshot) -> &mut Balancer {
        self.balancers.entry(pool.stat_id).or_default()
    }

    pub fn report_backend_failed(&mut self, pool: &PoolSnapshot, backend: u32) {
        let b = &pool.backends[backend as usize];
        self.stats.backends[b.stat_id].connect_failures.incr();
        // A full channel only means the control thread already has work.
        let _ = self
            .shared
            .control
            .try_send(ControlMsg::BackendFailed { pool_stat_id: pool.stat_id, backend_stat_id: b.stat_id });
    }

    pub fn backend_opened(&mut self, pool: &PoolSnapshot, backend: u32) {
        let sid = pool.backends[backend as usize].stat_id;
        self.stats.backends[sid].conns.incr();
        self.stats.backends[sid].conns_total.incr();
        self.balancers.entry(pool.stat_id).or_default().opened(sid);
    }

    pub fn backend_closed(&mut self, pool: &PoolSnapshot, backend: u32) {
        let sid = pool.backends[backend as usize].stat_id;
        self.stats.backends[sid].conns.decr();
        self.balancers.entry(pool.stat_id).or_default().closed(sid);
    }

    /// A session admitted by `admit` ended.
    pub fn client_closed(&mut self, pool: &PoolSnapshot, reason: CloseReason) {
        let pc = &self.stats.pools[pool.stat_id];
        pc.client_conns.decr();
        self.stats.sessions.decr();
        pool.clients.fetch_sub(1, Ordering::Relaxed);
        self.shared.clients.give_back(client_units(&pool.cfg));
        if reason == CloseReason::IdleTimeout {
            pc.idle_closed.incr();
        }
        if pool.cfg.mongo.is_some() {
            self.mongo_closed(pool, reason);
        }
        match reason {
            CloseReason::Done | CloseReason::BackendClosed | CloseReason::IdleTimeout => {
                tracing::trace!(pool = %pool.cfg.name, ?reason, "session closed")
            }
            _ => tracing::debug!(pool = %pool.cfg.name, ?reason, "session closed"),
        }
    }

    pub fn count_bytes(&self, pool: &PoolSnapshot, from_client: usize, to_client: usize) {
        let pc = &self.stats.pools[pool.stat_id];
        if from_client > 0 {
            pc.bytes_in.add(from_client as u64);
        }
        if to_client > 0 {
            pc.bytes_out.add(to_client as u64);
        }
    }

    pub fn limits(pool: &PoolSnapshot) -> Limits {
        Limits {
            connect_timeout: pool.cfg.connect_timeout,
            idle_timeout: pool.cfg.idle_timeout,
            high_water: HIGH_WATER,
        }
    }

    /// True once draining and either nothing is open or the deadline passed.
    pub fn drain_done(&self, now: Instant) -> bool {
        match self.drain_deadline {
            Some(d) => self.stats.sessions.get() == 0 || now >= d,
            None => false,
        }
    }
}

/// The key `client_ip` balancing hashes: the peer's IP without the port.
pub fn client_key(peer: Option<std::net::SocketAddr>) -> Vec<u8> {
    match peer.map(|p| p.ip()) {
        Some(std::net::IpAddr::V4(v4)) => v4.octets().to_vec(),
        Some(std::net::IpAddr::V6(v6)) => v6.octets().to_vec(),
        None => Vec::new(),
    }
}
