//! Sans-IO tests of the status document: the history ring with made-up
//! instants, quantiles, and `render` over the admin fixture (counters set
//! by hand, pools of every kind).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::history::{quantile, History, PoolSample, Sample, MAX_SAMPLES};
use super::*;
use crate::admin::fixture;
use crate::route::slotmap::{NodeSpec, ShardSpec};
use crate::route::SlotMap;

fn ps(stat_id: usize, requests: u64, moved: u64, latency: Vec<u64>) -> PoolSample {
    PoolSample { stat_id, requests: Some(requests), moved, latency, ..PoolSample::default() }
}

fn at(t0: Instant, ms: u64, pools: Vec<PoolSample>) -> Sample {
    Sample { at: t0 + Duration::from_millis(ms), pools }
}

#[test]
fn history_is_bounded_and_spaced() {
    let t0 = Instant::now();
    let mut h = History::default();
    h.record(at(t0, 0, vec![]));
    h.record(at(t0, 500, vec![]));
    assert_eq!(h.len(), 1, "a sample younger than a second after the last is not kept");
    for s in 1..200 {
        h.record(at(t0, s * 1000, vec![]));
    }
    assert_eq!(h.len(), MAX_SAMPLES);
}

#[test]
fn rates_use_the_newest_sample_a_second_old() {
    let t0 = Instant::now();
    let mut h = History::default();
    let none = h.derive(&ps(1, 10, 0, vec![]), t0, None);
    assert_eq!(none.requests_per_sec, None, "no baseline yet");
    h.record(at(t0, 0, vec![ps(1, 100, 0, vec![])]));
    h.record(at(t0, 1000, vec![ps(1, 300, 0, vec![])]));
    // 2 s: the 1 s sample is the newest one at least a second old.
    let d = h.derive(&ps(1, 700, 0, vec![]), t0 + Duration::from_secs(2), None);
    assert_eq!(d.requests_per_sec, Some(400.0));
    // 1.5 s: only the 0 s sample is a second old.
    let d = h.derive(&ps(1, 400, 0, vec![]), t0 + Duration::from_millis(1500), None);
    assert_eq!(d.requests_per_sec, Some(200.0));
    // A pool the history has not seen (added by a reload) has no rate, and
    // a counter that went backwards gives none rather than a wrapped one.
    assert_eq!(h.derive(&ps(2, 700, 0, vec![]), t0 + Duration::from_secs(2), None).requests_per_sec, None);
    assert_eq!(h.derive(&ps(1, 5, 0, vec![]), t0 + Duration::from_secs(2), None).requests_per_sec, None);
    // tcp pools count no requests.
    let tcp = PoolSample { stat_id: 1, requests: None, ..PoolSample::default() };
    assert_eq!(h.derive(&tcp, t0 + Duration::from_secs(2), None).requests_per_sec, None);
}

#[test]
fn minute_window_from_the_ring_or_the_process_start() {
    let t0 = Instant::now();
    let mut h = History::default();
    for s in 0..=90u64 {
        h.record(at(t0, s * 1000, vec![ps(1, s, s * 2, vec![s, 10 * s])]));
    }
    let now = t0 + Duration::from_secs(91);
    let d = h.derive(&ps(1, 91, 182, vec![91, 910]), now, Some(t0));
    // The oldest kept sample within 60 s is the one at 31 s.
    assert_eq!(d.window_seconds, Some(60.0));
    assert_eq!(d.moved_last_minute, Some(182 - 62));
    assert_eq!(d.latency_window, Some(vec![60, 600]));
    // A process younger than a minute: counted since start (all zero then).
    let young = History::default();
    let d = young.derive(&ps(1, 5, 7, vec![1, 2]), t0 + Duration::from_secs(10), Some(t0));
    assert_eq!((d.window_seconds, d.moved_last_minute), (Some(10.0), Some(7)));
    assert_eq!(d.latency_window, Some(vec![1, 2]));
    // Old process, empty ring: no window.
    let d = young.derive(&ps(1, 5, 7, vec![1, 2]), t0 + Duration::from_secs(100), Some(t0));
    assert_eq!((d.window_seconds, d.latency_window), (None, None));
}

