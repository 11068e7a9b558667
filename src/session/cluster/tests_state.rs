//! Stateful commands with a simulated driver: MULTI/EXEC batches, WATCH
//! on a pinned connection from the pool, blocking commands, pub/sub relay,
//! and the pinned connection limit.

use super::tests::{cmd, key_on, H};
use super::{BackendId, ClusterIntent};
use crate::session::mux::BackendClose;

#[test]
fn multi_exec_is_one_contiguous_batch_and_crossslot_aborts() {
    let mut h = H::default3();
    let c = h.client();
    let k = key_on(2, 0);
    for args in [&["MULTI"][..], &["SET", &k, "v"], &["GET", &k], &["EXEC"]] {
        h.send(c, args);
    }
    let batch: Vec<u8> = [cmd(&["MULTI"]), cmd(&["SET", &k, "v"]), cmd(&["GET", &k]), cmd(&["EXEC"])].concat();
    assert_eq!(h.written_to(2), batch);
    h.reply_to(2, b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n$1\r\nv\r\n");
    assert_eq!(h.take_str(c), "+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n$1\r\nv\r\n");

    for args in [&["MULTI"][..], &["SET", &k, "v"], &["SET", &key_on(1, 0), "w"], &["EXEC"], &["EXEC"], &["DISCARD"]] {
        h.send(c, args);
    }
    assert_eq!(
        h.take_str(c),
        "+OK\r\n+QUEUED\r\n-CROSSSLOT Keys in request don't hash to the same slot\r\n\
         -EXECABORT Transaction discarded because of previous errors.\r\n\
         -ERR EXEC without MULTI\r\n-ERR DISCARD without MULTI\r\n"
    );
    assert!(h.written_to(1).is_empty() && h.written_to(2).is_empty(), "nothing of an aborted MULTI is sent");
    h.send(c, &["MULTI"]);
    h.send(c, &["MULTI"]);
    h.send(c, &["DISCARD"]);
    assert_eq!(h.take_str(c), "+OK\r\n-ERR MULTI calls can not be nested\r\n+OK\r\n");
}

#[test]
fn watch_pins_a_pooled_connection_that_is_reused_after_exec() {
    let mut h = H::default3();
    let c = h.client();
    let k = key_on(3, 0);
    h.send(c, &["GET", &k]);
    h.written_to(3);
    h.reply_to(3, b"$1\r\n1\r\n");
    assert_eq!(h.conns_to(3).len(), 1);
    let shared = h.conn(3);
    h.send(c, &["WATCH", &k]);
    let conns = h.conns_to(3);
    assert_eq!(conns.len(), 2, "WATCH opens a pinned connection");
    let pinned = conns[1];
    assert_eq!(h.written(pinned), cmd(&["WATCH", &k]));
    h.reply(pinned, b"+OK\r\n");
    for args in [&["MULTI"][..], &["INCR", &k], &["EXEC"]] {
        h.send(c, args);
    }
    assert!(h.written(shared).is_empty(), "the batch runs on the WATCH connection");
    assert_eq!(h.written(pinned), [cmd(&["MULTI"]), cmd(&["INCR", &k]), cmd(&["EXEC"])].concat());
    h.reply(pinned, b"+OK\r\n+QUEUED\r\n*1\r\n:2\r\n");
    assert_eq!(h.take_str(c), "$1\r\n1\r\n+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n:2\r\n");
    // The pinned connection went back to the pool: another client's WATCH
    // takes it without connecting.
    let d = h.client();
    h.send(d, &["WATCH", &k]);
    assert_eq!(h.conns_to(3).len(), 2, "no new connection");
    assert_eq!(h.written(pinned), cmd(&["WATCH", &k]));
    assert_eq!(h.s.stats().pinned_reused, 1);
    h.reply(pinned, b"+OK\r\n");
    h.send(d, &["WATCH", &key_on(1, 0)]);
    h.send(d, &["UNWATCH"]);
    assert_eq!(h.written(pinned), cmd(&["UNWATCH"]));
    h.reply(pinned, b"+OK\r\n");
    assert_eq!(h.take_str(d), "+OK\r\n-CROSSSLOT Keys in request don't hash to the same slot\r\n+OK\r\n");
}

#[test]
fn a_blocking_command_pins_a_connection_and_holds_the_clients_next_requests() {
    let mut h = H::default3();
    let (c, other) = (h.client(), h.client());
    let q = key_on(1, 0);
    h.send(c, &["BLPOP", &q, "0"]);
    h.send(c, &["GET", &q]);
    let pinned = h.conn(1);
    assert_eq!(h.written(pinned), cmd(&["BLPOP", &q, "0"]), "only the BLPOP: the GET waits, as on Redis");
    assert!(!h.s.wants_client_read(c));
    // Other clients are not held up: a shared connection serves them.
    h.send(other, &["LPUSH", &q, "x"]);
    let conns = h.conns_to(1);
    assert_eq!(conns.len(), 2);
    assert_eq!(h.written(conns[1]), cmd(&["LPUSH", &q, "x"]));
    h.reply(conns[1], b":1\r\n");
    assert_eq!(h.take_str(other), ":1\r\n");
    assert_eq!(h.s.next_deadline(), None, "a blocking command has no deadline");
    h.reply(pinned, b"*2\r\n$1\r\nq\r\n$1\r\nx\r\n");
    assert_eq!(h.written(conns[1]), cmd(&["GET", &q]), "after BLPOP returned, the GET goes out");
    h.reply(conns[1], b"$-1\r\n");
    assert_eq!(h.take_str(c), "*2\r\n$1\r\nq\r\n$1\r\nx\r\n$-1\r\n");
    assert!(h.s.wants_client_read(c));
    // Closing a client while it blocks closes its pinned connection.
    h.send(c, &["BRPOP", &q, "0"]);
    h.written(pinned);
    h.s.close_client(c, crate::session::mux::ClientClose::Eof);
    assert!(h.pump().contains(&ClusterIntent::CloseBackend(pinned, BackendClose::Other)));
}

#[test]
fn subscribe_relays_until_the_last_unsubscribe() {
    let mut h = H::default3();
    let c = h.client();
    let ch = "news";
    let port = super::tests::owner(crate::route::keyslot(ch.as_bytes()));
    h.send(c, &["SUBSCRIBE", ch]);
    let pinned = h.conn(port);
    assert_eq!(h.written(pinned), cmd(&["SUBSCRIBE", ch]));
    h.reply(pinned, b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n");
    h.reply(pinned, b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n");
    assert_eq!(
        h.take_str(c),
        "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
    );
    h.send(c, &["PING"]);
    assert_eq!(h.written(pinned), cmd(&["PING"]), "in pub/sub, PING is the node's");
    h.reply(pinned, b"*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    h.send(c, &["UNSUBSCRIBE"]);
    h.written(pinned);
    h.reply(pinned, b"*3\r\n$11\r\nunsubscribe\r\n$4\r\nnews\r\n:0\r\n");
    assert!(h.take_str(c).ends_with("*3\r\n$11\r\nunsubscribe\r\n$4\r\nnews\r\n:0\r\n"));
    // Out of pub/sub: normal routing again, and the connection is pooled.
    let k = key_on(port, 0);
    h.send(c, &["GET", &k]);
    let w = h.written(pinned);
    assert!(w.is_empty(), "{:?}", String::from_utf8_lossy(&w));
    assert_eq!(h.conns_to(port).len(), 2, "a shared connection for the GET");
    h.send(c, &["UNSUBSCRIBE", "a"]);
    h.reply(h.conns_to(port)[1], b"$-1\r\n");
    assert_eq!(h.take_str(c), "$-1\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:0\r\n");
}

#[test]
fn subscribe_waits_for_earlier_replies() {
    let mut h = H::default3();
    let c = h.client();
    let k = key_on(1, 0);
    let mut pipe = cmd(&["GET", &k]);
    pipe.extend(cmd(&["SUBSCRIBE", "x"]));
    h.send_raw(c, &pipe);
    assert_eq!(h.conns_to(1).len() + h.conns_to(2).len() + h.conns_to(3).len(), 1, "SUBSCRIBE parked");
    h.reply_to(1, b"$1\r\nv\r\n");
    assert_eq!(h.take_str(c), "$1\r\nv\r\n");
    let total: usize = [1, 2, 3].iter().map(|&p| h.conns_to(p).len()).sum();
    assert_eq!(total, 2, "now the SUBSCRIBE went out on a pinned connection");
}

#[test]
fn the_pinned_connection_limit_is_a_clear_error() {
    let mut cfg = H::cfg();
    cfg.pinned_connections = 1;
    cfg.pinned_idle = 1;
    let mut h = H::new(cfg, super::tests::map3(true));
    let (c, d) = (h.client(), h.client());
    let q = key_on(2, 0);
    h.send(c, &["BLPOP", &q, "0"]);
    h.send(d, &["BLPOP", &q, "0"]);
    assert_eq!(h.take_str(d), "-ERR too many pinned connections to this node (pinned_connections = 1)\r\n");
    assert!(h.s.wants_client_read(d), "the refused client carries on");
}

#[test]
fn a_connection_opened_and_dropped_in_one_event_is_closed_in_the_same_drain() {
    // Found by fuzz/cluster_session: DBSIZE and a parked SUBSCRIBE, both
    // nodes dying and reconnecting, RESET; the last clean close resumes
    // the SUBSCRIBE (a pinned connect) and the RESET behind it drops the
    // pin again, all in one event.
    use crate::route::slotmap::{NodeSpec, ShardSpec};
    use std::time::Duration;
    let n = |p: u16| NodeSpec {
        id: String::new(),
        addr: ([127, 0, 0, 1], p).into(),
        endpoint: format!("127.0.0.1:{p}"),
        healthy: p != 6,
        hostname: None,
    };
    let map = std::sync::Arc::new(crate::route::SlotMap::build(vec![
        ShardSpec { ranges: vec![(0, 5000)], master: n(1), replicas: vec![n(4)] },
        ShardSpec { ranges: vec![(5001, 16383)], master: n(2), replicas: vec![n(5), n(6)] },
    ]));
    let mut cfg = H::cfg();
    cfg.request_timeout = Some(Duration::from_millis(50));
    cfg.output = crate::session::mux::OutputLimit::hard(512);
    cfg.max_pending_per_client = 8;
    cfg.max_retries = 2;
    cfg.retry_backoff = Duration::from_millis(5);
    cfg.pinned_connections = 2;
    let mut h = H::new(cfg, map);
    h.hold_connects = true;
    let c = h.client();
    h.send(c, &["DBSIZE"]);
    h.send(c, &["SUBSCRIBE", "c"]);
    let (b0, b1) = (h.conns[0].0, h.conns[1].0);
    h.s.handle_backend_closed(b1, Some(104), h.now);
    h.pump();
    h.s.handle_backend_closed(b0, Some(104), h.now);
    h.pump();
    for _ in 0..3 {
        h.advance(Duration::from_millis(117));
    }
    h.send(c, &["RESET"]);
    let open: Vec<BackendId> = h.conns_to(1).into_iter().chain(h.conns_to(2)).collect();
    for b in open.iter().rev() {
        h.s.handle_backend_closed(*b, None, h.now);
        h.pump();
    }
    let vanished: Vec<BackendId> = h.conns.iter().filter(|(_, port)| *port == 0).map(|(b, _)| *b).collect();
    assert!(!vanished.is_empty(), "the sequence opens and drops a pin in one event: {:?}", h.conns);
    assert!(vanished.iter().all(|b| h.closed.contains(b)), "each is closed in the same drain: {:?}", h.closed);
    assert!(h.s.backend_addr(vanished[0]).is_none());
    let out = h.take_str(c);
    assert!(out.starts_with("-ERR Connection reset by peer\r\n"), "DBSIZE lost its node: {out:?}");
    assert!(out.ends_with("+RESET\r\n"), "RESET is answered and the client stays usable: {out:?}");
}
