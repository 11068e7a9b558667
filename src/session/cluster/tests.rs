//! The cluster session with a simulated driver and an in-memory cluster
//! layout (no sockets, simulated time): slot routing, pipelining, split
//! and merge, replica reads, malformed input. Local and fan-out commands
//! are in `tests_local.rs`, redirects in `tests_redirect.rs`, transactions
//! / blocking / pub/sub in `tests_state.rs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::config::ReadFrom;
use crate::route::keyslot;
use crate::route::slotmap::{NodeSpec, ShardSpec};

pub(super) fn addr(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

fn node(port: u16, healthy: bool) -> NodeSpec {
    NodeSpec { id: format!("id{port}"), addr: addr(port), endpoint: addr(port).to_string(), healthy, hostname: None }
}

/// Masters on ports 1, 2, 3 (slots split in thirds), replicas on 4, 5, 6.
pub(super) fn map3(replicas_healthy: bool) -> Arc<SlotMap> {
    let r = replicas_healthy;
    Arc::new(SlotMap::build(vec![
        ShardSpec { ranges: vec![(0, 5460)], master: node(1, true), replicas: vec![node(4, r)] },
        ShardSpec { ranges: vec![(5461, 10922)], master: node(2, true), replicas: vec![node(5, r)] },
        ShardSpec { ranges: vec![(10923, 16383)], master: node(3, true), replicas: vec![node(6, r)] },
    ]))
}

/// The master port of a slot under `map3`.
pub(super) fn owner(slot: u16) -> u16 {
    match slot {
        0..=5460 => 1,
        5461..=10922 => 2,
        _ => 3,
    }
}

/// The `n`-th key (by a counter) whose slot is served by master `port`.
pub(super) fn key_on(port: u16, n: usize) -> String {
    (0..).map(|i| format!("key{i}")).filter(|k| owner(keyslot(k.as_bytes())) == port).nth(n).unwrap_or_default()
}

pub(super) fn cmd(args: &[&str]) -> Vec<u8> {
    crate::protocol::resp::encode::command(args.iter().map(|a| a.as_bytes())).to_vec()
}

pub(super) struct H {
    pub s: ClusterSession,
    pub now: Instant,
    /// Connections the session asked for, with their node port.
    pub conns: Vec<(BackendId, u16)>,
    /// Connect intents are completed at once unless this is set.
    pub hold_connects: bool,
    pub reports: Vec<crate::route::ClusterReport>,
    pub closed: Vec<BackendId>,
}

impl H {
    pub fn new(cfg: ClusterSessionConfig, view: Arc<SlotMap>) -> H {
        H {
            s: ClusterSession::new(cfg, view),
            now: Instant::now(),
            conns: Vec::new(),
            hold_connects: false,
            reports: Vec::new(),
            closed: Vec::new(),
        }
    }

    pub fn default3() -> H {
        H::new(ClusterSessionConfig::new(addr(7000)), map3(true))
    }

    pub fn cfg() -> ClusterSessionConfig {
        ClusterSessionConfig::new(addr(7000))
    }

    pub fn client(&mut self) -> ClientId {
        self.s.add_client(Some(addr(7000)))
    }

    pub fn send(&mut self, c: ClientId, args: &[&str]) {
        self.send_raw(c, &cmd(args));
    }

    pub fn send_raw(&mut self, c: ClientId, bytes: &[u8]) {
        self.s.handle_client_data(c, bytes, self.now);
        self.pump();
    }

    /// Drains intents: connects complete (unless held), reports and
    /// closes are recorded.
    pub fn pump(&mut self) -> Vec<ClusterIntent> {
        let mut all = Vec::new();
        while let Some(i) = self.s.poll_intent() {
            match i {
                ClusterIntent::Connect(b) => {
                    let port = self.s.backend_addr(b).map_or(0, |a| a.port());
                    self.conns.push((b, port));
                    if !self.hold_connects {
                        self.s.handle_backend_connected(b);
                    }
                }
                ClusterIntent::Report(r) => self.reports.push(r),
                ClusterIntent::CloseBackend(b, _) => self.closed.push(b),
                ClusterIntent::CloseClient(..) => {}
            }
            all.push(i);
        }
        all
    }

    /// Open connections to `port`, in the order they were opened.
    pub fn conns_to(&self, port: u16) -> Vec<BackendId> {
        self.conns.iter().filter(|(b, p)| *p == port && !self.closed.contains(b)).map(|(b, _)| *b).collect()
    }

    /// The one connection to `port` (panics if not exactly one).
    pub fn conn(&self, port: u16) -> BackendId {
        let v = self.conns_to(port);
        assert_eq!(v.len(), 1, "connections to node {port}: {v:?}");
        v[0]
    }

    /// Everything written to `b`, marked sent.
    pub fn written(&mut self, b: BackendId) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(buf) = self.s.poll_backend_transmit(b) {
            out.extend_from_slice(&buf);
            let n = buf.len();
            self.s.handle_backend_sent(b, n);
        }
        out
    }

    /// Everything written to the connections of `port`.
    pub fn written_to(&mut self, port: u16) -> Vec<u8> {
        let conns = self.conns_to(port);
        conns.into_iter().flat_map(|b| self.written(b)).collect()
    }

    pub fn reply(&mut self, b: BackendId, bytes: &[u8]) {
        self.s.handle_backend_data(b, bytes, self.now);
        self.pump();
    }

    pub fn reply_to(&mut self, port: u16, bytes: &[u8]) {
        let b = self.conn(port);
        self.reply(b, bytes);
    }

    /// Everything written to client `c`, marked sent.
    pub fn take(&mut self, c: ClientId) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(buf) = self.s.poll_client_transmit(c) {
            out.extend_from_slice(&buf);
            let n = buf.len();
            self.s.handle_client_sent(c, n, self.now);
        }
        self.pump();
        out
    }

    pub fn take_str(&mut self, c: ClientId) -> String {
        String::from_utf8_lossy(&self.take(c)).into_owned()
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        self.s.handle_tick(self.now);
        self.pump();
    }
}

