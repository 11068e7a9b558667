//! The TLS part of `/metrics`: handshakes begun, failures by reason (the
//! fixed list `tls::FailReason::ALL`), established connections by protocol
//! version, each by `side` ("client": Puerta terminates; "backend": Puerta
//! originates, `backend_tls`), all summed over workers, and each TLS pool's certificate
//! expiry as seconds left.
//!
//! Owns nothing: loads the workers' single-writer `stats::tls` blocks on
//! each scrape. Invariant: emitted only when some pool has `tls` or
//! `backend_tls`, so other deployments see exactly the families they saw
//! before.

use super::metrics::{escape, Out};
use crate::control::Shared;
use crate::route::Snapshot;
use crate::stats::tls::TlsStats;
use crate::stats::{Counter, WorkerStats};
use crate::tls::FailReason;

pub(super) fn render_metrics(m: &mut Out, shared: &Shared, snap: &Snapshot) {
    let client = snap.pools.iter().any(|p| p.cfg.tls.server.is_some());
    let backend = snap.pools.iter().any(|p| p.cfg.tls.backend.is_some());
    if !client && !backend {
        return;
    }
    type Pick = fn(&WorkerStats) -> &TlsStats;
    let sides: [(&str, Pick); 2] = [("client", |w| &w.tls), ("backend", |w| &w.tls_backend)];
    let sum = |side: Pick, f: &dyn Fn(&TlsStats) -> &Counter| {
        shared.workers.iter().map(|w| f(side(w)).get()).fold(0u64, u64::wrapping_add)
    };
    m.family("tls_handshakes_total", "counter", "TLS handshakes begun, with clients and with backends.");
    for (side, pick) in sides {
        m.sample("tls_handshakes_total", &format!("side=\"{side}\""), sum(pick, &|t| &t.handshakes));
    }
    m.family("tls_handshake_failures_total", "counter", "TLS handshakes that failed, by side and reason.");
    for (side, pick) in sides {
        for (i, r) in FailReason::ALL.iter().enumerate() {
            let labels = format!("side=\"{side}\",reason=\"{}\"", r.name());
            m.sample("tls_handshake_failures_total", &labels, sum(pick, &|t| &t.failures[i]));
        }
    }
    m.family("tls_established_total", "counter", "TLS connections established, by side and protocol version.");
    for (side, pick) in sides {
        m.sample(
            "tls_established_total",
            &format!("side=\"{side}\",version=\"1.2\""),
            sum(pick, &|t| &t.established_12),
        );
        m.sample(
            "tls_established_total",
            &format!("side=\"{side}\",version=\"1.3\""),
            sum(pick, &|t| &t.established_13),
        );
    }
    m.family(
        "tls_certificate_expiry_seconds",
        "gauge",
        "Seconds until a pool's TLS certificate expires (negative once it has).",
    );
    for p in &snap.pools {
        if let Some(s) = &p.cfg.tls.server {
            m.sample("tls_certificate_expiry_seconds", &format!("pool=\"{}\"", escape(&p.cfg.name)), s.seconds_left());
        }
    }
}
