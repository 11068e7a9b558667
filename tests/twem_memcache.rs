//! memcached pools end to end through the real `puerta` binary, under both
//! I/O drivers, over two real memcached: every command nutcracker supports
//! (checked on the server that owns the key), multi-key get/gets split and
//! merged into one END with the servers' own cas uniques, noreply, version
//! and quit, requests split at every byte boundary, and replies split at
//! every byte boundary (through a relay that writes one byte at a time).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::twem::{dribble, memcached};
use common::twem_puerta::{yaml, PuertaTwem};
use common::{drivers, Proc};
use puerta::route::ShardRing;

fn ring_of(p: &PuertaTwem) -> ShardRing {
    let cfg = puerta::config::load(&p.conf).unwrap_or_else(|e| panic!("{e}"));
    puerta::route::ring::for_pool(&cfg.pools[0], &|_| true).expect("a ring")
}

/// The first `prefix{i}` key the ring puts on `server`.
fn key_on(ring: &ShardRing, server: u32, prefix: &str) -> String {
    (0..).map(|i| format!("{prefix}{i}")).find(|k| ring.pick(k.as_bytes()) == Some(server)).unwrap_or_default()
}

/// A plain connection: writes `req`, then reads exactly `want.len()` bytes.
struct Conn(TcpStream);

impl Conn {
    fn new(port: u16) -> Conn {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        Conn(s)
    }

    fn read_n(&mut self, n: usize) -> String {
        let mut got = vec![0u8; n];
        self.0.read_exact(&mut got).unwrap_or_else(|e| panic!("reading {n} bytes: {e}"));
        String::from_utf8_lossy(&got).into_owned()
    }

    fn talk(&mut self, req: &str, want_len: usize) -> String {
        self.0.write_all(req.as_bytes()).unwrap();
        self.read_n(want_len)
    }

    /// Sends `req` and checks the reply is exactly `want`.
    fn expect(&mut self, req: &str, want: &str, what: &str) {
        assert_eq!(self.talk(req, want.len()), want, "{what}: {req:?}");
    }

    /// One `gets key` on a direct server connection: its cas unique.
    fn cas_of(&mut self, key: &str) -> u64 {
        self.0.write_all(format!("gets {key}\r\n").as_bytes()).unwrap();
        let mut text = String::new();
        while !text.ends_with("END\r\n") {
            let mut b = [0u8; 1];
            self.0.read_exact(&mut b).unwrap();
            text.push(b[0] as char);
        }
        let line = text.lines().next().unwrap_or_default();
        line.split(' ').nth(4).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("gets {key}: {text:?}"))
    }
}

fn flush(backends: &[Proc]) {
    for b in backends {
        Conn::new(b.port).expect("flush_all\r\n", "OK\r\n", "flush");
    }
}

