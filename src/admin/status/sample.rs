//! Reads one pool's cumulative counters into a `PoolSample`, by pool kind.
//!
//! Owns nothing: relaxed loads of the workers' single-writer counters,
//! summed like `/metrics` sums them (`totals`, `twem`, `cluster`, `mongo`).
//! What "requests" and "errors" mean differs by kind; this file is the one
//! place that says so (the README's status page section repeats it):
//!
//! | kind            | requests                           | errors                          |
//! |-----------------|------------------------------------|---------------------------------|
//! | redis, memcache | client requests decoded            | forward errors (proxy-answered) |
//! | redis_cluster   | client requests decoded            | forward errors (proxy-answered) |
//! | mongos          | operations timed (latency count)   | framing errors                  |
//! | tcp             | none (a byte relay)                | backend connect failures        |
//!
//! Latency: mongos pools have per-command log2 histograms already; they are
//! summed over commands. Other kinds report none (`latency` empty) until
//! the data plane times requests.

use crate::config::Mode;
use crate::control::Shared;
use crate::route::PoolSnapshot;
use crate::stats::mongo::{bucket_upper_seconds, LAT_BUCKETS};

use super::super::cluster::PoolCluster;
use super::super::totals::{BackendTotals, PoolTotals};
use super::super::twem::PoolTwem;
use super::history::PoolSample;

/// Bucket upper bounds in microseconds of the mongos histograms (`None`:
/// the open-ended last bucket).
pub fn mongo_bounds_us() -> Vec<Option<u64>> {
    (0..LAT_BUCKETS).map(|i| bucket_upper_seconds(i).map(|s| (s * 1e6).round() as u64)).collect()
}

/// The latency bucket bounds of `mode`'s pools; empty where not measured.
pub fn bounds_us(mode: Mode) -> Vec<Option<u64>> {
    match mode {
        Mode::Mongos => mongo_bounds_us(),
        Mode::Redis | Mode::Memcache | Mode::RedisCluster => {
            crate::obs::BOUNDS_US.iter().map(|&b| Some(b)).chain(std::iter::once(None)).collect()
        }
        Mode::Tcp => Vec::new(),
    }
}

/// The pool's counters now.
pub fn read(shared: &Shared, p: &PoolSnapshot) -> PoolSample {
    let workers = &shared.workers;
    let t = PoolTotals::sum(workers, p.stat_id);
    let mut s =
        PoolSample { stat_id: p.stat_id, bytes_in: t.bytes_in, bytes_out: t.bytes_out, ..PoolSample::default() };
    match p.cfg.mode {
        Mode::Redis | Mode::Memcache => {
            let tw = PoolTwem::sum(workers, p.stat_id);
            s.requests = Some(twem_commands(shared, p.stat_id));
            s.errors = tw.forward_error;
            s.latency = crate::obs::pool_requests(shared, p.stat_id).buckets.to_vec();
        }
        Mode::RedisCluster => {
            let c = PoolCluster::sum(shared, p.stat_id);
            s.requests = Some(twem_commands(shared, p.stat_id));
            s.errors = c.forward_error;
            s.moved = c.moved;
            s.ask = c.ask;
            s.latency = crate::obs::pool_requests(shared, p.stat_id).buckets.to_vec();
        }
        Mode::Mongos => {
            let m = super::super::mongo::pool_totals(workers, p.stat_id);
            let mut buckets = vec![0u64; LAT_BUCKETS];
            let mut count = 0u64;
            for l in &m.latency {
                for (acc, &b) in buckets.iter_mut().zip(l.buckets.iter()) {
                    *acc = acc.wrapping_add(b);
                }
                count = count.wrapping_add(l.count);
            }
            s.requests = Some(count);
            s.errors = m.counts.protocol_errors;
            s.latency = buckets;
        }
        Mode::Tcp => {
            s.errors = p
                .backends
                .iter()
                .map(|b| BackendTotals::sum(workers, &shared.health, b.stat_id).connect_failures)
                .fold(0u64, u64::wrapping_add);
        }
    }
    s
}

/// Client requests decoded by the pool's multiplexed sessions (the same
/// figure INFO's `total_commands_processed` reports).
fn twem_commands(shared: &Shared, stat_id: usize) -> u64 {
    shared.workers.iter().filter_map(|w| w.mux.pools.get(stat_id)).map(|p| p.commands.get()).fold(0, u64::wrapping_add)
}
