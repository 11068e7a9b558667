//! Public vocabulary of the multiplexing session: configuration, ids,
//! intents and counters. Kept apart from the state machine so drivers and
//! tests can name them without pulling in its internals.

use std::sync::Arc;
use std::time::Duration;

use super::limits::{OutputLimit, DEFAULT_CLIENT_QUEUE_LIMIT};

/// Picks the server for a key: in production the pool ring's `pick`, in
/// tests any deterministic closure. Returning `None` (or an index past the
/// pool's servers) means no server is available for that key.
pub trait Router {
    fn route(&self, key: &[u8]) -> Option<u32>;
    /// Every server of the pool, for a command sent to all of them
    /// (memcached `flush_all`); `None`: all of the session's servers.
    fn servers(&self) -> Option<Vec<u32>> {
        None
    }
}

/// The name-value pairs a memcache pool answers `stats` with, read when
/// asked. The driver supplies it, so the session reads no clock and no
/// shared counter itself.
pub type LocalStats = Arc<dyn Fn() -> Vec<(&'static str, String)> + Send + Sync>;

impl<F: Fn(&[u8]) -> Option<u32>> Router for F {
    fn route(&self, key: &[u8]) -> Option<u32> {
        self(key)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Redis,
    Memcache,
}

/// What to do with a command the pool cannot serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsupported {
    /// Close the client, as nutcracker does.
    Close,
    /// Reply `-ERR unsupported command 'X'` and keep the connection.
    Error,
}

/// Tunables of one pool's session, fixed for its life.
#[derive(Debug, Clone)]
pub struct MuxConfig {
    pub protocol: Protocol,
    /// Number of servers in the pool; routes at or past it are refused.
    pub servers: u32,
    /// Backend connections per server (nutcracker `server_connections`).
    pub server_connections: u32,
    /// nutcracker `timeout`: connect and reply deadline; `None` = forever.
    pub timeout: Option<Duration>,
    /// Deadline of a backend connect (`timeout` when that is shorter): a
    /// connect that never completes must not hold requests forever, even
    /// when replies may take forever (the pool's `connect_timeout`).
    pub connect_timeout: Duration,
    pub max_request_bytes: usize,
    /// Reply bytes a client may leave buffered (`limits.rs`).
    pub output: OutputLimit,
    /// Request bytes a client may have queued or in flight toward
    /// backends (`noreply` included) before its reads pause.
    pub client_queue_limit: usize,
    /// memcached: the largest data block a storage command may carry.
    pub max_item_bytes: usize,
    /// Keys one request may name; more get an error naming the limit.
    pub max_keys_per_request: usize,
    /// Requests a client may have outstanding before its reads pause.
    pub max_pending_per_client: usize,
    /// nutcracker `redis_auth`: clients must AUTH; backends get AUTH.
    pub redis_auth: Option<Vec<u8>>,
    /// nutcracker `redis_db`: backends get SELECT on connect when non-zero.
    pub redis_db: u32,
    pub unsupported: Unsupported,
    /// false: script commands are refused like unsupported ones.
    pub allow_scripts: bool,
    /// memcached: true sends `flush_all` to every server; false refuses it.
    pub allow_flush: bool,
    /// Proxy users (`session::acl`): `Some` gates every Redis request with
    /// AUTH and the user's ACL (`redis_auth` then only authenticates the
    /// backends); memcache pools admit clients by source IP.
    pub users: Option<std::sync::Arc<crate::acl::Users>>,
}

impl MuxConfig {
    /// nutcracker's defaults for everything but the protocol and servers.
    pub fn new(protocol: Protocol, servers: u32) -> Self {
        MuxConfig {
            protocol,
            servers,
            server_connections: 1,
            timeout: None,
            connect_timeout: crate::config::DEFAULT_TWEM_CONNECT_TIMEOUT,
            max_request_bytes: crate::protocol::resp::DEFAULT_MAX_REQUEST_BYTES,
            output: OutputLimit::DEFAULT,
            client_queue_limit: DEFAULT_CLIENT_QUEUE_LIMIT,
            max_item_bytes: crate::protocol::memcache::DEFAULT_MAX_ITEM_BYTES,
            max_keys_per_request: crate::protocol::resp::DEFAULT_MAX_KEYS_PER_REQUEST,
            max_pending_per_client: 4096,
            redis_auth: None,
            redis_db: 0,
            unsupported: Unsupported::Close,
            allow_scripts: true,
            allow_flush: false,
            users: None,
        }
    }
}

/// A client connection of this session. The generation makes an id of a
/// closed client never match the client that reuses its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientId {
    pub(crate) idx: u32,
    pub(crate) gen: u32,
}

