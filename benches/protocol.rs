//! Criterion benches of the twemproxy-mode protocol hot path: decoding a
//! pipelined RESP request batch, framing replies, the command table lookup,
//! MGET split/merge, and memcached request decoding.
//! Run: `cargo bench --bench protocol`.

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use puerta::protocol::memcache::McRequestDecoder;
use puerta::protocol::resp::{
    command, encode, merge_replies, split, Kind, Merge, Reply, ReplyDecoder, Request, RequestDecoder,
};

fn resp(c: &mut Criterion) {
    let one = encode::command([&b"GET"[..], b"key:000001"].into_iter());
    let batch: Vec<u8> = one.iter().copied().cycle().take(one.len() * 16).collect();
    let mut g = c.benchmark_group("resp");
    g.throughput(Throughput::Elements(16));
    g.bench_function("decode_get_x16", |b| {
        let mut dec = RequestDecoder::new(1 << 20);
        b.iter(|| {
            let mut buf = BytesMut::from(&batch[..]);
            let mut n = 0;
            while let Ok(Some(r)) = dec.decode(&mut buf) {
                n += r.argc();
            }
            black_box(n)
        })
    });
    let replies: Vec<u8> = b"$10\r\nvalue:0001\r\n".iter().copied().cycle().take(17 * 16).collect();
    g.bench_function("frame_bulk_reply_x16", |b| {
        let mut dec = ReplyDecoder::default();
        b.iter(|| {
            let mut buf = BytesMut::from(&replies[..]);
            let mut n = 0;
            while let Ok(Some(r)) = dec.decode(&mut buf) {
                n += r.raw.len();
            }
            black_box(n)
        })
    });
    g.finish();
    c.bench_function("resp/command_lookup", |b| b.iter(|| command::lookup(black_box(b"zrangebyscore"))));

    let keys: Vec<String> = (0..10).map(|i| format!("key:{i:06}")).collect();
    let args: Vec<&[u8]> = std::iter::once(&b"MGET"[..]).chain(keys.iter().map(|k| k.as_bytes())).collect();
    let req = Request::from_args(args.into_iter());
    let route = |k: &[u8]| Some(k.iter().map(|&x| x as u32).sum::<u32>() % 2);
    c.bench_function("resp/mget10_split_2_servers", |b| {
        b.iter(|| split(black_box(&req), Kind::MultiKey(Merge::Array), route).map(|f| f.len()))
    });
    let frags = split(&req, Kind::MultiKey(Merge::Array), route).unwrap();
    let replies: Vec<Reply> = frags
        .iter()
        .map(|f| {
            let mut s = format!("*{}\r\n", f.keys.len());
            for _ in &f.keys {
                s.push_str("$10\r\nvalue:0001\r\n");
            }
            ReplyDecoder::default().decode(&mut BytesMut::from(s.as_bytes())).unwrap().unwrap()
        })
        .collect();
    let parts: Vec<(&[u32], &Reply)> = frags.iter().zip(&replies).map(|(f, r)| (&f.keys[..], r)).collect();
    c.bench_function("resp/mget10_merge", |b| b.iter(|| merge_replies(Merge::Array, 10, black_box(&parts))));
}

fn memcache(c: &mut Criterion) {
    let batch: Vec<u8> =
        b"get key:000001\r\nset key:000002 0 0 5\r\nhello\r\n".iter().copied().cycle().take(45 * 8).collect();
    let mut g = c.benchmark_group("memcache");
    g.throughput(Throughput::Elements(16));
    g.bench_function("decode_get_set_x16", |b| {
        let mut dec = McRequestDecoder::new(1 << 20, 1 << 20);
        b.iter(|| {
            let mut buf = BytesMut::from(&batch[..]);
            let mut n = 0;
            while let Ok(Some(r)) = dec.decode(&mut buf) {
                n += r.nkeys();
            }
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, resp, memcache);
criterion_main!(benches);
