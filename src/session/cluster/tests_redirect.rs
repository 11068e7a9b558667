//! The redirect and retry state machine with simulated time: MOVED,
//! ASK, TRYAGAIN / CLUSTERDOWN / LOADING backoff, redirect limits, node
//! failures and timeouts, and whole-batch redirects of transactions.

use std::time::Duration;

use super::tests::{addr, cmd, key_on, map3, H};
use crate::protocol::cluster::ASKING;
use crate::route::{keyslot, ClusterReport};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn moved_resends_at_once_patches_the_slot_and_reports_once() {
    let mut h = H::default3();
    let c = h.client();
    let k = key_on(1, 0);
    let slot = keyslot(k.as_bytes());
    h.send(c, &["GET", &k]);
    assert_eq!(h.written_to(1), cmd(&["GET", &k]));
    h.reply_to(1, format!("-MOVED {slot} 127.0.0.1:2\r\n").as_bytes());
    assert_eq!(h.written_to(2), cmd(&["GET", &k]), "re-sent at once, before any timer");
    assert_eq!(h.reports, [ClusterReport::Moved { slot, addr: addr(2) }]);
    h.reply_to(2, b"$1\r\nv\r\n");
    assert_eq!(h.take_str(c), "$1\r\nv\r\n", "the client never sees MOVED");

    // The slot is patched core-locally: the next request goes to node 2.
    h.send(c, &["SET", &k, "w"]);
    assert!(h.written_to(1).is_empty());
    assert_eq!(h.written_to(2), cmd(&["SET", &k, "w"]));
    // Another MOVED for the same slot (another client) is not reported again.
    h.reply_to(2, format!("-MOVED {slot} 127.0.0.1:3\r\n").as_bytes());
    assert_eq!(h.written_to(3), cmd(&["SET", &k, "w"]));
    assert_eq!(h.reports.len(), 1, "one report per slot per topology: the refresh learns the rest");
    h.reply_to(3, b"+OK\r\n");
    h.reply_to(3, b"");
    assert_eq!(h.take_str(c), "+OK\r\n");
    assert_eq!(h.s.stats().moved, 2);

    // A new snapshot replaces the override.
    h.s.handle_topology(map3(true));
    h.send(c, &["GET", &k]);
    assert_eq!(h.written_to(1), cmd(&["GET", &k]), "back on the snapshot's map");
}

#[test]
fn ask_sends_asking_and_the_request_on_one_connection_without_touching_the_map() {
    let mut h = H::default3();
    let c = h.client();
    let k = key_on(1, 0);
    let slot = keyslot(k.as_bytes());
    h.send(c, &["GET", &k]);
    h.written_to(1);
    h.reply_to(1, format!("-ASK {slot} 127.0.0.1:3\r\n").as_bytes());
    let mut want = ASKING.to_vec();
    want.extend(cmd(&["GET", &k]));
    assert_eq!(h.written_to(3), want, "ASKING then the request, contiguous, on node 3's connection");
    h.reply_to(3, b"+OK\r\n$1\r\nm\r\n");
    assert_eq!(h.take_str(c), "$1\r\nm\r\n", "ASKING's +OK is consumed");
    assert!(h.reports.is_empty(), "ASK is not a topology change");
    h.send(c, &["GET", &k]);
    assert_eq!(h.written_to(1), cmd(&["GET", &k]), "the map is unchanged: node 1 again");
    assert_eq!(h.s.stats().ask, 1);
}

#[test]
fn redirects_past_the_limit_reach_the_client() {
    let mut cfg = H::cfg();
    cfg.max_redirects = 2;
    let mut h = H::new(cfg, map3(true));
    let c = h.client();
    let k = key_on(1, 0);
    let slot = keyslot(k.as_bytes());
    h.send(c, &["GET", &k]);
    for to in [2, 1, 2] {
        let from = if to == 2 { 1 } else { 2 };
        h.written_to(from);
        h.reply_to(from, format!("-MOVED {slot} 127.0.0.1:{to}\r\n").as_bytes());
    }
    assert_eq!(h.take_str(c), format!("-MOVED {slot} 127.0.0.1:2\r\n"), "the third MOVED is the node's error");
}

