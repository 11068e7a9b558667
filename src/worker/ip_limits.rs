//! The worker's side of per-IP limits (`per_ip`) and users' limits: the
//! connection check at accept, the rate context each multiplexed session
//! gets, and the per-read limits of mongos relays.
//!
//! Owner: one worker thread (an `impl` block of its `WorkerCore`).
//! Invariants: the connection count of an address is taken before the
//! client is admitted and given back when its `ConnGuard` drops (the
//! session drops it with the client, a refused client drops it at once),
//! so the shared count never leaks; nothing here runs per request.

use std::net::SocketAddr;

use super::core::WorkerCore;
use std::sync::Arc;
use std::time::Instant;

use crate::limit::{Admit, IpKey, IpTable, LimitError, Limiter, OnLimit, PoolLimits, RateSpec, DEFAULT_TABLE_ENTRIES};
use crate::route::PoolSnapshot;
use crate::session::ratelimit::{ClientRate, RateCtx};
use crate::session::{CloseReason, TcpSession};

/// Whether accepting a client of `pool` needs its peer address (per-IP
/// limits; a memcache pool's `source` users are found by the session,
/// `session::mux::identity`).
pub fn needs_peer(pool: &PoolSnapshot) -> bool {
    pool.ip_limits.is_some()
}

/// The rates a session of `pool` on worker `worker` enforces (its users
/// are counted even when none is limited).
pub fn rate_ctx(pool: &PoolSnapshot, worker: usize) -> Option<RateCtx> {
    let ip = pool.cfg.limits.per_ip.zip(pool.ip_limits.clone()).map(|(per_ip, shared)| (shared, per_ip.rate));
    let users = pool.user_limits.clone();
    let ctx = RateCtx { ip: ip.filter(|(_, s)| s.is_limited()), users, on_limit: pool.cfg.limits.on_limit, worker };
    (ctx.ip.is_some() || ctx.users.is_some()).then_some(ctx)
}

/// One mongos pool's per-IP buckets on this core, with the rates and the
/// shared state they were made for (a reload that changes either starts
/// them over, as in the multiplexed sessions' `RateGate`).
pub struct MongoIp {
    spec: RateSpec,
    pool: Arc<PoolLimits>,
    table: IpTable,
}

impl WorkerCore {
    /// A mongos client read `bytes` (forwarded into its session already):
    /// charges the whole requests framed in them and the bytes to its
    /// address. A relay sees reads, not requests, so the check is per read:
    /// - `on_limit = "delay"`: charge, and while the buckets are in debt
    ///   the client is not read (`TcpSession::wants_read`) until tokens
    ///   are back (the worker's timer or tick ends the wait);
    /// - `"error"` and `"close"`: a read that finds the buckets already
    ///   empty closes the client before its bytes are sent (a mongos pool
    ///   has no error reply to give), else it is charged.
    pub fn limit_mongo(&mut self, pool: &PoolSnapshot, s: &mut TcpSession, bytes: usize, now: Instant) {
        let (Some(per_ip), Some(shared)) = (pool.cfg.limits.per_ip, &pool.ip_limits) else { return };
        let spec = per_ip.rate;
        if !spec.is_limited() {
            return;
        }
        let n = s.mongo_mut().map_or(0, |m| m.take_new_requests());
        let Some(c) = s.rate_mut() else { return };
        let Some(key) = c.key else { return };
        let worker = self.id;
        let e = self.mongo_ip.entry(pool.stat_id).or_insert_with(|| MongoIp {
            spec,
            pool: shared.clone(),
            table: IpTable::new(DEFAULT_TABLE_ENTRIES),
        });
        if e.spec != spec || !Arc::ptr_eq(&e.pool, shared) {
            *e = MongoIp { spec, pool: shared.clone(), table: IpTable::new(DEFAULT_TABLE_ENTRIES) };
        }
        let share = shared.share(worker, c.share());
        let (hint, slot, lim) = e.table.get(key, c.hint(), c.share(), || Limiter::new(&spec, share, now));
        c.set_hint(hint);
        shared.note_demand(worker, slot);
        let on_limit = pool.cfg.limits.on_limit;
        if on_limit != OnLimit::Delay && lim.admit(&spec, share, now) != Admit::Go {
            self.count_rate_limited(pool);
            return s.close(CloseReason::RateLimited);
        }
        lim.charge_many(&spec, n, bytes);
        if let Admit::Wait(at) = lim.admit(&spec, share, now) {
            if on_limit == OnLimit::Delay {
                c.wait = Some(at);
                self.count_rate_limited(pool);
            }
        }
    }

    fn count_rate_limited(&self, pool: &PoolSnapshot) {
        let pc = &self.stats.mux.pools[pool.stat_id];
        pc.ip_rate_limited.incr();
        pc.rate_limited.incr();
    }

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