#[test]
fn quantiles_are_bucket_upper_bounds() {
    let bounds = [Some(10), Some(100), Some(1000), None];
    assert_eq!(quantile(&bounds, &[0, 0, 0, 0], 0.5), None, "nothing counted");
    let counts = [900, 90, 9, 1];
    assert_eq!(quantile(&bounds, &counts, 0.5), Some(10));
    assert_eq!(quantile(&bounds, &counts, 0.9), Some(10));
    assert_eq!(quantile(&bounds, &counts, 0.99), Some(100));
    assert_eq!(quantile(&bounds, &counts, 0.999), Some(1000));
    // The open-ended last bucket reports the bound before it.
    assert_eq!(quantile(&bounds, &[0, 0, 0, 5], 0.5), Some(1000));
    let v = latency_view(&bounds, &counts, Some(60.0));
    assert_eq!((v.count, v.p50_us, v.p99_us, v.p999_us), (Some(1000), Some(10), Some(100), Some(1000)));
}

fn node(port: u16, healthy: bool) -> NodeSpec {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    NodeSpec { id: format!("{port}abcdefghijklmnop"), addr, endpoint: addr.to_string(), healthy, hostname: None }
}

/// Pools of four kinds: the fixture's tcp pool `redis-a` (r2 down), a
/// redis pool with one server ejected, a cluster pool with a failed
/// replica, a mongos pool.
fn kinds() -> fixture::Fixture {
    let f = fixture::standard();
    let tcp = f.shared.cell.load().pools[0].clone();
    let unwrap = |p: Arc<crate::route::PoolSnapshot>| Arc::try_unwrap(p).unwrap_or_else(|_| unreachable!("fresh"));
    let mut twem =
        unwrap(fixture::pool("tw", 5, &[("a", "127.0.0.1:7101", true, 20), ("b", "127.0.0.1:7102", false, 21)]));
    twem.cfg.mode = Mode::Redis;
    let mut cl = unwrap(fixture::pool("cl", 6, &[("s", "127.0.0.1:30001", true, 30)]));
    cl.cfg.mode = Mode::RedisCluster;
    cl.cfg.cluster = Some(crate::config::ClusterConfig::default());
    cl.cluster = Some(Arc::new(SlotMap::build(vec![
        ShardSpec {
            ranges: vec![(0, 5460), (10923, 16383)],
            master: node(30001, true),
            replicas: vec![node(30003, false)],
        },
        ShardSpec { ranges: vec![(5461, 10922)], master: node(30002, true), replicas: vec![] },
    ])));
    let mut mg = unwrap(fixture::pool("mg", 7, &[("m", "127.0.0.1:27017", true, 40)]));
    mg.cfg.mode = Mode::Mongos;
    let pools = vec![tcp, Arc::new(twem), Arc::new(cl), Arc::new(mg)];
    f.shared.cell.publish(fixture::snapshot(5, false, pools));
    f
}

fn doc(f: &fixture::Fixture, h: &mut History, now: Instant) -> Value {
    serde_json::from_str(&render(&f.shared, h, now).unwrap()).unwrap()
}

