//! twemproxy-mode failures through the real `puerta` binary, under both
//! I/O drivers, with real redis-servers and memcached that are stopped
//! (SIGSTOP), killed and restarted: the ejection timeline, a backend
//! dying mid-pipeline, timeouts, refused connects, a client that never
//! reads, and an oversized request.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::twem::{command, memcached, RawResp, Reply};
use common::twem_puerta::{yaml, PuertaTwem};
use common::{drivers, redis, wait_until, Proc};
use puerta::route::ShardRing;

fn ring_of(p: &PuertaTwem) -> ShardRing {
    let cfg = puerta::config::load(&p.conf).unwrap_or_else(|e| panic!("{e}"));
    puerta::route::ring::for_pool(&cfg.pools[0], &|_| true).expect("a redis pool has a ring")
}

/// The first key `key:N` the ring places on `server`.
fn key_on(ring: &ShardRing, server: u32, skip: usize) -> String {
    (0..).map(|i| format!("key:{i}")).filter(|k| ring.pick(k.as_bytes()) == Some(server)).nth(skip).unwrap()
}

fn ok() -> Reply {
    Reply::Status(b"OK".to_vec())
}

fn err(text: &str) -> Reply {
    Reply::Error(text.as_bytes().to_vec())
}

fn signal(p: &Proc, sig: i32) {
    // SAFETY: kill(2) on a child we started.
    unsafe {
        libc::kill(p.pid() as i32, sig);
    }
}

/// A redis-server on `port` with extra arguments (restarts reuse a port).
fn redis_at(port: u16, extra: &[&str]) -> Proc {
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server");
    let p = Proc { child, port };
    wait_until("redis-server to listen", Duration::from_secs(10), || TcpStream::connect(p.addr()).is_ok());
    p
}

fn stat(px: &PuertaTwem, server: &str, field: &str) -> u64 {
    px.stats()["alpha"][server][field].as_u64().unwrap_or_else(|| panic!("no {server}.{field}"))
}

#[test]
fn ejection_timeline_with_a_stopped_server() {
    let backends = [redis(), redis(), redis()];
    let ports: Vec<u16> = backends.iter().map(|b| b.port).collect();
    let extra = "  hash: murmur\n  timeout: 300\n  auto_eject_hosts: true\n  server_failure_limit: 2\n  \
                 server_retry_timeout: 1000\n";
    for io in drivers() {
        let px = PuertaTwem::start(&yaml(true, &ports, extra), io);
        let ring = ring_of(&px);
        let victim = &backends[2];
        let name = format!("127.0.0.1:{}", victim.port);
        let (k, k2) = (key_on(&ring, 2, 0), key_on(&ring, 2, 1));
        let mut c = RawResp::connect(px.port());
        assert_eq!(c.cmd(&[b"SET", k.as_bytes(), b"home"]), ok());
        signal(victim, libc::SIGSTOP);
        // Until ejected, requests to it time out (it accepts, never answers).
        let t0 = Instant::now();
        let mut timeouts = 0;
        let ejected_at = loop {
            match c.cmd(&[b"GET", k.as_bytes()]) {
                r if r == err("ERR Connection timed out") => timeouts += 1,
                Reply::Bulk(None) => break Instant::now(),
                other => panic!("{io}: unexpected {other:?}"),
            }
            assert!(t0.elapsed() < Duration::from_secs(20), "{io}: never ejected");
        };
        assert!(timeouts >= 2, "{io}: server_failure_limit (2) failures come first, saw {timeouts}");
        assert!(stat(&px, &name, "server_ejected_at") > 0);
        assert!(px.stats()["alpha"]["server_ejects"].as_u64().unwrap() >= 1);
        wait_until("server_timedout in stats", Duration::from_secs(10), || stat(&px, &name, "server_timedout") >= 2);
        // Ejected: its keys are served by the other servers now.
        assert_eq!(c.cmd(&[b"SET", k2.as_bytes(), b"away"]), ok());
        let elsewhere = backends[..2]
            .iter()
            .any(|b| RawResp::connect(b.port).cmd(&[b"GET", k2.as_bytes()]) == Reply::Bulk(Some(b"away".to_vec())));
        assert!(elsewhere, "{io}: written to a live server while ejected");
        // After server_retry_timeout it is tried again; still stopped, it
        // times out again (and is ejected again).
        wait_until("the server back in the ring", Duration::from_secs(10), || {
            c.cmd(&[b"GET", k.as_bytes()]) == err("ERR Connection timed out")
        });
        assert!(ejected_at.elapsed() >= Duration::from_millis(900), "{io}: retried before server_retry_timeout");
        // Resumed, it serves its own keys again once retried.
        signal(victim, libc::SIGCONT);
        wait_until("the server serving its keys again", Duration::from_secs(20), || {
            c.cmd(&[b"GET", k.as_bytes()]) == Reply::Bulk(Some(b"home".to_vec()))
        });
        for b in &backends {
            assert_eq!(RawResp::connect(b.port).cmd(&[b"FLUSHALL"]), ok());
        }
    }
}

