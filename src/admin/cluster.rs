//! The redis_cluster part of `/metrics` and `/stats`: the sessions'
//! redirect, retry, fan-out and connection counters summed over workers,
//! the control thread's topology refresh counts, and the current slot
//! map's shape from the snapshot.
//!
//! Owns nothing: loads the workers' single-writer `stats::mux` blocks and
//! the control thread's `HealthStats` on each scrape. Invariant: emitted
//! only when some pool has `mode = "redis_cluster"`, so other deployments
//! see exactly the families they saw before.

use std::sync::Arc;

use serde::Serialize;

use super::metrics::{escape, Out};
use crate::control::Shared;
use crate::route::{PoolSnapshot, Snapshot};
use crate::stats::WorkerStats;

/// One cluster pool's counters, summed over workers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PoolCluster {
    /// MOVED redirects followed.
    pub moved: u64,
    /// ASK redirects followed.
    pub ask: u64,
    /// Requests re-sent after TRYAGAIN / CLUSTERDOWN / LOADING /
    /// MASTERDOWN or an unreachable node.
    pub retried: u64,
    /// Sub-requests of split multi-key commands and fan-outs.
    pub fragments: u64,
    /// Requests answered with an error because forwarding failed.
    pub forward_error: u64,
    /// Reports (MOVED, node failed) sent to the control thread.
    pub reports: u64,
    /// Node connections opened (shared and pinned).
    pub connects: u64,
    /// Pinned connections reused from the idle pool.
    pub pinned_reused: u64,
    pub client_eof: u64,
    pub client_err: u64,
    pub slow_closed: u64,
    /// Topology refreshes that succeeded / found no node answering.
    pub refreshes: u64,
    pub refresh_failures: u64,
}

impl PoolCluster {
    pub fn sum(shared: &Shared, stat_id: usize) -> Self {
        let mut t = PoolCluster::default();
        add_workers(&mut t, &shared.workers, stat_id);
        let hs = &shared.health;
        t.refreshes = hs.cluster_refreshes.get(stat_id).map_or(0, |c| c.get());
        t.refresh_failures = hs.cluster_refresh_failures.get(stat_id).map_or(0, |c| c.get());
        t
    }
}

fn add_workers(t: &mut PoolCluster, workers: &[Arc<WorkerStats>], stat_id: usize) {
    for w in workers {
        if let Some(c) = w.mux.clusters.get(stat_id) {
            for (acc, c) in [
                (&mut t.moved, &c.moved),
                (&mut t.ask, &c.ask),
                (&mut t.retried, &c.retried),
                (&mut t.reports, &c.reports),
                (&mut t.connects, &c.connects),
                (&mut t.pinned_reused, &c.pinned_reused),
            ] {
                *acc = acc.wrapping_add(c.get());
            }
        }
        if let Some(p) = w.mux.pools.get(stat_id) {
            for (acc, c) in [
                (&mut t.fragments, &p.fragments),
                (&mut t.forward_error, &p.forward_error),
                (&mut t.client_eof, &p.client_eof),
                (&mut t.client_err, &p.client_err),
                (&mut t.slow_closed, &p.slow_closed),
            ] {
                *acc = acc.wrapping_add(c.get());
            }
        }
    }
}

/// The slot map's shape: (slots with a serving master, masters, nodes).
fn topology(p: &PoolSnapshot) -> (usize, usize, usize) {
    p.cluster.as_ref().map_or((0, 0, 0), |m| (m.served(), m.shards().len(), m.nodes().len()))
}

fn cluster_pools(snap: &Snapshot) -> impl Iterator<Item = &Arc<PoolSnapshot>> {
    snap.pools.iter().filter(|p| p.cfg.cluster.is_some())
}

