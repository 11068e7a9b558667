//! memcache pools answering `stats` themselves and handling `flush_all`,
//! end to end through the real `puerta` binary under both I/O drivers,
//! over real memcached, with real nutcracker where it has an answer:
//! nutcracker closes the connection at `flush_all`, and Puerta (by
//! default, `allow_flush = false`) says why and closes too; with
//! `allow_flush: true` every server is flushed.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::drivers;
use common::twem::{memcached, Nutcracker, RawMemcache};
use common::twem_puerta::{keys_on, yaml, PuertaTwem};

/// A line-reading memcached client connection.
struct Line {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Line {
    fn connect(port: u16) -> Line {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Line { r: BufReader::new(s.try_clone().unwrap()), w: s }
    }

    fn send(&mut self, req: &str) {
        self.w.write_all(req.as_bytes()).unwrap();
    }

    /// One reply line without its CRLF; `None` at EOF.
    fn line(&mut self) -> Option<String> {
        let mut l = String::new();
        match self.r.read_line(&mut l) {
            Ok(0) => None,
            Ok(_) => Some(l.trim_end_matches("\r\n").to_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
            Err(e) => panic!("read: {e}"),
        }
    }

    /// Whether the peer closed: EOF (or a reset) with nothing more sent.
    fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        match self.r.read_to_end(&mut rest) {
            Ok(_) => rest.is_empty(),
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }

    /// `stats`: the STAT lines as (name, value), up to END.
    fn stats(&mut self) -> Vec<(String, String)> {
        self.send("stats\r\n");
        let mut out = Vec::new();
        loop {
            let l = self.line().expect("stats reply");
            if l == "END" {
                return out;
            }
            let mut f = l.splitn(3, ' ');
            assert_eq!(f.next(), Some("STAT"), "{l}");
            out.push((f.next().unwrap_or_default().to_owned(), f.next().unwrap_or_default().to_owned()));
        }
    }
}

fn stat<'a>(stats: &'a [(String, String)], name: &str) -> &'a str {
    stats.iter().find(|(n, _)| n == name).map_or_else(|| panic!("no STAT {name} in {stats:?}"), |(_, v)| v)
}

#[test]
fn stats_reports_puertas_own_counters() {
    let m = memcached();
    for io in drivers() {
        let p = PuertaTwem::start(&yaml(false, &[m.port], ""), io);
        let mut c = Line::connect(p.port());
        c.send("set k 0 0 2\r\nhi\r\n");
        assert_eq!(c.line().as_deref(), Some("STORED"));
        let _other = Line::connect(p.port());
        let s = c.stats();
        assert_eq!(stat(&s, "pid"), p.proc.pid().to_string(), "{io}: Puerta's pid, not memcached's");
        assert_eq!(stat(&s, "version"), format!("puerta-{}", env!("CARGO_PKG_VERSION")));
        assert_eq!(stat(&s, "pointer_size"), "64");
        assert_eq!(stat(&s, "threads"), "2", "{io}: --workers 2");
        let time: u64 = stat(&s, "time").parse().unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        assert!(time.abs_diff(now) <= 5, "{io}: time {time} vs {now}");
        assert!(stat(&s, "uptime").parse::<u64>().unwrap() < 600);
        // Counters are copied from the workers on their tick: wait for them.
        common::wait_until("connection counters", Duration::from_secs(10), || {
            let s = c.stats();
            let n = |k: &str| stat(&s, k).parse::<u64>().unwrap();
            n("curr_connections") == 2
                && n("total_connections") >= 3
                && n("bytes_read") >= 16
                && n("bytes_written") >= 8
        });
        assert!(s.iter().all(|(n, _)| !n.contains("items") && n != "get_hits"), "only Puerta's own values: {s:?}");
        // The connection stays usable.
        c.send("get k\r\n");
        assert_eq!(c.line().as_deref(), Some("VALUE k 0 2"), "{io}");
        assert_eq!(c.line().as_deref(), Some("hi"));
        assert_eq!(c.line().as_deref(), Some("END"));
    }
}

