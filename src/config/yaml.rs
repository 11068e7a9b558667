//! nutcracker's YAML config, read directly: `puerta -c nutcracker.yml`.
//!
//! Every top-level key is a pool: `name: {listen, hash, ..., servers: [...]}`
//! with nutcracker's key names, meanings and defaults; `redis: true` makes
//! it `mode = "redis"`, otherwise `"memcache"`. Scalars are text, as in
//! nutcracker, and are converted per key here; the result is the same
//! `ConfigFile` the TOML loader produces, so both formats go through one
//! validator. Errors name the file, the line, the key as `pool.key` and
//! the problem. Puerta-only keys (`unsupported`, `max_request_bytes`,
//! `client_queue_limit`, `client_output_limit` as a nested mapping of
//! `hard`, `soft` and `soft_seconds`, and its alias `client_reply_limit`)
//! are accepted too, and so are `allow_scripts`, `allow_flush`,
//! `max_item_bytes`, `max_keys_per_request`, `on_limit` and `per_ip` (a
//! nested mapping of `connections`, `requests`, `bytes`, `burst`); anything else is an unknown key, as for
//! nutcracker.

use std::path::Path;

use super::file::{ConfigFile, OutputLimitFile, PoolFile, Scalar};
use super::span::{KeyPath, Seg};
use super::validate::{self, Problem};
use super::yaml_tree::{self, Entry, Node};
use super::{Config, ConfigError};

/// Every key a YAML pool may have.
const KEYS: [&str; 29] = [
    "listen",
    "hash",
    "hash_tag",
    "distribution",
    "timeout",
    "backlog",
    "client_connections",
    "redis",
    "redis_auth",
    "redis_db",
    "preconnect",
    "server_connections",
    "auto_eject_hosts",
    "server_retry_timeout",
    "server_failure_limit",
    "tcpkeepalive",
    "reuseport",
    "servers",
    "unsupported",
    "max_request_bytes",
    "client_reply_limit",
    "client_queue_limit",
    "client_output_limit",
    "allow_scripts",
    "allow_flush",
    "max_item_bytes",
    "max_keys_per_request",
    "per_ip",
    "on_limit",
];

/// True for files Puerta reads as nutcracker YAML: a `.yml`/`.yaml`
/// extension, or (any other name) content whose first meaningful line is a
/// bare `name:` key, which TOML cannot start with.
pub(crate) fn is_yaml(path: &Path, src: &str) -> bool {
    if matches!(path.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")) {
        return true;
    }
    let first = src.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#'));
    first.is_some_and(|l| l == "---" || (l.ends_with(':') && !l.starts_with('[') && !l.contains('=')))
}

/// Parses and validates nutcracker YAML text.
pub(crate) fn parse(src: &str, file: &Path) -> Result<Config, ConfigError> {
    let name = file.display().to_string();
    let invalid = |line, key: String, problem: String| ConfigError::Invalid { file: name.clone(), line, key, problem };
    let root = yaml_tree::parse(src).map_err(|e| invalid(e.line, "(syntax)".into(), e.problem))?;
    let pools = match root {
        Some(Node::Map(pools)) => pools,
        None => Vec::new(),
        Some(other) => {
            return Err(invalid(1, "(file)".into(), format!("expected a mapping of pool names, got {}", other.kind())))
        }
    };
    let mut errors = Vec::new();
    let mut files = Vec::with_capacity(pools.len());
    for pool in &pools {
        match pool_file(pool) {
            Ok(f) => files.push(f),
            Err(list) => errors.extend(list.into_iter().map(|(line, key, p)| invalid(line, key, p))),
        }
    }
    if !errors.is_empty() {
        return Err(combine(errors));
    }
    let raw = ConfigFile { server: Default::default(), pool: files, user: Vec::new() };
    validate::validate(raw, file).map_err(|problems| {
        combine(
            problems
                .iter()
                .map(|p| {
                    let (line, key, problem) = locate(p, &pools);
                    invalid(line, key, problem)
                })
                .collect(),
        )
    })
}

/// One error, or all of them in file order.
fn combine(mut errors: Vec<ConfigError>) -> ConfigError {
    errors.sort_by_key(|e| match e {
        ConfigError::Invalid { line, .. } => *line,
        _ => 0,
    });
    match errors.len() {
        1 => errors.remove(0),
        _ => ConfigError::Many(errors),
    }
}

