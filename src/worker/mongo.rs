//! The worker's side of mongos pools: opening tracked sessions (PROXY
//! header, deferred routing for `affinity = "app"`), affinity keys,
//! recording observations, and retiring sessions whose mongos left.
//!
//! Owner: one worker (a second `impl` block of `WorkerCore`). Invariants:
//! tcp pools never reach this code beyond one `mongo.is_none()` check;
//! every counter written here belongs to this worker.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::core::WorkerCore;
use crate::config::{Affinity, Balance};
use crate::obs;
use crate::protocol::mongo::{HelloMeta, COMMANDS};
use crate::protocol::proxy;
use crate::route::PoolSnapshot;
use crate::session::mongo::{MongoTracker, Observation};
use crate::session::{CloseReason, TcpSession};

/// How long a retiring session may wait for a message boundary (a reply
/// to an outstanding request) before it is closed anyway.
pub const RETIRE_GRACE: Duration = Duration::from_secs(10);

/// The key a new client is balanced on, as of accept. For `affinity =
/// "app"` this is the IP only; `app_key` extends it after the handshake.
pub fn balance_key(pool: &PoolSnapshot, peer: Option<SocketAddr>) -> Vec<u8> {
    if pool.cfg.effective_balance() != Balance::ClientIp {
        return Vec::new();
    }
    let mut key = ip_bytes(peer.map(|p| p.ip()));
    if pool.cfg.mongo.is_some_and(|m| m.affinity == Affinity::ClientIpPort) {
        key.extend_from_slice(&peer.map_or(0, |p| p.port()).to_be_bytes());
    }
    key
}

/// Whether accepting a client of `pool` needs its peer address (a
/// `getpeername` that round-robin tcp pools skip).
pub fn needs_peer(pool: &PoolSnapshot) -> bool {
    pool.cfg.effective_balance() == Balance::ClientIp
        || pool.cfg.mongo.is_some_and(|m| m.proxy_protocol.is_some())
        || pool.ip_limits.is_some()
}

fn ip_bytes(ip: Option<IpAddr>) -> Vec<u8> {
    match ip {
        Some(IpAddr::V4(v4)) => v4.octets().to_vec(),
        Some(IpAddr::V6(v6)) => v6.octets().to_vec(),
        None => Vec::new(),
    }
}

/// `affinity = "app"`: the IP key plus the handshake's application and
/// driver names (NUL-separated, so ("ab","c") and ("a","bc") differ).
pub fn app_key(ip_key: &[u8], meta: Option<&HelloMeta>) -> Vec<u8> {
    let mut key = ip_key.to_vec();
    for part in [meta.and_then(|m| m.app_name.as_deref()), meta.and_then(|m| m.driver_name.as_deref())] {
        key.push(0);
        key.extend_from_slice(part.unwrap_or("").as_bytes());
    }
    key
}

/// A mongos reply in `obs`: the request histogram of its command (a
/// mongos round trip is the backend's too), and the slow log.
fn record_reply(
    p: &obs::PoolObs,
    set: &obs::Settings,
    (b, backend): (&crate::route::BackendState, u32),
    command: u8,
    name: &crate::session::mongo::InlineName,
    db: &crate::session::mongo::InlineName,
    elapsed: std::time::Duration,
) {
    let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    if let Some(h) = p.hist.get(command as usize) {
        h.record_us(us);
    }
    if let Some(h) = p.backends.get(backend as usize) {
        h.record_us(us);
    }
    if set.slow.is_some_and(|t| !t.is_zero() && elapsed >= t) {
        let label = COMMANDS.get(command as usize).copied().unwrap_or("other");
        // The name as sent and the database: a slow log entry is no label.
        let parts = [name.as_str(), db.as_str()];
        let mut args: Vec<Vec<u8>> = parts.iter().filter(|s| !s.is_empty()).map(|s| s.as_bytes().to_vec()).collect();
        for a in &mut args {
            a.truncate(obs::slowlog::MAX_ARG_BYTES);
        }
        let unix_us = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros());
        let e = obs::Entry {
            id: 0,
            unix_us: u64::try_from(unix_us).unwrap_or(0),
            duration_us: us,
            command: label,
            args,
            backend: b.spec.name.clone(),
            client: String::new(),
        };
        p.add_slow(e, set.slowlog_max_len);
    }
}

impl WorkerCore {
    /// A session for a just-admitted client. `local` is read only when the
    /// pool sends PROXY headers.
    pub fn open_session(
        &self,
        pool: &PoolSnapshot,
        peer: Option<SocketAddr>,
        local: impl FnOnce() -> Option<SocketAddr>,
        now: Instant,
    ) -> TcpSession {
        let s = TcpSession::new(WorkerCore::limits(pool), now);
        let Some(m) = pool.cfg.mongo else { return s };
        // This core's `obs` block of the pool, made before its first request.
        // Its backend slots are the pool's backend indexes (an accept is
        // off the request path: the names' lock is taken here).
        if let Some(o) = self.stats.obs.pool(pool.stat_id, obs::Kind::Mongo) {
            for (i, b) in pool.backends.iter().enumerate() {
                o.set_backend_name(i, &b.spec.name);
            }
        }
        let mut s = s.with_mongo(MongoTracker::new(m.max_message_bytes), m.affinity == Affinity::App);
        if let Some(v) = m.proxy_protocol {
            match (peer, local()) {
                (Some(src), Some(dst)) => s.prepend_backend(&proxy::encode(v, src, dst)),
                // Without addresses a PROXY header would lie; the backend
                // rejects a connection without one, so close instead.
                _ => s.close(CloseReason::Error(crate::session::Side::Client, libc::ENOTCONN)),
            }
        }
        s
    }

