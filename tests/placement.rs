//! Placement parity with the real nutcracker (twemproxy 0.5.0).
//!
//! For every hash x distribution, with and without server names, weights
//! and a hash_tag: start nutcracker on a generated YAML over three real
//! redis-servers, write 2,000 keys through it in one pipelined batch, read
//! each backend directly, and assert that every key sits on the backend
//! `ShardRing::pick` names. The ring is built from the same YAML through
//! Puerta's own config loader, so config parsing (default server names,
//! weights, hash_tag) is checked along with the hashing.

mod common;

use std::collections::HashMap;

use common::twem::{command, memcached, Nutcracker, Proxy, RawMemcache, RawResp, Reply};
use common::*;
use puerta::config::Distribution;
use puerta::hash::HashKind;
use puerta::route::ShardRing;

const KEYS: usize = 2000;

/// One pool layout to compare.
#[derive(Debug, Clone, Copy)]
struct Case {
    hash: HashKind,
    dist: Distribution,
    named: bool,
    weighted: bool,
    tagged: bool,
}

impl Case {
    fn yaml(&self, ports: &[u16]) -> String {
        let mut y = format!(
            "alpha:\n  listen: 127.0.0.1:{{listen}}\n  hash: {}\n  distribution: {}\n  redis: true\n",
            self.hash.as_str(),
            self.dist.as_str()
        );
        if self.tagged {
            y.push_str("  hash_tag: \"{}\"\n");
        }
        y.push_str("  servers:\n");
        for (i, p) in ports.iter().enumerate() {
            let weight = if self.weighted { [1, 2, 5][i % 3] } else { 1 };
            let name = if self.named { format!(" node-{i}") } else { String::new() };
            y.push_str(&format!("   - 127.0.0.1:{p}:{weight}{name}\n"));
        }
        y
    }
}

/// The keys written: plain ASCII, hash-tagged, and binary with bytes >= 0x80
/// (several nutcracker hashes sign-extend those, so they must be covered).
fn keys() -> Vec<Vec<u8>> {
    (0..KEYS)
        .map(|i| match i % 4 {
            0 => format!("key:{i}").into_bytes(),
            1 => format!("user:{{{}}}:field{i}", i % 37).into_bytes(),
            2 => {
                let mut k = vec![0x80 | (i % 128) as u8, b'k'];
                k.extend_from_slice(i.to_string().as_bytes());
                k.push(0xff);
                k
            }
            _ => format!("{i}").repeat(1 + i % 5).into_bytes(),
        })
        .collect()
}

/// The ring Puerta builds for the pool in `yaml`.
fn puerta_ring(yaml: &str, dir: &std::path::Path) -> ShardRing {
    let path = dir.join("puerta-view.yml");
    std::fs::write(&path, yaml.replace("{listen}", "1")).unwrap();
    let cfg = puerta::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    puerta::route::ring::for_pool(&cfg.pools[0], &|_| true).expect("a redis pool has a ring")
}

/// Writes every key through `proxy`, then maps each key to the backend
/// (index into `backends`) holding it, read directly from the backends.
fn placement(proxy: &dyn Proxy, backends: &[Proc], keys: &[Vec<u8>]) -> HashMap<Vec<u8>, usize> {
    let mut c = RawResp::connect(proxy.port());
    let cmds: Vec<Vec<u8>> = keys.iter().map(|k| command(&[b"SET", k, b"v"])).collect();
    for (k, r) in keys.iter().zip(c.pipeline(&cmds)) {
        assert_eq!(r, Reply::Status(b"OK".to_vec()), "{} SET {k:?}", proxy.label());
    }
    let mut at = HashMap::new();
    for (i, b) in backends.iter().enumerate() {
        for k in RawResp::connect(b.port).keys() {
            assert!(at.insert(k.clone(), i).is_none(), "{k:?} on two backends");
        }
    }
    assert_eq!(at.len(), keys.len(), "{}: every key written once", proxy.label());
    at
}

fn flush(backends: &[Proc]) {
    for b in backends {
        assert_eq!(RawResp::connect(b.port).cmd(&[b"FLUSHALL"]), Reply::Status(b"OK".to_vec()));
    }
}

fn check(case: Case, backends: &[Proc], keys: &[Vec<u8>]) {
    let ports: Vec<u16> = backends.iter().map(|b| b.port).collect();
    let yaml = case.yaml(&ports);
    let nc = Nutcracker::start(&yaml);
    let ring = puerta_ring(&yaml, &nc.dir);
    let at = placement(&nc, backends, keys);
    let mut per_backend = [0usize; 3];
    for k in keys {
        let actual = at[k];
        per_backend[actual] += 1;
        if case.dist != Distribution::Random {
            assert_eq!(ring.pick(k).map(|i| i as usize), Some(actual), "{case:?}: key {k:?}");
        }
    }
    // Every other layout spreads 2,000 keys over all three servers, so a
    // proxy that sent everything to one server cannot pass by accident.
    // crc32 is libmemcached's 15-bit hash: under ketama every key hashes
    // below nearly all ring points and wraps to the first one, so one
    // server gets everything (nutcracker does this too; checked above).
    if !(case.hash == HashKind::Crc32 && case.dist == Distribution::Ketama) {
        assert!(per_backend.iter().all(|&n| n > 0), "{case:?}: {per_backend:?}");
    }
    flush(backends);
}

