//! `GET /ready`: whether this process should receive traffic.
//!
//! Owns nothing; a pure decision over `Shared`, so every reason is testable
//! without a socket. Ready means: not draining, every worker runs the latest
//! published epoch (a lagging worker may still route by a stale topology),
//! every pool has a healthy backend (else accepts on it are refused), and
//! every redis_cluster pool has a slot map with a serving master.

use crate::control::Shared;

/// `Ok` when ready, else every reason it is not, one line each.
///
/// Draining wins outright: a shutting-down process is not ready whatever
/// else holds, and listing lagging workers then would only be noise.
pub fn readiness(shared: &Shared) -> Result<(), Vec<String>> {
    let snap = shared.cell.load();
    if snap.draining {
        return Err(vec!["draining".to_string()]);
    }
    let latest = shared.cell.epoch();
    let mut reasons = Vec::new();
    for (i, w) in shared.workers.iter().enumerate() {
        let runs = w.epoch.get();
        if runs != latest {
            reasons.push(format!("worker {i} runs epoch {runs}, latest is {latest}"));
        }
    }
    for p in &snap.pools {
        // `healthy` is what workers balance over, so it, not the per-backend
        // flags, decides whether the pool can serve.
        if p.healthy.is_empty() {
            reasons.push(format!("pool {}: no healthy backend", p.cfg.name));
        }
        // A cluster pool's seeds are not probed: it serves once a refresh
        // found a master for some slot.
        if p.cfg.cluster.is_some() && p.cluster.as_ref().is_none_or(|m| m.served() == 0) {
            reasons.push(format!("pool {}: no cluster topology yet", p.cfg.name));
        }
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(reasons)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::fixture;

    #[test]
    fn ready_when_caught_up_and_served() {
        let f = fixture::standard();
        f.shared.workers[1].epoch.set(4);
        assert_eq!(readiness(&f.shared), Ok(()));
    }

    #[test]
    fn lists_every_reason() {
        let f = fixture::standard();
        let dead = fixture::pool("redis-b", 1, &[("d1", "127.0.0.1:7101", false, 30)]);
        let live = fixture::pool("redis-a", 0, &[("r1", "127.0.0.1:7001", true, 31)]);
        f.shared.cell.publish(fixture::snapshot(5, false, vec![live, dead]));
        f.shared.workers[0].epoch.set(5);
        assert_eq!(
            readiness(&f.shared),
            Err(vec!["worker 1 runs epoch 3, latest is 5".to_string(), "pool redis-b: no healthy backend".to_string()])
        );
    }

    #[test]
    fn a_cluster_pool_without_a_topology_is_not_ready() {
        let f = fixture::standard();
        f.shared.workers[1].epoch.set(5);
        f.shared.workers[0].epoch.set(5);
        let Ok(mut p) = std::sync::Arc::try_unwrap(fixture::pool("cl", 0, &[("s", "127.0.0.1:30001", true, 1)])) else {
            unreachable!("a fresh Arc")
        };
        p.cfg.cluster = Some(crate::config::ClusterConfig::default());
        p.cluster = Some(std::sync::Arc::new(crate::route::SlotMap::empty()));
        f.shared.cell.publish(fixture::snapshot(5, false, vec![std::sync::Arc::new(p)]));
        assert_eq!(readiness(&f.shared), Err(vec!["pool cl: no cluster topology yet".to_string()]));
    }

    #[test]
    fn draining_is_the_only_reason() {
        let f = fixture::standard();
        let pool = fixture::pool("redis-a", 0, &[("r1", "127.0.0.1:7001", false, 0)]);
        f.shared.cell.publish(fixture::snapshot(5, true, vec![pool]));
        assert_eq!(readiness(&f.shared), Err(vec!["draining".to_string()]));
    }
}
