//! Backend choice for a new client connection.
//!
//! Owner: each worker owns one `Balancer` per pool (round-robin cursor and
//! its own connection counts); nothing here is shared between cores.
//! Invariant: only backends marked healthy in the snapshot are chosen, and
//! `exclude` (a backend that just refused this client) is skipped when any
//! other healthy backend exists.

use super::affinity::fnv1a64;
use super::snapshot::PoolSnapshot;
use crate::config::Balance;

/// Per-worker balancing state for one pool.
#[derive(Debug, Default)]
pub struct Balancer {
    cursor: usize,
    /// Connections this worker has open, by backend stat id (stable across
    /// reloads, unlike the index within a snapshot).
    active: Vec<u32>,
}

impl Balancer {
    /// Picks a backend index for a client, or `None` if none is healthy.
    pub fn pick(&mut self, pool: &PoolSnapshot, client_key: &[u8], exclude: Option<u32>) -> Option<u32> {
        self.pick_with(pool, client_key, exclude, &|_| 0)
    }

    /// As `pick`, with the last health-check round trip in µs by backend
    /// stat id (read by `least_latency`).
    pub fn pick_with(
        &mut self,
        pool: &PoolSnapshot,
        client_key: &[u8],
        exclude: Option<u32>,
        rtt_us: &dyn Fn(usize) -> u64,
    ) -> Option<u32> {
        let healthy = &pool.healthy;
        if healthy.is_empty() {
            return None;
        }
        let usable = |b: u32| Some(b) != exclude || healthy.len() == 1;
        match pool.cfg.effective_balance() {
            Balance::RoundRobin => {
                for _ in 0..healthy.len() {
                    let b = healthy[self.cursor % healthy.len()];
                    self.cursor = self.cursor.wrapping_add(1);
                    if usable(b) {
                        return Some(b);
                    }
                }
                None
            }
            Balance::LeastConn => {
                // Ties go round-robin so equal backends share load.
                let start = self.cursor;
                self.cursor = self.cursor.wrapping_add(1);
                (0..healthy.len()).map(|i| healthy[(start + i) % healthy.len()]).filter(|&b| usable(b)).min_by_key(
                    |&b| {
                        let sid = pool.backends[b as usize].stat_id;
                        self.active.get(sid).copied().unwrap_or(0)
                    },
                )
            }
            Balance::ClientIp => {
                let b = pool.affinity.lookup_hash(fnv1a64(client_key))?;
                if usable(b) {
                    Some(b)
                } else {
                    // The affine backend just failed: fall back deterministically.
                    healthy.iter().copied().find(|&x| usable(x))
                }
            }
            Balance::LeastLatency => {
                let start = self.cursor;
                self.cursor = self.cursor.wrapping_add(1);
                (0..healthy.len())
                    .map(|i| healthy[(start + i) % healthy.len()])
                    .filter(|&b| usable(b))
                    .min_by_key(|&b| rtt_us(pool.backends[b as usize].stat_id))
            }
            Balance::Weighted => {
                let weight = |b: u32| u64::from(pool.backends[b as usize].spec.weight.max(1));
                let total: u64 = healthy.iter().filter(|&&b| usable(b)).map(|&b| weight(b)).sum();
                if total == 0 {
                    return None;
                }
                let mut at = self.cursor as u64 % total;
                self.cursor = self.cursor.wrapping_add(1);
                for &b in healthy.iter().filter(|&&b| usable(b)) {
                    if at < weight(b) {
                        return Some(b);
                    }
                    at -= weight(b);
                }
                None
            }
        }
    }

    pub fn opened(&mut self, backend_stat_id: usize) {
        let i = backend_stat_id;
        if self.active.len() <= i {
            self.active.resize(i + 1, 0);
        }
        self.active[i] += 1;
    }

