//! nutcracker's pool and server counters of redis/memcache pools, summed
//! over workers: read by the stats port (`nutstats`) and `/metrics`.
//!
//! Owns nothing: loads the workers' single-writer `stats::mux` blocks on
//! each scrape. Invariant: `/metrics` gets these families only when some
//! pool is a redis/memcache pool, so other deployments see exactly the
//! families they saw before; every value has the same meaning in both
//! outputs (nutcracker's, see `compat::describe`).

use std::sync::Arc;

use super::metrics::{escape, Out};
use crate::control::Shared;
use crate::route::{PoolSnapshot, Snapshot};
use crate::stats::WorkerStats;

/// nutcracker's per-pool counters that the sessions keep.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PoolTwem {
    pub client_eof: u64,
    pub client_err: u64,
    pub forward_error: u64,
    pub fragments: u64,
    pub slow_closed: u64,
}

/// nutcracker's per-server counters that the sessions keep.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ServerTwem {
    pub server_eof: u64,
    pub server_err: u64,
    pub server_timedout: u64,
    pub requests: u64,
    pub request_bytes: u64,
    pub responses: u64,
    pub response_bytes: u64,
    pub in_queue: u64,
    pub in_queue_bytes: u64,
    pub out_queue: u64,
    pub out_queue_bytes: u64,
}

impl PoolTwem {
    pub fn sum(workers: &[Arc<WorkerStats>], stat_id: usize) -> Self {
        let mut t = PoolTwem::default();
        for p in workers.iter().filter_map(|w| w.mux.pools.get(stat_id)) {
            t.client_eof = t.client_eof.wrapping_add(p.client_eof.get());
            t.client_err = t.client_err.wrapping_add(p.client_err.get());
            t.forward_error = t.forward_error.wrapping_add(p.forward_error.get());
            t.fragments = t.fragments.wrapping_add(p.fragments.get());
            t.slow_closed = t.slow_closed.wrapping_add(p.slow_closed.get());
        }
        t
    }
}

impl ServerTwem {
    pub fn sum(workers: &[Arc<WorkerStats>], stat_id: usize) -> Self {
        let mut t = ServerTwem::default();
        for s in workers.iter().filter_map(|w| w.mux.servers.get(stat_id)) {
            for (acc, c) in [
                (&mut t.server_eof, &s.server_eof),
                (&mut t.server_err, &s.server_err),
                (&mut t.server_timedout, &s.server_timedout),
                (&mut t.requests, &s.requests),
                (&mut t.request_bytes, &s.request_bytes),
                (&mut t.responses, &s.responses),
                (&mut t.response_bytes, &s.response_bytes),
                (&mut t.in_queue, &s.in_queue),
                (&mut t.in_queue_bytes, &s.in_queue_bytes),
                (&mut t.out_queue, &s.out_queue),
                (&mut t.out_queue_bytes, &s.out_queue_bytes),
            ] {
                *acc = acc.wrapping_add(c.get());
            }
        }
        t
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
    type PoolField = fn(&PoolTwem) -> u64;
    let per_pool: [(&str, &str, PoolField); 5] = [
        ("client_eof_total", "Client connections closed by the client (EOF).", |t| t.client_eof),
        ("client_err_total", "Client connections closed on an error (I/O, protocol, unsupported).", |t| t.client_err),
        ("forward_error_total", "Requests answered with an error because forwarding failed.", |t| t.forward_error),
        ("fragments_total", "Sub-requests created by splitting multi-key requests.", |t| t.fragments),
        (
            "slow_clients_closed_total",
            "Clients closed past client_output_limit (hard, or soft for soft_seconds).",
            |t| t.slow_closed,
        ),
    ];
    for (name, help, f) in per_pool {
        m.family(name, "counter", help);
        for (pool, t) in &pools {
            m.sample(name, &format!("pool=\"{pool}\""), f(t));
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
    type ServerField = fn(&ServerTwem) -> u64;
    let per_server: [(&str, &str, &str, ServerField); 11] = [
        ("server_eof_total", "counter", "Server connections closed by the server (EOF).", |t| t.server_eof),
        ("server_err_total", "counter", "Server connections closed on an error.", |t| t.server_err),
        ("server_timedout_total", "counter", "Server connections closed by the request timeout.", |t| {
            t.server_timedout
        }),
        ("server_requests_total", "counter", "Requests forwarded to the server.", |t| t.requests),
        ("server_request_bytes_total", "counter", "Request bytes forwarded to the server.", |t| t.request_bytes),
        ("server_responses_total", "counter", "Responses read from the server.", |t| t.responses),
        ("server_response_bytes_total", "counter", "Response bytes read from the server.", |t| t.response_bytes),
        ("server_in_queue", "gauge", "Requests queued for the server, not yet written.", |t| t.in_queue),
        ("server_in_queue_bytes", "gauge", "Bytes of requests queued, not yet written.", |t| t.in_queue_bytes),
        ("server_out_queue", "gauge", "Requests written to the server, reply owed.", |t| t.out_queue),
        ("server_out_queue_bytes", "gauge", "Bytes of requests written, reply owed.", |t| t.out_queue_bytes),
    ];
    for (name, kind, help, f) in per_server {
        m.family(name, kind, help);
        for (l, t) in &servers {
            m.sample(name, l, f(t));
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
