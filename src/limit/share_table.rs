//! Each worker's share of a set of rates (per-IP share slots of a pool,
//! or proxy users), and the rebalancing that moves shares toward demand.
//!
//! Owner: built by the control thread, read and written lock-free:
//! `demand[worker][slot]` is written by that worker only (a relaxed add
//! per request) and swapped to zero by the control thread;
//! `share[worker][slot]` is written by the control thread only (relaxed
//! stores) and read by the worker at each refill.
//!
//! Rebalancing: for a slot with any demand since the last call, each
//! worker's share becomes its part of the demand, floored at
//! 1/(`SHARE_FLOOR_DIVISOR` x N) so a core that had none still admits at
//! once, then normalised to sum to one. A slot without demand keeps its
//! shares. Shares start at 1/N. Invariant: a slot's shares sum to one
//! (within rounding) and none is zero.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// A share of one: the whole rate.
const ONE: u32 = 1 << 20;
/// An idle core keeps 1/(this x N) of a rate (see the header).
pub const SHARE_FLOOR_DIVISOR: u32 = 32;
/// How often the control thread rebalances.
pub const REBALANCE_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub struct ShareTable {
    workers: usize,
    slots: usize,
    demand: Box<[AtomicU32]>,
    share: Box<[AtomicU32]>,
}

impl ShareTable {
    pub fn new(workers: usize, slots: usize) -> ShareTable {
        let (workers, slots) = (workers.max(1), slots.max(1));
        let fill = |v: u32| (0..workers * slots).map(|_| AtomicU32::new(v)).collect::<Box<[_]>>();
        ShareTable { workers, slots, demand: fill(0), share: fill(ONE / workers as u32) }
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    fn at(&self, worker: usize, share: u32) -> usize {
        // `share < slots` by every caller (a masked hash, a user index).
        (worker % self.workers) * self.slots + share as usize
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
        for s in 0..self.slots {
            let mut total = 0u64;
            for (w, dw) in d.iter_mut().enumerate() {
                *dw = u64::from(self.demand[w * self.slots + s].swap(0, Ordering::Relaxed));
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
                self.share[w * self.slots + s].store(v.max(1), Ordering::Relaxed);
            }
        }
    }
}
