//! A pair of token buckets (requests and bytes) refilled from the `now`
//! the caller passes in.
//!
//! A bucket's rate is the configured rate times this core's share of it
//! (`shares`), read at each refill, so a rebalanced share takes effect at
//! the next request. Capacity is `burst` x that rate, but at least one
//! token, so a core with a tiny share still admits a request now and then
//! instead of never.
//!
//! Invariant: `tokens <= capacity` after every refill; the byte bucket may
//! be negative (debt) after a charge; the request bucket only after a
//! `charge_many` (a mongos read carries any number of requests), never
//! after `charge` (a request is admitted only with a whole token in it).

use std::time::{Duration, Instant};

use super::RateSpec;

/// The shortest wait `admit` asks for: a timer per sub-millisecond gap
/// would cost more than the precision is worth.
const MIN_WAIT: Duration = Duration::from_millis(1);
/// The longest: a rebalance period (`share_table::REBALANCE_EVERY`); a
/// client still short of tokens then simply asks again.
const MAX_WAIT: Duration = super::share_table::REBALANCE_EVERY;

/// `admit`'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Tokens are there: serve the request, then `charge` it.
    Go,
    /// Empty: tokens are back at this instant.
    Wait(Instant),
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
}

/// The request and byte buckets of one key (an IP on one core, or a user).
#[derive(Debug, Clone, Copy)]
pub struct Limiter {
    req: Bucket,
    bytes: Bucket,
    /// The last refill.
    last: Instant,
}

/// Capacity of a bucket refilled at `rate` (tokens/s).
fn capacity(rate: f64, burst: f64) -> f64 {
    (rate * burst).max(1.0)
}

impl Limiter {
    /// Full buckets for `spec` at `share` of its rates.
    pub fn new(spec: &RateSpec, share: f64, now: Instant) -> Limiter {
        let full = |r: Option<f64>| Bucket { tokens: r.map_or(0.0, |r| capacity(r * share, spec.burst)) };
        Limiter { req: full(spec.requests), bytes: full(spec.bytes), last: now }
    }

    fn refill(&mut self, spec: &RateSpec, share: f64, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        for (b, rate) in [(&mut self.req, spec.requests), (&mut self.bytes, spec.bytes)] {
            if let Some(r) = rate {
                let r = r * share;
                b.tokens = (b.tokens + dt * r).min(capacity(r, spec.burst));
            }
        }
    }

    /// Whether a request may go now (refilling first), or when it may.
    pub fn admit(&mut self, spec: &RateSpec, share: f64, now: Instant) -> Admit {
        self.refill(spec, share, now);
        // Seconds until each bucket is back where it admits again.
        let need = |tokens: f64, want: f64, rate: Option<f64>| match rate {
            Some(r) if tokens < want => {
                let r = r * share;
                if r > 0.0 {
                    (want - tokens) / r
                } else {
                    1.0
                }
            }
            _ => 0.0,
        };
        // A byte bucket admits above zero: `f64::MIN_POSITIVE` is "just
        // above zero" for the wait.
        let wait =
            need(self.req.tokens, 1.0, spec.requests).max(need(self.bytes.tokens, f64::MIN_POSITIVE, spec.bytes));
        if wait <= 0.0 {
            return Admit::Go;
        }
        // At most one rebalance away: the wait was computed at this core's
        // current share, which the next rebalance may raise (a client that
        // just moved here from another core starts on the floor share, and
        // would otherwise wait as if it kept it).
        let wait = Duration::try_from_secs_f64(wait).unwrap_or(MAX_WAIT).clamp(MIN_WAIT, MAX_WAIT);
        Admit::Wait(now + wait)
    }

    /// The buckets' tokens and last refill, to keep them elsewhere
    /// (`users`: in per-worker atomics).
    pub(super) fn parts(&self) -> (f64, f64, Instant) {
        (self.req.tokens, self.bytes.tokens, self.last)
    }

    pub(super) fn from_parts(req: f64, bytes: f64, last: Instant) -> Limiter {
        Limiter { req: Bucket { tokens: req }, bytes: Bucket { tokens: bytes }, last }
    }

