//! The worker's multiplexed pools (redis/memcache and redis_cluster): one
//! `PoolSession` per pool (`ShardSession` / `ClusterPoolSession`), the tables that tie the session's client and
//! backend ids to the driver's sockets, and everything about them that
//! does not depend on the I/O driver — snapshot changes, admission,
//! counters and reports to the control thread.
//!
//! Owner: one worker thread; both drivers embed a `MuxPools` and keep
//! their socket records in their own slab, naming them here by slot
//! number ("handles"). Invariants:
//! - at most one live (not retired) entry per pool name; new clients go
//!   there; a retired entry drains (clients close at request boundaries)
//!   and is dropped once it has no client and no backend connection;
//! - every session is told about every snapshot, so ejections and reloads
//!   apply to the next request of every client;
//! - counters reach the worker's stats block only in `export_stats` (on
//!   the worker tick), as deltas of the session's own counters.

use std::sync::Arc;
use std::time::Instant;

use super::core::WorkerCore;
use crate::admin::mcstats;
use crate::config::Mode;
use crate::obs;
use crate::route::{ClusterReport, PoolSnapshot};
use crate::session::cluster::ClusterStats;
use crate::session::mux::{BackendId, ClientId, MuxStats, QueueGauges};
use crate::session::{ClusterPoolSession, PoolSession, PoolUpdate, ShardSession};
use crate::shared::ControlMsg;

use super::client_socks::ClientSocks;
pub use super::client_socks::NO_SOCK;
use super::id_hash::BackendSocks;

/// What a driver socket of a multiplexed pool is to its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MKind {
    Client(ClientId),
    Backend(BackendId),
}

/// One pool's session on this worker.
pub struct MuxEntry {
    pub session: Box<dyn PoolSession>,
    /// The pool as of the newest snapshot applied (names, stat ids).
    pub pool: Arc<PoolSnapshot>,
    /// Takes no new clients; dropped once empty.
    pub retired: bool,
    /// Socket handle per client (see `client_socks` for the reuse rule).
    pub clients: ClientSocks,
    /// Socket handle per backend connection.
    pub backends: BackendSocks,
    /// Clients whose reads the session paused; re-checked after each batch.
    pub paused: Vec<ClientId>,
    /// Servers reported failed, with their response count then: the first
    /// response after that ends the failure streak (`BackendOk`).
    failed: Vec<(u32, u64)>,
    /// The session's counters as last copied to the stats block.
    exported: MuxStats,
    exported_cluster: ClusterStats,
}

impl MuxEntry {
    pub(super) fn new(pool: Arc<PoolSnapshot>, now: Instant) -> Option<MuxEntry> {
        let session: Box<dyn PoolSession> = if pool.cfg.shard.is_some() {
            Box::new(ShardSession::new(pool.clone(), now)?)
        } else {
            Box::new(ClusterPoolSession::new(pool.clone())?)
        };
        Some(MuxEntry {
            session,
            pool,
            retired: false,
            clients: ClientSocks::default(),
            backends: BackendSocks::default(),
            paused: Vec::new(),
            failed: Vec::new(),
            exported: MuxStats::default(),
            exported_cluster: ClusterStats::default(),
        })
    }

    pub fn client_sock(&self, id: ClientId) -> u32 {
        self.clients.get(id)
    }

    /// Records `id`'s socket; returns a displaced older client's socket,
    /// which the driver must close now (see `client_socks`).
    #[must_use = "a displaced socket must be closed"]
    pub fn set_client_sock(&mut self, id: ClientId, sock: u32) -> Option<u32> {
        self.clients.set(id, sock)
    }

    /// Forgets `id`'s socket (only if the slot still belongs to it).
    pub fn clear_client_sock(&mut self, id: ClientId) -> u32 {
        self.clients.clear(id)
    }

    /// Every client socket handle.
    pub fn client_socks(&self) -> impl Iterator<Item = (ClientId, u32)> + '_ {
        self.clients.iter()
    }

    /// Nothing left to serve and nothing the driver still holds: no client
    /// or backend in the session, and no socket in the driver's tables. The
    /// session forgets a client as it queues its `CloseClient`; the socket
    /// stays in `clients` until the driver applies it, so an entry dropped
    /// before that would leak the socket (and its client count), and a new
    /// entry in the same slot would get its events.
    pub fn is_empty(&self) -> bool {
        self.session.client_count() == 0
            && self.clients.iter().next().is_none()
            && self.backends.is_empty()
            && !self.session.has_open_backends()
    }
}

#[derive(Default)]
pub struct MuxPools {
    pub entries: Vec<Option<MuxEntry>>,
}

