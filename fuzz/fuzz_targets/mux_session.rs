//! Arbitrary event sequences against the twemproxy-mode `MuxSession`
//! (both protocols): no panic, nothing transmitted to a client after its
//! CloseClient, and every Connect names a backend of the pool.
#![no_main]
use libfuzzer_sys::fuzz_target;
use puerta::session::mux::{BackendId, ClientId, MuxConfig, MuxIntent, MuxSession, Protocol};
use std::time::{Duration, Instant};

const REPLIES: &[&[u8]] = &[
    b"+OK\r\n",
    b"$1\r\nx\r\n",
    b"*2\r\n$1\r\na\r\n$-1\r\n",
    b":3\r\n",
    b"-ERR x\r\n",
    b"VALUE k 0 1\r\nx\r\nEND\r\n",
    b"END\r\n",
    b"STORED\r\n",
];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, ops)) = data.split_first() else { return };
    let proto = if mode & 1 == 0 { Protocol::Redis } else { Protocol::Memcache };
    let mut cfg = MuxConfig::new(proto, 3);
    cfg.server_connections = 1 + (mode as u32 >> 1) % 2;
    cfg.timeout = Some(Duration::from_millis(50));
    cfg.output = puerta::session::mux::OutputLimit::hard(256);
    cfg.max_pending_per_client = 8;
    if mode & 4 != 0 {
        cfg.redis_auth = Some(b"pw".to_vec());
        cfg.redis_db = 1;
    }
    let per = cfg.server_connections;
    let mut s = MuxSession::new(cfg);
    let route = |k: &[u8]| Some(k.first().map_or(0, |&b| b as u32 % 4)); // 3 is out of range on purpose
    let t0 = Instant::now();
    let mut now = t0;
    let mut clients: Vec<ClientId> = Vec::new();
    let mut dead: Vec<ClientId> = Vec::new();
    let mut i = 0;
    while i + 2 < ops.len() {
        let (op, a, b) = (ops[i] % 11, ops[i + 1], ops[i + 2]);
        i += 3;
        let c = clients.get(a as usize % clients.len().max(1)).copied();
        let bid = BackendId { server: a as u32 % 3, conn: b as u32 % per };
        match op {
            0 => clients.push(s.add_client()),
            1 => {
                let len = (b as usize % 24).min(ops.len() - i);
                if let Some(c) = c {
                    s.handle_client_data(c, &ops[i..i + len], now, &route);
                }
                i += len;
            }
            2 => {
                let req: &[u8] = match (proto, b % 4) {
                    (Protocol::Redis, 0) => b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n",
                    (Protocol::Redis, 1) => b"*3\r\n$4\r\nMGET\r\n$1\r\na\r\n$1\r\nb\r\n",
                    (Protocol::Redis, 2) => b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n",
                    (Protocol::Redis, _) => b"*4\r\n$3\r\nDEL\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n",
                    (_, 0) => b"get a b c\r\n",
                    (_, 1) => b"set a 0 0 1\r\nx\r\n",
                    (_, 2) => b"delete b noreply\r\n",
                    _ => b"gets a\r\n",
                };
                if let Some(c) = c {
                    s.handle_client_data(c, req, now, &route);
                }
            }
            3 => {
                if let Some(c) = c {
                    s.handle_client_eof(c);
                }
            }
            4 => {
                if let Some(c) = c {
                    if let Some(buf) = s.poll_client_transmit(c) {
                        assert!(!dead.contains(&c), "bytes for a closed client");
                        let n = (b as usize).min(buf.len());
                        s.handle_client_sent(c, n, now, &route);
                    }
                }
            }
            5 => s.handle_backend_connected(bid),
            6 => s.handle_backend_data(bid, REPLIES[b as usize % REPLIES.len()], now, &route),
            7 => s.handle_backend_closed(bid, if b & 1 == 0 { None } else { Some(104) }, now, &route),
            8 => s.handle_backend_connect_failed(bid, 111, now, &route),
            9 => {
                now += Duration::from_millis(b as u64);
                s.handle_tick(now, &route);
            }
            _ => {
                if let Some(buf) = s.poll_backend_transmit(bid) {
                    let n = (b as usize).min(buf.len());
                    s.handle_backend_sent(bid, n, now, &route);
                }
            }
        }
        while let Some(intent) = s.poll_intent() {
            match intent {
                MuxIntent::CloseClient(id, _) => {
                    assert!(!dead.contains(&id), "closed twice");
                    dead.push(id);
                    clients.retain(|&x| x != id);
                }
                MuxIntent::Connect(b) | MuxIntent::CloseBackend(b, _) => assert!(b.server < 3 && b.conn < per),
                MuxIntent::ServerFailed { server, .. } => assert!(server < 3),
                MuxIntent::Report(r) => panic!("a twemproxy session reported {r:?}"),
            }
        }
    }
});
