//! Per-user rate limits (`[[user]] limits = { requests, bytes, burst }`):
//! one request and one byte bucket per user per worker, keyed by the
//! user's index in the process-wide `[[user]]` list.
//!
//! Owner: the control thread builds one `UserLimits` per config (users
//! are a bounded, configured set) and shares it with the workers. A
//! user's buckets on worker `w` are shared by every pool session of that
//! worker (a user limit covers all the pools it may use), and are written
//! only by worker `w`: a relaxed load, the bucket arithmetic, and a
//! relaxed store of the `f64` bits. Single writer, so no lock and no
//! lost update; the control thread only reads demand and writes shares
//! (`ShareTable`, as for per-IP limits, with one slot per user).
//!
//! Invariants: `specs.len()` users; slot `w * users + u` belongs to
//! worker `w`; a user without limits (`None`) always admits and keeps no
//! tokens.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::share_table::ShareTable;
use super::{Admit, Limiter, RateSpec};

/// One user's buckets on one worker.
#[derive(Debug)]
struct Slot {
    req: AtomicU64,
    bytes: AtomicU64,
    /// Nanoseconds from `UserLimits::base` to the last refill; `u64::MAX`
    /// before the first request (the buckets start full then).
    last: AtomicU64,
}

#[derive(Debug)]
pub struct UserLimits {
    specs: Vec<Option<RateSpec>>,
    base: Instant,
    slots: Box<[Slot]>,
    shares: ShareTable,
}

impl UserLimits {
    /// Limits for `specs` (one per user, by index) on `workers` workers.
    pub fn new(specs: Vec<Option<RateSpec>>, workers: usize, now: Instant) -> UserLimits {
        let n = specs.len().max(1) * workers.max(1);
        let slot = || Slot { req: AtomicU64::new(0), bytes: AtomicU64::new(0), last: AtomicU64::new(u64::MAX) };
        UserLimits {
            shares: ShareTable::new(workers, specs.len()),
            specs,
            base: now,
            slots: (0..n).map(|_| slot()).collect(),
        }
    }

    /// The limits of user `user` (`None`: unlimited, or no such user).
    pub fn spec(&self, user: usize) -> Option<&RateSpec> {
        self.specs.get(user)?.as_ref()
    }

    fn slot(&self, worker: usize, user: usize) -> &Slot {
        let w = worker % self.shares.workers();
        &self.slots[w * self.specs.len() + user]
    }

    /// Loads worker `worker`'s limiter of `user`, lets `f` use it, stores
    /// it back. Only worker `worker` may call this for its slots.
    fn with<T>(
        &self,
        worker: usize,
        user: usize,
        now: Instant,
        f: impl FnOnce(&mut Limiter, &RateSpec, f64) -> T,
    ) -> Option<T> {
        let spec = self.spec(user)?;
        let share = self.shares.share(worker, user as u32);
        let s = self.slot(worker, user);
        let last = s.last.load(Ordering::Relaxed);
        let mut lim = if last == u64::MAX {
            Limiter::new(spec, share, now)
        } else {
            let at = self.base + Duration::from_nanos(last);
            let load = |a: &AtomicU64| f64::from_bits(a.load(Ordering::Relaxed));
            Limiter::from_parts(load(&s.req), load(&s.bytes), at)
        };
        let out = f(&mut lim, spec, share);
        let (req, bytes, at) = lim.parts();
        s.req.store(req.to_bits(), Ordering::Relaxed);
        s.bytes.store(bytes.to_bits(), Ordering::Relaxed);
        let ns = u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX - 1);
        s.last.store(ns.min(u64::MAX - 1), Ordering::Relaxed);
        Some(out)
    }

    /// Whether a request of `user` may go now on `worker` (counted as
    /// demand for the shares).
    pub fn admit(&self, worker: usize, user: usize, now: Instant) -> Admit {
        if self.spec(user).is_none() {
            return Admit::Go;
        }
        self.shares.note_demand(worker, user as u32);
        self.with(worker, user, now, |l, spec, share| l.admit(spec, share, now)).unwrap_or(Admit::Go)
    }

    /// Charges an admitted request of `bytes` inbound bytes to `user`.
    pub fn charge(&self, worker: usize, user: usize, bytes: usize, now: Instant) {
        self.with(worker, user, now, |l, spec, _| l.charge(spec, bytes));
    }

    /// Moves each user's worker shares toward recent demand (control
    /// thread, every `REBALANCE_EVERY`).
    pub fn rebalance(&self) {
        self.shares.rebalance();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_user_has_its_own_buckets_and_unlimited_users_always_go() {
        let t0 = Instant::now();
        let spec = RateSpec { requests: Some(10.0), bytes: None, burst: 1.0 };
        let u = UserLimits::new(vec![Some(spec), None, Some(spec)], 1, t0);
        let drain = |user| {
            (0..100).take_while(|_| u.admit(0, user, t0) == Admit::Go && (u.charge(0, user, 1, t0), true).1).count()
        };
        assert_eq!(drain(0), 10, "user 0: its burst");
        assert_eq!(drain(1), 100, "user 1: unlimited");
        assert_eq!(drain(2), 10, "user 2: not drained by user 0");
        let Admit::Wait(at) = u.admit(0, 0, t0) else { panic!("empty") };
        assert_eq!(at, t0 + Duration::from_millis(100));
        assert_eq!(u.admit(0, 0, at), Admit::Go, "refilled from the stored last refill");
        assert_eq!(u.admit(0, 7, t0), Admit::Go, "no such user: not limited");
    }

    #[test]
    fn workers_refill_at_their_share_and_shares_follow_demand() {
        let t0 = Instant::now();
        let spec = RateSpec { requests: Some(100.0), bytes: None, burst: 1.0 };
        let u = UserLimits::new(vec![Some(spec)], 2, t0);
        let drain =
            |w, at| (0..1000).take_while(|_| u.admit(w, 0, at) == Admit::Go && (u.charge(w, 0, 1, at), true).1).count();
        assert_eq!(drain(0, t0), 50, "1/N of the burst");
        // Only worker 0 asked: after a rebalance it refills at ~98.5% of
        // the rate and worker 1 keeps the floor (capacity: one request).
        u.rebalance();
        let one_sec = t0 + Duration::from_secs(1);
        let got = drain(0, one_sec);
        assert!((96..=99).contains(&got), "{got}");
        assert_eq!(drain(1, one_sec), 1);
    }
}
