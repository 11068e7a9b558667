//! Per-IP rate and connection limits end to end: the real `puerta` binary
//! under both I/O drivers, in front of a real redis-server (twemproxy
//! pool), a real memcached and a real Redis Cluster.
//!
//! - `on_limit = "delay"` holds a client to about the rate without one
//!   error (timed with generous bounds: it must be throttled, not exact);
//! - `"error"` answers `-ERR rate limit exceeded` / `SERVER_ERROR rate
//!   limit exceeded`, `"close"` closes;
//! - `per_ip.connections` refuses the 101st connection of an address, and
//!   a client from another address (127.0.0.2) is neither refused nor
//!   slowed by a limited one.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::cluster_puerta::ClusterProxy;
use common::twem::{command, memcached, RawResp, Reply};
use common::{drivers, free_port, redis, wait_until, Puerta};

/// Puerta (2 workers) with one pool `p` of `mode` over `servers`, plus
/// `extra` pool keys; returns it and the pool's port once it accepts.
fn start(io: &str, mode: &str, servers: &[u16], extra: &str) -> (Puerta, u16) {
    let port = free_port();
    let list: Vec<String> = servers.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
    let cfg = format!(
        "[server]\nworkers = 2\nadmin = \"127.0.0.1:{{admin}}\"\nshutdown_timeout = \"1s\"\n\n[[pool]]\nname = \"p\"\n\
         listen = \"127.0.0.1:{port}\"\nmode = \"{mode}\"\nservers = [{}]\n{extra}\n",
        list.join(", ")
    );
    let p = Puerta::start(&cfg, io);
    wait_until("the pool to listen", Duration::from_secs(10), || TcpStream::connect(("127.0.0.1", port)).is_ok());
    // The probe above was a client too: wait until it is gone.
    wait_until("the probe to close", Duration::from_secs(10), || p.metric("puerta_client_connections", "") == 0.0);
    (p, port)
}

/// A connection to `port` from source address `from`.
fn connect_from(from: [u8; 4], port: u16) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::from((from, 0)).into()).unwrap();
    s.connect(&SocketAddr::from(([127, 0, 0, 1], port)).into()).unwrap();
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

fn gets(from: usize, n: usize) -> Vec<Vec<u8>> {
    (from..from + n).map(|i| command(&[b"GET", format!("k{i}").as_bytes()])).collect()
}

/// Sends `n` GETs in pipelines of 20 and returns the time taken; every
/// reply must be a nil bulk (delay mode never errors).
fn timed_gets(c: &mut RawResp, n: usize) -> Duration {
    let t0 = Instant::now();
    for chunk in (0..n).step_by(20) {
        for r in c.pipeline(&gets(chunk, 20.min(n - chunk))) {
            assert_eq!(r, Reply::Bulk(None), "delay mode answers every request");
        }
    }
    t0.elapsed()
}

/// A memcached connection: writes `req`, reads `lines` reply lines.
fn mc(s: &mut TcpStream, req: &[u8], lines: usize) -> Vec<String> {
    s.write_all(req).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    (0..lines)
        .map(|_| {
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            l.trim_end().to_string()
        })
        .collect()
}

fn is_eof(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(std::io::Read::read(s, &mut b), Ok(0) | Err(_))
}

const DELAY_100: &str = "per_ip = { requests = 100, burst = 1.0 }\n";

/// 100 at once (the burst), then 100 a second: 300 requests take 2 s at
/// the configured rate; a core's share is below one until the control
/// thread rebalances, which only slows it further.
#[test]
fn delay_holds_redis_and_memcache_clients_to_the_rate_without_errors() {
    let (r, m) = (redis(), memcached());
    for io in drivers() {
        let (p, port) = start(io, "redis", &[r.port], DELAY_100);
        let took = timed_gets(&mut RawResp::connect(port), 300);
        assert!(took >= Duration::from_millis(1500) && took < Duration::from_secs(15), "{io}: {took:?}");
        wait_until("limited requests counted", Duration::from_secs(5), || {
            p.metric("puerta_ip_rate_limited_total", "pool=\"p\"") >= 1.0
        });

        let (_p, port) = start(io, "memcache", &[m.port], DELAY_100);
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let t0 = Instant::now();
        for _ in 0..15 {
            let req: Vec<u8> = (0..20).flat_map(|i| format!("get k{i}\r\n").into_bytes()).collect();
            assert!(mc(&mut s, &req, 20).iter().all(|l| l == "END"), "{io}");
        }
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(1500) && took < Duration::from_secs(15), "{io}: memcache {took:?}");
    }
}

