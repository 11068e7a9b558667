//! Topology discovery and refresh of `mode = "redis_cluster"` pools, owned
//! by the control thread.
//!
//! One `ClusterPool` per cluster pool holds the last good `SlotMap` (the
//! snapshot carries it), the sans-IO `RefreshMachine` that decides when to
//! refresh, and the reports workers sent since. A refresh asks up to three
//! nodes in turn (known masters first, then replicas, then the configured
//! seeds; nodes reported dead last) for CLUSTER SLOTS + CLUSTER NODES and
//! takes the first complete answer. When none answers, the last good map
//! stays and the machine backs off. `poll_refresh_with` takes the fetch as
//! a closure so the whole policy runs in tests with simulated time.

pub mod dns;
pub mod fetch;
pub mod machine;
pub mod topology;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::PoolConfig;
use crate::route::slotmap::{ClusterNode, ClusterReport, ShardSpec};
use crate::route::{SlotMap, SLOTS};
use crate::tls::ClientTls;
use fetch::FetchError;
use machine::{RefreshMachine, RefreshPolicy};

/// Nodes asked per refresh attempt before it counts as failed.
const TRIES_PER_REFRESH: usize = 3;
/// Below this much of a refresh's budget left, no further node is asked.
const MIN_TRY: Duration = Duration::from_millis(10);
/// How long a node reported dead keeps the map "degraded" (fast refresh)
/// while the cluster still lists it as a serving master.
const SUSPECT_TTL: Duration = Duration::from_secs(30);
/// How long a node reported dead is shown as refusing connections (on the
/// status page): workers report again on each failed attempt, so a node
/// that stays dead stays listed, and one that recovered drops out soon.
pub const REFUSING_SHOWN: Duration = Duration::from_secs(10);

pub struct ClusterPool {
    name: String,
    seeds: Vec<SocketAddr>,
    /// (user, password) for AUTH.
    auth: Option<(Option<String>, String)>,
    timeout: Duration,
    machine: RefreshMachine,
    map: Arc<SlotMap>,
    suspects: Vec<(SocketAddr, Instant)>,
    /// Host name lookups, bounded by each refresh's deadline.
    dns: dns::Dns,
    /// `backend_tls`: refreshes speak TLS, naming a seed by its host as
    /// written, and a node by its IP (or, with `server_name =
    /// "announced"`, by its announced hostname, else its endpoint's host).
    tls: Option<Arc<ClientTls>>,
    seed_hosts: Vec<(SocketAddr, String)>,
    refreshes: u64,
    refresh_failures: u64,
}

impl ClusterPool {
    /// The refresh state of a cluster pool (`None` for other modes); its
    /// first refresh is due at `now`.
    pub fn new(cfg: &PoolConfig, now: Instant) -> Option<ClusterPool> {
        let c = cfg.cluster.as_ref()?;
        Some(ClusterPool {
            name: cfg.name.clone(),
            seeds: cfg.servers.iter().map(|s| s.addr).collect(),
            auth: c.password.clone().map(|pw| (c.username.clone(), pw)),
            timeout: cfg.connect_timeout.min(cfg.health.check_timeout),
            machine: RefreshMachine::new(RefreshPolicy::new(c.refresh_interval), now),
            map: Arc::new(SlotMap::empty()),
            suspects: Vec::new(),
            dns: dns::Dns::system(),
            tls: cfg.tls.backend.clone(),
            seed_hosts: cfg.servers.iter().filter(|s| !s.host.is_empty()).map(|s| (s.addr, s.host.clone())).collect(),
            refreshes: 0,
            refresh_failures: 0,
        })
    }

