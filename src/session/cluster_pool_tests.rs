//! `ClusterPoolSession` on real pool snapshots, simulated time: backend
//! id mapping, reports as intents, an empty map answering CLUSTERDOWN
//! after bounded retries, topology updates, reshaping reloads, draining.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::config::{ClusterConfig, Mode, PoolConfig, ServerSpec};
use crate::route::keyslot;
use crate::route::slotmap::{NodeSpec, ShardSpec};
use crate::session::mux::BackendClose;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn node(port: u16) -> NodeSpec {
    NodeSpec {
        id: format!("id{port}"),
        addr: addr(port),
        endpoint: addr(port).to_string(),
        healthy: true,
        hostname: None,
    }
}

/// Every slot on the master at `port`.
fn map_on(port: u16) -> Arc<SlotMap> {
    Arc::new(SlotMap::build(vec![ShardSpec { ranges: vec![(0, 16383)], master: node(port), replicas: vec![] }]))
}

/// Every slot on the master at `port`, with a replica at `replica` (a
/// node the topology knows, which a MOVED may name).
fn map_with_replica(port: u16, replica: u16) -> Arc<SlotMap> {
    let shard = ShardSpec { ranges: vec![(0, 16383)], master: node(port), replicas: vec![node(replica)] };
    Arc::new(SlotMap::build(vec![shard]))
}

fn cfg(cluster: ClusterConfig) -> PoolConfig {
    let seeds = vec![ServerSpec { addr: addr(30001), weight: 1, name: "s1".into(), host: String::new() }];
    PoolConfig {
        mode: Mode::RedisCluster,
        cluster: Some(cluster),
        ..PoolConfig::with_defaults("c", "127.0.0.1:7000".parse().unwrap(), seeds)
    }
}

fn pool(cfg: PoolConfig, map: Option<Arc<SlotMap>>) -> Arc<PoolSnapshot> {
    let mut p = PoolSnapshot::new(cfg, 3, &[9], &|_| true, Arc::new(AtomicU64::new(0)));
    p.cluster = map;
    Arc::new(p)
}

fn get(key: &str) -> Vec<u8> {
    crate::protocol::resp::encode::command([&b"GET"[..], key.as_bytes()].into_iter()).to_vec()
}

fn intents(s: &mut ClusterPoolSession) -> Vec<MuxIntent> {
    std::iter::from_fn(|| s.poll_intent()).collect()
}

