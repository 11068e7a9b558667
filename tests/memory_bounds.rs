//! Byte bounds end to end, through the real `puerta` binary under both
//! I/O drivers against real memcached and redis-servers: a noreply flood
//! to a stopped memcached keeps Puerta's RSS bounded (`client_queue_limit`
//! and noreply write deadlines), a client that reads gets an 80 MiB MGET
//! reply (`client_output_limit` defaults), and past `max_buffered_bytes`
//! the client holding the most is closed while the others are served.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::twem::{command, memcached, RawMemcache, RawResp, Reply};
use common::twem_puerta::{yaml, PuertaTwem};
use common::{drivers, redis, wait_until, Proc};

/// Resident set size of `pid` in KiB (`VmRSS` of /proc/PID/status).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmRSS in kB")
}

fn signal(p: &Proc, sig: i32) {
    // SAFETY: kill(2) on a child we started.
    unsafe {
        libc::kill(p.pid() as i32, sig);
    }
}

/// What Puerta may grow by while one client floods a stopped memcached:
/// the client's queue (16 MiB by default) held in the session and, under
/// io_uring, copied once more into the send in flight, one read buffer
/// ring (16 MiB per worker), and the allocator's slack. Unbounded, it was
/// the whole flood (RSS 24 MB -> 615 MB for 300 MiB).
const FLOOD_GROWTH_BOUND_KIB: u64 = 160 * 1024;

#[test]
fn a_noreply_flood_to_a_stopped_memcached_keeps_puerta_small() {
    const FLOOD: usize = 300 << 20;
    for io in drivers() {
        let mc = memcached();
        // Writes that stall 200 ms time the server out: the flood moves
        // on in bounded steps instead of piling up.
        let px = PuertaTwem::start(&yaml(false, &[mc.port], "  timeout: 200\n"), io);
        let mut good = RawMemcache::connect(px.port());
        good.set_all(&[b"warm".to_vec()]);
        let base = rss_kib(px.proc.pid());
        signal(&mc, libc::SIGSTOP);
        let port = px.port();
        let flood = std::thread::spawn(move || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let value = vec![b'v'; 4000];
            let mut chunk = Vec::new();
            for i in 0..256 {
                chunk.extend_from_slice(format!("set flood{i} 0 0 {} noreply\r\n", value.len()).as_bytes());
                chunk.extend_from_slice(&value);
                chunk.extend_from_slice(b"\r\n");
            }
            let mut sent = 0;
            while sent < FLOOD {
                s.write_all(&chunk).unwrap();
                sent += chunk.len();
            }
            sent
        });
        let (start, mut peak) = (Instant::now(), base);
        while !flood.is_finished() {
            peak = peak.max(rss_kib(px.proc.pid()));
            assert!(start.elapsed() < Duration::from_secs(300), "{io}: the flood stalled");
            std::thread::sleep(Duration::from_millis(10));
        }
        let sent = flood.join().unwrap();
        assert!(sent >= FLOOD);
        eprintln!(
            "{io}: {} MiB of noreply sets in {:?}; RSS {base} KiB -> peak {peak} KiB",
            sent >> 20,
            start.elapsed()
        );
        assert!(
            peak < base + FLOOD_GROWTH_BOUND_KIB,
            "{io}: RSS grew from {base} KiB to {peak} KiB for {} MiB of noreply sets",
            sent >> 20
        );
        let timedout = px.stats()["alpha"][format!("127.0.0.1:{}", mc.port)]["server_timedout"].as_u64();
        assert!(timedout.is_some_and(|n| n > 0), "{io}: unwritten noreply sets timed out ({timedout:?})");
        signal(&mc, libc::SIGCONT);
        // The pool serves again once the server does.
        wait_until("a set through puerta after SIGCONT", Duration::from_secs(20), || {
            let mut c = TcpStream::connect(("127.0.0.1", px.port())).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            c.write_all(b"set after 0 0 1\r\nv\r\n").unwrap();
            let mut got = [0u8; 8];
            c.read_exact(&mut got).is_ok() && &got == b"STORED\r\n"
        });
    }
}

#[test]
fn a_client_that_reads_gets_an_mget_of_five_16_mib_values() {
    let (r1, r2) = (redis(), redis());
    for io in drivers() {
        let px = PuertaTwem::start(&yaml(true, &[r1.port, r2.port], ""), io);
        let mut c = RawResp::connect(px.port());
        let keys: Vec<Vec<u8>> = (0..5).map(|i| format!("big{i}").into_bytes()).collect();
        let values: Vec<Vec<u8>> = (0..5u8).map(|i| vec![b'a' + i; 16 << 20]).collect();
        let mut mset: Vec<&[u8]> = vec![b"MSET"];
        for (k, v) in keys.iter().zip(&values) {
            mset.extend([&k[..], &v[..]]);
        }
        assert_eq!(c.cmd(&mset), Reply::Status(b"OK".to_vec()), "{io}: an 80 MiB MSET");
        let mut mget: Vec<&[u8]> = vec![b"MGET"];
        mget.extend(keys.iter().map(|k| &k[..]));
        let want = Reply::Array(Some(values.iter().map(|v| Reply::Bulk(Some(v.clone()))).collect()));
        assert!(c.cmd(&mget) == want, "{io}: the 80 MiB MGET reply arrives whole");
        assert_eq!(c.cmd(&[b"PING"]), Reply::Status(b"PONG".to_vec()), "{io}: and the client stays");
        assert_eq!(px.metric("puerta_slow_clients_closed_total", "pool=\"alpha\""), 0.0);
    }
}

#[test]
fn past_max_buffered_bytes_the_client_holding_the_most_is_closed() {
    let r = redis();
    let value = vec![b'x'; 16 << 20];
    assert_eq!(RawResp::connect(r.port).cmd(&[b"SET", b"big", &value]), Reply::Status(b"OK".to_vec()));
    for io in drivers() {
        let conf = format!(
            "[server]\nmax_buffered_bytes = \"32mb\"\nadmin = \"127.0.0.1:{{admin}}\"\n[[pool]]\nname = \"alpha\"\n\
             listen = \"127.0.0.1:{{listen}}\"\nmode = \"redis\"\nservers = [\"127.0.0.1:{}:1\"]\n",
            r.port
        );
        let px = PuertaTwem::start_with(&conf, io, "p.toml", &[]);
        // Neither reads yet: `hog` asks for 48 MiB, `small` for 16 MiB.
        let mut hog = TcpStream::connect(("127.0.0.1", px.port())).unwrap();
        hog.write_all(&[command(&[b"GET", b"big"]), command(&[b"GET", b"big"]), command(&[b"GET", b"big"])].concat())
            .unwrap();
        let mut small = TcpStream::connect(("127.0.0.1", px.port())).unwrap();
        small.write_all(&command(&[b"GET", b"big"])).unwrap();
        let mut small = RawResp::from_stream(small);
        wait_until("the cap to close a client", Duration::from_secs(30), || {
            px.metric("puerta_buffer_cap_closed_total", "") >= 1.0
        });
        // The other client is served in full...
        assert!(small.reply() == Reply::Bulk(Some(value.clone())), "{io}: the smaller client gets its value");
        // ... and the hog sees its connection end before its 48 MiB.
        hog.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let (mut got, mut buf) = (0usize, vec![0u8; 1 << 20]);
        loop {
            match hog.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        assert!(got < 3 * value.len(), "{io}: the largest client was closed ({got} bytes read)");
        assert_eq!(px.metric("puerta_buffer_cap_closed_total", ""), 1.0, "{io}: only the largest");
    }
}
