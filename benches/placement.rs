//! Criterion benches of key placement: each nutcracker hash on a typical
//! key, `ShardRing::pick` for ketama and modula, and a ketama ring build
//! (what the control thread pays per snapshot).
//! Run: `cargo bench --bench placement`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use puerta::config::Distribution;
use puerta::hash::HashKind;
use puerta::route::ketama::RingServer;
use puerta::route::ShardRing;

const KEY: &[u8] = b"user:{1234567}:session";

fn hashes(c: &mut Criterion) {
    for k in HashKind::ALL {
        c.bench_function(&format!("hash/{}/22B", k.as_str()), |b| b.iter(|| k.hash(black_box(KEY))));
    }
}

fn rings(c: &mut Criterion) {
    let names: Vec<String> = (0..64).map(|i| format!("10.0.0.{i}:6379")).collect();
    for n in [3, 64] {
        let servers: Vec<RingServer<'_>> =
            names[..n].iter().map(|name| RingServer { name, weight: 1, live: true }).collect();
        for dist in [Distribution::Ketama, Distribution::Modula] {
            let ring = ShardRing::build(dist, HashKind::Fnv1a64, Some(*b"{}"), &servers);
            c.bench_function(&format!("pick/{}/{n}", dist.as_str()), |b| b.iter(|| ring.pick(black_box(KEY))));
        }
        c.bench_function(&format!("build/ketama/{n}"), |b| {
            b.iter(|| ShardRing::build(Distribution::Ketama, HashKind::Fnv1a64, None, black_box(&servers)))
        });
    }
}

criterion_group!(benches, hashes, rings);
criterion_main!(benches);
