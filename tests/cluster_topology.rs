//! Cluster topology against a real 3-master / 3-replica cluster: Puerta's
//! key slots equal the server's `CLUSTER KEYSLOT`, a refresh builds the
//! same slot map the cluster reports, and the control thread follows a
//! failover (kill a master, report it, see the promoted replica in the
//! published snapshot).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::{Cluster, SETTLE};
use common::twem::{command, RawResp, Reply};
use common::{free_port, wait_until};
use puerta::control::cluster::fetch::fetch;
use puerta::control::{Control, ControlMsg, ControlState, DriverKind, Shared};
use puerta::route::{keyslot, ClusterReport, SnapshotCell};
use puerta::stats::{HealthStats, WorkerStats};

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Random keys: plain, with hash tags in odd places, and binary.
fn random_keys(n: usize) -> Vec<Vec<u8>> {
    let mut rng = fastrand::Rng::with_seed(7);
    (0..n)
        .map(|i| {
            let len = rng.usize(0..24);
            let mut k: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            match i % 4 {
                0 => k = format!("key:{i}").into_bytes(),
                1 => {
                    let at = rng.usize(0..=k.len());
                    k.splice(at..at, format!("{{t{}}}", rng.u8(..)).into_bytes());
                }
                2 => k.extend_from_slice(b"{}{x}"),
                _ => {}
            }
            k
        })
        .collect()
}

#[test]
fn keyslots_and_the_slot_map_match_the_real_cluster() {
    let cluster = Cluster::start();
    let port = cluster.any_port();
    let keys = random_keys(3000);
    let cmds: Vec<Vec<u8>> = keys.iter().map(|k| command(&[b"CLUSTER", b"KEYSLOT", k])).collect();
    let replies = RawResp::connect(port).pipeline(&cmds);
    for (k, r) in keys.iter().zip(replies) {
        assert_eq!(r, Reply::Int(i64::from(keyslot(k))), "key {k:?}");
    }

    let mut dns = puerta::control::cluster::dns::Dns::system();
    let shards = fetch(addr(port), None, Duration::from_secs(5), &mut dns, None).expect("fetch topology");
    let map = puerta::route::SlotMap::build(shards);
    assert_eq!(map.served(), 16384);
    assert_eq!(map.shards().len(), 3);
    assert_eq!(map.nodes().len(), 6);
    for slot in [0u16, 1, 5460, 5461, 9000, 10922, 10923, 16383] {
        let owner = map.master_of(slot).and_then(|i| map.node(i)).map(|n| n.addr.port());
        assert_eq!(owner, Some(cluster.owner_of(slot)), "slot {slot}");
    }
    let masters: Vec<u16> = map.shards().iter().map(|&i| map.node(i).unwrap().addr.port()).collect();
    assert_eq!(masters, cluster.master_ports());
    for &m in map.shards() {
        let port = map.node(m).unwrap().addr.port();
        let replicas: Vec<u16> = map.replicas(m).iter().map(|&r| map.node(r).unwrap().addr.port()).collect();
        assert_eq!(replicas, cluster.replica_ports(port), "replicas of {port}");
        assert_eq!(map.node(m).unwrap().id, cluster.node_id(port));
    }
}

#[test]
fn the_control_thread_follows_a_failover() {
    let mut cluster = Cluster::start();
    let seeds: Vec<String> = cluster.seeds().iter().map(|s| format!("\"{s}\"")).collect();
    let src = format!(
        "[server]\nadmin = \"127.0.0.1:1\"\n[[pool]]\nname = \"c\"\nlisten = \"127.0.0.1:{}\"\n\
         mode = \"redis_cluster\"\nservers = [{}]\nrefresh_interval = \"30s\"\n",
        free_port(),
        seeds.join(", ")
    );
    let cfg = puerta::config::parse(&src, Path::new("t.toml")).unwrap();
    let (st, first) = ControlState::bootstrap(cfg, 1, DriverKind::Epoll).unwrap();
    let pool = first.pools[0].clone();
    let map = pool.cluster.clone().expect("a cluster pool carries a slot map");
    assert_eq!(map.served(), 16384, "the first snapshot already has the topology");
    let (tx, rx) = crossbeam_channel::bounded(64);
    let shared = Arc::new(Shared {
        cell: SnapshotCell::new(first),
        workers: vec![Arc::new(WorkerStats::default())],
        health: HealthStats::default(),
        driver: DriverKind::Epoll,
        started: Instant::now(),
        control: tx.clone(),
        clients: Default::default(),
    });
    let control = Control::new(st, shared.clone(), rx, vec![]);
    let thread = std::thread::spawn(move || control.run());

    let victim = cluster.master_ports()[0];
    let heir = cluster.replica_ports(victim)[0];
    let slot = 0u16;
    assert_eq!(cluster.owner_of(slot), victim);
    let killed = Instant::now();
    cluster.kill(victim);
    // What a worker does when its connection to the node dies.
    tx.send(ControlMsg::Cluster {
        pool_stat_id: pool.stat_id,
        report: ClusterReport::NodeFailed { addr: addr(victim) },
    })
    .unwrap();
    let owner = |shared: &Shared| {
        let snap = shared.cell.load();
        let m = snap.pools[0].cluster.clone().unwrap();
        m.master_of(slot).and_then(|i| m.node(i)).map(|n| n.addr.port())
    };
    // refresh_interval is 30 s: only the report-driven fast cadence can
    // see the promotion within cluster-node-timeout (2 s) plus a refresh.
    wait_until("the promoted replica in the snapshot", SETTLE, || owner(&shared) == Some(heir));
    let took = killed.elapsed();
    eprintln!("failover seen by the control thread after {took:?}");
    assert!(took < Duration::from_secs(20), "before the periodic refresh ({took:?})");
    cluster.wait_master(heir);
    tx.send(ControlMsg::Shutdown).unwrap();
    drop(tx);
    let _ = thread;
}