/// A problem found while reading one pool: (line, key, problem).
type Found = (usize, String, String);

/// Converts one `name: {...}` pool into the TOML loader's `PoolFile`.
fn pool_file(pool: &Entry) -> Result<PoolFile, Vec<Found>> {
    let Node::Map(entries) = &pool.value else {
        return Err(vec![(
            pool.line,
            pool.key.clone(),
            format!("expected a mapping of pool keys, got {}", pool.value.kind()),
        )]);
    };
    let mut f = PoolFile { name: Some(pool.key.clone()), mode: "memcache".into(), ..PoolFile::default() };
    let mut bad: Vec<Found> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let at = |problem: String| (e.line, format!("{}.{}", pool.key, e.key), problem);
        if let Some(first) = entries[..i].iter().find(|f| f.key == e.key) {
            // nutcracker: "is a duplicate".
            bad.push(at(format!("duplicate key (also on line {})", first.line)));
            continue;
        }
        if !KEYS.contains(&e.key.as_str()) {
            bad.push(at(format!("unknown key; expected one of {}", KEYS.join(", "))));
            continue;
        }
        if e.key == "servers" {
            match servers(&e.value, e.line) {
                Ok(list) => f.servers = Some(list),
                Err((line, problem)) => bad.push((line, format!("{}.servers", pool.key), problem)),
            }
            continue;
        }
        if e.key == "per_ip" {
            match super::ratelimit::per_ip_yaml(&e.value) {
                Ok(t) => f.per_ip = Some(t),
                Err((line, k, problem)) => {
                    bad.push((line.unwrap_or(e.line), format!("{}.{}{k}", pool.key, e.key), problem))
                }
            }
            continue;
        }
        if e.key == "client_output_limit" {
            match output_limit(&e.value) {
                Ok(t) => f.client_output_limit = Some(t),
                Err(list) => bad.extend(
                    list.into_iter()
                        .map(|(line, k, p)| (line.unwrap_or(e.line), format!("{}.{}{k}", pool.key, e.key), p)),
                ),
            }
            continue;
        }
        let Node::Scalar(text) = &e.value else {
            bad.push(at(format!("expected a scalar, got {}", e.value.kind())));
            continue;
        };
        if let Err(problem) = set(&mut f, &e.key, text) {
            bad.push(at(problem));
        }
    }
    if bad.is_empty() {
        Ok(f)
    } else {
        Err(bad)
    }
}

/// Stores one scalar key, converting it as nutcracker's `conf_set_*` would.
fn set(f: &mut PoolFile, key: &str, text: &str) -> Result<(), String> {
    let s = || Some(text.to_owned());
    match key {
        "listen" => f.listen = s(),
        "hash" => f.hash = s(),
        "hash_tag" => f.hash_tag = s(),
        "distribution" => f.distribution = s(),
        "redis_auth" => f.redis_auth = s(),
        "unsupported" => f.unsupported = s(),
        "timeout" => f.timeout = Some(scalar(text)),
        "server_retry_timeout" => f.server_retry_timeout = Some(scalar(text)),
        "backlog" => f.backlog = Some(int(text)?),
        "client_connections" => f.client_connections = Some(int(text)?),
        "redis_db" => f.redis_db = Some(int(text)?),
        "server_connections" => f.server_connections = Some(int(text)?),
        "server_failure_limit" => f.server_failure_limit = Some(int(text)?),
        "max_request_bytes" => f.max_request_bytes = Some(int(text)?),
        "client_reply_limit" => f.client_reply_limit = Some(int(text)?),
        "client_queue_limit" => f.client_queue_limit = Some(scalar(text)),
        "on_limit" => f.on_limit = s(),
        "max_item_bytes" => f.max_item_bytes = Some(int(text)?),
        "max_keys_per_request" => f.max_keys_per_request = Some(int(text)?),
        "redis" => f.mode = if boolean(text)? { "redis" } else { "memcache" }.into(),
        "preconnect" => f.preconnect = Some(boolean(text)?),
        "auto_eject_hosts" => f.auto_eject_hosts = Some(boolean(text)?),
        "tcpkeepalive" => f.tcpkeepalive = Some(boolean(text)?),
        "reuseport" => f.reuseport = Some(boolean(text)?),
        "allow_scripts" => f.allow_scripts = Some(boolean(text)?),
        "allow_flush" => f.allow_flush = Some(boolean(text)?),
        // Puerta's slow log (`config::obs`): harmless to nutcracker's keys.
        "slow_op_threshold" => f.slow_op_threshold = Some(scalar(text)),
        "slowlog_max_len" => f.slowlog_max_len = Some(int(text)?),
        "slowlog_keys" => f.slowlog_keys = s(),
        "hot_keys" => f.hot_keys = Some(boolean(text)?),
        _ => return Err("unknown key".into()),
    }
    Ok(())
}