#[test]
fn backend_killed_mid_pipeline_errors_only_what_was_sent_to_it() {
    for io in drivers() {
        let (b0, b1) = (redis(), redis());
        let b1_port = b1.port;
        let px = PuertaTwem::start(&yaml(true, &[b0.port, b1.port], "  hash: murmur\n"), io);
        let ring = ring_of(&px);
        let busy = key_on(&ring, 1, 0);
        // 600 ms of Lua on server 1, so the kill lands mid-pipeline.
        let script = "local s=redis.call('TIME') local t=s[1]*1000000+s[2] \
                      while true do local n=redis.call('TIME') if n[1]*1000000+n[2]-t>600000 then break end end return 1";
        let mut cmds = vec![command(&[b"EVAL", script.as_bytes(), b"1", busy.as_bytes()])];
        let zero: Vec<String> = (0..50).map(|i| key_on(&ring, 0, i)).collect();
        cmds.extend(zero.iter().map(|k| command(&[b"SET", k.as_bytes(), b"v"])));
        let one: Vec<String> = (1..4).map(|i| key_on(&ring, 1, i)).collect();
        cmds.extend(one.iter().map(|k| command(&[b"GET", k.as_bytes()])));
        let mut c = RawResp::connect(px.port());
        let mut s = TcpStream::connect(("127.0.0.1", px.port())).unwrap();
        s.write_all(&cmds.concat()).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        drop(b1); // SIGKILL while the script runs
        let mut r = RawResp::from_stream(s);
        let replies: Vec<Reply> = (0..cmds.len()).map(|_| r.reply()).collect();
        let is_err = |r: &Reply| matches!(r, Reply::Error(e) if e.starts_with(b"ERR "));
        assert!(is_err(&replies[0]), "{io}: the running script fails: {:?}", replies[0]);
        assert!(replies[1..51].iter().all(|r| *r == ok()), "{io}: server 0 unaffected");
        assert!(replies[51..].iter().all(is_err), "{io}: requests already sent to server 1 fail");
        // The client connection stays usable and follows the current ring.
        assert_eq!(r.cmd(&[b"SET", zero[0].as_bytes(), b"w"]), ok(), "{io}");
        assert_eq!(c.cmd(&[b"GET", busy.as_bytes()]), err("ERR Connection refused"), "{io}");
        let _b1 = redis_at(b1_port, &[]);
        wait_until("server 1 back", Duration::from_secs(10), || r.cmd(&[b"GET", busy.as_bytes()]) == Reply::Bulk(None));
    }
}

#[test]
fn timeouts_answer_connection_timed_out() {
    let r = redis();
    let m = memcached();
    for io in drivers() {
        // Reply timeout: the server accepts but never answers.
        let px = PuertaTwem::start(&yaml(true, &[r.port], "  timeout: 300\n"), io);
        let mut c = RawResp::connect(px.port());
        assert_eq!(c.cmd(&[b"SET", b"x", b"1"]), ok());
        signal(&r, libc::SIGSTOP);
        let t = Instant::now();
        assert_eq!(c.cmd(&[b"GET", b"x"]), err("ERR Connection timed out"), "{io}");
        assert!(t.elapsed() >= Duration::from_millis(290), "{io}: not before the timeout");
        signal(&r, libc::SIGCONT);
        assert_eq!(c.cmd(&[b"GET", b"x"]), Reply::Bulk(Some(b"1".to_vec())), "{io}: reconnects after");
        // memcached says SERVER_ERROR.
        let pm = PuertaTwem::start(&yaml(false, &[m.port], "  timeout: 300\n"), io);
        let mut s = TcpStream::connect(("127.0.0.1", pm.port())).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        signal(&m, libc::SIGSTOP);
        s.write_all(b"get x\r\n").unwrap();
        let want = b"SERVER_ERROR Connection timed out\r\n";
        let mut got = vec![0u8; want.len()];
        s.read_exact(&mut got).unwrap();
        signal(&m, libc::SIGCONT);
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want), "{io}");
    }
    // Connect timeout: a stopped server whose accept queue is full drops
    // the SYN, so the connect itself never completes.
    let full = redis_at(common::free_port(), &["--tcp-backlog", "1"]);
    signal(&full, libc::SIGSTOP);
    let _fill: Vec<socket2::Socket> = (0..4).map(|_| half_open(full.addr())).collect();
    for io in drivers() {
        let px = PuertaTwem::start(&yaml(true, &[full.port], "  timeout: 300\n"), io);
        let mut c = RawResp::connect(px.port());
        assert_eq!(c.cmd(&[b"GET", b"x"]), err("ERR Connection timed out"), "{io}");
        let opened = px.metric("puerta_backend_connections_total", "");
        assert_eq!(opened, 0.0, "{io}: the backend connection never opened");
    }
    signal(&full, libc::SIGCONT);
    // Refused: nothing listens.
    let gone = common::free_port();
    for io in drivers() {
        let px = PuertaTwem::start(&yaml(true, &[gone], ""), io);
        let mut c = RawResp::connect(px.port());
        assert_eq!(c.cmd(&[b"GET", b"x"]), err("ERR Connection refused"), "{io}");
        assert_eq!(c.cmd(&[b"PING"]), Reply::Status(b"PONG".to_vec()), "{io}: the client stays");
    }
}

