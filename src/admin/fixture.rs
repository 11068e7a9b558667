//! Test fixture: a hand-made `Shared` for admin tests.
//!
//! Stands in for the control thread and workers: it builds a snapshot
//! directly and keeps the control channel's receiving end so tests can play
//! the control thread. Test-only; owns nothing at runtime.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::config::{Config, HealthConfig, IoMode, PoolConfig, ServerSettings, ServerSpec, Workers};
use crate::control::{ControlMsg, DriverKind, Shared};
use crate::route::{PoolSnapshot, Snapshot, SnapshotCell};
use crate::stats::{HealthStats, WorkerStats};

/// Stat ids deliberately differ from positions, so a lookup by index instead
/// of by stat id shows up as a wrong number.
pub const POOL_STAT: usize = 3;
pub const R1_STAT: usize = 10;
pub const R2_STAT: usize = 11;

pub struct Fixture {
    pub shared: Arc<Shared>,
    /// The control thread's end of `shared.control`.
    pub control: Receiver<ControlMsg>,
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("fixture address")
}

/// A pool whose backends are `(name, addr, healthy, stat_id)`.
pub fn pool(name: &str, stat_id: usize, backends: &[(&str, &str, bool, usize)]) -> Arc<PoolSnapshot> {
    let servers: Vec<ServerSpec> = backends
        .iter()
        .map(|&(n, a, _, _)| ServerSpec { addr: addr(a), weight: 1, name: n.to_string(), host: String::new() })
        .collect();
    let sids: Vec<usize> = backends.iter().map(|b| b.3).collect();
    let up = |sid: usize| backends.iter().any(|b| b.3 == sid && b.2);
    let cfg = PoolConfig {
        health: HealthConfig { check_interval: Duration::from_secs(1), fall: 3, ..HealthConfig::default() },
        ..PoolConfig::with_defaults(name, addr("127.0.0.1:6400"), servers)
    };
    Arc::new(PoolSnapshot::new(cfg, stat_id, &sids, &up, Arc::new(AtomicU64::new(0))))
}

pub fn snapshot(epoch: u64, draining: bool, pools: Vec<Arc<PoolSnapshot>>) -> Snapshot {
    let config = Config {
        source: PathBuf::from("/etc/puerta/test.toml"),
        server: ServerSettings {
            workers: Workers::Count(2),
            cpus: None,
            io: IoMode::Epoll,
            admin: addr("127.0.0.1:0"),
            admin_token: None,
            log: "info".to_string(),
            shutdown_timeout: Duration::from_secs(5),
            max_buffered_bytes: Some(crate::config::DEFAULT_MAX_BUFFERED_BYTES),
            metrics_detail: Default::default(),
            wait: Default::default(),
        },
        pools: pools.iter().map(|p| p.cfg.clone()).collect(),
        users: Vec::new(),
    };
    Snapshot {
        epoch,
        draining,
        config: Arc::new(config),
        pools,
        listeners: vec![],
        plain_listeners: vec![],
        user_limits: None,
    }
}

/// Epoch 4; pool `redis-a` with `r1` healthy and `r2` down; two workers, the
/// first on epoch 4 and the second still on 3.
pub fn standard() -> Fixture {
    let redis_a = pool(
        "redis-a",
        POOL_STAT,
        &[("r1", "127.0.0.1:7001", true, R1_STAT), ("r2", "127.0.0.1:7002", false, R2_STAT)],
    );
    let workers: Vec<Arc<WorkerStats>> = (0..2).map(|_| Arc::default()).collect();
    workers[0].epoch.set(4);
    workers[1].epoch.set(3);
    let (tx, rx) = crossbeam_channel::unbounded();
    let shared = Shared {
        cell: SnapshotCell::new(snapshot(4, false, vec![redis_a])),
        workers,
        health: HealthStats::default(),
        driver: DriverKind::Epoll,
        started: Instant::now(),
        control: tx,
        clients: Default::default(),
    };
    Fixture { shared: Arc::new(shared), control: rx }
}

/// Asserts that `want` appears in `lines` in order (other lines may come
/// between): pins existing metric families while letting new ones in.
pub fn assert_in_order(lines: &[&str], want: &[&str]) {
    let mut rest = lines.iter();
    for w in want {
        assert!(rest.any(|l| l == w), "{w:?} missing or out of order in\n{}", lines.join("\n"));
    }
}