    /// Takes a reloaded config for the same pool: new seeds, credentials
    /// and interval; the map is kept and a refresh is due at once.
    pub fn reconfigure(&mut self, cfg: &PoolConfig, now: Instant) {
        if let Some(mut fresh) = ClusterPool::new(cfg, now) {
            fresh.map = self.map.clone();
            fresh.dns = std::mem::take(&mut self.dns);
            fresh.refreshes = self.refreshes;
            fresh.refresh_failures = self.refresh_failures;
            *self = fresh;
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The last good map (empty before the first successful refresh).
    pub fn map(&self) -> Arc<SlotMap> {
        self.map.clone()
    }

    pub fn next_due(&self) -> Instant {
        self.machine.next_due()
    }

    /// (successful refreshes, failed refreshes) so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.refreshes, self.refresh_failures)
    }

    /// Nodes reported dead (refused, closed or timed out) within
    /// `REFUSING_SHOWN` before `now`, oldest report first.
    pub fn refusing(&self, now: Instant) -> Vec<SocketAddr> {
        self.suspects
            .iter()
            .filter(|&&(_, t)| now.saturating_duration_since(t) < REFUSING_SHOWN)
            .map(|&(a, _)| a)
            .collect()
    }

    /// Merges a worker's report; stale MOVED reports (the map already
    /// says so) are dropped.
    pub fn handle_report(&mut self, report: ClusterReport, now: Instant) {
        match report {
            ClusterReport::Moved { slot, addr } => {
                let known = self.map.master_of(slot).and_then(|n| self.map.node(n)).is_some_and(|n| n.addr == addr);
                if known {
                    return;
                }
            }
            ClusterReport::NodeFailed { addr } => {
                self.suspects.retain(|&(a, _)| a != addr);
                self.suspects.push((addr, now));
            }
            ClusterReport::UnknownNode { .. } => {}
        }
        self.machine.handle_report(now);
    }

    /// Runs a refresh over the network if one is due; true if the map
    /// changed (the caller then publishes a snapshot).
    ///
    /// The whole refresh (up to `TRIES_PER_REFRESH` nodes) shares one
    /// budget of `timeout` (the pool's `connect_timeout`, capped by its
    /// `check_timeout`): the control thread also runs health probes and
    /// reloads, so a black-holed seed or a slow DNS resolver may delay
    /// them by that much, never more (`dns.rs`). A node that refuses fails
    /// at once and the next is asked.
    pub fn poll_refresh(&mut self, now: Instant) -> bool {
        let (auth, timeout) = (self.auth.clone(), self.timeout);
        let creds = auth.as_ref().map(|(u, p)| (u.as_deref(), p.as_str()));
        let end = Instant::now() + timeout;
        let mut dns = std::mem::take(&mut self.dns);
        let (tls, hosts) = (self.tls.clone(), self.tls_hosts());
        let changed = self.poll_refresh_with(now, &mut |addr| {
            let left = end.saturating_duration_since(Instant::now());
            if left < MIN_TRY {
                return Err(FetchError::Timeout { addr, timeout });
            }
            let host = hosts.iter().find(|(a, _)| *a == addr).map_or_else(|| addr.ip().to_string(), |(_, h)| h.clone());
            fetch::fetch(addr, creds, left, &mut dns, tls.as_deref().map(|t| (t, host.as_str())))
        });
        self.dns = dns;
        changed
    }

    /// With `backend_tls`: the host each address other than its IP is
    /// named by (seeds as written; announced endpoints when asked for).
    fn tls_hosts(&self) -> Vec<(SocketAddr, String)> {
        let Some(tls) = &self.tls else { return Vec::new() };
        let mut out = self.seed_hosts.clone();
        if tls.wants_announced() {
            let nodes = self.map.nodes().iter();
            // The announced hostname, else the endpoint's host (as workers).
            let host = |n: &ClusterNode| match &n.hostname {
                Some(h) => Some(h.clone()),
                None => Some(n.endpoint.rsplit_once(':')?.0.to_owned()),
            };
            let announced = nodes.filter_map(|n| Some((n.addr, host(n)?)));
            out.extend(announced.filter(|(_, h)| !h.is_empty()));
        }
        out
    }

    /// `poll_refresh` with the fetch supplied (tests pass a fake cluster).
    pub fn poll_refresh_with(
        &mut self,
        now: Instant,
        fetch: &mut dyn FnMut(SocketAddr) -> Result<Vec<ShardSpec>, FetchError>,
    ) -> bool {
        if !self.machine.poll_start(now) {
            return false;
        }
        let targets = self.targets();
        let skip = (self.machine.failures() as usize * TRIES_PER_REFRESH) % targets.len().max(1);
        let mut last_err = String::from("no seed configured");
        for &addr in targets.iter().cycle().skip(skip).take(TRIES_PER_REFRESH.min(targets.len())) {
            let map = match fetch(addr) {
                Ok(shards) => SlotMap::build(shards),
                Err(e) => {
                    last_err = e.to_string();
                    continue;
                }
            };
            if map.assigned() == 0 {
                // A node that is not (yet) part of the cluster knows no
                // slots; another node may know better.
                last_err = format!("{addr}: the node knows no slot owners");
                continue;
            }
            self.refreshes += 1;
            self.suspects.retain(|&(_, t)| now.saturating_duration_since(t) < SUSPECT_TTL);
            let degraded = map.served() < SLOTS || self.suspects_serving(&map);
            self.machine.handle_success(now, degraded);
            if map == *self.map {
                return false;
            }
            tracing::info!(pool = %self.name, from = %addr, masters = map.shards().len(),
                nodes = map.nodes().len(), served = map.served(), "cluster topology changed");
            self.map = Arc::new(map);
            return true;
        }
        self.refresh_failures += 1;
        self.machine.handle_failure(now);
        tracing::warn!(pool = %self.name, failures = self.machine.failures(),
            "cluster topology refresh failed, keeping the last map: {last_err}");
        false
    }

    /// Reported-dead nodes the cluster still lists as healthy masters.
    fn suspects_serving(&self, map: &SlotMap) -> bool {
        self.suspects.iter().any(|&(a, _)| match map.find(a) {
            Some(i) => map.node(i).is_some_and(|n| n.healthy) && map.lowest_slot(i).is_some(),
            None => false,
        })
    }

    /// Nodes to ask, best first: healthy masters, healthy replicas, seeds,
    /// then the rest; nodes reported dead go last.
    fn targets(&self) -> Vec<SocketAddr> {
        let m = &self.map;
        let masters = m.shards().iter().filter_map(|&i| m.node(i)).filter(|n| n.healthy).map(|n| n.addr);
        let replicas = m.shards().iter().flat_map(|&i| m.replicas(i)).filter_map(|&i| m.node(i)).map(|n| n.addr);
        let rest = m.nodes().iter().map(|n| n.addr);
        let mut out: Vec<SocketAddr> = Vec::new();
        for a in masters.chain(replicas).chain(self.seeds.iter().copied()).chain(rest) {
            if !out.contains(&a) {
                out.push(a);
            }
        }
        out.sort_by_key(|a| self.suspects.iter().any(|(s, _)| s == a));
        out
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
