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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::fixture::{self, R1_STAT, R2_STAT};
    use crate::admin::nutstats;

    /// `/metrics` families of a twemproxy pool, as the hand-written tables
    /// rendered them before `counter_table!` (captured from that code).
    const FAMILIES: &[&str] = &[
            "# HELP puerta_client_eof_total Client connections closed by the client (EOF).",
            "# TYPE puerta_client_eof_total counter",
            "# HELP puerta_client_err_total Client connections closed on an error (I/O, protocol, unsupported).",
            "# TYPE puerta_client_err_total counter",
            "# HELP puerta_forward_error_total Requests answered with an error because forwarding failed.",
            "# TYPE puerta_forward_error_total counter",
            "# HELP puerta_fragments_total Sub-requests created by splitting multi-key requests.",
            "# TYPE puerta_fragments_total counter",
            "# HELP puerta_slow_clients_closed_total Clients closed past client_output_limit (hard, or soft for soft_seconds).",
            "# TYPE puerta_slow_clients_closed_total counter",
            "# HELP puerta_server_ejects_total Times auto_eject_hosts ejected the server.",
            "# TYPE puerta_server_ejects_total counter",
            "# HELP puerta_server_ejected_at_seconds When the server was last ejected (Unix time; 0: never).",
            "# TYPE puerta_server_ejected_at_seconds gauge",
            "# HELP puerta_server_eof_total Server connections closed by the server (EOF).",
            "# TYPE puerta_server_eof_total counter",
            "# HELP puerta_server_err_total Server connections closed on an error.",
            "# TYPE puerta_server_err_total counter",
            "# HELP puerta_server_timedout_total Server connections closed by the request timeout.",
            "# TYPE puerta_server_timedout_total counter",
            "# HELP puerta_server_requests_total Requests forwarded to the server.",
            "# TYPE puerta_server_requests_total counter",
            "# HELP puerta_server_request_bytes_total Request bytes forwarded to the server.",
            "# TYPE puerta_server_request_bytes_total counter",
            "# HELP puerta_server_responses_total Responses read from the server.",
            "# TYPE puerta_server_responses_total counter",
            "# HELP puerta_server_response_bytes_total Response bytes read from the server.",
            "# TYPE puerta_server_response_bytes_total counter",
            "# HELP puerta_server_in_queue Requests queued for the server, not yet written.",
            "# TYPE puerta_server_in_queue gauge",
            "# HELP puerta_server_in_queue_bytes Bytes of requests queued, not yet written.",
            "# TYPE puerta_server_in_queue_bytes gauge",
            "# HELP puerta_server_out_queue Requests written to the server, reply owed.",
            "# TYPE puerta_server_out_queue gauge",
            "# HELP puerta_server_out_queue_bytes Bytes of requests written, reply owed.",
            "# TYPE puerta_server_out_queue_bytes gauge",
    ];

    fn twem_fixture() -> fixture::Fixture {
        let f = fixture::standard();
        let Ok(mut pool) = Arc::try_unwrap(fixture::pool(
            "tw",
            5,
            &[("r1", "127.0.0.1:7001", true, R1_STAT), ("r2", "127.0.0.1:7002", true, R2_STAT)],
        )) else {
            unreachable!("a fresh Arc")
        };
        pool.cfg.shard = Some(crate::config::ShardConfig::default());
        f.shared.cell.publish(fixture::snapshot(6, false, vec![Arc::new(pool)]));
        let (w0, w1) = (&f.shared.workers[0], &f.shared.workers[1]);
        w0.mux.servers[R1_STAT].requests.add(2);
        w1.mux.servers[R1_STAT].requests.add(3);
        w1.mux.servers[R2_STAT].in_queue_bytes.set(40);
        w0.mux.pools[5].fragments.add(4);
        w1.mux.pools[5].slow_closed.add(1);
        f
    }

    #[test]
    fn metrics_keep_their_names_help_types_and_order() {
        let f = twem_fixture();
        let text = super::super::metrics::render(&f.shared);
        let heads: Vec<&str> = text.lines().filter(|l| l.starts_with("# ")).collect();
        fixture::assert_in_order(&heads, FAMILIES);
        let r1 = "pool=\"tw\",backend=\"r1\",addr=\"127.0.0.1:7001\"";
        let r2 = "pool=\"tw\",backend=\"r2\",addr=\"127.0.0.1:7002\"";
        for want in [
            format!("puerta_server_requests_total{{{r1}}} 5"),
            format!("puerta_server_requests_total{{{r2}}} 0"),
            format!("puerta_server_in_queue_bytes{{{r2}}} 40"),
            "puerta_fragments_total{pool=\"tw\"} 4".to_owned(),
            "puerta_slow_clients_closed_total{pool=\"tw\"} 1".to_owned(),
        ] {
            assert!(text.lines().any(|l| l == want), "missing {want:?} in\n{text}");
        }
    }

    #[test]
    fn nutcracker_fields_read_the_same_counters() {
        let f = twem_fixture();
        let v: serde_json::Value = serde_json::from_str(&nutstats::render(&nutstats::collect(&f.shared))).unwrap();
        assert_eq!(v["tw"]["r1"]["requests"], 5);
        assert_eq!(v["tw"]["r2"]["in_queue_bytes"], 40);
        assert_eq!(v["tw"]["fragments"], 4);
        assert_eq!(v["tw"]["r1"]["server_connections"], 0);
    }
}
