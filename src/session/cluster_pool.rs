//! `ClusterPoolSession`: a redis_cluster pool's `ClusterSession` behind
//! the drivers' `PoolSession` interface, bound to its pool snapshot — the
//! router is the snapshot's slot map, which the control thread refreshes.
//!
//! Owner: one worker, one per cluster pool. Sans-IO like the session it
//! wraps; the driver never learns that the pool is a cluster.
//!
//! Invariants:
//! - backend ids map 1:1: the cluster session's `BackendId { idx, gen }`
//!   is the driver's `mux::BackendId { server: idx, conn: gen }`, so a
//!   reused connection slot (`idx`) never answers for its predecessor
//!   (`gen`). `server` is therefore not a pool server index: these
//!   sessions have no per-server counters (`server_stat_id` is `None`,
//!   `stats().servers` is empty) and keep theirs in `cluster_stats`;
//! - every snapshot's slot map reaches the session (`handle_topology`),
//!   so a refresh applies to the next request of every client. Before the
//!   first successful refresh the map is empty and requests get
//!   `-CLUSTERDOWN` after the session's bounded retries, never a hang;
//! - the session settings (`ClusterConfig`, listen address) are fixed for
//!   its life: a snapshot that changes them is `Incompatible`;
//! - `stats()` mirrors the cluster counters that have a twemproxy
//!   meaning (fragments, forward errors, protocol and slow-client closes)
//!   as of the last `handle_tick` (the drivers export right after one).

use crate::session::outbuf::Tx;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::cluster::{self, ClusterIntent, ClusterSession, ClusterSessionConfig, ClusterStats};
use super::mux::{BackendId, ClientClose, ClientId, MuxIntent, MuxStats, QueueGauges};
use super::pool_session::{PoolSession, PoolUpdate};
use crate::config::ClusterConfig;
use crate::route::{PoolSnapshot, SlotMap};

pub struct ClusterPoolSession {
    s: ClusterSession,
    pool: Arc<PoolSnapshot>,
    mirror: MuxStats,
}

fn to_mux(b: cluster::BackendId) -> BackendId {
    BackendId { server: b.idx, conn: b.gen }
}

fn to_cluster(b: BackendId) -> cluster::BackendId {
    cluster::BackendId { idx: b.server, gen: b.conn }
}

/// The snapshot's slot map, or an empty one (every slot unserved).
fn view(pool: &PoolSnapshot) -> Arc<SlotMap> {
    pool.cluster.clone().unwrap_or_else(|| Arc::new(SlotMap::empty()))
}

impl ClusterPoolSession {
    /// A session for `pool`; `None` unless it is a redis_cluster pool.
    pub fn new(pool: Arc<PoolSnapshot>) -> Option<ClusterPoolSession> {
        let cfg = ClusterSessionConfig::from_pool(&pool.cfg)?;
        let s = ClusterSession::new(cfg, view(&pool));
        Some(ClusterPoolSession { s, pool, mirror: MuxStats::default() })
    }

    /// The wrapped session (tests).
    pub fn session(&self) -> &ClusterSession {
        &self.s
    }

    fn sync_stats(&mut self) {
        let c = self.s.stats();
        self.mirror.fragments = c.fragments;
        self.mirror.forward_error = c.forward_error;
        self.mirror.client_err = c.client_err;
        self.mirror.slow_closed = c.slow_closed;
        self.mirror.rate_limited = c.rate_limited;
        self.mirror.rate_limited_any = c.rate_limited_any;
    }
}

impl PoolSession for ClusterPoolSession {
    fn set_rate(&mut self, ctx: Option<crate::session::ratelimit::RateCtx>) {
        self.s.set_rate(ctx);
    }

    fn set_client_rate(&mut self, id: ClientId, rate: crate::session::ratelimit::ClientRate) {
        self.s.set_client_rate(id, rate);
    }

    fn add_client(&mut self, local: Option<SocketAddr>) -> ClientId {
        self.s.add_client(local)
    }

    fn wants_local_addr(&self) -> bool {
        true
    }

    fn set_recorder(&mut self, rec: crate::obs::Recorder) {
        self.s.set_recorder(rec);
    }

    fn recorder_mut(&mut self) -> &mut crate::obs::Recorder {
        self.s.recorder_mut()
    }

    fn set_client_cert(&mut self, id: ClientId, names: Option<&crate::acl::CertNames>) {
        self.s.set_client_cert(id, names);
    }

    #[inline]
    fn handle_client_data(&mut self, id: ClientId, data: &[u8], now: Instant) {
        self.s.handle_client_data(id, data, now);
    }

    fn handle_client_eof(&mut self, id: ClientId) {
        self.s.handle_client_eof(id);
    }

    fn handle_client_error(&mut self, id: ClientId, errno: i32) {
        self.s.handle_client_error(id, errno);
    }

