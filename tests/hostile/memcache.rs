//! Hostile memcached clients and backends (defects 1, 2 and 6): a 32-byte
//! request whose length field overflows, a backend whose VALUE length
//! overflows, a flush_all and two gets smuggled in a data block behind a
//! field memcached rejects, 300 MiB of noreply sets to a stopped server,
//! and a noreply set to a server that never answers.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::fake::{FakeServer, SHORT};
use crate::common::hostile::{attack, mc_probe, read_until, target, Proto, Victim, DIRECT};
use crate::common::twem::memcached;
use crate::common::twem_puerta::PuertaTwem;
use crate::common::{drivers, Proc};
use crate::{numbered, RSS_SMALL_MIB};

/// A memcache pool (TOML) over `servers`, named s0, s1, ...; one
/// connection per server per worker, so clients of a worker share it.
pub fn mc_pool(servers: &[u16], extra: &str) -> String {
    let s: Vec<String> = servers.iter().enumerate().map(|(i, p)| format!("\"127.0.0.1:{p}:1 s{i}\"")).collect();
    format!(
        "[[pool]]\nname = \"alpha\"\nlisten = \"127.0.0.1:{{listen}}\"\nmode = \"memcache\"\nservers = [{}]\n\
         server_connections = 1\n{extra}",
        s.join(", ")
    )
}

pub fn start(servers: &[u16], extra: &str, io: &str) -> PuertaTwem {
    PuertaTwem::start_with(&mc_pool(servers, extra), io, "p.toml", &[])
}

/// `n` keys `prefix:i` that the pool's ring puts on server `server`.
pub fn keys_on(px: &PuertaTwem, server: u32, prefix: &str, n: usize) -> Vec<String> {
    let cfg = puerta::config::load(&px.conf).unwrap_or_else(|e| panic!("{e}"));
    let ring = puerta::route::ring::for_pool(&cfg.pools[0], &|_| true).expect("a ring");
    (0..).map(|i| format!("{prefix}:{i}")).filter(|k| ring.pick(k.as_bytes()) == Some(server)).take(n).collect()
}

/// Memcached `stats` field `name` of a server, read directly.
pub fn mc_stat(port: u16, name: &str) -> u64 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"stats\r\n").unwrap();
    let (text, _) = read_until(&mut s, b"END\r\n", DIRECT);
    let text = String::from_utf8_lossy(&text).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("STAT {name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no stat {name} in {text}"))
}

/// Which of `keys` a memcached holds with value `val` (read directly).
pub fn mc_present(port: u16, keys: &[String], val: &str) -> Vec<bool> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    keys.iter()
        .map(|k| {
            s.write_all(format!("get {k}\r\n").as_bytes()).unwrap();
            let (got, _) = read_until(&mut s, b"END\r\n", DIRECT);
            got == format!("VALUE {k} 0 {}\r\n{val}\r\nEND\r\n", val.len()).as_bytes()
        })
        .collect()
}

/// Sets every key to `val` directly on a memcached.
pub fn mc_set(port: u16, keys: &[String], val: &str) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for k in keys {
        s.write_all(format!("set {k} 0 0 {}\r\n{val}\r\n", val.len()).as_bytes()).unwrap();
        assert_eq!(read_until(&mut s, b"\r\n", DIRECT).0, b"STORED\r\n", "direct set {k}");
    }
}

/// Keys written straight to memcached before an attack, and its flush
/// count: both must be as they were afterwards.
pub struct Canary {
    port: u16,
    keys: Vec<String>,
    flushes: u64,
}

impl Canary {
    pub fn plant(m: &Proc, prefix: &str) -> Canary {
        let keys = numbered(prefix, 16);
        mc_set(m.port, &keys, "canary");
        Canary { port: m.port, keys, flushes: mc_stat(m.port, "cmd_flush") }
    }

