//! `GET /metrics`: Prometheus text exposition format 0.0.4.
//!
//! Owns nothing: reads the current snapshot and sums per-worker counters on
//! each scrape (STYLE §4: counting stays per core, the cost is paid here).
//! Invariants: every metric is named `puerta_*`; each family's `# HELP` and
//! `# TYPE` come once, directly before all of its samples (the format forbids
//! interleaving families); every label value is escaped, since pool and
//! backend names come from the config file.

use std::fmt::Display;
use std::time::Instant;

use super::totals::{BackendTotals, PoolTotals};
use crate::control::Shared;

/// Renders every metric as of now.
pub fn render(shared: &Shared) -> String {
    render_at(shared, Instant::now())
}

/// As [`render`], with the clock passed in so tests are deterministic.
pub fn render_at(shared: &Shared, now: Instant) -> String {
    let snap = shared.cell.load();
    let pools: Vec<PoolRow> = snap
        .pools
        .iter()
        .map(|p| PoolRow {
            pool: escape(&p.cfg.name),
            t: PoolTotals::sum(&shared.workers, p.stat_id),
            backends: p
                .backends
                .iter()
                .map(|b| BackendRow {
                    labels: format!(
                        "pool=\"{}\",backend=\"{}\",addr=\"{}\"",
                        escape(&p.cfg.name),
                        escape(&b.spec.name),
                        escape(&b.spec.addr.to_string())
                    ),
                    up: b.healthy,
                    t: BackendTotals::sum(&shared.workers, &shared.health, b.stat_id),
                })
                .collect(),
        })
        .collect();

    let mut m = Out(String::with_capacity(4096));

    m.family("build_info", "gauge", "Build information; always 1.");
    m.sample("build_info", &format!("version=\"{}\"", escape(env!("CARGO_PKG_VERSION"))), 1);
    m.family("io_driver", "gauge", "The I/O driver the workers run; always 1.");
    m.sample("io_driver", &format!("driver=\"{}\"", shared.driver.as_str()), 1);
    m.family("uptime_seconds", "gauge", "Seconds since the process started.");
    m.sample("uptime_seconds", "", now.saturating_duration_since(shared.started).as_secs_f64());
    m.family("snapshot_epoch", "gauge", "Epoch of the latest published routing snapshot.");
    m.sample("snapshot_epoch", "", snap.epoch);
    m.family("worker_epoch", "gauge", "Snapshot epoch each worker runs.");
    for (i, w) in shared.workers.iter().enumerate() {
        m.sample("worker_epoch", &format!("worker=\"{i}\""), w.epoch.get());
    }
    m.family(
        "accept_exhausted_total",
        "counter",
        "Accepts that failed for lack of file descriptors or memory (accepting then pauses).",
    );
    for (i, w) in shared.workers.iter().enumerate() {
        m.sample("accept_exhausted_total", &format!("worker=\"{i}\""), w.accept_exhausted.get());
    }
    m.family(
        "client_limit",
        "gauge",
        "Process-wide client limit derived from RLIMIT_NOFILE (tcp and mongos clients count twice).",
    );
    m.sample("client_limit", "", shared.clients.limit());
    m.family("buffered_bytes", "gauge", "Reply bytes buffered for clients of multiplexed pools, per worker.");
    for (i, w) in shared.workers.iter().enumerate() {
        m.sample("buffered_bytes", &format!("worker=\"{i}\""), w.buffered_bytes.get());
    }
    m.family("buffer_cap_closed_total", "counter", "Clients closed because the process was past max_buffered_bytes.");
    let cap_closed = shared.workers.iter().map(|w| w.buffer_cap_closed.get()).fold(0u64, u64::wrapping_add);
    m.sample("buffer_cap_closed_total", "", cap_closed);

    // Per pool. Tables rather than a block per metric, so each line pairs a
    // metric with the one field that feeds it.
    type PoolField = fn(&PoolTotals) -> u64;
    let per_pool: [(&str, &str, &str, PoolField); 5] = [
        ("client_connections", "gauge", "Client connections open now.", |t| t.client_connections),
        ("client_connections_total", "counter", "Client connections accepted.", |t| t.client_connections_total),
        ("idle_closed_total", "counter", "Client connections closed by the idle timeout.", |t| t.idle_closed),
        ("bytes_in_total", "counter", "Bytes read from clients.", |t| t.bytes_in),
        ("bytes_out_total", "counter", "Bytes written to clients.", |t| t.bytes_out),
    ];
    for (name, kind, help, field) in per_pool {
        m.family(name, kind, help);
        for p in &pools {
            m.sample(name, &format!("pool=\"{}\"", p.pool), field(&p.t));
        }
    }
    m.family("client_rejected_total", "counter", "Client connections closed at accept, by reason.");
    for p in &pools {
        let reasons = [
            ("max_connections", p.t.rejected_max_connections),
            ("no_backend", p.t.rejected_no_backend),
            ("client_limit", p.t.rejected_client_limit),
            ("per_ip_connections", p.t.rejected_per_ip),
        ];
        for (reason, v) in reasons {
            m.sample("client_rejected_total", &format!("pool=\"{}\",reason=\"{reason}\"", p.pool), v);
        }
    }

    // Per backend.
    let backends = || pools.iter().flat_map(|p| &p.backends);
    m.family("backend_up", "gauge", "1 if the backend is healthy in the current snapshot, else 0.");
    for b in backends() {
        m.sample("backend_up", &b.labels, u8::from(b.up));
    }
    type BackendField = fn(&BackendTotals) -> u64;
    let per_backend: [(&str, &str, &str, BackendField); 3] = [
        ("backend_connections", "gauge", "Backend connections open now.", |t| t.connections),
        ("backend_connections_total", "counter", "Backend connections opened.", |t| t.connections_total),
        ("backend_connect_failures_total", "counter", "Failed backend connection attempts.", |t| t.connect_failures),
    ];
    for (name, kind, help, field) in per_backend {
        m.family(name, kind, help);
        for b in backends() {
            m.sample(name, &b.labels, field(&b.t));
        }
    }
    m.family("health_checks_total", "counter", "Active health checks, by result.");
    for b in backends() {
        m.sample("health_checks_total", &format!("{},result=\"ok\"", b.labels), b.t.health_checks_ok);
        m.sample("health_checks_total", &format!("{},result=\"fail\"", b.labels), b.t.health_checks_fail);
    }
    m.family("health_check_rtt_seconds", "gauge", "Round trip of the last health check.");
    for b in backends() {
        m.sample("health_check_rtt_seconds", &b.labels, b.t.health_check_rtt_us as f64 / 1e6);
    }
    super::mongo::render_metrics(&mut m, shared, &snap);
    super::twem::render_metrics(&mut m, shared, &snap);
    super::cluster::render_metrics(&mut m, shared, &snap);
    super::tls::render_metrics(&mut m, shared, &snap);
    super::obs::render_metrics(&mut m, shared, &snap);
    super::limits::render_metrics(&mut m, shared, &snap);
    m.0
}

