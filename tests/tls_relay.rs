//! TLS on tcp and mongos pools, end to end under both drivers: a tcp pool
//! terminating TLS in front of a plain redis-server (redis-cli --tls and a
//! rustls client), a tcp pool originating TLS to a TLS-only redis-server
//! (its health check speaks TLS: the right CA marks it up, a wrong one
//! down), mongos pools with TLS on either side (pymongo with tls=True
//! through Puerta to mockupdb stand-ins, one of them TLS-only), and
//! handshakes cut short or stalled on a tcp TLS listener while other
//! clients go on being served.

mod common;
mod mongo_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::tls::{client_config, redis_cli, redis_tls_mutual, redis_tls_only, Ca, Leaf, TlsResp};
use common::{drivers, free_port, redis, tcp_config, tmpdir, wait_until, Puerta, Resp};
use mongo_support::{mongos_config, python, script, Standin};

fn tls_line(leaf: &Leaf) -> String {
    format!("tls = {{ cert = \"{}\", key = \"{}\" }}", leaf.cert.display(), leaf.key.display())
}

fn backend_tls(ca: &Ca) -> String {
    format!("backend_tls = {{ ca = \"{}\" }}", ca.pem.display())
}

/// A second tcp pool on the same config (quick health checks, like
/// `tcp_config`'s).
fn tcp_pool(name: &str, listen: u16, backend: u16, extra: &str) -> String {
    format!(
        "\n[[pool]]\nname = \"{name}\"\nlisten = \"127.0.0.1:{listen}\"\nmode = \"tcp\"\n\
         servers = [\"127.0.0.1:{backend}\"]\ncheck_interval = \"200ms\"\ncheck_timeout = \"200ms\"\n\
         rise = 1\nfall = 1\n{extra}\n"
    )
}

fn backend_up(p: &Puerta, pool: &str) -> f64 {
    p.metric("puerta_backend_up", &format!("pool=\"{pool}\""))
}

#[test]
fn tcp_pool_terminates_tls_in_front_of_plain_redis() {
    let dir = tmpdir();
    let ca = Ca::new(&dir, "tcp");
    let leaf = ca.leaf(&dir, "server", false);
    let backend = redis();
    for io in drivers() {
        let (port, plain) = (free_port(), free_port());
        let extra = format!("{}\nplain_listen = \"127.0.0.1:{plain}\"", tls_line(&leaf));
        let p = Puerta::start(&tcp_config(port, &[backend.port], &extra, ""), io);
        p.wait_ready();
        let (ok, out) = redis_cli(port, &ca.pem, None, &["set", &format!("k-{io}"), "v1"]);
        assert!(ok && out == "OK", "{io}: redis-cli --tls set: {out}");
        let (ok, out) = redis_cli(port, &ca.pem, None, &["get", &format!("k-{io}")]);
        assert!(ok && out == "v1", "{io}: redis-cli --tls get: {out}");
        // The plaintext listener relays to the same backend.
        let mut r = Resp::connect(plain).unwrap();
        assert_eq!(r.cmd(&["GET", &format!("k-{io}")]).unwrap(), "v1", "{io}");
        // A large value both ways: many records, partial sends, the
        // ciphertext queue filling and draining.
        let mut c = TlsResp::connect(port, client_config(&ca.pem, None)).unwrap();
        let big = "x".repeat(2 * 1024 * 1024);
        assert_eq!(c.cmd(&["SET", "big", &big]).unwrap(), "OK", "{io}");
        assert_eq!(c.cmd(&["GET", "big"]).unwrap().len(), big.len(), "{io}");
        for i in 0..50 {
            assert_eq!(c.cmd(&["INCR", &format!("n-{io}")]).unwrap(), (i + 1).to_string(), "{io}");
        }
        // Plaintext on the TLS port is not relayed.
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(b"*1\r\n$4\r\nPING\r\n");
        let mut buf = [0u8; 64];
        let got = s.read(&mut buf);
        assert!(!matches!(got, Ok(n) if buf[..n].starts_with(b"+PONG")), "{io}: plaintext relayed on a TLS port");
        assert_eq!(c.cmd(&["PING"]).unwrap(), "PONG", "{io}");
        assert!(p.metric("puerta_tls_handshakes_total", "") >= 4.0, "{io}");
        assert!(p.metric("puerta_tls_established_total", "version=\"1.3\"") >= 3.0, "{io}");
    }
}

