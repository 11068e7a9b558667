//! `[server] max_buffered_bytes`: the process-wide cap on reply bytes
//! buffered for clients of multiplexed pools.
//!
//! Owner: each worker, for its own clients. No lock on the request path:
//! once per event batch a worker publishes its sessions' total in its
//! stats block (`buffered_bytes`, a relaxed store) and sums every
//! worker's published total (relaxed loads, at most one batch stale).
//! When the sum is past the cap, the worker closes its own clients with
//! the most buffered bytes first until it has shed its share of the
//! excess (the excess times its part of the total), so the workers
//! together shed about the excess without talking to each other.
//! Closing frees a client's buffered replies at once; request bytes are
//! bounded per client by `client_queue_limit` instead.

use super::core::WorkerCore;
use super::mux_pools::MuxPools;
use crate::session::mux::{ClientClose, ClientId};

impl MuxPools {
    /// Publishes this worker's buffered reply bytes and, when the process
    /// is past `max_buffered_bytes`, closes this worker's largest clients
    /// (`ClientClose::BufferCap`; their intents go out with the flush).
    pub fn enforce_buffer_cap(&mut self, core: &WorkerCore) {
        let mine: u64 = self.entries.iter().flatten().map(|e| e.session.buffered_bytes() as u64).sum();
        core.stats.buffered_bytes.set(mine);
        let Some(cap) = core.snap.config.server.max_buffered_bytes else { return };
        if mine == 0 {
            return;
        }
        let total = core.shared.workers.iter().map(|w| w.buffered_bytes.get()).fold(0u64, u64::saturating_add);
        let Some(share) = share_of_excess(total, cap, mine) else { return };
        let mut candidates: Vec<(usize, ClientId, usize)> = Vec::new();
        let mut found = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            if let Some(e) = e {
                e.session.buffered_clients(&mut found);
                candidates.extend(found.drain(..).map(|(id, n)| (i, id, n)));
            }
        }
        let (mut freed, mut closed) = (0u64, 0u64);
        for (i, id, n) in largest_first(candidates, share) {
            if let Some(e) = self.get_mut(i) {
                e.session.close_client(id, ClientClose::BufferCap);
                freed += n as u64;
                closed += 1;
            }
        }
        core.stats.buffer_cap_closed.add(closed);
        core.stats.buffered_bytes.set(mine.saturating_sub(freed));
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

/// The bytes this worker must shed when the process holds `total` past
/// `cap` and this worker `mine` of them: its part of the excess, at least
/// one byte (so a worker whose share rounds down still closes its largest
/// client). `None` when the process is within the cap.
fn share_of_excess(total: u64, cap: u64, mine: u64) -> Option<u64> {
    if total <= cap || mine == 0 {
        return None;
    }
    // mine <= total, so the share is at most `mine` and fits a u64.
    let share = u128::from(total - cap) * u128::from(mine) / u128::from(total);
    Some((share as u64).max(1))
}

/// The candidates (entry, client, bytes) to close: the largest first, until
/// they hold at least `share` bytes.
fn largest_first(mut candidates: Vec<(usize, ClientId, usize)>, share: u64) -> Vec<(usize, ClientId, usize)> {
    candidates.sort_unstable_by(|a, b| b.2.cmp(&a.2));
    let mut freed = 0u64;
    let keep = candidates
        .iter()
        .take_while(|c| {
            let more = freed < share;
            freed += c.2 as u64;
            more
        })
        .count();
    candidates.truncate(keep);
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(idx: u32) -> ClientId {
        ClientId { idx, gen: 0 }
    }

    #[test]
    fn each_worker_sheds_its_part_of_the_excess() {
        assert_eq!(share_of_excess(100, 100, 60), None, "at the cap");
        assert_eq!(share_of_excess(160, 100, 80), Some(30), "half of the 60 over");
        assert_eq!(share_of_excess(101, 100, 1), Some(1), "never zero");
        assert_eq!(share_of_excess(u64::MAX, 0, u64::MAX), Some(u64::MAX));
        assert_eq!(share_of_excess(200, 100, 0), None, "nothing to shed here");
    }

    #[test]
    fn the_clients_holding_the_most_are_closed_first() {
        let all = vec![(0, id(1), 100), (0, id(2), 500), (1, id(3), 300), (1, id(4), 50)];
        assert_eq!(largest_first(all.clone(), 400), [(0, id(2), 500)]);
        assert_eq!(largest_first(all.clone(), 600), [(0, id(2), 500), (1, id(3), 300)]);
        assert_eq!(largest_first(all.clone(), 10_000).len(), 4);
        assert_eq!(largest_first(all, 0), []);
    }
}
