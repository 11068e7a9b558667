//! Redis Cluster through the real `puerta` binary, under both I/O drivers,
//! against a real 3-master / 3-replica cluster (`common::cluster`).
//!
//! One cluster per test; each test runs its scenarios once per driver,
//! with a fresh Puerta and its own key prefix. Results are checked
//! without Puerta: GETs straight to each key's slot owner, `redis-cli -c`,
//! INFO commandstats of the nodes. The failover scenario is in
//! `cluster_failover.rs`.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::cluster::{Cluster, SETTLE};
use common::cluster_puerta::{cmd, direct_get, redis_cli_c, text, ClusterProxy};
use common::twem::{RawResp, Reply};
use common::{drivers, wait_until};
use puerta::route::keyslot;

fn set_all(c: &mut RawResp, keys: &[String], value: impl Fn(usize) -> String) {
    for (n, chunk) in keys.chunks(1000).enumerate() {
        let cmds: Vec<Vec<u8>> =
            chunk.iter().enumerate().map(|(i, k)| cmd(&["SET", k, &value(n * 1000 + i)])).collect();
        for (k, r) in chunk.iter().zip(c.pipeline(&cmds)) {
            assert_eq!(text(&r), "OK", "SET {k}");
        }
    }
}

fn one(c: &mut RawResp, args: &[&str]) -> String {
    text(&c.pipeline(&[cmd(args)]).remove(0))
}