    pub fn closed(&mut self, backend_stat_id: usize) {
        if let Some(n) = self.active.get_mut(backend_stat_id) {
            *n = n.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{PoolConfig, ServerSpec};
    use std::sync::Arc;

    fn pool(balance: Balance, healthy: &[bool]) -> PoolSnapshot {
        let servers = (0..healthy.len())
            .map(|i| ServerSpec {
                addr: format!("127.0.0.1:{}", 7000 + i).parse().unwrap(),
                weight: 1,
                name: format!("b{i}"),
                host: String::new(),
            })
            .collect();
        let cfg = PoolConfig { balance, ..PoolConfig::with_defaults("p", "127.0.0.1:1".parse().unwrap(), servers) };
        // Backend i gets stat id 10 + i.
        let sids: Vec<usize> = (10..10 + healthy.len()).collect();
        PoolSnapshot::new(cfg, 0, &sids, &|sid| healthy[sid - 10], Arc::default())
    }

    #[test]
    fn round_robin_skips_unhealthy() {
        let p = pool(Balance::RoundRobin, &[true, false, true]);
        let mut b = Balancer::default();
        let picks: Vec<_> = (0..4).map(|_| b.pick(&p, b"", None).unwrap()).collect();
        assert_eq!(picks, vec![0, 2, 0, 2]);
    }

    #[test]
    fn none_when_all_down() {
        let p = pool(Balance::RoundRobin, &[false, false]);
        assert_eq!(Balancer::default().pick(&p, b"", None), None);
    }

    #[test]
    fn exclude_avoids_failed_backend_unless_only_one() {
        let p = pool(Balance::ClientIp, &[true, true]);
        let mut b = Balancer::default();
        let first = b.pick(&p, b"10.1.1.1", None).unwrap();
        let other = b.pick(&p, b"10.1.1.1", Some(first)).unwrap();
        assert_ne!(first, other);
        let single = pool(Balance::RoundRobin, &[true, false]);
        assert_eq!(b.pick(&single, b"", Some(0)), Some(0));
    }

    #[test]
    fn least_conn_prefers_idle_backend() {
        let p = pool(Balance::LeastConn, &[true, true, true]);
        let mut b = Balancer::default();
        b.opened(10);
        b.opened(10);
        b.opened(12);
        assert_eq!(b.pick(&p, b"", None), Some(1));
        b.opened(11);
        b.opened(11);
        b.closed(12);
        assert_eq!(b.pick(&p, b"", None), Some(2));
    }

    #[test]
    fn least_latency_follows_rtt_and_weighted_follows_weight() {
        let p = pool(Balance::LeastLatency, &[true, true, true]);
        let mut b = Balancer::default();
        let rtt = |sid: usize| [300u64, 100, 200][sid - 10];
        for _ in 0..3 {
            assert_eq!(b.pick_with(&p, b"", None, &rtt), Some(1));
        }
        assert_eq!(b.pick_with(&p, b"", Some(1), &rtt), Some(2));

        let mut w = pool(Balance::Weighted, &[true, true]);
        let mut cfg = w.cfg.clone();
        cfg.servers[0].weight = 3;
        w = PoolSnapshot::new(cfg, 0, &[10, 11], &|_| true, Arc::default());
        let picks: Vec<u32> = (0..8).map(|_| b.pick(&w, b"", None).unwrap()).collect();
        assert_eq!(picks.iter().filter(|&&x| x == 0).count(), 6, "{picks:?}");
    }

    #[test]
    fn losing_a_backend_moves_only_its_clients() {
        // Backend 1 of 3 turns unhealthy: the snapshot's table is rebuilt
        // over the healthy set, and only clients pinned to 1 move.
        let (all, one_down) = (pool(Balance::ClientIp, &[true; 3]), pool(Balance::ClientIp, &[true, false, true]));
        let mut b = Balancer::default();
        let mut moved = 0;
        for c in 0..5_000u32 {
            let key = c.to_be_bytes();
            let before = b.pick(&all, &key, None).unwrap();
            let after = b.pick(&one_down, &key, None).unwrap();
            if before != after {
                assert_eq!(before, 1, "a client of a surviving backend moved");
                moved += 1;
            }
        }
        assert!((1_200..2_200).contains(&moved), "about a third moves, got {moved}");
    }

    #[test]
    fn client_ip_is_sticky() {
        let p = pool(Balance::ClientIp, &[true, true, true]);
        let mut b = Balancer::default();
        let first = b.pick(&p, b"172.16.0.9", None);
        for _ in 0..10 {
            assert_eq!(b.pick(&p, b"172.16.0.9", None), first);
        }
    }
}
