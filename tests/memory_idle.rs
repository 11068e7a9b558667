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
