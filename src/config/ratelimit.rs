//! The pool keys of rate and connection limits: `per_ip = { connections,
//! requests, bytes, burst }` and `on_limit = "delay" | "error" | "close"`
//! (redis, memcache and redis_cluster pools), from file structs to the
//! validated `RateLimits` the sessions and the accept path read.
//!
//! `requests` is per second, `bytes` is a size per second in the units of
//! every other size key (`limits::size`: "5mb", 4096), `burst` is how many
//! seconds of rate a bucket holds (capacity = `burst` x rate, default 1.0).

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::file::{PoolFile, Scalar};
use super::span::KeyPath;
use super::types::Mode;
use super::validate::{pick, Problems};
use super::yaml_tree::Node;
use crate::limit::{OnLimit, RateSpec};

/// A pool's limits, validated.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RateLimits {
    pub per_ip: Option<PerIp>,
    pub on_limit: OnLimit,
}

/// `per_ip`: limits per client address (an IPv4 address or an IPv6 /64).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerIp {
    /// Connections one address may hold to this pool, across every worker.
    pub connections: Option<u32>,
    /// Requests and bytes per second of one address to this pool.
    pub rate: RateSpec,
}

/// `per_ip = { ... }` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PerIpFile {
    pub connections: Option<i64>,
    pub requests: Option<i64>,
    pub bytes: Option<Scalar>,
    pub burst: Option<Number>,
}

/// A number written as an integer, a float or text ("2.5").
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Number(pub f64);

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumberVisitor)
    }
}

struct NumberVisitor;

impl Visitor<'_> for NumberVisitor {
    type Value = Number;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Number, E> {
        Ok(Number(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Number, E> {
        Ok(Number(v as f64))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Number, E> {
        Ok(Number(v as f64))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Number, E> {
        v.trim().parse().map(Number).map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
    }
}

/// Converts `per_ip` and `on_limit` of a pool of `mode`.
pub(crate) fn convert(file: &PoolFile, mode: Option<Mode>, p: &mut Problems) -> Option<RateLimits> {
    let key = |k: &str| KeyPath::root().key(k);
    let mux = matches!(mode, Some(Mode::Redis | Mode::Memcache | Mode::RedisCluster | Mode::Mongos));
    if let Some(m) = mode.filter(|_| !mux) {
        for (k, set) in [("per_ip", file.per_ip.is_some()), ("on_limit", file.on_limit.is_some())] {
            if set {
                let why = format!(
                    r#"applies only to mode "redis", "memcache", "redis_cluster" or "mongos", and this pool is "{}""#,
                    m.as_str()
                );
                p.add(key(k), why);
            }
        }
        return Some(RateLimits::default());
    }
    let on_limit = match &file.on_limit {
        None => Some(OnLimit::Delay),
        Some(t) => p.check(
            key("on_limit"),
            pick(t, &[("delay", OnLimit::Delay), ("error", OnLimit::Error), ("close", OnLimit::Close)]),
        ),
    };
    let per_ip = match &file.per_ip {
        None => Some(None),
        Some(f) => per_ip(f, p).map(Some),
    };
    Some(RateLimits { per_ip: per_ip?, on_limit: on_limit? })
}

fn per_ip(f: &PerIpFile, p: &mut Problems) -> Option<PerIp> {
    let at = KeyPath::root().key("per_ip");
    let connections = match f.connections {
        None => Some(None),
        Some(n) => p.check(at.key("connections"), positive(n, i64::from(u32::MAX))).map(|n| Some(n as u32)),
    };
    let rate = rate_spec(f.requests, f.bytes.as_ref(), f.burst, &at, p);
    let (connections, rate) = (connections?, rate?);
    if connections.is_none() && !rate.is_limited() {
        p.add(at, "expected at least one of connections, requests, bytes");
        return None;
    }
    Some(PerIp { connections, rate })
}

/// `[[user]] limits = { requests, bytes, burst }` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserLimitsFile {
    pub requests: Option<i64>,
    pub bytes: Option<Scalar>,
    pub burst: Option<Number>,
}

/// A user's `limits` under `at` (`user[i].limits`): at least one rate.
pub(crate) fn user_limits(f: &UserLimitsFile, at: &KeyPath, p: &mut Problems) -> Option<RateSpec> {
    let rate = rate_spec(f.requests, f.bytes.as_ref(), f.burst, at, p)?;
    if !rate.is_limited() {
        p.add(at.clone(), "expected at least one of requests, bytes");
        return None;
    }
    Some(rate)
}

fn positive(n: i64, max: i64) -> Result<i64, String> {
    if (1..=max).contains(&n) {
        Ok(n)
    } else {
        Err(format!("expected an integer from 1 to {max}, got {n}"))
    }
}

/// `requests`, `bytes` and `burst` of a rate table under `at` (`per_ip`,
/// a user's `limits`): the one place their shapes and ranges are checked.
fn rate_spec(
    requests: Option<i64>,
    bytes: Option<&Scalar>,
    burst: Option<Number>,
    at: &KeyPath,
    p: &mut Problems,
) -> Option<RateSpec> {
    let requests = match requests {
        None => Some(None),
        Some(n) => p.check(at.key("requests"), positive(n, 1 << 40)).map(|n| Some(n as f64)),
    };
    let bytes = match bytes {
        None => Some(None),
        Some(v) => p.check(
            at.key("bytes"),
            super::limits::size(v).and_then(|n| match n {
                0 => Err(format!("expected a size > 0 per second, got {v}")),
                n => Ok(Some(n as f64)),
            }),
        ),
    };
    let burst = match burst {
        None => Some(1.0),
        Some(Number(b)) if b.is_finite() && (0.01..=3600.0).contains(&b) => Some(b),
        Some(Number(b)) => {
            p.add(at.key("burst"), format!("expected seconds of rate from 0.01 to 3600 (like 2.0), got {b}"));
            None
        }
    };
    Some(RateSpec { requests: requests?, bytes: bytes?, burst: burst? })
}

/// `per_ip:` as a nested mapping in nutcracker YAML; errors are (line,
/// `.key`, problem), the first found.
pub(crate) fn per_ip_yaml(node: &Node) -> Result<PerIpFile, (Option<usize>, String, String)> {
    const EXPECTED: &str = "connections, requests, bytes, burst";
    let Node::Map(entries) = node else {
        return Err((None, String::new(), format!("expected a mapping of {EXPECTED}, got {}", node.kind())));
    };
    let mut t = PerIpFile::default();
    for e in entries {
        let at = |problem: String| (Some(e.line), format!(".{}", e.key), problem);
        let Node::Scalar(text) = &e.value else {
            return Err(at(format!("expected a scalar, got {}", e.value.kind())));
        };
        let int = || text.trim().parse::<i64>().map_err(|_| at(format!("expected an integer, got {text:?}")));
        match e.key.as_str() {
            "connections" => t.connections = Some(int()?),
            "requests" => t.requests = Some(int()?),
            "bytes" => {
                t.bytes = Some(text.trim().parse::<i64>().map_or_else(|_| Scalar::text(text), Scalar::Int));
            }
            "burst" => {
                let b = text.trim().parse::<f64>().map_err(|_| at(format!("expected a number, got {text:?}")))?;
                t.burst = Some(Number(b));
            }
            _ => return Err(at(format!("unknown key; expected one of {EXPECTED}"))),
        }
    }
    Ok(t)
}
