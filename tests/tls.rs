//! TLS termination end to end, under both drivers: redis-cli --tls and a
//! rustls client through Puerta to a twemproxy redis pool and a cluster
//! pool; `plain_listen`; handshakes that must fail (wrong CA, no client
//! certificate when `ca` is set, an expired server certificate, half a
//! ClientHello then close, a stalled handshake) while Puerta keeps serving;
//! and a reload that swaps certificates under a connected client.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::cluster::Cluster;
use common::cluster_puerta::ClusterProxy;
use common::tls::{self, client_config, puerta_check, redis_cli, tls_line, Ca, Leaf, TlsResp, SERVER};
use common::{drivers, free_port, redis, tmpdir, wait_until, Puerta};

/// A config with one redis pool "r" on `port` in front of `backend`.
fn redis_pool(port: u16, backend: u16, extra: &str) -> String {
    format!("{SERVER}{}", tls::redis_pool("r", port, backend, extra))
}

#[test]
fn redis_pool_over_tls_with_plain_listen() {
    let dir = tmpdir();
    let ca = Ca::new(&dir, "main");
    let leaf = ca.leaf(&dir, "server", false);
    let backend = redis();
    for io in drivers() {
        let (port, plain) = (free_port(), free_port());
        let extra = format!("{}\nplain_listen = \"127.0.0.1:{plain}\"", tls_line(&leaf, None));
        let p = Puerta::start(&redis_pool(port, backend.port, &extra), io);
        let (ok, out) = redis_cli(port, &ca.pem, None, &["set", &format!("k-{io}"), "v1"]);
        assert!(ok && out == "OK", "{io}: redis-cli --tls set: {out}");
        let (ok, out) = redis_cli(port, &ca.pem, None, &["get", &format!("k-{io}")]);
        assert!(ok && out == "v1", "{io}: redis-cli --tls get: {out}");
        // The plaintext listener serves the same pool.
        let mut r = common::Resp::connect(plain).unwrap();
        assert_eq!(r.cmd(&["GET", &format!("k-{io}")]).unwrap(), "v1", "{io}");
        // A rustls client: a large value both ways (many TLS records).
        let mut c = TlsResp::connect(port, client_config(&ca.pem, None)).unwrap();
        let big = "x".repeat(300_000);
        assert_eq!(c.cmd(&["SET", "big", &big]).unwrap(), "OK");
        assert_eq!(c.cmd(&["GET", "big"]).unwrap().len(), big.len(), "{io}");
        for i in 0..50 {
            assert!(c.cmd(&["INCR", "n"]).unwrap().parse::<i64>().is_ok(), "{io}: request {i}");
        }
        // Plaintext on the TLS port is not served.
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(b"*1\r\n$4\r\nPING\r\n");
        let mut buf = [0u8; 64];
        let got = std::io::Read::read(&mut s, &mut buf);
        assert!(!matches!(got, Ok(n) if buf[..n].starts_with(b"+PONG")), "{io}: plaintext answered on a TLS port");
        assert_eq!(c.cmd(&["PING"]).unwrap(), "PONG", "{io}: a bad client does not disturb others");
        drop(p);
    }
}

#[test]
fn cluster_pool_over_tls() {
    let dir = tmpdir();
    let ca = Ca::new(&dir, "cl");
    let leaf = ca.leaf(&dir, "server", false);
    let cluster = Cluster::start_with(3, 0, 2000);
    for io in drivers() {
        let proxy = ClusterProxy::start(&cluster, io, &tls_line(&leaf, None));
        let mut c = TlsResp::connect(proxy.port, client_config(&ca.pem, None)).unwrap();
        for i in 0..30 {
            let key = format!("{io}-key-{i}");
            assert_eq!(c.cmd(&["SET", &key, &i.to_string()]).unwrap(), "OK", "{io}");
        }
        for i in 0..30 {
            assert_eq!(c.cmd(&["GET", &format!("{io}-key-{i}")]).unwrap(), i.to_string(), "{io}");
        }
        let (ok, out) = redis_cli(proxy.port, &ca.pem, None, &["get", &format!("{io}-key-7")]);
        assert!(ok && out == "7", "{io}: redis-cli --tls via cluster pool: {out}");
    }
}

