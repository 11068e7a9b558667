//! Per-worker counters of multiplexed pools: nutcracker's pool and server
//! stats of twemproxy-style pools (`mode = "redis"` / `"memcache"`), plus
//! Puerta's count of clients closed for not reading their replies, and
//! the Redis Cluster counters of `mode = "redis_cluster"` pools (whose
//! client closes, fragments and forward errors use the pool fields too).
//!
//! Ownership as in `stats`: one writer (the worker, which copies its
//! sessions' counters here on its stats tick), relaxed loads by admin.
//! Counters only grow; the queue fields are gauges the worker overwrites
//! with the current values of all its sessions for that server.

use super::{Counter, MAX_BACKENDS, MAX_POOLS};

/// One twemproxy pool on one worker (nutcracker's pool stats).
#[derive(Debug, Default)]
pub struct MuxPoolCounters {
    pub client_eof: Counter,
    pub client_err: Counter,
    pub forward_error: Counter,
    pub fragments: Counter,
    /// Clients closed because their buffered replies passed
    /// `client_output_limit` (not a nutcracker stat).
    pub slow_closed: Counter,
    /// Client requests decoded (INFO's `total_commands_processed`; the
    /// worker overwrites it with its sessions' count on its stats tick).
    pub commands: Counter,
}

/// One server of a twemproxy pool on one worker (nutcracker's server stats
/// other than connections and ejections, which live elsewhere).
#[derive(Debug, Default)]
pub struct MuxServerCounters {
    pub server_eof: Counter,
    pub server_err: Counter,
    pub server_timedout: Counter,
    pub requests: Counter,
    pub request_bytes: Counter,
    pub responses: Counter,
    pub response_bytes: Counter,
    /// Gauges: requests queued in Puerta, not yet written to the server.
    pub in_queue: Counter,
    pub in_queue_bytes: Counter,
    /// Gauges: requests written, their replies still owed.
    pub out_queue: Counter,
    pub out_queue_bytes: Counter,
}

/// One redis_cluster pool on one worker (`session::cluster::ClusterStats`).
#[derive(Debug, Default)]
pub struct ClusterPoolCounters {
    pub moved: Counter,
    pub ask: Counter,
    pub retried: Counter,
    pub connects: Counter,
    pub pinned_reused: Counter,
    pub reports: Counter,
}

/// Everything one worker counts for multiplexed pools, by stat id.
#[derive(Debug)]
pub struct MuxStats {
    pub pools: Box<[MuxPoolCounters]>,
    pub servers: Box<[MuxServerCounters]>,
    pub clusters: Box<[ClusterPoolCounters]>,
}

impl Default for MuxStats {
    fn default() -> Self {
        MuxStats {
            pools: (0..MAX_POOLS).map(|_| MuxPoolCounters::default()).collect(),
            servers: (0..MAX_BACKENDS).map(|_| MuxServerCounters::default()).collect(),
            clusters: (0..MAX_POOLS).map(|_| ClusterPoolCounters::default()).collect(),
        }
    }
}
