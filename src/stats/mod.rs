//! Per-worker and control-thread counters, summed by the admin thread.
//!
//! Ownership: each `WorkerStats` block has exactly one writer, its worker;
//! `HealthStats` has one writer, the control thread. Readers (admin) only
//! load. Because there is a single writer, increments are a relaxed load
//! plus store — no locked read-modify-write on the hot path — and a reader
//! may see a value one event stale, which is fine for metrics.
//!
//! Counters are indexed by *stat ids*, which the control thread assigns to
//! pool names and backends once and never reuses (see `route::StatIds`), so a
//! reload that reorders pools does not scramble history.

use std::sync::atomic::{AtomicU64, Ordering};

pub mod mongo;
pub mod mux;
pub mod table;
pub mod tls;

/// Most distinct pools a process can see over its lifetime (reloads included).
pub const MAX_POOLS: usize = 64;
/// Most distinct (pool, backend) pairs over the process lifetime.
pub const MAX_BACKENDS: usize = 1024;

/// A single-writer counter or gauge.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning thread may call this.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }
    #[inline]
    pub fn incr(&self) {
        self.add(1);
    }
    /// Subtracts 1 (gauges). Only the owning thread may call this.
    #[inline]
    pub fn decr(&self) {
        self.0.store(self.0.load(Ordering::Relaxed).wrapping_sub(1), Ordering::Relaxed);
    }
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counters for one pool on one worker.
#[derive(Debug, Default)]
pub struct PoolCounters {
    /// Client connections open now (gauge).
    pub client_conns: Counter,
    pub client_conns_total: Counter,
    /// Closed at accept because `max_client_connections` was reached.
    pub rejected_max_conns: Counter,
    /// Closed at accept because the client's address held `per_ip.connections`.
    pub rejected_per_ip: Counter,
    /// Closed at accept because no backend was healthy.
    pub rejected_no_backend: Counter,
    /// Closed at accept because the process-wide client limit (derived
    /// from RLIMIT_NOFILE, see `fdlimit`) was reached.
    pub rejected_client_limit: Counter,
    /// Closed because the idle timeout passed.
    pub idle_closed: Counter,
    /// Bytes read from clients.
    pub bytes_in: Counter,
    /// Bytes written to clients.
    pub bytes_out: Counter,
}

/// Counters for one backend on one worker.
#[derive(Debug, Default)]
pub struct BackendCounters {
    /// Backend connections open now (gauge).
    pub conns: Counter,
    pub conns_total: Counter,
    pub connect_failures: Counter,
}

/// Everything one worker counts. Cache-line aligned so workers never share a
/// line.
#[repr(align(128))]
#[derive(Debug)]
pub struct WorkerStats {
    /// The snapshot epoch this worker runs.
    pub epoch: Counter,
    /// Client sessions open now, all pools.
    pub sessions: Counter,
    /// Accepts that failed for lack of descriptors or memory (EMFILE,
    /// ENFILE, ENOBUFS, ENOMEM); accepting paused after each.
    pub accept_exhausted: Counter,
    /// Gauge: reply bytes buffered for this worker's clients of
    /// multiplexed pools, published once per event batch; the workers sum
    /// each other's for `[server] max_buffered_bytes`.
    pub buffered_bytes: Counter,
    /// Clients closed because the process was past `max_buffered_bytes`.
    pub buffer_cap_closed: Counter,
    /// While the process is past `max_buffered_bytes`: the buffered bytes
    /// of this worker's largest client (0 otherwise), so workers close the
    /// process's largest clients first (`worker::buffer_cap`).
    pub largest_client: Counter,
    pub pools: Box<[PoolCounters]>,
    pub backends: Box<[BackendCounters]>,
    /// Counters of mongos pools (opcodes, commands, latency).
    pub mongo: Box<mongo::MongoStats>,
    /// Counters of redis/memcache (twemproxy) pools.
    pub mux: Box<mux::MuxStats>,
    /// TLS handshakes, failures and established connections: `tls` with
    /// clients (Puerta terminates), `tls_backend` with backends (Puerta
    /// originates, `backend_tls`).
    pub tls: Box<tls::TlsStats>,
    pub tls_backend: Box<tls::TlsStats>,
    /// Latency histograms, per-command counters and slow logs (`obs`).
    pub obs: crate::obs::CoreObs,
}

impl Default for WorkerStats {
    fn default() -> Self {
        WorkerStats {
            epoch: Counter::default(),
            sessions: Counter::default(),
            accept_exhausted: Counter::default(),
            buffered_bytes: Counter::default(),
            buffer_cap_closed: Counter::default(),
            largest_client: Counter::default(),
            pools: (0..MAX_POOLS).map(|_| PoolCounters::default()).collect(),
            backends: (0..MAX_BACKENDS).map(|_| BackendCounters::default()).collect(),
            mongo: Box::default(),
            mux: Box::default(),
            tls: Box::default(),
            tls_backend: Box::default(),
            obs: Default::default(),
        }
    }
}

/// Health-check outcomes per backend; written only by the control thread.
#[derive(Debug)]
pub struct HealthStats {
    pub ok: Box<[Counter]>,
    pub fail: Box<[Counter]>,
    /// Last probe round-trip in microseconds.
    pub rtt_us: Box<[Counter]>,
    /// Restarts seen (mongos `topologyVersion.processId` changed).
    pub restarts: Box<[Counter]>,
    /// Times `auto_eject_hosts` ejected the backend.
    pub ejects: Box<[Counter]>,
    /// When it was last ejected, microseconds since the epoch (0: never).
    pub ejected_at_us: Box<[Counter]>,
    /// Topology refreshes of a redis_cluster pool, by pool stat id:
    /// successful, and failed (no node answered; the last map stays).
    pub cluster_refreshes: Box<[Counter]>,
    pub cluster_refresh_failures: Box<[Counter]>,
    /// Nodes of a redis_cluster pool, by pool stat id, that workers
    /// recently found refusing connections (or closing or timing out), as
    /// the control thread last exported them (`ClusterPool::refusing`).
    /// A list, not a counter: swapped whole, so admin never sees it
    /// half-written. Written off the request path (control thread only).
    pub cluster_refusing: Box<[arc_swap::ArcSwap<Vec<std::net::SocketAddr>>]>,
}

impl Default for HealthStats {
    fn default() -> Self {
        let mk = || (0..MAX_BACKENDS).map(|_| Counter::default()).collect();
        let per_pool = || (0..MAX_POOLS).map(|_| Counter::default()).collect();
        HealthStats {
            ok: mk(),
            fail: mk(),
            rtt_us: mk(),
            restarts: mk(),
            ejects: mk(),
            ejected_at_us: mk(),
            cluster_refreshes: per_pool(),
            cluster_refresh_failures: per_pool(),
            cluster_refusing: (0..MAX_POOLS).map(|_| arc_swap::ArcSwap::default()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_arithmetic() {
        let c = Counter::default();
        c.incr();
        c.add(4);
        c.decr();
        assert_eq!(c.get(), 4);
        c.set(9);
        assert_eq!(c.get(), 9);
    }
}
