//! The mongos part of `/metrics` and `/stats`: requests by opcode and
//! command per backend, per-command latency histograms, slow ops, framing
//! errors, boundary closes and mongos restarts.
//!
//! Owns nothing: sums the workers' single-writer `MongoStats` on each
//! scrape. Invariant: emitted only for pools with `mode = "mongos"`, so tcp
//! deployments see exactly the families they saw before.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::metrics::{escape, Out};
use crate::control::Shared;
use crate::protocol::mongo::{COMMANDS, OPCODE_NAMES};
use crate::route::{PoolSnapshot, Snapshot};
use crate::stats::mongo::{bucket_upper_seconds, MongoPoolTotals, LAT_BUCKETS, N_COMMANDS, N_OPCODES, POOL_ROWS};
use crate::stats::WorkerStats;

/// One command's latency summed over workers.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub buckets: [u64; LAT_BUCKETS],
    pub count: u64,
    pub sum_us: u64,
}

impl Latency {
    /// Upper bound (µs) of the bucket holding quantile `q`; `None` if empty
    /// or in the open-ended last bucket.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        let rank = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank && self.count > 0 {
                return bucket_upper_seconds(i).map(|s| (s * 1e6).round() as u64);
            }
        }
        None
    }
}

pub struct PoolMongo {
    pub latency: Vec<Latency>,
    /// The `POOL_ROWS` counters.
    pub counts: MongoPoolTotals,
}

pub fn pool_totals(workers: &[Arc<WorkerStats>], stat_id: usize) -> PoolMongo {
    let mut t = PoolMongo {
        latency: vec![Latency { buckets: [0; LAT_BUCKETS], count: 0, sum_us: 0 }; N_COMMANDS],
        counts: MongoPoolTotals::total(workers.iter().filter_map(|w| w.mongo.pools.get(stat_id))),
    };
    for w in workers {
        let Some(p) = w.mongo.pools.get(stat_id) else { continue };
        for (l, h) in t.latency.iter_mut().zip(p.latency.iter()) {
            for (b, c) in l.buckets.iter_mut().zip(h.buckets.iter()) {
                *b = b.wrapping_add(c.get());
            }
            l.count = l.count.wrapping_add(h.count.get());
            l.sum_us = l.sum_us.wrapping_add(h.sum_us.get());
        }
    }
    t
}

/// (opcodes, commands) for one backend.
pub fn backend_totals(workers: &[Arc<WorkerStats>], stat_id: usize) -> ([u64; N_OPCODES], [u64; N_COMMANDS]) {
    let (mut ops, mut cmds) = ([0u64; N_OPCODES], [0u64; N_COMMANDS]);
    for w in workers {
        let Some(b) = w.mongo.backends.get(stat_id) else { continue };
        for (o, c) in ops.iter_mut().zip(b.opcodes.iter()) {
            *o = o.wrapping_add(c.get());
        }
        for (o, c) in cmds.iter_mut().zip(b.commands.iter()) {
            *o = o.wrapping_add(c.get());
        }
    }
    (ops, cmds)
}

fn mongo_pools(snap: &Snapshot) -> impl Iterator<Item = &Arc<PoolSnapshot>> {
    snap.pools.iter().filter(|p| p.cfg.mongo.is_some())
}

