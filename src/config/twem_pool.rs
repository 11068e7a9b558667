//! Layer 2 for nutcracker's pool keys: `PoolFile` -> `ShardConfig`.
//!
//! Owns the rules for hash, hash_tag, distribution, timeouts, counts and
//! flags of redis/memcache pools, and the rule that a tcp pool may not set
//! them (they would silently do nothing). Problem paths are relative to
//! the pool table; the caller prefixes `pool[i]`.

use std::time::Duration;

use super::file::{PoolFile, Scalar};
use super::span::KeyPath;
use super::twem::{ShardConfig, Unsupported};
use super::types::{Distribution, Mode};
use super::validate::{duration, int_in, pick, Problems};
use crate::hash::HashKind;

/// Every nutcracker-only key with whether `file` sets it.
fn twem_keys(file: &PoolFile) -> [(&'static str, bool); 22] {
    [
        ("hash", file.hash.is_some()),
        ("hash_tag", file.hash_tag.is_some()),
        ("distribution", file.distribution.is_some()),
        ("timeout", file.timeout.is_some()),
        ("backlog", file.backlog.is_some()),
        ("client_connections", file.client_connections.is_some()),
        ("redis_auth", file.redis_auth.is_some()),
        ("redis_db", file.redis_db.is_some()),
        ("preconnect", file.preconnect.is_some()),
        ("server_connections", file.server_connections.is_some()),
        ("auto_eject_hosts", file.auto_eject_hosts.is_some()),
        ("server_retry_timeout", file.server_retry_timeout.is_some()),
        ("server_failure_limit", file.server_failure_limit.is_some()),
        ("tcpkeepalive", file.tcpkeepalive.is_some()),
        ("reuseport", file.reuseport.is_some()),
        ("unsupported", file.unsupported.is_some()),
        ("max_request_bytes", file.max_request_bytes.is_some()),
        ("client_reply_limit", file.client_reply_limit.is_some()),
        ("client_queue_limit", file.client_queue_limit.is_some()),
        ("client_output_limit", file.client_output_limit.is_some()),
        ("max_item_bytes", file.max_item_bytes.is_some()),
        ("max_keys_per_request", file.max_keys_per_request.is_some()),
    ]
}

/// The keys of this table that redis_cluster pools take too
/// (`cluster_pool` reads them).
const CLUSTER_TOO: [&str; 5] =
    ["max_request_bytes", "client_reply_limit", "client_queue_limit", "client_output_limit", "max_keys_per_request"];

/// Reports every nutcracker key set on a tcp, mongos or cluster pool
/// (except, on a cluster pool, the keys it takes too).
pub(crate) fn reject_outside_shard(file: &PoolFile, mode: Mode, p: &mut Problems) {
    for (key, set) in twem_keys(file) {
        if !set || (mode == Mode::RedisCluster && CLUSTER_TOO.contains(&key)) {
            continue;
        }
        let modes = if CLUSTER_TOO.contains(&key) {
            r#""redis", "memcache" or "redis_cluster""#
        } else {
            r#""redis" or "memcache""#
        };
        p.add(
            KeyPath::root().key(key),
            format!(r#"applies only to mode {modes}, and this pool is "{}""#, mode.as_str()),
        );
    }
}

/// Converts the nutcracker keys of a redis or memcache pool.
pub(crate) fn shard(file: &PoolFile, mode: Mode, p: &mut Problems) -> Option<ShardConfig> {
    let key = |k: &str| KeyPath::root().key(k);
    let d = ShardConfig::default();
    if file.balance.is_some() {
        p.add(key("balance"), "applies only to mode \"tcp\"; redis and memcache pools place keys by `distribution`");
    }
    if mode == Mode::Memcache {
        for (k, set) in [("redis_auth", file.redis_auth.is_some()), ("redis_db", file.redis_db.is_some())] {
            if set {
                p.add(key(k), r#"applies only to mode "redis", and this pool is "memcache""#);
            }
        }
    }
    if mode == Mode::Redis && file.max_item_bytes.is_some() {
        p.add(key("max_item_bytes"), r#"applies only to mode "memcache", and this pool is "redis""#);
    }
    let hash = match &file.hash {
        None => Some(d.hash),
        Some(h) => p.check(key("hash"), hash_kind(h)),
    };
    let hash_tag = match &file.hash_tag {
        None => Some(None),
        Some(t) => p.check(key("hash_tag"), hash_tag(t).map(Some)),
    };
    let distribution = match &file.distribution {
        None => Some(d.distribution),
        Some(t) => p.check(
            key("distribution"),
            pick(
                t,
                &[("ketama", Distribution::Ketama), ("modula", Distribution::Modula), ("random", Distribution::Random)],
            ),
        ),
    };
    let timeout = match &file.timeout {
        None => Some(d.timeout),
        Some(v) => p.check(key("timeout"), timeout(v)),
    };
    let count = |p: &mut Problems, k: &str, v: Option<i64>, min: i64, max: i64, default: u32| match v {
        None => Some(default),
        Some(n) => p.check(key(k), int_in(n, min, max)).map(|n| n as u32),
    };
    let backlog = count(p, "backlog", file.backlog, 1, i64::from(i32::MAX), d.backlog);
    let redis_db = count(p, "redis_db", file.redis_db, 0, i64::from(i32::MAX), d.redis_db);
    let server_connections = count(p, "server_connections", file.server_connections, 1, 1 << 16, d.server_connections);
    let server_failure_limit =
        count(p, "server_failure_limit", file.server_failure_limit, 1, i64::from(i32::MAX), d.server_failure_limit);
    let server_retry_timeout = match &file.server_retry_timeout {
        None => Some(d.server_retry_timeout),
        Some(v) => p.check(key("server_retry_timeout"), duration(v)),
    };
    let redis_auth = match &file.redis_auth {
        Some(a) if a.is_empty() => {
            p.add(key("redis_auth"), "expected a non-empty password (omit the key for no AUTH)");
            None
        }
        a => Some(a.clone()),
    };
    let unsupported = match &file.unsupported {
        None => Some(d.unsupported),
        Some(u) => {
            p.check(key("unsupported"), pick(u, &[("close", Unsupported::Close), ("error", Unsupported::Error)]))
        }
    };
    let max_request_bytes = match file.max_request_bytes {
        None => Some(d.max_request_bytes),
        Some(n) => p.check(key("max_request_bytes"), int_in(n, 1, i64::MAX)).map(|n| n as usize),
    };
    let limits = super::limits::pool_limits(file, p);
    // At most memcached's own ceiling for `-I` (1 GiB).
    let max_item = crate::protocol::memcache::MAX_ITEM_BYTES_LIMIT as i64;
    let max_item_bytes = match file.max_item_bytes {
        None => Some(d.max_item_bytes),
        Some(n) => p.check(key("max_item_bytes"), int_in(n, 1, max_item)).map(|n| n as usize),
    };
    let max_keys_per_request = max_keys(file, p, d.max_keys_per_request);
    Some(ShardConfig {
        hash: hash?,
        hash_tag: hash_tag?,
        distribution: distribution?,
        timeout: timeout?,
        backlog: backlog?,
        redis_auth: redis_auth?,
        redis_db: redis_db?,
        preconnect: file.preconnect.unwrap_or(d.preconnect),
        server_connections: server_connections?,
        auto_eject_hosts: file.auto_eject_hosts.unwrap_or(d.auto_eject_hosts),
        server_retry_timeout: server_retry_timeout?,
        server_failure_limit: server_failure_limit?,
        tcpkeepalive: file.tcpkeepalive.unwrap_or(d.tcpkeepalive),
        reuseport: file.reuseport.unwrap_or(d.reuseport),
        unsupported: unsupported?,
        max_request_bytes: max_request_bytes?,
        client_output_limit: limits?.0,
        client_queue_limit: limits?.1,
        // `cluster_pool` reports it on a memcache pool.
        allow_scripts: file.allow_scripts.unwrap_or(d.allow_scripts),
        // `cluster_pool` reports it on a redis pool.
        allow_flush: file.allow_flush.unwrap_or(d.allow_flush),
        max_item_bytes: max_item_bytes?,
        max_keys_per_request: max_keys_per_request?,
    })
}

/// `max_keys_per_request` of a redis, memcache or redis_cluster pool: at
/// least 1, at most the 1M arguments a request may have.
pub(crate) fn max_keys(file: &PoolFile, p: &mut Problems, default: usize) -> Option<usize> {
    match file.max_keys_per_request {
        None => Some(default),
        Some(n) => p.check(KeyPath::root().key("max_keys_per_request"), int_in(n, 1, 1 << 20)).map(|n| n as usize),
    }
}

fn hash_kind(name: &str) -> Result<HashKind, String> {
    HashKind::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = HashKind::ALL.iter().map(|k| k.as_str()).collect();
        format!("expected one of {}, got {name:?}", names.join(", "))
    })
}

/// nutcracker requires exactly two characters: open and close.
fn hash_tag(text: &str) -> Result<[u8; 2], String> {
    match text.as_bytes() {
        &[open, close] => Ok([open, close]),
        _ => Err(format!(r#"expected two characters like "{{}}", got {text:?}"#)),
    }
}

/// nutcracker's `timeout`: milliseconds, `-1` (its default) waits forever;
/// Puerta also takes duration text and "off".
fn timeout(v: &Scalar) -> Result<Option<Duration>, String> {
    match v {
        Scalar::Int(-1) => Ok(None),
        Scalar::Int(n) if *n > 0 => Ok(Some(Duration::from_millis(*n as u64))),
        Scalar::Text(t) if t == "off" || t == "-1" => Ok(None),
        Scalar::Text(_) => match duration(v) {
            Ok(d) if !d.is_zero() => Ok(Some(d)),
            _ => Err(format!(r#"expected milliseconds > 0, a duration like "400ms", or -1 for none, got {v}"#)),
        },
        _ => Err(format!(r#"expected milliseconds > 0, a duration like "400ms", or -1 for none, got {v}"#)),
    }
}

#[cfg(test)]
#[path = "limits_tests.rs"]
mod limits_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_tag_must_be_two_bytes() {
        assert_eq!(hash_tag("{}"), Ok(*b"{}"));
        assert_eq!(hash_tag("::"), Ok(*b"::"));
        assert!(hash_tag("{").is_err());
        assert!(hash_tag("{}}").is_err());
    }

    #[test]
    fn timeout_takes_ms_minus_one_and_durations() {
        assert_eq!(timeout(&Scalar::Int(-1)), Ok(None));
        assert_eq!(timeout(&Scalar::Int(400)), Ok(Some(Duration::from_millis(400))));
        assert_eq!(timeout(&Scalar::text("2s")), Ok(Some(Duration::from_secs(2))));
        assert_eq!(timeout(&Scalar::text("off")), Ok(None));
        assert!(timeout(&Scalar::Int(0)).is_err());
        assert!(timeout(&Scalar::Int(-5)).is_err());
        assert!(timeout(&Scalar::text("soon")).is_err());
    }
}
