//! Per-user rate limits (`[[user]] limits`) and per-user metrics end to
//! end: the real `puerta` binary under both I/O drivers, in front of a
//! real redis-server (twemproxy pool), a real memcached (users by
//! `source`) and a real Redis Cluster.
//!
//! - a user's rate holds across two connections (upper bound only: the
//!   box is loaded, so the test asserts the limit is never passed by more
//!   than the burst and a small margin, and that every request gets
//!   through in delay mode);
//! - `on_limit = "error"` answers the exact texts;
//! - `puerta_user_*_total{user}` count exactly what was sent and denied;
//! - a reload that changes the user's limit keeps its clients connected.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::cluster_puerta::ClusterProxy;
use common::twem::{command, memcached, RawResp, Reply};
use common::{drivers, free_port, redis, wait_until, Puerta};

/// `app` (password `pw`, every key, no FLUSHALL) limited by `limits`.
fn app_user(limits: &str) -> String {
    format!("[[user]]\nname = \"app\"\nrules = \"on >pw allkeys +@all -flushall\"\nlimits = {{ {limits} }}\n")
}

/// Puerta (2 workers) with one pool `p` of `mode` over `server`, plus
/// `extra` (pool keys, then `[[user]]` tables); returns it and the port.
fn start(io: &str, mode: &str, server: u16, extra: &str) -> (Puerta, u16) {
    let port = free_port();
    let cfg = format!(
        "[server]\nworkers = 2\nadmin = \"127.0.0.1:{{admin}}\"\nshutdown_timeout = \"1s\"\n\n[[pool]]\nname = \"p\"\n\
         listen = \"127.0.0.1:{port}\"\nmode = \"{mode}\"\nservers = [\"127.0.0.1:{server}\"]\n{extra}\n"
    );
    let p = Puerta::start(&cfg, io);
    wait_until("the pool to listen", Duration::from_secs(10), || TcpStream::connect(("127.0.0.1", port)).is_ok());
    (p, port)
}

fn authed(port: u16) -> RawResp {
    let mut c = RawResp::connect(port);
    assert_eq!(c.cmd(&[b"AUTH", b"app", b"pw"]), Reply::Status(b"OK".to_vec()));
    c
}

fn gets(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| command(&[b"GET", format!("k{i}").as_bytes()])).collect()
}

fn user_metric(p: &Puerta, name: &str) -> f64 {
    p.metric(&format!("puerta_user_{name}_total"), "user=\"app\"")
}

/// 50 requests/s with a burst of 1 s: 2 connections x 100 GETs (pipelines
/// of 10) cannot finish before (200 - 50 - margin) / 50 s. Then a reload
/// doubles the rate and the same connections keep working.
#[test]
fn a_users_rate_holds_across_two_connections_and_a_reload_keeps_its_clients() {
    let r = redis();
    for io in drivers() {
        let (p, port) = start(io, "redis", r.port, &app_user("requests = 50, burst = 1.0"));
        let mut conns = [authed(port), authed(port)];
        let t0 = Instant::now();
        std::thread::scope(|s| {
            for c in conns.iter_mut() {
                s.spawn(move || {
                    for chunk in gets(100).chunks(10) {
                        assert!(c.pipeline(chunk).iter().all(|r| *r == Reply::Bulk(None)), "delay mode never errors");
                    }
                });
            }
        });
        let took = t0.elapsed();
        // 50 of burst, then 50/s; a 10% margin for timer rounding.
        let floor = Duration::from_secs_f64((200.0 - 50.0 - 20.0) / 50.0);
        eprintln!("{io}: 200 requests of a 50/s user over 2 connections took {took:?} (floor {floor:?})");
        assert!(took >= floor, "{io}: the user's limit was passed: {took:?} < {floor:?}");
        assert_eq!(user_metric(&p, "requests"), 200.0, "{io}: AUTH is not the user's");
        assert!(user_metric(&p, "rate_limited") >= 1.0, "{io}");
        wait_until("the pool's limited count", Duration::from_secs(5), || {
            p.metric("puerta_rate_limited_total", "pool=\"p\"") >= 1.0
        });
        assert_eq!(p.metric("puerta_ip_rate_limited_total", "pool=\"p\""), 0.0, "{io}: no per_ip here");

        let cfg = std::fs::read_to_string(&p.config).unwrap().replace("requests = 50,", "requests = 5000,");
        std::fs::write(&p.config, cfg).unwrap();
        let (status, body) = p.post("/reload");
        assert_eq!(status, 200, "{io}: reload: {body}");
        let t0 = Instant::now();
        for c in conns.iter_mut() {
            assert!(c.pipeline(&gets(100)).iter().all(|r| *r == Reply::Bulk(None)), "{io}: still connected");
        }
        assert!(t0.elapsed() < Duration::from_secs(2), "{io}: the new limit applies: {:?}", t0.elapsed());
        assert_eq!(user_metric(&p, "requests"), 400.0, "{io}: counts survive the reload");
    }
}

