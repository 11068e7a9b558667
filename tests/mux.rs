//! The twemproxy-mode session on real sockets: `worker::mux_epoll` in front
//! of real redis-server and memcached processes, with a deterministic test
//! router (the production ring comes from the placement work).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::BytesMut;
use common::{free_port, redis, wait_until, Proc, Resp};
use puerta::protocol::resp::{ReplyDecoder, ReplyKind};
use puerta::session::mux::{MuxConfig, Protocol};
use puerta::worker::mux_epoll::{run, MuxPool};

/// Test placement: byte sum modulo the server count.
fn router(n: u32) -> impl Fn(&[u8]) -> Option<u32> + Send + Sync {
    move |k: &[u8]| Some(k.iter().map(|&b| b as u32).sum::<u32>() % n)
}

struct Pool {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start(cfg: MuxConfig, servers: Vec<SocketAddr>) -> Pool {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let n = servers.len() as u32;
    let pool = MuxPool { listener, servers, cfg, router: Arc::new(router(n)) };
    let s = stop.clone();
    let thread = std::thread::spawn(move || run(pool, s).unwrap());
    Pool { port, stop, thread: Some(thread) }
}

fn cmd(args: &[&str]) -> Vec<u8> {
    puerta::protocol::resp::encode::command(args.iter().map(|a| a.as_bytes())).to_vec()
}

/// Reads exactly `n` whole replies (raw bytes each).
fn replies(s: &mut TcpStream, n: usize) -> Vec<(ReplyKind, Vec<u8>)> {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (mut dec, mut buf, mut out) = (ReplyDecoder::default(), BytesMut::new(), Vec::new());
    let mut chunk = [0u8; 65536];
    while out.len() < n {
        while let Some(r) = dec.decode(&mut buf).unwrap() {
            out.push((r.kind, r.raw.to_vec()));
        }
        if out.len() == n {
            break;
        }
        let k = s.read(&mut chunk).unwrap();
        assert!(k > 0, "closed after {} replies", out.len());
        buf.extend_from_slice(&chunk[..k]);
    }
    out
}

#[test]
fn redis_pool_pipelines_routes_and_fans_out() {
    let backends = [redis(), redis()];
    let pool = start(MuxConfig::new(Protocol::Redis, 2), backends.iter().map(Proc::addr).collect());
    let mut c = TcpStream::connect(("127.0.0.1", pool.port)).unwrap();
    // 1,000 commands in one write.
    let pipe: Vec<u8> = (0..1000).flat_map(|i| cmd(&["SET", &format!("k{i}"), &format!("v{i}")])).collect();
    c.write_all(&pipe).unwrap();
    let got = replies(&mut c, 1000);
    assert!(got.iter().all(|(_, raw)| raw == b"+OK\r\n"));
    // Every key sits on the server the router picked, and only there.
    let route = router(2);
    let mut direct: Vec<Resp> = backends.iter().map(|b| Resp::connect(b.port).unwrap()).collect();
    for i in (0..1000).step_by(37) {
        let k = format!("k{i}");
        let home = route(k.as_bytes()).unwrap() as usize;
        assert_eq!(direct[home].cmd(&["GET", &k]).unwrap(), format!("v{i}"));
        assert_eq!(direct[1 - home].cmd(&["GET", &k]).unwrap(), "(nil)");
    }
    // MGET across both servers comes back in the client's order.
    let keys = ["k1", "k2", "nope", "k3", "k10", "k11", "k12", "k13", "k14", "k15"];
    let mut mget = vec!["MGET"];
    mget.extend(keys);
    c.write_all(&cmd(&mget)).unwrap();
    let (_, raw) = &replies(&mut c, 1)[0];
    let mut expect = b"*10\r\n".to_vec();
    for k in keys {
        match k.strip_prefix('k') {
            Some(n) => expect.extend(format!("${}\r\nv{n}\r\n", n.len() + 1).into_bytes()),
            None => expect.extend(b"$-1\r\n"),
        }
    }
    let expect = String::from_utf8(expect).unwrap();
    assert_eq!(String::from_utf8_lossy(raw), expect);
    // DEL and EXISTS sum across servers; PING is local.
    let mut batch = cmd(&["EXISTS", "k1", "k2", "k3", "nope"]);
    batch.extend(cmd(&["DEL", "k1", "k2", "k3", "nope"]));
    batch.extend(cmd(&["PING"]));
    c.write_all(&batch).unwrap();
    let r = replies(&mut c, 3);
    assert_eq!(r[0].1, b":3\r\n");
    assert_eq!(r[1].1, b":3\r\n");
    assert_eq!(r[2].1, b"+PONG\r\n");
}

#[test]
fn requests_split_at_every_byte_boundary() {
    let backends = [redis(), redis()];
    let pool = start(MuxConfig::new(Protocol::Redis, 2), backends.iter().map(Proc::addr).collect());
    let mut c = TcpStream::connect(("127.0.0.1", pool.port)).unwrap();
    c.set_nodelay(true).unwrap();
    let mut req = cmd(&["SET", "a", "1"]);
    req.extend(cmd(&["MSET", "b", "2", "c", "3"]));
    req.extend(cmd(&["MGET", "a", "b", "c"]));
    for byte in &req {
        c.write_all(std::slice::from_ref(byte)).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    let r = replies(&mut c, 3);
    assert_eq!(r[0].1, b"+OK\r\n");
    assert_eq!(r[1].1, b"+OK\r\n");
    assert_eq!(r[2].1, b"*3\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n");
}

#[test]
fn unsupported_command_closes_and_dead_backend_is_refused() {
    let mut backends = vec![redis(), redis()];
    let pool = start(MuxConfig::new(Protocol::Redis, 2), backends.iter().map(Proc::addr).collect());
    let mut c = Resp::connect(pool.port).unwrap();
    assert_eq!(c.cmd(&["CLIENT", "SETINFO", "lib-name", "x"]).ok(), None, "closed, as nutcracker does");
    // Stop server 1: its keys answer "Connection refused", server 0 still works.
    let route = router(2);
    let (k0, k1) = (
        (0..).map(|i| format!("x{i}")).find(|k| route(k.as_bytes()) == Some(0)).unwrap(),
        (0..).map(|i| format!("x{i}")).find(|k| route(k.as_bytes()) == Some(1)).unwrap(),
    );
    drop(backends.remove(1));
    let mut c = Resp::connect(pool.port).unwrap();
    assert_eq!(c.cmd(&["GET", &k1]).unwrap(), "-ERR Connection refused");
    assert_eq!(c.cmd(&["SET", &k0, "v"]).unwrap(), "OK");
    assert_eq!(c.cmd(&["GET", &k0]).unwrap(), "v");
}

fn memcached() -> Proc {
    let port = free_port();
    let mut args = vec!["-p".to_string(), port.to_string(), "-U".into(), "0".into(), "-l".into(), "127.0.0.1".into()];
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        args.extend(["-u".into(), "root".into()]);
    }
    let child = Command::new("memcached").args(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let p = Proc { child, port };
    wait_until("memcached to listen", Duration::from_secs(10), || TcpStream::connect(p.addr()).is_ok());
    p
}

#[test]
fn memcache_pool_splits_gets_and_merges_one_end() {
    let backends = [memcached(), memcached()];
    let pool = start(MuxConfig::new(Protocol::Memcache, 2), backends.iter().map(Proc::addr).collect());
    let mut c = TcpStream::connect(("127.0.0.1", pool.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = Vec::new();
    for k in ["ka", "kb", "kc", "kd"] {
        req.extend(format!("set {k} 0 0 2\r\n{}\r\n", &k[1..].repeat(2)).into_bytes());
    }
    req.extend(b"set quiet 0 0 1 noreply\r\nq\r\nget kd ka missing kc kb quiet\r\n");
    c.write_all(&req).unwrap();
    let expect = "STORED\r\nSTORED\r\nSTORED\r\nSTORED\r\n\
VALUE kd 0 2\r\ndd\r\nVALUE ka 0 2\r\naa\r\nVALUE kc 0 2\r\ncc\r\nVALUE kb 0 2\r\nbb\r\nVALUE quiet 0 1\r\nq\r\nEND\r\n";
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while got.len() < expect.len() {
        let n = c.read(&mut chunk).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(String::from_utf8_lossy(&got), expect);
    // The keys really are spread over both servers.
    let route = router(2);
    let homes: std::collections::HashSet<u32> =
        ["ka", "kb", "kc", "kd"].iter().map(|k| route(k.as_bytes()).unwrap()).collect();
    assert_eq!(homes.len(), 2);
}

#[test]
fn redis_auth_and_db_reach_the_backend() {
    let port = free_port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--requirepass", "pw"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let backend = Proc { child, port };
    wait_until("redis-server", Duration::from_secs(10), || TcpStream::connect(backend.addr()).is_ok());
    let mut cfg = MuxConfig::new(Protocol::Redis, 1);
    cfg.redis_auth = Some(b"pw".to_vec());
    cfg.redis_db = 3;
    let pool = start(cfg, vec![backend.addr()]);
    let mut c = Resp::connect(pool.port).unwrap();
    assert_eq!(c.cmd(&["SET", "k", "v"]).unwrap(), "-NOAUTH Authentication required");
    assert_eq!(c.cmd(&["AUTH", "bad"]).unwrap(), "-ERR invalid password");
    assert_eq!(c.cmd(&["AUTH", "pw"]).unwrap(), "OK");
    assert_eq!(c.cmd(&["SET", "k", "v"]).unwrap(), "OK");
    // The proxy's backend connection authenticated and selected db 3.
    let mut direct = Resp::connect(port).unwrap();
    assert_eq!(direct.cmd(&["AUTH", "pw"]).unwrap(), "OK");
    assert_eq!(direct.cmd(&["GET", "k"]).unwrap(), "(nil)", "not in db 0");
    assert_eq!(direct.cmd(&["SELECT", "3"]).unwrap(), "OK");
    assert_eq!(direct.cmd(&["GET", "k"]).unwrap(), "v");
}
