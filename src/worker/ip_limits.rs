//! The worker's side of per-IP limits (`per_ip`): the connection check at
//! accept and the rate context each multiplexed session gets.
//!
//! Owner: one worker thread (an `impl` block of its `WorkerCore`).
//! Invariants: the connection count of an address is taken before the
//! client is admitted and given back when its `ConnGuard` drops (the
//! session drops it with the client, a refused client drops it at once),
//! so the shared count never leaks; nothing here runs per request.

use std::net::SocketAddr;

use super::core::WorkerCore;
use crate::limit::{IpKey, LimitError};
use crate::route::PoolSnapshot;
use crate::session::ratelimit::{ClientRate, RateCtx};

/// Whether accepting a client of `pool` needs its peer address.
pub fn needs_peer(pool: &PoolSnapshot) -> bool {
    pool.ip_limits.is_some()
}

/// The rates a session of `pool` on worker `worker` enforces.
pub fn rate_ctx(pool: &PoolSnapshot, worker: usize) -> Option<RateCtx> {
    let per_ip = pool.cfg.limits.per_ip?;
    let shared = pool.ip_limits.clone()?;
    let ctx = RateCtx { pool: shared, spec: per_ip.rate, on_limit: pool.cfg.limits.on_limit, worker };
    per_ip.rate.is_limited().then_some(ctx)
}

impl WorkerCore {
    /// Checks `peer`'s connections to `pool` at accept. `Ok(None)`: the
    /// pool has no per-IP limits (or the client no IP address: a unix
    /// socket); `Ok(Some)`: the client's limit state, holding its place in
    /// the connection count; `Err`: refused (counted).
    pub fn admit_ip(
        &mut self,
        pool: &PoolSnapshot,
        peer: Option<SocketAddr>,
    ) -> Result<Option<ClientRate>, LimitError> {
        let (Some(per_ip), Some(shared)) = (pool.cfg.limits.per_ip, &pool.ip_limits) else { return Ok(None) };
        let Some(peer) = peer else { return Ok(None) };
        let key = IpKey::new(peer.ip());
        let slot = shared.slot(key);
        let conn = match per_ip.connections {
            None => None,
            Some(limit) => match shared.connect(slot, limit) {
                Ok(g) => Some(g),
                Err(e) => {
                    self.stats.pools[pool.stat_id].rejected_per_ip.incr();
                    tracing::debug!(pool = %pool.cfg.name, ip = %peer.ip(), "client rejected at accept: {e}");
                    return Err(e);
                }
            },
        };
        Ok(Some(ClientRate::new(key, slot.share, conn)))
    }
}
