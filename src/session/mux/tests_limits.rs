//! The byte bounds of `limits.rs` with a simulated driver and simulated
//! time: reads pause at `client_queue_limit` (noreply included) and
//! resume as bytes drain, noreply requests time out, a partial request is
//! capped, and `client_output_limit` closes at `hard` at once and at
//! `soft` only after `soft_for` (restarting when the client drains) while
//! a client that reads a large reply is never closed.

use std::time::Duration;

use super::tests::{b, cmd, route, H};
use super::*;

/// A memcached `set` of `len` bytes under `key`, noreply.
fn set_noreply(key: &str, len: usize) -> Vec<u8> {
    let mut v = format!("set {key} 0 0 {len} noreply\r\n").into_bytes();
    v.extend(std::iter::repeat_n(b'v', len));
    v.extend_from_slice(b"\r\n");
    v
}

fn memcache(queue_limit: usize) -> H {
    let mut cfg = MuxConfig::new(Protocol::Memcache, 3);
    cfg.client_queue_limit = queue_limit;
    H::new(cfg)
}

#[test]
fn noreply_sets_pause_reads_at_the_queue_limit_and_resume_as_they_are_written() {
    let mut h = memcache(1000);
    let c = h.s.add_client();
    let one = set_noreply("a1", 200);
    let pipe: Vec<u8> = (0..20).flat_map(|_| one.clone()).collect();
    h.send(c, &pipe);
    assert!(!h.s.wants_client_read(c), "past 1000 queued bytes: reads pause");
    h.intents();
    let mut written = Vec::new();
    while let Some(buf) = h.s.poll_backend_transmit(b(0)) {
        // Never more than the limit plus the request that crossed it.
        assert!(buf.len() < 1000 + one.len(), "{} bytes queued at once", buf.len());
        written.extend_from_slice(&buf);
        let n = buf.len();
        h.s.handle_backend_sent(b(0), n, h.now, &route);
    }
    assert_eq!(written, pipe, "every set went out, in order, as writes drained the queue");
    assert!(h.s.wants_client_read(c), "reads resume once the queue drained");
}

#[test]
fn one_request_larger_than_the_queue_limit_is_still_served() {
    let mut h = memcache(100);
    let c = h.s.add_client();
    h.send(c, &set_noreply("a", 500));
    assert!(!h.s.wants_client_read(c));
    h.intents();
    assert_eq!(h.take_backend(b(0)), set_noreply("a", 500));
    assert!(h.s.wants_client_read(c), "written: the queue is empty again");
    let mut cfg = MuxConfig::new(Protocol::Redis, 3);
    cfg.client_queue_limit = 10;
    let mut h = H::new(cfg);
    let c = h.s.add_client();
    h.send(c, &[cmd(&["GET", "a1"]), cmd(&["GET", "a2"])].concat());
    h.intents();
    assert_eq!(h.take_backend(b(0)), cmd(&["GET", "a1"]), "the second waits for the first's reply");
    h.reply(b(0), b":1\r\n");
    assert_eq!(h.take_client(c), b":1\r\n");
    assert_eq!(h.take_backend(b(0)), cmd(&["GET", "a2"]), "decoded again once the reply left");
}

#[test]
fn noreply_to_a_server_that_takes_nothing_times_out_and_counts() {
    let mut cfg = MuxConfig::new(Protocol::Memcache, 3);
    cfg.timeout = Some(Duration::from_millis(100));
    let mut h = H::new(cfg);
    let c = h.s.add_client();
    h.send(c, &set_noreply("a", 10));
    h.intents();
    // Connected, but the server's socket takes nothing (stopped server).
    assert_eq!(h.s.next_deadline(), Some(h.now + Duration::from_millis(100)));
    h.s.handle_tick(h.now + Duration::from_millis(99), &route);
    assert!(h.intents().is_empty());
    h.s.handle_tick(h.now + Duration::from_millis(100), &route);
    let intents = h.intents();
    assert!(intents.contains(&MuxIntent::CloseBackend(b(0), BackendClose::TimedOut)), "{intents:?}");
    assert!(intents.contains(&MuxIntent::ServerFailed { server: 0, errno: libc::ETIMEDOUT }));
    assert_eq!(h.s.stats().servers[0].server_timedout, 1);
    assert!(h.take_client(c).is_empty(), "noreply: nothing to answer");
    assert!(h.s.wants_client_read(c), "the dropped request left the client's queue");
    assert_eq!(h.s.next_deadline(), None);
}

