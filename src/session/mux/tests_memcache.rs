//! memcached commands a pool handles as a whole: `stats` answered locally
//! and `flush_all`, refused (`allow_flush = false`) or sent to every
//! server with the replies merged.

use std::sync::Arc;

use super::tests::{b, route, H};
use super::*;

fn memcache(allow_flush: bool, unsupported: Unsupported) -> H {
    let mut cfg = MuxConfig::new(Protocol::Memcache, 3);
    cfg.allow_flush = allow_flush;
    cfg.unsupported = unsupported;
    H::new(cfg)
}

#[test]
fn stats_is_answered_locally_in_order() {
    let mut h = memcache(false, Unsupported::Close);
    h.s.set_local_stats(Arc::new(|| vec![("pid", "7".to_owned()), ("threads", "2".to_owned())]));
    let c = h.s.add_client();
    h.send(c, b"get a\r\nstats\r\n");
    h.intents();
    assert_eq!(h.take_backend(b(0)), b"get a\r\n", "only the get goes out");
    assert!(h.take_client(c).is_empty(), "stats waits behind the get");
    h.reply(b(0), b"END\r\n");
    assert_eq!(h.take_client(c), b"END\r\nSTAT pid 7\r\nSTAT threads 2\r\nEND\r\n");
    assert!(h.intents().is_empty(), "connection kept");
}

#[test]
fn refused_flush_says_why_then_closes_as_nutcracker_does() {
    let refused = b"SERVER_ERROR flush_all is refused by this Puerta pool (allow_flush = false)\r\n";
    let mut h = memcache(false, Unsupported::Close);
    let c = h.s.add_client();
    h.send(c, b"flush_all\r\nget a\r\n");
    assert_eq!(h.take_client(c), refused);
    assert_eq!(h.intents(), [MuxIntent::CloseClient(c, ClientClose::Unsupported)], "nothing forwarded");

    let mut h = memcache(false, Unsupported::Error);
    let c = h.s.add_client();
    h.send(c, b"flush_all noreply\r\n");
    assert_eq!(h.take_client(c), refused, "refused even with noreply: nothing was flushed");
    assert!(h.intents().is_empty(), "connection kept with unsupported = error");
}

#[test]
fn allowed_flush_goes_to_every_server_and_merges() {
    let mut h = memcache(true, Unsupported::Close);
    let c = h.s.add_client();
    h.send(c, b"flush_all 5\r\n");
    h.intents();
    for s in 0..3 {
        assert_eq!(h.take_backend(b(s)), b"flush_all 5\r\n", "server {s}");
    }
    h.reply(b(2), b"OK\r\n");
    h.reply(b(0), b"OK\r\n");
    assert!(h.take_client(c).is_empty(), "waits for every server");
    h.reply(b(1), b"OK\r\n");
    assert_eq!(h.take_client(c), b"OK\r\n");

    // The first error in server order answers.
    h.send(c, b"flush_all\r\n");
    for s in 0..3 {
        h.take_backend(b(s));
    }
    h.reply(b(0), b"OK\r\n");
    h.reply(b(2), b"SERVER_ERROR out of memory\r\n");
    h.reply(b(1), b"ERROR\r\n");
    assert_eq!(h.take_client(c), b"ERROR\r\n");

    // noreply: every server gets it, the client nothing.
    h.send(c, b"flush_all noreply\r\n");
    for s in 0..3 {
        assert_eq!(h.take_backend(b(s)), b"flush_all noreply\r\n");
    }
    assert!(h.take_client(c).is_empty());
}

#[test]
fn a_flush_part_stays_on_its_server_when_its_connection_dies_unsent() {
    let mut h = memcache(true, Unsupported::Close);
    let c = h.s.add_client();
    h.send(c, b"flush_all\r\n");
    h.intents();
    h.take_backend(b(0));
    h.take_backend(b(2));
    // Server 1's connection dies before its part was written: the part is
    // queued again for server 1, not for whatever the empty key routes to.
    h.s.handle_backend_closed(b(1), None, h.now, &route);
    assert!(h.intents().contains(&MuxIntent::Connect(b(1))));
    assert_eq!(h.take_backend(b(1)), b"flush_all\r\n");
    assert!(h.take_backend(b(0)).is_empty(), "server 0 is not flushed twice");
    for s in 0..3 {
        h.reply(b(s), b"OK\r\n");
    }
    assert_eq!(h.take_client(c), b"OK\r\n");
}