#[test]
fn document_by_pool_kind() {
    let f = kinds();
    let (w0, w1) = (&f.shared.workers[0], &f.shared.workers[1]);
    f.shared.health.ok[fixture::R1_STAT].add(3);
    f.shared.health.rtt_us[fixture::R1_STAT].set(420);
    w1.backends[fixture::R2_STAT].connect_failures.add(2);
    w0.mux.pools[5].commands.set(40);
    w1.mux.pools[5].commands.set(2);
    w0.mux.pools[5].forward_error.add(1);
    w0.mux.clusters[6].moved.add(3);
    w1.mux.clusters[6].ask.add(1);
    w0.mongo.pools[7].latency[0].record(Duration::from_micros(3));
    w1.mongo.pools[7].latency[1].record(Duration::from_micros(3000));
    let mut h = History::default();
    let now = f.shared.started + Duration::from_secs(5);
    let v = doc(&f, &mut h, now);
    assert_eq!(v["epoch"], 5);
    assert_eq!(v["slowlog"], serde_json::json!([]), "no slow request yet: an empty panel");
    let pool = |name: &str| v["pools"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap().clone();

    let tcp = pool("redis-a");
    assert_eq!(tcp["mode"], "tcp");
    assert_eq!(tcp["requests_total"], Value::Null, "a byte relay counts no requests");
    assert_eq!(tcp["errors_total"], 2, "tcp errors: connect failures");
    assert_eq!(tcp["backends"][0]["state"], "up");
    assert_eq!(tcp["backends"][0]["rtt_us"], 420);
    assert_eq!(tcp["backends"][1]["state"], "down");
    assert_eq!(tcp["backends"][1]["rtt_us"], Value::Null, "never probed ok");
    assert_eq!(tcp["latency"]["p99_us"], Value::Null);

    let tw = pool("tw");
    assert_eq!((tw["requests_total"].clone(), tw["errors_total"].clone()), (42.into(), 1.into()));
    assert_eq!(tw["backends"][1]["state"], "ejected", "redis pools: down means ejected");
    assert_eq!(tw["backends"][0]["rtt_us"], Value::Null, "no probe RTT for redis pools");

    let cl = pool("cl");
    let c = &cl["cluster"];
    assert_eq!((c["moved_total"].clone(), c["ask_total"].clone()), (3.into(), 1.into()));
    assert_eq!(c["moved_last_minute"], 3, "a 5 s old process: counted since start");
    assert_eq!(c["slots_served"], 16384);
    assert_eq!(c["shards"][0]["addr"], "127.0.0.1:30001");
    assert_eq!(c["shards"][0]["id"], "30001abc");
    assert_eq!(c["shards"][0]["slots"], serde_json::json!([[0, 5460], [10923, 16383]]));
    assert_eq!(c["shards"][0]["replicas"][0]["state"], "down", "a failed replica is listed, down");
    assert_eq!(c["shards"][1]["slots"], serde_json::json!([[5461, 10922]]));
    let nodes = cl["backends"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "cluster backends are the slot map's nodes");
    assert!(nodes.iter().any(|n| n["addr"] == "127.0.0.1:30003" && n["state"] == "down" && n["role"] == "replica"));

    // Workers found a master refusing connections: down before the
    // cluster itself flags it.
    f.shared.health.cluster_refusing[6].store(Arc::new(vec!["127.0.0.1:30002".parse().unwrap()]));
    let v = doc(&f, &mut h, now + Duration::from_secs(1));
    let cl = v["pools"].as_array().unwrap().iter().find(|p| p["name"] == "cl").unwrap().clone();
    assert_eq!(cl["cluster"]["shards"][1]["state"], "down");
    let m2 = cl["backends"].as_array().unwrap().iter().find(|n| n["addr"] == "127.0.0.1:30002").unwrap().clone();
    assert_eq!((m2["state"].clone(), m2["reason"].clone()), ("down".into(), "refusing".into()));
    let r = cl["backends"].as_array().unwrap().iter().find(|n| n["addr"] == "127.0.0.1:30003").unwrap().clone();
    assert_eq!(r["reason"], "failed");

    let mg = pool("mg");
    assert_eq!(mg["requests_total"], 2);
    assert_eq!(mg["latency"]["count"], 2);
    assert_eq!(mg["latency"]["p50_us"], 4, "3 µs is in [2, 4)");
    assert_eq!(mg["latency"]["p99_us"], 4096, "3 ms is in [2048, 4096)");
}

#[test]
fn rates_between_renders() {
    let f = kinds();
    let w0 = &f.shared.workers[0];
    let mut h = History::default();
    let t = f.shared.started + Duration::from_secs(100);
    w0.mux.pools[5].commands.set(1000);
    w0.mux.clusters[6].moved.add(10);
    let first = doc(&f, &mut h, t);
    assert_eq!(first["pools"][1]["requests_per_sec"], Value::Null, "first call: no baseline");
    w0.mux.pools[5].commands.set(1500);
    w0.mux.clusters[6].moved.add(4);
    let v = doc(&f, &mut h, t + Duration::from_secs(2));
    assert_eq!(v["pools"][1]["requests_per_sec"], 250.0);
    assert_eq!(v["pools"][2]["cluster"]["moved_last_minute"], 4);
    assert_eq!(v["pools"][2]["cluster"]["moved_total"], 14);
    assert_eq!(h.len(), 2);
}

#[test]
fn page_is_self_contained_and_told_about_the_token() {
    let open = page(false);
    let text = String::from_utf8(open.body.clone()).unwrap();
    assert_eq!(open.content_type, HTML);
    assert!(text.contains("data-token=\"off\""));
    assert!(text.contains("/api/status"));
    for remote in ["http://", "https://", "//cdn"] {
        assert!(!text.contains(&format!("src=\"{remote}")), "no remote script: {remote}");
        assert!(!text.contains(&format!("href=\"{remote}")), "no remote link: {remote}");
    }
    let guarded = String::from_utf8(page(true).body).unwrap();
    assert!(guarded.contains("<body data-token=\"on\">"));
    assert_eq!(open.header.map(|h| h.0), Some("Content-Security-Policy"));
}
