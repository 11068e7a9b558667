//! The control thread's side of `auto_eject_hosts`, end to end without a
//! data plane: failure reports in, published rings out.

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Control, ControlMsg, ControlState, DriverKind, Shared};
use crate::route::SnapshotCell;
use crate::stats::{HealthStats, WorkerStats};

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn failures_eject_a_server_from_the_ring_until_retry_timeout() {
    // Listening backends, so health probes keep them up: only ejection
    // takes one out.
    let backends: Vec<TcpListener> = (0..3).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let listen = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let servers: Vec<String> =
        backends.iter().enumerate().map(|(i, b)| format!("\"{}:1 s{i}\"", b.local_addr().unwrap())).collect();
    let src = format!(
        "[server]\nadmin = \"127.0.0.1:1\"\n[[pool]]\nname = \"p\"\nlisten = \"{listen}\"\nmode = \"redis\"\n\
         servers = [{}]\nauto_eject_hosts = true\nserver_failure_limit = 2\nserver_retry_timeout = 400\n",
        servers.join(", ")
    );
    let cfg = crate::config::parse(&src, Path::new("t.toml")).unwrap();
    let (st, first) = ControlState::bootstrap(cfg, 1, DriverKind::Epoll).unwrap();
    let (tx, rx) = crossbeam_channel::bounded(16);
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
    std::thread::spawn(move || control.run());

    let pool = shared.cell.load().pools[0].clone();
    let ring = |shared: &Shared| shared.cell.load().pools[0].ring.clone().expect("redis pool has a ring");
    assert_eq!(ring(&shared).live_count(), 3);
    let victim = pool.backends[1].stat_id;
    let keys: Vec<String> = (0..600).map(|i| format!("k{i}")).collect();
    assert!(keys.iter().any(|k| ring(&shared).pick(k.as_bytes()) == Some(1)), "s1 owns some keys at first");

    let fail = || ControlMsg::BackendFailed { pool_stat_id: pool.stat_id, backend_stat_id: victim };
    tx.send(fail()).unwrap();
    tx.send(ControlMsg::BackendOk { pool_stat_id: pool.stat_id, backend_stat_id: victim }).unwrap();
    tx.send(fail()).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(ring(&shared).live_count(), 3, "a success in between resets the streak");

    let ejected = Instant::now();
    tx.send(fail()).unwrap();
    wait_for("ejection", || ring(&shared).live_count() == 2);
    let r = ring(&shared);
    assert!(keys.iter().all(|k| r.pick(k.as_bytes()) != Some(1)), "no key goes to the ejected server");
    assert_eq!(shared.health.ejects[victim].get(), 1);
    assert!(shared.health.ejected_at_us[victim].get() > 0);

    wait_for("restore", || ring(&shared).live_count() == 3);
    assert!(ejected.elapsed() >= Duration::from_millis(350), "back only after server_retry_timeout");
    assert!(keys.iter().any(|k| ring(&shared).pick(k.as_bytes()) == Some(1)));
    tx.send(ControlMsg::Shutdown).unwrap();
}
