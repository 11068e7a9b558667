//! `ClusterPool` with a fake cluster and simulated time: discovery from
//! seeds, last-good map on failure with backoff, report merging, and the
//! fast cadence while a reported-dead master is still listed.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::config::{ClusterConfig, Mode, PoolConfig, ServerSpec};
use crate::route::slotmap::NodeSpec;

fn addr(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

fn pool_cfg(seeds: &[u16]) -> PoolConfig {
    let servers = seeds
        .iter()
        .map(|&p| ServerSpec { addr: addr(p), weight: 1, name: addr(p).to_string(), host: String::new() })
        .collect();
    PoolConfig {
        mode: Mode::RedisCluster,
        cluster: Some(ClusterConfig::default()),
        ..PoolConfig::with_defaults("c", addr(1), servers)
    }
}

fn spec(port: u16, healthy: bool) -> NodeSpec {
    NodeSpec { id: format!("n{port}"), addr: addr(port), endpoint: addr(port).to_string(), healthy, hostname: None }
}

/// Two shards: masters `m1`, `m2` with replicas `r1`, `r2`.
fn layout(m1: u16, r1: Option<u16>, m2: u16, r2: Option<u16>, m1_healthy: bool) -> Vec<ShardSpec> {
    vec![
        ShardSpec {
            ranges: vec![(0, 8191)],
            master: spec(m1, m1_healthy),
            replicas: r1.map(|r| spec(r, true)).into_iter().collect(),
        },
        ShardSpec {
            ranges: vec![(8192, 16383)],
            master: spec(m2, true),
            replicas: r2.map(|r| spec(r, true)).into_iter().collect(),
        },
    ]
}

/// A fake cluster: which nodes answer, what they answer, who was asked.
struct Fake {
    up: RefCell<HashMap<SocketAddr, Vec<ShardSpec>>>,
    asked: RefCell<Vec<SocketAddr>>,
}

impl Fake {
    fn new() -> Fake {
        Fake { up: RefCell::new(HashMap::new()), asked: RefCell::new(Vec::new()) }
    }

    fn serve(&self, ports: &[u16], shards: Vec<ShardSpec>) {
        let mut up = self.up.borrow_mut();
        up.clear();
        for &p in ports {
            up.insert(addr(p), shards.clone());
        }
    }

    fn refresh(&self, pool: &mut ClusterPool, now: Instant) -> bool {
        pool.poll_refresh_with(now, &mut |a| {
            self.asked.borrow_mut().push(a);
            self.up.borrow().get(&a).cloned().ok_or_else(|| FetchError::Io {
                addr: a,
                source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
            })
        })
    }

    fn asked(&self) -> Vec<u16> {
        self.asked.borrow_mut().drain(..).map(|a| a.port()).collect()
    }
}

#[test]
fn discovers_from_any_seed_and_asks_known_masters_next() {
    let t0 = Instant::now();
    let fake = Fake::new();
    fake.serve(&[11, 12, 21, 22], layout(11, Some(21), 12, Some(22), true));
    let mut pool = ClusterPool::new(&pool_cfg(&[99, 12]), t0).unwrap();
    assert_eq!(pool.map().assigned(), 0);
    assert!(fake.refresh(&mut pool, t0), "the first refresh builds the map");
    assert_eq!(fake.asked(), [99, 12], "a dead seed is skipped");
    let map = pool.map();
    assert_eq!(map.master_of(0).and_then(|i| map.node(i)).map(|n| n.addr), Some(addr(11)));
    assert!(!fake.refresh(&mut pool, t0 + Duration::from_secs(1)), "not due yet");
    assert!(!fake.refresh(&mut pool, t0 + Duration::from_secs(5)), "due; same map is no change");
    assert_eq!(fake.asked(), [11], "known healthy masters are asked first");
}

#[test]
fn unreachable_cluster_keeps_the_last_map_and_backs_off() {
    let t0 = Instant::now();
    let fake = Fake::new();
    fake.serve(&[11, 12], layout(11, None, 12, None, true));
    let mut pool = ClusterPool::new(&pool_cfg(&[11]), t0).unwrap();
    assert!(fake.refresh(&mut pool, t0));
    let good = pool.map();
    fake.serve(&[], Vec::new());
    let mut now = t0 + Duration::from_secs(5);
    let mut gaps = Vec::new();
    for _ in 0..5 {
        assert!(!fake.refresh(&mut pool, now));
        assert_eq!(*pool.map(), *good, "the last good map stays");
        gaps.push(pool.next_due() - now);
        pool.handle_report(ClusterReport::NodeFailed { addr: addr(11) }, now);
        now = pool.next_due();
    }
    let ms = Duration::from_millis;
    assert_eq!(gaps, [ms(100), ms(200), ms(400), ms(800), ms(1600)]);
    assert_eq!(pool.counts(), (1, 5));
    assert!(fake.asked().len() <= 2 + 5 * TRIES_PER_REFRESH);
    fake.serve(&[11, 12], layout(11, None, 12, None, true));
    assert!(!fake.refresh(&mut pool, now), "recovered, and the map is the same");
    assert_eq!(pool.counts(), (2, 5));
    // Node 11 was reported dead and is still listed as a healthy master:
    // the fast cadence holds until the cluster agrees or the report ages.
    assert_eq!(pool.next_due(), now + Duration::from_millis(500));
}

#[test]
fn a_burst_of_reports_is_one_refresh_and_stale_moved_is_dropped() {
    let t0 = Instant::now();
    let fake = Fake::new();
    fake.serve(&[11, 12], layout(11, None, 12, None, true));
    let mut pool = ClusterPool::new(&pool_cfg(&[11]), t0).unwrap();
    fake.refresh(&mut pool, t0);
    fake.asked();
    let later = t0 + Duration::from_secs(1);
    pool.handle_report(ClusterReport::Moved { slot: 5, addr: addr(11) }, later);
    assert_eq!(pool.next_due(), t0 + Duration::from_secs(5), "MOVED to the owner we know: nothing to learn");
    // Slot 5 moved to node 12; every worker reports it.
    let mut moved = layout(11, None, 12, None, true);
    moved[0].ranges = vec![(6, 8191)];
    moved[1].ranges = vec![(0, 5), (8192, 16383)];
    fake.serve(&[11, 12], moved);
    for w in 0..8 {
        pool.handle_report(ClusterReport::Moved { slot: 5, addr: addr(12) }, later + Duration::from_millis(w));
    }
    let mut changes = 0;
    for step in 0..20 {
        if fake.refresh(&mut pool, later + Duration::from_millis(step * 10)) {
            changes += 1;
        }
    }
    assert_eq!(changes, 1);
    assert_eq!(fake.asked().len(), 1, "eight reports, one refresh");
    let map = pool.map();
    assert_eq!(map.master_of(5).and_then(|i| map.node(i)).map(|n| n.addr), Some(addr(12)));
}

#[test]
fn failover_is_seen_on_the_fast_cadence() {
    let t0 = Instant::now();
    let fake = Fake::new();
    fake.serve(&[11, 12, 21, 22], layout(11, Some(21), 12, Some(22), true));
    let mut pool = ClusterPool::new(&pool_cfg(&[11]), t0).unwrap();
    fake.refresh(&mut pool, t0);
    fake.asked();
    // Master 11 dies; a worker reports it. The cluster has not noticed yet.
    fake.serve(&[12, 21, 22], layout(11, Some(21), 12, Some(22), true));
    let dead = t0 + Duration::from_secs(1);
    pool.handle_report(ClusterReport::NodeFailed { addr: addr(11) }, dead);
    assert!(!fake.refresh(&mut pool, dead));
    assert_eq!(fake.asked(), [12], "the reported node is not asked first");
    assert_eq!(pool.next_due(), dead + Duration::from_millis(500), "degraded: fast cadence");
    // After cluster-node-timeout the replica 21 is promoted.
    fake.serve(&[12, 21, 22], layout(21, None, 12, Some(22), true));
    let promoted = dead + Duration::from_millis(500);
    assert!(fake.refresh(&mut pool, promoted));
    let map = pool.map();
    assert_eq!(map.master_of(0).and_then(|i| map.node(i)).map(|n| n.addr), Some(addr(21)));
    assert_eq!(pool.next_due(), promoted + Duration::from_secs(5), "healthy again: normal cadence");
}

#[test]
fn silent_seeds_cost_one_budget_per_refresh_not_one_per_seed() {
    // Listeners that never accept: the connect succeeds (the kernel's
    // backlog), no reply ever comes.
    let silent: Vec<std::net::TcpListener> =
        (0..3).map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind")).collect();
    let ports: Vec<u16> = silent.iter().map(|l| l.local_addr().map_or(0, |a| a.port())).collect();
    let mut cfg = pool_cfg(&ports);
    cfg.connect_timeout = Duration::from_millis(300);
    let mut pool = ClusterPool::new(&cfg, Instant::now()).unwrap();
    let start = Instant::now();
    assert!(!pool.poll_refresh(Instant::now()));
    let took = start.elapsed();
    assert_eq!(pool.counts(), (0, 1));
    // Three seeds at 300 ms each would take 900 ms.
    assert!(took < Duration::from_millis(750), "one refresh stalled the control thread for {took:?}");
}

#[test]
fn refusing_nodes_are_those_reported_lately() {
    let t0 = Instant::now();
    let mut pool = ClusterPool::new(&pool_cfg(&[11]), t0).unwrap();
    assert!(pool.refusing(t0).is_empty());
    pool.handle_report(ClusterReport::NodeFailed { addr: addr(11) }, t0);
    pool.handle_report(ClusterReport::NodeFailed { addr: addr(12) }, t0 + Duration::from_secs(5));
    assert_eq!(pool.refusing(t0 + Duration::from_secs(6)), [addr(11), addr(12)]);
    // A node reported again stays listed; one not reported drops out.
    pool.handle_report(ClusterReport::NodeFailed { addr: addr(11) }, t0 + Duration::from_secs(9));
    let later = t0 + REFUSING_SHOWN + Duration::from_secs(6);
    assert_eq!(pool.refusing(later), [addr(11)]);
}