/// Gives a memcache pool's session the source of its `stats` reply, for
/// the pool as `e` now knows it (a reload may change its client limit).
/// What a session learns from its worker: memcached `stats` sources and
/// the pool's per-IP rates (both again with every snapshot applied).
fn set_worker_state(e: &mut MuxEntry, core: &WorkerCore) {
    e.session.set_rate(super::ip_limits::rate_ctx(&e.pool, core.id));
    if e.pool.cfg.mode == Mode::Memcache {
        let (stat_id, max) = (e.pool.stat_id, e.pool.cfg.max_client_connections);
        e.session.set_local_stats(mcstats::source(core.shared.clone(), stat_id, max));
    }
}

/// Gives a new session its recorder (`obs`): this core's block of the
/// pool, the settings of `[server] metrics_detail` and the pool's slow log
/// keys, and every core's blocks for `SLOWLOG`.
fn set_recorder(e: &mut MuxEntry, core: &WorkerCore, now: Instant) {
    let kind = match e.pool.cfg.mode {
        Mode::Memcache => obs::Kind::Memcache,
        _ => obs::Kind::Redis,
    };
    let set = obs::Settings::from_config(core.snap.config.server.metrics_detail, &e.pool.cfg.obs);
    let block = core.stats.obs.pool(e.pool.stat_id, kind);
    let rec = obs::Recorder::new(block, kind, set, now).with_peers(core.shared.clone(), e.pool.stat_id);
    e.session.set_recorder(rec);
    e.session.name_backends();
}

impl MuxPools {
    /// Applies the worker's current snapshot: updates (or replaces)
    /// sessions of pools still there, retires sessions of pools gone, and
    /// drains everything when the snapshot is draining. Sessions may have
    /// intents afterwards (preconnects, drain closes): flush them all.
    pub fn sync(&mut self, core: &WorkerCore, now: Instant) {
        let snap = &core.snap;
        for pool in snap.pools.iter().filter(|p| is_mux(p)) {
            let live = self.entries.iter_mut().flatten().find(|e| !e.retired && e.pool.cfg.name == pool.cfg.name);
            let fresh = match live {
                Some(e) => match e.session.handle_pool_update(pool, now) {
                    PoolUpdate::Applied => {
                        e.pool = pool.clone();
                        set_worker_state(e, core);
                        let set = obs::Settings::from_config(snap.config.server.metrics_detail, &pool.cfg.obs);
                        e.session.recorder_mut().set_settings(set);
                        e.session.name_backends();
                        false
                    }
                    PoolUpdate::Incompatible => {
                        tracing::info!(pool = %pool.cfg.name, worker = core.id,
                            "pool reshaped by reload: new clients get a new session, old ones drain");
                        retire(e);
                        true
                    }
                },
                None => true,
            };
            if fresh && !snap.draining {
                if let Some(mut e) = MuxEntry::new(pool.clone(), now) {
                    set_worker_state(&mut e, core);
                    set_recorder(&mut e, core, now);
                    self.insert(e);
                }
            }
        }
        for e in self.entries.iter_mut().flatten() {
            let gone = snap.pool_by_name(&e.pool.cfg.name).is_none_or(|p| !is_mux(p));
            if !e.retired && (gone || snap.draining) {
                retire(e);
            }
        }
    }

    fn insert(&mut self, e: MuxEntry) {
        match self.entries.iter().position(Option::is_none) {
            Some(i) => self.entries[i] = Some(e),
            None => self.entries.push(Some(e)),
        }
    }

    /// The entry new clients of `pool` join.
    pub fn live_entry(&self, pool: &str) -> Option<usize> {
        self.entries.iter().position(|e| e.as_ref().is_some_and(|e| !e.retired && e.pool.cfg.name == pool))
    }