impl ClientId {
    /// The slot index (unique among live clients; reused after close), for
    /// drivers that keep their sockets in a table indexed the same way.
    pub fn index(self) -> usize {
        self.idx as usize
    }
}

/// One backend connection: `conn` in `0..server_connections` of `server`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BackendId {
    pub server: u32,
    pub conn: u32,
}

/// Why a client was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientClose {
    /// QUIT (redis) or quit (memcached).
    Quit,
    /// The client closed its side and every reply was delivered.
    Eof,
    /// Malformed or oversized request (an error reply was sent first).
    Protocol,
    /// Unsupported command with `unsupported = "close"`.
    Unsupported,
    /// Wrong argument count with `unsupported = "close"`.
    WrongArity,
    /// Past `client_output_limit`: its hard limit, or its soft limit for
    /// `soft_seconds`.
    SlowClient,
    /// Among the clients with the most buffered reply bytes while the
    /// process was past `[server] max_buffered_bytes`.
    BufferCap,
    /// An I/O error on the client socket.
    Error(i32),
    /// Closed by the driver (shutdown, reload).
    Shutdown,
    /// Past a rate limit with `on_limit = "close"`.
    RateLimited,
    /// A memcache client no user claims (by address or certificate).
    NoUser,
}

/// Why a session closes a backend connection. The driver counts a
/// backend TLS handshake cut short by `TimedOut` as a "timeout" handshake
/// failure (the session's connect deadline comes before the handshake's
/// own one), and any other as "closed".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendClose {
    /// A connect or request deadline passed (`ETIMEDOUT`).
    TimedOut,
    /// Anything else: a failure, an idle or retired connection.
    Other,
}

impl BackendClose {
    /// The reason for a connection failed with `errno`.
    pub fn of_errno(errno: i32) -> BackendClose {
        if errno == libc::ETIMEDOUT {
            BackendClose::TimedOut
        } else {
            BackendClose::Other
        }
    }
}

/// A decision for the driver. Drain with `poll_intent` after every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MuxIntent {
    /// Open a socket to this backend and report `handle_backend_connected`
    /// or `handle_backend_connect_failed`.
    Connect(BackendId),
    /// Close this backend socket; the session already forgot its state.
    CloseBackend(BackendId, BackendClose),
    /// Close this client socket (after sending what `poll_client_transmit`
    /// gave); the id is dead from now on.
    CloseClient(ClientId, ClientClose),
    /// A backend failed (refused, timed out, died): for ejection counting.
    ServerFailed { server: u32, errno: i32 },
    /// A cluster session's report for the control thread (a MOVED it
    /// followed, a node it could not reach): the driver forwards it as
    /// `ControlMsg::Cluster`. `MuxSession` never emits it.
    Report(crate::route::ClusterReport),
}

/// Per-server counters (nutcracker's per-server stats), declared with the
/// rest of their family in `stats::mux`.
pub use crate::stats::mux::ServerCounters;

/// Session counters; the driver copies them into its stats block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MuxStats {
    /// Sub-requests created by fan-out.
    pub fragments: u64,
    /// Requests answered with an error because forwarding failed.
    pub forward_error: u64,
    /// Clients closed for protocol errors.
    pub client_err: u64,
    /// Clients closed past `client_output_limit`.
    pub slow_closed: u64,
    /// Requests delayed, refused or closed by a per-IP rate limit.
    pub rate_limited: u64,
    /// ... by any rate limit (per-IP or a user's), each once.
    pub rate_limited_any: u64,
    pub servers: Vec<ServerCounters>,
}