fn cases(dists: &[Distribution]) -> Vec<Case> {
    let mut out = Vec::new();
    for hash in HashKind::ALL {
        for &dist in dists {
            for v in 0..8u8 {
                out.push(Case { hash, dist, named: v & 1 != 0, weighted: v & 2 != 0, tagged: v & 4 != 0 });
            }
        }
    }
    out
}

#[test]
fn ketama_and_modula_match_nutcracker_for_every_hash() {
    let backends = [redis(), redis(), redis()];
    let keys = keys();
    // Every case runs, and the failures are listed together at the end.
    let mut failed = Vec::new();
    for case in cases(&[Distribution::Ketama, Distribution::Modula]) {
        if std::panic::catch_unwind(|| check(case, &backends, &keys)).is_err() {
            failed.push(case);
            flush(&backends);
        }
    }
    assert!(failed.is_empty(), "{} cases differ: {failed:#?}", failed.len());
}

#[test]
fn random_lands_every_key_on_some_server() {
    let backends = [redis(), redis(), redis()];
    let keys = keys();
    for case in cases(&[Distribution::Random]).into_iter().filter(|c| c.hash == HashKind::Fnv1a64) {
        check(case, &backends, &keys);
    }
}

/// memcache pools (`redis: false`) place keys the same way: real
/// memcached backends behind nutcracker, ASCII keys only.
#[test]
fn memcache_pools_match_nutcracker() {
    let backends = [memcached(), memcached(), memcached()];
    let ports: Vec<u16> = backends.iter().map(|b| b.port).collect();
    let keys: Vec<Vec<u8>> = keys().into_iter().filter(|k| k.iter().all(|b| b.is_ascii_graphic())).collect();
    assert!(keys.len() >= 1000);
    for hash in [HashKind::Fnv1a64, HashKind::Md5, HashKind::Murmur, HashKind::Crc32a] {
        for dist in [Distribution::Ketama, Distribution::Modula] {
            for (named, tagged) in [(false, false), (true, true)] {
                let case = Case { hash, dist, named, weighted: true, tagged };
                let yaml = case.yaml(&ports).replace("  redis: true\n", "  redis: false\n");
                let nc = Nutcracker::start(&yaml);
                let ring = puerta_ring(&yaml, &nc.dir);
                RawMemcache::connect(nc.port()).set_all(&keys);
                let held: Vec<Vec<bool>> = ports.iter().map(|&p| RawMemcache::connect(p).present(&keys)).collect();
                for (i, k) in keys.iter().enumerate() {
                    let on: Vec<usize> = (0..3).filter(|&b| held[b][i]).collect();
                    assert_eq!(on.len(), 1, "{case:?}: {k:?} on {on:?}");
                    assert_eq!(ring.pick(k), Some(on[0] as u32), "{case:?}: key {k:?}");
                }
                for &p in &ports {
                    RawMemcache::connect(p).flush_all();
                }
            }
        }
    }
}

/// nutcracker hashes an unnamed server on port 11211 by its host alone
/// ("127.0.0.1-0", ...), which moves its ketama points. A redis-server on
/// 11211 (when that port is free here) shows Puerta does the same.
#[test]
fn unnamed_server_on_port_11211_is_hashed_by_host() {
    if std::net::TcpListener::bind("127.0.0.1:11211").is_err() {
        eprintln!("note: port 11211 is busy here; skipping the 11211 naming check");
        return;
    }
    let child = std::process::Command::new("redis-server")
        .args(["--port", "11211", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let on_11211 = Proc { child, port: 11211 };
    wait_until("redis on 11211", std::time::Duration::from_secs(10), || {
        std::net::TcpStream::connect(on_11211.addr()).is_ok()
    });
    let backends = [redis(), on_11211, redis()];
    let ports: Vec<u16> = backends.iter().map(|b| b.port).collect();
    let yaml =
        Case { hash: HashKind::Fnv1a64, dist: Distribution::Ketama, named: false, weighted: false, tagged: false }
            .yaml(&ports);
    let nc = Nutcracker::start(&yaml);
    let ring = puerta_ring(&yaml, &nc.dir);
    let keys = keys();
    let at = placement(&nc, &backends, &keys);
    for k in &keys {
        assert_eq!(ring.pick(k).map(|i| i as usize), Some(at[k]), "key {k:?}");
    }
}
