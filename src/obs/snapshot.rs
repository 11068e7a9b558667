//! Reading `obs` across cores: what admin (metrics, `/slowlog`, the status
//! page) and `SLOWLOG` on any core see. Owns nothing; every function here
//! copies out of the per-core blocks and merges.

use crate::shared::Shared;

use super::hist::HistSnap;
use super::pool::PoolObs;
use super::slowlog::{merge_newest, Entry};

/// One pool's request latency, merged over commands and cores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolLatency {
    pub pool: String,
    pub stat_id: usize,
    /// Per-bucket counts (`BOUNDS_US`, then +Inf), sum and count.
    pub requests: HistSnap,
}

/// Per pool of the current snapshot, its merged request histogram (every
/// pool is listed; tcp pools, and pools without traffic, are empty). The
/// status page diffs two of these a minute apart (`HistSnap::since`) and
/// asks the difference for `quantile(0.5 | 0.99 | 0.999)`.
pub fn pool_latency(shared: &Shared) -> Vec<PoolLatency> {
    let snap = shared.cell.load();
    snap.pools
        .iter()
        .map(|p| PoolLatency {
            pool: p.cfg.name.clone(),
            stat_id: p.stat_id,
            requests: pool_requests(shared, p.stat_id),
        })
        .collect()
}

/// Pool `stat_id`'s request histogram, merged over commands and cores.
pub fn pool_requests(shared: &Shared, stat_id: usize) -> HistSnap {
    let mut requests = HistSnap::default();
    for_each_core(shared, stat_id, |o| {
        for h in o.hist.iter() {
            requests.merge(&h.snap());
        }
    });
    requests
}

/// Calls `f` with pool `stat_id`'s block on every core that served it.
pub(crate) fn for_each_core(shared: &Shared, stat_id: usize, mut f: impl FnMut(&PoolObs)) {
    for w in &shared.workers {
        if let Some(o) = w.obs.get(stat_id) {
            f(o);
        }
    }
}

/// Pool `stat_id`'s slow log merged over cores, newest first, at most `n`.
/// Ids are made unique over cores (`id * cores + core`), stable while the
/// worker count is.
pub fn slowlog_entries(workers: &[std::sync::Arc<crate::stats::WorkerStats>], stat_id: usize, n: usize) -> Vec<Entry> {
    let cores = workers.len() as u64;
    let mut all = Vec::new();
    for (i, o) in workers.iter().enumerate().filter_map(|(i, w)| Some((i, w.obs.get(stat_id)?))) {
        all.extend(o.slow_entries().into_iter().map(|mut e| {
            e.id = e.id.wrapping_mul(cores).wrapping_add(i as u64);
            e
        }));
    }
    merge_newest(all, n)
}

/// Entries pool `stat_id`'s slow log holds now, over cores.
pub fn slowlog_len(workers: &[std::sync::Arc<crate::stats::WorkerStats>], stat_id: usize) -> usize {
    workers.iter().filter_map(|w| w.obs.get(stat_id)).map(|o| o.slowlog.len()).sum()
}

/// Empties pool `stat_id`'s slow log on every core.
pub fn slowlog_reset(workers: &[std::sync::Arc<crate::stats::WorkerStats>], stat_id: usize) {
    for o in workers.iter().filter_map(|w| w.obs.get(stat_id)) {
        o.slowlog.reset();
    }
}