/// Appends the mongo families (nothing when no pool is a mongos pool).
pub(super) fn render_metrics(m: &mut Out, shared: &Shared, snap: &Snapshot) {
    if mongo_pools(snap).next().is_none() {
        return;
    }
    let backend_labels = |p: &PoolSnapshot, i: usize| {
        let b = &p.backends[i];
        format!(
            "pool=\"{}\",backend=\"{}\",addr=\"{}\"",
            escape(&p.cfg.name),
            escape(&b.spec.name),
            escape(&b.spec.addr.to_string())
        )
    };
    m.family("mongo_requests_total", "counter", "Client requests forwarded to each mongos, by opcode.");
    for p in mongo_pools(snap) {
        for (i, b) in p.backends.iter().enumerate() {
            let (ops, _) = backend_totals(&shared.workers, b.stat_id);
            for (name, v) in OPCODE_NAMES.iter().zip(ops) {
                m.sample("mongo_requests_total", &format!("{},opcode=\"{name}\"", backend_labels(p, i)), v);
            }
        }
    }
    m.family("mongo_commands_total", "counter", "Client commands forwarded to each mongos, by command name.");
    for p in mongo_pools(snap) {
        for (i, b) in p.backends.iter().enumerate() {
            let (_, cmds) = backend_totals(&shared.workers, b.stat_id);
            for (name, v) in COMMANDS.iter().zip(cmds).filter(|(_, v)| *v > 0) {
                m.sample("mongo_commands_total", &format!("{},command=\"{name}\"", backend_labels(p, i)), v);
            }
        }
    }
    let h = "mongo_command_duration_seconds";
    m.family(h, "histogram", "Request to reply time per command (replies matched by responseTo).");
    let totals: Vec<(String, PoolMongo)> =
        mongo_pools(snap).map(|p| (escape(&p.cfg.name), pool_totals(&shared.workers, p.stat_id))).collect();
    for (pool, t) in &totals {
        for (name, l) in COMMANDS.iter().zip(&t.latency).filter(|(_, l)| l.count > 0) {
            let labels = format!("pool=\"{pool}\",command=\"{name}\"");
            let mut cum = 0;
            for (i, n) in l.buckets.iter().enumerate() {
                cum += n;
                let le = bucket_upper_seconds(i).map_or("+Inf".to_string(), |s| s.to_string());
                m.sample(&format!("{h}_bucket"), &format!("{labels},le=\"{le}\""), cum);
            }
            m.sample(&format!("{h}_sum"), &labels, l.sum_us as f64 / 1e6);
            m.sample(&format!("{h}_count"), &labels, l.count);
        }
    }
    for r in POOL_ROWS {
        m.family(r.prom, r.kind, r.help);
        for (pool, t) in &totals {
            m.sample(r.prom, &format!("pool=\"{pool}\""), (r.get)(&t.counts));
        }
    }
    m.family("mongo_backend_restarts_total", "counter", "Restarts seen by health checks (processId changed).");
    for p in mongo_pools(snap) {
        for (i, b) in p.backends.iter().enumerate() {
            let v = shared.health.restarts.get(b.stat_id).map_or(0, |c| c.get());
            m.sample("mongo_backend_restarts_total", &backend_labels(p, i), v);
        }
    }
}

/// The `mongo` object of a pool in `/stats`; `None` for other modes.
pub fn pool_json(shared: &Shared, p: &PoolSnapshot) -> Option<Value> {
    let cfg = p.cfg.mongo?;
    let t = pool_totals(&shared.workers, p.stat_id);
    let mut commands = Map::new();
    for (name, l) in COMMANDS.iter().zip(&t.latency).filter(|(_, l)| l.count > 0) {
        commands.insert(
            name.to_string(),
            json!({"count": l.count, "mean_us": l.sum_us / l.count.max(1),
                   "p50_us_le": l.quantile_us(0.5), "p99_us_le": l.quantile_us(0.99)}),
        );
    }
    // Key order is output order (serde_json's preserve_order is on).
    let mut o = Map::new();
    o.insert("affinity".into(), cfg.affinity.as_str().into());
    o.insert("proxy_protocol".into(), json!(cfg.proxy_protocol.map(|v| v.as_str())));
    for r in POOL_ROWS {
        if let Some(field) = r.json {
            o.insert(field.to_owned(), (r.get)(&t.counts).into());
        }
    }
    o.insert("latency_by_command".into(), Value::Object(commands));
    Some(Value::Object(o))
}

