//! nutcracker's pool and server counters of redis/memcache pools, summed
//! over workers: read by the stats port (`nutstats`) and `/metrics`.
//!
//! Owns nothing: loads the workers' single-writer `stats::mux` blocks on
//! each scrape. Invariant: `/metrics` gets these families only when some
//! pool is a redis/memcache pool, so other deployments see exactly the
//! families they saw before; every value has the same meaning in both
//! outputs (nutcracker's, see `compat::describe`). The families and their
//! order come from the tables `stats::mux` declares (`counter_table!`).

use std::sync::Arc;

use super::metrics::{escape, Out};
use crate::control::Shared;
use crate::route::{PoolSnapshot, Snapshot};
use crate::stats::mux::{POOL_ROWS, SERVER_ROWS};
use crate::stats::WorkerStats;

pub use crate::stats::mux::{PoolTwem, ServerTwem};

impl PoolTwem {
    pub fn sum(workers: &[Arc<WorkerStats>], stat_id: usize) -> Self {
        PoolTwem::total(workers.iter().filter_map(|w| w.mux.pools.get(stat_id)))
    }
}

impl ServerTwem {
    pub fn sum(workers: &[Arc<WorkerStats>], stat_id: usize) -> Self {
        ServerTwem::total(workers.iter().filter_map(|w| w.mux.servers.get(stat_id)))
    }
}

fn twem_pools(snap: &Snapshot) -> impl Iterator<Item = &Arc<PoolSnapshot>> {
    snap.pools.iter().filter(|p| p.cfg.shard.is_some())
}

/// Appends the twemproxy families (nothing when no pool is redis/memcache).
pub(super) fn render_metrics(m: &mut Out, shared: &Shared, snap: &Snapshot) {
    if twem_pools(snap).next().is_none() {
        return;
    }
    let pools: Vec<(String, PoolTwem)> =
        twem_pools(snap).map(|p| (escape(&p.cfg.name), PoolTwem::sum(&shared.workers, p.stat_id))).collect();
    for r in POOL_ROWS {
        m.family(r.prom, r.kind, r.help);
        for (pool, t) in &pools {
            m.sample(r.prom, &format!("pool=\"{pool}\""), (r.get)(t));
        }
    }
    m.family("server_ejects_total", "counter", "Times auto_eject_hosts ejected the server.");
    for p in twem_pools(snap) {
        for b in &p.backends {
            let v = shared.health.ejects.get(b.stat_id).map_or(0, |c| c.get());
            m.sample("server_ejects_total", &labels(p, b), v);
        }
    }
    m.family("server_ejected_at_seconds", "gauge", "When the server was last ejected (Unix time; 0: never).");
    for p in twem_pools(snap) {
        for b in &p.backends {
            let us = shared.health.ejected_at_us.get(b.stat_id).map_or(0, |c| c.get());
            m.sample("server_ejected_at_seconds", &labels(p, b), us as f64 / 1e6);
        }
    }
    let servers: Vec<(String, ServerTwem)> = twem_pools(snap)
        .flat_map(|p| p.backends.iter().map(move |b| (p, b)))
        .map(|(p, b)| (labels(p, b), ServerTwem::sum(&shared.workers, b.stat_id)))
        .collect();
    for r in SERVER_ROWS {
        m.family(r.prom, r.kind, r.help);
        for (l, t) in &servers {
            m.sample(r.prom, l, (r.get)(t));
        }
    }
}

fn labels(p: &PoolSnapshot, b: &crate::route::BackendState) -> String {
    format!(
        "pool=\"{}\",backend=\"{}\",addr=\"{}\"",
        escape(&p.cfg.name),
        escape(&b.spec.name),
        escape(&b.spec.addr.to_string())
    )
}
