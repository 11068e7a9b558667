//! `ShardSession` against real pool snapshots: ring routing, reloads that
//! add and remove servers, ejection, and incompatible changes.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use super::*;
use crate::config::{PoolConfig, ServerSpec, ShardConfig};
use crate::protocol::resp::encode::command;
use crate::session::mux::BackendClose;

fn spec(port: u16) -> ServerSpec {
    ServerSpec {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        weight: 1,
        name: format!("s{port}"),
        host: String::new(),
    }
}

/// A redis pool over `ports`; backends with a port in `down` are ejected
/// (auto_eject_hosts) so the ring leaves them out.
fn pool(ports: &[u16], down: &[u16], shard: ShardConfig) -> Arc<PoolSnapshot> {
    let cfg = PoolConfig {
        mode: crate::config::Mode::Redis,
        // murmur spreads short keys like "x1" over both servers (nutcracker's
        // fnv1a_64, the default, puts most of them on one).
        shard: Some(ShardConfig { auto_eject_hosts: true, hash: crate::hash::HashKind::Murmur, ..shard }),
        ..PoolConfig::with_defaults("p", "127.0.0.1:1".parse().unwrap(), ports.iter().map(|&p| spec(p)).collect())
    };
    // Stat id = port, so tests can tell backends apart by it.
    let sids: Vec<usize> = ports.iter().map(|&p| p as usize).collect();
    let up = |sid: usize| !down.contains(&(sid as u16));
    Arc::new(PoolSnapshot::new(cfg, 1, &sids, &up, Arc::new(AtomicU64::new(0))))
}

fn get(key: &str) -> Vec<u8> {
    command([&b"GET"[..], key.as_bytes()].into_iter()).to_vec()
}

/// Sends GET `key` from `c`; returns the backend it was written to.
fn route_of(s: &mut ShardSession, c: ClientId, key: &str, now: Instant) -> BackendId {
    s.handle_client_data(c, &get(key), now);
    while let Some(i) = s.poll_intent() {
        if let MuxIntent::Connect(b) = i {
            s.handle_backend_connected(b);
        }
    }
    let b = s.poll_dirty_backend().expect("the request was queued");
    while s.poll_dirty_backend().is_some() {}
    let n = s.poll_backend_transmit(b).expect("bytes to send").len();
    s.handle_backend_sent(b, n, now);
    s.handle_backend_data(b, b"$-1\r\n", now);
    while let Some(id) = s.poll_dirty_client() {
        if let Some(buf) = s.poll_client_transmit(id) {
            let n = buf.len();
            s.handle_client_sent(id, n, now);
        }
    }
    b
}

#[test]
fn requests_follow_the_ring_in_config_positions() {
    let now = Instant::now();
    let p = pool(&[7001, 7002, 7003], &[], ShardConfig::default());
    let mut s = ShardSession::new(p.clone(), now).unwrap();
    let c = s.add_client(None);
    let ring = p.ring.clone().unwrap();
    for i in 0..40 {
        let k = format!("key:{i}");
        let b = route_of(&mut s, c, &k, now);
        assert_eq!(Some(b.server), ring.pick(k.as_bytes()), "{k}");
        assert_eq!(s.backend_addr(b), Some(p.backends[b.server as usize].spec.addr));
    }
    assert_eq!(s.server_stat_id(1), Some(7002));
}

#[test]
fn an_ejection_moves_the_next_request_of_an_existing_client() {
    let now = Instant::now();
    let all = pool(&[7001, 7002], &[], ShardConfig::default());
    let mut s = ShardSession::new(all.clone(), now).unwrap();
    let c = s.add_client(None);
    let k = (0..).map(|i| format!("k{i}")).find(|k| all.ring.as_ref().unwrap().pick(k.as_bytes()) == Some(1)).unwrap();
    assert_eq!(route_of(&mut s, c, &k, now).server, 1);
    let ejected = pool(&[7001, 7002], &[7002], ShardConfig::default());
    assert_eq!(s.handle_pool_update(&ejected, now), PoolUpdate::Applied);
    assert_eq!(route_of(&mut s, c, &k, now).server, 0);
}

#[test]
fn reload_keeps_slots_adds_new_servers_and_closes_removed_ones_once_idle() {
    let now = Instant::now();
    let before = pool(&[7001, 7002], &[], ShardConfig::default());
    let mut s = ShardSession::new(before.clone(), now).unwrap();
    let c = s.add_client(None);
    // Open a connection to each server.
    let mut seen = [false; 2];
    for i in 0..50 {
        seen[route_of(&mut s, c, &format!("x{i}"), now).server as usize] = true;
    }
    assert_eq!(seen, [true, true]);
    // 7001 leaves, 7003 joins (listed first: config positions move).
    let after = pool(&[7003, 7002], &[], ShardConfig::default());
    assert_eq!(s.handle_pool_update(&after, now), PoolUpdate::Applied);
    assert!(s.poll_intent().is_none(), "no connection is touched by the update itself");
    assert_eq!(s.backend_addr(BackendId { server: 2, conn: 0 }), Some(spec(7003).addr));
    assert_eq!(s.server_stat_id(2), Some(7003));
    let ring = after.ring.clone().unwrap();
    for i in 0..50 {
        let k = format!("y{i}");
        let want = match ring.pick(k.as_bytes()) {
            Some(0) => 2, // 7003's slot
            Some(1) => 1, // 7002 kept slot 1
            other => panic!("{other:?}"),
        };
        assert_eq!(route_of(&mut s, c, &k, now).server, want, "{k}");
    }
    // The removed server's idle connection closes on the next tick.
    s.handle_tick(now);
    let closed: Vec<_> = std::iter::from_fn(|| s.poll_intent()).collect();
    assert_eq!(closed, [MuxIntent::CloseBackend(BackendId { server: 0, conn: 0 }, BackendClose::Other)]);
}

#[test]
fn reshaping_changes_are_incompatible_and_preconnect_connects_new_servers() {
    let now = Instant::now();
    let pre = ShardConfig { preconnect: true, ..ShardConfig::default() };
    let mut s = ShardSession::new(pool(&[7001], &[], pre.clone()), now).unwrap();
    assert_eq!(s.poll_intent(), Some(MuxIntent::Connect(BackendId { server: 0, conn: 0 })));
    assert_eq!(s.handle_pool_update(&pool(&[7001, 7002], &[], pre.clone()), now), PoolUpdate::Applied);
    assert_eq!(s.poll_intent(), Some(MuxIntent::Connect(BackendId { server: 1, conn: 0 })));
    let wider = ShardConfig { server_connections: 2, ..pre };
    assert_eq!(s.handle_pool_update(&pool(&[7001, 7002], &[], wider), now), PoolUpdate::Incompatible);
}