#[test]
fn tryagain_clusterdown_and_loading_retry_with_doubling_backoff_then_fail() {
    let mut cfg = H::cfg();
    cfg.max_retries = 3;
    cfg.retry_backoff = ms(10);
    let mut h = H::new(cfg, map3(true));
    let c = h.client();
    let k = key_on(2, 0);
    h.send(c, &["MGET", &k, &format!("{{{k}}}2")]);
    let req = h.written_to(2);
    let mut waits = Vec::new();
    for err in [
        "-TRYAGAIN Multiple keys request during rehashing of slot",
        "-CLUSTERDOWN The cluster is down",
        "-LOADING Redis is loading",
    ] {
        h.reply_to(2, format!("{err}\r\n").as_bytes());
        let mut waited = 0;
        loop {
            assert!(h.take(c).is_empty(), "no error while retries remain");
            if !h.written_to(2).is_empty() {
                break;
            }
            h.advance(ms(1));
            waited += 1;
        }
        waits.push(waited);
    }
    assert_eq!(waits, [10, 20, 40], "10ms, then doubling");
    h.reply_to(2, b"-TRYAGAIN again\r\n");
    assert_eq!(h.take_str(c), "-TRYAGAIN again\r\n", "retries spent: the node's error as sent");
    assert_eq!(h.s.stats().retried, 3);
    let _ = req;
}

#[test]
fn a_dead_node_fails_only_what_was_written_to_it() {
    let mut h = H::default3();
    let (c, d) = (h.client(), h.client());
    let k = key_on(1, 0);
    h.send(c, &["INCR", &k]);
    let b = h.conn(1);
    assert_eq!(h.written(b), cmd(&["INCR", &k]), "written: it may have run");
    h.send(d, &["GET", &k]);
    // d's GET is queued on the connection but not written yet when it dies.
    h.s.handle_backend_closed(b, Some(libc::ECONNRESET), h.now);
    h.pump();
    assert_eq!(h.take_str(c), "-ERR Connection reset by peer\r\n");
    assert_eq!(h.reports, [ClusterReport::NodeFailed { addr: addr(1) }]);
    assert!(h.take(d).is_empty(), "the unwritten GET is retried, not failed");
    h.advance(ms(50));
    assert_eq!(h.written_to(1), cmd(&["GET", &k]), "on a new connection");
    h.reply_to(1, b"$1\r\n1\r\n");
    assert_eq!(h.take_str(d), "$1\r\n1\r\n");
}

#[test]
fn refused_connects_back_off_then_give_a_clear_error() {
    let mut cfg = H::cfg();
    cfg.max_retries = 2;
    cfg.retry_backoff = ms(10);
    let mut h = H::new(cfg, map3(true));
    h.hold_connects = true;
    let c = h.client();
    h.send(c, &["GET", &key_on(3, 0)]);
    let (mut connects, mut got) = (Vec::new(), String::new());
    let start = h.now;
    for _ in 0..200 {
        for b in h.conns_to(3) {
            h.s.handle_backend_connect_failed(b, libc::ECONNREFUSED, h.now);
            h.closed.push(b);
            connects.push((h.now - start).as_millis());
        }
        h.pump();
        got = h.take_str(c);
        if !got.is_empty() {
            break;
        }
        h.advance(ms(5));
    }
    assert_eq!(connects, [0, 10, 30], "the first try and two retries, backing off");
    assert_eq!(got, "-ERR Connection refused\r\n");
    assert_eq!(h.reports.len(), 1, "reported once per topology");
    let c2 = h.client();
    h.send(c2, &["GET", &key_on(3, 1)]);
    assert!(h.conns_to(3).is_empty(), "a node that refused is not reconnected during its backoff");
}

