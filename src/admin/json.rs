//! `GET /stats`: the same numbers as `/metrics`, as one JSON document shaped
//! like the topology (pools containing backends), for humans and scripts.
//!
//! Owns nothing: a view built from one loaded snapshot, so every pool and
//! backend shown belongs to the same epoch. The view types borrow from that
//! snapshot and exist only for serialization.

use std::time::Instant;

use serde::Serialize;

use super::totals::{BackendTotals, PoolTotals};
use crate::control::Shared;

#[derive(Serialize)]
struct Stats<'s> {
    version: &'static str,
    uptime_seconds: f64,
    driver: &'static str,
    /// The epoch of the snapshot the pools below come from.
    epoch: u64,
    draining: bool,
    workers: Vec<WorkerView>,
    pools: Vec<PoolView<'s>>,
}

#[derive(Serialize)]
struct WorkerView {
    id: usize,
    epoch: u64,
    sessions: u64,
}

#[derive(Serialize)]
struct PoolView<'s> {
    name: &'s str,
    listen: String,
    /// Client connections across workers, from the pool's shared count that
    /// `max_client_connections` is enforced against.
    clients: u64,
    #[serde(flatten)]
    counters: PoolTotals,
    /// Mongos pools only: command latency, slow ops, framing errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    mongo: Option<serde_json::Value>,
    /// Redis Cluster pools only: redirects, retries, fan-out, topology.
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<serde_json::Value>,
    backends: Vec<BackendView<'s>>,
}

#[derive(Serialize)]
struct BackendView<'s> {
    name: &'s str,
    addr: String,
    weight: u32,
    healthy: bool,
    #[serde(flatten)]
    counters: BackendTotals,
    /// Mongos pools only: requests by opcode and command, restarts.
    #[serde(skip_serializing_if = "Option::is_none")]
    mongo: Option<serde_json::Value>,
}

/// Renders the stats document, pretty-printed (it is read by people).
pub fn render(shared: &Shared) -> Result<String, serde_json::Error> {
    let snap = shared.cell.load();
    let stats = Stats {
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: Instant::now().saturating_duration_since(shared.started).as_secs_f64(),
        driver: shared.driver.as_str(),
        epoch: snap.epoch,
        draining: snap.draining,
        workers: shared
            .workers
            .iter()
            .enumerate()
            .map(|(id, w)| WorkerView { id, epoch: w.epoch.get(), sessions: w.sessions.get() })
            .collect(),
        pools: snap
            .pools
            .iter()
            .map(|p| PoolView {
                name: &p.cfg.name,
                listen: p.cfg.listen.to_string(),
                clients: p.clients.load(std::sync::atomic::Ordering::Relaxed),
                counters: PoolTotals::sum(&shared.workers, p.stat_id),
                mongo: super::mongo::pool_json(shared, p),
                cluster: super::cluster::pool_json(shared, p),
                backends: p
                    .backends
                    .iter()
                    .map(|b| BackendView {
                        name: &b.spec.name,
                        addr: b.spec.addr.to_string(),
                        weight: b.spec.weight,
                        healthy: b.healthy,
                        counters: BackendTotals::sum(&shared.workers, &shared.health, b.stat_id),
                        mongo: super::mongo::backend_json(shared, p, b.stat_id),
                    })
                    .collect(),
            })
            .collect(),
    };
    let mut out = serde_json::to_string_pretty(&stats)?;
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::fixture;
    use serde_json::{json, Value};

    #[test]
    fn document_fields() {
        let f = fixture::standard();
        f.shared.workers[0].pools[fixture::POOL_STAT].bytes_out.add(7);
        f.shared.workers[1].pools[fixture::POOL_STAT].bytes_out.add(8);
        f.shared.workers[1].backends[fixture::R2_STAT].connect_failures.add(2);
        f.shared.health.ok[fixture::R1_STAT].add(12);
        let v: Value = serde_json::from_str(&render(&f.shared).unwrap()).unwrap();

        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(v["driver"], "epoll");
        assert_eq!(v["epoch"], 4);
        assert_eq!(v["draining"], false);
        assert!(v["uptime_seconds"].as_f64().unwrap() >= 0.0);
        assert_eq!(v["workers"], json!([{"id": 0, "epoch": 4, "sessions": 0}, {"id": 1, "epoch": 3, "sessions": 0}]));
        let pool = &v["pools"][0];
        assert_eq!(pool["name"], "redis-a");
        assert_eq!(pool["bytes_out"], 15);
        assert_eq!(pool["rejected_no_backend"], 0);
        let backends = pool["backends"].as_array().unwrap();
        assert_eq!(backends.len(), 2);
        assert_eq!(backends[0]["name"], "r1");
        assert_eq!(backends[0]["healthy"], true);
        assert_eq!(backends[0]["health_checks_ok"], 12);
        assert_eq!(backends[1]["addr"], "127.0.0.1:7002");
        assert_eq!(backends[1]["healthy"], false);
        assert_eq!(backends[1]["connect_failures"], 2);
    }
}