fn take_client(s: &mut ClusterPoolSession, c: ClientId, now: Instant) -> String {
    let mut out = Vec::new();
    while let Some(buf) = s.poll_client_transmit(c) {
        let n = buf.len();
        out.extend_from_slice(&buf);
        s.handle_client_sent(c, n, now);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn requests_reach_the_slot_owner_over_mapped_backend_ids() {
    let now = Instant::now();
    let map = map_with_replica(30002, 30003);
    let mut s = ClusterPoolSession::new(pool(cfg(ClusterConfig::default()), Some(map))).unwrap();
    assert!(s.wants_local_addr());
    let c = s.add_client(Some(addr(7000)));
    s.handle_client_data(c, &get("k"), now);
    let [MuxIntent::Connect(b)] = intents(&mut s)[..] else { panic!("one connect") };
    assert_eq!(s.backend_addr(b), Some(addr(30002)));
    assert_eq!(s.server_stat_id(b.server), None, "cluster connections are not pool servers");
    s.handle_backend_connected(b);
    assert_eq!(s.poll_dirty_backend(), Some(b));
    let n = s.poll_backend_transmit(b).expect("the GET").len();
    s.handle_backend_sent(b, n, now);
    s.handle_backend_data(b, b"$1\r\nv\r\n", now);
    assert_eq!(take_client(&mut s, c, now), "$1\r\nv\r\n");

    // A MOVED is followed at once and reported for the control thread.
    s.handle_client_data(c, &get("k"), now);
    while s.poll_dirty_backend().is_some() {}
    let n = s.poll_backend_transmit(b).expect("the GET").len();
    s.handle_backend_sent(b, n, now);
    let moved = format!("-MOVED {} 127.0.0.1:30003\r\n", keyslot(b"k"));
    s.handle_backend_data(b, moved.as_bytes(), now);
    let got = intents(&mut s);
    assert!(
        got.contains(&MuxIntent::Report(crate::route::ClusterReport::Moved { slot: keyslot(b"k"), addr: addr(30003) }))
    );
    let to = got.iter().find_map(|i| if let MuxIntent::Connect(b) = i { Some(*b) } else { None }).unwrap();
    assert_eq!(s.backend_addr(to), Some(addr(30003)));
    assert_eq!(s.cluster_stats().map(|c| c.moved), Some(1));
}

#[test]
fn an_empty_map_answers_clusterdown_after_bounded_retries_then_a_refresh_serves() {
    let mut now = Instant::now();
    let c0 = ClusterConfig { max_retries: 3, retry_backoff: Duration::from_millis(10), ..ClusterConfig::default() };
    let empty = pool(cfg(c0.clone()), None);
    let mut s = ClusterPoolSession::new(empty).unwrap();
    let c = s.add_client(None);
    s.handle_client_data(c, &get("k"), now);
    assert!(intents(&mut s).is_empty(), "no node to connect to");
    for _ in 0..10 {
        let Some(d) = s.next_deadline() else { break };
        now = now.max(d);
        s.handle_tick(now);
    }
    assert_eq!(take_client(&mut s, c, now), "-CLUSTERDOWN Hash slot not served\r\n");
    assert_eq!(s.stats().forward_error, 1, "mirrored for the pool's forward_error");

    // The first good refresh arrives with the next snapshot.
    let served = pool(cfg(c0), Some(map_on(30001)));
    assert_eq!(s.handle_pool_update(&served, now), PoolUpdate::Applied);
    s.handle_client_data(c, &get("k"), now);
    let [MuxIntent::Connect(b)] = intents(&mut s)[..] else { panic!("one connect") };
    assert_eq!(s.backend_addr(b), Some(addr(30001)));
}

#[test]
fn a_changed_cluster_config_or_mode_is_incompatible() {
    let now = Instant::now();
    let mut s = ClusterPoolSession::new(pool(cfg(ClusterConfig::default()), Some(map_on(1)))).unwrap();
    let changed = ClusterConfig { node_connections: 4, ..ClusterConfig::default() };
    assert_eq!(s.handle_pool_update(&pool(cfg(changed), Some(map_on(1))), now), PoolUpdate::Incompatible);
    let mut redis = cfg(ClusterConfig::default());
    redis.cluster = None;
    assert_eq!(s.handle_pool_update(&pool(redis, None), now), PoolUpdate::Incompatible);
    assert_eq!(s.handle_pool_update(&pool(cfg(ClusterConfig::default()), Some(map_on(2))), now), PoolUpdate::Applied);
    assert_eq!(s.session().topology().nodes()[0].addr, addr(2));
}

#[test]
fn draining_closes_idle_clients_then_busy_ones_after_their_reply_then_idle_backends() {
    let now = Instant::now();
    let mut s = ClusterPoolSession::new(pool(cfg(ClusterConfig::default()), Some(map_on(30002)))).unwrap();
    let (idle, busy) = (s.add_client(None), s.add_client(None));
    s.handle_client_data(busy, &get("k"), now);
    let [MuxIntent::Connect(b)] = intents(&mut s)[..] else { panic!("one connect") };
    s.handle_backend_connected(b);
    let n = s.poll_backend_transmit(b).expect("the GET").len();
    s.handle_backend_sent(b, n, now);
    s.set_draining();
    assert_eq!(intents(&mut s), [MuxIntent::CloseClient(idle, ClientClose::Shutdown)]);
    s.handle_backend_data(b, b"$1\r\nv\r\n", now);
    assert_eq!(take_client(&mut s, busy, now), "$1\r\nv\r\n");
    assert_eq!(intents(&mut s), [MuxIntent::CloseClient(busy, ClientClose::Shutdown)]);
    assert!(s.has_open_backends());
    s.handle_tick(now);
    assert_eq!(intents(&mut s), [MuxIntent::CloseBackend(b, BackendClose::Other)]);
    assert!(!s.has_open_backends() && s.client_count() == 0);
}
