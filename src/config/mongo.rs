//! Layer 2 for the keys of `mode = "mongos"` pools: `PoolFile` ->
//! `MongoConfig`.
//!
//! Owns the rule that these keys are written only in mongos pools (a typo
//! of `mode` must not silently drop them) and their ranges. Problem paths
//! are relative to the pool table, as in `pool`.

use super::file::PoolFile;
use super::span::KeyPath;
use super::types::{Affinity, Mode, MongoConfig};
use super::validate::{int_in, optional_duration, pick, Problems};
use crate::protocol::proxy::ProxyVersion;

/// `Some(None)` for a valid non-mongos pool, `Some(Some(cfg))` for a valid
/// mongos pool, `None` after a problem was recorded (or `mode` was bad).
pub(crate) fn convert(file: &PoolFile, mode: Option<Mode>, p: &mut Problems) -> Option<Option<MongoConfig>> {
    let key = |k: &str| KeyPath::root().key(k);
    // `slow_op_threshold` is a key of every pool kind (`config::obs`); a
    // mongos pool also logs its slow operations when it is written.
    let written: [(&str, bool); 6] = [
        ("require_mongos", file.require_mongos.is_some()),
        ("min_wire_version", file.min_wire_version.is_some()),
        ("max_message_bytes", file.max_message_bytes.is_some()),
        ("close_on_unhealthy", file.close_on_unhealthy.is_some()),
        ("affinity", file.affinity.is_some()),
        ("proxy_protocol", file.proxy_protocol.is_some()),
    ];
    match mode? {
        Mode::Mongos => {}
        other => {
            let mut ok = true;
            for (k, set) in written {
                if set {
                    p.add(key(k), format!("only valid with mode = \"mongos\", got mode = \"{}\"", other.as_str()));
                    ok = false;
                }
            }
            return ok.then_some(None);
        }
    }
    let d = MongoConfig::default();
    let min_wire = file.min_wire_version.map_or(Ok(i64::from(d.min_wire_version)), |n| int_in(n, 0, 1000));
    let min_wire = p.check(key("min_wire_version"), min_wire);
    // 16 is the bare header; mongos itself refuses above 48,000,000.
    let max_msg = file.max_message_bytes.map_or(Ok(i64::from(d.max_message_bytes)), |n| {
        // mongos refuses anything larger (`maxMessageSizeBytes`).
        int_in(n, 16, i64::from(crate::protocol::mongo::DEFAULT_MAX_MESSAGE))
    });
    let max_msg = p.check(key("max_message_bytes"), max_msg);
    let affinity = match &file.affinity {
        None => Some(d.affinity),
        Some(a) => p.check(
            key("affinity"),
            pick(
                a,
                &[
                    ("client_ip", Affinity::ClientIp),
                    ("client_ip_port", Affinity::ClientIpPort),
                    ("app", Affinity::App),
                    ("none", Affinity::None),
                ],
            ),
        ),
    };
    let proxy = match &file.proxy_protocol {
        None => Some(None),
        Some(v) => {
            p.check(key("proxy_protocol"), pick(v, &[("v1", ProxyVersion::V1), ("v2", ProxyVersion::V2)]).map(Some))
        }
    };
    let slow = match &file.slow_op_threshold {
        None => Some(None),
        Some(v) => p.check(key("slow_op_threshold"), optional_duration(v)),
    };
    Some(Some(MongoConfig {
        require_mongos: file.require_mongos.unwrap_or(d.require_mongos),
        min_wire_version: min_wire? as i32,
        max_message_bytes: max_msg? as u32,
        close_on_unhealthy: file.close_on_unhealthy.unwrap_or(d.close_on_unhealthy),
        affinity: affinity?,
        proxy_protocol: proxy?,
        slow_op_threshold: slow?,
    }))
}

#[cfg(test)]
#[path = "mongo_tests.rs"]
mod tests;