/// `client_output_limit:` with `hard`, `soft` and `soft_seconds` below it.
/// Errors: (line if not the key's own, key suffix, problem).
fn output_limit(node: &Node) -> Result<OutputLimitFile, Vec<(Option<usize>, String, String)>> {
    let Node::Map(entries) = node else {
        return Err(vec![(
            None,
            String::new(),
            format!("expected a mapping of hard, soft, soft_seconds, got {}", node.kind()),
        )]);
    };
    let mut t = OutputLimitFile::default();
    let mut bad = Vec::new();
    for e in entries {
        let at = |problem: String| (Some(e.line), format!(".{}", e.key), problem);
        let Node::Scalar(text) = &e.value else {
            bad.push(at(format!("expected a scalar, got {}", e.value.kind())));
            continue;
        };
        let slot = match e.key.as_str() {
            "hard" => &mut t.hard,
            "soft" => &mut t.soft,
            "soft_seconds" => &mut t.soft_seconds,
            _ => {
                bad.push(at("unknown key; expected one of hard, soft, soft_seconds".into()));
                continue;
            }
        };
        if slot.is_some() {
            bad.push(at("duplicate key".into()));
        }
        *slot = Some(scalar(text));
    }
    if bad.is_empty() {
        Ok(t)
    } else {
        Err(bad)
    }
}

fn servers(node: &Node, key_line: usize) -> Result<Vec<String>, (usize, String)> {
    let Node::Seq(items) = node else {
        return Err((key_line, format!("expected a sequence of \"host:port:weight [name]\", got {}", node.kind())));
    };
    items
        .iter()
        .map(|(line, item)| match item {
            Node::Scalar(s) => Ok(s.clone()),
            other => Err((*line, format!("expected \"host:port:weight [name]\", got {}", other.kind()))),
        })
        .collect()
}

fn scalar(text: &str) -> Scalar {
    text.parse::<i64>().map_or_else(|_| Scalar::text(text), Scalar::Int)
}

fn int(text: &str) -> Result<i64, String> {
    text.parse().map_err(|_| format!("expected an integer, got {text:?}"))
}

/// nutcracker accepts exactly `true` and `false`.
fn boolean(text: &str) -> Result<bool, String> {
    match text {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("expected true or false, got {text:?}")),
    }
}

/// Maps a validation problem at `pool[i].key[j]` to the YAML line and a
/// `name.key[j]` key, as a nutcracker user would name it.
fn locate(p: &Problem, pools: &[Entry]) -> (usize, String, String) {
    let segs = p.path.segments();
    let pool = match segs {
        [Seg::Key(k), Seg::Index(i), ..] if k == "pool" => pools.get(*i),
        _ => None,
    };
    let Some(pool) = pool else {
        let problem = if p.path == KeyPath::root().key("pool") {
            "expected at least one pool, got none".to_owned()
        } else {
            p.problem.clone()
        };
        return (1, "(file)".into(), problem);
    };
    let mut line = pool.line;
    let mut key = pool.key.clone();
    let mut node = &pool.value;
    for seg in &segs[2..] {
        match (seg, node) {
            (Seg::Key(k), Node::Map(entries)) => {
                key.push('.');
                key.push_str(k);
                match entries.iter().find(|e| &e.key == k) {
                    Some(e) => (line, node) = (e.line, &e.value),
                    None => break,
                }
            }
            (Seg::Index(i), Node::Seq(items)) => {
                key.push_str(&format!("[{i}]"));
                match items.get(*i) {
                    Some((l, n)) => (line, node) = (*l, n),
                    None => break,
                }
            }
            _ => break,
        }
    }
    (line, key, p.problem.clone())
}