#[test]
fn a_written_noreply_request_has_no_deadline() {
    let mut cfg = MuxConfig::new(Protocol::Memcache, 3);
    cfg.timeout = Some(Duration::from_millis(100));
    let mut h = H::new(cfg);
    let c = h.s.add_client();
    h.send(c, &set_noreply("a", 10));
    h.intents();
    h.take_backend(b(0));
    assert_eq!(h.s.next_deadline(), None);
    // A later request with a reply still gets its own deadline.
    h.send(c, b"get a\r\n");
    h.take_backend(b(0));
    h.s.handle_tick(h.now + Duration::from_millis(100), &route);
    assert_eq!(h.take_client(c), b"SERVER_ERROR Connection timed out\r\n");
}

#[test]
fn noreply_not_yet_written_follows_the_ring_when_its_server_dies() {
    let mut h = memcache(1 << 20);
    let c = h.s.add_client();
    h.send(c, b"get a1\r\n");
    h.intents();
    h.take_backend(b(0));
    h.send(c, &set_noreply("a2", 3));
    h.s.handle_backend_closed(b(0), None, h.now, &|_: &[u8]| Some(1));
    h.intents();
    assert_eq!(h.take_client(c), b"SERVER_ERROR Connection reset by peer\r\n");
    assert_eq!(h.take_backend(b(1)), set_noreply("a2", 3), "never written: sent to the new owner");
}

#[test]
fn a_partial_request_past_max_request_bytes_closes_the_client() {
    let mut cfg = MuxConfig::new(Protocol::Redis, 3);
    cfg.max_request_bytes = 1000;
    let mut h = H::new(cfg);
    let c = h.s.add_client();
    // An inline command with no line end yet: it can never fit.
    let mut line = b"GET ".to_vec();
    line.extend(std::iter::repeat_n(b'a', 1200));
    h.send(c, &line);
    assert_eq!(h.take_client(c), b"-ERR Protocol error: request larger than max_request_bytes (1000)\r\n");
    assert_eq!(h.intents(), [MuxIntent::CloseClient(c, ClientClose::Protocol)]);
}

/// A client of a 3-server redis pool that sent GET a1.. and got nothing
/// back yet; `reply(i, n)` answers the i-th with an `n`-byte value.
fn waiting_client(output: OutputLimit, gets: usize) -> (H, ClientId) {
    let mut cfg = MuxConfig::new(Protocol::Redis, 3);
    cfg.output = output;
    let mut h = H::new(cfg);
    let c = h.s.add_client();
    for i in 0..gets {
        h.send(c, &cmd(&["GET", &format!("a{i}")]));
    }
    h.intents();
    h.take_backend(b(0));
    (h, c)
}

fn value(n: usize) -> Vec<u8> {
    let mut v = format!("${n}\r\n").into_bytes();
    v.extend(std::iter::repeat_n(b'x', n));
    v.extend_from_slice(b"\r\n");
    v
}

fn closed(h: &mut H, c: ClientId) -> bool {
    h.intents().contains(&MuxIntent::CloseClient(c, ClientClose::SlowClient))
}

