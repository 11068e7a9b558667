//! Validated, typed configuration: what the rest of Puerta consumes.
//!
//! Owns nothing at runtime; values here are produced once by `config::load`
//! (or a reload) and then shared read-only, usually inside a `Snapshot`.
//! Invariant: every value in these structs has already been checked — a pool
//! has at least one server, durations are positive where they must be, and
//! names are unique. Nothing downstream re-validates.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::cluster::ClusterConfig;
use super::twem::{ListenAddr, ShardConfig};

/// The whole validated file.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file this came from; reload re-reads it.
    pub source: PathBuf,
    pub server: ServerSettings,
    pub pools: Vec<PoolConfig>,
    /// `[[user]]`, in file order; each pool's share is `PoolConfig::users`.
    pub users: Vec<UserConfig>,
}

/// One `[[user]]`: the compiled rules and the pools it is limited to.
#[derive(Debug, Clone, PartialEq)]
pub struct UserConfig {
    pub user: std::sync::Arc<crate::acl::User>,
    /// `None`: every pool.
    pub pools: Option<Vec<String>>,
    /// `limits`: the user's rates across every pool and worker (`None`:
    /// unlimited).
    pub limits: Option<crate::limit::RateSpec>,
}

/// Process-wide settings from `[server]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    pub workers: Workers,
    /// CPUs to pin workers to, in order; `None` = the usable CPUs in order.
    pub cpus: Option<Vec<usize>>,
    pub io: IoMode,
    pub admin: SocketAddr,
    /// Bearer token the admin port requires (all but /healthz and /ready).
    pub admin_token: Option<AdminToken>,
    /// A tracing `EnvFilter` directive, e.g. "info" or "puerta=debug".
    pub log: String,
    pub shutdown_timeout: Duration,
    /// Reply bytes buffered for all clients of the process before the
    /// clients with the most are closed; `None` = no cap.
    pub max_buffered_bytes: Option<u64>,
    /// Per-request timing on ("full") or off ("basic").
    pub metrics_detail: super::obs::MetricsDetail,
    /// How workers wait for events (`wait_batch`, `wait_batch_us`,
    /// `busy_poll_us`).
    pub wait: super::wait::WaitPolicy,
}

/// `[server] admin_token`: 1 to 1024 visible ASCII characters. `Debug`
/// hides it so that a logged config never carries the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

impl AdminToken {
    /// Checks the text; what goes in an HTTP header must be visible ASCII.
    pub fn new(text: &str) -> Result<Self, String> {
        if text.is_empty() || text.len() > 1024 || !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!("expected 1 to 1024 visible ASCII characters (no spaces), got {} bytes", text.len()));
        }
        Ok(AdminToken(text.to_owned()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    /// One per CPU the process may use.
    Auto,
    Count(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoMode {
    /// io_uring when `io_uring_setup` works, else epoll with a warning.
    Auto,
    Uring,
    Epoll,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Layer-4: bytes are relayed unchanged between a client and one backend.
    Tcp,
    /// MongoDB clients over mongos routers: the tcp relay plus message
    /// framing, hello health checks, affinity and per-command stats.
    Mongos,
    /// twemproxy-style sharded Redis (nutcracker's `redis: true`).
    Redis,
    /// twemproxy-style sharded memcached, ASCII protocol.
    Memcache,
    /// Redis Cluster behind one address: slot routing, redirects and
    /// topology refresh (`ClusterConfig`).
    RedisCluster,
}

/// nutcracker's `distribution:` for redis/memcache pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Distribution {
    /// Consistent hashing, 160 points per server scaled by weight.
    Ketama,
    /// `hash % total_weight` over the servers, each repeated `weight` times.
    Modula,
    /// A uniformly random live server per request.
    Random,
}

impl Distribution {
    pub fn as_str(self) -> &'static str {
        match self {
            Distribution::Ketama => "ketama",
            Distribution::Modula => "modula",
            Distribution::Random => "random",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    RoundRobin,
    /// Fewest connections *on this worker* (counts are per core, unshared).
    LeastConn,
    /// Rendezvous hash of the client IP, computed in the snapshot.
    ClientIp,
    /// Lowest health-check round trip (ties round-robin).
    LeastLatency,
    /// Round robin in proportion to server weights.
    Weighted,
}

/// How a mongos pool pins clients to a mongos (see `MongoConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Affinity {
    /// Every connection of one client IP reaches the same mongos.
    ClientIp,
    /// Per connection (IP and port): only safe for loadBalanced drivers.
    ClientIpPort,
    /// Client IP plus the first hello's application and driver names.
    App,
    /// No pinning: `balance` alone decides.
    None,
}

/// Keys that exist only for `mode = "mongos"` pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MongoConfig {
    /// Probe replies must say `msg: "isdbgrid"`.
    pub require_mongos: bool,
    pub min_wire_version: i32,
    /// Largest messageLength accepted from either side.
    pub max_message_bytes: u32,
    /// Close clients pinned to a mongos that turned unhealthy, at a message
    /// boundary.
    pub close_on_unhealthy: bool,
    pub affinity: Affinity,
    /// Send a PROXY header first on each backend connection.
    pub proxy_protocol: Option<crate::protocol::proxy::ProxyVersion>,
    /// Log operations slower than this; `None` = off.
    pub slow_op_threshold: Option<Duration>,
}

impl Default for MongoConfig {
    fn default() -> Self {
        MongoConfig {
            require_mongos: true,
            min_wire_version: 9,
            max_message_bytes: crate::protocol::mongo::DEFAULT_MAX_MESSAGE,
            close_on_unhealthy: true,
            affinity: Affinity::ClientIp,
            proxy_protocol: None,
            slow_op_threshold: None,
        }
    }
}

/// One `[[pool]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    pub name: String,
    pub listen: ListenAddr,
    pub mode: Mode,
    pub servers: Vec<ServerSpec>,
    pub balance: Balance,
    pub connect_timeout: Duration,
    /// `None` means connections never idle out.
    pub idle_timeout: Option<Duration>,
    /// `None` means unlimited. Counted across all workers of the pool.
    pub max_client_connections: Option<usize>,
    pub health: HealthConfig,
    /// Present exactly when `mode` is `Mongos`.
    pub mongo: Option<MongoConfig>,
    /// nutcracker's pool keys; `Some` exactly for redis and memcache pools.
    pub shard: Option<ShardConfig>,
    /// Present exactly when `mode` is `RedisCluster`.
    pub cluster: Option<ClusterConfig>,
    /// TLS toward clients and backends; plaintext by default.
    pub tls: super::tls::PoolTls,
    /// The slow log (every kind; tcp pools ignore it).
    pub obs: super::obs::ObsConfig,
    /// The users this pool authenticates (`config::users`); `None`: no
    /// proxy users (nutcracker's `redis_auth` alone, or open).
    pub users: Option<std::sync::Arc<crate::acl::Users>>,
    /// `per_ip` and `on_limit` (always off outside multiplexed pools).
    pub limits: super::ratelimit::RateLimits,
}

