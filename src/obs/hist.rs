//! The latency histogram: classic Prometheus buckets from 10 µs to 10 s.
//!
//! Owner: one worker writes a `Hist` (relaxed load plus store, as every
//! counter in `stats`: no lock, no read-modify-write atomic); admin reads
//! it into a `HistSnap`, merges the snapshots of every core and renders
//! them. Invariants: bucket `i < BOUNDS_US.len()` counts durations `d` with
//! `BOUNDS_US[i-1] < d <= BOUNDS_US[i]` (Prometheus `le` semantics), the
//! last bucket everything above 10 s; the count is the sum of the buckets,
//! so a record is two stores (one bucket, the sum).

use crate::stats::Counter;

/// Upper bounds of the buckets in microseconds (`le`), then `+Inf`.
pub const BOUNDS_US: [u64; 19] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];
/// Buckets including `+Inf`.
pub const NBUCKETS: usize = BOUNDS_US.len() + 1;

/// `BOUNDS_US` then a sentinel no duration exceeds, so `bucket_of` may
/// look one past the last bound.
const BOUNDS_EXT: [u64; NBUCKETS] = {
    let mut b = [u64::MAX; NBUCKETS];
    let mut i = 0;
    while i < BOUNDS_US.len() {
        b[i] = BOUNDS_US[i];
        i += 1;
    }
    b
};

/// By bit length `L` of a duration (`64 - leading_zeros`): how many
/// bounds lie below `2^(L-1)`, the smallest duration of that length.
/// Consecutive bounds are at least 2x apart, so at most one bound falls
/// in `[2^(L-1), 2^L)`, and it is `BOUNDS_EXT[BELOW[L]]` when there is one.
const BELOW: [u8; 65] = {
    let mut k = 1;
    while k < BOUNDS_US.len() {
        assert!(BOUNDS_US[k] >= 2 * BOUNDS_US[k - 1], "bucket_of needs bounds at least 2x apart");
        k += 1;
    }
    let mut t = [0u8; 65];
    let mut l = 1;
    while l <= 64 {
        let lo = 1u64 << (l - 1);
        let mut n = 0;
        while n < BOUNDS_US.len() && BOUNDS_US[n] < lo {
            n += 1;
        }
        t[l] = n as u8;
        l += 1;
    }
    t
};

/// The bucket a duration of `us` microseconds falls in: a table lookup
/// by bit length and one comparison, no search.
#[inline]
pub fn bucket_of(us: u64) -> usize {
    let i = usize::from(BELOW[(u64::BITS - us.leading_zeros()) as usize]);
    i + usize::from(BOUNDS_EXT[i] < us)
}

/// One histogram on one core.
#[derive(Debug, Default)]
pub struct Hist {
    buckets: [Counter; NBUCKETS],
    sum_us: Counter,
}

impl Hist {
    /// Records one duration. Only the owning worker may call this.
    #[inline]
    pub fn record_us(&self, us: u64) {
        self.buckets[bucket_of(us)].incr();
        self.sum_us.add(us);
    }

    pub fn snap(&self) -> HistSnap {
        let mut s = HistSnap::default();
        for (d, b) in s.buckets.iter_mut().zip(&self.buckets) {
            *d = b.get();
        }
        s.sum_us = self.sum_us.get();
        s
    }
}

/// A histogram read by admin: per-bucket (not cumulative) counts and the
/// sum in microseconds. Merging and diffing are plain wrapping arithmetic.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HistSnap {
    pub buckets: [u64; NBUCKETS],
    pub sum_us: u64,
}

impl HistSnap {
    pub fn count(&self) -> u64 {
        self.buckets.iter().fold(0u64, |a, &b| a.wrapping_add(b))
    }

    /// Adds another core's (or command's) snapshot.
    pub fn merge(&mut self, o: &HistSnap) {
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            *a = a.wrapping_add(*b);
        }
        self.sum_us = self.sum_us.wrapping_add(o.sum_us);
    }

    /// What was recorded since `earlier` (a snapshot of the same series).
    pub fn since(&self, earlier: &HistSnap) -> HistSnap {
        let mut d = *self;
        for (a, b) in d.buckets.iter_mut().zip(&earlier.buckets) {
            *a = a.wrapping_sub(*b);
        }
        d.sum_us = d.sum_us.wrapping_sub(earlier.sum_us);
        d
    }

    /// Cumulative counts per bucket bound (`le`), `+Inf` last: the form
    /// Prometheus publishes.
    pub fn cumulative(&self) -> [u64; NBUCKETS] {
        let mut c = [0u64; NBUCKETS];
        let mut run = 0u64;
        for (o, &b) in c.iter_mut().zip(&self.buckets) {
            run = run.wrapping_add(b);
            *o = run;
        }
        c
    }

    /// The `q` quantile (0..=1) in seconds, estimated as Prometheus's
    /// `histogram_quantile` does: linear within the bucket holding the
    /// rank, the lower bound of the first bucket being 0. A rank in the
    /// `+Inf` bucket gives the highest finite bound (10 s). `None` when
    /// empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        quantile(&self.cumulative(), q)
    }
}

