//! Failure paths with simulated time: refused connects, reply timeouts, a
//! backend dying mid-pipeline, garbage from a backend.

use std::cell::Cell;
use std::time::Duration;

use super::tests::{b, cmd, route, H};
use super::*;

#[test]
fn refused_connect_errors_every_queued_request() {
    let mut h = H::redis();
    let c = h.s.add_client();
    h.send(c, &cmd(&["GET", "a1"]));
    h.send(c, &cmd(&["GET", "a2"]));
    assert_eq!(h.s.poll_intent(), Some(MuxIntent::Connect(b(0))));
    h.s.handle_backend_connect_failed(b(0), libc::ECONNREFUSED, h.now, &route);
    assert_eq!(h.take_client(c), b"-ERR Connection refused\r\n-ERR Connection refused\r\n");
    let intents: Vec<_> = std::iter::from_fn(|| h.s.poll_intent()).collect();
    assert!(intents.contains(&MuxIntent::ServerFailed { server: 0, errno: libc::ECONNREFUSED }));
    assert_eq!(h.s.stats().forward_error, 2);
    // The next request reconnects.
    h.send(c, &cmd(&["GET", "a3"]));
    assert_eq!(h.s.poll_intent(), Some(MuxIntent::Connect(b(0))));
}

#[test]
fn reply_timeout_answers_connection_timed_out() {
    let mut cfg = MuxConfig::new(Protocol::Redis, 3);
    cfg.timeout = Some(Duration::from_millis(400));
    let mut h = H::new(cfg);
    let (c, other) = (h.s.add_client(), h.s.add_client());
    h.send(c, &cmd(&["GET", "a"]));
    h.send(other, &cmd(&["GET", "b"]));
    h.intents();
    h.take_backend(b(0));
    h.take_backend(b(1));
    h.reply(b(1), b":1\r\n");
    h.s.handle_tick(h.now + Duration::from_millis(399), &route);
    assert!(h.take_client(c).is_empty(), "not yet");
    h.s.handle_tick(h.now + Duration::from_millis(400), &route);
    assert_eq!(h.take_client(c), b"-ERR Connection timed out\r\n");
    assert_eq!(h.take_client(other), b":1\r\n", "the other server was unaffected");
    assert!(h.intents().contains(&MuxIntent::CloseBackend(b(0), BackendClose::TimedOut)));
    assert_eq!(h.s.stats().servers[0].server_timedout, 1);
    assert_eq!(h.s.next_deadline(), None);
}

#[test]
fn memcache_timeout_is_server_error() {
    let mut cfg = MuxConfig::new(Protocol::Memcache, 3);
    cfg.timeout = Some(Duration::from_millis(10));
    let mut h = H::new(cfg);
    let c = h.s.add_client();
    h.send(c, b"get a\r\n");
    // Never connected: the connect deadline applies too.
    assert_eq!(h.s.poll_intent(), Some(MuxIntent::Connect(b(0))));
    h.s.handle_tick(h.now + Duration::from_millis(10), &route);
    assert_eq!(h.take_client(c), b"SERVER_ERROR Connection timed out\r\n");
}

#[test]
fn backend_death_errors_only_what_was_sent_and_reroutes_the_rest() {
    let mut h = H::redis();
    let c = h.s.add_client();
    h.send(c, &cmd(&["GET", "a1"]));
    h.send(c, &cmd(&["GET", "a2"]));
    h.intents();
    assert_eq!(h.take_backend(b(0)).len(), 2 * cmd(&["GET", "a1"]).len());
    // Queued after the last write: never reached the server.
    h.send(c, &cmd(&["GET", "a3"]));
    // The control thread ejects server 0: keys now go to server 1.
    let ejected = Cell::new(true);
    let ring = |k: &[u8]| if ejected.get() { Some(1) } else { route(k) };
    h.s.handle_backend_closed(b(0), None, h.now, &ring);
    let intents = h.intents();
    assert!(intents.contains(&MuxIntent::CloseBackend(b(0), BackendClose::Other)));
    assert!(intents.contains(&MuxIntent::ServerFailed { server: 0, errno: libc::ECONNRESET }));
    assert!(intents.contains(&MuxIntent::Connect(b(1))), "the unsent request follows the ring");
    assert_eq!(h.take_backend(b(1)), cmd(&["GET", "a3"]));
    h.reply(b(1), b"$2\r\nok\r\n");
    assert_eq!(h.take_client(c), b"-ERR Connection reset by peer\r\n-ERR Connection reset by peer\r\n$2\r\nok\r\n");
    assert_eq!(h.s.stats().servers[0].server_eof, 1);
    // The client connection stays usable.
    h.send(c, &cmd(&["PING"]));
    assert_eq!(h.take_client(c), b"+PONG\r\n");
}