    pub fn assert_intact(&self, case: &str) {
        assert_eq!(mc_stat(self.port, "cmd_flush"), self.flushes, "{case}: memcached ran a flush_all");
        let present = mc_present(self.port, &self.keys, "canary");
        let lost: Vec<&String> = self.keys.iter().zip(&present).filter(|(_, p)| !**p).map(|(k, _)| k).collect();
        assert!(lost.is_empty(), "{case}: keys written before the attack are gone: {lost:?}");
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned()
}

#[test]
fn d1_memcache_huge_bytes_field() {
    let m = memcached();
    for io in drivers() {
        let case = format!("d1 set with bytes 18446744073709551582 ({io})");
        let px = start(&[m.port], "", io);
        let probe = mc_probe("hostile:probe");
        let t = target(&px, &probe, RSS_SMALL_MIB);
        let canary = Canary::plant(&m, "d1c");
        let v = Victim::start(px.port(), Proto::Memcache, &numbered("d1v", 24), 6);
        // Several connections, so both workers get the 32 bytes.
        for _ in 0..8 {
            let (got, _) = attack(px.port(), b"set a 0 0 18446744073709551582\r\n", SHORT);
            assert!(!got.starts_with(b"STORED"), "{case}: the attacker got {:?}", text(&got));
        }
        v.finish(&case);
        t.assert_healthy(&case);
        canary.assert_intact(&case);
    }
}

#[test]
fn d1_memcache_backend_value_length_overflow() {
    let m = memcached();
    let fake = FakeServer::start(|_, _| b"VALUE k 0 18446744073709551582\r\n".to_vec());
    for io in drivers() {
        let case = format!("d1 backend VALUE length 18446744073709551582 ({io})");
        let px = start(&[m.port, fake.port()], "", io);
        let probe_key = keys_on(&px, 0, "probe", 1).remove(0);
        let probe = mc_probe(&probe_key);
        let t = target(&px, &probe, RSS_SMALL_MIB);
        let v = Victim::start(px.port(), Proto::Memcache, &keys_on(&px, 0, "d1r", 24), 6);
        let bad = keys_on(&px, 1, "bad", 1).remove(0);
        for _ in 0..8 {
            let (got, _) = attack(px.port(), format!("get {bad}\r\n").as_bytes(), SHORT);
            assert!(!got.starts_with(b"VALUE"), "{case}: the client got the broken reply {:?}", text(&got));
        }
        assert!(fake.connections() > 0, "{case}: the fake backend was used");
        v.finish(&case);
        t.assert_healthy(&case);
    }
}

#[test]
fn d2_memcache_flush_all_smuggled_in_a_data_block() {
    let m = memcached();
    for io in drivers() {
        let case = format!("d2 set x 0 10000000000000000000 9 noreply / flush_all ({io})");
        let px = start(&[m.port], "", io);
        let probe = mc_probe("hostile:probe");
        let t = target(&px, &probe, RSS_SMALL_MIB);
        let canary = Canary::plant(&m, "d2c");
        let v = Victim::start(px.port(), Proto::Memcache, &numbered("d2v", 24), 6);
        // Sent directly through Puerta, flush_all is refused...
        let (got, _) = attack(px.port(), b"flush_all\r\n", SHORT);
        assert!(!got.starts_with(b"OK"), "{case}: flush_all itself was accepted");
        // ...and smuggled behind an exptime memcached rejects it must be too.
        for _ in 0..8 {
            attack(px.port(), b"set x 0 10000000000000000000 9 noreply\r\nflush_all\r\nget x\r\n", SHORT);
        }
        canary.assert_intact(&case);
        v.finish(&case);
        t.assert_healthy(&case);
    }
}

#[test]
fn d2_memcache_smuggled_gets_reach_no_other_client() {
    let m = memcached();
    for io in drivers() {
        let case = format!("d2 data block 'get secret' x2 ({io})");
        let px = start(&[m.port], "", io);
        let probe = mc_probe("hostile:probe");
        let t = target(&px, &probe, RSS_SMALL_MIB);
        mc_set(m.port, &["secret".to_string()], "attacker-chosen");
        let late = numbered("d2late", 6);
        mc_set(m.port, &late, "mine");
        let v = Victim::start(px.port(), Proto::Memcache, &numbered("d2g", 24), 6);
        // With memcached stopped, the order on each worker's connection is
        // fixed: the attack first, then other clients' gets. If memcached
        // runs the two smuggled gets, their replies answer those clients.
        signal(&m, libc::SIGSTOP);
        let attackers: Vec<TcpStream> = (0..8)
            .map(|_| {
                let mut s = TcpStream::connect(("127.0.0.1", px.port())).unwrap();
                let _ = s.write_all(b"set x 0 10000000000000000000 22 noreply\r\nget secret\r\nget secret\r\n");
                s
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let victims: Vec<(TcpStream, &String)> = late
            .iter()
            .map(|k| {
                let mut s = TcpStream::connect(("127.0.0.1", px.port())).unwrap();
                s.write_all(format!("get {k}\r\n").as_bytes()).unwrap();
                (s, k)
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        signal(&m, libc::SIGCONT);
        for (mut s, k) in victims {
            let want = format!("VALUE {k} 0 4\r\nmine\r\nEND\r\n");
            let (got, _) = crate::common::hostile::read_until(&mut s, b"END\r\n", SHORT);
            assert_eq!(String::from_utf8_lossy(&got), want, "{case}: another client's get of {k}");
        }
        drop(attackers);
        v.finish(&case);
        t.assert_healthy(&case);
    }
}

/// `set` lines of `size`-byte values, `noreply`, back to back.
fn noreply_sets(first: usize, n: usize, size: usize) -> Vec<u8> {
    let value = vec![b'x'; size];
    let mut out = Vec::with_capacity(n * (size + 40));
    for i in first..first + n {
        out.extend_from_slice(format!("set flood:{i} 0 0 {size} noreply\r\n").as_bytes());
        out.extend_from_slice(&value);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn signal(p: &Proc, sig: i32) {
    // SAFETY: kill(2) on a child this test started.
    unsafe {
        libc::kill(p.pid() as i32, sig);
    }
}

#[test]
fn d6_memcache_noreply_flood_to_a_stopped_server() {
    // 300 MiB pushed; the default client_queue_limit is 16 MiB, so Puerta
    // must stop reading long before this bound.
    const FLOOD: usize = 300 << 20;
    const RSS_MIB: u64 = 200;
    let m = memcached();
    for io in drivers() {
        let case = format!("d6 300 MiB of noreply sets to a stopped memcached ({io})");
        let px = start(&[m.port], "", io);
        let probe = mc_probe("hostile:probe");
        let t = target(&px, &probe, RSS_MIB);
        let before = crate::common::hostile::rss_mib(px.proc.pid()).unwrap();
        signal(&m, libc::SIGSTOP);
        let mut s = TcpStream::connect(("127.0.0.1", px.port())).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
        let (mut sent, mut peak) = (0usize, before);
        let chunk_sets = 16;
        let started = Instant::now();
        while sent < FLOOD && started.elapsed() < Duration::from_secs(60) {
            let batch = noreply_sets(sent / 65536, chunk_sets, 65536);
            // A write that blocks for 2 s: Puerta stopped reading. Good.
            if s.write_all(&batch).is_err() {
                break;
            }
            sent += batch.len();
            peak = peak.max(crate::common::hostile::rss_mib(px.proc.pid()).unwrap_or(u64::MAX));
        }
        std::thread::sleep(Duration::from_millis(300));
        peak = peak.max(crate::common::hostile::rss_mib(px.proc.pid()).unwrap_or(u64::MAX));
        drop(s);
        signal(&m, libc::SIGCONT);
        assert!(peak < RSS_MIB, "{case}: RSS went from {before} to {peak} MiB after {} MiB were sent", sent >> 20);
        let v = Victim::start(px.port(), Proto::Memcache, &numbered("d6v", 24), 6);
        v.finish(&case);
        t.assert_healthy(&case);
    }
}

#[test]
fn d6_memcache_noreply_to_a_server_that_never_answers_times_out() {
    let m = memcached();
    for io in drivers() {
        let case = format!("d6 noreply sets to a stopped memcached, timeout 300 ms ({io})");
        let px = start(&[m.port], "timeout = 300\n", io);
        let probe = mc_probe("hostile:probe");
        let t = target(&px, &probe, RSS_SMALL_MIB);
        let count = || {
            let st = px.stats();
            let field = |f: &str| st["alpha"]["s0"][f].as_u64().unwrap_or_else(|| panic!("no alpha.s0.{f} in {st}"));
            field("server_timedout") + field("server_err")
        };
        let was = count();
        signal(&m, libc::SIGSTOP);
        // More than the kernel's socket buffers take (a few MiB with the
        // server not reading), so Puerta holds noreply sets it cannot
        // write: those must time out even though no reply is owed.
        let port = px.port();
        let writer = std::thread::spawn(move || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
            let _ = s.write_all(&noreply_sets(0, 384, 65536));
        });
        let timed_out = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(100));
            count() > was
        });
        signal(&m, libc::SIGCONT);
        writer.join().unwrap();
        assert!(timed_out, "{case}: nothing timed out (server_timedout + server_err unchanged)");
        let v = Victim::start(px.port(), Proto::Memcache, &numbered("d6t", 24), 6);
        v.finish(&case);
        t.assert_healthy(&case);
    }
}