    pub fn get_mut(&mut self, idx: usize) -> Option<&mut MuxEntry> {
        self.entries.get_mut(idx).and_then(|e| e.as_mut())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Drops retired entries that have nothing left.
    pub fn reap(&mut self) {
        for slot in self.entries.iter_mut() {
            if slot.as_ref().is_some_and(|e| e.retired && e.is_empty()) {
                *slot = None;
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.iter().all(Option::is_none)
    }

    /// The earliest session deadline (request or connect timeout).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.entries.iter().flatten().filter_map(|e| e.session.next_deadline()).min()
    }

    /// Copies every session's counters into the worker's stats block.
    pub fn export_stats(&mut self, core: &WorkerCore) {
        let ms = &core.stats.mux;
        let mut queues: Vec<(usize, QueueGauges)> = Vec::new();
        for e in self.entries.iter_mut().flatten() {
            let s = e.session.stats();
            let pc = &ms.pools[e.pool.stat_id];
            pc.forward_error.add(s.forward_error - e.exported.forward_error);
            pc.fragments.add(s.fragments - e.exported.fragments);
            pc.slow_closed.add(s.slow_closed - e.exported.slow_closed);
            pc.ip_rate_limited.add(s.rate_limited - e.exported.rate_limited);
            pc.rate_limited.add(s.rate_limited_any - e.exported.rate_limited_any);
            e.exported.servers.resize(s.servers.len(), Default::default());
            for (i, (now, was)) in s.servers.iter().zip(e.exported.servers.iter()).enumerate() {
                let Some(sid) = e.session.server_stat_id(i as u32).filter(|&sid| sid < ms.servers.len()) else {
                    continue;
                };
                let sc = &ms.servers[sid];
                sc.add_delta(now, was);
                let q = e.session.server_queues(i as u32);
                match queues.iter_mut().find(|(id, _)| *id == sid) {
                    Some((_, t)) => t.accumulate(&q),
                    None => queues.push((sid, q)),
                }
            }
            e.exported = s.clone();
            if let Some(c) = e.session.cluster_stats() {
                let (cc, was) = (&ms.clusters[e.pool.stat_id], &e.exported_cluster);
                cc.moved.add(c.moved - was.moved);
                cc.ask.add(c.ask - was.ask);
                cc.retried.add(c.retried - was.retried);
                cc.connects.add(c.connects - was.connects);
                cc.pinned_reused.add(c.pinned_reused - was.pinned_reused);
                cc.reports.add(c.reports - was.reports);
                e.exported_cluster = c.clone();
            }
            ms.pools[e.pool.stat_id].commands.set(e.session.commands());
            // Hot keys: the live session's list (a draining one's is stale).
            if !e.retired {
                e.session.recorder_mut().publish_hot();
            }
            // INFO reports process totals: the other workers' published
            // figures plus this session's live ones.
            let sid = e.pool.stat_id;
            let others = core.shared.workers.iter().enumerate().filter(|&(i, _)| i != core.id).map(|(_, w)| w);
            let (clients, commands) = others.fold((0u64, 0u64), |(c, n), w| {
                let clients = w.pools.get(sid).map_or(0, |p| p.client_conns.get());
                let commands = w.mux.pools.get(sid).map_or(0, |p| p.commands.get());
                (c.saturating_add(clients), n.saturating_add(commands))
            });
            e.session.set_peer_totals(clients, commands);
        }
        for (sid, q) in queues {
            ms.servers[sid].set_gauges(&q);
        }
    }
}

/// Whether the pool's clients are served by a multiplexing session
/// (redis, memcache, redis_cluster) rather than one tcp/mongos session each.
pub fn is_mux(pool: &PoolSnapshot) -> bool {
    pool.cfg.shard.is_some() || pool.cfg.cluster.is_some()
}

fn retire(e: &mut MuxEntry) {
    e.retired = true;
    e.session.set_draining();
}

impl MuxEntry {
    /// A server failed (refused, timed out, died): counts toward
    /// `auto_eject_hosts` in the control thread.
    pub fn report_failed(&mut self, core: &WorkerCore, server: u32, errno: i32) {
        let Some(sid) = self.session.server_stat_id(server) else { return };
        let responses = self.session.stats().servers.get(server as usize).map_or(0, |s| s.responses);
        match self.failed.iter_mut().find(|(s, _)| *s == server) {
            Some(f) => f.1 = responses,
            None => self.failed.push((server, responses)),
        }
        if errno == libc::ECONNREFUSED || errno == libc::ETIMEDOUT {
            tracing::debug!(pool = %self.pool.cfg.name, server = sid, err = %std::io::Error::from_raw_os_error(errno),
                "server failed");
        }
        // A full channel only means the control thread already has work.
        let msg = ControlMsg::BackendFailed { pool_stat_id: self.pool.stat_id, backend_stat_id: sid };
        let _ = core.shared.control.try_send(msg);
    }

    /// A cluster session's report (MOVED followed, node unreachable): the
    /// control thread merges reports into one topology refresh.
    pub fn report_cluster(&self, core: &WorkerCore, report: ClusterReport) {
        tracing::debug!(pool = %self.pool.cfg.name, ?report, "cluster report");
        // A full channel only means the control thread already has work.
        let _ = core.shared.control.try_send(ControlMsg::Cluster { pool_stat_id: self.pool.stat_id, report });
    }

    /// After a batch: a failed server that answered since is healthy again.
    pub fn report_recoveries(&mut self, core: &WorkerCore) {
        if self.failed.is_empty() {
            return;
        }
        let stats = self.session.stats();
        let (pool_sid, mut i) = (self.pool.stat_id, 0);
        while i < self.failed.len() {
            let (server, at) = self.failed[i];
            if stats.servers.get(server as usize).is_some_and(|s| s.responses > at) {
                self.failed.swap_remove(i);
                if let Some(sid) = self.session.server_stat_id(server) {
                    let _ = core
                        .shared
                        .control
                        .try_send(ControlMsg::BackendOk { pool_stat_id: pool_sid, backend_stat_id: sid });
                }
            } else {
                i += 1;
            }
        }
    }
}