    /// Takes an admitted request of `bytes` bytes from the buckets.
    pub fn charge(&mut self, spec: &RateSpec, bytes: usize) {
        self.charge_many(spec, 1, bytes);
    }

    /// Takes `requests` requests of `bytes` bytes in all (a mongos read,
    /// charged after it was forwarded: the request bucket may go into debt
    /// too, and the client then waits it off).
    pub fn charge_many(&mut self, spec: &RateSpec, requests: u64, bytes: usize) {
        if spec.requests.is_some() {
            self.req.tokens -= requests as f64;
        }
        if spec.bytes.is_some() {
            self.bytes.tokens -= bytes as f64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(requests: Option<f64>, bytes: Option<f64>, burst: f64) -> RateSpec {
        RateSpec { requests, bytes, burst }
    }

    /// Requests admitted at `rate` between t0 and t0 + `secs`, one tried
    /// every millisecond.
    fn admitted(l: &mut Limiter, s: &RateSpec, share: f64, t0: Instant, secs: u64, size: usize) -> u64 {
        let mut n = 0;
        for ms in 0..secs * 1000 {
            if l.admit(s, share, t0 + Duration::from_millis(ms)) == Admit::Go {
                l.charge(s, size);
                n += 1;
            }
        }
        n
    }

    #[test]
    fn burst_then_the_rate() {
        let s = spec(Some(100.0), None, 2.0);
        let t0 = Instant::now();
        let mut l = Limiter::new(&s, 1.0, t0);
        // 200 at once (burst 2 x 100/s), then 100 a second.
        let burst = (0..1000).take_while(|_| l.admit(&s, 1.0, t0) == Admit::Go && (l.charge(&s, 1), true).1).count();
        assert_eq!(burst, 200);
        let Admit::Wait(at) = l.admit(&s, 1.0, t0) else { panic!("empty") };
        assert_eq!(at, t0 + Duration::from_millis(10));
        let n = admitted(&mut l, &s, 1.0, t0 + Duration::from_millis(1), 10, 1);
        assert!((995..=1001).contains(&n), "{n}");
    }

    #[test]
    fn a_share_scales_rate_and_capacity() {
        let s = spec(Some(1000.0), None, 1.0);
        let t0 = Instant::now();
        let mut l = Limiter::new(&s, 0.25, t0);
        let n = admitted(&mut l, &s, 0.25, t0, 4, 1);
        // 250 of burst, then 250/s for 4 s.
        assert!((1240..=1251).contains(&n), "{n}");
    }

    #[test]
    fn a_tiny_share_still_admits_at_its_rate() {
        let s = spec(Some(10.0), None, 1.0);
        let t0 = Instant::now();
        let mut l = Limiter::new(&s, 0.01, t0);
        // Capacity is one token (0.1 x 1 would never admit), refilled at 0.1/s.
        assert_eq!(admitted(&mut l, &s, 0.01, t0, 20, 1), 2);
    }

    #[test]
    fn bytes_go_into_debt_and_wait_it_off() {
        let s = spec(None, Some(1000.0), 1.0);
        let t0 = Instant::now();
        let mut l = Limiter::new(&s, 1.0, t0);
        assert_eq!(l.admit(&s, 1.0, t0), Admit::Go);
        l.charge(&s, 5000); // a request larger than the bucket passes ...
                            // ... and pays 4000 bytes of debt at 1000 bytes/s, asking again
                            // at least every rebalance period (its share might have grown).
        let mut now = t0;
        while let Admit::Wait(at) = l.admit(&s, 1.0, now) {
            assert!(at > now && at <= now + MAX_WAIT, "{at:?}");
            now = at;
        }
        let took = now - t0;
        assert!(took >= Duration::from_millis(3999) && took <= Duration::from_millis(4001), "{took:?}");
    }

    #[test]
    fn refill_never_passes_capacity() {
        let s = spec(Some(10.0), Some(100.0), 3.0);
        let t0 = Instant::now();
        let mut l = Limiter::new(&s, 1.0, t0);
        let later = t0 + Duration::from_secs(3600);
        let n = (0..100).take_while(|_| l.admit(&s, 1.0, later) == Admit::Go && (l.charge(&s, 1), true).1).count();
        assert_eq!(n, 30, "3 x 10 requests, not an hour's worth");
    }
}