/// `histogram_quantile` over cumulative bucket counts (`BOUNDS_US`, then
/// `+Inf`), in seconds; for callers that keep only the cumulative form.
pub fn quantile(cumulative: &[u64; NBUCKETS], q: f64) -> Option<f64> {
    let total = cumulative[NBUCKETS - 1];
    if total == 0 || q.is_nan() {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let i = cumulative.iter().position(|&c| c as f64 >= rank).unwrap_or(NBUCKETS - 1);
    if i == NBUCKETS - 1 {
        return Some(BOUNDS_US[NBUCKETS - 2] as f64 / 1e6);
    }
    let lo_count = if i == 0 { 0 } else { cumulative[i - 1] };
    let lo = if i == 0 { 0.0 } else { BOUNDS_US[i - 1] as f64 };
    let hi = BOUNDS_US[i] as f64;
    let in_bucket = cumulative[i].saturating_sub(lo_count);
    if in_bucket == 0 {
        return Some(hi / 1e6);
    }
    let frac = (rank - lo_count as f64) / in_bucket as f64;
    Some((lo + (hi - lo) * frac) / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_fall_in_le_buckets() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(10), 0, "le: 10 µs is in the 10 µs bucket");
        assert_eq!(bucket_of(11), 1);
        assert_eq!(bucket_of(25), 1);
        assert_eq!(bucket_of(1_000), 6);
        assert_eq!(bucket_of(1_001), 7);
        assert_eq!(bucket_of(10_000_000), NBUCKETS - 2);
        assert_eq!(bucket_of(10_000_001), NBUCKETS - 1, "+Inf");
        assert_eq!(bucket_of(u64::MAX), NBUCKETS - 1);
        // The table agrees with a plain search at every bound and beside it.
        let search = |us: u64| BOUNDS_US.partition_point(|&b| b < us);
        for &b in &BOUNDS_US {
            for us in [b - 1, b, b + 1, b * 2 - 1, b / 2 + 1] {
                assert_eq!(bucket_of(us), search(us), "{us} µs");
            }
        }
        for us in (0..70_000).chain((1..64).map(|s| 1u64 << s)) {
            assert_eq!(bucket_of(us), search(us), "{us} µs");
        }
        let h = Hist::default();
        for us in [3, 10, 40, 40, 2_000_000, 99_000_000] {
            h.record_us(us);
        }
        let s = h.snap();
        assert_eq!(s.count(), 6);
        assert_eq!(s.sum_us, 3 + 10 + 40 + 40 + 2_000_000 + 99_000_000);
        let c = s.cumulative();
        assert_eq!((c[0], c[1], c[2], c[NBUCKETS - 2], c[NBUCKETS - 1]), (2, 2, 4, 5, 6));
    }

    #[test]
    fn quantiles_interpolate_within_a_bucket() {
        let h = Hist::default();
        // 100 requests between 100 µs and 250 µs.
        for _ in 0..100 {
            h.record_us(200);
        }
        let s = h.snap();
        let p50 = s.quantile(0.5).unwrap();
        assert!((p50 - 175e-6).abs() < 1e-9, "halfway through (100, 250] µs: {p50}");
        assert!((s.quantile(1.0).unwrap() - 250e-6).abs() < 1e-9);
        assert_eq!(HistSnap::default().quantile(0.5), None);
        // One slow outlier in a thousand moves p99.9 but not p99.
        let h = Hist::default();
        for _ in 0..999 {
            h.record_us(40);
        }
        h.record_us(3_000_000);
        let s = h.snap();
        assert!(s.quantile(0.99).unwrap() <= 50e-6);
        assert!(s.quantile(0.9995).unwrap() > 2.5);
        let later = {
            h.record_us(40);
            h.snap()
        };
        assert_eq!(later.since(&s).count(), 1);
        // Past the last finite bound: the last finite bound.
        let h = Hist::default();
        h.record_us(60_000_000);
        assert_eq!(h.snap().quantile(0.5), Some(10.0));
    }
}