/// One pool's row, with its label value escaped once.
struct PoolRow {
    pool: String,
    t: PoolTotals,
    backends: Vec<BackendRow>,
}

struct BackendRow {
    /// `pool="..",backend="..",addr=".."`, already escaped.
    labels: String,
    up: bool,
    t: BackendTotals,
}

/// The exposition being built. Writes go to a `String` and cannot fail, so
/// there is no `fmt::Result` to thread through.
pub(super) struct Out(String);

impl Out {
    pub(super) fn family(&mut self, name: &str, kind: &str, help: &str) {
        self.0.push_str(&format!("# HELP puerta_{name} {help}\n# TYPE puerta_{name} {kind}\n"));
    }

    /// `labels` is the already-escaped inside of `{...}`, or empty.
    pub(super) fn sample(&mut self, name: &str, labels: &str, value: impl Display) {
        let line = if labels.is_empty() {
            format!("puerta_{name} {value}\n")
        } else {
            format!("puerta_{name}{{{labels}}} {value}\n")
        };
        self.0.push_str(&line);
    }
}

/// Escapes a label value: backslash, double quote and newline, per 0.0.4.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::fixture;

    fn lines(text: &str) -> Vec<&str> {
        text.lines().collect()
    }

    #[test]
    fn sums_workers_and_reports_health() {
        let f = fixture::standard();
        let (w0, w1) = (&f.shared.workers[0], &f.shared.workers[1]);
        let p = fixture::POOL_STAT;
        w0.pools[p].bytes_in.add(100);
        w1.pools[p].bytes_in.add(23);
        w0.pools[p].client_conns.add(2);
        w1.pools[p].client_conns.add(1);
        w1.pools[p].rejected_no_backend.add(4);
        w0.pools[p].rejected_client_limit.add(2);
        w1.accept_exhausted.add(7);
        w0.backends[fixture::R1_STAT].conns_total.add(5);
        w1.backends[fixture::R1_STAT].conns_total.add(6);
        f.shared.health.fail[fixture::R2_STAT].add(3);
        f.shared.health.rtt_us[fixture::R1_STAT].set(1500);

        let text = render_at(&f.shared, f.shared.started + std::time::Duration::from_millis(2500));
        let got = lines(&text);
        let r1 = r#"pool="redis-a",backend="r1",addr="127.0.0.1:7001""#;
        let r2 = r#"pool="redis-a",backend="r2",addr="127.0.0.1:7002""#;
        for want in [
            format!("puerta_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION")),
            "puerta_io_driver{driver=\"epoll\"} 1".to_string(),
            "puerta_uptime_seconds 2.5".to_string(),
            "puerta_snapshot_epoch 4".to_string(),
            "puerta_worker_epoch{worker=\"0\"} 4".to_string(),
            "puerta_worker_epoch{worker=\"1\"} 3".to_string(),
            "puerta_bytes_in_total{pool=\"redis-a\"} 123".to_string(),
            "puerta_bytes_out_total{pool=\"redis-a\"} 0".to_string(),
            "puerta_client_connections{pool=\"redis-a\"} 3".to_string(),
            "puerta_client_rejected_total{pool=\"redis-a\",reason=\"no_backend\"} 4".to_string(),
            "puerta_client_rejected_total{pool=\"redis-a\",reason=\"max_connections\"} 0".to_string(),
            "puerta_client_rejected_total{pool=\"redis-a\",reason=\"client_limit\"} 2".to_string(),
            "puerta_accept_exhausted_total{worker=\"0\"} 0".to_string(),
            "puerta_accept_exhausted_total{worker=\"1\"} 7".to_string(),
            format!("puerta_client_limit {}", u64::MAX),
            format!("puerta_backend_up{{{r1}}} 1"),
            format!("puerta_backend_up{{{r2}}} 0"),
            format!("puerta_backend_connections_total{{{r1}}} 11"),
            format!("puerta_health_checks_total{{{r2},result=\"fail\"}} 3"),
            format!("puerta_health_checks_total{{{r2},result=\"ok\"}} 0"),
            format!("puerta_health_check_rtt_seconds{{{r1}}} 0.0015"),
            "# TYPE puerta_bytes_in_total counter".to_string(),
            "# TYPE puerta_backend_up gauge".to_string(),
        ] {
            assert!(got.contains(&want.as_str()), "missing {want:?} in\n{text}");
        }
    }

    #[test]
    fn families_are_contiguous_and_prefixed() {
        let f = fixture::standard();
        let text = render(&f.shared);
        let mut seen: Vec<&str> = Vec::new();
        for line in text.lines() {
            assert!(
                line.starts_with("# HELP puerta_") || line.starts_with("# TYPE puerta_") || line.starts_with("puerta_")
            );
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap();
                assert!(!seen.contains(&name), "family {name} declared twice");
                seen.push(name);
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert_eq!(Some(&name), seen.last(), "sample {line} outside its family");
            }
        }
        // Counted from the text itself, so a new family needs no edit here:
        // each is announced by exactly one HELP, directly before its TYPE,
        // and has samples.
        let lines: Vec<&str> = text.lines().collect();
        let helps = lines.iter().filter(|l| l.starts_with("# HELP ")).count();
        assert_eq!(seen.len(), helps, "a HELP without a TYPE or the reverse");
        for (i, l) in lines.iter().enumerate() {
            if let Some(name) = l.strip_prefix("# TYPE ").and_then(|r| r.split(' ').next()) {
                let help = i.checked_sub(1).and_then(|j| lines.get(j)).copied().unwrap_or_default();
                assert!(help.starts_with(&format!("# HELP {name} ")), "TYPE {name} not directly after its HELP");
            }
        }
        for name in &seen {
            let has_sample = lines.iter().any(|l| !l.starts_with('#') && l.split(['{', ' ']).next() == Some(*name));
            assert!(has_sample, "family {name} has no sample");
        }
        assert!(seen.len() >= 15, "only {} families:\n{text}", seen.len());
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        let f = fixture::standard();
        let pool = fixture::pool("we\"ird\\pool", 9, &[("x\ny", "10.0.0.1:1", true, 20)]);
        f.shared.cell.publish(fixture::snapshot(5, false, vec![pool]));
        let text = render(&f.shared);
        assert!(text.contains("puerta_bytes_in_total{pool=\"we\\\"ird\\\\pool\"} 0\n"), "{text}");
        assert!(text.contains("backend=\"x\\ny\""), "{text}");
    }
}
