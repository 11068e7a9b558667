//! Arbitrary event sequences against the Redis Cluster session: no panic,
//! nothing transmitted to a client after its CloseClient, every Connect
//! resolves to an address of a node of the session's topology (redirects
//! never add nodes) unless its CloseBackend follows in the same batch, and
//! replies of every shape (redirects, retry errors, pub/sub
//! frames, garbage) are survived.
#![no_main]
use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use puerta::route::slotmap::{NodeSpec, ShardSpec};
use puerta::route::SlotMap;
use puerta::session::cluster::{BackendId, ClusterIntent, ClusterSession, ClusterSessionConfig};
use puerta::session::mux::ClientId;

const REPLIES: &[&[u8]] = &[
    b"+OK\r\n",
    b"$1\r\nx\r\n",
    b"*2\r\n$1\r\na\r\n$-1\r\n",
    b":3\r\n",
    b"-ERR x\r\n",
    b"-MOVED 0 127.0.0.1:2\r\n",
    b"-ASK 5000 127.0.0.1:3\r\n",
    b"-MOVED 9 :1\r\n",
    b"-MOVED 15495 127.0.0.1:9\r\n",
    b"-ASK 1 10.1.1.1:3\r\n",
    b"-MOVED 20 127.0.0.1:3\r\n",
    b"-TRYAGAIN x\r\n",
    b"-CLUSTERDOWN x\r\n",
    b"*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n",
    b"*3\r\n$11\r\nunsubscribe\r\n$1\r\nc\r\n:0\r\n",
    b"*2\r\n$4\r\n1234\r\n*1\r\n$1\r\nk\r\n",
    b"+QUEUED\r\n",
    b"-EXECABORT x\r\n",
    b"?bad\r\n",
];

const REQUESTS: &[&[u8]] = &[
    b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n",
    b"*4\r\n$4\r\nMGET\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n",
    b"*3\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n$1\r\n0\r\n",
    b"*2\r\n$9\r\nSUBSCRIBE\r\n$1\r\nc\r\n",
    b"*1\r\n$11\r\nUNSUBSCRIBE\r\n",
    b"*1\r\n$5\r\nMULTI\r\n",
    b"*1\r\n$4\r\nEXEC\r\n",
    b"*2\r\n$5\r\nWATCH\r\n$1\r\na\r\n",
    b"*2\r\n$4\r\nSCAN\r\n$1\r\n0\r\n",
    b"*1\r\n$6\r\nDBSIZE\r\n",
    b"*1\r\n$4\r\nINFO\r\n",
    b"*1\r\n$5\r\nRESET\r\n",
    b"*4\r\n$4\r\nEVAL\r\n$1\r\nx\r\n$1\r\n1\r\n$1\r\na\r\n",
    b"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$1\r\nx\r\n",
    b"*3\r\n$4\r\nWAIT\r\n$1\r\n0\r\n$1\r\n0\r\n",
];