/// The `mongo` object of a backend in `/stats`.
pub fn backend_json(shared: &Shared, p: &PoolSnapshot, stat_id: usize) -> Option<Value> {
    p.cfg.mongo?;
    let (ops, cmds) = backend_totals(&shared.workers, stat_id);
    let opcodes: Map<String, Value> = OPCODE_NAMES.iter().zip(ops).map(|(n, v)| (n.to_string(), json!(v))).collect();
    let commands: Map<String, Value> =
        COMMANDS.iter().zip(cmds).filter(|(_, v)| *v > 0).map(|(n, v)| (n.to_string(), json!(v))).collect();
    let restarts = shared.health.restarts.get(stat_id).map_or(0, |c| c.get());
    Some(json!({"requests_by_opcode": opcodes, "commands": commands, "restarts": restarts}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::fixture;
    use crate::config::{Mode, MongoConfig};
    use crate::protocol::mongo::command_index;
    use std::time::Duration;

    /// The standard fixture plus mongos pool "m" (stat 5) with backend "m1"
    /// (stat 20).
    fn with_mongos() -> fixture::Fixture {
        let f = fixture::standard();
        let p = fixture::pool("m", 5, &[("m1", "127.0.0.1:27017", true, 20)]);
        let mut cfg = p.cfg.clone();
        cfg.mode = Mode::Mongos;
        cfg.mongo = Some(MongoConfig::default());
        let p = Arc::new(PoolSnapshot::new(cfg, 5, &[20], &|_| true, Arc::default()));
        let tcp = f.shared.cell.load().pools[0].clone();
        f.shared.cell.publish(fixture::snapshot(5, false, vec![tcp, p]));
        f
    }

    #[test]
    fn metrics_sum_workers_and_stay_contiguous() {
        let f = with_mongos();
        let find = command_index(Some("find"));
        let (w0, w1) = (&f.shared.workers[0].mongo, &f.shared.workers[1].mongo);
        w0.backends[20].commands[find].add(3);
        w1.backends[20].commands[find].add(4);
        w0.backends[20].opcodes[0].add(7);
        w1.pools[5].latency[find].record(Duration::from_micros(3));
        w0.pools[5].latency[find].record(Duration::from_micros(1500));
        w1.pools[5].slow_ops.incr();
        f.shared.health.restarts[20].incr();
        let text = super::super::metrics::render(&f.shared);
        let b = r#"pool="m",backend="m1",addr="127.0.0.1:27017""#;
        for want in [
            format!("puerta_mongo_commands_total{{{b},command=\"find\"}} 7"),
            format!("puerta_mongo_requests_total{{{b},opcode=\"op_msg\"}} 7"),
            "puerta_mongo_command_duration_seconds_bucket{pool=\"m\",command=\"find\",le=\"0.000004\"} 1".into(),
            "puerta_mongo_command_duration_seconds_bucket{pool=\"m\",command=\"find\",le=\"+Inf\"} 2".into(),
            "puerta_mongo_command_duration_seconds_count{pool=\"m\",command=\"find\"} 2".into(),
            "puerta_mongo_slow_ops_total{pool=\"m\"} 1".into(),
            format!("puerta_mongo_backend_restarts_total{{{b}}} 1"),
        ] {
            assert!(text.lines().any(|l| l == want), "missing {want:?} in\n{text}");
        }
        assert!(
            !text.contains("pool=\"redis-a\",backend=\"r1\",addr=\"127.0.0.1:7001\",opcode"),
            "tcp pools get no mongo series"
        );
        // Every family's samples follow its TYPE line.
        let mut family = "";
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                family = rest.split(' ').next().unwrap();
            } else if !line.starts_with('#') {
                assert!(line.starts_with(family), "{line} outside {family}");
            }
        }
        let v: serde_json::Value = serde_json::from_str(&super::super::json::render(&f.shared).unwrap()).unwrap();
        assert_eq!(v["pools"][1]["mongo"]["latency_by_command"]["find"]["count"], 2);
        assert_eq!(v["pools"][1]["backends"][0]["mongo"]["commands"]["find"], 7);
        assert!(v["pools"][0].get("mongo").is_none());
    }

    /// The per-pool families and `/stats` keys as the hand-written code
    /// rendered them before `counter_table!`.
    #[test]
    fn pool_counters_keep_their_names_and_order() {
        let f = with_mongos();
        f.shared.workers[0].mongo.pools[5].retired.add(2);
        f.shared.workers[1].mongo.pools[5].retired.add(1);
        let text = super::super::metrics::render(&f.shared);
        let heads: Vec<&str> = text.lines().filter(|l| l.starts_with("# ")).collect();
        let want = [
            "# HELP puerta_mongo_slow_ops_total Operations slower than slow_op_threshold.",
            "# TYPE puerta_mongo_slow_ops_total counter",
            "# HELP puerta_mongo_protocol_errors_total Clients closed for a short or oversized message header.",
            "# TYPE puerta_mongo_protocol_errors_total counter",
            "# HELP puerta_mongo_boundary_closes_total Clients closed at a message boundary (mongos left, drain).",
            "# TYPE puerta_mongo_boundary_closes_total counter",
            "# HELP puerta_mongo_backend_restarts_total Restarts seen by health checks (processId changed).",
        ];
        fixture::assert_in_order(&heads, &want);
        assert!(text.lines().any(|l| l == "puerta_mongo_boundary_closes_total{pool=\"m\"} 3"), "{text}");
        let v: serde_json::Value = serde_json::from_str(&super::super::json::render(&f.shared).unwrap()).unwrap();
        let keys: Vec<&str> = v["pools"][1]["mongo"].as_object().unwrap().keys().map(String::as_str).collect();
        let order =
            ["affinity", "proxy_protocol", "slow_ops", "protocol_errors", "boundary_closes", "latency_by_command"];
        assert_eq!(keys, order);
        assert_eq!(v["pools"][1]["mongo"]["boundary_closes"], 3);
    }

    #[test]
    fn quantiles_are_bucket_upper_bounds() {
        let mut l = Latency { buckets: [0; LAT_BUCKETS], count: 0, sum_us: 0 };
        assert_eq!(l.quantile_us(0.5), None);
        l.buckets[3] = 9; // [4, 8) us
        l.buckets[10] = 1; // [512, 1024) us
        l.count = 10;
        assert_eq!(l.quantile_us(0.5), Some(8));
        assert_eq!(l.quantile_us(0.99), Some(1024));
    }
}