#[test]
fn a_request_that_times_out_gets_an_error_and_its_connection_closes() {
    let mut cfg = H::cfg();
    cfg.request_timeout = Some(ms(100));
    let mut h = H::new(cfg, map3(true));
    let c = h.client();
    h.send(c, &["GET", &key_on(2, 0)]);
    let b = h.conn(2);
    h.written(b);
    h.advance(ms(99));
    assert!(h.take(c).is_empty());
    assert_eq!(h.s.next_deadline(), Some(h.now + ms(1)));
    h.advance(ms(1));
    assert_eq!(h.take_str(c), "-ERR Connection timed out\r\n");
    assert!(h.closed.contains(&b));
}

#[test]
fn without_a_topology_requests_wait_then_get_clusterdown() {
    let mut cfg = H::cfg();
    cfg.max_retries = 1;
    cfg.retry_backoff = ms(10);
    let mut h = H::new(cfg, std::sync::Arc::new(crate::route::SlotMap::empty()));
    let c = h.client();
    h.send(c, &["GET", "k"]);
    assert!(h.take(c).is_empty());
    // The snapshot arrives before the retry: the request is served.
    h.s.handle_topology(map3(true));
    h.advance(ms(10));
    assert_eq!(h.written_to(super::tests::owner(keyslot(b"k"))), cmd(&["GET", "k"]));
    let mut h2 = H::new(H::cfg(), std::sync::Arc::new(crate::route::SlotMap::empty()));
    let c = h2.client();
    h2.send(c, &["DBSIZE"]);
    assert_eq!(h2.take_str(c), "-CLUSTERDOWN Hash slot not served\r\n");
}

