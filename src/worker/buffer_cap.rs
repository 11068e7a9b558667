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
        if total <= cap {
            return;
        }
        // At most `mine` (mine <= total); at least one byte, so a worker
        // whose share rounds down still closes its largest client.
        let share = ((u128::from(total - cap) * u128::from(mine)) / u128::from(total)).max(1) as u64;
        let mut victims: Vec<(usize, ClientId, usize)> = Vec::new();
        let mut found = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            if let Some(e) = e {
                e.session.buffered_clients(&mut found);
                victims.extend(found.drain(..).map(|(id, n)| (i, id, n)));
            }
        }
        victims.sort_unstable_by(|a, b| b.2.cmp(&a.2));
        let (mut freed, mut closed) = (0u64, 0u64);
        for (i, id, n) in victims {
            if freed >= share {
                break;
            }
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