#[test]
fn error_answers_the_exact_texts_and_close_closes() {
    let (r, m) = (redis(), memcached());
    for io in drivers() {
        let (_p, port) = start(io, "redis", &[r.port], "on_limit = \"error\"\nper_ip = { requests = 5 }\n");
        let replies = RawResp::connect(port).pipeline(&gets(0, 20));
        let refused: Vec<&Reply> = replies.iter().filter(|r| **r != Reply::Bulk(None)).collect();
        assert!(refused.len() >= 10, "{io}: {replies:?}");
        assert!(refused.iter().all(|r| **r == Reply::Error(b"ERR rate limit exceeded".to_vec())), "{io}: {refused:?}");
        assert_eq!(replies[0], Reply::Bulk(None), "{io}: the burst goes");

        let (_p, port) = start(io, "memcache", &[m.port], "on_limit = \"error\"\nper_ip = { requests = 5 }\n");
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let req: Vec<u8> = (0..20).flat_map(|i| format!("get k{i}\r\n").into_bytes()).collect();
        let lines = mc(&mut s, &req, 20);
        assert_eq!(lines[0], "END", "{io}");
        assert!(lines.iter().filter(|l| *l == "SERVER_ERROR rate limit exceeded").count() >= 10, "{io}: {lines:?}");

        let (_p, port) = start(io, "redis", &[r.port], "on_limit = \"close\"\nper_ip = { requests = 5 }\n");
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(&gets(0, 20).concat()).unwrap();
        // Read to EOF: the requests that had tokens are answered (this
        // core's share of the burst: 2.5 of 5 until a rebalance), then the
        // connection closes with no error text.
        let mut got = Vec::new();
        let _ = std::io::Read::read_to_end(&mut s, &mut got);
        let answered = got.len() / 5;
        assert!((1..20).contains(&answered) && got == b"$-1\r\n".repeat(answered), "{io}: {got:?}");
    }
}

/// 100 connections of one address are served across both workers; the
/// 101st is closed at accept and counted; 127.0.0.2 still connects, and
/// a flood from a delayed 127.0.0.1 does not slow it.
#[test]
fn per_ip_connections_refuse_the_101st_and_other_addresses_are_untouched() {
    let r = redis();
    for io in drivers() {
        let extra = "per_ip = { connections = 100, requests = 50, burst = 1.0 }\n";
        let (p, port) = start(io, "redis", &[r.port], extra);
        let mut held: Vec<RawResp> = (0..100).map(|_| RawResp::connect(port)).collect();
        for c in &mut held {
            assert_eq!(c.cmd(&[b"PING"]), Reply::Status(b"PONG".to_vec()), "{io}");
        }
        let mut extra_conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
        extra_conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = extra_conn.write_all(&command(&[b"PING"]));
        assert!(is_eof(&mut extra_conn), "{io}: the 101st is refused");
        assert_eq!(p.metric("puerta_client_rejected_total", "reason=\"per_ip_connections\""), 1.0, "{io}");

        // 127.0.0.1 floods (delayed at 50/s) while 127.0.0.2 runs its burst.
        let flood = std::thread::spawn({
            let mut c = held.pop().unwrap();
            move || timed_gets(&mut c, 120)
        });
        std::thread::sleep(Duration::from_millis(300));
        let mut other = RawResp::from_stream(connect_from([127, 0, 0, 2], port));
        let took = timed_gets(&mut other, 40);
        assert!(took < Duration::from_millis(500), "{io}: another address is not slowed ({took:?})");
        let flood_took = flood.join().unwrap();
        assert!(flood_took >= Duration::from_millis(1200), "{io}: the flood was delayed ({flood_took:?})");

        // A closed connection gives its place back.
        drop(held.pop());
        wait_until("a place given back", Duration::from_secs(5), || {
            let mut c = RawResp::connect(port);
            c.try_cmd(&[b"PING"]).is_some()
        });
    }
}