#[test]
fn failed_handshakes_leave_puerta_serving() {
    let dir = tmpdir();
    let ca = Ca::new(&dir, "good");
    let other = Ca::new(&dir, "other");
    let leaf = ca.leaf(&dir, "server", false);
    let expired = ca.leaf(&dir, "expired", true);
    let client_leaf = ca.leaf(&dir, "client", false);
    let backend = redis();
    for io in drivers() {
        let (port, mtls, old) = (free_port(), free_port(), free_port());
        let mut cfg =
            redis_pool(port, backend.port, &format!("{}\ntls_handshake_timeout = \"1s\"", tls_line(&leaf, None)));
        cfg.push_str(&tls::redis_pool("m", mtls, backend.port, &tls_line(&leaf, Some(&ca))));
        cfg.push_str(&tls::redis_pool("x", old, backend.port, &tls_line(&expired, None)));
        let p = Puerta::start(&cfg, io);
        let mut good = TlsResp::connect(port, client_config(&ca.pem, None)).unwrap();
        assert_eq!(good.cmd(&["PING"]).unwrap(), "PONG");

        // The client trusts another CA.
        let err = TlsResp::connect(port, client_config(&other.pem, None)).err().expect("wrong CA must fail");
        assert!(err.contains("UnknownIssuer") || err.contains("invalid peer certificate"), "{io}: {err}");
        let (ok, out) = redis_cli(port, &other.pem, None, &["ping"]);
        assert!(!ok, "{io}: redis-cli with the wrong CA: {out}");

        // `ca` set: no client certificate, no service; with one, service.
        let refused = TlsResp::connect(mtls, client_config(&ca.pem, None)).and_then(|mut c| c.cmd(&["PING"]));
        assert!(refused.is_err(), "{io}: served a client without a certificate: {refused:?}");
        let mut m = TlsResp::connect(mtls, client_config(&ca.pem, Some(&client_leaf))).unwrap();
        assert_eq!(m.cmd(&["PING"]).unwrap(), "PONG", "{io}");
        let (ok, out) = redis_cli(mtls, &ca.pem, Some(&client_leaf), &["ping"]);
        assert!(ok && out == "PONG", "{io}: redis-cli --cert: {out}");

        // An expired server certificate is rejected by the client.
        let err = TlsResp::connect(old, client_config(&ca.pem, None)).err().expect("expired cert must fail");
        assert!(err.contains("expired"), "{io}: {err}");

        // Half a ClientHello, then close; half a ClientHello, then silence.
        let hello_start = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(hello_start).unwrap();
        drop(s);
        let mut stalled = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stalled.write_all(hello_start).unwrap();
        stalled.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 16];
        let got = std::io::Read::read(&mut stalled, &mut buf);
        assert!(matches!(got, Ok(0)) || got.is_err(), "{io}: a stalled handshake must be closed: {got:?}");

        assert_eq!(good.cmd(&["PING"]).unwrap(), "PONG", "{io}: the good client still served");
        let mut again = TlsResp::connect(port, client_config(&ca.pem, None)).unwrap();
        assert_eq!(again.cmd(&["PING"]).unwrap(), "PONG", "{io}: new clients still served");
        wait_until("tls failure counters", Duration::from_secs(5), || {
            p.metric("puerta_tls_handshake_failures_total", "reason=\"timeout\"") >= 1.0
                && p.metric("puerta_tls_handshake_failures_total", "reason=\"no_certificate\"") >= 1.0
        });
        assert!(p.metric("puerta_tls_handshakes_total", "") >= 6.0, "{io}");
        assert!(p.metric("puerta_tls_established_total", "version=\"1.3\"") >= 3.0, "{io}");
    }
}

#[test]
fn reload_swaps_certificates_without_dropping_clients() {
    let dir = tmpdir();
    let ca1 = Ca::new(&dir, "one");
    let ca2 = Ca::new(&dir, "two");
    let live = Leaf { cert: dir.join("live.pem"), key: dir.join("live.key") };
    let first = ca1.leaf(&dir, "first", false);
    let second = ca2.leaf(&dir, "second", false);
    let backend = redis();
    for io in drivers() {
        std::fs::copy(&first.cert, &live.cert).unwrap();
        std::fs::copy(&first.key, &live.key).unwrap();
        let port = free_port();
        let p = Puerta::start(&redis_pool(port, backend.port, &tls_line(&live, None)), io);
        let mut kept = TlsResp::connect(port, client_config(&ca1.pem, None)).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sender = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let got = kept.cmd(&["INCR", "reload-counter"])?;
                    got.parse::<i64>().map_err(|_| format!("bad reply {got:?}"))?;
                    n += 1;
                }
                Ok::<u64, String>(n)
            })
        };
        std::thread::sleep(Duration::from_millis(200));
        std::fs::copy(&second.cert, &live.cert).unwrap();
        std::fs::copy(&second.key, &live.key).unwrap();
        let (status, body) = p.post("/reload");
        assert_eq!(status, 200, "{io}: reload: {body}");
        wait_until("new handshakes use the new certificate", Duration::from_secs(5), || {
            TlsResp::connect(port, client_config(&ca2.pem, None)).is_ok()
        });
        assert!(TlsResp::connect(port, client_config(&ca1.pem, None)).is_err(), "{io}: old certificate still served");
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let n = sender.join().unwrap().unwrap_or_else(|e| panic!("{io}: the connected client broke: {e}"));
        assert!(n > 10, "{io}: only {n} requests");
    }
}

#[test]
fn check_validates_certificates() {
    let dir = tmpdir();
    let ca = Ca::new(&dir, "chk");
    let good = ca.leaf(&dir, "good", false);
    let expired = ca.leaf(&dir, "old", true);
    let other = ca.leaf(&dir, "other", false);
    let run = |tls: &str| puerta_check(&dir, &redis_pool(free_port(), 6379, tls));
    assert!(run(&tls_line(&good, None)).0);
    let (ok, err) = run(&tls_line(&expired, None));
    assert!(!ok && err.contains("expired"), "{err}");
    let mismatch = Leaf { cert: good.cert.clone(), key: other.key.clone() };
    let (ok, err) = run(&tls_line(&mismatch, None));
    assert!(!ok && err.contains("check.toml:") && err.contains("tls.key") && err.contains("does not match"), "{err}");
    let missing = Leaf { cert: dir.join("nope.pem"), key: good.key.clone() };
    let (ok, err) = run(&tls_line(&missing, None));
    assert!(!ok && err.contains("tls.cert") && err.contains("nope.pem"), "{err}");
}
