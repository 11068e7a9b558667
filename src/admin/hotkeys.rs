//! `GET /hotkeys`: per pool with `hot_keys = true`, the 20 hottest keys
//! merged over workers (each worker publishes its top-k on its stats tick,
//! so the list is up to 250 ms old).
//!
//! Owns nothing. Key names follow the pool's `slowlog_keys` rule: shown,
//! `#`-hashed, or left out (`null`) when hidden.

use serde::Serialize;

use crate::control::Shared;
use crate::obs::hotkeys::merge;

/// Keys listed per pool.
const TOP: usize = 20;

#[derive(Serialize)]
struct Doc {
    pools: Vec<PoolHot>,
}

#[derive(Serialize)]
struct PoolHot {
    pool: String,
    keys: Vec<KeyCount>,
}

#[derive(Serialize)]
struct KeyCount {
    key: Option<String>,
    /// Requests naming it first, as the sketches estimate (never fewer;
    /// halved every 10 s or so, so recent traffic weighs most).
    count: u64,
}

pub fn render(shared: &Shared) -> Result<String, serde_json::Error> {
    let snap = shared.cell.load();
    let pools = snap
        .pools
        .iter()
        .filter(|p| p.cfg.obs.hot_keys)
        .map(|p| {
            let lists = shared.workers.iter().filter_map(|w| w.obs.get(p.stat_id)).map(|o| o.hot());
            let keys = merge(lists, p.cfg.obs.slowlog_keys, TOP)
                .into_iter()
                .map(|(key, count)| KeyCount { key, count })
                .collect();
            PoolHot { pool: p.cfg.name.clone(), keys }
        })
        .collect();
    serde_json::to_string(&Doc { pools })
}
