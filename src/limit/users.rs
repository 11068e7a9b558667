//! Per-user rate limits (`[[user]] limits = { requests, bytes, burst }`)
//! and per-user counters: one request and one byte bucket, and one set of
//! counters, per user per worker, keyed by the user's index in the
//! process-wide `[[user]]` list (`acl::User::id`).
//!
//! Owner: the control thread builds one `UserLimits` per config whose
//! users or limits changed (users are a bounded, configured set), and
//! shares it with the workers through the snapshot. A user's slot on
//! worker `w` is shared by every pool session of that worker (a user
//! limit covers all the pools it may use), and is written only by worker
//! `w`: a relaxed load, the arithmetic, a relaxed store. Single writer,
//! so no lock, no read-modify-write atomic and no lost update; the
//! control thread only reads demand and writes shares (`ShareTable`, as
//! for per-IP limits, with one slot per user), and admin only loads.
//!
//! Reload: a new `UserLimits` starts with full buckets, and takes the
//! previous one's counter totals of the users it keeps (by name) as its
//! base, so the counters stay monotonic; a user removed by a reload
//! drops out. Requests counted by a worker still on the old snapshot
//! after that copy (at most the ones in flight at the swap) are lost.
//!
//! Invariants: `names.len() == specs.len()` users; slot `w * users + u`
//! belongs to worker `w`; a user index past the list (a stale id) and a
//! user without limits always admit; counters only grow.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::share_table::ShareTable;
use super::{Admit, Limiter, RateSpec};

/// One user's totals, summed over workers (admin).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserTotals {
    /// Requests decoded from a client that was this user.
    pub requests: u64,
    /// Their inbound bytes, as decoded.
    pub bytes: u64,
    /// Requests refused by the user's ACL (NOPERM).
    pub denied: u64,
    /// Requests delayed, refused or closed by the user's limits.
    pub limited: u64,
}

/// One user's buckets and counters on one worker (a cache line of its
/// own, so workers never write the same line).
#[derive(Debug)]
#[repr(align(64))]
struct Slot {
    req: AtomicU64,
    bytes: AtomicU64,
    /// Nanoseconds from `UserLimits::base` to the last refill; `u64::MAX`
    /// before the first request (the buckets start full then).
    last: AtomicU64,
    requests: AtomicU64,
    in_bytes: AtomicU64,
    denied: AtomicU64,
    limited: AtomicU64,
}