#[test]
fn routing_fanout_transactions_scan_and_replica_reads() {
    let cluster = Cluster::start();
    for io in drivers() {
        let px = ClusterProxy::start(&cluster, io, "");
        let mut c = px.client();

        // 10,000 keys through Puerta, read straight from their owners.
        let keys: Vec<String> = (0..10_000).map(|i| format!("{io}:rk:{i}")).collect();
        set_all(&mut c, &keys, |i| format!("v{i}"));
        let got = direct_get(&cluster, &keys);
        assert!(got.iter().enumerate().all(|(i, v)| v.as_deref() == Some(&format!("v{i}"))), "{io}: direct reads");
        px.wait_counter("connects", 3.0);
        assert_eq!(px.counter("moved"), 0.0, "{io}: every SET went to its owner the first time");
        let sample: Vec<String> = keys.iter().step_by(20).map(|k| format!("GET {k}")).collect();
        let want: Vec<String> = (0..10_000).step_by(20).map(|i| format!("v{i}")).collect();
        assert_eq!(redis_cli_c(cluster.any_port(), &sample), want, "{io}: redis-cli -c agrees");

        // Keys written by a cluster client, read by Puerta's MGET in order,
        // with missing keys interleaved.
        let sets: Vec<String> = (0..500).map(|i| format!("SET {io}:wk:{i} w{i}")).collect();
        assert!(redis_cli_c(cluster.any_port(), &sets).iter().all(|l| l == "OK"));
        let names: Vec<String> =
            (0..500).map(|i| if i % 7 == 0 { format!("{io}:none:{i}") } else { format!("{io}:wk:{i}") }).collect();
        let args: Vec<&str> = std::iter::once("MGET").chain(names.iter().map(String::as_str)).collect();
        let Reply::Array(Some(items)) = c.pipeline(&[cmd(&args)]).remove(0) else { panic!("MGET reply") };
        let want: Vec<String> = (0..500).map(|i| if i % 7 == 0 { "(nil)".into() } else { format!("w{i}") }).collect();
        assert_eq!(items.iter().map(text).collect::<Vec<_>>(), want, "{io}: MGET merged in key order");
        let (a, b, z) = (format!("{io}:m:a"), format!("{io}:m:b"), format!("{io}:m:zz"));
        assert_eq!(one(&mut c, &["MSET", &a, "1", &b, "2"]), "OK");
        assert_eq!(one(&mut c, &["EXISTS", &a, &b, &z, &a]), "3");
        assert_eq!(one(&mut c, &["DEL", &a, &z, &b]), "2", "{io}: DEL summed over nodes");
        assert!(px.wait_counter("fragments", 500.0) >= 500.0);

        // Transactions: one slot runs, keys of two slots get -CROSSSLOT.
        let (t1, t2) = (format!("{{{io}t}}a"), format!("{{{io}t}}b"));
        let replies = c.pipeline(&[
            cmd(&["MULTI"]),
            cmd(&["SET", &t1, "1"]),
            cmd(&["INCR", &t1]),
            cmd(&["SET", &t2, "x"]),
            cmd(&["EXEC"]),
        ]);
        let got: Vec<String> = replies.iter().map(text).collect();
        assert_eq!(got, ["OK", "QUEUED", "QUEUED", "QUEUED", "[OK,2,OK]"], "{io}: MULTI/EXEC");
        let other = (0..).map(|i| format!("{io}:x{i}")).find(|k| keyslot(k.as_bytes()) != keyslot(t1.as_bytes()));
        let replies = c.pipeline(&[
            cmd(&["MULTI"]),
            cmd(&["SET", &t1, "1"]),
            cmd(&["MSET", &t1, "2", other.as_deref().unwrap(), "3"]),
            cmd(&["EXEC"]),
        ]);
        assert!(text(&replies[2]).starts_with("-CROSSSLOT"), "{io}: {}", text(&replies[2]));
        assert!(text(&replies[3]).starts_with("-EXECABORT"), "{io}: {}", text(&replies[3]));
        assert_eq!(one(&mut c, &["GET", &t1]), "2", "the aborted transaction ran nothing");

        // BLPOP blocks on a pinned connection: other clients go on.
        let q = format!("{{{io}q}}list");
        let mut blocked = TcpStream::connect(("127.0.0.1", px.port)).unwrap();
        blocked.write_all(&cmd(&["BLPOP", &q, "8"])).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        for (i, k) in keys.iter().enumerate().take(20) {
            let mut other = px.client();
            assert_eq!(one(&mut other, &["GET", k]), format!("v{i}"), "{io}: not stuck behind BLPOP");
        }
        assert_eq!(one(&mut c, &["LPUSH", &q, "item"]), "1");
        let mut blocked = RawResp::from_stream(blocked);
        assert_eq!(text(&blocked.reply()), format!("[{q},item]"), "{io}: BLPOP woke up");

        // SCAN over every master: every key exactly once.
        let mut cursor = "0".to_owned();
        let mut seen = std::collections::HashMap::new();
        loop {
            let pattern = format!("{io}:rk:*");
            let r = c.pipeline(&[cmd(&["SCAN", &cursor, "MATCH", &pattern, "COUNT", "1000"])]).remove(0);
            let Reply::Array(Some(mut parts)) = r else { panic!("SCAN reply {r:?}") };
            let Reply::Array(Some(found)) = parts.pop().unwrap() else { panic!("SCAN keys") };
            cursor = text(&parts[0]);
            for k in found {
                *seen.entry(text(&k)).or_insert(0) += 1;
            }
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen.len(), keys.len(), "{io}: SCAN found every key");
        assert!(seen.values().all(|&n| n == 1), "{io}: SCAN returned each key once");

        // Puerta describes itself as the whole cluster at the address the
        // client reached (the driver passed the local address on).
        let Reply::Array(Some(ranges)) = c.cmd(&[b"CLUSTER", b"SLOTS"]) else { panic!("CLUSTER SLOTS") };
        let want = format!("[0,16383,[127.0.0.1,{},", px.port);
        assert!(text(&ranges[0]).starts_with(&want), "{io}: {} is not {want}...", text(&ranges[0]));
    }

    // read_from = replica: GETs show in the replicas' commandstats only.
    let masters = cluster.master_ports();
    for &m in &masters {
        for r in cluster.replica_ports(m) {
            let mk = RawResp::connect(m).keys().len();
            wait_until("replica to catch up", SETTLE, || RawResp::connect(r).keys().len() == mk);
        }
    }
    let replicas: Vec<u16> = masters.iter().flat_map(|&m| cluster.replica_ports(m)).collect();
    for io in drivers() {
        let px = ClusterProxy::start(&cluster, io, "read_from = \"replica\"");
        let mut c = px.client();
        let before: Vec<u64> = masters.iter().chain(&replicas).map(|&p| cluster.calls(p, "get")).collect();
        let cmds: Vec<Vec<u8>> = (0..300).map(|i| cmd(&["GET", &format!("{io}:rk:{i}")])).collect();
        for (i, r) in c.pipeline(&cmds).iter().enumerate() {
            assert_eq!(text(r), format!("v{i}"), "{io}");
        }
        let after: Vec<u64> = masters.iter().chain(&replicas).map(|&p| cluster.calls(p, "get")).collect();
        let delta: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        assert_eq!(&delta[..3], [0, 0, 0], "{io}: no GET reached a master: {delta:?}");
        assert_eq!(delta[3..].iter().sum::<u64>(), 300, "{io}: every GET was served by a replica: {delta:?}");
        assert!(delta[3..].iter().all(|&n| n > 0), "{io}: each replica served its shard: {delta:?}");
        assert_eq!(one(&mut c, &["SET", &format!("{io}:rk:0"), "w"]), "OK", "{io}: writes still go to masters");
    }
}