/// Two shards; an odd `shift` swaps master 2 for master 3 (node 2 and
/// its replicas leave the topology, node 3 joins).
fn map(shift: u16) -> Arc<SlotMap> {
    let n = |p: u16| {
        let addr = ([127, 0, 0, 1], p).into();
        NodeSpec { id: String::new(), addr, endpoint: format!("127.0.0.1:{p}"), healthy: p != 6, hostname: None }
    };
    let cut = 5000 + shift;
    let second = if shift % 2 == 1 {
        ShardSpec { ranges: vec![(cut + 1, 16383)], master: n(3), replicas: vec![] }
    } else {
        ShardSpec { ranges: vec![(cut + 1, 16383)], master: n(2), replicas: vec![n(5), n(6)] }
    };
    Arc::new(SlotMap::build(vec![ShardSpec { ranges: vec![(0, cut)], master: n(1), replicas: vec![n(4)] }, second]))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, ops)) = data.split_first() else { return };
    let mut cfg = ClusterSessionConfig::new(([127, 0, 0, 1], 7000).into());
    cfg.request_timeout = Some(Duration::from_millis(50));
    cfg.output = puerta::session::mux::OutputLimit::hard(512);
    cfg.max_pending_per_client = 8;
    cfg.max_retries = 2;
    cfg.retry_backoff = Duration::from_millis(5);
    cfg.pinned_connections = 2;
    cfg.read_from = match mode % 3 {
        0 => puerta::config::ReadFrom::Master,
        1 => puerta::config::ReadFrom::Replica,
        _ => puerta::config::ReadFrom::PreferReplica,
    };
    if mode & 8 != 0 {
        // A proxy user with a password: the gate (AUTH, NOAUTH, NOPERM) is
        // fuzzed too. The rules are a constant, so they always parse.
        if let Ok(u) = puerta::acl::User::from_rules("default", "on >pw +@all -@dangerous ~app:* &news.*") {
            cfg.users = Some(std::sync::Arc::new(puerta::acl::Users::new(vec![std::sync::Arc::new(u)])));
        }
    }
    let mut s = ClusterSession::new(cfg, map(0));
    let mut now = Instant::now();
    let mut clients: Vec<ClientId> = Vec::new();
    let mut dead: Vec<ClientId> = Vec::new();
    let mut conns: Vec<BackendId> = Vec::new();
    let mut i = 0;
    while i + 2 < ops.len() {
        let (op, a, b) = (ops[i] % 12, ops[i + 1], ops[i + 2]);
        i += 3;
        let c = clients.get(a as usize % clients.len().max(1)).copied();
        let bid = conns.get(b as usize % conns.len().max(1)).copied();
        match (op, c, bid) {
            (0, _, _) => clients.push(s.add_client(None)),
            (1, Some(c), _) => {
                let len = (b as usize % 24).min(ops.len() - i);
                s.handle_client_data(c, &ops[i..i + len], now);
                i += len;
            }
            (2, Some(c), _) => s.handle_client_data(c, REQUESTS[b as usize % REQUESTS.len()], now),
            (3, Some(c), _) => s.handle_client_eof(c),
            (4, Some(c), _) => {
                if let Some(buf) = s.poll_client_transmit(c) {
                    assert!(!dead.contains(&c), "bytes for a closed client");
                    let n = (b as usize).min(buf.len());
                    s.handle_client_sent(c, n, now);
                }
            }
            (5, _, Some(b)) => s.handle_backend_connected(b),
            (6, _, Some(bk)) => s.handle_backend_data(bk, REPLIES[a as usize % REPLIES.len()], now),
            (7, _, Some(bk)) => s.handle_backend_closed(bk, if a & 1 == 0 { None } else { Some(104) }, now),
            (8, _, Some(bk)) => s.handle_backend_connect_failed(bk, 111, now),
            (9, _, _) => {
                now += Duration::from_millis(b as u64);
                s.handle_tick(now);
            }
            (10, _, _) => s.handle_topology(map(u16::from(b))),
            (_, _, Some(bk)) => {
                if let Some(buf) = s.poll_backend_transmit(bk) {
                    let n = (a as usize).min(buf.len());
                    s.handle_backend_sent(bk, n);
                }
            }
            _ => {}
        }
        let mut batch = Vec::new();
        while let Some(intent) = s.poll_intent() {
            batch.push(intent);
        }
        for (at, &intent) in batch.iter().enumerate() {
            match intent {
                ClusterIntent::CloseClient(id, _) => {
                    assert!(!dead.contains(&id), "closed twice");
                    dead.push(id);
                    clients.retain(|&x| x != id);
                }
                ClusterIntent::Connect(b) => {
                    // A connection opened and closed within one event (a
                    // resumed SUBSCRIBE's pin dropped by a RESET behind it)
                    // is gone already; its CloseBackend follows.
                    let closed_later = batch[at..].iter().any(|i| matches!(i, ClusterIntent::CloseBackend(c, _) if *c == b));
                    assert!(s.backend_addr(b).is_some() || closed_later, "a connect names a node");
                    if let Some(a) = s.backend_addr(b) {
                        assert!(s.topology().find(a).is_some(), "a connect goes to a node of the topology: {a}");
                    }
                    conns.push(b);
                }
                ClusterIntent::CloseBackend(b, _) => conns.retain(|&x| x != b),
                ClusterIntent::Report(_) => {}
            }
        }
    }
});
