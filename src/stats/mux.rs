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
//!
//! The twemproxy pool and server families are declared once, with
//! `counter_table!` (see `stats::table`): a row there is the session
//! counter, this mirror, the admin sum, the `/metrics` family and the
//! nutcracker stats field.

use super::table::counter_table;
use super::{Counter, MAX_BACKENDS, MAX_POOLS};

counter_table! {
    /// One twemproxy pool on one worker (nutcracker's pool stats).
    mirror MuxPoolCounters;
    /// nutcracker's per-pool counters summed over workers.
    sum PoolTwem;
    rows POOL_ROWS;
    session none;
    gauges none;
    counters {
        client_eof: "client_eof_total", "Client connections closed by the client (EOF).", json Some("client_eof");
        client_err: "client_err_total", "Client connections closed on an error (I/O, protocol, unsupported).",
            json Some("client_err");
        forward_error: "forward_error_total", "Requests answered with an error because forwarding failed.",
            json Some("forward_error");
        fragments: "fragments_total", "Sub-requests created by splitting multi-key requests.", json Some("fragments");
        /// Clients closed because their buffered replies passed
        /// `client_output_limit` (not a nutcracker stat).
        slow_closed: "slow_clients_closed_total",
            "Clients closed past client_output_limit (hard, or soft for soft_seconds).", json None;
    }
    gauges {}
    extra {
        /// Client requests decoded (INFO's `total_commands_processed`; the
        /// worker overwrites it with its sessions' count on its stats tick).
        commands: Counter;
        /// Requests delayed, refused or closed by the pool's per-IP rate
        /// limits, all addresses together (no per-IP label: unbounded).
        /// Published for every pool, mongos ones too (`admin::limits`).
        ip_rate_limited: Counter;
        /// Requests delayed, refused or closed by any rate limit of the
        /// pool: its per-IP buckets or its users' limits (each once).
        rate_limited: Counter;
    }
}

counter_table! {
    /// One server of a twemproxy pool on one worker (nutcracker's server
    /// stats other than connections and ejections, which live elsewhere).
    mirror MuxServerCounters;
    /// nutcracker's per-server counters summed over workers.
    sum ServerTwem;
    rows SERVER_ROWS;
    session ServerCounters;
    gauges QueueGauges;
    counters {
        server_eof: "server_eof_total", "Server connections closed by the server (EOF).", json Some("server_eof");
        server_err: "server_err_total", "Server connections closed on an error.", json Some("server_err");
        server_timedout: "server_timedout_total", "Server connections closed by the request timeout.",
            json Some("server_timedout");
        requests: "server_requests_total", "Requests forwarded to the server.", json Some("requests");
        request_bytes: "server_request_bytes_total", "Request bytes forwarded to the server.",
            json Some("request_bytes");
        responses: "server_responses_total", "Responses read from the server.", json Some("responses");
        response_bytes: "server_response_bytes_total", "Response bytes read from the server.",
            json Some("response_bytes");
    }
    gauges {
        /// Requests queued in Puerta, not yet written to the server.
        in_queue: "server_in_queue", "Requests queued for the server, not yet written.", json Some("in_queue");
        in_queue_bytes: "server_in_queue_bytes", "Bytes of requests queued, not yet written.",
            json Some("in_queue_bytes");
        /// Requests written, their replies still owed.
        out_queue: "server_out_queue", "Requests written to the server, reply owed.", json Some("out_queue");
        out_queue_bytes: "server_out_queue_bytes", "Bytes of requests written, reply owed.",
            json Some("out_queue_bytes");
    }
    extra {}
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