#[test]
fn routes_by_slot_and_keeps_each_clients_order() {
    let mut h = H::default3();
    let c = h.client();
    let (a, b, a2) = (key_on(1, 0), key_on(2, 0), key_on(1, 1));
    let mut pipe = cmd(&["GET", &a]);
    pipe.extend(cmd(&["SET", &b, "x"]));
    pipe.extend(cmd(&["GET", &a2]));
    h.send_raw(c, &pipe);
    let mut both = cmd(&["GET", &a]);
    both.extend(cmd(&["GET", &a2]));
    assert_eq!(h.written_to(1), both, "node 1 gets its two requests in one write");
    assert_eq!(h.written_to(2), cmd(&["SET", &b, "x"]));
    assert!(h.conns_to(3).is_empty(), "no connection to a node nothing is routed to");
    h.reply_to(2, b"+OK\r\n");
    assert!(h.take(c).is_empty(), "node 2 answered first; the client's first reply is node 1's");
    h.reply_to(1, b"$1\r\nA\r\n$2\r\nA2\r\n");
    assert_eq!(h.take_str(c), "$1\r\nA\r\n+OK\r\n$2\r\nA2\r\n");
}

#[test]
fn many_clients_share_one_connection_per_node() {
    let mut h = H::default3();
    let clients: Vec<ClientId> = (0..4).map(|_| h.client()).collect();
    for (i, &c) in clients.iter().enumerate() {
        h.send(c, &["GET", &key_on(3, i)]);
    }
    let expect: Vec<u8> = (0..4).flat_map(|i| cmd(&["GET", &key_on(3, i)])).collect();
    assert_eq!(h.written_to(3), expect);
    let answers: Vec<u8> = (0..4).flat_map(|i| format!(":{i}\r\n").into_bytes()).collect();
    h.reply_to(3, &answers);
    for (i, &c) in clients.iter().enumerate() {
        assert_eq!(h.take_str(c), format!(":{i}\r\n"));
    }
}

