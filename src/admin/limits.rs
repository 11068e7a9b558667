//! The rate-limit and per-user families of `/metrics`: limited requests
//! by pool (any bucket, and the per-IP buckets as a whole: no per-IP
//! label), and the requests, inbound bytes, ACL denials and rate-limited
//! requests of each configured `[[user]]`.
//!
//! Owns nothing: sums the workers' pool counters (`stats::mux`) and each
//! user's per-worker slots in the snapshot's `limit::UserLimits` at
//! scrape time. The user label set is bounded by the config (a user
//! removed by a reload is gone from the next scrape), and the values carry
//! over a reload for the users it keeps.

use super::metrics::{escape, Out};
use crate::control::Shared;
use crate::limit::UserTotals;
use crate::route::Snapshot;

/// Writes the rate-limit families of every pool, then the user families
/// (none without users).
pub(super) fn render_metrics(m: &mut Out, shared: &Shared, snap: &Snapshot) {
    type PoolField = fn(&crate::stats::mux::MuxPoolCounters) -> u64;
    let by_pool: [(&str, &str, PoolField); 2] = [
        (
            "rate_limited_total",
            "Requests delayed, refused or closed by any rate limit (per_ip or a user's limits), each once.",
            |p| p.rate_limited.get(),
        ),
        (
            "ip_rate_limited_total",
            "Requests delayed, refused or closed by per_ip rate limits (all addresses together).",
            |p| p.ip_rate_limited.get(),
        ),
    ];
    for (name, help, field) in by_pool {
        m.family(name, "counter", help);
        for p in &snap.pools {
            let sum = shared.workers.iter().filter_map(|w| w.mux.pools.get(p.stat_id)).map(field);
            m.sample(name, &format!("pool=\"{}\"", escape(&p.cfg.name)), sum.fold(0u64, u64::wrapping_add));
        }
    }
    let Some(limits) = &snap.user_limits else { return };
    let rows: Vec<(String, UserTotals)> =
        limits.totals().map(|(n, t)| (format!("user=\"{}\"", escape(n)), t)).collect();
    type Field = fn(&UserTotals) -> u64;
    let families: [(&str, &str, Field); 4] = [
        (
            "user_requests_total",
            "Requests sent by clients authenticated as the user (or, in memcache pools, from its source).",
            |t| t.requests,
        ),
        ("user_bytes_total", "Inbound request bytes of those requests, as decoded (replies not included).", |t| {
            t.bytes
        }),
        ("user_denied_total", "Requests of the user refused by its ACL (NOPERM).", |t| t.denied),
        ("user_rate_limited_total", "Requests of the user delayed, refused or closed by its limits.", |t| t.limited),
    ];
    for (name, help, field) in families {
        m.family(name, "counter", help);
        for (labels, t) in &rows {
            m.sample(name, labels, field(t));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use crate::admin::fixture;
    use crate::limit::{RateSpec, UserLimits};

    #[test]
    fn one_sample_per_configured_user() {
        let f = fixture::standard();
        let spec = RateSpec { requests: Some(1.0), bytes: None, burst: 1.0 };
        let users = vec![("app".to_owned(), Some(spec)), ("o\"ps".to_owned(), None)];
        let l = Arc::new(UserLimits::new(users, 1, Instant::now(), None));
        l.charge(0, 0, 20, Instant::now());
        l.note_denied(0, 1);
        let mut snap = fixture::snapshot(1, false, vec![]);
        snap.user_limits = Some(l);
        f.shared.cell.publish(snap);
        let text = crate::admin::metrics::render(&f.shared);
        for line in [
            "puerta_user_requests_total{user=\"app\"} 1",
            "puerta_user_bytes_total{user=\"app\"} 20",
            "puerta_user_denied_total{user=\"o\\\"ps\"} 1",
            "puerta_user_rate_limited_total{user=\"app\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert_eq!(text.matches("# TYPE puerta_user_requests_total counter").count(), 1);
    }
}
