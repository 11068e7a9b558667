//! Redis pool command routing through the real `puerta` binary, under both
//! I/O drivers, over three real redis-servers: EVAL and EVALSHA go to the
//! server of their first key (checked on that server), UNLINK and TOUCH
//! split per server and sum, and AUTH on a pool without `redis_auth` gets
//! Redis's own answer.

mod common;

use common::twem::{command, RawResp, Reply};
use common::twem_puerta::{yaml, PuertaTwem};
use common::{drivers, redis};
use puerta::route::ShardRing;

fn ring_of(p: &PuertaTwem) -> ShardRing {
    let cfg = puerta::config::load(&p.conf).unwrap_or_else(|e| panic!("{e}"));
    puerta::route::ring::for_pool(&cfg.pools[0], &|_| true).expect("a ring")
}

/// The first `prefix{i}` key the ring puts on `server`.
fn key_on(ring: &ShardRing, server: u32, prefix: &str) -> String {
    (0..).map(|i| format!("{prefix}{i}")).find(|k| ring.pick(k.as_bytes()) == Some(server)).unwrap_or_default()
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(Some(s.as_bytes().to_vec()))
}

/// Sets KEYS[1] and KEYS[2] to ARGV[1] on whichever server runs it.
const SCRIPT: &str = "redis.call('SET', KEYS[1], ARGV[1]) redis.call('SET', KEYS[2], ARGV[1]) return ARGV[1]";

#[test]
fn eval_and_evalsha_run_on_the_first_keys_server() {
    let backends = [redis(), redis(), redis()];
    let ports: Vec<u16> = backends.iter().map(|b| b.port).collect();
    let mut direct: Vec<RawResp> = ports.iter().map(|&p| RawResp::connect(p)).collect();
    // nutcracker has no SCRIPT LOAD (no key): scripts are loaded on every
    // server directly, as its users do.
    let sha = match direct[0].cmd(&[b"SCRIPT", b"LOAD", SCRIPT.as_bytes()]) {
        Reply::Bulk(Some(s)) => s,
        other => panic!("SCRIPT LOAD: {other:?}"),
    };
    for d in &mut direct[1..] {
        assert_eq!(d.cmd(&[b"SCRIPT", b"LOAD", SCRIPT.as_bytes()]), Reply::Bulk(Some(sha.clone())));
    }
    for io in drivers() {
        for d in &mut direct {
            assert_eq!(d.cmd(&[b"FLUSHALL"]), Reply::Status(b"OK".to_vec()));
        }
        let px = PuertaTwem::start(&yaml(true, &ports, "  hash: murmur\n"), io);
        let ring = ring_of(&px);
        let mut c = RawResp::connect(px.port());
        for first in 0..3u32 {
            // The second key lives elsewhere: only routing by the first key
            // puts both on `first`'s server.
            let other = (first + 1) % 3;
            let (k1, k2) = (key_on(&ring, first, &format!("e{first}-")), key_on(&ring, other, &format!("f{first}-")));
            let (s1, s2) = (key_on(&ring, first, &format!("s{first}-")), key_on(&ring, other, &format!("t{first}-")));
            let eval = command(&[b"EVAL", SCRIPT.as_bytes(), b"2", k1.as_bytes(), k2.as_bytes(), b"by-eval"]);
            let evalsha = command(&[b"EVALSHA", &sha, b"2", s1.as_bytes(), s2.as_bytes(), b"by-sha"]);
            assert_eq!(c.pipeline(&[eval, evalsha]), [bulk("by-eval"), bulk("by-sha")], "{io}");
            let home = &mut direct[first as usize];
            for (k, v) in [(&k1, "by-eval"), (&k2, "by-eval"), (&s1, "by-sha"), (&s2, "by-sha")] {
                assert_eq!(home.cmd(&[b"GET", k.as_bytes()]), bulk(v), "{io}: {k} on server {first}");
            }
            let away = &mut direct[other as usize];
            assert_eq!(away.cmd(&[b"EXISTS", k2.as_bytes(), s2.as_bytes()]), Reply::Int(0), "{io}");
        }
    }
}

#[test]
fn unlink_and_touch_sum_over_servers_and_auth_without_a_password() {
    let backends = [redis(), redis(), redis()];
    let ports: Vec<u16> = backends.iter().map(|b| b.port).collect();
    for io in drivers() {
        let px = PuertaTwem::start(&yaml(true, &ports, ""), io);
        let ring = ring_of(&px);
        let keys: Vec<String> = (0..3).map(|s| key_on(&ring, s, "u")).collect();
        let mut c = RawResp::connect(px.port());
        for k in &keys {
            assert_eq!(c.cmd(&[b"SET", k.as_bytes(), b"v"]), Reply::Status(b"OK".to_vec()));
        }
        let (k0, k1, k2) = (keys[0].as_bytes(), keys[1].as_bytes(), keys[2].as_bytes());
        let replies = c.pipeline(&[
            command(&[b"TOUCH", k0, b"nope", k1, k2]),
            command(&[b"UNLINK", k2, b"nope", k0]),
            command(&[b"EXISTS", k0, k1, k2]),
        ]);
        assert_eq!(replies, [Reply::Int(3), Reply::Int(2), Reply::Int(1)], "{io}");
        for (i, &p) in ports.iter().enumerate() {
            let want = Reply::Int(i64::from(i == 1));
            assert_eq!(RawResp::connect(p).cmd(&[b"EXISTS", keys[i].as_bytes()]), want, "{io}: server {i}");
        }
        assert_eq!(
            c.cmd(&[b"AUTH", b"secret"]),
            Reply::Error(b"ERR Client sent AUTH, but no password is set".to_vec()),
            "{io}"
        );
        assert_eq!(c.cmd(&[b"PING"]), Reply::Status(b"PONG".to_vec()), "{io}: the connection stays");
        assert_eq!(RawResp::connect(ports[1]).cmd(&[b"FLUSHALL"]), Reply::Status(b"OK".to_vec()));
    }
}

/// Thousands of short-lived clients (connect, PING, close) on 8 threads
/// leave no socket open in Puerta: a client closed in the same batch in
/// which a new client reused its session index used to keep its fd.
#[test]
fn churned_clients_leave_no_socket_behind() {
    use std::io::{Read, Write};
    let r = redis();
    let fds = |pid: u32| std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0);
    for io in drivers() {
        let px = PuertaTwem::start(&yaml(true, &[r.port], ""), io);
        let pid = px.proc.pid();
        assert_eq!(RawResp::connect(px.port()).cmd(&[b"PING"]), Reply::Status(b"PONG".to_vec()));
        std::thread::sleep(std::time::Duration::from_millis(300));
        let before = fds(pid);
        let port = px.port();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(move || {
                    for _ in 0..400 {
                        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                        s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
                        s.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
                        let mut got = [0u8; 7];
                        s.read_exact(&mut got).unwrap();
                        assert_eq!(&got, b"+PONG\r\n");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        common::wait_until(
            &format!("{io}: puerta's fds back to about {before}"),
            std::time::Duration::from_secs(10),
            || fds(pid) <= before + 2,
        );
    }
}
