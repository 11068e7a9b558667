//! The sans-IO topology refresh state machine of one cluster pool: when to
//! refresh, how reports merge, how failures back off. Time is passed in;
//! the caller does the I/O and reports the outcome.
//!
//! Rules:
//! - a refresh is due every `interval`, or every `degraded_interval` while
//!   the last map was degraded (a slot without a healthy master, or a node
//!   reported dead that the cluster still lists as a master);
//! - a report (MOVED, dead node) makes a refresh due at once, but never
//!   sooner than `min_gap` after the previous one started, so a burst of
//!   reports from every worker becomes a single refresh; reports that
//!   arrive while a refresh runs cause one more refresh after it;
//! - a failed refresh (no seed reachable, bad reply) keeps the last good
//!   map and retries after `backoff_base * 2^(failures-1)`, capped at
//!   `backoff_max`.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    pub interval: Duration,
    pub degraded_interval: Duration,
    pub min_gap: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl RefreshPolicy {
    /// The policy for a pool's `refresh_interval`.
    pub fn new(interval: Duration) -> RefreshPolicy {
        RefreshPolicy {
            interval,
            degraded_interval: interval.min(Duration::from_millis(500)),
            min_gap: interval.min(Duration::from_millis(100)),
            backoff_base: Duration::from_millis(100),
            backoff_max: interval.max(Duration::from_secs(1)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RefreshMachine {
    policy: RefreshPolicy,
    next: Instant,
    last_start: Option<Instant>,
    in_flight: bool,
    /// A report came in while a refresh ran.
    pending: bool,
    failures: u32,
}

impl RefreshMachine {
    /// A machine whose first refresh is due at `now`.
    pub fn new(policy: RefreshPolicy, now: Instant) -> RefreshMachine {
        RefreshMachine { policy, next: now, last_start: None, in_flight: false, pending: false, failures: 0 }
    }

    /// When the next refresh is due (meaningless while one runs).
    pub fn next_due(&self) -> Instant {
        self.next
    }

    /// Consecutive failed refreshes.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// True (and the refresh counts as started) if one is due at `now`.
    pub fn poll_start(&mut self, now: Instant) -> bool {
        if self.in_flight || now < self.next {
            return false;
        }
        self.in_flight = true;
        self.pending = false;
        self.last_start = Some(now);
        true
    }

    /// The earliest a report-triggered refresh may start.
    fn soonest(&self, now: Instant) -> Instant {
        self.last_start.map_or(now, |t| (t + self.policy.min_gap).max(now))
    }

    /// A worker reported a MOVED or a dead node.
    pub fn handle_report(&mut self, now: Instant) {
        if self.in_flight {
            self.pending = true;
        } else if self.failures == 0 {
            self.next = self.next.min(self.soonest(now));
        }
        // While failing, the backoff decides: reports cannot make an
        // unreachable cluster reachable sooner.
    }

    /// The refresh that started last succeeded; `degraded` as above.
    pub fn handle_success(&mut self, now: Instant, degraded: bool) {
        self.in_flight = false;
        self.failures = 0;
        let every = if degraded { self.policy.degraded_interval } else { self.policy.interval };
        self.next = now + every;
        if std::mem::take(&mut self.pending) {
            self.next = self.next.min(self.soonest(now));
        }
    }

    /// The refresh that started last failed: back off.
    pub fn handle_failure(&mut self, now: Instant) {
        self.in_flight = false;
        self.pending = false;
        self.failures = self.failures.saturating_add(1);
        let exp = self.failures.saturating_sub(1).min(20);
        let wait = self.policy.backoff_base.saturating_mul(1 << exp).min(self.policy.backoff_max);
        self.next = now + wait;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn machine(t0: Instant) -> RefreshMachine {
        RefreshMachine::new(RefreshPolicy::new(Duration::from_secs(5)), t0)
    }

    #[test]
    fn periodic_and_degraded_cadence() {
        let t0 = Instant::now();
        let mut m = machine(t0);
        assert!(m.poll_start(t0), "the first refresh is due at once");
        assert!(!m.poll_start(t0), "not twice");
        m.handle_success(t0 + ms(10), false);
        assert_eq!(m.next_due(), t0 + ms(5010));
        assert!(!m.poll_start(t0 + ms(5009)));
        assert!(m.poll_start(t0 + ms(5010)));
        m.handle_success(t0 + ms(5020), true);
        assert_eq!(m.next_due(), t0 + ms(5520), "degraded maps refresh every 500ms");
    }

    #[test]
    fn a_burst_of_reports_is_one_refresh() {
        let t0 = Instant::now();
        let mut m = machine(t0);
        assert!(m.poll_start(t0));
        m.handle_success(t0, false);
        // Forty workers' reports within 30ms: one refresh at the gap.
        let mut started = 0;
        for i in 0..40 {
            let now = t0 + ms(20 + i);
            m.handle_report(now);
            if m.poll_start(now) {
                started += 1;
                m.handle_success(now + ms(1), false);
            }
        }
        assert_eq!(started, 0, "within min_gap of the last refresh nothing starts");
        assert_eq!(m.next_due(), t0 + ms(100));
        assert!(m.poll_start(t0 + ms(100)));
        m.handle_success(t0 + ms(105), false);
        assert_eq!(m.next_due(), t0 + ms(5105), "no second refresh for the same burst");
    }

    #[test]
    fn reports_during_a_refresh_cause_one_more() {
        let t0 = Instant::now();
        let mut m = machine(t0);
        m.poll_start(t0);
        m.handle_report(t0 + ms(5));
        m.handle_report(t0 + ms(6));
        m.handle_success(t0 + ms(50), false);
        assert_eq!(m.next_due(), t0 + ms(100), "at min_gap after the refresh started");
        assert!(m.poll_start(t0 + ms(100)));
        m.handle_success(t0 + ms(101), false);
        assert_eq!(m.next_due(), t0 + ms(5101));
    }

    #[test]
    fn failures_back_off_and_keep_reports_from_hammering() {
        let t0 = Instant::now();
        let mut m = machine(t0);
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..8 {
            assert!(m.poll_start(now));
            m.handle_failure(now);
            waits.push(m.next_due() - now);
            m.handle_report(now);
            assert_eq!(m.next_due() - now, *waits.last().unwrap(), "reports do not shorten a backoff");
            now = m.next_due();
        }
        assert_eq!(waits, [ms(100), ms(200), ms(400), ms(800), ms(1600), ms(3200), ms(5000), ms(5000)]);
        assert_eq!(m.failures(), 8);
        assert!(m.poll_start(now));
        m.handle_success(now, false);
        assert_eq!((m.failures(), m.next_due()), (0, now + ms(5000)));
    }
}
