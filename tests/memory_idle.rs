//! Memory of idle clients, through the real `puerta` binary (workers=2)
//! under both I/O drivers in front of a real redis-server: 5,000 clients
//! that each sent one PING and then went quiet must cost under 1 KiB each
//! in RSS, and the process must start small. Idle clients hold no buffers
//! (released at the session tick), the io_uring provided buffers are
//! handed to the kernel lazily, and THP is off; before those, an idle
//! client cost 2.3 KB and the io_uring process started at 55 MB.
//! `scripts/bench-memory.sh` measures the same at 10,000 clients against
//! nutcracker.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::twem_puerta::{yaml, PuertaTwem};
use common::{drivers, redis, wait_until};

const CLIENTS: usize = 5000;
/// Generous: 0.5-0.65 KB is measured here (a debug build, two workers,
/// fixed costs spread over fewer clients), 0.35-0.4 KB by
/// `scripts/bench-memory.sh` at 10,000 clients in a release build.
const PER_CLIENT_BOUND: u64 = 1024;
/// RSS at start, no clients, workers=2 (a debug build's text included).
const START_BOUND_KIB: u64 = 24 * 1024;

/// Resident set size of `pid` in KiB (`VmRSS` of /proc/PID/status).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmRSS in kB")
}

fn ping(s: &mut TcpStream) {
    s.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"+PONG\r\n");
}

/// Raises this process's soft RLIMIT_NOFILE to its hard limit (the clients
/// here and, inherited, Puerta's).
fn raise_nofile() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: get/setrlimit on a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[test]
fn idle_clients_cost_under_a_kilobyte_each_and_the_process_starts_small() {
    raise_nofile();
    let r = redis();
    for io in drivers() {
        let px = PuertaTwem::start(&yaml(true, &[r.port], ""), io);
        let pid = px.proc.pid();
        let start = rss_kib(pid);
        eprintln!("{io}: RSS at start {start} KiB");
        assert!(start <= START_BOUND_KIB, "{io}: RSS at start {start} KiB");
        let mut conns: Vec<TcpStream> = (0..CLIENTS)
            .map(|_| {
                let mut s = TcpStream::connect(("127.0.0.1", px.port())).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                ping(&mut s);
                s
            })
            .collect();
        wait_until("every client counted", Duration::from_secs(15), || {
            px.metric("puerta_client_connections", "") as usize >= CLIENTS
        });
        // Past two session ticks (250 ms): idle buffers released.
        std::thread::sleep(Duration::from_millis(800));
        let after = rss_kib(pid);
        let per_client = after.saturating_sub(start) * 1024 / CLIENTS as u64;
        eprintln!("{io}: {CLIENTS} idle clients: RSS {start} -> {after} KiB, {per_client} B each");
        assert!(per_client < PER_CLIENT_BOUND, "{io}: {per_client} B per idle client");
        // Released buffers come back when a client speaks again.
        for s in conns.iter_mut().step_by(97) {
            ping(s);
        }
    }
}

/// A plaintext backend connection reads into its own buffer (at least
/// 16 KiB). Once the connection goes idle, the buffer is released, as an
/// idle client's are: 512 connections to one server, each made to carry
/// two 12 KiB replies and then left idle, must not keep their buffers
/// (8 MiB between them before the release).
#[test]
fn idle_backend_connections_hold_no_receive_buffer() {
    const CONNS: usize = 512;
    const VALUE: usize = 12 * 1024;
    raise_nofile();
    let r = redis();
    let mut seed = TcpStream::connect(("127.0.0.1", r.port)).unwrap();
    let set = format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${VALUE}\r\n{}\r\n", "v".repeat(VALUE));
    seed.write_all(set.as_bytes()).unwrap();
    let mut ok = [0u8; 5];
    seed.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"+OK\r\n");
    let get = b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n";
    let reply_len = format!("${VALUE}\r\n").len() + VALUE + 2;
    for io in drivers() {
        let extra = format!("  server_connections: {CONNS}\n  preconnect: true\n");
        let px = PuertaTwem::start(&yaml(true, &[r.port], &extra), io);
        let pid = px.proc.pid();
        wait_until("every backend connection open", Duration::from_secs(15), || {
            px.stats()["alpha"][format!("127.0.0.1:{}", r.port)]["server_connections"].as_u64() >= Some(CONNS as u64)
        });
        std::thread::sleep(Duration::from_millis(600));
        let before = rss_kib(pid);
        // Round robin over the client's worker's connections: each carries
        // two replies at a time.
        let round = |c: &mut TcpStream| {
            let batch: Vec<u8> = get.iter().copied().cycle().take(get.len() * CONNS / 2).collect();
            c.write_all(&batch).unwrap();
            let mut replies = vec![0u8; reply_len * CONNS / 2];
            c.read_exact(&mut replies).unwrap();
            let want: Vec<u8> = format!("${VALUE}\r\n{}\r\n", "v".repeat(VALUE)).into_bytes();
            assert!(replies.chunks(reply_len).all(|r| r == want), "{io}: a reply differs");
        };
        let mut c = TcpStream::connect(("127.0.0.1", px.port())).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        for _ in 0..4 {
            round(&mut c);
        }
        // Past two ticks (250 ms): idle buffers released, pages purged.
        std::thread::sleep(Duration::from_millis(1200));
        let after = rss_kib(pid);
        eprintln!("{io}: {CONNS} idle backend connections after use: RSS {before} -> {after} KiB");
        assert!(after < before + 3 * 1024, "{io}: RSS {before} -> {after} KiB: idle backends kept their buffers");
        // The released connections read again, whole replies, in order.
        for _ in 0..2 {
            round(&mut c);
        }
        // A released connection still sees its server hang up: the server
        // drops every client, and the next requests are served on new
        // connections, not lost on dead ones.
        std::thread::sleep(Duration::from_millis(600));
        let mut admin = TcpStream::connect(("127.0.0.1", r.port)).unwrap();
        admin.write_all(b"*4\r\n$6\r\nCLIENT\r\n$4\r\nKILL\r\n$4\r\nTYPE\r\n$6\r\nnormal\r\n").unwrap();
        let mut killed = [0u8; 16];
        let n = admin.read(&mut killed).unwrap();
        assert!(killed[..n].starts_with(b":"), "{io}: CLIENT KILL: {:?}", &killed[..n]);
        wait_until("the proxy saw its backends close", Duration::from_secs(10), || {
            px.stats()["alpha"][format!("127.0.0.1:{}", r.port)]["server_eof"].as_u64() >= Some(CONNS as u64)
        });
        let mut c = TcpStream::connect(("127.0.0.1", px.port())).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        round(&mut c);
    }
}
