//! Public vocabulary of the cluster session: configuration, backend ids,
//! intents and counters. Client ids and close reasons are the mux
//! session's, so one driver can host both kinds of session.

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::{ClusterCommands, PoolConfig, ReadFrom};
use crate::route::ClusterReport;
use crate::session::mux::{BackendClose, ClientClose, ClientId, OutputLimit};

/// Tunables of one pool's cluster session, fixed for its life.
#[derive(Debug, Clone)]
pub struct ClusterSessionConfig {
    /// Pool name, for INFO.
    pub pool: String,
    pub read_from: ReadFrom,
    pub max_redirects: u32,
    pub max_retries: u32,
    pub retry_backoff: Duration,
    /// Deadline of non-blocking requests; `None` = forever.
    pub request_timeout: Option<Duration>,
    /// Deadline of a node connect (`request_timeout` when shorter): the
    /// pool's `connect_timeout`, so a connect never holds requests forever.
    pub connect_timeout: Duration,
    /// Shared, pipelined connections per node.
    pub node_connections: u32,
    /// Most pinned connections open per node.
    pub pinned_connections: u32,
    /// Idle pinned connections kept per node.
    pub pinned_idle: u32,
    /// Backend AUTH: (user, password).
    pub backend_auth: Option<(Option<String>, String)>,
    /// Proxy users (`session::acl`; the pool's `client_auth` entries are
    /// among them); `None` = no AUTH required.
    pub users: Option<std::sync::Arc<crate::acl::Users>>,
    pub cluster_commands: ClusterCommands,
    pub allow_flush: bool,
    /// False refuses EVAL, EVALSHA, FCALL (and _RO forms), SCRIPT and
    /// FUNCTION in every state (`policy.rs`).
    pub allow_scripts: bool,
    pub max_request_bytes: usize,
    /// Reply bytes a client may leave buffered (`mux::limits`).
    pub output: OutputLimit,
    /// Request bytes a client may have queued or in flight before its
    /// reads pause.
    pub client_queue_limit: usize,
    /// Keys one request may name; more get an error naming the limit.
    pub max_keys_per_request: usize,
    /// Requests a client may have outstanding before its reads pause.
    pub max_pending_per_client: usize,
    /// Commands one MULTI may queue.
    pub max_tx_commands: usize,
    /// The address CLUSTER SLOTS / NODES announce when the driver did not
    /// say which local address a client reached.
    pub announce: SocketAddr,
}

impl ClusterSessionConfig {
    /// The session settings of a redis_cluster pool (`None` otherwise).
    pub fn from_pool(pool: &PoolConfig) -> Option<ClusterSessionConfig> {
        let c = pool.cluster.as_ref()?;
        Some(ClusterSessionConfig {
            pool: pool.name.clone(),
            read_from: c.read_from,
            max_redirects: c.max_redirects,
            max_retries: c.max_retries,
            retry_backoff: c.retry_backoff,
            request_timeout: c.request_timeout,
            connect_timeout: pool.connect_timeout,
            node_connections: c.node_connections.max(1),
            pinned_connections: c.pinned_connections.max(1),
            pinned_idle: c.pinned_idle,
            backend_auth: c.password.clone().map(|p| (c.username.clone(), p)),
            users: pool.users.clone(),
            cluster_commands: c.cluster_commands,
            allow_flush: c.allow_flush,
            allow_scripts: c.allow_scripts,
            max_request_bytes: c.max_request_bytes,
            output: c.client_output_limit,
            client_queue_limit: c.client_queue_limit,
            max_keys_per_request: c.max_keys_per_request,
            max_pending_per_client: 4096,
            max_tx_commands: 4096,
            announce: pool.listen.tcp().unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
        })
    }

    /// Defaults for tests and benches: the pool keys' defaults.
    pub fn new(announce: SocketAddr) -> ClusterSessionConfig {
        let mut pool = PoolConfig::with_defaults("cluster", announce, Vec::new());
        pool.mode = crate::config::Mode::RedisCluster;
        pool.cluster = Some(crate::config::ClusterConfig::default());
        // `from_pool` is `Some` for a pool with cluster settings.
        ClusterSessionConfig::from_pool(&pool).unwrap_or_else(|| unreachable!("cluster pool"))
    }
}

/// One backend connection of this session. Nodes come and go with the
/// topology, so connections live in a slab: `idx` is the slot (reused
/// after close), `gen` tells a reused slot from its predecessor. The node
/// address is `ClusterSession::backend_addr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BackendId {
    pub(crate) idx: u32,
    pub(crate) gen: u32,
}

impl BackendId {
    /// The slab index (unique among open connections), for drivers that
    /// keep sockets in a table indexed the same way.
    pub fn index(self) -> usize {
        self.idx as usize
    }
}

/// A decision for the driver. Drain with `poll_intent` after every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterIntent {
    /// Open a socket to `backend_addr(id)` and report
    /// `handle_backend_connected` or `handle_backend_connect_failed`. A
    /// connection can open and close within one event (a resumed
    /// SUBSCRIBE whose pin a RESET behind it drops): then `backend_addr`
    /// is `None` and this id's `CloseBackend` follows in the same drain.
    Connect(BackendId),
    /// Close this backend socket; the session already forgot it.
    CloseBackend(BackendId, BackendClose),
    /// Close this client socket (after sending what `poll_client_transmit`
    /// gave); the id is dead from now on.
    CloseClient(ClientId, ClientClose),
    /// Forward to the control thread (`ControlMsg::Cluster`).
    Report(ClusterReport),
}

/// Session counters; the driver copies them into its stats block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterStats {
    /// MOVED redirects followed.
    pub moved: u64,
    /// ASK redirects followed.
    pub ask: u64,
    /// Requests re-sent after TRYAGAIN / CLUSTERDOWN / LOADING /
    /// MASTERDOWN or an unreachable node.
    pub retried: u64,
    /// Sub-requests created by splitting multi-key commands and fan-outs.
    pub fragments: u64,
    /// Requests answered with an error because forwarding failed.
    pub forward_error: u64,
    /// Clients closed for protocol errors.
    pub client_err: u64,
    /// Clients closed past `client_output_limit`.
    pub slow_closed: u64,
    /// Backend connections opened (shared and pinned).
    pub connects: u64,
    /// Pinned connections taken from the idle pool instead of opened.
    pub pinned_reused: u64,
    /// Reports sent to the control thread.
    pub reports: u64,
    /// Requests delayed, refused or closed by a per-IP rate limit.
    pub rate_limited: u64,
    /// ... by any rate limit (per-IP or a user's), each once.
    pub rate_limited_any: u64,
}
