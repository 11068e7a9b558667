//! The routing snapshot: one immutable, versioned value per epoch.
//!
//! Owner: the control thread is the only writer; it builds a whole new
//! `Snapshot` and publishes it through `SnapshotCell`. Workers hold an
//! `Arc<Snapshot>` and swap it only between event batches, after checking a
//! single atomic epoch once per loop pass. Invariant: a snapshot is never
//! mutated after publication, so nothing can be seen half-updated.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::affinity::{AffinityTable, Candidate};
use super::ring::ShardRing;
use crate::config::{Config, PoolConfig, ServerSpec};

/// Everything a worker needs to route, as of one epoch.
#[derive(Debug)]
pub struct Snapshot {
    pub epoch: u64,
    /// Set at shutdown: workers stop accepting and drain.
    pub draining: bool,
    /// The config this snapshot was built from (admin shows it).
    pub config: Arc<Config>,
    pub pools: Vec<Arc<PoolSnapshot>>,
    /// `listeners[pool][worker]`: one SO_REUSEPORT socket per worker, for
    /// the pool at the same index. Kept here, not in `PoolSnapshot`, so that
    /// sessions (which hold their pool's Arc) never keep a retired listener
    /// open; empty while draining.
    pub listeners: Vec<Vec<Arc<Listener>>>,
    /// `plain_listeners[pool][worker]`: a TLS pool's `plain_listen`
    /// sockets (an empty list for a pool without one).
    pub plain_listeners: Vec<Vec<Arc<Listener>>>,
    /// Every `[[user]]`'s limits and counters (`None`: no users); the same
    /// `Arc` as each pool's `user_limits`.
    pub user_limits: Option<Arc<crate::limit::UserLimits>>,
}

/// One pool as of one epoch.
#[derive(Debug)]
pub struct PoolSnapshot {
    pub cfg: PoolConfig,
    /// Stable counter index for this pool name.
    pub stat_id: usize,
    pub backends: Vec<BackendState>,
    /// Indices into `backends` of those currently healthy, in order.
    pub healthy: Vec<u32>,
    /// Client-IP affinity over the healthy backends.
    pub affinity: AffinityTable,
    /// Key placement for redis/memcache pools (nutcracker's ketama, modula
    /// or random); `None` for tcp pools. Built here, once per snapshot, so
    /// every worker places keys identically.
    pub ring: Option<Arc<ShardRing>>,
    /// The slot map of a redis_cluster pool (the control thread's last
    /// good topology); `None` for other modes. Set by the snapshot builder.
    pub cluster: Option<Arc<super::SlotMap>>,
    /// Client connections open across all workers. Touched only at accept and
    /// close (never per request) so the shared write is off the hot path.
    pub clients: Arc<AtomicU64>,
    /// Per-IP connection counts and per-core rate shares, when the pool
    /// has `per_ip`; carried across reloads like `clients` (the control
    /// thread rebalances the shares, `limit::shares`).
    pub ip_limits: Option<Arc<crate::limit::PoolLimits>>,
    /// The process-wide per-user limits and counters, for a pool whose
    /// clients can be users (`cfg.users` is set); rebalanced by the
    /// control thread through `Snapshot::user_limits`.
    pub user_limits: Option<Arc<crate::limit::UserLimits>>,
}

/// A backend and its health as of this epoch.
#[derive(Debug, Clone)]
pub struct BackendState {
    pub spec: ServerSpec,
    pub stat_id: usize,
    pub healthy: bool,
}

/// A bound, listening socket. `id` is unique for the process lifetime, so a
/// worker can tell "same listener kept across a reload" from "new one".
/// A TCP pool has one SO_REUSEPORT socket per worker; a unix socket pool
/// has one socket, and each worker's `Listener` holds a dup of its fd.
#[derive(Debug)]
pub struct Listener {
    pub id: u64,
    pub socket: socket2::Socket,
    /// Lives as long as any worker's copy of the listener: for a unix
    /// socket, the control thread's guard that removes the socket file when
    /// the last copy closes. Opaque here, since routing does no I/O.
    pub guard: Option<Arc<dyn std::fmt::Debug + Send + Sync>>,
    /// A `plain_listen` socket: its clients never speak TLS.
    pub plain: bool,
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl PoolSnapshot {
    /// Assembles a pool: backends get `stat_ids[i]` and `up(stat_id)` health;
    /// the healthy list and the affinity table follow from those.
    pub fn new(
        cfg: PoolConfig,
        stat_id: usize,
        stat_ids: &[usize],
        up: &dyn Fn(usize) -> bool,
        clients: Arc<AtomicU64>,
    ) -> Self {
        let backends: Vec<BackendState> = cfg
            .servers
            .iter()
            .zip(stat_ids)
            .map(|(s, &sid)| BackendState { spec: s.clone(), stat_id: sid, healthy: up(sid) })
            .collect();
        let healthy: Vec<u32> = (0..backends.len() as u32).filter(|&i| backends[i as usize].healthy).collect();
        let cands: Vec<Candidate> = healthy
            .iter()
            .map(|&i| {
                let b = &backends[i as usize];
                Candidate { index: i, name: &b.spec.name, weight: b.spec.weight }
            })
            .collect();
        let affinity = AffinityTable::build(&cands);
        let ring = super::ring::for_pool(&cfg, &|i| backends[i].healthy).map(Arc::new);
        PoolSnapshot {
            cfg,
            stat_id,
            backends,
            healthy,
            affinity,
            ring,
            cluster: None,
            clients,
            ip_limits: None,
            user_limits: None,
        }
    }
}

impl Snapshot {
    pub fn pool_by_name(&self, name: &str) -> Option<&Arc<PoolSnapshot>> {
        self.pools.iter().find(|p| p.cfg.name == name)
    }
}

/// The publication point: an `ArcSwap` plus the epoch as a plain atomic so a
/// worker's per-pass check is one relaxed load.
#[derive(Debug)]
pub struct SnapshotCell {
    current: ArcSwap<Snapshot>,
    epoch: AtomicU64,
}

impl SnapshotCell {
    pub fn new(first: Snapshot) -> Self {
        let epoch = first.epoch;
        SnapshotCell { current: ArcSwap::from_pointee(first), epoch: AtomicU64::new(epoch) }
    }

    /// Publishes `next`. Only the control thread calls this.
    pub fn publish(&self, next: Snapshot) {
        let epoch = next.epoch;
        self.current.store(Arc::new(next));
        // Release pairs with the Acquire in `epoch()`: a worker that sees the
        // new epoch will load the new snapshot.
        self.epoch.store(epoch, Ordering::Release);
    }

    #[inline]
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }
}
