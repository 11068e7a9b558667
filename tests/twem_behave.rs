//! nutcracker's behaviours a twemproxy user relies on, compared against
//! the real `nutcracker` where it applies, under both I/O drivers:
//! malformed requests close the client (with Redis's error text first
//! where Puerta has one), a fan-out whose fragment fails answers that
//! fragment's own error, and 16 MiB values go through MSET and MGET.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::twem::{command, Nutcracker, Proxy, RawResp, Reply};
use common::twem_puerta::{yaml, PuertaTwem};
use common::{drivers, redis, wait_until};
use puerta::route::ShardRing;

fn ring_of(p: &PuertaTwem) -> ShardRing {
    let cfg = puerta::config::load(&p.conf).unwrap_or_else(|e| panic!("{e}"));
    puerta::route::ring::for_pool(&cfg.pools[0], &|_| true).expect("a ring")
}

/// The first `prefix{i}` key the ring puts on `server`.
fn key_on(ring: &ShardRing, server: u32, prefix: &str) -> String {
    (0..).map(|i| format!("{prefix}{i}")).find(|k| ring.pick(k.as_bytes()) == Some(server)).unwrap_or_default()
}

/// Sends `bytes`, then reads until EOF (true) or 3 s of silence (false).
fn send_and_drain(port: u16, bytes: &[u8]) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    s.write_all(bytes).unwrap();
    let (mut out, end) = (Vec::new(), Instant::now() + Duration::from_secs(3));
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return (out, true),
        }
    }
    (out, false)
}

/// Requests nutcracker closes the connection for, each after a PING that
/// both answer first on its own connection (a later request's error must
/// not eat an earlier reply).
const MALFORMED: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"*3\r\n*abcde\r\n",
    b"*0\r\n",
    b"*-1\r\n",
    b"*a\r\n",
    b"$3\r\nGET\r\n",
    b"*1\r\n$-1\r\n",
    b"*2\r\n$3\r\nGET\r\n$-1\r\n",
    b"*2\r\n$3\r\nGET\r\n$1\r\naXY",
    b"*4\r\n$4\r\nMSET\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n",
    b"*1\r\n$3\r\nGET\r\n",
    b"*1\r\n$7\r\nNOSUCHX\r\n",
];

#[test]
fn malformed_requests_close_the_connection_as_nutcracker_does() {
    let backends = [redis(), redis()];
    let ports: Vec<u16> = backends.iter().map(|b| b.port).collect();
    let y = yaml(true, &ports, "  hash: fnv1a_64\n");
    let nut = Nutcracker::start(&y);
    let pxs: Vec<PuertaTwem> = drivers().into_iter().map(|io| PuertaTwem::start(&y, io)).collect();
    for bad in MALFORMED {
        let (n_out, n_eof) = send_and_drain(nut.port(), bad);
        assert!(n_eof, "nutcracker closes for {bad:?}");
        for px in &pxs {
            let (p_out, p_eof) = send_and_drain(px.port(), bad);
            assert!(p_eof, "{} closes for {bad:?} (sent {p_out:?})", px.label());
            // An error where nutcracker sends one; otherwise nothing or
            // one Redis-style protocol error (documented in the README).
            if n_out.starts_with(b"-") {
                assert!(p_out.starts_with(b"-"), "{}: {bad:?} -> {p_out:?}", px.label());
            }
            assert!(p_out.is_empty() || p_out.starts_with(b"-ERR "), "{}: {bad:?} -> {p_out:?}", px.label());
            assert!(p_out.iter().filter(|&&c| c == b'\n').count() <= 1, "{}: one line at most", px.label());
        }
    }
    // Well-formed requests before the bad one are answered first.
    for px in &pxs {
        let mut bytes = command(&[b"PING"]);
        bytes.extend_from_slice(b"\r\n");
        let (out, eof) = send_and_drain(px.port(), &bytes);
        assert!(eof && out.starts_with(b"+PONG\r\n"), "{}: {out:?}", px.label());
    }
}

#[test]
fn a_fragment_error_is_passed_through_where_nutcracker_says_invalid_argument() {
    let (a, b, upstream) = (redis(), redis(), redis());
    // b becomes a read-only replica: a DEL fragment sent to it fails.
    let mut rb = RawResp::connect(b.port);
    assert_eq!(
        rb.cmd(&[b"REPLICAOF", b"127.0.0.1", upstream.port.to_string().as_bytes()]),
        Reply::Status(b"OK".to_vec())
    );
    wait_until(
        "replica b to sync",
        Duration::from_secs(10),
        || matches!(rb.cmd(&[b"SET", b"probe", b"1"]), Reply::Error(e) if e.starts_with(b"READONLY")),
    );
    let y = yaml(true, &[a.port, b.port], "  hash: fnv1a_64\n");
    let nut = Nutcracker::start(&y);
    let p0 = PuertaTwem::start(&y, "epoll");
    let ring = ring_of(&p0);
    let (ka, kb) = (key_on(&ring, 0, "a"), key_on(&ring, 1, "b"));
    let del = [&b"DEL"[..], ka.as_bytes(), kb.as_bytes()];
    assert_eq!(RawResp::connect(nut.port()).cmd(&del), Reply::Error(b"ERR Invalid argument".to_vec()));
    drop(p0);
    for io in drivers() {
        let px = PuertaTwem::start(&y, io);
        let mut c = RawResp::connect(px.port());
        match c.cmd(&del) {
            Reply::Error(e) => assert!(e.starts_with(b"READONLY "), "{io}: {}", String::from_utf8_lossy(&e)),
            other => panic!("{io}: {other:?}"),
        }
        // The connection stays usable, and the key on the writable server
        // was deleted (the fragment that succeeded is not rolled back).
        assert_eq!(c.cmd(&[b"PING"]), Reply::Status(b"PONG".to_vec()), "{io}");
    }
}

