//! The control loop: probes backends, applies reports and reloads, and
//! publishes a new snapshot whenever anything a worker routes on changed.
//!
//! Owner: the control thread owns `ControlState` outright; it shares only
//! the snapshots it publishes and its health counters (single writer).

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::build::{build, BuildCtx, BuildError, StatIds};
use super::cluster::ClusterPool;
use super::eject::{EjectPolicy, Ejector};
use super::health::{probe_round, BackendHealth};
use super::{ControlMsg, DriverKind, Shared};
use crate::config::{self, Config};
use crate::route::Snapshot;

/// Everything the control thread owns.
pub struct ControlState {
    cfg: Arc<Config>,
    ids: StatIds,
    /// By backend stat id.
    health: HashMap<usize, BackendHealth>,
    /// `auto_eject_hosts` state of redis/memcache backends, by stat id.
    eject: Ejector,
    /// Topology refresh state of each redis_cluster pool.
    clusters: Vec<ClusterPool>,
    epoch: u64,
    draining: bool,
    workers: usize,
    driver: DriverKind,
}

impl ControlState {
    /// Builds the first snapshot (binding every listener) before anything
    /// starts, so a bad address fails startup.
    pub fn bootstrap(cfg: Config, workers: usize, driver: DriverKind) -> Result<(ControlState, Snapshot), BuildError> {
        let mut st = ControlState {
            cfg: Arc::new(cfg),
            ids: StatIds::default(),
            health: HashMap::new(),
            eject: Ejector::default(),
            clusters: Vec::new(),
            epoch: 0,
            draining: false,
            workers,
            driver,
        };
        // Cluster pools start with a topology when any seed answers now;
        // otherwise with an empty map, refreshed with backoff.
        st.sync_clusters(Instant::now());
        st.refresh_clusters(Instant::now());
        let snap = st.build(None, st.cfg.clone())?;
        Ok((st, snap))
    }

    /// The current slot map of the cluster pool `name`.
    pub fn cluster_map(&self, name: &str) -> Option<Arc<crate::route::SlotMap>> {
        self.clusters.iter().find(|c| c.name() == name).map(ClusterPool::map)
    }

    /// Runs every due cluster refresh; true if any map changed.
    pub fn refresh_clusters(&mut self, now: Instant) -> bool {
        let mut changed = false;
        for c in &mut self.clusters {
            changed |= c.poll_refresh(now);
        }
        changed
    }

    /// Matches `clusters` to the cluster pools of `self.cfg`: new pools
    /// start refreshing, changed ones take their new settings (keeping
    /// their map), removed ones are dropped.
    fn sync_clusters(&mut self, now: Instant) {
        let pools: Vec<&crate::config::PoolConfig> = self.cfg.pools.iter().filter(|p| p.cluster.is_some()).collect();
        self.clusters.retain(|c| pools.iter().any(|p| p.name == c.name()));
        for p in pools {
            match self.clusters.iter_mut().find(|c| c.name() == p.name) {
                Some(c) => c.reconfigure(p, now),
                None => self.clusters.extend(ClusterPool::new(p, now)),
            }
        }
    }

    fn next_cluster_refresh(&self) -> Option<Instant> {
        self.clusters.iter().map(ClusterPool::next_due).min()
    }

    fn build(&mut self, prev: Option<&Snapshot>, cfg: Arc<Config>) -> Result<Snapshot, BuildError> {
        let (health, eject, now) = (&self.health, &self.eject, Instant::now());
        let clusters = &self.clusters;
        let cluster = |name: &str| clusters.iter().find(|c| c.name() == name).map(ClusterPool::map);
        // Ejected servers leave redis/memcache rings (only auto-eject pools
        // ever have ejected servers); probes mark any backend down.
        let up = |sid: usize| health.get(&sid).is_none_or(|h| h.up) && !eject.is_ejected(sid, now);
        let ctx = BuildCtx {
            epoch: self.epoch + 1,
            draining: self.draining,
            workers: self.workers,
            driver: self.driver,
            prev,
            up: &up,
            cluster: &cluster,
        };
        let snap = build(cfg, &mut self.ids, &ctx)?;
        self.epoch += 1;
        Ok(snap)
    }
}

