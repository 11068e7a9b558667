//! Redirect trust and node pruning with simulated time (DESIGN §5): a
//! MOVED or ASK naming an address the topology does not list connects
//! nowhere and sends nothing; a script's redirect moves that request only;
//! nodes that leave the topology are forgotten once their connections
//! close, and no connection (so no AUTH) ever goes to a node outside the
//! current view.

use std::sync::Arc;
use std::time::Duration;

use super::tests::{addr, cmd, key_on, map3, H};
use super::ClusterSessionConfig;
use crate::protocol::cluster::ASKING;
use crate::route::slotmap::{NodeSpec, ShardSpec};
use crate::route::{keyslot, ClusterReport, SlotMap};

const FORGED: u16 = 26666;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn node(port: u16) -> NodeSpec {
    NodeSpec {
        id: format!("id{port}"),
        addr: addr(port),
        endpoint: addr(port).to_string(),
        healthy: true,
        hostname: None,
    }
}

/// Masters at `ports`, the slots split evenly in that order, no replicas.
fn masters(ports: &[u16]) -> Arc<SlotMap> {
    let per = 16384 / ports.len();
    let shards = ports
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            let end = if i + 1 == ports.len() { 16383 } else { (i + 1) * per - 1 };
            ShardSpec { ranges: vec![((i * per) as u16, end as u16)], master: node(p), replicas: vec![] }
        })
        .collect();
    Arc::new(SlotMap::build(shards))
}

/// A session whose backend connections start with AUTH.
fn with_auth() -> H {
    let mut cfg = H::cfg();
    cfg.backend_auth = Some((None, "backend-pw".into()));
    cfg.max_retries = 2;
    cfg.retry_backoff = ms(10);
    H::new(cfg, map3(true))
}

fn auth() -> Vec<u8> {
    cmd(&["AUTH", "backend-pw"])
}

fn eval_error(text: &str, key: &str) -> Vec<u8> {
    cmd(&["EVAL", &format!("return redis.error_reply('{text}')"), "1", key])
}

/// Advances time until client `c` has a reply; returns it.
fn wait_reply(h: &mut H, c: super::ClientId) -> String {
    for _ in 0..1000 {
        let got = h.take_str(c);
        if !got.is_empty() {
            return got;
        }
        h.advance(ms(5));
    }
    panic!("no reply");
}

#[test]
fn a_forged_script_redirect_to_an_unknown_node_connects_nowhere_and_moves_no_slot() {
    for word in ["MOVED", "ASK"] {
        let mut h = with_auth();
        let (attacker, victim) = (h.client(), h.client());
        let k = key_on(1, 0);
        let slot = keyslot(k.as_bytes());
        h.send(victim, &["GET", &k]);
        assert_eq!(h.written_to(1), [auth(), cmd(&["GET", &k])].concat());
        h.reply_to(1, b"+OK\r\n$1\r\nv\r\n");
        assert_eq!(h.take_str(victim), "$1\r\nv\r\n");

        let forged = format!("{word} {slot} 127.0.0.1:{FORGED}");
        h.send_raw(attacker, &eval_error(&forged, &k));
        assert_eq!(h.written_to(1), eval_error(&forged, &k));
        h.reply_to(1, format!("-{forged}\r\n").as_bytes());
        assert!(
            h.conns.iter().all(|&(_, port)| port != FORGED),
            "{word}: no connection, so no AUTH, to the forged address"
        );
        assert_eq!(h.reports, [ClusterReport::UnknownNode { slot }], "{word}: a refresh is asked for, nothing patched");

        // Another client's request for the slot still goes to its owner.
        h.send(victim, &["GET", &k]);
        assert_eq!(h.written_to(1), cmd(&["GET", &k]), "{word}");
        h.reply_to(1, b"$1\r\nv\r\n");
        assert_eq!(h.take_str(victim), "$1\r\nv\r\n");

        // The attacker waits for a refresh that never names the node, then
        // gets an error; its EVAL was never sent again anywhere.
        let got = wait_reply(&mut h, attacker);
        assert_eq!(
            got,
            format!("-ERR {word} {slot} 127.0.0.1:{FORGED} not followed: not a node of the cluster topology\r\n")
        );
        for p in 1..=6 {
            assert!(h.written_to(p).is_empty(), "{word}: nothing more sent to node {p}");
        }
        assert!(h.conns.iter().all(|&(_, port)| (1..=6).contains(&port)), "{word}: connections only to the view");
    }
}

