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

/// A memcache pool whose one user (from 10.0.0.0/8 or certificate CN
/// "app") has `rules`.
fn with_user(rules: &str) -> H {
    let mut cfg = MuxConfig::new(Protocol::Memcache, 3);
    let mut u = crate::acl::User::from_rules("app", rules).unwrap();
    u.source = vec![crate::acl::IpRange::parse("10.0.0.0/8").unwrap()];
    u.cert.cn = Some("app".into());
    cfg.users = Some(Arc::new(crate::acl::Users::new(vec![Arc::new(u)])));
    H::new(cfg)
}

#[test]
fn users_key_patterns_gate_memcache_requests() {
    let noperm = b"CLIENT_ERROR NOPERM No permissions to access a key\r\n";
    let mut h = with_user("on %R~a* %W~b*");
    let c = h.s.add_client();
    h.s.set_client_source(c, Some("10.1.2.3".parse().unwrap()));
    h.send(c, b"get a1 c1\r\nset a1 0 0 1\r\nx\r\nincr b1 1\r\nset b1 0 0 1 noreply\r\nx\r\nflush_all\r\nversion\r\n");
    h.intents();
    // Only the version (keyless) and the write to b1 go out.
    let sent: Vec<u8> = (0..3).flat_map(|i| h.take_backend(b(i))).collect();
    assert_eq!(String::from_utf8_lossy(&sent), "version\r\nset b1 0 0 1 noreply\r\nx\r\n");
    let got = h.take_client(c);
    let want = [&noperm[..], noperm, noperm, noperm].concat();
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want), "get, set, incr, flush_all refused");

    // A client no user claims: refused at its handshake (certificate).
    let c2 = h.s.add_client();
    let stranger = crate::acl::CertNames { cn: Some("nobody".into()), sans: vec![] };
    h.s.set_client_cert(c2, Some(&stranger));
    assert!(h.intents().contains(&MuxIntent::CloseClient(c2, ClientClose::NoUser)));
    let c3 = h.s.add_client();
    let app = crate::acl::CertNames { cn: Some("app".into()), sans: vec![] };
    h.s.set_client_cert(c3, Some(&app));
    h.send(c3, b"get a2\r\n");
    assert!(h.intents().is_empty(), "the certificate's user is served");
    assert_eq!(h.take_backend(b(0)), b"get a2\r\n");
}
