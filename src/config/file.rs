//! Layer 1: the TOML file as written, as serde structs with defaults.
//!
//! Owns the file's *shape*: which keys exist, which are tables and arrays,
//! and what an omitted key defaults to. It deliberately checks as little as
//! it can: enums, durations, addresses and ranges arrive as raw strings and
//! integers so that `validate` can check them all and report every problem
//! at once, where serde would stop at the first. What serde does reject
//! (unknown keys, a string where a table belongs) `file_de` turns into the
//! same `file:line: key: expected ..., got ...` form as validation errors.
//! Invariant: nothing here panics on file content.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

pub(crate) use super::file_de::deserialize;

/// The whole file. `pool` is `[[pool]]`, hence the singular name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    #[serde(default)]
    pub server: ServerFile,
    #[serde(default)]
    pub pool: Vec<PoolFile>,
    /// `[[user]]`: process-wide proxy users (`config::users`).
    #[serde(default)]
    pub user: Vec<UserFile>,
}

/// One `[[user]]`. `name` is `Option` so that a missing one is reported
/// with the entry's other problems.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct UserFile {
    pub name: Option<String>,
    /// Redis ACL rules, e.g. "on >s3cret ~cache:* +@read".
    pub rules: String,
    /// The pools this user may authenticate on; `None` = every pool.
    pub pools: Option<Vec<String>>,
    /// memcache pools: the client IP ranges that are this user.
    pub source: Option<Vec<String>>,
    /// Pools with `tls.ca`: the client certificate subject CN that is this
    /// user.
    pub cert_cn: Option<String>,
    /// Pools with `tls.ca`: a subjectAltName (DNS, URI, e-mail, IP) of the
    /// client certificate that is this user.
    pub cert_san: Option<String>,
    /// `{ requests, bytes, burst }`: the user's rates, process-wide.
    pub limits: Option<super::ratelimit::UserLimitsFile>,
}

/// `[server]`. Every key is optional; `Default` holds the documented defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ServerFile {
    pub workers: Scalar,
    pub cpus: Option<Vec<i64>>,
    pub io: String,
    pub admin: String,
    pub admin_token: Option<String>,
    pub log: String,
    pub shutdown_timeout: Scalar,
    /// Reply bytes buffered for all clients of the process; "off" or 0 for
    /// no cap.
    pub max_buffered_bytes: Scalar,
    /// "full" (per-request timing) or "basic".
    pub metrics_detail: String,
    /// io_uring: completions to wait for (`wait.rs`).
    pub wait_batch: i64,
    /// io_uring: microseconds after which one completion is enough.
    pub wait_batch_us: i64,
    /// io_uring: batch only after a pass with this many completions.
    pub wait_batch_after: i64,
    /// Both drivers: microseconds to poll before sleeping.
    pub busy_poll_us: i64,
}

impl Default for ServerFile {
    fn default() -> Self {
        Self {
            workers: Scalar::text("auto"),
            cpus: None,
            io: "auto".into(),
            admin: "127.0.0.1:9090".into(),
            admin_token: None,
            log: "info".into(),
            shutdown_timeout: Scalar::text("30s"),
            max_buffered_bytes: Scalar::text("2gb"),
            metrics_detail: "full".into(),
            wait_batch: 64,
            wait_batch_us: 50,
            wait_batch_after: 16,
            busy_poll_us: 0,
        }
    }
}

