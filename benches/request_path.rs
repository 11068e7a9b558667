//! Criterion bench of the per-request user-space path in twemproxy mode,
//! through the sans-IO `ShardSession` the workers drive, with no sockets:
//! decode a GET or SET from a client's bytes, route it (fnv1a_64 + ketama,
//! nutcracker's defaults, over 2 and 16 servers), queue and encode it for
//! its backend, take the backend's bytes as the driver would send them,
//! parse the reply, and queue it to the client and take those bytes.
//!
//! Shapes (every figure is per iteration; the batch shapes set criterion's
//! throughput to 16 elements, so ns per request is the time divided by 16):
//! - `p1`: one client, one request in flight;
//! - `p16`: one client, 16 requests pipelined in one read;
//! - `c16`: 16 clients with one request each, handled as one event batch
//!   (what a driver sees at pipeline 1 with many clients): requests for the
//!   same backend leave in one write.
//!
//! Keys cycle over 1,024 names, so routing spreads over every server.
//! Run: `cargo bench --bench request_path -- --warm-up-time 1 --measurement-time 3`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use puerta::config::{Mode, PoolConfig, ServerSpec, ShardConfig};
use puerta::protocol::resp::encode::command;
use puerta::route::PoolSnapshot;
use puerta::session::mux::{BackendId, ClientId, MuxIntent};
use puerta::session::{PoolSession, ShardSession};

const KEYS: usize = 1024;
const BATCH: usize = 16;
/// A 32-byte value, `puerta bench`'s and redis-benchmark's default size.
const VALUE: &[u8] = b"abcdefghijklmnopqrstuvwxyzabcdef";
const GET_REPLY: &[u8] = b"$32\r\nabcdefghijklmnopqrstuvwxyzabcdef\r\n";
const SET_REPLY: &[u8] = b"+OK\r\n";

/// A redis pool of `n` servers with nutcracker's default placement.
fn pool(n: usize) -> Arc<PoolSnapshot> {
    let servers: Vec<ServerSpec> = (0..n)
        .map(|i| ServerSpec {
            addr: SocketAddr::from(([10, 0, 0, i as u8], 6379)),
            weight: 1,
            name: format!("redis{i}"),
            host: String::new(),
        })
        .collect();
    let listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 22121));
    let cfg = PoolConfig {
        mode: Mode::Redis,
        shard: Some(ShardConfig::default()),
        ..PoolConfig::with_defaults("bench", listen, servers)
    };
    let sids: Vec<usize> = (0..n).collect();
    Arc::new(PoolSnapshot::new(cfg, 0, &sids, &|_| true, Arc::default()))
}

/// One request's bytes and the server the ring places it on.
struct Req {
    bytes: Vec<u8>,
    server: u32,
}

fn requests(p: &PoolSnapshot, set: bool) -> Vec<Req> {
    let ring = p.ring.as_ref().expect("a redis pool has a ring");
    (0..KEYS)
        .map(|i| {
            let key = format!("key:{i:06}");
            let bytes = if set {
                command([&b"SET"[..], key.as_bytes(), VALUE].into_iter()).to_vec()
            } else {
                command([&b"GET"[..], key.as_bytes()].into_iter()).to_vec()
            };
            Req { bytes, server: ring.pick(key.as_bytes()).expect("every server is live") }
        })
        .collect()
}

/// A session with `clients` clients and every backend connected.
fn session(p: &Arc<PoolSnapshot>, clients: usize, now: Instant) -> (ShardSession, Vec<ClientId>) {
    let mut s = ShardSession::new(p.clone(), now).expect("a redis pool");
    let ids = (0..clients).map(|_| s.add_client(None)).collect();
    (s, ids)
}

/// Completes every connect the session asks for (the first request to each
/// server opens its connection; later iterations find it open).
fn intents(s: &mut ShardSession) {
    while let Some(i) = s.poll_intent() {
        if let MuxIntent::Connect(b) = i {
            s.handle_backend_connected(b);
        }
    }
}

/// Takes everything queued for `b`, as a driver's send would; returns bytes.
fn send_backend(s: &mut ShardSession, b: BackendId, now: Instant) -> usize {
    let mut total = 0;
    while let Some(buf) = s.poll_backend_transmit(b) {
        let n = buf.len();
        black_box(buf);
        total += n;
        s.handle_backend_sent(b, n, now);
    }
    total
}

/// Takes every dirty client's queued reply bytes; returns bytes.
fn send_clients(s: &mut ShardSession, now: Instant) -> usize {
    let mut total = 0;
    while let Some(c) = s.poll_dirty_client() {
        while let Some(buf) = s.poll_client_transmit(c) {
            let n = buf.len();
            black_box(buf);
            total += n;
            s.handle_client_sent(c, n, now);
        }
    }
    total
}