#[test]
fn multi_key_commands_split_per_slot_and_merge_in_key_order() {
    let mut h = H::default3();
    let c = h.client();
    // Two keys of node 1 in different slots, one of node 2, and a key that
    // shares a slot (hash tag) with the first.
    let (k1, k2, k3) = (key_on(1, 0), key_on(1, 1), key_on(2, 0));
    assert_ne!(keyslot(k1.as_bytes()), keyslot(k2.as_bytes()));
    let k4 = format!("{{{k1}}}other");
    h.send(c, &["MGET", &k3, &k1, &k2, &k4]);
    let mut to1 = cmd(&["MGET", &k1, &k4]);
    to1.extend(cmd(&["MGET", &k2]));
    assert_eq!(h.written_to(1), to1, "per slot: Redis refuses multi-slot MGETs");
    assert_eq!(h.written_to(2), cmd(&["MGET", &k3]));
    h.reply_to(1, b"*2\r\n$2\r\nv1\r\n$2\r\nv4\r\n*1\r\n$-1\r\n");
    h.reply_to(2, b"*1\r\n$2\r\nv3\r\n");
    assert_eq!(h.take_str(c), "*4\r\n$2\r\nv3\r\n$2\r\nv1\r\n$-1\r\n$2\r\nv4\r\n");
    assert_eq!(h.s.stats().fragments, 3);

    h.send(c, &["DEL", &k1, &k3]);
    h.send(c, &["MSET", &k1, "1", &k3, "3"]);
    let mut to1 = cmd(&["DEL", &k1]);
    to1.extend(cmd(&["MSET", &k1, "1"]));
    assert_eq!(h.written_to(1), to1);
    h.reply_to(2, b":1\r\n+OK\r\n");
    h.reply_to(1, b":1\r\n+OK\r\n");
    assert_eq!(h.take_str(c), ":2\r\n+OK\r\n");

    // All keys in one slot: forwarded unchanged, no merge.
    h.send(c, &["MGET", &k1, &k4]);
    assert_eq!(h.written_to(1), cmd(&["MGET", &k1, &k4]));
    h.send(c, &["MGET"]);
    h.reply_to(1, b"*2\r\n$-1\r\n$-1\r\n");
    assert_eq!(h.take_str(c), "*2\r\n$-1\r\n$-1\r\n-ERR wrong number of arguments for 'mget' command\r\n");
}

#[test]
fn cross_slot_requests_get_redis_crossslot() {
    let mut h = H::default3();
    let c = h.client();
    h.send(c, &["RENAME", &key_on(1, 0), &key_on(1, 1)]);
    h.send(c, &["SUNIONSTORE", "{t}d", "{t}a", "{t}b"]);
    assert_eq!(h.take_str(c), "-CROSSSLOT Keys in request don't hash to the same slot\r\n");
    assert_eq!(h.written_to(owner(keyslot(b"t"))), cmd(&["SUNIONSTORE", "{t}d", "{t}a", "{t}b"]));
}

#[test]
fn reads_go_to_readonly_replicas_when_configured() {
    let mut cfg = H::cfg();
    cfg.read_from = ReadFrom::Replica;
    let mut h = H::new(cfg, map3(true));
    let c = h.client();
    let k = key_on(2, 0);
    h.send(c, &["GET", &k]);
    h.send(c, &["SET", &k, "v"]);
    let mut to_replica = crate::protocol::cluster::READONLY.to_vec();
    to_replica.extend(cmd(&["GET", &k]));
    assert_eq!(h.written_to(5), to_replica, "READONLY first, then the read");
    let mut to_master = crate::protocol::cluster::READONLY.to_vec();
    to_master.extend(cmd(&["SET", &k, "v"]));
    assert_eq!(h.written_to(2), to_master, "writes go to the master");
    h.reply_to(5, b"+OK\r\n$1\r\nv\r\n");
    h.reply_to(2, b"+OK\r\n+OK\r\n");
    assert_eq!(h.take_str(c), "$1\r\nv\r\n+OK\r\n", "the READONLY replies are consumed");

    // No healthy replica: `replica` fails the read, `prefer_replica` reads
    // the master.
    let mut cfg = H::cfg();
    cfg.read_from = ReadFrom::Replica;
    let mut h = H::new(cfg.clone(), map3(false));
    let c = h.client();
    h.send(c, &["GET", &k]);
    assert!(h.take_str(c).starts_with("-ERR no healthy replica"));
    cfg.read_from = ReadFrom::PreferReplica;
    let mut h = H::new(cfg, map3(false));
    let c = h.client();
    h.send(c, &["GET", &k]);
    assert!(h.written_to(2).ends_with(&cmd(&["GET", &k])));
}

/// A pool's users from (name, rules) pairs.
pub(super) fn users(list: &[(&str, &str)]) -> std::sync::Arc<crate::acl::Users> {
    let list = list.iter().map(|(n, r)| std::sync::Arc::new(crate::acl::User::from_rules(n, r).unwrap())).collect();
    std::sync::Arc::new(crate::acl::Users::new(list))
}

#[test]
fn malformed_client_input_closes_with_an_error_and_spares_others() {
    let mut h = H::default3();
    let (bad, good) = (h.client(), h.client());
    h.send(good, &["GET", &key_on(1, 0)]);
    h.send_raw(bad, b"*1\r\n$x\r\n");
    assert_eq!(h.take_str(bad), "-ERR Protocol error: invalid bulk length\r\n");
    h.reply_to(1, b"$1\r\nv\r\n");
    assert_eq!(h.take_str(good), "$1\r\nv\r\n");
    assert_eq!(h.s.stats().client_err, 1);
}