#[test]
fn hard_output_limit_closes_at_once() {
    let (mut h, c) = waiting_client(OutputLimit { hard: 1000, soft: 0, soft_for: Duration::ZERO }, 2);
    h.reply(b(0), &value(600));
    assert!(!closed(&mut h, c));
    h.reply(b(0), &value(600));
    assert!(closed(&mut h, c));
    assert_eq!(h.s.stats().slow_closed, 1);
    assert_eq!(h.s.buffered_bytes(), 0, "a closed client's bytes leave the total");
}

#[test]
fn soft_output_limit_closes_only_after_soft_for() {
    let lim = OutputLimit { hard: 1 << 20, soft: 1000, soft_for: Duration::from_secs(30) };
    let (mut h, c) = waiting_client(lim, 1);
    h.reply(b(0), &value(1500));
    assert!(!closed(&mut h, c), "past soft: not yet");
    assert_eq!(h.s.next_deadline(), Some(h.now + Duration::from_secs(30)));
    h.s.handle_tick(h.now + Duration::from_secs(29), &route);
    assert!(!closed(&mut h, c));
    h.s.handle_tick(h.now + Duration::from_secs(30), &route);
    assert!(closed(&mut h, c), "30 s past soft without a break");
    assert_eq!(h.s.next_deadline(), None);
}

#[test]
fn soft_timer_restarts_when_the_client_drains_below_soft() {
    let lim = OutputLimit { hard: 1 << 20, soft: 1000, soft_for: Duration::from_secs(30) };
    let (mut h, c) = waiting_client(lim, 2);
    let t0 = h.now;
    h.reply(b(0), &value(1500));
    // At 20 s the client reads 1000 bytes: below soft, the timer stops.
    let n = h.s.poll_client_transmit(c).map(|_| 1000).unwrap_or_default();
    h.s.handle_client_sent(c, n, t0 + Duration::from_secs(20), &route);
    assert_eq!(h.s.next_deadline(), None);
    // At 25 s another reply takes it past soft again: a new timer.
    h.now = t0 + Duration::from_secs(25);
    h.reply(b(0), &value(1000));
    h.s.handle_tick(t0 + Duration::from_secs(35), &route);
    assert!(!closed(&mut h, c), "the first timer would have run out at 30 s");
    h.s.handle_tick(t0 + Duration::from_secs(55), &route);
    assert!(closed(&mut h, c));
}

#[test]
fn a_client_that_reads_gets_an_80_mib_reply_under_the_default_limits() {
    let mut h = H::redis();
    let c = h.s.add_client();
    let keys = ["a1", "b1", "c1", "a2", "b2"];
    let mut mget = vec!["MGET"];
    mget.extend(keys);
    h.send(c, &cmd(&mget));
    h.intents();
    let mb16 = 16 << 20;
    let array = |n: usize| [format!("*{n}\r\n").into_bytes(), value(mb16).repeat(n)].concat();
    for s in 0..3 {
        h.take_backend(b(s));
    }
    h.reply(b(0), &array(2));
    h.reply(b(1), &array(2));
    h.reply(b(2), &array(1));
    let got = h.take_client(c);
    assert_eq!(got.len(), b"*5\r\n".len() + 5 * value(mb16).len(), "the whole reply");
    assert!(h.intents().is_empty(), "not closed");
}

#[test]
fn buffered_clients_name_who_holds_reply_bytes() {
    let (mut h, c) = waiting_client(OutputLimit::DEFAULT, 3);
    assert_eq!(h.s.buffered_bytes(), 0);
    // The second reply arrives first: parked behind the first, it counts.
    h.s.handle_backend_data(b(0), &value(10), h.now, &route);
    assert_eq!(h.s.buffered_bytes(), value(10).len());
    h.reply(b(0), &value(20));
    let held: Vec<_> = h.s.buffered_clients().collect();
    assert_eq!(held, [(c, value(10).len() + value(20).len())]);
    h.take_client(c);
    assert_eq!((h.s.buffered_bytes(), h.s.buffered_clients().count()), (0, 0));
}