pub struct Control {
    st: ControlState,
    shared: Arc<Shared>,
    rx: Receiver<ControlMsg>,
    wake_fds: Vec<RawFd>,
    /// When per-IP rate shares were last rebalanced (`rebalance_rates`).
    rebalanced: Instant,
}

impl Control {
    pub fn new(st: ControlState, shared: Arc<Shared>, rx: Receiver<ControlMsg>, wake_fds: Vec<RawFd>) -> Self {
        Control { st, shared, rx, wake_fds, rebalanced: Instant::now() }
    }

    pub fn run(mut self) {
        loop {
            let mut wait = self.next_probe_in(Instant::now());
            if self.shared.cell.load().pools.iter().any(|p| p.ip_limits.is_some()) {
                wait = wait.min(crate::limit::REBALANCE_EVERY.saturating_sub(self.rebalanced.elapsed()));
            }
            match self.rx.recv_timeout(wait) {
                Ok(msg) => self.handle(msg),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            // Coalesce a burst of reports into one probe round.
            while let Ok(msg) = self.rx.try_recv() {
                self.handle(msg);
            }
            let restored = self.st.eject.poll_restore(Instant::now());
            if restored {
                tracing::warn!("ejected server(s) back in the ring after server_retry_timeout");
            }
            let topology = self.st.refresh_clusters(Instant::now());
            if self.probe_due() || restored || topology {
                if let Err(e) = self.publish(None) {
                    tracing::error!("cannot publish health change: {e}");
                }
            }
            self.export_cluster_counts();
            self.rebalance_rates();
        }
    }

    /// Every `REBALANCE_EVERY`: each pool with per-IP limits, and the
    /// users' limits, move the workers' shares of every address's (every
    /// user's) rate toward their recent demand
    /// (`limit::shares`; relaxed stores the workers read at their next
    /// refill, no lock).
    fn rebalance_rates(&mut self) {
        if self.rebalanced.elapsed() < crate::limit::REBALANCE_EVERY {
            return;
        }
        self.rebalanced = Instant::now();
        let snap = self.shared.cell.load();
        for pool in snap.pools.iter() {
            if let Some(l) = &pool.ip_limits {
                l.rebalance();
            }
        }
        if let Some(u) = &snap.user_limits {
            u.rebalance();
        }
    }

    fn handle(&mut self, msg: ControlMsg) {
        match msg {
            ControlMsg::Reload { reply } => {
                let res = self.reload();
                match &res {
                    Ok(s) => tracing::info!("reload applied: {s}"),
                    Err(e) => tracing::error!("reload rejected, keeping the running config: {e}"),
                }
                if let Some(tx) = reply {
                    let _ = tx.send(res);
                }
            }
            ControlMsg::BackendFailed { pool_stat_id, backend_stat_id } => {
                if let Some(h) = self.st.health.get_mut(&backend_stat_id) {
                    h.handle_report(Instant::now());
                }
                self.note_failure(pool_stat_id, backend_stat_id);
            }
            ControlMsg::BackendOk { backend_stat_id, .. } => self.st.eject.handle_success(backend_stat_id),
            ControlMsg::Cluster { pool_stat_id, report } => {
                let snap = self.shared.cell.load();
                let Some(pool) = snap.pools.iter().find(|p| p.stat_id == pool_stat_id) else { return };
                if let Some(c) = self.st.clusters.iter_mut().find(|c| c.name() == pool.cfg.name) {
                    c.handle_report(report, Instant::now());
                }
            }
            ControlMsg::Shutdown => {
                if !self.st.draining {
                    tracing::info!("shutdown: draining connections");
                    self.st.draining = true;
                    if let Err(e) = self.publish(None) {
                        tracing::error!("cannot publish draining snapshot: {e}");
                    }
                }
            }
        }
    }

    fn reload(&mut self) -> Result<String, String> {
        let path = self.st.cfg.source.clone();
        let mut cfg = config::load(&path).map_err(|e| e.to_string())?;
        let src = std::fs::read_to_string(&path).unwrap_or_default();
        if config::is_nutcracker_yaml(&path, &src) {
            // nutcracker YAML has no [server] table: those settings came from
            // the command line at startup and stay.
            cfg.server = self.st.cfg.server.clone();
        }
        if cfg.server != self.st.cfg.server {
            tracing::warn!(
                "[server] changes (workers, cpus, io, admin, log) take effect at restart; shutdown_timeout applies now"
            );
        }
        let summary = format!("{} pool(s) from {}", cfg.pools.len(), path.display());
        let (old_cfg, now) = (std::mem::replace(&mut self.st.cfg, Arc::new(cfg)), Instant::now());
        self.st.sync_clusters(now);
        // A new cluster pool gets its first map before it is published.
        self.st.refresh_clusters(now);
        let cfg = std::mem::replace(&mut self.st.cfg, old_cfg);
        if let Err(e) = self.publish(Some(cfg)) {
            // The reload failed (e.g. a listen address is taken): the
            // running config's cluster pools stay as they were.
            self.st.sync_clusters(now);
            return Err(e);
        }
        // Ejection state of backends the new config dropped is forgotten.
        let snap = self.shared.cell.load();
        self.st.eject.retain(|sid| snap.pools.iter().any(|p| p.backends.iter().any(|b| b.stat_id == sid)));
        Ok(format!("epoch {}: {summary}", self.st.epoch))
    }

    /// Builds and publishes a snapshot from `cfg` (or the running config) and
    /// the current health, then wakes every worker.
    fn publish(&mut self, cfg: Option<Arc<Config>>) -> Result<(), String> {
        let prev = self.shared.cell.load();
        let cfg = cfg.unwrap_or_else(|| self.st.cfg.clone());
        let snap = self.st.build(Some(&prev), cfg.clone()).map_err(|e| e.to_string())?;
        // Let go of the old snapshot before the workers are woken: once they
        // drain and exit, the process may end at once, and a reference held
        // here past that point would keep its unix socket files on disk.
        drop(prev);
        self.st.cfg = cfg;
        let epoch = snap.epoch;
        self.shared.cell.publish(snap);
        for &fd in &self.wake_fds {
            crate::shared::eventfd_signal(fd);
        }
        tracing::debug!(epoch, "snapshot published");
        Ok(())
    }

    /// Copies each cluster pool's refresh counts, and the nodes it has
    /// seen refusing connections, to `HealthStats`.
    fn export_cluster_counts(&self) {
        if self.st.clusters.is_empty() {
            return;
        }
        let snap = self.shared.cell.load();
        let hs = &self.shared.health;
        for c in &self.st.clusters {
            let Some(p) = snap.pool_by_name(c.name()) else { continue };
            let (ok, failed) = c.counts();
            if let (Some(a), Some(b)) =
                (hs.cluster_refreshes.get(p.stat_id), hs.cluster_refresh_failures.get(p.stat_id))
            {
                a.set(ok);
                b.set(failed);
            }
            if let Some(cell) = hs.cluster_refusing.get(p.stat_id) {
                let refusing = c.refusing(Instant::now());
                // Swapped only on a change: no allocation per tick when
                // nothing is reported.
                if **cell.load() != refusing {
                    cell.store(Arc::new(refusing));
                }
            }
        }
    }

    /// Counts a failure toward `auto_eject_hosts`; at `server_failure_limit`
    /// the server is ejected and a ring without it is published.
    fn note_failure(&mut self, pool_sid: usize, backend_sid: usize) {
        let snap = self.shared.cell.load();
        let Some(pool) = snap.pools.iter().find(|p| p.stat_id == pool_sid) else { return };
        let Some(shard) = pool.cfg.shard.as_ref().filter(|s| s.auto_eject_hosts) else { return };
        let policy =
            EjectPolicy { failure_limit: shard.server_failure_limit, retry_timeout: shard.server_retry_timeout };
        if !self.st.eject.handle_failure(backend_sid, policy, Instant::now()) {
            return;
        }
        let name = pool.backends.iter().find(|b| b.stat_id == backend_sid).map_or("?", |b| b.spec.name.as_str());
        tracing::warn!(pool = %pool.cfg.name, server = %name, retry = ?policy.retry_timeout, "server ejected");
        let hs = &self.shared.health;
        if let (Some(n), Some(at)) = (hs.ejects.get(backend_sid), hs.ejected_at_us.get(backend_sid)) {
            n.incr();
            at.set(
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64),
            );
        }
        if let Err(e) = self.publish(None) {
            tracing::error!("cannot publish ejection: {e}");
        }
    }