    #[inline]
    fn poll_client_transmit(&mut self, id: ClientId) -> Option<Tx<'_>> {
        self.s.poll_client_transmit(id)
    }

    #[inline]
    fn handle_client_sent(&mut self, id: ClientId, n: usize, now: Instant) {
        self.s.handle_client_sent(id, n, now);
    }

    #[inline]
    fn wants_client_read(&self, id: ClientId) -> bool {
        self.s.wants_client_read(id)
    }

    fn close_client(&mut self, id: ClientId, why: ClientClose) {
        self.s.close_client(id, why);
    }

    fn backend_addr(&self, b: BackendId) -> Option<SocketAddr> {
        self.s.backend_addr(to_cluster(b))
    }

    /// The node's announced hostname (`cluster-announce-hostname`, from
    /// the topology), else the host of its announced endpoint (`host:port`
    /// as CLUSTER SLOTS gave it: a hostname with
    /// `cluster-preferred-endpoint-type hostname`, else an IP).
    fn backend_host(&self, b: BackendId) -> Option<&str> {
        let addr = self.s.backend_addr(to_cluster(b))?;
        let view = self.s.topology();
        let node = view.node(view.find(addr)?)?;
        if let Some(h) = node.hostname.as_deref() {
            return Some(h);
        }
        node.endpoint.rsplit_once(':').map(|(host, _)| host).filter(|h| !h.is_empty())
    }

    fn handle_backend_connected(&mut self, b: BackendId) {
        self.s.handle_backend_connected(to_cluster(b));
    }

    fn handle_backend_connect_failed(&mut self, b: BackendId, errno: i32, now: Instant) {
        self.s.handle_backend_connect_failed(to_cluster(b), errno, now);
    }

    fn handle_backend_closed(&mut self, b: BackendId, errno: Option<i32>, now: Instant) {
        self.s.handle_backend_closed(to_cluster(b), errno, now);
    }

    #[inline]
    fn handle_backend_data(&mut self, b: BackendId, data: &[u8], now: Instant) {
        self.s.handle_backend_data(to_cluster(b), data, now);
    }

    #[inline]
    fn handle_backend_rx(&mut self, b: BackendId, rx: &mut bytes::BytesMut, now: Instant) {
        self.s.handle_backend_rx(to_cluster(b), rx, now);
    }

    #[inline]
    fn poll_backend_transmit(&mut self, b: BackendId) -> Option<Tx<'_>> {
        self.s.poll_backend_transmit(to_cluster(b))
    }

    #[inline]
    fn handle_backend_sent(&mut self, b: BackendId, n: usize, _now: Instant) {
        // Cluster requests all get replies: nothing leaves a client's
        // queue on a write alone.
        self.s.handle_backend_sent(to_cluster(b), n);
    }

    fn handle_tick(&mut self, now: Instant) {
        self.s.handle_tick(now);
        if self.s.is_draining() && self.s.client_count() == 0 {
            // Nobody is left to serve: let the driver drop the session.
            self.s.close_idle_backends();
        }
        self.sync_stats();
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.s.next_deadline()
    }

    fn buffered_bytes(&self) -> usize {
        self.s.buffered_bytes()
    }

    fn buffered_clients(&self, out: &mut Vec<(ClientId, usize)>) {
        out.extend(self.s.buffered_clients());
    }

    #[inline]
    fn poll_intent(&mut self) -> Option<MuxIntent> {
        Some(match self.s.poll_intent()? {
            ClusterIntent::Connect(b) => MuxIntent::Connect(to_mux(b)),
            ClusterIntent::CloseBackend(b, why) => MuxIntent::CloseBackend(to_mux(b), why),
            ClusterIntent::CloseClient(id, why) => MuxIntent::CloseClient(id, why),
            ClusterIntent::Report(r) => MuxIntent::Report(r),
        })
    }

    #[inline]
    fn poll_dirty_client(&mut self) -> Option<ClientId> {
        self.s.poll_dirty_client()
    }

    #[inline]
    fn poll_dirty_backend(&mut self) -> Option<BackendId> {
        self.s.poll_dirty_backend().map(to_mux)
    }

    fn handle_pool_update(&mut self, pool: &Arc<PoolSnapshot>, _now: Instant) -> PoolUpdate {
        if Arc::ptr_eq(pool, &self.pool) {
            return PoolUpdate::Applied;
        }
        // `client_auth` is part of the users, which change in place.
        let shape = |p: &PoolSnapshot| p.cfg.cluster.clone().map(|c| ClusterConfig { client_auth: Vec::new(), ..c });
        let same_shape = pool.cfg.cluster.is_some()
            && shape(pool) == shape(&self.pool)
            && pool.cfg.listen == self.pool.cfg.listen
            && pool.cfg.name == self.pool.cfg.name;
        if !same_shape {
            return PoolUpdate::Incompatible;
        }
        self.s.handle_topology(view(pool));
        self.s.set_users(pool.cfg.users.clone());
        self.pool = pool.clone();
        PoolUpdate::Applied
    }

    fn set_draining(&mut self) {
        self.s.set_draining();
    }

    fn client_count(&self) -> usize {
        self.s.client_count()
    }

    fn commands(&self) -> u64 {
        self.s.commands()
    }

    fn set_peer_totals(&mut self, clients: u64, commands: u64) {
        self.s.set_peer_totals(clients, commands);
    }

    fn has_open_backends(&self) -> bool {
        self.s.has_open_backends()
    }

    fn stats(&self) -> &MuxStats {
        &self.mirror
    }

    fn server_stat_id(&self, _server: u32) -> Option<usize> {
        None
    }

    fn server_queues(&self, _server: u32) -> QueueGauges {
        QueueGauges::default()
    }

    fn cluster_stats(&self) -> Option<&ClusterStats> {
        Some(self.s.stats())
    }
}

#[cfg(test)]
#[path = "cluster_pool_tests.rs"]
mod tests;