/// Adds `n` to a counter only this thread writes (no RMW atomic).
#[inline]
fn bump(a: &AtomicU64, n: u64) {
    a.store(a.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

#[derive(Debug)]
pub struct UserLimits {
    names: Vec<String>,
    specs: Vec<Option<RateSpec>>,
    /// Totals carried over from the previous `UserLimits` (by user index).
    carried: Vec<UserTotals>,
    base: Instant,
    slots: Box<[Slot]>,
    shares: ShareTable,
}

impl UserLimits {
    /// Limits for `users` (name and limits, by index) on `workers` workers;
    /// counters start from `prev`'s totals of the same names.
    pub fn new(
        users: Vec<(String, Option<RateSpec>)>,
        workers: usize,
        now: Instant,
        prev: Option<&UserLimits>,
    ) -> UserLimits {
        let (names, specs): (Vec<String>, Vec<Option<RateSpec>>) = users.into_iter().unzip();
        let n = names.len().max(1) * workers.max(1);
        let z = || AtomicU64::new(0);
        let slot = || Slot {
            req: z(),
            bytes: z(),
            last: AtomicU64::new(u64::MAX),
            requests: z(),
            in_bytes: z(),
            denied: z(),
            limited: z(),
        };
        let carried = names
            .iter()
            .map(|name| prev.and_then(|p| p.totals().find(|(n, _)| *n == name).map(|(_, t)| t)).unwrap_or_default())
            .collect();
        UserLimits {
            shares: ShareTable::new(workers, names.len()),
            names,
            specs,
            carried,
            base: now,
            slots: (0..n).map(|_| slot()).collect(),
        }
    }

    /// Whether this holds exactly `users` on `workers` workers (a reload
    /// that changed neither keeps it, buckets and all).
    pub fn same(&self, users: &[(String, Option<RateSpec>)], workers: usize) -> bool {
        self.shares.workers() == workers.max(1)
            && self.names.len() == users.len()
            && users.iter().zip(self.names.iter().zip(&self.specs)).all(|((n, s), (n2, s2))| n == n2 && s == s2)
    }

    /// Whether any user has limits (without, sessions only count).
    pub fn any_limited(&self) -> bool {
        self.specs.iter().any(Option::is_some)
    }

    /// The limits of user `user` (`None`: unlimited, or no such user).
    pub fn spec(&self, user: u32) -> Option<&RateSpec> {
        self.specs.get(user as usize)?.as_ref()
    }

    /// Worker `worker`'s slot of `user` (`None`: no such user).
    fn slot(&self, worker: usize, user: u32) -> Option<&Slot> {
        let u = user as usize;
        if u >= self.names.len() {
            return None;
        }
        let n = self.shares.workers();
        // Workers number themselves below `n`; the modulo is only a guard.
        let w = if worker < n { worker } else { worker % n.max(1) };
        self.slots.get(w * self.names.len() + u)
    }

    /// Loads worker `worker`'s limiter of `user`, lets `f` use it, stores
    /// it back. Only worker `worker` may call this for its slots.
    fn with<T>(
        &self,
        worker: usize,
        user: u32,
        now: Instant,
        f: impl FnOnce(&mut Limiter, &RateSpec, f64) -> T,
    ) -> Option<T> {
        let spec = self.spec(user)?;
        let s = self.slot(worker, user)?;
        let share = self.shares.share(worker, user);
        let last = s.last.load(Ordering::Relaxed);
        // `now` as nanoseconds from `base`, computed once: the limiter's
        // last refill after `f` is `max(last, now)` (`Limiter::refill`),
        // so it is stored without converting the limiter's `Instant` back.
        let now_ns = u64::try_from(now.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX - 1);
        let mut lim = if last == u64::MAX {
            Limiter::new(spec, share, now)
        } else {
            let at = self.base + Duration::from_nanos(last);
            let load = |a: &AtomicU64| f64::from_bits(a.load(Ordering::Relaxed));
            Limiter::from_parts(load(&s.req), load(&s.bytes), at)
        };
        let out = f(&mut lim, spec, share);
        let (req, bytes, _) = lim.parts();
        s.req.store(req.to_bits(), Ordering::Relaxed);
        s.bytes.store(bytes.to_bits(), Ordering::Relaxed);
        let ns = if last == u64::MAX { now_ns } else { last.max(now_ns) };
        s.last.store(ns.min(u64::MAX - 1), Ordering::Relaxed);
        Some(out)
    }

    /// Whether a request of `user` may go now on `worker` (counted as
    /// demand for the shares; a refusal counts as limited).
    pub fn admit(&self, worker: usize, user: u32, now: Instant) -> Admit {
        if self.spec(user).is_none() {
            return Admit::Go;
        }
        self.shares.note_demand(worker, user);
        let out = self.with(worker, user, now, |l, spec, share| l.admit(spec, share, now)).unwrap_or(Admit::Go);
        if let (Admit::Wait(_), Some(s)) = (out, self.slot(worker, user)) {
            bump(&s.limited, 1);
        }
        out
    }

    /// Counts `requests` requests of `bytes` inbound bytes in all of
    /// `user` without touching its buckets (what `charge` does for a user
    /// without limits; the caller knows no user here has any).
    #[inline]
    pub fn count(&self, worker: usize, user: u32, requests: u64, bytes: u64) {
        if let Some(s) = self.slot(worker, user) {
            bump(&s.requests, requests);
            bump(&s.in_bytes, bytes);
        }
    }

    /// Charges (and counts) a request of `bytes` inbound bytes of `user`
    /// that went ahead.
    pub fn charge(&self, worker: usize, user: u32, bytes: usize, now: Instant) {
        let Some(s) = self.slot(worker, user) else { return };
        bump(&s.requests, 1);
        bump(&s.in_bytes, bytes as u64);
        let Some(spec) = self.spec(user) else { return };
        if s.last.load(Ordering::Relaxed) == u64::MAX {
            // Never admitted here yet: start from full buckets.
            self.with(worker, user, now, |l, spec, _| l.charge(spec, bytes));
            return;
        }
        // A charge takes tokens and refills nothing (`Limiter::charge`):
        // no clock arithmetic, just the two buckets.
        let take = |a: &AtomicU64, n: f64| {
            a.store((f64::from_bits(a.load(Ordering::Relaxed)) - n).to_bits(), Ordering::Relaxed)
        };
        if spec.requests.is_some() {
            take(&s.req, 1.0);
        }
        if spec.bytes.is_some() {
            take(&s.bytes, bytes as f64);
        }
    }

    /// Counts a request of `user` refused by its ACL.
    pub fn note_denied(&self, worker: usize, user: u32) {
        if let Some(s) = self.slot(worker, user) {
            bump(&s.denied, 1);
        }
    }

    /// Each user's name and totals over every worker, carried ones
    /// included (admin, on scrape).
    pub fn totals(&self) -> impl Iterator<Item = (&str, UserTotals)> + '_ {
        let n = self.names.len();
        self.names.iter().enumerate().map(move |(u, name)| {
            let mut t = self.carried.get(u).copied().unwrap_or_default();
            for s in self.slots.iter().skip(u).step_by(n.max(1)) {
                let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
                t.requests = t.requests.wrapping_add(get(&s.requests));
                t.bytes = t.bytes.wrapping_add(get(&s.in_bytes));
                t.denied = t.denied.wrapping_add(get(&s.denied));
                t.limited = t.limited.wrapping_add(get(&s.limited));
            }
            (name.as_str(), t)
        })
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

    fn named(specs: Vec<Option<RateSpec>>) -> Vec<(String, Option<RateSpec>)> {
        specs.into_iter().enumerate().map(|(i, s)| (format!("u{i}"), s)).collect()
    }

    #[test]
    fn each_user_has_its_own_buckets_and_unlimited_users_always_go() {
        let t0 = Instant::now();
        let spec = RateSpec { requests: Some(10.0), bytes: None, burst: 1.0 };
        let u = UserLimits::new(named(vec![Some(spec), None, Some(spec)]), 1, t0, None);
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
        let u = UserLimits::new(named(vec![Some(spec)]), 2, t0, None);
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

    #[test]
    fn counters_sum_over_workers_and_survive_a_reload_by_name() {
        let t0 = Instant::now();
        let spec = RateSpec { requests: Some(1.0), bytes: None, burst: 1.0 };
        let a = UserLimits::new(named(vec![Some(spec), None]), 2, t0, None);
        a.charge(0, 0, 10, t0);
        assert!(matches!(a.admit(0, 0, t0), Admit::Wait(_)), "u0's one token is gone");
        a.charge(1, 1, 5, t0);
        a.charge(0, 1, 7, t0);
        a.note_denied(1, 1);
        a.note_denied(0, 9);
        a.charge(0, 9, 1, t0);
        let t: Vec<_> = a.totals().collect();
        assert_eq!(t[0], ("u0", UserTotals { requests: 1, bytes: 10, denied: 0, limited: 1 }));
        assert_eq!(t[1], ("u1", UserTotals { requests: 2, bytes: 12, denied: 1, limited: 0 }));
        // A reload keeps u1 (now first), drops u0, adds u2.
        let users = vec![("u1".to_owned(), None), ("u2".to_owned(), Some(spec))];
        assert!(!a.same(&users, 2));
        let b = UserLimits::new(users.clone(), 2, t0, Some(&a));
        assert!(b.same(&users, 2) && !b.same(&users, 3));
        b.charge(1, 0, 1, t0);
        let t: Vec<_> = b.totals().collect();
        assert_eq!(
            t,
            vec![("u1", UserTotals { requests: 3, bytes: 13, denied: 1, limited: 0 }), ("u2", UserTotals::default()),]
        );
    }
}
