//! What a worker does when `accept` fails because the process (EMFILE) or
//! the system (ENFILE) is out of file descriptors, or the kernel out of
//! memory for one: pause accepting and retry after a timer, doubling the
//! pause from 10 ms to 1 s, back to 10 ms after an accept succeeds.
//!
//! Why: the queued connection that failed is still queued, so retrying at
//! once fails at once. Before this, the io_uring driver re-armed its
//! multishot accept on every failure and spun at 100% CPU writing a log
//! line per try (2.47M lines in 3 s); the epoll driver logged a line per
//! new connection and, edge-triggered, never came back to the connections
//! already queued.
//!
//! Sans-IO: time is passed in, nothing here touches a socket or the log.
//! Both drivers own one per worker (in `WorkerCore`, since descriptors are a
//! process-wide resource, every listener of the worker pauses together).
//! Invariants: while paused no accept is armed or attempted; the refusal
//! count is reported (for the log) at most once per `LOG_EVERY`, and every
//! refusal is in some report or still pending.

use std::time::{Duration, Instant};

/// The first pause, and the one after an accept succeeded.
pub const MIN_PAUSE: Duration = Duration::from_millis(10);
/// The longest pause.
pub const MAX_PAUSE: Duration = Duration::from_secs(1);
/// At most one log line per this interval.
pub const LOG_EVERY: Duration = Duration::from_secs(1);

/// Whether an accept error means "out of descriptors or kernel memory":
/// retrying before something is freed cannot succeed.
pub fn is_exhaustion(errno: i32) -> bool {
    matches!(errno, libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
}

/// A report for the log: how many accepts were refused since the last
/// one, the errno of the latest, and the length of the latest pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusals {
    pub count: u64,
    pub errno: i32,
    pub pause: Duration,
}

#[derive(Debug)]
pub struct AcceptBackoff {
    /// The length of the next pause.
    next: Duration,
    /// The current pause ends then.
    paused: Option<Instant>,
    /// The length of the latest pause (for reports).
    last_pause: Duration,
    /// Refusals not reported yet, and the latest errno.
    pending: u64,
    errno: i32,
    last_report: Option<Instant>,
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        AcceptBackoff {
            next: MIN_PAUSE,
            paused: None,
            last_pause: Duration::ZERO,
            pending: 0,
            errno: 0,
            last_report: None,
        }
    }
}

impl AcceptBackoff {
    /// An accept failed for lack of descriptors or memory. Starts a pause
    /// unless one is running (other listeners' failures of the same moment
    /// count but do not lengthen it). Returns when accepting may resume.
    pub fn handle_exhausted(&mut self, errno: i32, now: Instant) -> Instant {
        self.pending += 1;
        self.errno = errno;
        if let Some(until) = self.paused {
            return until;
        }
        self.last_pause = self.next;
        self.next = (self.next * 2).min(MAX_PAUSE);
        let until = now + self.last_pause;
        self.paused = Some(until);
        until
    }

    /// An accept succeeded: the next pause starts short again.
    pub fn handle_accepted(&mut self) {
        self.next = MIN_PAUSE;
    }

    /// True while accepts must not be armed or attempted.
    pub fn is_paused(&self, now: Instant) -> bool {
        self.paused.is_some_and(|until| now < until)
    }

    /// When the current pause ends (`None`: not paused).
    pub fn resume_at(&self) -> Option<Instant> {
        self.paused
    }

    /// True once, when a pause has ended: the driver re-arms (or retries)
    /// every listener.
    pub fn poll_resume(&mut self, now: Instant) -> bool {
        match self.paused {
            Some(until) if now >= until => {
                self.paused = None;
                true
            }
            _ => false,
        }
    }

    /// Refusals to log now, if any are pending and the last report is at
    /// least `LOG_EVERY` old.
    pub fn poll_report(&mut self, now: Instant) -> Option<Refusals> {
        if self.pending == 0 || self.last_report.is_some_and(|t| now.duration_since(t) < LOG_EVERY) {
            return None;
        }
        self.last_report = Some(now);
        let r = Refusals { count: self.pending, errno: self.errno, pause: self.last_pause };
        self.pending = 0;
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn pauses_double_to_a_second_and_reset_after_an_accept() {
        let t0 = Instant::now();
        let mut b = AcceptBackoff::default();
        assert!(!b.is_paused(t0));
        let mut now = t0;
        let mut pauses = Vec::new();
        for _ in 0..9 {
            let until = b.handle_exhausted(libc::EMFILE, now);
            pauses.push(until - now);
            assert!(b.is_paused(now));
            assert!(!b.poll_resume(now), "no resume before the pause ends");
            now = until;
            assert!(!b.is_paused(now));
            assert!(b.poll_resume(now));
            assert!(!b.poll_resume(now), "resume is reported once");
        }
        let want: Vec<Duration> = [10, 20, 40, 80, 160, 320, 640, 1000, 1000].into_iter().map(ms).collect();
        assert_eq!(pauses, want);
        b.handle_accepted();
        let until = b.handle_exhausted(libc::ENFILE, now);
        assert_eq!(until - now, MIN_PAUSE);
    }

    #[test]
    fn failures_during_a_pause_count_but_do_not_extend_it() {
        let t0 = Instant::now();
        let mut b = AcceptBackoff::default();
        let until = b.handle_exhausted(libc::EMFILE, t0);
        // Another listener's failure of the same moment, a little later.
        assert_eq!(b.handle_exhausted(libc::EMFILE, t0 + ms(5)), until);
        assert_eq!(b.resume_at(), Some(until));
        let r = b.poll_report(t0 + ms(5)).expect("first report at once");
        assert_eq!((r.count, r.errno, r.pause), (2, libc::EMFILE, MIN_PAUSE));
        // The next pause is the doubled one: the second failure did not
        // double it again.
        assert!(b.poll_resume(until));
        assert_eq!(b.handle_exhausted(libc::EMFILE, until) - until, ms(20));
    }

    #[test]
    fn reports_come_at_most_once_a_second_and_lose_no_count() {
        let t0 = Instant::now();
        let mut b = AcceptBackoff::default();
        let mut now = t0;
        let mut reported = 0;
        let mut reports = 0;
        // 3 s of failures every millisecond (as a spinning driver would).
        for _ in 0..3000 {
            b.handle_exhausted(libc::EMFILE, now);
            b.poll_resume(now);
            if let Some(r) = b.poll_report(now) {
                reports += 1;
                reported += r.count;
            }
            now += ms(1);
        }
        assert_eq!(reports, 3, "one report per second");
        assert!(b.poll_report(now).is_some_and(|r| reported + r.count == 3000), "every refusal reported");
        assert_eq!(b.poll_report(now + ms(5000)), None, "nothing pending, nothing to report");
    }

    #[test]
    fn only_resource_exhaustion_pauses() {
        for e in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert!(is_exhaustion(e));
        }
        for e in [libc::ECONNABORTED, libc::EINTR, libc::EAGAIN, libc::EPERM, libc::EINVAL] {
            assert!(!is_exhaustion(e));
        }
    }
}
