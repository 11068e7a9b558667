//! The status page's memory: a ring of per-second samples of each pool's
//! cumulative counters, from which `/api/status` derives rates (requests
//! per second) and last-minute figures (MOVED/ASK counts, latency
//! quantiles).
//!
//! Owner: the admin thread (`AdminHttp`), the only reader and writer; the
//! samples are copies of counters loaded from `Shared`, never references.
//! Sans-IO: the clock is passed in, so every rule below is unit-tested with
//! made-up instants.
//!
//! Invariants:
//! - at most `MAX_SAMPLES` samples are kept, oldest dropped first, and a
//!   sample is recorded at most once per `SAMPLE_EVERY`: memory is bounded
//!   however often, and by however many pages, the endpoint is polled;
//! - samples are in time order; pools are matched by stat id, which
//!   survives reloads, so a pool added or removed by a reload simply has no
//!   baseline (its rate is `None`, never a difference against another
//!   pool's counter);
//! - a counter that went backwards (a worker restarted its sessions)
//!   yields no figure rather than a wrapped one.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The window of "last minute" figures.
pub const MINUTE: Duration = Duration::from_secs(60);
/// Minimum spacing of recorded samples.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// Enough for a minute of samples at `SAMPLE_EVERY`, plus slack.
pub const MAX_SAMPLES: usize = 64;
/// A rate over less time than this would be mostly noise.
const MIN_RATE_SPAN: Duration = Duration::from_millis(250);

/// One pool's cumulative counters at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolSample {
    pub stat_id: usize,
    /// `None` where the mode has no request notion (tcp pools).
    pub requests: Option<u64>,
    pub errors: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub moved: u64,
    pub ask: u64,
    /// Cumulative latency bucket counts (bounds: `Latency::bounds_us`), or
    /// empty where the pool's latency is not measured.
    pub latency: Vec<u64>,
}

/// Every pool's counters at one instant.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Instant,
    pub pools: Vec<PoolSample>,
}

impl Sample {
    pub fn pool(&self, stat_id: usize) -> Option<&PoolSample> {
        self.pools.iter().find(|p| p.stat_id == stat_id)
    }
}

/// The ring of samples.
#[derive(Debug, Default)]
pub struct History {
    samples: VecDeque<Sample>,
}

/// What a pool's current counters mean against the history.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Derived {
    pub requests_per_sec: Option<f64>,
    pub errors_per_sec: Option<f64>,
    pub bytes_in_per_sec: Option<f64>,
    pub bytes_out_per_sec: Option<f64>,
    /// Seconds the last-minute figures below cover (up to 60).
    pub window_seconds: Option<f64>,
    pub moved_last_minute: Option<u64>,
    pub ask_last_minute: Option<u64>,
    /// Latency bucket counts over the last-minute window.
    pub latency_window: Option<Vec<u64>>,
}

impl History {
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Records `now` unless the newest sample is younger than
    /// `SAMPLE_EVERY`; drops the oldest past `MAX_SAMPLES`.
    pub fn record(&mut self, now: Sample) {
        if let Some(last) = self.samples.back() {
            if now.at.saturating_duration_since(last.at) < SAMPLE_EVERY {
                return;
            }
        }
        self.samples.push_back(now);
        while self.samples.len() > MAX_SAMPLES {
            self.samples.pop_front();
        }
    }

    /// Rates over the span back to the newest sample at least
    /// `SAMPLE_EVERY` old (else the oldest one at least `MIN_RATE_SPAN`
    /// old), and last-minute figures back to the oldest sample within
    /// `MINUTE`. `start` is a zero sample at process start: counters were
    /// zero then, so it is a baseline while the process is younger than a
    /// minute.
    pub fn derive(&self, cur: &PoolSample, now: Instant, start: Option<Instant>) -> Derived {
        let mut d = Derived::default();
        let age = |s: &Sample| now.saturating_duration_since(s.at);
        let rate_base = self
            .samples
            .iter()
            .rev()
            .find(|s| age(s) >= SAMPLE_EVERY)
            .or_else(|| self.samples.iter().find(|s| age(s) >= MIN_RATE_SPAN));
        if let Some((base, span)) = rate_base.and_then(|s| Some((s.pool(cur.stat_id)?, age(s)))) {
            let secs = span.as_secs_f64();
            let rate = |new: u64, old: u64| new.checked_sub(old).map(|d| d as f64 / secs);
            d.requests_per_sec = cur.requests.zip(base.requests).and_then(|(n, o)| rate(n, o));
            d.errors_per_sec = rate(cur.errors, base.errors);
            d.bytes_in_per_sec = rate(cur.bytes_in, base.bytes_in);
            d.bytes_out_per_sec = rate(cur.bytes_out, base.bytes_out);
        }
        let zero = PoolSample { stat_id: cur.stat_id, latency: vec![0; cur.latency.len()], ..PoolSample::default() };
        let from_ring = self.samples.iter().find(|s| age(s) <= MINUTE).and_then(|s| Some((s.pool(cur.stat_id)?, s.at)));
        // The process start beats a ring sample when it is within the
        // minute: it covers more of it.
        let minute_base = match start.filter(|&t| now.saturating_duration_since(t) <= MINUTE) {
            Some(t) => Some((&zero, t)),
            None => from_ring,
        };
        if let Some((base, at)) = minute_base {
            d.window_seconds = Some(now.saturating_duration_since(at).as_secs_f64());
            d.moved_last_minute = cur.moved.checked_sub(base.moved);
            d.ask_last_minute = cur.ask.checked_sub(base.ask);
            if !cur.latency.is_empty() && cur.latency.len() == base.latency.len() {
                d.latency_window =
                    cur.latency.iter().zip(&base.latency).map(|(n, o)| n.checked_sub(*o)).collect::<Option<Vec<u64>>>();
            }
        }
        d
    }
}

/// The upper bound of the bucket that holds quantile `q` of `counts`
/// (bucket `i` covers values up to `bounds[i]`; a `None` bound is the
/// open-ended last bucket, reported as the bound before it). `None` when
/// nothing was counted.
pub fn quantile(bounds: &[Option<u64>], counts: &[u64], q: f64) -> Option<u64> {
    let total: u64 = counts.iter().fold(0u64, |a, &c| a.saturating_add(c));
    if total == 0 {
        return None;
    }
    // The rank of the quantile, 1-based: ceil(q * total), at least 1.
    let rank = ((total as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
    let mut seen = 0u64;
    let mut last_bound = None;
    for (&n, &bound) in counts.iter().zip(bounds) {
        seen = seen.saturating_add(n);
        if bound.is_some() {
            last_bound = bound;
        }
        if seen >= rank {
            return last_bound;
        }
    }
    last_bound
}