/// On a user's Redis connection: one NOPERM denial, then 20 GETs against
/// a limit of 5/s. Returns the replies of the GETs.
fn deny_then_flood(c: &mut RawResp) -> Vec<Reply> {
    let denied = c.cmd(&[b"FLUSHALL"]);
    assert_eq!(denied, Reply::Error(b"NOPERM User app has no permissions to run the 'flushall' command".to_vec()));
    c.pipeline(&gets(20))
}

/// The GET replies go or get the exact error; the metrics count every
/// request that went, its bytes and the one denial.
fn check_error_mode(io: &str, p: &Puerta, replies: &[Reply]) {
    let refused = replies.iter().filter(|r| **r == Reply::Error(b"ERR rate limit exceeded".to_vec())).count();
    let went = replies.iter().filter(|r| **r == Reply::Bulk(None)).count();
    assert_eq!(refused + went, 20, "{io}: {replies:?}");
    assert!(refused >= 10 && went >= 1, "{io}: {replies:?}");
    let get_bytes: usize =
        gets(20).iter().zip(replies).filter(|(_, r)| **r == Reply::Bulk(None)).map(|(g, _)| g.len()).sum();
    let flushall = command(&[b"FLUSHALL"]).len();
    assert_eq!(user_metric(p, "requests"), (went + 1) as f64, "{io}");
    assert_eq!(user_metric(p, "bytes"), (get_bytes + flushall) as f64, "{io}");
    assert_eq!(user_metric(p, "denied"), 1.0, "{io}");
    assert_eq!(user_metric(p, "rate_limited"), refused as f64, "{io}");
}

#[test]
fn error_mode_answers_the_exact_texts_and_metrics_count_sent_and_denied() {
    let (r, m) = (redis(), memcached());
    let cluster = Cluster::start();
    let extra = format!("on_limit = \"error\"\n{}", app_user("requests = 5"));
    for io in drivers() {
        let (p, port) = start(io, "redis", r.port, &extra);
        let replies = deny_then_flood(&mut authed(port));
        check_error_mode(io, &p, &replies);

        let px = ClusterProxy::start(&cluster, io, &extra);
        let mut c = px.client();
        assert_eq!(c.cmd(&[b"AUTH", b"app", b"pw"]), Reply::Status(b"OK".to_vec()));
        let replies = deny_then_flood(&mut c);
        check_error_mode(io, &px.puerta, &replies);
        drop(px);

        // memcache: the user is whoever connects from its `source`.
        let web = "on_limit = \"error\"\n[[user]]\nname = \"app\"\nsource = [\"127.0.0.0/8\"]\nrules = \"on ~k*\"\n\
                   limits = { requests = 5 }\n";
        let (p, port) = start(io, "memcache", m.port, web);
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // One key its rules refuse (counted as denied), then 20 GETs.
        let req: Vec<u8> = std::iter::once("get other\r\n".to_owned())
            .chain((0..20).map(|i| format!("get k{i}\r\n")))
            .flat_map(String::into_bytes)
            .collect();
        s.write_all(&req).unwrap();
        let mut rd = BufReader::new(s);
        let mut first = String::new();
        rd.read_line(&mut first).unwrap();
        assert_eq!(first.trim_end(), "CLIENT_ERROR NOPERM No permissions to access a key", "{io}");
        let lines: Vec<String> = (0..20)
            .map(|_| {
                let mut l = String::new();
                rd.read_line(&mut l).unwrap();
                l.trim_end().to_owned()
            })
            .collect();
        let went = lines.iter().filter(|l| *l == "END").count();
        let refused = lines.iter().filter(|l| *l == "SERVER_ERROR rate limit exceeded").count();
        assert!(went >= 1 && refused >= 10 && went + refused == 20, "{io}: {lines:?}");
        assert_eq!(user_metric(&p, "requests"), (went + 1) as f64, "{io}: memcache");
        assert_eq!(user_metric(&p, "denied"), 1.0, "{io}: memcache");
        assert_eq!(user_metric(&p, "rate_limited"), refused as f64, "{io}: memcache");
    }
}