#[test]
fn a_script_moved_to_a_known_node_moves_that_request_only() {
    let mut h = H::default3();
    let (a, b) = (h.client(), h.client());
    let k = key_on(1, 0);
    let slot = keyslot(k.as_bytes());
    let forged = format!("MOVED {slot} 127.0.0.1:2");
    h.send_raw(a, &eval_error(&forged, &k));
    assert_eq!(h.written_to(1), eval_error(&forged, &k));
    h.reply_to(1, format!("-{forged}\r\n").as_bytes());
    assert_eq!(h.written_to(2), eval_error(&forged, &k), "this one request follows to a node the map knows");
    assert!(h.reports.is_empty(), "a script's redirect is not reported");
    h.send(b, &["GET", &k]);
    assert_eq!(h.written_to(1), cmd(&["GET", &k]), "no override: the slot stays on node 1 for everyone");
    assert!(h.written_to(2).is_empty());
    h.reply_to(2, b":1\r\n");
    h.reply_to(1, b"$1\r\nv\r\n");
    assert_eq!(h.take_str(a), ":1\r\n");
    assert_eq!(h.take_str(b), "$1\r\nv\r\n");
    assert_eq!(h.s.stats().moved, 1);

    // A script's ASK to a known node: ASKING + the script, map untouched.
    h.send_raw(a, &eval_error("x", &k));
    h.written_to(1);
    h.reply_to(1, format!("-ASK {slot} 127.0.0.1:3\r\n").as_bytes());
    assert_eq!(h.written_to(3), [ASKING.to_vec(), eval_error("x", &k)].concat());
}

#[test]
fn a_moved_to_an_unknown_node_is_followed_once_a_refresh_names_it() {
    let mut h = with_auth();
    let c = h.client();
    let k = key_on(1, 0);
    let slot = keyslot(k.as_bytes());
    h.send(c, &["GET", &k]);
    h.written_to(1);
    h.reply_to(1, format!("+OK\r\n-MOVED {slot} 127.0.0.1:7\r\n").as_bytes());
    assert!(h.conns_to(7).is_empty(), "nothing connects before the topology lists node 7");
    assert_eq!(h.reports, [ClusterReport::UnknownNode { slot }]);
    h.advance(ms(5));
    assert!(h.conns_to(7).is_empty() && h.take(c).is_empty());

    // The refresh adds node 7 as the owner: the request goes there at once.
    h.s.handle_topology(masters(&[7, 2, 3]));
    h.advance(Duration::ZERO);
    assert_eq!(h.written_to(7), [auth(), cmd(&["GET", &k])].concat());
    h.reply_to(7, b"+OK\r\n$1\r\nm\r\n");
    assert_eq!(h.take_str(c), "$1\r\nm\r\n");
}

#[test]
fn an_ask_to_a_node_that_owns_no_slot_yet_is_followed_at_once() {
    // Resharding to a new master: CLUSTER NODES lists it before it owns a
    // slot, and the refresh puts it in the topology without ranges.
    let mut shards: Vec<ShardSpec> =
        (1..=3).map(|p| ShardSpec { ranges: vec![], master: node(p), replicas: vec![] }).collect();
    shards[0].ranges = vec![(0, 16383)];
    shards.push(ShardSpec { ranges: vec![], master: node(8), replicas: vec![] });
    let mut h = H::new(H::cfg(), Arc::new(SlotMap::build(shards)));
    let c = h.client();
    h.send(c, &["GET", "k"]);
    h.written_to(1);
    h.reply_to(1, format!("-ASK {} 127.0.0.1:8\r\n", keyslot(b"k")).as_bytes());
    assert_eq!(h.written_to(8), [ASKING.to_vec(), cmd(&["GET", "k"])].concat());
    assert!(h.reports.is_empty());
}

