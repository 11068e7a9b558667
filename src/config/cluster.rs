//! Validated settings of `mode = "redis_cluster"` pools.
//!
//! Values only: produced by `config::load` and read by the control thread
//! (topology refresh: seeds, interval, backend credentials) and by the
//! cluster session (redirects, retries, connections, local commands).
//! Defaults are listed in `Default` and in `config/redis_cluster.toml`.

use std::time::Duration;

/// Where read-only commands go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// Every command goes to the slot's master.
    Master,
    /// Reads go to a healthy replica of the slot's master; with none, the
    /// read fails (the master is never read).
    Replica,
    /// Reads go to a healthy replica when there is one, else the master.
    PreferReplica,
}

impl ReadFrom {
    pub fn as_str(self) -> &'static str {
        match self {
            ReadFrom::Master => "master",
            ReadFrom::Replica => "replica",
            ReadFrom::PreferReplica => "prefer_replica",
        }
    }
}

/// How CLUSTER INFO / SLOTS / NODES / SHARDS are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterCommands {
    /// Puerta describes itself as one node that owns every slot, so a
    /// cluster-aware client keeps talking to Puerta only.
    Proxy,
    /// Forwarded to a master: clients see the real cluster.
    Passthrough,
}

impl ClusterCommands {
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterCommands::Proxy => "proxy",
            ClusterCommands::Passthrough => "passthrough",
        }
    }
}

/// The keys of a redis_cluster pool (besides `listen`, `servers` = the
/// seed nodes, and the generic pool keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Periodic topology refresh (CLUSTER SLOTS + CLUSTER NODES).
    pub refresh_interval: Duration,
    pub read_from: ReadFrom,
    /// Backend ACL user; `Some` only together with `password`.
    pub username: Option<String>,
    /// Backend password, sent with AUTH on every connection Puerta opens.
    pub password: Option<String>,
    /// MOVED/ASK hops one request may take before its error is returned.
    pub max_redirects: u32,
    /// Multiplexed, pipelined connections per node, per worker.
    pub node_connections: u32,
    /// Most pinned connections (transactions with WATCH, blocking
    /// commands, pub/sub) open per node, per worker.
    pub pinned_connections: u32,
    /// Idle pinned connections kept for reuse per node, per worker.
    pub pinned_idle: u32,
    /// Client credentials: (user, password); the user `default` is what
    /// `AUTH <password>` checks. Empty: no AUTH needed.
    pub client_auth: Vec<(String, String)>,
    pub cluster_commands: ClusterCommands,
    /// FLUSHALL / FLUSHDB fan out to every master; false refuses them.
    pub allow_flush: bool,
    /// False refuses script and function commands (EVAL..., FCALL...,
    /// SCRIPT, FUNCTION): a script can run FLUSHALL inside the node.
    pub allow_scripts: bool,
    /// Reply deadline of non-blocking requests; `None` waits forever.
    pub request_timeout: Option<Duration>,
    /// TRYAGAIN / CLUSTERDOWN / LOADING / MASTERDOWN / unreachable node:
    /// retries before the error reaches the client. The default (10, from
    /// 50ms doubling to 1s: about 6.5s in all) rides out a failover with a
    /// cluster-node-timeout of a few seconds.
    pub max_retries: u32,
    /// First retry pause; each retry doubles it (capped at 1 s).
    pub retry_backoff: Duration,
    pub max_request_bytes: usize,
    /// Reply bytes a client may leave buffered (`limits::OutputLimit`).
    pub client_output_limit: super::limits::OutputLimit,
    /// Request bytes a client may have awaiting replies before Puerta
    /// stops reading it.
    pub client_queue_limit: usize,
    /// Multi-key requests naming more keys get an error.
    pub max_keys_per_request: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            refresh_interval: Duration::from_secs(5),
            read_from: ReadFrom::Master,
            username: None,
            password: None,
            max_redirects: 5,
            node_connections: 1,
            pinned_connections: 64,
            pinned_idle: 4,
            client_auth: Vec::new(),
            cluster_commands: ClusterCommands::Proxy,
            allow_flush: true,
            allow_scripts: true,
            request_timeout: Some(Duration::from_secs(5)),
            max_retries: 10,
            retry_backoff: Duration::from_millis(50),
            max_request_bytes: super::twem::DEFAULT_MAX_REQUEST_BYTES,
            client_output_limit: super::limits::OutputLimit::DEFAULT,
            client_queue_limit: super::limits::DEFAULT_CLIENT_QUEUE_LIMIT,
            max_keys_per_request: crate::protocol::resp::DEFAULT_MAX_KEYS_PER_REQUEST,
        }
    }
}