/// Appends the cluster families (nothing when no pool is a cluster pool).
pub(super) fn render_metrics(m: &mut Out, shared: &Shared, snap: &Snapshot) {
    if cluster_pools(snap).next().is_none() {
        return;
    }
    let pools: Vec<(String, PoolCluster, (usize, usize, usize))> =
        cluster_pools(snap).map(|p| (escape(&p.cfg.name), PoolCluster::sum(shared, p.stat_id), topology(p))).collect();
    type Field = fn(&PoolCluster) -> u64;
    let counters: [(&str, &str, Field); 13] = [
        ("cluster_moved_total", "MOVED redirects followed (the client never saw them).", |t| t.moved),
        ("cluster_ask_total", "ASK redirects followed with ASKING.", |t| t.ask),
        (
            "cluster_retried_total",
            "Requests re-sent after TRYAGAIN, CLUSTERDOWN, LOADING or an unreachable node.",
            |t| t.retried,
        ),
        ("cluster_fragments_total", "Sub-requests of multi-key commands split per slot and fan-outs.", |t| t.fragments),
        ("cluster_forward_error_total", "Requests answered with an error because forwarding failed.", |t| {
            t.forward_error
        }),
        ("cluster_reports_total", "MOVED and node-failure reports sent to the topology refresh.", |t| t.reports),
        ("cluster_connects_total", "Node connections opened (shared and pinned).", |t| t.connects),
        ("cluster_pinned_reused_total", "Pinned connections taken from the idle pool.", |t| t.pinned_reused),
        ("cluster_client_eof_total", "Client connections closed by the client (EOF).", |t| t.client_eof),
        ("cluster_client_err_total", "Client connections closed on an error (I/O, protocol).", |t| t.client_err),
        ("cluster_slow_clients_closed_total", "Clients closed for leaving too many reply bytes unread.", |t| {
            t.slow_closed
        }),
        ("cluster_topology_refreshes_total", "Topology refreshes that got a slot map.", |t| t.refreshes),
        ("cluster_topology_refresh_failures_total", "Topology refreshes no node answered (the last map stays).", |t| {
            t.refresh_failures
        }),
    ];
    for (name, help, f) in counters {
        m.family(name, "counter", help);
        for (pool, t, _) in &pools {
            m.sample(name, &format!("pool=\"{pool}\""), f(t));
        }
    }
    type Shape = fn(&(usize, usize, usize)) -> usize;
    let gauges: [(&str, &str, Shape); 3] = [
        ("cluster_slots_served", "Slots with a healthy master in the current slot map.", |t| t.0),
        ("cluster_masters", "Masters that own slots in the current slot map.", |t| t.1),
        ("cluster_nodes", "Nodes (masters and replicas) in the current slot map.", |t| t.2),
    ];
    for (name, help, f) in gauges {
        m.family(name, "gauge", help);
        for (pool, _, shape) in &pools {
            m.sample(name, &format!("pool=\"{pool}\""), f(shape));
        }
    }
}

/// The `cluster` object of a pool in `/stats`.
pub fn pool_json(shared: &Shared, p: &PoolSnapshot) -> Option<serde_json::Value> {
    let cfg = p.cfg.cluster.as_ref()?;
    let (served, masters, nodes) = topology(p);
    let mut v = serde_json::to_value(PoolCluster::sum(shared, p.stat_id)).ok()?;
    if let Some(o) = v.as_object_mut() {
        o.insert("read_from".into(), cfg.read_from.as_str().into());
        o.insert("slots_served".into(), served.into());
        o.insert("masters".into(), masters.into());
        o.insert("nodes".into(), nodes.into());
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::fixture;
    use crate::route::slotmap::{NodeSpec, ShardSpec};
    use crate::route::SlotMap;

    fn node(port: u16) -> NodeSpec {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        NodeSpec { id: format!("n{port}"), addr, endpoint: addr.to_string(), healthy: true, hostname: None }
    }

    #[test]
    fn cluster_pools_get_summed_counters_and_the_map_shape() {
        let f = fixture::standard();
        let Ok(mut pool) = Arc::try_unwrap(fixture::pool("cl", 5, &[("s1", "127.0.0.1:30001", true, 40)])) else {
            unreachable!("a fresh Arc")
        };
        pool.cfg.mode = crate::config::Mode::RedisCluster;
        pool.cfg.cluster = Some(crate::config::ClusterConfig::default());
        pool.cluster = Some(Arc::new(SlotMap::build(vec![
            ShardSpec { ranges: vec![(0, 8191)], master: node(1), replicas: vec![node(3)] },
            ShardSpec { ranges: vec![(8192, 16383)], master: node(2), replicas: vec![] },
        ])));
        f.shared.cell.publish(fixture::snapshot(6, false, vec![Arc::new(pool)]));
        let (w0, w1) = (&f.shared.workers[0], &f.shared.workers[1]);
        w0.mux.clusters[5].moved.add(2);
        w1.mux.clusters[5].moved.add(3);
        w1.mux.clusters[5].ask.add(1);
        w0.mux.pools[5].forward_error.add(4);
        f.shared.health.cluster_refreshes[5].set(7);
        let text = super::super::metrics::render(&f.shared);
        for want in [
            "puerta_cluster_moved_total{pool=\"cl\"} 5",
            "puerta_cluster_ask_total{pool=\"cl\"} 1",
            "puerta_cluster_forward_error_total{pool=\"cl\"} 4",
            "puerta_cluster_topology_refreshes_total{pool=\"cl\"} 7",
            "puerta_cluster_slots_served{pool=\"cl\"} 16384",
            "puerta_cluster_masters{pool=\"cl\"} 2",
            "puerta_cluster_nodes{pool=\"cl\"} 3",
            "# TYPE puerta_cluster_moved_total counter",
        ] {
            assert!(text.lines().any(|l| l == want), "missing {want:?} in\n{text}");
        }
        let json = super::super::json::render(&f.shared).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let c = &v["pools"][0]["cluster"];
        assert_eq!(c["moved"], 5);
        assert_eq!(c["slots_served"], 16384);
        assert_eq!(c["read_from"], "master");
    }

    #[test]
    fn no_cluster_families_without_a_cluster_pool() {
        let f = fixture::standard();
        assert!(!super::super::metrics::render(&f.shared).contains("puerta_cluster_"));
    }
}
