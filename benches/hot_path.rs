//! Criterion benches of the per-connection and per-request hot path that
//! runs in user space: backend choice at accept (all three balancers),
//! affinity lookup, and one request/response relay through `TcpSession`.
//! Run: `cargo bench --bench hot_path`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use puerta::config::{Balance, PoolConfig, ServerSpec};
use puerta::route::affinity::{AffinityTable, Candidate};
use puerta::route::balance::Balancer;
use puerta::route::PoolSnapshot;
use puerta::session::{Limits, Side, TcpSession};

fn pool(balance: Balance, n: usize) -> PoolSnapshot {
    let servers = (0..n)
        .map(|i| ServerSpec {
            addr: format!("10.0.0.{i}:6379").parse().unwrap(),
            weight: 1,
            name: format!("b{i}"),
            host: String::new(),
        })
        .collect();
    let cfg = PoolConfig { balance, ..PoolConfig::with_defaults("bench", "127.0.0.1:1".parse().unwrap(), servers) };
    let sids: Vec<usize> = (0..n).collect();
    PoolSnapshot::new(cfg, 0, &sids, &|_| true, Arc::default())
}

fn balancers(c: &mut Criterion) {
    for (name, b) in
        [("round_robin", Balance::RoundRobin), ("least_conn", Balance::LeastConn), ("client_ip", Balance::ClientIp)]
    {
        let p = pool(b, 16);
        let mut bal = Balancer::default();
        c.bench_function(&format!("pick/{name}/16"), |bench| {
            bench.iter(|| bal.pick(black_box(&p), black_box(&[10, 1, 2, 3]), None))
        });
    }
    let p = pool(Balance::ClientIp, 16);
    c.bench_function("affinity/lookup", |b| b.iter(|| p.affinity.lookup(black_box(b"192.168.1.77"))));
    let names: Vec<String> = (0..16).map(|i| format!("b{i}")).collect();
    let cands: Vec<Candidate> =
        names.iter().enumerate().map(|(i, n)| Candidate { index: i as u32, name: n, weight: 1 }).collect();
    c.bench_function("affinity/build/16", |b| b.iter(|| AffinityTable::build(black_box(&cands))));
}

fn relay(c: &mut Criterion) {
    let now = Instant::now();
    let limits = Limits {
        connect_timeout: Duration::from_secs(1),
        idle_timeout: Some(Duration::from_secs(60)),
        high_water: 1 << 20,
    };
    let mut s = TcpSession::new(limits, now);
    s.handle_connected(now);
    let req = b"*2\r\n$3\r\nGET\r\n$10\r\nkey:000001\r\n";
    let resp = b"$5\r\nhello\r\n";
    c.bench_function("session/request_response", |b| {
        b.iter(|| {
            s.handle_data(Side::Client, black_box(req), now);
            let n = s.poll_transmit(Side::Backend).map_or(0, |b| b.len());
            s.handle_sent(Side::Backend, n, now);
            s.handle_data(Side::Backend, black_box(resp), now);
            let n = s.poll_transmit(Side::Client).map_or(0, |b| b.len());
            s.handle_sent(Side::Client, n, now);
            s.poll_intent()
        })
    });
}

criterion_group!(benches, balancers, relay);
criterion_main!(benches);