#[test]
fn five_16_mib_values_through_mset_and_mget() {
    let backends = [redis(), redis()];
    let ports: Vec<u16> = backends.iter().map(|b| b.port).collect();
    for io in drivers() {
        let px = PuertaTwem::start(&yaml(true, &ports, "  hash: fnv1a_64\n"), io);
        let mut c = RawResp::connect(px.port());
        let values: Vec<Vec<u8>> = (0..5u8).map(|i| vec![b'a' + i; 16 << 20]).collect();
        let keys: Vec<String> = (0..5).map(|i| format!("big{i}")).collect();
        let mut mset: Vec<&[u8]> = vec![b"MSET"];
        for (k, v) in keys.iter().zip(&values) {
            mset.push(k.as_bytes());
            mset.push(v);
        }
        assert_eq!(c.cmd(&mset), Reply::Status(b"OK".to_vec()), "{io}");
        let mut mget: Vec<&[u8]> = vec![b"MGET"];
        mget.extend(keys.iter().map(|k| k.as_bytes()));
        let want = Reply::Array(Some(values.iter().map(|v| Reply::Bulk(Some(v.clone()))).collect()));
        assert!(c.cmd(&mget) == want, "{io}: MGET of 5 x 16 MiB");
    }
}

const LIB: &str =
    "#!lua name=plib\nredis.register_function('pget', function(keys, args) return redis.call('GET', keys[1]) end)";
const LIB2: &str = "#!lua name=plib2\nredis.register_function('p2', function(keys, args) return 2 end)";

fn bulk(s: &str) -> Reply {
    Reply::Bulk(Some(s.as_bytes().to_vec()))
}

fn ok() -> Reply {
    Reply::Status(b"OK".to_vec())
}

