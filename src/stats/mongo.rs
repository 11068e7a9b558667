//! Per-worker counters of mongos pools: requests by opcode and command per
//! backend, and per-command latency histograms per pool.
//!
//! Ownership as in `stats`: one writer (the worker), relaxed loads by the
//! admin thread. Histograms are fixed log2 buckets of microseconds, so
//! recording is an index computation and two counter bumps, lock-free and
//! allocation-free. Invariant: bucket `i` (`0 < i < LAT_BUCKETS - 1`)
//! counts durations in `[2^(i-1), 2^i)` µs; bucket 0 is `< 1` µs and the
//! last bucket everything from `2^(LAT_BUCKETS-2)` µs (about 33 s) up.

use std::time::Duration;

use super::table::counter_table;
use super::{Counter, MAX_BACKENDS, MAX_POOLS};
use crate::protocol::mongo::{COMMANDS, OPCODE_NAMES};

pub const LAT_BUCKETS: usize = 27;
pub const N_COMMANDS: usize = COMMANDS.len();
pub const N_OPCODES: usize = OPCODE_NAMES.len();

/// Upper bound (exclusive) of bucket `i` in seconds; `None` for the last.
pub fn bucket_upper_seconds(i: usize) -> Option<f64> {
    (i + 1 < LAT_BUCKETS).then(|| (1u64 << i) as f64 / 1e6)
}

#[derive(Debug, Default)]
pub struct Histogram {
    pub buckets: [Counter; LAT_BUCKETS],
    pub count: Counter,
    pub sum_us: Counter,
}

impl Histogram {
    #[inline]
    pub fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = (64 - us.leading_zeros() as usize).min(LAT_BUCKETS - 1);
        self.buckets[i].incr();
        self.count.incr();
        self.sum_us.add(us);
    }
}

counter_table! {
    /// One mongos pool on one worker.
    mirror MongoPoolCounters;
    /// A mongos pool's counters summed over workers.
    sum MongoPoolTotals;
    rows POOL_ROWS;
    session none;
    gauges none;
    counters {
        slow_ops: "mongo_slow_ops_total", "Operations slower than slow_op_threshold.", json Some("slow_ops");
        /// Clients closed for a short or oversized header.
        protocol_errors: "mongo_protocol_errors_total", "Clients closed for a short or oversized message header.",
            json Some("protocol_errors");
        /// Clients closed at a message boundary (backend unhealthy or
        /// removed, drain).
        retired: "mongo_boundary_closes_total", "Clients closed at a message boundary (mongos left, drain).",
            json Some("boundary_closes");
    }
    gauges {}
    extra {
        /// Request -> reply latency, by `COMMANDS` index.
        latency: [Histogram; N_COMMANDS];
    }
}

/// One mongos on one worker.
#[derive(Debug, Default)]
pub struct MongoBackendCounters {
    pub opcodes: [Counter; N_OPCODES],
    pub commands: [Counter; N_COMMANDS],
}

#[derive(Debug)]
pub struct MongoStats {
    pub pools: Box<[MongoPoolCounters]>,
    pub backends: Box<[MongoBackendCounters]>,
}

impl Default for MongoStats {
    fn default() -> Self {
        MongoStats {
            pools: (0..MAX_POOLS).map(|_| MongoPoolCounters::default()).collect(),
            backends: (0..MAX_BACKENDS).map(|_| MongoBackendCounters::default()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2_buckets() {
        let h = Histogram::default();
        h.record(Duration::from_nanos(500)); // 0 us
        h.record(Duration::from_micros(1)); // [1, 2)
        h.record(Duration::from_micros(3)); // [2, 4)
        h.record(Duration::from_micros(1000)); // [512, 1024)
        h.record(Duration::from_secs(3600));
        let got: Vec<u64> = h.buckets.iter().map(Counter::get).collect();
        assert_eq!((got[0], got[1], got[2], got[10], got[LAT_BUCKETS - 1]), (1, 1, 1, 1, 1));
        assert_eq!(h.count.get(), 5);
        assert_eq!(bucket_upper_seconds(10), Some(0.001024));
        assert_eq!(bucket_upper_seconds(LAT_BUCKETS - 1), None);
    }
}