/// One request in flight: client bytes in, backend bytes out, reply in,
/// client bytes out.
fn pipeline1(c: &mut Criterion) {
    let now = Instant::now();
    let mut g = c.benchmark_group("twem/p1");
    g.throughput(Throughput::Elements(1));
    for n in [2, 16] {
        let p = pool(n);
        for (op, set, reply) in [("get", false, GET_REPLY), ("set", true, SET_REPLY)] {
            let reqs = requests(&p, set);
            let (mut s, ids) = session(&p, 1, now);
            let client = ids[0];
            let mut i = 0usize;
            g.bench_function(BenchmarkId::new(op, n), |bench| {
                bench.iter(|| {
                    let r = &reqs[i % KEYS];
                    i = i.wrapping_add(1);
                    s.handle_client_data(client, black_box(&r.bytes), now);
                    intents(&mut s);
                    let mut out = 0;
                    while let Some(b) = s.poll_dirty_backend() {
                        out += send_backend(&mut s, b, now);
                    }
                    s.handle_backend_data(BackendId { server: r.server, conn: 0 }, black_box(reply), now);
                    let back = send_clients(&mut s, now);
                    debug_assert_eq!((out, back), (r.bytes.len(), reply.len()));
                    (out, back)
                })
            });
        }
    }
    g.finish();
}

/// The bytes each server receives back for a batch of requests: one reply
/// per request placed on it, in order.
fn batch_replies(batch: &[&Req], n: usize, reply: &[u8]) -> Vec<Vec<u8>> {
    let mut per = vec![Vec::new(); n];
    for r in batch {
        per[r.server as usize].extend_from_slice(reply);
    }
    per
}

/// Runs one batch: `inputs` (client, bytes) arrive, every dirty backend is
/// written, each server answers with `replies[server]`, every client is
/// written. Returns the reply bytes clients got.
fn run_batch(s: &mut ShardSession, inputs: &[(ClientId, &[u8])], replies: &[Vec<u8>], now: Instant) -> usize {
    for &(c, bytes) in inputs {
        s.handle_client_data(c, black_box(bytes), now);
    }
    intents(s);
    while let Some(b) = s.poll_dirty_backend() {
        send_backend(s, b, now);
    }
    for (server, bytes) in replies.iter().enumerate() {
        if !bytes.is_empty() {
            s.handle_backend_data(BackendId { server: server as u32, conn: 0 }, black_box(bytes), now);
        }
    }
    send_clients(s, now)
}

/// Precomputed batches of `BATCH` consecutive requests, cycling the keys.
struct Batches<'a> {
    reqs: Vec<Vec<&'a Req>>,
    replies: Vec<Vec<Vec<u8>>>,
}

fn batches<'a>(reqs: &'a [Req], n: usize, reply: &[u8]) -> Batches<'a> {
    let reqs: Vec<Vec<&Req>> = reqs.chunks(BATCH).map(|c| c.iter().collect()).collect();
    let replies = reqs.iter().map(|b| batch_replies(b, n, reply)).collect();
    Batches { reqs, replies }
}

/// 16 requests per iteration: pipelined by one client (`p16`), or one each
/// from 16 clients in one event batch (`c16`).
fn batched(c: &mut Criterion) {
    let now = Instant::now();
    let mut g = c.benchmark_group("twem/batch16");
    g.throughput(Throughput::Elements(BATCH as u64));
    for n in [2, 16] {
        let p = pool(n);
        for (op, set, reply) in [("get", false, GET_REPLY), ("set", true, SET_REPLY)] {
            let reqs = requests(&p, set);
            let bs = batches(&reqs, n, reply);
            let pipelined: Vec<Vec<u8>> =
                bs.reqs.iter().map(|b| b.iter().flat_map(|r| r.bytes.clone()).collect()).collect();
            let (mut s, ids) = session(&p, 1, now);
            let mut i = 0usize;
            g.bench_function(BenchmarkId::new(format!("p16/{op}"), n), |bench| {
                bench.iter(|| {
                    let k = i % bs.reqs.len();
                    i = i.wrapping_add(1);
                    let got = run_batch(&mut s, &[(ids[0], &pipelined[k])], &bs.replies[k], now);
                    debug_assert_eq!(got, BATCH * reply.len());
                    got
                })
            });
            let (mut s, ids) = session(&p, BATCH, now);
            let mut i = 0usize;
            let mut inputs: Vec<(ClientId, &[u8])> = Vec::with_capacity(BATCH);
            g.bench_function(BenchmarkId::new(format!("c16/{op}"), n), |bench| {
                bench.iter(|| {
                    let k = i % bs.reqs.len();
                    i = i.wrapping_add(1);
                    inputs.clear();
                    inputs.extend(ids.iter().zip(&bs.reqs[k]).map(|(&c, r)| (c, &r.bytes[..])));
                    let got = run_batch(&mut s, &inputs, &bs.replies[k], now);
                    debug_assert_eq!(got, BATCH * reply.len());
                    got
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, pipeline1, batched);
criterion_main!(benches);
