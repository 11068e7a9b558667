//! Layer 2 for the keys of `mode = "redis_cluster"` pools: `PoolFile` ->
//! `ClusterConfig`.
//!
//! Owns the rule that these keys are written only in cluster pools (a
//! typo of `mode` must not silently drop them), their ranges, and the
//! pairing rules (a backend `username` needs a `password`). Problem paths
//! are relative to the pool table, as in `pool`.

use super::cluster::{ClusterCommands, ClusterConfig, ReadFrom};
use super::file::PoolFile;
use super::span::KeyPath;
use super::types::Mode;
use super::validate::{int_in, optional_duration, pick, positive_duration, Problems};

/// Every cluster-only key with whether `file` sets it.
fn cluster_keys(file: &PoolFile) -> [(&'static str, bool); 13] {
    [
        ("refresh_interval", file.refresh_interval.is_some()),
        ("read_from", file.read_from.is_some()),
        ("username", file.username.is_some()),
        ("password", file.password.is_some()),
        ("max_redirects", file.max_redirects.is_some()),
        ("node_connections", file.node_connections.is_some()),
        ("pinned_connections", file.pinned_connections.is_some()),
        ("pinned_idle", file.pinned_idle.is_some()),
        ("client_auth", file.client_auth.is_some()),
        ("cluster_commands", file.cluster_commands.is_some()),
        ("request_timeout", file.request_timeout.is_some()),
        ("max_retries", file.max_retries.is_some()),
        ("retry_backoff", file.retry_backoff.is_some()),
    ]
}

/// `Some(None)` for a valid non-cluster pool, `Some(Some(cfg))` for a
/// valid cluster pool, `None` after a problem was recorded (or `mode` was
/// bad).
pub(crate) fn convert(file: &PoolFile, mode: Option<Mode>, p: &mut Problems) -> Option<Option<ClusterConfig>> {
    let key = |k: &str| KeyPath::root().key(k);
    match mode? {
        Mode::RedisCluster => {}
        other => {
            let mut ok = true;
            // Memcache pools read `allow_flush` too (`twem_pool`).
            if file.allow_flush.is_some() && other != Mode::Memcache {
                let msg = format!(
                    r#"applies only to mode "memcache" or "redis_cluster", and this pool is "{}""#,
                    other.as_str()
                );
                p.add(key("allow_flush"), msg);
                ok = false;
            }
            // Redis pools read `allow_scripts` too (`twem_pool`).
            if file.allow_scripts.is_some() && other != Mode::Redis {
                let msg = format!(
                    r#"applies only to mode "redis" or "redis_cluster", and this pool is "{}""#,
                    other.as_str()
                );
                p.add(key("allow_scripts"), msg);
                ok = false;
            }
            for (k, set) in cluster_keys(file) {
                if set {
                    p.add(
                        key(k),
                        format!("only valid with mode = \"redis_cluster\", got mode = \"{}\"", other.as_str()),
                    );
                    ok = false;
                }
            }
            return ok.then_some(None);
        }
    }
    if file.balance.is_some() {
        p.add(key("balance"), "applies only to mode \"tcp\"; cluster pools route keys by slot");
    }
    let d = ClusterConfig::default();
    let refresh_interval = match &file.refresh_interval {
        None => Some(d.refresh_interval),
        Some(v) => p.check(key("refresh_interval"), positive_duration(v)),
    };
    let read_from = match &file.read_from {
        None => Some(d.read_from),
        Some(r) => p.check(
            key("read_from"),
            pick(
                r,
                &[
                    ("master", ReadFrom::Master),
                    ("replica", ReadFrom::Replica),
                    ("prefer_replica", ReadFrom::PreferReplica),
                ],
            ),
        ),
    };
    let non_empty = |p: &mut Problems, k: &str, v: &Option<String>| match v {
        Some(s) if s.is_empty() => {
            p.add(key(k), "expected a non-empty string (omit the key instead)");
            None
        }
        v => Some(v.clone()),
    };
    let username = non_empty(p, "username", &file.username);
    let password = non_empty(p, "password", &file.password);
    if file.username.is_some() && file.password.is_none() {
        p.add(key("username"), "expected `password` as well: AUTH with a user needs one");
    }
    let count = |p: &mut Problems, k: &str, v: Option<i64>, min: i64, max: i64, default: u32| match v {
        None => Some(default),
        Some(n) => p.check(key(k), int_in(n, min, max)).map(|n| n as u32),
    };
    let max_redirects = count(p, "max_redirects", file.max_redirects, 0, 100, d.max_redirects);
    let node_connections = count(p, "node_connections", file.node_connections, 1, 64, d.node_connections);
    let pinned_connections = count(p, "pinned_connections", file.pinned_connections, 1, 1 << 16, d.pinned_connections);
    let pinned_idle = count(p, "pinned_idle", file.pinned_idle, 0, 1 << 16, d.pinned_idle);
    let max_retries = count(p, "max_retries", file.max_retries, 0, 100, d.max_retries);
    if let (Some(idle), Some(max)) = (pinned_idle, pinned_connections) {
        if idle > max {
            p.add(key("pinned_idle"), format!("expected at most pinned_connections ({max}), got {idle}"));
        }
    }
    let client_auth = match &file.client_auth {
        None => Some(Vec::new()),
        Some(users) => {
            let mut ok = true;
            for (user, pw) in users {
                if user.is_empty() || user.contains(char::is_whitespace) {
                    p.add(key("client_auth").key(user), "expected a user name without spaces");
                    ok = false;
                }
                if pw.is_empty() {
                    p.add(key("client_auth").key(user), "expected a non-empty password");
                    ok = false;
                }
            }
            ok.then(|| users.iter().map(|(u, pw)| (u.clone(), pw.clone())).collect())
        }
    };
    let cluster_commands = match &file.cluster_commands {
        None => Some(d.cluster_commands),
        Some(c) => p.check(
            key("cluster_commands"),
            pick(c, &[("proxy", ClusterCommands::Proxy), ("passthrough", ClusterCommands::Passthrough)]),
        ),
    };
    let request_timeout = match &file.request_timeout {
        None => Some(d.request_timeout),
        Some(v) => p.check(key("request_timeout"), optional_duration(v)),
    };
    let retry_backoff = match &file.retry_backoff {
        None => Some(d.retry_backoff),
        Some(v) => p.check(key("retry_backoff"), positive_duration(v)),
    };
    let max_request_bytes = match file.max_request_bytes {
        None => Some(d.max_request_bytes),
        Some(n) => p.check(key("max_request_bytes"), int_in(n, 1, i64::MAX)).map(|n| n as usize),
    };
    let limits = super::limits::pool_limits(file, p);
    Some(Some(ClusterConfig {
        refresh_interval: refresh_interval?,
        read_from: read_from?,
        username: username?,
        password: password?,
        max_redirects: max_redirects?,
        node_connections: node_connections?,
        pinned_connections: pinned_connections?,
        pinned_idle: pinned_idle?,
        client_auth: client_auth?,
        cluster_commands: cluster_commands?,
        allow_flush: file.allow_flush.unwrap_or(d.allow_flush),
        allow_scripts: file.allow_scripts.unwrap_or(d.allow_scripts),
        request_timeout: request_timeout?,
        max_retries: max_retries?,
        retry_backoff: retry_backoff?,
        max_request_bytes: max_request_bytes?,
        client_output_limit: limits?.0,
        client_queue_limit: limits?.1,
        max_keys_per_request: super::twem_pool::max_keys(file, p, d.max_keys_per_request)?,
    }))
}

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;
