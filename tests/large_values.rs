//! Large values through the real `puerta` binary, under both I/O drivers,
//! against real redis-servers, a real memcached and a real cluster.
//!
//! Replies of 16 KiB and more reach the client as shared blocks, not
//! copies, and a backend's replies are framed in the buffer its recv wrote
//! (issue 14). These tests check what a client sees: every byte of every
//! value at each size around the block threshold and the 16 KiB read
//! size, in stream order with small replies between them, across both
//! servers of a pool, merged (MGET) and from several clients at once
//! while another client reads nothing.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use common::cluster::Cluster;
use common::cluster_puerta::ClusterProxy;
use common::twem::{command, memcached, RawResp, Reply};
use common::twem_puerta::{yaml, PuertaTwem};
use common::{drivers, redis};

const SIZES: [usize; 9] = [0, 1, 16_383, 16_384, 16_385, 65_536, 65_537, (1 << 20) + 7, 3 << 20];

/// A value whose bytes depend on its index and size, so a reply cut,
/// shifted or swapped with another never compares equal.
fn value(i: usize, size: usize) -> Vec<u8> {
    (0..size).map(|j| ((j * 7 + i * 13 + size) % 251) as u8).collect()
}

fn bulk(v: &[u8]) -> Reply {
    Reply::Bulk(Some(v.to_vec()))
}

/// Sets `key:{i}` to `value(i, size)` for every size, and `small:{i}`.
fn fill(c: &mut RawResp, tag: &str) -> Vec<(String, Vec<u8>)> {
    let kv: Vec<(String, Vec<u8>)> =
        SIZES.iter().enumerate().map(|(i, &size)| (format!("{tag}:key:{i}"), value(i, size))).collect();
    let mut cmds: Vec<Vec<u8>> = kv.iter().map(|(k, v)| command(&[b"SET", k.as_bytes(), v])).collect();
    cmds.extend((0..SIZES.len()).map(|i| command(&[b"SET", format!("{tag}:small:{i}").as_bytes(), b"s"])));
    for r in c.pipeline(&cmds) {
        assert_eq!(r, Reply::Status(b"OK".to_vec()));
    }
    kv
}

#[test]
fn large_replies_arrive_whole_and_in_order() {
    let backends = [redis(), redis()];
    let ports: Vec<u16> = backends.iter().map(|b| b.port).collect();
    for io in drivers() {
        let px = PuertaTwem::start(&yaml(true, &ports, "  hash: fnv1a_64\n"), io);
        let mut c = RawResp::connect(px.port());
        let kv = fill(&mut c, io);

        // One pipeline: each large GET between two small ones, twice over,
        // so replies from both servers interleave with blocks and copies.
        let mut cmds = Vec::new();
        let mut want = Vec::new();
        for round in 0..2 {
            for (i, (k, v)) in kv.iter().enumerate() {
                cmds.push(command(&[b"GET", format!("{io}:small:{i}").as_bytes()]));
                want.push(bulk(b"s"));
                cmds.push(command(&[b"GET", k.as_bytes()]));
                want.push(bulk(v));
                if round == 1 {
                    cmds.push(command(&[b"STRLEN", k.as_bytes()]));
                    want.push(Reply::Int(v.len() as i64));
                }
            }
        }
        let got = c.pipeline(&cmds);
        assert_eq!(got.len(), want.len());
        for (n, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(g == w, "{io}: reply {n} differs (sizes {:?})", SIZES);
        }

        // Merged across both servers: MGET of every key.
        let mut mget: Vec<&[u8]> = vec![b"MGET"];
        mget.extend(kv.iter().map(|(k, _)| k.as_bytes()));
        let want = Reply::Array(Some(kv.iter().map(|(_, v)| bulk(v)).collect()));
        assert!(c.cmd(&mget) == want, "{io}: MGET of every size");
    }
}

#[test]
fn a_client_that_reads_nothing_does_not_hold_up_others() {
    let backends = [redis(), redis()];
    let ports: Vec<u16> = backends.iter().map(|b| b.port).collect();
    for io in drivers() {
        let px = PuertaTwem::start(&yaml(true, &ports, "  hash: fnv1a_64\n"), io);
        let kv = fill(&mut RawResp::connect(px.port()), io);
        let big = kv.iter().map(|(k, _)| k.clone()).next_back().unwrap_or_default();

        // Asks for 3 MiB forty times over and never reads a byte.
        let mut stuck = TcpStream::connect(("127.0.0.1", px.port())).unwrap();
        let asks: Vec<u8> = (0..40).flat_map(|_| command(&[b"GET", big.as_bytes()])).collect();
        stuck.write_all(&asks).unwrap();

        let port = px.port();
        let readers: Vec<_> = (0..4)
            .map(|t| {
                let kv = kv.clone();
                thread::spawn(move || {
                    let mut c = RawResp::connect(port);
                    for n in 0..12 {
                        let (k, v) = &kv[(t + n) % kv.len()];
                        assert!(c.cmd(&[b"GET", k.as_bytes()]) == bulk(v), "reader {t}, GET {k}");
                    }
                })
            })
            .collect();
        for r in readers {
            r.join().unwrap_or_else(|_| panic!("{io}: a reader failed while another client read nothing"));
        }
        // The stuck client's replies were held for it, in order: the
        // first one is whole once it reads.
        stuck.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut c = RawResp::from_stream(stuck);
        assert!(c.reply() == bulk(&kv[kv.len() - 1].1), "{io}: the stuck client's first reply");
    }
}

#[test]
fn memcached_values_pass_through_whole() {
    let mc = memcached();
    for io in drivers() {
        let px = PuertaTwem::start(&yaml(false, &[mc.port], ""), io);
        let mut s = TcpStream::connect(("127.0.0.1", px.port())).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let sizes = [16_383, 16_384, 65_536, 500_000];
        let mut req = Vec::new();
        for (i, &size) in sizes.iter().enumerate() {
            req.extend_from_slice(format!("set {io}:m{i} 5 0 {size}\r\n").as_bytes());
            req.extend_from_slice(&value(i, size));
            req.extend_from_slice(b"\r\n");
        }
        for i in 0..sizes.len() {
            req.extend_from_slice(format!("get {io}:m{i}\r\n").as_bytes());
        }
        s.write_all(&req).unwrap();
        let mut want = b"STORED\r\n".repeat(sizes.len());
        for (i, &size) in sizes.iter().enumerate() {
            want.extend_from_slice(format!("VALUE {io}:m{i} 5 {size}\r\n").as_bytes());
            want.extend_from_slice(&value(i, size));
            want.extend_from_slice(b"\r\nEND\r\n");
        }
        let mut got = vec![0; want.len()];
        s.read_exact(&mut got).unwrap();
        assert!(got == want, "{io}: stored and read back byte for byte");
    }
}

#[test]
fn cluster_large_values_arrive_whole() {
    let cluster = Cluster::start_with(3, 0, 5000);
    for io in drivers() {
        let px = ClusterProxy::start(&cluster, io, "");
        let mut c = px.client();
        let kv = fill(&mut c, io);
        let cmds: Vec<Vec<u8>> = kv.iter().rev().map(|(k, _)| command(&[b"GET", k.as_bytes()])).collect();
        for (g, (k, v)) in c.pipeline(&cmds).iter().zip(kv.iter().rev()) {
            assert!(*g == bulk(v), "{io}: GET {k} ({} bytes)", v.len());
        }
    }
}