/// A non-blocking connect left in flight (fills a listener's queue).
fn half_open(addr: SocketAddr) -> socket2::Socket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_nonblocking(true).unwrap();
    let _ = s.connect(&addr.into());
    std::thread::sleep(Duration::from_millis(20));
    s
}

fn toml_pool(ports: &[u16], extra: &str) -> String {
    let servers: Vec<String> = ports.iter().map(|p| format!("\"127.0.0.1:{p}:1\"")).collect();
    format!(
        "[[pool]]\nname = \"alpha\"\nlisten = \"127.0.0.1:{{listen}}\"\nmode = \"redis\"\nservers = [{}]\n{extra}",
        servers.join(", ")
    )
}

#[test]
fn a_client_that_never_reads_is_closed_and_counted() {
    let r = redis();
    let big = vec![b'x'; 256 * 1024];
    assert_eq!(RawResp::connect(r.port).cmd(&[b"SET", b"big", &big]), ok());
    for io in drivers() {
        let px = PuertaTwem::start_with(&toml_pool(&[r.port], "client_reply_limit = 1048576\n"), io, "p.toml", &[]);
        let mut good = RawResp::connect(px.port());
        assert_eq!(good.cmd(&[b"SET", b"small", b"s"]), ok());
        let mut slow = TcpStream::connect(("127.0.0.1", px.port())).unwrap();
        let gets: Vec<u8> = (0..200).flat_map(|_| command(&[b"GET", b"big"])).collect();
        // Writing may fail once Puerta closes the connection; that is the point.
        let _ = slow.write_all(&gets);
        wait_until("the slow client closed", Duration::from_secs(20), || {
            px.metric("puerta_slow_clients_closed_total", "pool=\"alpha\"") >= 1.0
        });
        // The well-behaved client was never held up or closed.
        assert_eq!(good.cmd(&[b"GET", b"small"]), Reply::Bulk(Some(b"s".to_vec())), "{io}");
        slow.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut sink = vec![0u8; 1 << 20];
        let drained = loop {
            match slow.read(&mut sink) {
                Ok(0) | Err(_) => break true,
                Ok(_) => {}
            }
        };
        assert!(drained, "{io}: the slow client sees its connection end");
        wait_until("client_connections back to 1", Duration::from_secs(10), || {
            px.stats()["alpha"]["client_connections"].as_u64() == Some(1)
        });
    }
}

#[test]
fn an_oversized_request_gets_an_error_and_the_connection_closes() {
    let r = redis();
    for io in drivers() {
        let px = PuertaTwem::start_with(&toml_pool(&[r.port], "max_request_bytes = 4096\n"), io, "p.toml", &[]);
        let mut s = TcpStream::connect(("127.0.0.1", px.port())).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // The declared size alone is enough to refuse it.
        s.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$8000\r\n").unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        assert_eq!(
            String::from_utf8_lossy(&got),
            "-ERR Protocol error: request larger than max_request_bytes (4096)\r\n",
            "{io}: an error, then EOF"
        );
        let mut c = RawResp::connect(px.port());
        assert_eq!(c.cmd(&[b"SET", b"k", &[b'v'; 2000]]), ok(), "{io}: within the limit is fine");
        wait_until("client_err counted", Duration::from_secs(10), || {
            px.stats()["alpha"]["client_err"].as_u64() >= Some(1)
        });
    }
}