    /// Picks the backend for a deferred (`affinity = "app"`) session, from
    /// the *current* snapshot of its pool (it has not connected yet, so it
    /// may adopt the newer view): the pool to keep and the backend index in
    /// it. `None` when the pool is gone or has no healthy backend.
    pub fn route(&mut self, pool: &PoolSnapshot, key: &[u8]) -> Option<(Arc<PoolSnapshot>, u32)> {
        let latest = self.snap.pool_by_name(&pool.cfg.name)?.clone();
        let shared = self.shared.clone();
        let b = self.balancer(&latest).pick_with(&latest, key, None, &|sid| shared.health.rtt_us[sid].get())?;
        Some((latest, b))
    }

    /// Counts what a session's tracker observed since the last call.
    pub fn record_mongo(&mut self, pool: &PoolSnapshot, backend: u32, session: &mut TcpSession) {
        // A deferred session's requests belong to the backend it will get.
        if session.awaiting_route() {
            return;
        }
        let Some(m) = session.mongo_mut().filter(|m| m.has_observations()) else { return };
        let b = &pool.backends[backend as usize];
        let ms = &self.stats.mongo;
        let slow = pool.cfg.mongo.and_then(|c| c.slow_op_threshold);
        let po = self.stats.obs.get(pool.stat_id);
        let set = obs::Settings::from_config(self.snap.config.server.metrics_detail, &pool.cfg.obs);
        for o in m.drain_observations() {
            match o {
                Observation::Request { opcode, command, bytes } => {
                    ms.backends[b.stat_id].opcodes[opcode as usize].incr();
                    ms.backends[b.stat_id].commands[command as usize].incr();
                    if let Some(c) = po.and_then(|p| p.cmds.get(command as usize)) {
                        c.requests.incr();
                        c.request_bytes.add(u64::from(bytes));
                    }
                }
                Observation::Reply { command, name, db, elapsed, bytes, error } => {
                    let pc = &ms.pools[pool.stat_id];
                    if let Some(c) = po.and_then(|p| p.cmds.get(command as usize)) {
                        c.reply_bytes.add(u64::from(bytes));
                        if let Some(e) = error.and_then(|e| c.errors.get(usize::from(e))) {
                            e.incr();
                        }
                    }
                    pc.latency[command as usize].record(elapsed);
                    if let Some(p) = po.filter(|_| set.timing) {
                        record_reply(p, &set, (b, backend), command, &name, &db, elapsed);
                    }
                    if slow.is_some_and(|t| elapsed >= t) {
                        pc.slow_ops.incr();
                        // The name as sent (commands outside `COMMANDS`
                        // are counted as "other" but logged by name).
                        let cmd = if name.as_str().is_empty() { COMMANDS[command as usize] } else { name.as_str() };
                        tracing::warn!(pool = %pool.cfg.name, mongos = %b.spec.name, command = cmd,
                            db = db.as_str(), duration_ms = elapsed.as_secs_f64() * 1e3, "slow operation");
                    }
                }
            }
        }
    }

    /// After a snapshot change: whether a session on `backend` of `pool`
    /// (its accept-time view) must close at its next message boundary, and
    /// by when.
    /// A session still `awaiting_route` has no backend yet and is kept
    /// (it routes on the newest snapshot), except when draining.
    pub fn retire_check(&self, pool: &PoolSnapshot, backend: u32, awaiting: bool, now: Instant) -> Option<Instant> {
        pool.cfg.mongo?;
        if let Some(d) = self.drain_deadline {
            return Some(d.min(now + RETIRE_GRACE));
        }
        if awaiting {
            return None;
        }
        let name = &pool.backends[backend as usize].spec.name;
        let gone = match self.snap.pool_by_name(&pool.cfg.name) {
            None => true,
            Some(p) => match p.backends.iter().find(|x| &x.spec.name == name) {
                None => true,
                Some(x) => !x.healthy && p.cfg.mongo.is_some_and(|m| m.close_on_unhealthy),
            },
        };
        gone.then_some(now + RETIRE_GRACE)
    }

    /// Counts closes that matter for mongos pools and logs framing errors.
    pub(super) fn mongo_closed(&self, pool: &PoolSnapshot, reason: CloseReason) {
        let pc = &self.stats.mongo.pools[pool.stat_id];
        match reason {
            CloseReason::Protocol(side, e) => {
                pc.protocol_errors.incr();
                tracing::warn!(pool = %pool.cfg.name, ?side, "closing mongo client: {e}");
            }
            CloseReason::Retired => pc.retired.incr(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_keys_separate_apps_and_fields() {
        let ip = [10, 0, 0, 1];
        let m = |a: &str, d: &str| HelloMeta { app_name: Some(a.into()), driver_name: Some(d.into()) };
        assert_ne!(app_key(&ip, Some(&m("ab", "c"))), app_key(&ip, Some(&m("a", "bc"))));
        assert_ne!(app_key(&ip, Some(&m("a", "x"))), app_key(&ip, Some(&m("b", "x"))));
        assert_eq!(app_key(&ip, None), app_key(&ip, Some(&HelloMeta::default())));
        assert!(app_key(&ip, None).starts_with(&ip));
    }
}