fn err_text(r: Reply) -> String {
    match r {
        Reply::Error(e) => String::from_utf8_lossy(&e).into_owned(),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn scripts_and_functions_reach_every_server() {
    let backends = [redis(), redis()];
    let ports: Vec<u16> = backends.iter().map(|b| b.port).collect();
    let mut direct: Vec<RawResp> = ports.iter().map(|&p| RawResp::connect(p)).collect();
    for io in drivers() {
        let px = PuertaTwem::start(&yaml(true, &ports, "  hash: fnv1a_64\n"), io);
        let ring = ring_of(&px);
        let mut c = RawResp::connect(px.port());
        assert_eq!(c.cmd(&[b"FUNCTION", b"FLUSH"]), ok(), "{io}");
        assert_eq!(c.cmd(&[b"SCRIPT", b"FLUSH"]), ok(), "{io}");
        // FUNCTION LOAD on every server, then FCALL on a key of each.
        assert_eq!(c.cmd(&[b"FUNCTION", b"LOAD", LIB.as_bytes()]), bulk("plib"), "{io}");
        for (s, d) in direct.iter_mut().enumerate() {
            let Reply::Array(Some(libs)) = d.cmd(&[b"FUNCTION", b"LIST"]) else { panic!("FUNCTION LIST") };
            assert_eq!(libs.len(), 1, "{io}: server {s} has the library");
            let k = key_on(&ring, s as u32, "fk");
            assert_eq!(c.cmd(&[b"SET", k.as_bytes(), format!("v{s}").as_bytes()]), ok());
            assert_eq!(c.cmd(&[b"FCALL", b"pget", b"1", k.as_bytes()]), bulk(&format!("v{s}")), "{io}: FCALL on {s}");
        }
        // SCRIPT LOAD everywhere: EVALSHA works on every server's keys.
        let Reply::Bulk(Some(sha)) = c.cmd(&[b"SCRIPT", b"LOAD", b"return redis.call('GET', KEYS[1])"]) else {
            panic!("SCRIPT LOAD")
        };
        for s in 0..2u32 {
            let k = key_on(&ring, s, "fk");
            assert_eq!(c.cmd(&[b"EVALSHA", &sha, b"1", k.as_bytes()]), bulk(&format!("v{s}")), "{io}");
        }
        // SCRIPT EXISTS is 1 only where every server has the script.
        let Reply::Bulk(Some(only0)) = direct[0].cmd(&[b"SCRIPT", b"LOAD", b"return 0"]) else { panic!() };
        let got = c.cmd(&[b"SCRIPT", b"EXISTS", &sha, &only0, b"0000"]);
        assert_eq!(got, Reply::Array(Some(vec![Reply::Int(1), Reply::Int(0), Reply::Int(0)])), "{io}");
        // A library on one server only: loading it through Puerta answers
        // that server's error (the first error), not a success.
        assert_eq!(direct[1].cmd(&[b"FUNCTION", b"LOAD", LIB2.as_bytes()]), bulk("plib2"));
        let e = err_text(c.cmd(&[b"FUNCTION", b"LOAD", LIB2.as_bytes()]));
        assert!(e.contains("already exists"), "{io}: {e}");
        // Read-only subcommands go to one server.
        assert!(matches!(c.cmd(&[b"FUNCTION", b"LIST"]), Reply::Array(Some(_))), "{io}");
        assert_eq!(c.cmd(&[b"FUNCTION", b"DELETE", b"plib"]), ok(), "{io}");
        for d in &mut direct {
            assert_eq!(d.cmd(&[b"FCALL", b"pget", b"1", b"x"]), Reply::Error(b"ERR Function not found".to_vec()));
        }
    }
}

#[test]
fn allow_scripts_false_refuses_scripts_and_functions() {
    let b = redis();
    let extra = "  hash: fnv1a_64\n  unsupported: error\n  allow_scripts: false\n";
    for io in drivers() {
        let px = PuertaTwem::start(&yaml(true, &[b.port], extra), io);
        let mut c = RawResp::connect(px.port());
        for cmd in
            [&[&b"FUNCTION"[..], b"LOAD", LIB.as_bytes()][..], &[b"SCRIPT", b"FLUSH"], &[b"FCALL", b"f", b"1", b"k"]]
        {
            let e = err_text(c.cmd(cmd));
            let name = String::from_utf8_lossy(cmd[0]);
            assert!(e.contains(&*name) && e.contains("allow_scripts = false"), "{io}: {e}");
        }
    }
}

/// The INFO text of a bulk reply.
fn info(c: &mut RawResp, args: &[&[u8]]) -> String {
    match c.cmd(args) {
        Reply::Bulk(Some(t)) => String::from_utf8(t).unwrap(),
        other => panic!("INFO: {other:?}"),
    }
}

#[test]
fn info_has_proxy_fields_and_sums_the_keyspace() {
    let backends = [redis(), redis()];
    let ports: Vec<u16> = backends.iter().map(|b| b.port).collect();
    for io in drivers() {
        for p in &ports {
            assert_eq!(RawResp::connect(*p).cmd(&[b"FLUSHALL"]), ok());
        }
        let px = PuertaTwem::start(&yaml(true, &ports, "  hash: fnv1a_64\n"), io);
        let mut c = RawResp::connect(px.port());
        for i in 0..20 {
            assert_eq!(c.cmd(&[b"SET", format!("ik{i}").as_bytes(), b"v"]), ok());
        }
        let t = info(&mut c, &[b"INFO"]);
        assert!(t.starts_with("# Proxy\r\nproxy:puerta\r\n") && t.contains("proxy_mode:twemproxy\r\n"), "{io}: {t}");
        assert!(t.contains("\r\nservers:2\r\n") && t.contains("redis_version:"), "{io}: {t}");
        assert!(t.contains("\r\nconnected_clients:1\r\n"), "{io}: {t}");
        assert!(t.contains("\r\ntotal_commands_processed:21\r\n"), "{io}: 20 SETs and this INFO: {t}");
        assert!(t.contains("\r\ncluster_enabled:0\r\n"), "{io}: {t}");
        assert!(t.contains("# Keyspace\r\ndb0:keys=20,expires=0,avg_ttl=0"), "{io}: summed over both servers: {t}");
        let s = info(&mut c, &[b"info", b"server"]);
        assert!(s.starts_with("# Server\r\n") && !s.contains("# Proxy") && !s.contains("Keyspace"), "{io}: {s}");
        let k = info(&mut c, &[b"INFO", b"keyspace"]);
        assert!(k.starts_with("# Keyspace\r\ndb0:keys=20,"), "{io}: {k}");
        // Clients and commands are the process's (both workers), once the
        // other worker published its figures (a stats tick, 250 ms).
        let mut more: Vec<RawResp> = (0..5).map(|_| RawResp::connect(px.port())).collect();
        for m in &mut more {
            assert_eq!(m.cmd(&[b"PING"]), Reply::Status(b"PONG".to_vec()));
        }
        std::thread::sleep(Duration::from_millis(800));
        let t = info(&mut c, &[b"INFO"]);
        assert!(t.contains("\r\nconnected_clients:6\r\n"), "{io}: {t}");
        assert!(t.contains("\r\ntotal_commands_processed:29\r\n"), "{io}: 23 + 5 PINGs + this INFO: {t}");
    }
}
