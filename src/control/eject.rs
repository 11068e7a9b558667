//! nutcracker's `auto_eject_hosts` as a sans-IO state machine.
//!
//! Owner: the control thread. Fed by failure reports from workers and by
//! success reports (a backend connected or answered); time is passed in.
//! Rules, from nutcracker's `server_failure` / `server_ok`:
//! - each failure bumps a consecutive-failure count; any success resets it;
//! - at `server_failure_limit` the server is ejected until
//!   `now + server_retry_timeout` (the count restarts at 0), and the caller
//!   publishes a ring without it;
//! - when that time passes the server is live again (nutcracker's
//!   `next_rebuild`), and the caller publishes a ring with it; if it still
//!   fails, `server_failure_limit` more failures eject it again.
//!
//! Only workers' reports move the failure count: a successful health probe
//! does not reset it, since a backend can accept connections while its
//! requests time out (and a failure report pulls a probe forward, which
//! would otherwise reset every streak at once). Workers must therefore send
//! `BackendOk` when a backend connects or answers.
//!
//! Keyed by backend stat id, so state survives a reload that keeps the
//! backend. Invariant: `handle_*` and `poll_*` return true exactly when
//! the set of ejected servers changed, i.e. when a new ring is needed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The pool settings that drive ejection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EjectPolicy {
    pub failure_limit: u32,
    pub retry_timeout: Duration,
}

#[derive(Debug, Clone, Copy, Default)]
struct ServerState {
    failures: u32,
    /// Out of the ring until then.
    ejected_until: Option<Instant>,
}

/// Ejection state of every backend of auto-eject pools.
#[derive(Debug, Default)]
pub struct Ejector {
    servers: HashMap<usize, ServerState>,
}

impl Ejector {
    /// A request or connection to `sid` failed. Returns true if this
    /// ejected it (publish a ring without it).
    pub fn handle_failure(&mut self, sid: usize, policy: EjectPolicy, now: Instant) -> bool {
        let s = self.servers.entry(sid).or_default();
        if s.ejected_until.is_some_and(|t| t > now) {
            // Already out; failures of requests sent before the ejection
            // do not extend it.
            return false;
        }
        s.failures += 1;
        if s.failures < policy.failure_limit {
            return false;
        }
        s.failures = 0;
        s.ejected_until = Some(now + policy.retry_timeout);
        true
    }

    /// `sid` connected or answered: its failure streak ends.
    pub fn handle_success(&mut self, sid: usize) {
        if let Some(s) = self.servers.get_mut(&sid) {
            s.failures = 0;
        }
    }

    /// Puts back every server whose retry time has come. Returns true if
    /// any came back (publish a ring with them).
    pub fn poll_restore(&mut self, now: Instant) -> bool {
        let mut changed = false;
        for s in self.servers.values_mut() {
            if s.ejected_until.is_some_and(|t| t <= now) {
                s.ejected_until = None;
                changed = true;
            }
        }
        changed
    }

    /// Whether `sid` is ejected at `now`.
    pub fn is_ejected(&self, sid: usize, now: Instant) -> bool {
        self.servers.get(&sid).and_then(|s| s.ejected_until).is_some_and(|t| t > now)
    }

    /// The next time `poll_restore` has work, if any server is ejected.
    pub fn next_restore(&self) -> Option<Instant> {
        self.servers.values().filter_map(|s| s.ejected_until).min()
    }

    /// Forgets backends no longer configured (after a reload).
    pub fn retain(&mut self, keep: impl Fn(usize) -> bool) {
        self.servers.retain(|&sid, _| keep(sid));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: EjectPolicy = EjectPolicy { failure_limit: 2, retry_timeout: Duration::from_secs(30) };

    #[test]
    fn ejects_after_the_limit_of_consecutive_failures() {
        let t = Instant::now();
        let mut e = Ejector::default();
        assert!(!e.handle_failure(7, POLICY, t));
        e.handle_success(7);
        assert!(!e.handle_failure(7, POLICY, t), "a success resets the streak");
        assert!(e.handle_failure(7, POLICY, t), "second consecutive failure ejects");
        assert!(e.is_ejected(7, t + Duration::from_secs(29)));
        assert!(!e.is_ejected(8, t));
        assert_eq!(e.next_restore(), Some(t + Duration::from_secs(30)));
        // Late failures of requests already in flight do not extend it.
        assert!(!e.handle_failure(7, POLICY, t + Duration::from_secs(1)));
        assert_eq!(e.next_restore(), Some(t + Duration::from_secs(30)));
    }

    #[test]
    fn comes_back_after_retry_timeout_and_can_be_ejected_again() {
        let t = Instant::now();
        let mut e = Ejector::default();
        e.handle_failure(1, POLICY, t);
        assert!(e.handle_failure(1, POLICY, t));
        assert!(!e.poll_restore(t + Duration::from_secs(10)), "too early");
        let back = t + Duration::from_secs(30);
        assert!(e.poll_restore(back));
        assert!(!e.is_ejected(1, back));
        assert_eq!(e.next_restore(), None);
        assert!(!e.poll_restore(back), "nothing left to restore");
        // Still broken: the limit applies afresh.
        assert!(!e.handle_failure(1, POLICY, back));
        assert!(e.handle_failure(1, POLICY, back));
    }

    #[test]
    fn limit_one_ejects_at_once_and_retain_forgets() {
        let t = Instant::now();
        let mut e = Ejector::default();
        let one = EjectPolicy { failure_limit: 1, ..POLICY };
        assert!(e.handle_failure(3, one, t));
        e.retain(|sid| sid != 3);
        assert!(!e.is_ejected(3, t));
    }
}