#[test]
fn tcp_pool_originates_tls_and_its_health_check_verifies() {
    let dir = tmpdir();
    let ca = Ca::new(&dir, "b");
    let other = Ca::new(&dir, "other");
    let redis_leaf = ca.leaf(&dir, "redis", false);
    let proxy_leaf = ca.leaf(&dir, "proxy", false);
    let r = redis_tls_only(&ca, &redis_leaf);
    for io in drivers() {
        let (both, back, wrong) = (free_port(), free_port(), free_port());
        // "main": TLS on both sides; "back": plaintext clients, TLS
        // backend; "wrong": a CA that did not sign the backend.
        let mut cfg = tcp_config(both, &[r.port], &format!("{}\n{}", tls_line(&proxy_leaf), backend_tls(&ca)), "");
        cfg.push_str(&tcp_pool("back", back, r.port, &backend_tls(&ca)));
        cfg.push_str(&tcp_pool("wrong", wrong, r.port, &backend_tls(&other)));
        let p = Puerta::start(&cfg, io);
        wait_until("the wrong CA's backend to be marked down", Duration::from_secs(10), || {
            backend_up(&p, "wrong") == 0.0
        });
        assert_eq!(backend_up(&p, "main"), 1.0, "{io}: a TLS health check with the right CA passes");
        assert_eq!(backend_up(&p, "back"), 1.0, "{io}");

        let (ok, out) = redis_cli(both, &ca.pem, None, &["set", &format!("t-{io}"), "both"]);
        assert!(ok && out == "OK", "{io}: redis-cli --tls through TLS on both sides: {out}");
        let mut plain = Resp::connect(back).unwrap();
        assert_eq!(plain.cmd(&["GET", &format!("t-{io}")]).unwrap(), "both", "{io}");
        let big = "y".repeat(1024 * 1024);
        assert_eq!(plain.cmd(&["SET", "big", &big]).unwrap(), "OK", "{io}");
        let mut c = TlsResp::connect(both, client_config(&ca.pem, None)).unwrap();
        assert_eq!(c.cmd(&["GET", "big"]).unwrap().len(), big.len(), "{io}");
        for i in 0..30 {
            assert_eq!(plain.cmd(&["INCR", &format!("i-{io}")]).unwrap(), (i + 1).to_string(), "{io}");
        }

        // No healthy backend: the wrong pool's client gets no answer.
        let mut w = Resp::connect(wrong).unwrap();
        assert!(w.cmd(&["PING"]).is_err() || w.is_closed(), "{io}: served through an unverified backend");
        // Backend handshakes count like client ones.
        assert!(p.metric("puerta_tls_established_total", "") >= 5.0, "{io}");
    }
}

#[test]
fn tcp_pool_presents_a_client_certificate_for_mutual_tls() {
    let dir = tmpdir();
    let ca = Ca::new(&dir, "mt");
    let redis_leaf = ca.leaf(&dir, "redis", false);
    let client_leaf = ca.leaf(&dir, "client", false);
    let r = redis_tls_mutual(&ca, &redis_leaf);
    let (cert, key) = (client_leaf.cert.display(), client_leaf.key.display());
    for io in drivers() {
        let (with, without) = (free_port(), free_port());
        let mtls = format!("backend_tls = {{ ca = \"{}\", cert = \"{cert}\", key = \"{key}\" }}", ca.pem.display());
        let mut cfg = tcp_config(with, &[r.port], &mtls, "");
        cfg.push_str(&tcp_pool("nocert", without, r.port, &backend_tls(&ca)));
        let p = Puerta::start(&cfg, io);
        p.wait_ready();
        let mut c = Resp::connect(with).unwrap();
        assert_eq!(c.cmd(&["SET", "m", "tls"]).unwrap(), "OK", "{io}: served with a client certificate");
        assert_eq!(c.cmd(&["GET", "m"]).unwrap(), "tls", "{io}");
        // Without one, redis-server refuses the session (TLS 1.3 reports
        // that after the client's handshake, so the first request fails).
        let mut n = Resp::connect(without).unwrap();
        assert!(n.cmd(&["GET", "m"]).is_err() || n.is_closed(), "{io}: served without a client certificate");
    }
}

/// Runs tests/mongo/cursors.py over TLS through `port`.
fn cursors_over_tls(port: u16, ca: &Ca) -> serde_json::Value {
    let uri = format!("mongodb://127.0.0.1:{port}/?tls=true&tlsCAFile={}", ca.pem.display());
    let out =
        Command::new(python()).arg(script("cursors.py")).arg(uri).args(["--cursors", "8", "--batch", "10"]).output();
    let out = out.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "cursors.py failed: {text}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("bad report {text:?}: {e}"))
}

