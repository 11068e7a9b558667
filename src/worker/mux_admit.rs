//! Admission and client/backend accounting of the multiplexed pools
//! (redis, memcache, redis_cluster) that does not depend on the I/O
//! driver: `admit_mux` / `mux_client_closed` (every admitted client is
//! un-counted exactly once), backend connection gauges, and the memcache
//! `source` check done at accept.
//!
//! Owner: one worker thread (`WorkerCore`). Invariant: the pool's client
//! count, the process-wide client units and the per-pool gauges move
//! together; a refused client is never counted.

use std::sync::atomic::Ordering;

use super::core::{Reject, WorkerCore};
use crate::route::PoolSnapshot;
use crate::session::mux::ClientClose;

impl WorkerCore {
    /// Admission of a client of a multiplexed pool: draining and
    /// `client_connections` only (no backend is chosen per client). On
    /// success the client is counted; `mux_client_closed` undoes it.
    pub fn admit_mux(&mut self, pool: &PoolSnapshot) -> Result<(), Reject> {
        if self.snap.draining {
            return Err(Reject::Draining);
        }
        self.take_client_units(pool)?;
        let pc = &self.stats.pools[pool.stat_id];
        let n = pool.clients.fetch_add(1, Ordering::Relaxed);
        if pool.cfg.max_client_connections.is_some_and(|max| n >= max as u64) {
            pool.clients.fetch_sub(1, Ordering::Relaxed);
            self.shared.clients.give_back(crate::fdlimit::client_units(&pool.cfg));
            pc.rejected_max_conns.incr();
            return Err(Reject::MaxConnections);
        }
        pc.client_conns.incr();
        pc.client_conns_total.incr();
        self.stats.sessions.incr();
        Ok(())
    }

    /// A client admitted by `admit_mux` closed; counts nutcracker's
    /// `client_eof` / `client_err`.
    pub fn mux_client_closed(&mut self, pool: &PoolSnapshot, why: ClientClose) {
        let pc = &self.stats.pools[pool.stat_id];
        pc.client_conns.decr();
        self.stats.sessions.decr();
        pool.clients.fetch_sub(1, Ordering::Relaxed);
        self.shared.clients.give_back(crate::fdlimit::client_units(&pool.cfg));
        let mc = &self.stats.mux.pools[pool.stat_id];
        match why {
            ClientClose::Eof => mc.client_eof.incr(),
            ClientClose::Protocol | ClientClose::Unsupported | ClientClose::WrongArity | ClientClose::Error(_) => {
                mc.client_err.incr()
            }
            ClientClose::Quit
            | ClientClose::SlowClient
            | ClientClose::BufferCap
            | ClientClose::Shutdown
            | ClientClose::RateLimited
            | ClientClose::NoUser => {}
        }
        tracing::debug!(pool = %pool.cfg.name, ?why, "client closed");
        if why == ClientClose::SlowClient {
            tracing::warn!(pool = %pool.cfg.name, "closing a client past client_output_limit (it does not read its replies)");
        }
    }

    /// A backend connection of stat id `sid` opened / closed (gauges).
    pub fn mux_backend_opened(&self, sid: usize) {
        if let Some(b) = self.stats.backends.get(sid) {
            b.conns.incr();
            b.conns_total.incr();
        }
    }

    pub fn mux_backend_closed(&self, sid: usize) {
        if let Some(b) = self.stats.backends.get(sid) {
            b.conns.decr();
        }
    }

    pub fn mux_connect_failed(&self, sid: usize) {
        if let Some(b) = self.stats.backends.get(sid) {
            b.connect_failures.incr();
        }
    }
}

/// memcache pools with users (`[[user]] source`): whether the client at
/// `peer` is one of them, or (on a TLS listener requiring client
/// certificates, `plain` false) may still be one by certificate. Refused
/// clients are closed at accept, before they count against any limit.
/// Other pools admit everyone here.
pub(crate) fn source_admits(
    pool: &PoolSnapshot,
    plain: bool,
    peer: impl FnOnce() -> Option<std::net::SocketAddr>,
) -> bool {
    match pool.cfg.users.as_deref() {
        Some(users) if pool.cfg.mode == crate::config::Mode::Memcache => {
            // Client certificates required and some user claimed by one:
            // the session decides once the handshake is done.
            let by_cert = !plain && pool.cfg.tls.requires_client_cert() && users.has_cert_users();
            by_cert || users.admits(peer().map(|a| a.ip()))
        }
        _ => true,
    }
}
