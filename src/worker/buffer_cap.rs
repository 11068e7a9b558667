//! `[server] max_buffered_bytes`: the process-wide cap on reply bytes
//! buffered for clients of multiplexed pools.
//!
//! Owner: each worker, for its own clients. No lock on the request path:
//! once per event batch (and so at least once per 250 ms tick) a worker
//! publishes its sessions' total in its stats block (`buffered_bytes`, a
//! relaxed store) and sums every worker's published total (relaxed
//! loads, at most one batch stale). Only when the sum is past the cap
//! does it look at its clients (a scan, off the normal path): it publishes
//! its largest client's bytes (`largest_client`); once every worker that
//! holds bytes has published its own, it closes its clients from the
//! largest down while they are at least as large as every other worker's
//! largest and the excess is not yet shed. So the clients holding the most in the whole
//! process go first, whichever worker serves them; a worker that defers
//! re-judges on its next batch with the others' fresh figures.
//! Closing frees a client's buffered replies at once; request bytes are
//! bounded per client by `client_queue_limit` instead.

use super::core::WorkerCore;
use super::mux_pools::MuxPools;
use crate::session::mux::{ClientClose, ClientId};

impl MuxPools {
    /// Publishes this worker's buffered reply bytes and, when the process
    /// is past `max_buffered_bytes`, closes the process's largest clients
    /// that are this worker's (`ClientClose::BufferCap`; their intents go
    /// out with the flush that follows).
    pub fn enforce_buffer_cap(&mut self, core: &WorkerCore) {
        let mine: u64 = self.entries.iter().flatten().map(|e| e.session.buffered_bytes() as u64).sum();
        let stats = &core.stats;
        let cap = core.snap.config.server.max_buffered_bytes.unwrap_or(u64::MAX);
        let others = || core.shared.workers.iter().enumerate().filter(|&(i, _)| i != core.id).map(|(_, w)| w);
        // Nothing held here (the common case) or no cap: nothing to judge.
        let judge = mine > 0 && cap < u64::MAX;
        let total = if judge { others().map(|w| w.buffered_bytes.get()).fold(mine, u64::saturating_add) } else { 0 };
        if total <= cap {
            if stats.largest_client.get() != 0 {
                stats.largest_client.set(0);
            }
            return stats.buffered_bytes.set(mine);
        }
        let mut candidates: Vec<(usize, ClientId, u64)> = Vec::new();
        let mut found = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            if let Some(e) = e {
                e.session.buffered_clients(&mut found);
                candidates.extend(found.drain(..).map(|(id, n)| (i, id, n as u64)));
            }
        }
        // Our largest is visible before the total that puts the process
        // over the cap, so another worker judging now defers to it.
        stats.largest_client.set(candidates.iter().map(|c| c.2).max().unwrap_or(0));
        // A worker holding bytes that has not judged since the process went
        // over has not told its largest yet: wait for it (its next batch,
        // at the latest its next tick), or we might close a smaller client.
        if others().any(|w| w.buffered_bytes.get() > 0 && w.largest_client.get() == 0) {
            return stats.buffered_bytes.set(mine);
        }
        let others_max = others().map(|w| w.largest_client.get()).max().unwrap_or(0);
        let (victims, rest_max) = victims(candidates, total - cap, others_max);
        let (mut freed, closed) = (0u64, victims.len() as u64);
        for (i, id, n) in victims {
            if let Some(e) = self.get_mut(i) {
                e.session.close_client(id, ClientClose::BufferCap);
                freed += n;
            }
        }
        stats.largest_client.set(rest_max);
        stats.buffered_bytes.set(mine.saturating_sub(freed));
        if closed > 0 {
            stats.buffer_cap_closed.add(closed);
            tracing::warn!(
                worker = core.id,
                total,
                cap,
                closed,
                freed,
                "buffered reply bytes past max_buffered_bytes: closed the clients holding the most"
            );
        }
    }
}

/// The candidates (entry, client, bytes) to close, largest first: each at
/// least as large as `others_max` (the largest client of any other
/// worker), until `excess` bytes are shed. Also returns the largest
/// candidate left (what this worker publishes next).
fn victims(
    mut candidates: Vec<(usize, ClientId, u64)>,
    excess: u64,
    others_max: u64,
) -> (Vec<(usize, ClientId, u64)>, u64) {
    candidates.sort_unstable_by_key(|c| std::cmp::Reverse(c.2));
    let mut freed = 0u64;
    let take = candidates
        .iter()
        .take_while(|c| {
            let go = freed < excess && c.2 >= others_max;
            freed = freed.saturating_add(c.2);
            go
        })
        .count();
    let rest_max = candidates.get(take).map_or(0, |c| c.2);
    candidates.truncate(take);
    (candidates, rest_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(idx: u32) -> ClientId {
        ClientId { idx, gen: 0 }
    }

    #[test]
    fn the_clients_holding_the_most_are_closed_first() {
        let all = vec![(0, id(1), 100), (0, id(2), 500), (1, id(3), 300), (1, id(4), 50)];
        assert_eq!(victims(all.clone(), 400, 0), (vec![(0, id(2), 500)], 300));
        assert_eq!(victims(all.clone(), 600, 0), (vec![(0, id(2), 500), (1, id(3), 300)], 100));
        assert_eq!(victims(all.clone(), 10_000, 0).0.len(), 4);
        assert_eq!(victims(all.clone(), 0, 0), (vec![], 500), "within the cap: nobody");
    }

    #[test]
    fn a_larger_client_on_another_worker_goes_first() {
        let mine = vec![(0, id(1), 100), (0, id(2), 500)];
        assert_eq!(victims(mine.clone(), 1000, 800), (vec![], 500), "the other worker's 800 goes first");
        assert_eq!(victims(mine.clone(), 1000, 500), (vec![(0, id(2), 500)], 100), "ties close on both");
        assert_eq!(victims(mine, 1000, 200), (vec![(0, id(2), 500)], 100), "then the other worker's 200");
    }
}
