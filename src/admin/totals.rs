//! Cross-worker sums of the per-core counters, as admin reports them.
//!
//! Owns nothing: it only loads single-writer counters (relaxed), so a sum may
//! be one event stale per worker, which metrics tolerate. Counters are looked
//! up by stat id, never by position in the snapshot, because stat ids survive
//! reloads. Invariant: an id outside the counter arrays reads as zero instead
//! of panicking; the control thread keeps ids in range, but admin must not
//! take the process down if it ever does not.

use std::sync::Arc;

use serde::Serialize;

use crate::stats::{Counter, HealthStats, WorkerStats};

/// One pool's counters summed over every worker.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PoolTotals {
    pub client_connections: u64,
    pub client_connections_total: u64,
    pub rejected_max_connections: u64,
    pub rejected_no_backend: u64,
    pub rejected_client_limit: u64,
    pub rejected_per_ip: u64,
    pub idle_closed: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// One backend's worker counters summed, plus its health-check counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BackendTotals {
    pub connections: u64,
    pub connections_total: u64,
    pub connect_failures: u64,
    pub health_checks_ok: u64,
    pub health_checks_fail: u64,
    /// Last probe round trip, microseconds.
    pub health_check_rtt_us: u64,
}

impl PoolTotals {
    pub fn sum(workers: &[Arc<WorkerStats>], stat_id: usize) -> Self {
        let mut t = PoolTotals::default();
        for w in workers {
            let Some(p) = w.pools.get(stat_id) else {
                continue;
            };
            // Wrapping, like the counters themselves: gauges are kept with
            // wrapping incr/decr, so wrapping sums stay exact.
            t.client_connections = t.client_connections.wrapping_add(p.client_conns.get());
            t.client_connections_total = t.client_connections_total.wrapping_add(p.client_conns_total.get());
            t.rejected_max_connections = t.rejected_max_connections.wrapping_add(p.rejected_max_conns.get());
            t.rejected_no_backend = t.rejected_no_backend.wrapping_add(p.rejected_no_backend.get());
            t.rejected_client_limit = t.rejected_client_limit.wrapping_add(p.rejected_client_limit.get());
            t.rejected_per_ip = t.rejected_per_ip.wrapping_add(p.rejected_per_ip.get());
            t.idle_closed = t.idle_closed.wrapping_add(p.idle_closed.get());
            t.bytes_in = t.bytes_in.wrapping_add(p.bytes_in.get());
            t.bytes_out = t.bytes_out.wrapping_add(p.bytes_out.get());
        }
        t
    }
}

impl BackendTotals {
    pub fn sum(workers: &[Arc<WorkerStats>], health: &HealthStats, stat_id: usize) -> Self {
        let mut t = BackendTotals::default();
        for w in workers {
            let Some(b) = w.backends.get(stat_id) else {
                continue;
            };
            t.connections = t.connections.wrapping_add(b.conns.get());
            t.connections_total = t.connections_total.wrapping_add(b.conns_total.get());
            t.connect_failures = t.connect_failures.wrapping_add(b.connect_failures.get());
        }
        let at = |c: &[Counter]| c.get(stat_id).map_or(0, Counter::get);
        t.health_checks_ok = at(&health.ok);
        t.health_checks_fail = at(&health.fail);
        t.health_check_rtt_us = at(&health.rtt_us);
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_by_stat_id_and_tolerates_bad_ids() {
        let workers: Vec<Arc<WorkerStats>> = (0..3).map(|_| Arc::default()).collect();
        for (i, w) in workers.iter().enumerate() {
            w.pools[5].bytes_out.add(10 * (i as u64 + 1));
            w.backends[7].conns_total.add(2);
        }
        let health = HealthStats::default();
        health.ok[7].add(9);
        assert_eq!(PoolTotals::sum(&workers, 5).bytes_out, 60);
        assert_eq!(PoolTotals::sum(&workers, 4), PoolTotals::default());
        let b = BackendTotals::sum(&workers, &health, 7);
        assert_eq!((b.connections_total, b.health_checks_ok), (6, 9));
        assert_eq!(PoolTotals::sum(&workers, usize::MAX), PoolTotals::default());
        assert_eq!(BackendTotals::sum(&workers, &health, usize::MAX), BackendTotals::default());
    }
}
