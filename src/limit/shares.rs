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
//! - `shares` (`ShareTable`): per worker and share slot (a hash of the
//!   key, 4096 of them), the demand the worker saw (requests admitted plus
//!   the times it had to refuse or delay one) and the fraction of the
//!   configured rates its buckets refill at, rebalanced by the control
//!   thread every `REBALANCE_EVERY` (see `share_table`).
//!
//! How close to the configured rate: with N cores and an address busy on only one,
//! that core gets 1 / (1 + (N-1)/(32N)) of the rate: 98.5% with 2 cores,
//! 97% with 16; with the address busy on every core the shares follow
//! the demand and sum to the whole rate. Between rebalances (100 ms) a
//! core runs on its last share, so a client that moves its load from one
//! connection to another on a different core sees a lower rate for up to
//! that long.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use super::share_table::ShareTable;
use super::{IpKey, LimitError};

/// Connection counters (a power of two).
const CONN_SLOTS: usize = 1 << 16;
/// Share slots per worker (a power of two).
const SHARE_SLOTS: usize = 1 << 12;

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
    conns: Box<[AtomicU32]>,
    shares: ShareTable,
}

impl PoolLimits {
    pub fn new(workers: usize) -> PoolLimits {
        PoolLimits {
            hasher: Default::default(),
            conns: (0..CONN_SLOTS).map(|_| AtomicU32::new(0)).collect(),
            shares: ShareTable::new(workers, SHARE_SLOTS),
        }
    }

    pub fn workers(&self) -> usize {
        self.shares.workers()
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

    /// `worker`'s fraction of the rates of the keys in share slot `share`.
    #[inline]
    pub fn share(&self, worker: usize, share: u32) -> f64 {
        self.shares.share(worker, share)
    }

    /// `worker` admitted, delayed or refused a request of share slot `share`.
    #[inline]
    pub fn note_demand(&self, worker: usize, share: u32) {
        self.shares.note_demand(worker, share);
    }

    /// Moves the shares toward the demand since the last call (control
    /// thread only).
    pub fn rebalance(&self) {
        self.shares.rebalance();
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