#[test]
fn cluster_pools_delay_and_answer_errors_like_twemproxy_pools() {
    let cluster = Cluster::start();
    for io in drivers() {
        let px = ClusterProxy::start(&cluster, io, DELAY_100);
        let took = timed_gets(&mut px.client(), 300);
        assert!(took >= Duration::from_millis(1500) && took < Duration::from_secs(15), "{io}: cluster {took:?}");
        drop(px);

        let px = ClusterProxy::start(&cluster, io, "on_limit = \"error\"\nper_ip = { requests = 5 }\n");
        let replies = px.client().pipeline(&gets(0, 20));
        let errors = replies.iter().filter(|r| **r == Reply::Error(b"ERR rate limit exceeded".to_vec())).count();
        assert!(errors >= 10, "{io}: {replies:?}");
        assert!(replies.iter().all(|r| *r == Reply::Bulk(None) || matches!(r, Reply::Error(_))), "{io}");
    }
}

/// Replies per second one address gets through 2 workers while it asks
/// for twice the rate over `conns` connections, each paced (it writes on
/// schedule, whatever the replies do), measured after a 1 s warm-up.
fn measured_rate(port: u16, rate: f64, conns: usize, secs: u64) -> f64 {
    let start = Instant::now();
    let (warm, end) = (start + Duration::from_secs(1), start + Duration::from_secs(1 + secs));
    let per_conn = 2.0 * rate / conns as f64;
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut w = s.try_clone().unwrap();
            std::thread::spawn(move || {
                let writer = std::thread::spawn(move || {
                    let mut next = Instant::now();
                    while next < end {
                        if w.write_all(&command(&[b"GET", b"k"])).is_err() {
                            return;
                        }
                        next += Duration::from_secs_f64(1.0 / per_conn);
                        std::thread::sleep(next.saturating_duration_since(Instant::now()));
                    }
                });
                let mut r = BufReader::new(s);
                let mut counted = 0u64;
                let mut line = Vec::new();
                loop {
                    line.clear();
                    if r.read_until(b'\n', &mut line).unwrap_or(0) == 0 || Instant::now() >= end {
                        break;
                    }
                    assert_eq!(line, b"$-1\r\n", "delay mode never errors");
                    if Instant::now() >= warm {
                        counted += 1;
                    }
                }
                let _ = writer.join();
                counted
            })
        })
        .collect();
    let total: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    total as f64 / secs as f64
}

/// How close per-core shares keep one address to its rate with 2 workers
/// (README "Rate limits"): 200/s asked for at 400/s over 1 connection
/// (one core busy) and over 8 (both busy). Bounds are generous (±25%);
/// the measured numbers are printed.
#[test]
fn per_core_shares_keep_an_address_near_its_rate_with_two_workers() {
    let r = redis();
    for io in drivers() {
        let (_p, port) = start(io, "redis", &[r.port], "per_ip = { requests = 200, burst = 1.0 }\n");
        for conns in [1, 8] {
            let got = measured_rate(port, 200.0, conns, 3);
            eprintln!(
                "measure: {io} workers=2 rate=200/s asked=400/s conns={conns}: {got:.1}/s ({:+.1}%)",
                (got / 200.0 - 1.0) * 100.0
            );
            // The limit is never exceeded (beyond burst and share slack).
            // How close it gets from below is a measurement, printed above,
            // not asserted: under a loaded test run the client itself is
            // starved (once seen: 53/s with 8 connections on epoll).
            assert!(got <= 250.0, "{io} conns={conns}: {got}/s passes the 200/s limit");
            assert!(got > 0.0, "{io} conns={conns}: nothing got through");
        }
    }
}
