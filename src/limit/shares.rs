//! What one pool's workers share about per-IP limits: the connection count
//! of each address (checked at accept), and each core's share of every
//! address's rate, rebalanced by the control thread from per-core demand.
//!
//! Owner: the control thread builds one `PoolLimits` per pool with
//! `per_ip` set and carries it across reloads (like the pool's client
//! count); workers hold it through the snapshot.
//!
//! No lock anywhere, and nothing shared is written per request but a
//! worker's own demand counter:
//! - `conns`: a fixed array of counters indexed by a salted hash of the
//!   key. Two addresses that collide share a counter, so a limit may
//!   refuse early, never late. Touched at accept and close only (a
//!   `ConnGuard` gives its count back when dropped), so the shared write is
//!   off the request path. The count is process-wide: every worker's
//!   connections from the address add up, without a lock, because accept
//!   does `fetch_add` and undoes it when the result is over the limit.
//! - `demand[worker][slot]`: requests a worker admitted plus the times it
//!   had to refuse or delay one, per share slot (a hash of the key, 4096
//!   of them). Written by that worker only (relaxed), swapped to zero by
//!   the control thread.
//! - `share[worker][slot]`: the fraction of the configured rates that
//!   worker's buckets refill at, in units of 1/`ONE`, written by the
//!   control thread only (relaxed) and read by the worker at each refill.
//!   Starts at 1/N.
//!
//! Rebalancing (`rebalance`, every `REBALANCE_EVERY` by the control
//! thread): for a slot with any demand in the last period, each worker's
//! share becomes its part of the demand, floored at
//! 1/(`SHARE_FLOOR_DIVISOR` x N) so a core that had none still admits
//! new clients at once, then normalised to sum to one. A slot without
//! demand keeps its shares. With N cores and an address busy on only one,
//! that core gets 1 / (1 + (N-1)/(32N)) of the rate: 98.5% with 2 cores,
//! 97% with 16; with the address busy on every core the shares follow
//! the demand and sum to the whole rate. Between rebalances (100 ms) a
//! core runs on its last share, so a client that moves its load from one
//! connection to another on a different core sees a lower rate for up to
//! that long.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{IpKey, LimitError};

/// Connection counters (a power of two).
const CONN_SLOTS: usize = 1 << 16;
/// Share slots per worker (a power of two).
const SHARE_SLOTS: usize = 1 << 12;
/// A share of one: the whole rate.
const ONE: u32 = 1 << 20;
/// An idle core keeps 1/(this x N) of an address's rate (see the header).
pub const SHARE_FLOOR_DIVISOR: u32 = 32;
/// How often the control thread rebalances.
pub const REBALANCE_EVERY: Duration = Duration::from_millis(100);

/// The hashed slots of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpSlot {
    pub conn: u32,
    pub share: u32,
}

#[derive(Debug)]
pub struct PoolLimits {
    /// Salted, so an outsider cannot pick addresses that collide with a
    /// victim's connection counter.
    hasher: std::collections::hash_map::RandomState,
    workers: usize,
    conns: Box<[AtomicU32]>,
    demand: Box<[AtomicU32]>,
    share: Box<[AtomicU32]>,
}

