//! The live status page: `GET /` (one self-contained HTML file, embedded
//! in the binary) and `GET /api/status`, the JSON document it polls every
//! second.
//!
//! Owns the `History` ring (through `AdminHttp`, on the admin thread) and
//! nothing else: every figure is loaded from `Shared`, as `/stats` does,
//! from one loaded snapshot so pools and backends belong to one epoch.
//!
//! Access: the page itself holds no data, so `/` is served without the
//! admin token (the loopback `Host` check still applies); `/api/status`
//! is guarded like `/stats`. When a token is configured the page is told
//! so (a `data-token` attribute) and asks for it before its first request,
//! then sends it as `Authorization: Bearer`; it keeps it in the tab's
//! sessionStorage only.
//!
//! Files: `history` (the per-second ring, rates and last-minute windows),
//! `sample` (counters by pool kind), `backends` (state words, slot map),
//! `page.html`.

pub mod backends;
pub mod history;
pub mod sample;

#[cfg(test)]
mod tests;

use std::time::Instant;

use serde::Serialize;

use super::cluster::PoolCluster;
use super::http::Response;
use crate::config::Mode;
use crate::control::Shared;
use crate::route::PoolSnapshot;
use backends::{BackendView, ShardView};
use history::{quantile, History, Sample};

/// The page, as written; `TOKEN_MARK` is replaced when served.
const PAGE: &str = include_str!("page.html");
const TOKEN_MARK: &str = "data-token=\"off\"";
pub const HTML: &str = "text/html; charset=utf-8";
/// The page runs only its own inline script and style, talks only to this
/// port, and may not be framed (clickjacking).
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `GET /`: the page, told whether to ask for a token.
pub fn page(token_required: bool) -> Response {
    let body = if token_required { PAGE.replacen(TOKEN_MARK, "data-token=\"on\"", 1) } else { PAGE.to_string() };
    Response { header: Some(("Content-Security-Policy", CSP)), ..Response::new(200, HTML, body) }
}

#[derive(Serialize)]
struct Status<'s> {
    version: &'static str,
    uptime_seconds: f64,
    driver: &'static str,
    epoch: u64,
    draining: bool,
    pools: Vec<PoolStatus<'s>>,
    /// The proxy's slow log, where one is kept; `None` hides the panel.
    slowlog: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct PoolStatus<'s> {
    name: &'s str,
    mode: &'static str,
    listen: String,
    clients: u64,
    /// `None` for tcp pools (a byte relay counts no requests).
    requests_total: Option<u64>,
    requests_per_sec: Option<f64>,
    errors_total: u64,
    errors_per_sec: Option<f64>,
    bytes_in_per_sec: Option<f64>,
    bytes_out_per_sec: Option<f64>,
    latency: LatencyView,
    backends: Vec<BackendView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<ClusterView>,
}

/// Quantiles over the last minute, as bucket upper bounds in microseconds;
/// all `None` where the pool's latency is not measured or nothing ran.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct LatencyView {
    pub window_seconds: Option<f64>,
    pub count: Option<u64>,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub p999_us: Option<u64>,
}

#[derive(Serialize)]
struct ClusterView {
    moved_total: u64,
    ask_total: u64,
    moved_last_minute: Option<u64>,
    ask_last_minute: Option<u64>,
    slots_served: usize,
    shards: Vec<ShardView>,
}

/// `GET /api/status` as of `now`; records a sample in `history`.
pub fn render(shared: &Shared, history: &mut History, now: Instant) -> Result<String, serde_json::Error> {
    let snap = shared.cell.load();
    let current: Vec<_> = snap.pools.iter().map(|p| sample::read(shared, p)).collect();
    let pools = snap.pools.iter().zip(&current).map(|(p, cur)| pool_status(shared, history, p, cur, now)).collect();
    let doc = Status {
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: now.saturating_duration_since(shared.started).as_secs_f64(),
        driver: shared.driver.as_str(),
        epoch: snap.epoch,
        draining: snap.draining,
        pools,
        slowlog: Some(super::slowlog::status_entries(shared, 20)),
    };
    let out = serde_json::to_string(&doc)?;
    history.record(Sample { at: now, pools: current });
    Ok(out)
}

fn pool_status<'s>(
    shared: &Shared,
    history: &History,
    p: &'s PoolSnapshot,
    cur: &history::PoolSample,
    now: Instant,
) -> PoolStatus<'s> {
    let d = history.derive(cur, now, Some(shared.started));
    let bounds = sample::bounds_us(p.cfg.mode);
    let latency = match d.latency_window.as_deref() {
        Some(counts) if !bounds.is_empty() => latency_view(&bounds, counts, d.window_seconds),
        _ => LatencyView::default(),
    };
    let cluster = p.cluster.as_ref().filter(|_| p.cfg.mode == Mode::RedisCluster).map(|map| {
        let c = PoolCluster::sum(shared, p.stat_id);
        ClusterView {
            moved_total: c.moved,
            ask_total: c.ask,
            moved_last_minute: d.moved_last_minute,
            ask_last_minute: d.ask_last_minute,
            slots_served: map.served(),
            shards: backends::slot_map(map, &backends::refusing(shared, p.stat_id)),
        }
    });
    PoolStatus {
        name: &p.cfg.name,
        mode: p.cfg.mode.as_str(),
        listen: p.cfg.listen.to_string(),
        clients: p.clients.load(std::sync::atomic::Ordering::Relaxed),
        requests_total: cur.requests,
        requests_per_sec: d.requests_per_sec,
        errors_total: cur.errors,
        errors_per_sec: d.errors_per_sec,
        bytes_in_per_sec: d.bytes_in_per_sec,
        bytes_out_per_sec: d.bytes_out_per_sec,
        latency,
        backends: backends::backends(shared, p),
        cluster,
    }
}

/// p50/p99/p99.9 of a window's bucket counts.
pub fn latency_view(bounds: &[Option<u64>], counts: &[u64], window_seconds: Option<f64>) -> LatencyView {
    let count = counts.iter().fold(0u64, |a, &c| a.saturating_add(c));
    LatencyView {
        window_seconds,
        count: Some(count),
        p50_us: quantile(bounds, counts, 0.5),
        p99_us: quantile(bounds, counts, 0.99),
        p999_us: quantile(bounds, counts, 0.999),
    }
}
