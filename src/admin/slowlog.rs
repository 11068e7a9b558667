//! `GET /slowlog`: every pool's slow log as JSON, merged over cores,
//! newest first.
//!
//! Owns nothing: copies entries out of `obs` (each core's ring locked only
//! while copied). Arguments are shown as text (lossy UTF-8); first keys are
//! already stored under the pool's `slowlog_keys` rule, so nothing here can
//! reveal more than the rule allows.

use serde::Serialize;

use crate::control::Shared;
use crate::obs::{self, Entry};

#[derive(Serialize)]
struct Doc {
    pools: Vec<PoolLog>,
}

#[derive(Serialize)]
struct PoolLog {
    pool: String,
    mode: &'static str,
    /// The pool's `slow_op_threshold` in microseconds (null: off).
    threshold_us: Option<u64>,
    entries: Vec<EntryJson>,
}

#[derive(Serialize)]
struct EntryJson {
    id: u64,
    /// Unix time of completion, microseconds.
    time_us: u64,
    duration_us: u64,
    command: &'static str,
    args: Vec<String>,
    backend: String,
    client: String,
}

impl From<Entry> for EntryJson {
    fn from(e: Entry) -> Self {
        EntryJson {
            id: e.id,
            time_us: e.unix_us,
            duration_us: e.duration_us,
            command: e.command,
            args: e.args.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect(),
            backend: e.backend,
            client: e.client,
        }
    }
}

pub fn render(shared: &Shared) -> Result<String, serde_json::Error> {
    let snap = shared.cell.load();
    let pools = snap
        .pools
        .iter()
        .filter(|p| p.cfg.mode != crate::config::Mode::Tcp)
        .map(|p| PoolLog {
            pool: p.cfg.name.clone(),
            mode: p.cfg.mode.as_str(),
            threshold_us: p.cfg.obs.slow_op_threshold.and_then(|d| u64::try_from(d.as_micros()).ok()),
            entries: obs::slowlog_entries(&shared.workers, p.stat_id, usize::MAX).into_iter().map(Into::into).collect(),
        })
        .collect();
    serde_json::to_string(&Doc { pools })
}

/// The status page's slow-log panel: the newest `n` entries of every pool,
/// newest first, flattened with the pool's name and the first key.
pub fn status_entries(shared: &Shared, n: usize) -> serde_json::Value {
    let snap = shared.cell.load();
    let mut all: Vec<(String, Entry)> = snap
        .pools
        .iter()
        .filter(|p| p.cfg.mode != crate::config::Mode::Tcp)
        .flat_map(|p| obs::slowlog_entries(&shared.workers, p.stat_id, n).into_iter().map(|e| (p.cfg.name.clone(), e)))
        .collect();
    all.sort_by_key(|e| std::cmp::Reverse(e.1.unix_us));
    all.truncate(n);
    serde_json::Value::Array(
        all.into_iter()
            .map(|(pool, e)| {
                serde_json::json!({
                    "unix_ms": e.unix_us / 1000,
                    "pool": pool,
                    "command": e.command,
                    "key": e.args.get(1).map(|k| String::from_utf8_lossy(k).into_owned()),
                    "backend": e.backend,
                    "duration_us": e.duration_us,
                    "client": e.client,
                })
            })
            .collect(),
    )
}