#[test]
fn a_moved_to_a_node_the_refresh_does_not_name_is_an_error() {
    let mut h = with_auth();
    let c = h.client();
    let k = key_on(2, 0);
    let slot = keyslot(k.as_bytes());
    h.send(c, &["SET", &k, "v"]);
    h.written_to(2);
    h.reply_to(2, format!("+OK\r\n-MOVED {slot} other-host:7000\r\n").as_bytes());
    h.s.handle_topology(map3(true));
    let got = wait_reply(&mut h, c);
    assert_eq!(got, format!("-ERR MOVED {slot} other-host:7000 not followed: not a node of the cluster topology\r\n"));
    assert!(h.conns.iter().all(|&(_, port)| (1..=6).contains(&port)));
    assert!(h.reports.iter().all(|r| matches!(r, ClusterReport::UnknownNode { .. })));
}

#[test]
fn reports_of_unknown_nodes_are_rate_limited() {
    let mut h = H::default3();
    let clients: Vec<_> = (0..20).map(|_| h.client()).collect();
    for (i, &c) in clients.iter().enumerate() {
        h.send_raw(c, &eval_error(&format!("MOVED {i} 10.9.9.9:1"), "x"));
    }
    let owner = super::tests::owner(keyslot(b"x"));
    h.written_to(owner);
    for i in 0..20 {
        h.reply_to(owner, format!("-MOVED {i} 10.9.9.9:1\r\n").as_bytes());
    }
    assert_eq!(h.reports.len(), 1, "one refresh request for a burst: {:?}", h.reports);
    // The waiting units are judged again on their retry; past the gap
    // they ask once more, together.
    h.advance(ms(100));
    assert_eq!(h.reports.len(), 2, "{:?}", h.reports);
    assert!(h.conns.iter().all(|&(_, port)| port == owner));
}

#[test]
fn nodes_that_leave_the_topology_are_pruned_once_their_connections_close() {
    let mut h = H::default3();
    let c = h.client();
    let keys: Vec<String> = (1..=3).map(|p| key_on(p, 0)).collect();
    for k in &keys {
        h.send(c, &["GET", k]);
    }
    for p in 1..=3 {
        h.written_to(p);
    }
    h.reply_to(1, b"$1\r\na\r\n");
    h.reply_to(2, b"$1\r\nb\r\n");
    assert_eq!(h.s.nodes.len(), 6, "three masters and their replicas");
    let to3 = h.conn(3);

    // Node 3 and the replicas leave; node 3's connection still waits for
    // a reply, so it stays until that comes.
    h.s.handle_topology(masters(&[1, 2]));
    assert!(!h.closed.contains(&to3), "busy: kept for its reply");
    assert_eq!(h.s.nodes.len(), 3, "the replicas (never connected) are forgotten at once");
    h.reply_to(3, b"$1\r\nc\r\n");
    assert_eq!(h.take_str(c), "$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n");
    assert!(h.closed.contains(&to3), "idle now, and its node left: closed");
    assert_eq!(h.s.nodes.len(), 2, "node 3 is forgotten with its last connection");

    // Topologies that churn through many nodes leave a bounded registry.
    for i in 0..50u16 {
        h.s.handle_topology(masters(&[1, 100 + i]));
        h.send(c, &["GET", &keys[2]]);
        h.written_to(100 + i);
        h.reply_to(100 + i, b"$1\r\nx\r\n");
        assert_eq!(h.take_str(c), "$1\r\nx\r\n");
    }
    assert!(h.s.nodes.len() <= 3, "registry size {}", h.s.nodes.len());
}

#[test]
fn a_command_of_no_slot_never_reconnects_to_a_node_that_left() {
    let mut cfg = ClusterSessionConfig::new(addr(7000));
    cfg.backend_auth = Some((None, "backend-pw".into()));
    let mut h = H::new(cfg, map3(true));
    let c = h.client();
    let k = key_on(3, 0);
    h.send(c, &["SET", &k, "v"]);
    h.written_to(3);
    h.reply_to(3, b"+OK\r\n+OK\r\n");
    assert_eq!(h.take_str(c), "+OK\r\n");
    h.s.handle_topology(masters(&[1, 2]));
    h.pump();
    let before = h.conns.len();
    // WAIT goes to the node of the client's previous command: that node
    // left, so a master of the view serves it instead.
    h.send(c, &["WAIT", "0", "0"]);
    assert!(h.conns[before..].iter().all(|&(_, port)| port == 1 || port == 2), "{:?}", &h.conns[before..]);
    assert!(h.conns_to(3).is_empty());
}
