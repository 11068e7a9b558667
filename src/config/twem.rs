//! Validated settings of twemproxy-style pools (`mode = "redis"` or
//! `"memcache"`), and listen addresses that may be unix sockets.
//!
//! Values only: produced by `config::load` (from Puerta's TOML or from a
//! nutcracker YAML file) and read by the snapshot builder and the request
//! engine. Defaults are nutcracker 0.5.0's (`nc_conf.h`), plus Puerta's
//! additions: `unsupported`, `max_request_bytes`, `client_queue_limit` and
//! `client_output_limit` (alias `client_reply_limit`, see `limits`).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::limits::{OutputLimit, DEFAULT_CLIENT_QUEUE_LIMIT};
use super::types::Distribution;
use crate::hash::HashKind;

/// Where a pool listens: `host:port`, or (nutcracker syntax) a unix socket
/// path with optional octal permissions, `/tmp/x.sock 0666`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    /// One socket shared by every worker (redis and memcache pools only);
    /// `perm` is applied with chmod after the bind.
    Unix {
        path: PathBuf,
        perm: Option<u32>,
    },
}

impl ListenAddr {
    /// The TCP address, if this is one.
    pub fn tcp(&self) -> Option<SocketAddr> {
        match self {
            ListenAddr::Tcp(a) => Some(*a),
            ListenAddr::Unix { .. } => None,
        }
    }

    /// True if both name the same socket: the same TCP address, or the
    /// same unix path whatever its permissions.
    pub fn same_socket(&self, other: &ListenAddr) -> bool {
        match (self, other) {
            (ListenAddr::Unix { path: a, .. }, ListenAddr::Unix { path: b, .. }) => a == b,
            (a, b) => a == b,
        }
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "{a}"),
            ListenAddr::Unix { path, perm: None } => write!(f, "{}", path.display()),
            ListenAddr::Unix { path, perm: Some(p) } => write!(f, "{} {p:04o}", path.display()),
        }
    }
}

impl From<SocketAddr> for ListenAddr {
    fn from(a: SocketAddr) -> Self {
        ListenAddr::Tcp(a)
    }
}

/// What a redis pool does with a command nutcracker does not support.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsupported {
    /// nutcracker's behaviour: close the client connection.
    Close,
    /// Reply `-ERR unsupported command 'X'` and keep the connection (redis-py
    /// 5 sends CLIENT SETINFO on connect).
    Error,
}

impl Unsupported {
    pub fn as_str(self) -> &'static str {
        match self {
            Unsupported::Close => "close",
            Unsupported::Error => "error",
        }
    }
}

/// The keys of a nutcracker pool (besides `listen`, `servers` and
/// `client_connections`, which live on `PoolConfig` itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardConfig {
    pub hash: HashKind,
    /// Two bytes, open and close, e.g. `{}`; `None` hashes whole keys.
    pub hash_tag: Option<[u8; 2]>,
    pub distribution: Distribution,
    /// Request deadline on the server side; `None` waits forever (`-1`).
    pub timeout: Option<Duration>,
    /// listen(2) backlog.
    pub backlog: u32,
    /// Password clients must AUTH with, also sent to backends on connect.
    pub redis_auth: Option<String>,
    /// Database selected on every backend connection (SELECT on connect).
    pub redis_db: u32,
    /// Connect to every server at startup instead of on first use.
    pub preconnect: bool,
    /// Connections per server (per worker in Puerta).
    pub server_connections: u32,
    /// Eject a server after `server_failure_limit` consecutive failures.
    pub auto_eject_hosts: bool,
    /// How long an ejected server stays out before it is retried.
    pub server_retry_timeout: Duration,
    pub server_failure_limit: u32,
    pub tcpkeepalive: bool,
    pub reuseport: bool,
    pub unsupported: Unsupported,
    /// Larger requests get an error and the connection is closed.
    pub max_request_bytes: usize,
    /// Reply bytes a client may leave buffered before it is closed (a
    /// client that never reads cannot grow Puerta's memory without bound).
    pub client_output_limit: OutputLimit,
    /// Request bytes a client may have queued or in flight toward servers
    /// (`noreply` included) before Puerta stops reading it.
    pub client_queue_limit: usize,
    /// redis pools: false refuses EVAL, EVALSHA, FCALL and their _RO forms
    /// (a script runs commands Puerta cannot see).
    pub allow_scripts: bool,
    /// memcache pools: true sends `flush_all` to every server; false (the
    /// default, as nutcracker refuses it) answers it with an error.
    pub allow_flush: bool,
    /// memcached: storage commands with a larger data block are refused
    /// (memcached's `-I`); never larger than the server's own limit.
    pub max_item_bytes: usize,
    /// Multi-key requests naming more keys get an error.
    pub max_keys_per_request: usize,
}

/// nutcracker's `CONF_DEFAULT_LISTEN_BACKLOG`.
pub const DEFAULT_BACKLOG: u32 = 512;
/// nutcracker's `CONF_DEFAULT_SERVER_RETRY_TIMEOUT` (30 s).
pub const DEFAULT_SERVER_RETRY_TIMEOUT: Duration = Duration::from_secs(30);
/// nutcracker's `CONF_DEFAULT_SERVER_FAILURE_LIMIT`.
pub const DEFAULT_SERVER_FAILURE_LIMIT: u32 = 2;
/// `connect_timeout` of redis and memcache pools when not written.
/// nutcracker has none (its `timeout` unset waits forever, and the kernel
/// gives up a connect after about two minutes), so a patient bound rather
/// than the 1 s of tcp pools: a connect that never completes must not hold
/// requests forever.
pub const DEFAULT_TWEM_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Redis's own `proto-max-bulk-len`-sized limit: 512 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 512 << 20;
/// The port nutcracker leaves out of a server's default hashing name
/// (libmemcached compatibility).
pub const KETAMA_DEFAULT_PORT: u16 = 11211;

impl Default for ShardConfig {
    /// nutcracker 0.5.0's defaults.
    fn default() -> Self {
        ShardConfig {
            hash: HashKind::Fnv1a64,
            hash_tag: None,
            distribution: Distribution::Ketama,
            timeout: None,
            backlog: DEFAULT_BACKLOG,
            redis_auth: None,
            redis_db: 0,
            preconnect: false,
            server_connections: 1,
            auto_eject_hosts: false,
            server_retry_timeout: DEFAULT_SERVER_RETRY_TIMEOUT,
            server_failure_limit: DEFAULT_SERVER_FAILURE_LIMIT,
            tcpkeepalive: false,
            reuseport: false,
            unsupported: Unsupported::Close,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            client_output_limit: OutputLimit::DEFAULT,
            client_queue_limit: DEFAULT_CLIENT_QUEUE_LIMIT,
            allow_scripts: true,
            allow_flush: false,
            max_item_bytes: crate::protocol::memcache::DEFAULT_MAX_ITEM_BYTES,
            max_keys_per_request: crate::protocol::resp::DEFAULT_MAX_KEYS_PER_REQUEST,
        }
    }
}