/// One `[[pool]]`. `name`, `listen` and `servers` have no sensible default,
/// so they are `Option` and `validate` reports them missing, alongside any
/// other problem in the same file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct PoolFile {
    pub name: Option<String>,
    pub listen: Option<String>,
    pub mode: String,
    pub servers: Option<Vec<String>>,
    /// `None` when not written: redis/memcache pools reject it.
    pub balance: Option<String>,
    /// `None` when not written: 1 s, or 10 s for redis/memcache pools.
    pub connect_timeout: Option<Scalar>,
    pub idle_timeout: Scalar,
    pub max_client_connections: i64,
    pub check_interval: Scalar,
    pub check_timeout: Scalar,
    pub rise: i64,
    pub fall: i64,
    // mongos-only keys; `None` = not written (an error outside mongos pools).
    pub require_mongos: Option<bool>,
    pub min_wire_version: Option<i64>,
    pub max_message_bytes: Option<i64>,
    pub close_on_unhealthy: Option<bool>,
    pub affinity: Option<String>,
    pub proxy_protocol: Option<String>,
    // The slow log, every pool kind (`config::obs`).
    pub slow_op_threshold: Option<Scalar>,
    pub slowlog_max_len: Option<i64>,
    pub slowlog_keys: Option<String>,
    pub hot_keys: Option<bool>,
    // nutcracker's pool keys, for mode = "redis" | "memcache". `None` when
    // not written, so a tcp pool that sets one can be told it has no effect.
    pub hash: Option<String>,
    pub hash_tag: Option<String>,
    pub distribution: Option<String>,
    pub timeout: Option<Scalar>,
    pub backlog: Option<i64>,
    pub client_connections: Option<i64>,
    pub redis_auth: Option<String>,
    pub redis_db: Option<i64>,
    pub preconnect: Option<bool>,
    pub server_connections: Option<i64>,
    pub auto_eject_hosts: Option<bool>,
    pub server_retry_timeout: Option<Scalar>,
    pub server_failure_limit: Option<i64>,
    pub tcpkeepalive: Option<bool>,
    pub reuseport: Option<bool>,
    pub unsupported: Option<String>,
    pub max_request_bytes: Option<i64>,
    pub client_reply_limit: Option<i64>,
    // Byte bounds of redis, memcache and redis_cluster pools (`limits`).
    pub client_queue_limit: Option<Scalar>,
    pub client_output_limit: Option<OutputLimitFile>,
    /// memcache pools: the largest data block a storage command may carry.
    pub max_item_bytes: Option<i64>,
    /// redis, memcache and redis_cluster pools: keys per request.
    pub max_keys_per_request: Option<i64>,
    // redis_cluster keys; `None` = not written (an error in other modes).
    pub refresh_interval: Option<Scalar>,
    pub read_from: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub max_redirects: Option<i64>,
    pub node_connections: Option<i64>,
    pub pinned_connections: Option<i64>,
    pub pinned_idle: Option<i64>,
    /// `{ user = "password" }`; a BTreeMap so errors come in a stable order.
    pub client_auth: Option<std::collections::BTreeMap<String, String>>,
    pub cluster_commands: Option<String>,
    pub allow_flush: Option<bool>,
    /// redis and redis_cluster pools.
    pub allow_scripts: Option<bool>,
    pub request_timeout: Option<Scalar>,
    pub max_retries: Option<i64>,
    pub retry_backoff: Option<Scalar>,
    // TLS (`config/tls.rs`); `None` = plaintext.
    pub tls: Option<super::tls::TlsFile>,
    pub plain_listen: Option<String>,
    pub tls_handshake_timeout: Option<Scalar>,
    pub backend_tls: Option<super::tls::BackendTlsFile>,
    // Rate and connection limits (`ratelimit`): redis, memcache and
    // redis_cluster pools.
    pub per_ip: Option<super::ratelimit::PerIpFile>,
    pub on_limit: Option<String>,
}

impl Default for PoolFile {
    fn default() -> Self {
        Self {
            name: None,
            listen: None,
            mode: "tcp".into(),
            servers: None,
            balance: None,
            connect_timeout: None,
            idle_timeout: Scalar::text("off"),
            max_client_connections: 0,
            check_interval: Scalar::text("2s"),
            check_timeout: Scalar::text("1s"),
            rise: 2,
            fall: 2,
            require_mongos: None,
            min_wire_version: None,
            max_message_bytes: None,
            close_on_unhealthy: None,
            affinity: None,
            proxy_protocol: None,
            slow_op_threshold: None,
            slowlog_max_len: None,
            slowlog_keys: None,
            hot_keys: None,
            hash: None,
            hash_tag: None,
            distribution: None,
            timeout: None,
            backlog: None,
            client_connections: None,
            redis_auth: None,
            redis_db: None,
            preconnect: None,
            server_connections: None,
            auto_eject_hosts: None,
            server_retry_timeout: None,
            server_failure_limit: None,
            tcpkeepalive: None,
            reuseport: None,
            unsupported: None,
            max_request_bytes: None,
            client_reply_limit: None,
            client_queue_limit: None,
            client_output_limit: None,
            max_item_bytes: None,
            max_keys_per_request: None,
            refresh_interval: None,
            read_from: None,
            username: None,
            password: None,
            max_redirects: None,
            node_connections: None,
            pinned_connections: None,
            pinned_idle: None,
            client_auth: None,
            cluster_commands: None,
            allow_flush: None,
            allow_scripts: None,
            request_timeout: None,
            max_retries: None,
            retry_backoff: None,
            tls: None,
            plain_listen: None,
            tls_handshake_timeout: None,
            backend_tls: None,
            per_ip: None,
            on_limit: None,
        }
    }
}

/// `client_output_limit = { hard = "1gb", soft = "256mb", soft_seconds = 30 }`;
/// omitted keys keep their defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OutputLimitFile {
    pub hard: Option<Scalar>,
    pub soft: Option<Scalar>,
    pub soft_seconds: Option<Scalar>,
}

/// A value that may be written as a string or an integer: `workers = 4` or
/// `workers = "auto"`, `check_interval = 500` or `check_interval = "2s"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scalar {
    Text(String),
    Int(i64),
}

impl Scalar {
    pub(crate) fn text(s: &str) -> Self {
        Scalar::Text(s.to_owned())
    }
}

/// Renders the value as the user wrote it, for "got ..." in messages.
impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Text(s) => write!(f, "{s:?}"),
            Scalar::Int(n) => write!(f, "{n}"),
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl Visitor<'_> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an integer")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Text(v.to_owned()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        i64::try_from(v).map(Scalar::Int).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }
}