#[test]
fn fan_out_with_one_dead_part_answers_the_error() {
    let mut h = H::redis();
    let c = h.s.add_client();
    h.send(c, &cmd(&["MGET", "a1", "b1"]));
    assert_eq!(h.s.poll_intent(), Some(MuxIntent::Connect(b(0))));
    assert_eq!(h.s.poll_intent(), Some(MuxIntent::Connect(b(1))));
    h.s.handle_backend_connected(b(1));
    h.take_backend(b(1));
    h.reply(b(1), b"*1\r\n$1\r\nx\r\n");
    assert!(h.take_client(c).is_empty());
    h.s.handle_backend_connect_failed(b(0), libc::ECONNREFUSED, h.now, &route);
    assert_eq!(h.take_client(c), b"-ERR Connection refused\r\n");
}

#[test]
fn garbage_from_a_backend_closes_only_that_backend() {
    let mut h = H::redis();
    let c = h.s.add_client();
    h.send(c, &cmd(&["GET", "a"]));
    h.send(c, &cmd(&["GET", "b"]));
    h.intents();
    h.take_backend(b(0));
    h.take_backend(b(1));
    h.reply(b(0), b"?what\r\n");
    h.reply(b(1), b":2\r\n");
    assert_eq!(h.take_client(c), b"-ERR Protocol error\r\n:2\r\n");
    assert!(h.intents().contains(&MuxIntent::CloseBackend(b(0), BackendClose::Other)));
}

#[test]
fn server_connections_spread_requests() {
    let mut cfg = MuxConfig::new(Protocol::Redis, 3);
    cfg.server_connections = 2;
    let mut h = H::new(cfg);
    let c = h.s.add_client();
    h.send(c, &cmd(&["GET", "a1"]));
    h.send(c, &cmd(&["GET", "a2"]));
    let intents = h.intents();
    let conn1 = BackendId { server: 0, conn: 1 };
    assert_eq!(intents, [MuxIntent::Connect(b(0)), MuxIntent::Connect(conn1)]);
    assert_eq!(h.take_backend(b(0)), cmd(&["GET", "a1"]));
    assert_eq!(h.take_backend(conn1), cmd(&["GET", "a2"]));
    // The second connection answers first; order still holds.
    h.reply(conn1, b":2\r\n");
    h.reply(b(0), b":1\r\n");
    assert_eq!(h.take_client(c), b":1\r\n:2\r\n");
}

#[test]
fn unsent_requests_are_routed_again_by_the_key_they_were_routed_by() {
    use std::cell::RefCell;
    let seen = RefCell::new(Vec::new());
    // After server 0 dies, "a..." keys go to server 2.
    let ring = |k: &[u8]| {
        seen.borrow_mut().push(String::from_utf8_lossy(k).into_owned());
        Some(if k.first() == Some(&b'a') { 2 } else { route(k).unwrap_or(0) })
    };
    let mut h = H::redis();
    let c = h.s.add_client();
    h.send(c, &cmd(&["GET", "a0"]));
    h.intents();
    h.take_backend(b(0));
    // Queued behind the written GET, never written: a fragment of an
    // MGET, an EVAL and a one-key command.
    h.send(c, &cmd(&["MGET", "b1", "a1"]));
    h.send(c, &cmd(&["EVAL", "return 1", "1", "a2"]));
    h.send(c, &cmd(&["INCR", "a3"]));
    h.intents();
    h.take_backend(b(1));
    h.s.handle_backend_closed(b(0), None, h.now, &ring);
    h.intents();
    assert_eq!(*seen.borrow(), ["a1", "a2", "a3"], "each by its own routing key");
    let want = [cmd(&["MGET", "a1"]), cmd(&["EVAL", "return 1", "1", "a2"]), cmd(&["INCR", "a3"])].concat();
    assert_eq!(h.take_backend(b(2)), want, "in their order");

    let mut h = H::new(MuxConfig::new(Protocol::Memcache, 3));
    let c = h.s.add_client();
    h.send(c, b"version\r\nget b1 a1\r\n");
    h.intents();
    seen.borrow_mut().clear();
    h.s.handle_backend_closed(b(0), None, h.now, &ring);
    h.intents();
    assert_eq!(*seen.borrow(), ["", "a1"]);
    assert_eq!(h.take_backend(b(2)), b"get a1\r\n");
    assert_eq!(h.take_backend(b(0)), b"version\r\n");
}