/// Active health-check settings for a pool's backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthConfig {
    pub check_interval: Duration,
    pub check_timeout: Duration,
    /// Consecutive successes that mark a down backend up.
    pub rise: u32,
    /// Consecutive failures that mark an up backend down.
    pub fall: u32,
}

/// A backend, written `host:port[:weight] [name]` as in nutcracker.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerSpec {
    pub addr: SocketAddr,
    pub weight: u32,
    /// Identity used by hashing; defaults to the `host:port` text.
    pub name: String,
    /// The host as written (a DNS name or an IP literal, without `[]`):
    /// the name `backend_tls` verifies by default. Empty when the server
    /// was not written by a user (tests, announced nodes): the address's
    /// IP is used.
    pub host: String,
}

// Names as written in the config file, so `puerta check`, logs and admin
// output use the same words a user would type.

impl IoMode {
    pub fn as_str(self) -> &'static str {
        match self {
            IoMode::Auto => "auto",
            IoMode::Uring => "uring",
            IoMode::Epoll => "epoll",
        }
    }
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Tcp => "tcp",
            Mode::Mongos => "mongos",
            Mode::Redis => "redis",
            Mode::Memcache => "memcache",
            Mode::RedisCluster => "redis_cluster",
        }
    }
}

impl Balance {
    pub fn as_str(self) -> &'static str {
        match self {
            Balance::RoundRobin => "round_robin",
            Balance::LeastConn => "least_conn",
            Balance::ClientIp => "client_ip",
            Balance::LeastLatency => "least_latency",
            Balance::Weighted => "weighted",
        }
    }
}

impl Affinity {
    pub fn as_str(self) -> &'static str {
        match self {
            Affinity::ClientIp => "client_ip",
            Affinity::ClientIpPort => "client_ip_port",
            Affinity::App => "app",
            Affinity::None => "none",
        }
    }
}

impl Default for HealthConfig {
    /// The documented defaults: probe every 2s, 1s timeout, rise 2, fall 2.
    fn default() -> Self {
        HealthConfig { check_interval: Duration::from_secs(2), check_timeout: Duration::from_secs(1), rise: 2, fall: 2 }
    }
}

impl PoolConfig {
    /// A tcp pool with every optional key at its documented default; used by
    /// tests and benches that need a pool without writing a file.
    pub fn with_defaults(name: &str, listen: SocketAddr, servers: Vec<ServerSpec>) -> Self {
        PoolConfig {
            name: name.to_string(),
            listen: ListenAddr::Tcp(listen),
            mode: Mode::Tcp,
            servers,
            balance: Balance::RoundRobin,
            connect_timeout: Duration::from_secs(1),
            idle_timeout: None,
            max_client_connections: None,
            health: HealthConfig::default(),
            shard: None,
            mongo: None,
            cluster: None,
            tls: Default::default(),
            obs: Default::default(),
            users: None,
            limits: Default::default(),
        }
    }

    /// The balancing a worker applies: a mongos pool with affinity hashes
    /// its affinity key over the snapshot's rendezvous table, like
    /// `client_ip`.
    pub fn effective_balance(&self) -> Balance {
        match self.mongo {
            Some(m) if m.affinity != Affinity::None => Balance::ClientIp,
            _ => self.balance,
        }
    }
}
