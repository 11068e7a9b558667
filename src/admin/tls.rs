//! The TLS part of `/metrics`: handshakes begun, failures by reason (the
//! fixed list `tls::FailReason::ALL`), established connections by protocol
//! version, all summed over workers, and each TLS pool's certificate
//! expiry as seconds left.
//!
//! Owns nothing: loads the workers' single-writer `stats::tls` blocks on
//! each scrape. Invariant: emitted only when some pool has `tls` or
//! `backend_tls`, so other deployments see exactly the families they saw
//! before.

use super::metrics::{escape, Out};
use crate::control::Shared;
use crate::route::Snapshot;
use crate::stats::Counter;
use crate::tls::FailReason;

pub(super) fn render_metrics(m: &mut Out, shared: &Shared, snap: &Snapshot) {
    if !snap.pools.iter().any(|p| p.cfg.tls.server.is_some() || p.cfg.tls.backend.is_some()) {
        return;
    }
    let sum = |f: &dyn Fn(&crate::stats::tls::TlsStats) -> &Counter| {
        shared.workers.iter().map(|w| f(&w.tls).get()).fold(0u64, u64::wrapping_add)
    };
    m.family(
        "tls_handshakes_total",
        "counter",
        "TLS handshakes begun (with clients, and with backends under backend_tls).",
    );
    m.sample("tls_handshakes_total", "", sum(&|t| &t.handshakes));
    m.family("tls_handshake_failures_total", "counter", "TLS handshakes that failed, by reason.");
    for (i, r) in FailReason::ALL.iter().enumerate() {
        m.sample("tls_handshake_failures_total", &format!("reason=\"{}\"", r.name()), sum(&|t| &t.failures[i]));
    }
    m.family("tls_established_total", "counter", "TLS connections established, by protocol version.");
    m.sample("tls_established_total", "version=\"1.2\"", sum(&|t| &t.established_12));
    m.sample("tls_established_total", "version=\"1.3\"", sum(&|t| &t.established_13));
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