#[test]
fn every_memcache_command_on_the_server_that_owns_the_key() {
    let backends = [memcached(), memcached()];
    let ports: Vec<u16> = backends.iter().map(|b| b.port).collect();
    for io in drivers() {
        flush(&backends);
        let px = PuertaTwem::start(&yaml(false, &ports, ""), io);
        let ring = ring_of(&px);
        let (a, b) = (key_on(&ring, 0, "a"), key_on(&ring, 1, "b"));
        let mut c = Conn::new(px.port());
        let mut direct: Vec<Conn> = ports.iter().map(|&p| Conn::new(p)).collect();
        let io = &io.to_string();

        // Storage commands, each answered by the key's own server.
        c.expect(&format!("set {a} 5 0 3\r\none\r\n"), "STORED\r\n", io);
        c.expect(&format!("add {a} 0 0 1\r\nx\r\n"), "NOT_STORED\r\n", io);
        c.expect(&format!("add {b} 7 0 3\r\ntwo\r\n"), "STORED\r\n", io);
        c.expect(&format!("replace {a} 6 0 3\r\nONE\r\n"), "STORED\r\n", io);
        c.expect("replace nosuch 0 0 1\r\nx\r\n", "NOT_STORED\r\n", io);
        c.expect(&format!("append {a} 0 0 2\r\n-z\r\n"), "STORED\r\n", io);
        c.expect(&format!("prepend {b} 0 0 2\r\na-\r\n"), "STORED\r\n", io);
        let (va, vb) = (format!("VALUE {a} 6 5\r\nONE-z\r\nEND\r\n"), format!("VALUE {b} 7 5\r\na-two\r\nEND\r\n"));
        direct[0].expect(&format!("get {a}\r\n"), &va, "a on server 0");
        direct[1].expect(&format!("get {b}\r\n"), &vb, "b on server 1");
        direct[1].expect(&format!("get {a}\r\n"), "END\r\n", "a not on server 1");
        direct[0].expect(&format!("get {b}\r\n"), "END\r\n", "b not on server 0");

        // Multi-key get and gets: split per server, merged in the client's
        // order into one END; gets carries each server's own cas unique.
        let want = format!("VALUE {b} 7 5\r\na-two\r\nVALUE {a} 6 5\r\nONE-z\r\nEND\r\n");
        c.expect(&format!("get {b} missing {a}\r\n"), &want, io);
        let (ca, cb) = (direct[0].cas_of(&a), direct[1].cas_of(&b));
        let want = format!("VALUE {a} 6 5 {ca}\r\nONE-z\r\nVALUE {b} 7 5 {cb}\r\na-two\r\nEND\r\n");
        c.expect(&format!("gets {a} {b} missing\r\n"), &want, io);

        // cas: the current unique stores, a stale one does not.
        c.expect(&format!("cas {a} 0 0 1 {ca}\r\nA\r\n"), "STORED\r\n", io);
        c.expect(&format!("cas {a} 0 0 1 {ca}\r\nB\r\n"), "EXISTS\r\n", io);
        c.expect("cas nosuch 0 0 1 1\r\nC\r\n", "NOT_FOUND\r\n", io);
        direct[0].expect(&format!("get {a}\r\n"), &format!("VALUE {a} 0 1\r\nA\r\nEND\r\n"), io);

        // incr / decr / touch / delete.
        c.expect(&format!("set {b} 0 0 2\r\n10\r\n"), "STORED\r\n", io);
        c.expect(&format!("incr {b} 5\r\n"), "15\r\n", io);
        c.expect(&format!("decr {b} 100\r\n"), "0\r\n", io);
        c.expect("incr nosuch 1\r\n", "NOT_FOUND\r\n", io);
        c.expect(&format!("touch {a} 100\r\n"), "TOUCHED\r\n", io);
        c.expect("touch nosuch 100\r\n", "NOT_FOUND\r\n", io);
        c.expect(&format!("delete {a}\r\n"), "DELETED\r\n", io);
        c.expect(&format!("delete {a}\r\n"), "NOT_FOUND\r\n", io);
        // memcached writes a shorter decr result in place, space-padded.
        direct[1].expect(&format!("get {b}\r\n"), &format!("VALUE {b} 0 2\r\n0 \r\nEND\r\n"), io);

        // noreply: nothing comes back, and the effects are there.
        let quiet = format!(
            "set {a} 0 0 1 noreply\r\n1\r\nadd {a} 0 0 1 noreply\r\n2\r\nappend {a} 0 0 1 noreply\r\n3\r\n\
             prepend {a} 0 0 1 noreply\r\n0\r\nincr {b} 9 noreply\r\ndecr {b} 2 noreply\r\n\
             replace {b} 0 0 1 noreply\r\n7\r\ntouch {b} 10 noreply\r\ndelete nosuch noreply\r\n"
        );
        let want = format!("VALUE {a} 0 3\r\n013\r\nVALUE {b} 0 1\r\n7\r\nEND\r\n");
        c.expect(&format!("{quiet}get {a} {b}\r\n"), &want, &format!("{io}: noreply"));

        // version (forwarded, nutcracker-style) and quit.
        let v = c.talk("version\r\n", 8);
        assert_eq!(v, "VERSION ", "{io}");
        let mut rest = [0u8; 64];
        let n = c.0.read(&mut rest).unwrap();
        assert!(rest[..n].ends_with(b"\r\n"), "{io}: {:?}", String::from_utf8_lossy(&rest[..n]));
        c.0.write_all(b"quit\r\n").unwrap();
        assert_eq!(c.0.read(&mut rest).unwrap_or(0), 0, "{io}: quit closes without a reply");
    }
}

#[test]
fn memcache_requests_and_replies_split_at_every_byte_boundary() {
    let backends = [memcached(), memcached()];
    let relays = [dribble(backends[0].port), dribble(backends[1].port)];
    let ports: Vec<u16> = relays.iter().map(|r| r.port).collect();
    for io in drivers() {
        flush(&backends);
        let px = PuertaTwem::start(&yaml(false, &ports, ""), io);
        let ring = ring_of(&px);
        let (a, b) = (key_on(&ring, 0, "a"), key_on(&ring, 1, "b"));
        // Requests one byte per write: data blocks (including one whose
        // bytes spell a command) split everywhere; replies come back one
        // byte per write from each server.
        let req = format!(
            "set {a} 1 0 9\r\nget x y\r\n\r\nset {b} 2 0 3 noreply\r\nabc\r\nget {a} {b}\r\n\
             incr {b} 1\r\ndelete {a}\r\n"
        );
        let want = format!(
            "STORED\r\nVALUE {a} 1 9\r\nget x y\r\n\r\nVALUE {b} 2 3\r\nabc\r\nEND\r\n\
             CLIENT_ERROR cannot increment or decrement non-numeric value\r\nDELETED\r\n"
        );
        let mut c = Conn::new(px.port());
        for byte in req.as_bytes() {
            c.0.write_all(std::slice::from_ref(byte)).unwrap();
            std::thread::sleep(Duration::from_micros(300));
        }
        assert_eq!(c.read_n(want.len()), want, "{io}");
        Conn::new(backends[1].port).expect(&format!("get {b}\r\n"), &format!("VALUE {b} 2 3\r\nabc\r\nEND\r\n"), io);
    }
}