#[test]
fn mongos_pools_speak_tls_on_either_side() {
    let dir = tmpdir();
    let ca = Ca::new(&dir, "m");
    let other = Ca::new(&dir, "mo");
    let standin_leaf = ca.leaf(&dir, "standin", false);
    let proxy_leaf = ca.leaf(&dir, "proxy", false);
    let plain_s = Standin::start("plain");
    let tls_s = Standin::start_tls("secure", &standin_leaf.cert, &standin_leaf.key);
    let mongo_pool = |name: &str, listen: u16, port: u16, extra: &str| {
        format!(
            "\n[[pool]]\nname = \"{name}\"\nlisten = \"127.0.0.1:{listen}\"\nmode = \"mongos\"\n\
             servers = [\"127.0.0.1:{port} s\"]\ncheck_interval = \"500ms\"\ncheck_timeout = \"400ms\"\n\
             rise = 1\nfall = 1\n{extra}\n"
        )
    };
    for io in drivers() {
        let (a, b, w) = (free_port(), free_port(), free_port());
        // "mongo": TLS clients, plaintext mongos; "both": TLS on both
        // sides; "wrong": the TLS mongos under a CA that did not sign it.
        let mut cfg = mongos_config(a, &[("plain", plain_s.port)], &tls_line(&proxy_leaf));
        cfg.push_str(&mongo_pool("both", b, tls_s.port, &format!("{}\n{}", tls_line(&proxy_leaf), backend_tls(&ca))));
        cfg.push_str(&mongo_pool("wrong", w, tls_s.port, &backend_tls(&other)));
        let p = Puerta::start(&cfg, io);
        wait_until("the wrong CA's mongos to be marked down", Duration::from_secs(10), || {
            backend_up(&p, "wrong") == 0.0
        });
        assert_eq!(backend_up(&p, "both"), 1.0, "{io}: the hello probe over TLS passes");

        for (port, server) in [(a, "plain"), (b, "secure")] {
            let r = cursors_over_tls(port, &ca);
            assert_eq!(r["other_errors"], 0, "{io}: {r}");
            assert_eq!(r["cursor_not_found"], 0, "{io}: {r}");
            let done = r["servers"][server].as_u64().unwrap_or(0);
            assert_eq!(done, 8, "{io}: every cursor read to its end on {server}: {r}");
        }
        // The mongo tracker parsed the decrypted stream.
        assert!(p.metric("puerta_mongo_commands_total", "command=\"getMore\"") >= 16.0, "{io}");
        // A plaintext client on a TLS mongos pool is not relayed.
        let mut raw = mongo_support::Mongo::connect(a);
        assert!(raw.command(bson::doc! {"whoami": 1, "$db": "admin"}).is_err(), "{io}");
    }
}

#[test]
fn handshakes_cut_short_or_stalled_leave_the_listener_serving() {
    let dir = tmpdir();
    let ca = Ca::new(&dir, "h");
    let leaf = ca.leaf(&dir, "server", false);
    let backend = redis();
    let hello_start = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
    for io in drivers() {
        let port = free_port();
        let extra = format!("{}\ntls_handshake_timeout = \"500ms\"", tls_line(&leaf));
        let p = Puerta::start(&tcp_config(port, &[backend.port], &extra, ""), io);
        p.wait_ready();
        let mut good = TlsResp::connect(port, client_config(&ca.pem, None)).unwrap();
        assert_eq!(good.cmd(&["PING"]).unwrap(), "PONG", "{io}");
        // Half a ClientHello, then close: many times over.
        for _ in 0..20 {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(hello_start).unwrap();
        }
        // Half a ClientHello, then silence: closed at the deadline.
        let mut stalled = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stalled.write_all(hello_start).unwrap();
        stalled.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let t = std::time::Instant::now();
        let mut buf = [0u8; 16];
        let got = stalled.read(&mut buf);
        assert!(matches!(got, Ok(0)) || got.is_err(), "{io}: a stalled handshake must be closed: {got:?}");
        assert!(t.elapsed() < Duration::from_secs(3), "{io}: closed at its deadline, not later");
        // Garbage instead of a ClientHello.
        let mut junk = TcpStream::connect(("127.0.0.1", port)).unwrap();
        junk.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        junk.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 256];
        assert!(!matches!(junk.read(&mut buf), Ok(n) if n > 0 && !buf.starts_with(b"\x15")), "{io}: junk answered");

        assert_eq!(good.cmd(&["PING"]).unwrap(), "PONG", "{io}: the good client is still served");
        let (ok, out) = redis_cli(port, &ca.pem, None, &["ping"]);
        assert!(ok && out == "PONG", "{io}: new clients are still served: {out}");
        wait_until("failure counters", Duration::from_secs(5), || {
            p.metric("puerta_tls_handshake_failures_total", "reason=\"timeout\"") >= 1.0
                && p.metric("puerta_tls_handshake_failures_total", "reason=\"closed\"") >= 20.0
                && p.metric("puerta_tls_handshake_failures_total", "reason=\"protocol\"") >= 1.0
        });
        // Every client was released: only the good one remains.
        wait_until("cut-short clients released", Duration::from_secs(5), || {
            p.metric("puerta_client_connections", "pool=\"main\"") == 1.0
        });
    }
}