impl PoolLimits {
    pub fn new(workers: usize) -> PoolLimits {
        let workers = workers.max(1);
        let fill = |n: usize, v: u32| (0..n).map(|_| AtomicU32::new(v)).collect::<Box<[_]>>();
        PoolLimits {
            hasher: Default::default(),
            workers,
            conns: fill(CONN_SLOTS, 0),
            demand: fill(workers * SHARE_SLOTS, 0),
            share: fill(workers * SHARE_SLOTS, ONE / workers as u32),
        }
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The slots `key` hashes to.
    pub fn slot(&self, key: IpKey) -> IpSlot {
        let h = self.hasher.hash_one(key.bits());
        IpSlot { conn: (h as usize & (CONN_SLOTS - 1)) as u32, share: ((h >> 32) as usize & (SHARE_SLOTS - 1)) as u32 }
    }

    /// Takes one connection of `slot` if fewer than `limit` are open; the
    /// guard gives it back when dropped.
    pub fn connect(self: &Arc<Self>, slot: IpSlot, limit: u32) -> Result<ConnGuard, LimitError> {
        let c = &self.conns[slot.conn as usize];
        if c.fetch_add(1, Ordering::Relaxed) >= limit {
            c.fetch_sub(1, Ordering::Relaxed);
            return Err(LimitError::Connections { limit });
        }
        Ok(ConnGuard { pool: self.clone(), conn: slot.conn })
    }

    /// Connections open for `slot` (tests, admin).
    pub fn connections(&self, slot: IpSlot) -> u32 {
        self.conns[slot.conn as usize].load(Ordering::Relaxed)
    }

    fn at(&self, worker: usize, share: u32) -> usize {
        (worker % self.workers) * SHARE_SLOTS + share as usize
    }

    /// `worker`'s fraction of the rates of the keys in share slot `share`.
    #[inline]
    pub fn share(&self, worker: usize, share: u32) -> f64 {
        f64::from(self.share[self.at(worker, share)].load(Ordering::Relaxed)) / f64::from(ONE)
    }

    /// `worker` admitted, delayed or refused a request of share slot `share`.
    #[inline]
    pub fn note_demand(&self, worker: usize, share: u32) {
        self.demand[self.at(worker, share)].fetch_add(1, Ordering::Relaxed);
    }

    /// Sets every slot's shares from the demand since the last call (see
    /// the module header). Control thread only.
    pub fn rebalance(&self) {
        let n = self.workers;
        let floor = ONE / (SHARE_FLOOR_DIVISOR * n as u32).max(1);
        let mut d = vec![0u64; n];
        for s in 0..SHARE_SLOTS {
            let mut total = 0u64;
            for (w, dw) in d.iter_mut().enumerate() {
                *dw = u64::from(self.demand[w * SHARE_SLOTS + s].swap(0, Ordering::Relaxed));
                total += *dw;
            }
            if total == 0 {
                continue;
            }
            // Each worker's part of ONE, floored, then scaled to sum to ONE.
            let raw: Vec<u64> = d.iter().map(|&dw| (dw * u64::from(ONE) / total).max(u64::from(floor))).collect();
            let sum: u64 = raw.iter().sum();
            for (w, r) in raw.iter().enumerate() {
                let v = (r * u64::from(ONE) / sum.max(1)) as u32;
                self.share[w * SHARE_SLOTS + s].store(v.max(1), Ordering::Relaxed);
            }
        }
    }
}

/// One connection counted against its address; dropping it gives it back.
#[derive(Debug)]
pub struct ConnGuard {
    pool: Arc<PoolLimits>,
    conn: u32,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.pool.conns[self.conn as usize].fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> IpKey {
        IpKey::new(s.parse().unwrap())
    }

    #[test]
    fn connections_are_counted_across_workers_and_given_back() {
        let p = Arc::new(PoolLimits::new(2));
        let slot = p.slot(key("10.0.0.1"));
        let a = p.connect(slot, 2).unwrap();
        let b = p.connect(slot, 2).unwrap();
        assert_eq!(p.connect(slot, 2).unwrap_err(), LimitError::Connections { limit: 2 });
        assert_eq!(p.connections(slot), 2, "a refusal leaves the count as it was");
        drop(a);
        let _c = p.connect(slot, 2).unwrap();
        drop(b);
        assert_eq!(p.connections(slot), 1);
    }

    #[test]
    fn shares_start_equal_and_follow_demand() {
        let p = PoolLimits::new(2);
        let s = p.slot(key("10.0.0.1")).share;
        assert_eq!((p.share(0, s), p.share(1, s)), (0.5, 0.5));
        for _ in 0..100 {
            p.note_demand(0, s);
        }
        p.rebalance();
        let (a, b) = (p.share(0, s), p.share(1, s));
        assert!((a + b - 1.0).abs() < 1e-3, "{a} + {b}");
        // The idle core keeps its floor: 1/64 before normalising.
        assert!((a - 64.0 / 65.0).abs() < 1e-3 && b > 0.0, "{a} {b}");
        // No demand since: the shares stay.
        p.rebalance();
        assert_eq!(p.share(0, s), a);
        for _ in 0..30 {
            p.note_demand(0, s);
            p.note_demand(1, s);
            p.note_demand(1, s);
        }
        p.rebalance();
        assert!((p.share(1, s) - 2.0 / 3.0).abs() < 1e-3, "{}", p.share(1, s));
    }
}