#[test]
fn flush_all_is_refused_by_default_and_closes_like_nutcracker() {
    let m = memcached();
    let pool = yaml(false, &[m.port], "");
    // nutcracker: no reply, connection closed.
    let nc = Nutcracker::start(&pool);
    let mut c = Line::connect(nc.proc.port);
    c.send("set k 0 0 1\r\nv\r\n");
    assert_eq!(c.line().as_deref(), Some("STORED"));
    c.send("flush_all\r\n");
    assert!(c.closed(), "nutcracker closes at flush_all");
    for io in drivers() {
        let p = PuertaTwem::start(&pool, io);
        let mut c = Line::connect(p.port());
        c.send("flush_all\r\nget k\r\n");
        assert_eq!(
            c.line().as_deref(),
            Some("SERVER_ERROR flush_all is refused by this Puerta pool (allow_flush = false)"),
            "{io}"
        );
        assert!(c.closed(), "{io}: closed after the error, as nutcracker closes");
        // Nothing was flushed.
        assert_eq!(RawMemcache::connect(m.port).present(&[b"k".to_vec()]), [true], "{io}");
    }
}

#[test]
fn allow_flush_flushes_every_server() {
    let (m1, m2) = (memcached(), memcached());
    for io in drivers() {
        let p = PuertaTwem::start(&yaml(false, &[m1.port, m2.port], "  allow_flush: true\n"), io);
        // 20 keys the pool places on each server (`key0`..`key39` would
        // fall in two narrow hash arcs: all on one server for ~half the
        // port pairs).
        let ring = p.ring();
        let keys: Vec<Vec<u8>> = (0..2).flat_map(|s| keys_on(&ring, s, 20)).collect();
        RawMemcache::connect(p.port()).set_all(&keys);
        let on = |port: u16| RawMemcache::connect(port).present(&keys).iter().filter(|&&b| b).count();
        let (n1, n2) = (on(m1.port), on(m2.port));
        assert!(n1 > 0 && n2 > 0 && n1 + n2 == keys.len(), "{io}: keys on both servers ({n1} + {n2})");
        let mut c = Line::connect(p.port());
        c.send("flush_all\r\n");
        assert_eq!(c.line().as_deref(), Some("OK"), "{io}");
        assert_eq!((on(m1.port), on(m2.port)), (0, 0), "{io}: both servers flushed");
        // noreply: flushed, nothing answered, the next reply is the get's.
        RawMemcache::connect(p.port()).set_all(&keys);
        c.send(&format!("flush_all noreply\r\nget {}\r\n", String::from_utf8_lossy(&keys[0])));
        assert_eq!(c.line().as_deref(), Some("END"), "{io}");
        assert_eq!((on(m1.port), on(m2.port)), (0, 0), "{io}: flushed with noreply");
        c.send("flush_all x\r\n");
        assert_eq!(c.line().as_deref(), Some("CLIENT_ERROR bad command line format"), "{io}: memcached's answer");
    }
}

#[test]
fn a_flush_that_fails_on_one_server_answers_its_error() {
    for io in drivers() {
        let (m1, mut m2) = (memcached(), memcached());
        let p = PuertaTwem::start(&yaml(false, &[m1.port, m2.port], "  allow_flush: true\n"), io);
        let mut c = Line::connect(p.port());
        c.send("flush_all\r\n");
        assert_eq!(c.line().as_deref(), Some("OK"), "{io}");
        let _ = m2.child.kill();
        let _ = m2.child.wait();
        c.send("flush_all\r\n");
        let reply = c.line().unwrap_or_default();
        assert!(reply.starts_with("SERVER_ERROR "), "{io}: the down server's error: {reply}");
        assert!(!c.stats().is_empty(), "{io}: connection kept");
    }
}