    fn next_probe_in(&self, now: Instant) -> Duration {
        let next = self.st.health.values().map(|h| h.next_probe).chain(self.st.eject.next_restore()).min();
        // Cluster pools are not probed (CLUSTER NODES flags are their
        // health), so only other pools can have a first probe pending.
        let probed = self.st.cfg.pools.iter().any(|p| p.cluster.is_none());
        let wait = match next {
            Some(t) => t.saturating_duration_since(now).min(Duration::from_millis(500)),
            // Nothing probed yet (first pass): probe at once.
            None if probed => Duration::ZERO,
            None => Duration::from_millis(500),
        };
        match self.st.next_cluster_refresh() {
            Some(t) => wait.min(t.saturating_duration_since(now)),
            None => wait,
        }
    }

    /// Runs every due probe; returns true if any backend changed state.
    fn probe_due(&mut self) -> bool {
        let snap = self.shared.cell.load();
        let now = Instant::now();
        let mut changed = false;
        for pool in snap.pools.iter().filter(|p| p.cfg.cluster.is_none()) {
            let hc = pool.cfg.health;
            let due: Vec<_> = pool
                .backends
                .iter()
                .filter(|b| self.st.health.get(&b.stat_id).is_none_or(|h| h.next_probe <= now))
                .collect();
            if due.is_empty() {
                continue;
            }
            // The next probe is scheduled from this round's start, not its
            // end, so a backend that stops answering is down within
            // `fall` x `check_interval` (+ one `check_timeout`), not
            // `fall` x (`check_interval` + `check_timeout`).
            let started = Instant::now();
            let results = probe_round(pool, &due);
            for (b, out) in due.iter().zip(results) {
                let (ok, rtt) = (out.ok, out.rtt);
                let hs = &self.shared.health;
                if ok {
                    hs.ok[b.stat_id].incr();
                    hs.rtt_us[b.stat_id].set(rtt.as_micros() as u64);
                } else {
                    hs.fail[b.stat_id].incr();
                }
                let h = self.st.health.entry(b.stat_id).or_insert_with(|| BackendHealth::new(now));
                if h.handle_process_id(out.process_id) {
                    hs.restarts[b.stat_id].incr();
                    tracing::warn!(pool = %pool.cfg.name, backend = %b.spec.name, addr = %b.spec.addr,
                        "backend restarted (topologyVersion.processId changed)");
                }
                if let (false, Some(e)) = (ok, &out.error) {
                    tracing::debug!(pool = %pool.cfg.name, backend = %b.spec.name, "health check failed: {e}");
                }
                if h.handle_result(ok, &hc, started) {
                    changed = true;
                    let state = if h.up { "up" } else { "down" };
                    let why = out.error.as_deref().unwrap_or("");
                    tracing::warn!(pool = %pool.cfg.name, backend = %b.spec.name, addr = %b.spec.addr, "backend is {state} {why}");
                }
            }
        }
        changed
    }
}