#[test]
fn a_moved_inside_a_transaction_redirects_the_whole_batch() {
    let mut h = H::default3();
    let c = h.client();
    let k = key_on(1, 0);
    let slot = keyslot(k.as_bytes());
    for args in [&["MULTI"][..], &["SET", &k, "1"], &["INCR", &k], &["EXEC"]] {
        h.send(c, args);
    }
    assert_eq!(h.take_str(c), "+OK\r\n+QUEUED\r\n+QUEUED\r\n", "queued locally");
    let batch: Vec<u8> = [cmd(&["MULTI"]), cmd(&["SET", &k, "1"]), cmd(&["INCR", &k]), cmd(&["EXEC"])].concat();
    assert_eq!(h.written_to(1), batch, "one contiguous batch");
    let moved = format!("-MOVED {slot} 127.0.0.1:2\r\n");
    h.reply_to(
        1,
        format!("+OK\r\n{moved}{moved}-EXECABORT Transaction discarded because of previous errors.\r\n").as_bytes(),
    );
    assert_eq!(h.written_to(2), batch, "the whole batch again on the new owner");
    h.reply_to(2, b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n:2\r\n");
    assert_eq!(h.take_str(c), "*2\r\n+OK\r\n:2\r\n");
}

#[test]
fn a_malformed_reply_closes_only_that_node_connection() {
    let mut h = H::default3();
    let (c, d) = (h.client(), h.client());
    let (k1, k2) = (key_on(1, 0), key_on(2, 0));
    h.send(c, &["GET", &k1]);
    h.send(d, &["GET", &k2]);
    let b1 = h.conn(1);
    h.written(b1);
    h.written_to(2);
    h.reply(b1, b"?garbage\r\n");
    assert_eq!(h.take_str(c), "-ERR Protocol error\r\n", "the request on that connection fails");
    assert!(h.closed.contains(&b1));
    h.reply_to(2, b"$2\r\nok\r\n");
    assert_eq!(h.take_str(d), "$2\r\nok\r\n", "another node's clients are untouched");
    // The node is not marked down for a protocol error: the next request
    // reconnects at once.
    h.send(c, &["GET", &k1]);
    assert_eq!(h.written_to(1), cmd(&["GET", &k1]));
}

#[test]
fn redirects_to_an_empty_host_mean_the_answering_nodes_host() {
    let mut h = H::default3();
    let c = h.client();
    let k = key_on(1, 0);
    let slot = keyslot(k.as_bytes());
    h.send(c, &["GET", &k]);
    h.written_to(1);
    h.reply_to(1, format!("-MOVED {slot} :2\r\n").as_bytes());
    assert_eq!(h.written_to(2), cmd(&["GET", &k]), "127.0.0.1:2, the host of the node that answered");
    h.reply_to(2, b"$1\r\nv\r\n");
    assert_eq!(h.take_str(c), "$1\r\nv\r\n");
}

#[test]
fn a_later_request_never_overtakes_an_earlier_one_whose_slot_moved() {
    // Client y's MOVED patches the slot while x's SET is still in flight
    // to the old owner: x's GET of the same key must wait for the SET,
    // or node 2 would run it first and answer the old value.
    let mut h = H::default3();
    let (x, y) = (h.client(), h.client());
    let k = key_on(1, 0);
    let slot = keyslot(k.as_bytes());
    h.send(y, &["GET", &k]);
    h.send(x, &["SET", &k, "v1"]);
    let mut both = cmd(&["GET", &k]);
    both.extend(cmd(&["SET", &k, "v1"]));
    assert_eq!(h.written_to(1), both);
    h.reply_to(1, format!("-MOVED {slot} 127.0.0.1:2\r\n").as_bytes());
    assert_eq!(h.written_to(2), cmd(&["GET", &k]), "y's GET follows the slot");
    h.send(x, &["GET", &k]);
    assert!(h.written_to(2).is_empty(), "x's GET waits: x's SET has not run anywhere yet");
    h.reply_to(1, format!("-MOVED {slot} 127.0.0.1:2\r\n").as_bytes());
    assert_eq!(h.written_to(2), cmd(&["SET", &k, "v1"]), "the SET goes first");
    h.reply_to(2, b"$-1\r\n+OK\r\n");
    assert_eq!(h.written_to(2), cmd(&["GET", &k]), "then the GET, once the SET is answered");
    h.reply_to(2, b"$2\r\nv1\r\n");
    assert_eq!(h.take_str(x), "+OK\r\n$2\r\nv1\r\n");
    assert_eq!(h.take_str(y), "$-1\r\n");

    // With nothing of the slot in flight, requests go straight out again.
    h.send(x, &["GET", &k]);
    assert_eq!(h.written_to(2), cmd(&["GET", &k]));
}

#[test]
fn a_later_request_waits_for_an_earlier_one_parked_for_retry() {
    let mut h = H::default3();
    let c = h.client();
    let k = key_on(1, 0);
    h.send(c, &["SET", &k, "v1"]);
    h.written_to(1);
    h.reply_to(1, b"-CLUSTERDOWN The cluster is down\r\n");
    h.send(c, &["GET", &k]);
    assert!(h.written_to(1).is_empty(), "the GET waits for the SET's retry");
    h.advance(ms(1000));
    assert_eq!(h.written_to(1), cmd(&["SET", &k, "v1"]), "retried");
    h.reply_to(1, b"+OK\r\n");
    assert_eq!(h.written_to(1), cmd(&["GET", &k]));
    h.reply_to(1, b"$2\r\nv1\r\n");
    assert_eq!(h.take_str(c), "+OK\r\n$2\r\nv1\r\n");
}

#[test]
fn with_several_connections_per_node_a_client_keeps_to_one() {
    let mut cfg = H::cfg();
    cfg.node_connections = 2;
    let mut h = H::new(cfg, super::tests::map3(true));
    let (x, y) = (h.client(), h.client());
    let k = key_on(1, 0);
    for _ in 0..3 {
        h.send(x, &["SET", &k, "v"]);
        h.send(x, &["GET", &k]);
        h.send(y, &["GET", &k]);
    }
    let conns = h.conns_to(1);
    assert_eq!(conns.len(), 2, "two connections to the node");
    let seen: Vec<Vec<u8>> = conns.iter().map(|&b| h.written(b)).collect();
    let xs = [cmd(&["SET", &k, "v"]), cmd(&["GET", &k])].concat().repeat(3);
    let ys = cmd(&["GET", &k]).repeat(3);
    assert!(seen.contains(&xs), "all of x's pipeline on one connection, in order: {seen:?}");
    assert!(seen.contains(&ys), "y on the other");
}
