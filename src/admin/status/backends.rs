//! The backends of one pool as the status page shows them: a state word
//! (up, down, ejected) that means what the pool kind can know, an RTT
//! where one is measured, and for cluster pools the slot map.
//!
//! Owns nothing: reads the snapshot (health and ejection as the control
//! thread last published them, the cluster's last good slot map) and the
//! control thread's probe counters.
//!
//! What "down" means, by kind (invariant: no other source moves a state):
//! - tcp, mongos: the health check (`healthy` in the snapshot: `fall`
//!   failed probes in a row); RTT is the last probe's round trip;
//! - redis, memcache: ejection (`auto_eject_hosts`); the state is
//!   "ejected", since the server is out of the ring, not known dead;
//! - redis_cluster: a node the cluster topology marks failed (CLUSTER
//!   NODES `fail`, `pfail`, `noaddr`, `handshake`), or one that workers
//!   found refusing connections in the last `REFUSING_SHOWN` (the control
//!   thread's reports, `HealthStats::cluster_refusing`): the cluster itself
//!   notices a dead node only after `cluster-node-timeout`.

use std::net::SocketAddr;

use serde::Serialize;

use crate::config::Mode;
use crate::control::Shared;
use crate::route::slotmap::Role;
use crate::route::{PoolSnapshot, SlotMap};

use super::super::totals::BackendTotals;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Up,
    Down,
    Ejected,
}

#[derive(Debug, Serialize)]
pub struct BackendView {
    pub name: String,
    pub addr: String,
    pub state: State,
    /// Last health probe round trip, microseconds; `None` where no probe
    /// measured one.
    pub rtt_us: Option<u64>,
    /// Backend connections open now (summed over workers).
    pub connections: u64,
    pub connect_failures: u64,
    /// redis_cluster nodes only: "master" or "replica".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// redis_cluster nodes that are down: "failed" (the topology says so)
    /// or "refusing" (workers could not reach it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// One master of a cluster slot map, with its slots and replicas.
#[derive(Debug, Serialize)]
pub struct ShardView {
    pub id: String,
    pub addr: String,
    pub state: State,
    /// Inclusive slot ranges.
    pub slots: Vec<(u16, u16)>,
    pub replicas: Vec<NodeView>,
}

#[derive(Debug, Serialize)]
pub struct NodeView {
    pub id: String,
    pub addr: String,
    pub state: State,
}

/// The pool's backends: configured servers, or a cluster's nodes.
pub fn backends(shared: &Shared, p: &PoolSnapshot) -> Vec<BackendView> {
    if let Some(map) = p.cluster.as_ref().filter(|_| p.cfg.mode == Mode::RedisCluster) {
        let refusing = refusing(shared, p.stat_id);
        return map
            .nodes()
            .iter()
            .map(|n| {
                let reason = node_down(n.healthy, n.addr, &refusing);
                BackendView {
                    name: short_id(&n.id),
                    addr: n.endpoint.clone(),
                    state: if reason.is_some() { State::Down } else { State::Up },
                    rtt_us: None,
                    connections: 0,
                    connect_failures: 0,
                    role: Some(match n.role {
                        Role::Master => "master",
                        Role::Replica => "replica",
                    }),
                    reason,
                }
            })
            .collect();
    }
    p.backends
        .iter()
        .map(|b| {
            let t = BackendTotals::sum(&shared.workers, &shared.health, b.stat_id);
            let probed = matches!(p.cfg.mode, Mode::Tcp | Mode::Mongos) && t.health_checks_ok > 0;
            BackendView {
                name: b.spec.name.clone(),
                addr: b.spec.addr.to_string(),
                state: backend_state(p.cfg.mode, b.healthy),
                rtt_us: probed.then_some(t.health_check_rtt_us),
                connections: t.connections,
                connect_failures: t.connect_failures,
                role: None,
                reason: None,
            }
        })
        .collect()
}

/// The nodes of cluster pool `stat_id` that workers found refusing
/// connections lately (empty for other pools, or an id out of range).
pub fn refusing(shared: &Shared, stat_id: usize) -> std::sync::Arc<Vec<SocketAddr>> {
    shared.health.cluster_refusing.get(stat_id).map(|c| c.load_full()).unwrap_or_default()
}

/// A configured backend's state from its snapshot health flag.
pub fn backend_state(mode: Mode, healthy: bool) -> State {
    match (healthy, mode) {
        (true, _) => State::Up,
        (false, Mode::Redis | Mode::Memcache) => State::Ejected,
        (false, Mode::Tcp | Mode::Mongos | Mode::RedisCluster) => State::Down,
    }
}

/// Why a cluster node is down, or `None` when it is up.
fn node_down(healthy: bool, addr: SocketAddr, refusing: &[SocketAddr]) -> Option<&'static str> {
    if !healthy {
        Some("failed")
    } else if refusing.contains(&addr) {
        Some("refusing")
    } else {
        None
    }
}

fn node_state(healthy: bool, addr: SocketAddr, refusing: &[SocketAddr]) -> State {
    match node_down(healthy, addr, refusing) {
        Some(_) => State::Down,
        None => State::Up,
    }
}

/// The slot map by master, in slot order, each with every replica the
/// topology lists (failed ones too, marked down).
pub fn slot_map(map: &SlotMap, refusing: &[SocketAddr]) -> Vec<ShardView> {
    let mut shards: Vec<(u16, ShardView)> = Vec::new();
    for (start, end, idx) in map.ranges() {
        if let Some((_, s)) = shards.iter_mut().find(|(i, _)| *i == idx) {
            s.slots.push((start, end));
            continue;
        }
        let Some(n) = map.node(idx) else { continue };
        let replicas = map
            .nodes()
            .iter()
            .filter(|r| r.role == Role::Replica && r.master == Some(idx))
            .map(|r| NodeView {
                id: short_id(&r.id),
                addr: r.endpoint.clone(),
                state: node_state(r.healthy, r.addr, refusing),
            })
            .collect();
        let view = ShardView {
            id: short_id(&n.id),
            addr: n.endpoint.clone(),
            state: node_state(n.healthy, n.addr, refusing),
            slots: vec![(start, end)],
            replicas,
        };
        shards.push((idx, view));
    }
    shards.into_iter().map(|(_, s)| s).collect()
}

/// The first 8 characters of a 40-character node id (as `redis-cli
/// --cluster` shows them); "-" when the cluster gave no id.
fn short_id(id: &str) -> String {
    if id.is_empty() {
        return "-".to_string();
    }
    id.chars().take(8).collect()
}
