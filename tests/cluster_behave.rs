//! Cluster-mode behaviours clients expect from one Redis, through the real
//! `puerta` binary under both I/O drivers, against a real 3-master /
//! 3-replica cluster: SCAN of a small keyspace in one call, SCRIPT and
//! FUNCTION on every master (checked on each master directly), the
//! `allow_scripts` refusal, and INFO with the proxy's fields.

mod common;

use common::cluster::Cluster;
use common::cluster_puerta::{cmd, text, ClusterProxy};
use common::drivers;
use common::twem::{RawResp, Reply};
use puerta::route::keyslot;

const LIB: &str =
    "#!lua name=clib\nredis.register_function('cget', function(keys, args) return redis.call('GET', keys[1]) end)";
const LIB2: &str = "#!lua name=clib2\nredis.register_function('c2', function(keys, args) return 2 end)";

fn one(c: &mut RawResp, args: &[&str]) -> String {
    text(&c.pipeline(&[cmd(args)]).remove(0))
}

/// A key (`prefix` + n) whose slot `master` serves, given the masters'
/// lowest slots in order.
fn key_for(master: usize, prefix: &str) -> String {
    let bounds = [0u16, 5461, 10923, 16384];
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .find(|k| (bounds[master]..bounds[master + 1]).contains(&keyslot(k.as_bytes())))
        .unwrap_or_default()
}

#[test]
fn scan_scripts_and_info_through_a_cluster() {
    let cluster = Cluster::start();
    let masters = cluster.master_ports();
    assert_eq!(masters.len(), 3);
    let mut direct: Vec<RawResp> = masters.iter().map(|&p| RawResp::connect(p)).collect();
    for io in drivers() {
        let px = ClusterProxy::start(&cluster, io, "");
        let mut c = px.client();
        assert_eq!(one(&mut c, &["FLUSHALL"]), "OK", "{io}");

        // SCAN: a small keyspace over every master comes back in one call.
        let keys: Vec<String> = (0..3).map(|m| key_for(m, &format!("{io}:s"))).collect();
        for k in &keys {
            assert_eq!(one(&mut c, &["SET", k, "v"]), "OK");
        }
        let Reply::Array(Some(r)) = c.pipeline(&[cmd(&["SCAN", "0"])]).remove(0) else { panic!("SCAN") };
        assert_eq!(text(&r[0]), "0", "{io}: one call, cursor 0");
        let Reply::Array(Some(found)) = &r[1] else { panic!("SCAN keys") };
        let mut found: Vec<String> = found.iter().map(text).collect();
        found.sort();
        let mut want = keys.clone();
        want.sort();
        assert_eq!(found, want, "{io}: every master's keys in one call");

        // FUNCTION LOAD on every master; FCALL on a key of each.
        assert_eq!(one(&mut c, &["FUNCTION", "FLUSH"]), "OK", "{io}");
        assert_eq!(one(&mut c, &["FUNCTION", "LOAD", LIB]), "clib", "{io}");
        for (m, d) in direct.iter_mut().enumerate() {
            let Reply::Array(Some(libs)) = d.cmd(&[b"FUNCTION", b"LIST"]) else { panic!("FUNCTION LIST") };
            assert_eq!(libs.len(), 1, "{io}: master {m} has the library");
            assert_eq!(one(&mut c, &["FCALL", "cget", "1", &keys[m]]), "v", "{io}: FCALL on master {m}");
        }
        // SCRIPT LOAD on every master; EXISTS ANDed over them.
        assert_eq!(one(&mut c, &["SCRIPT", "FLUSH"]), "OK", "{io}");
        let sha = one(&mut c, &["SCRIPT", "LOAD", "return redis.call('GET', KEYS[1])"]);
        for k in &keys {
            assert_eq!(one(&mut c, &["EVALSHA", &sha, "1", k]), "v", "{io}");
        }
        let Reply::Bulk(Some(only0)) = direct[0].cmd(&[b"SCRIPT", b"LOAD", b"return 0"]) else { panic!() };
        let only0 = String::from_utf8(only0).unwrap();
        assert_eq!(one(&mut c, &["SCRIPT", "EXISTS", &sha, &only0]), "[1,0]", "{io}");
        // A library on one master only: its error, not a success.
        assert!(matches!(direct[2].cmd(&[b"FUNCTION", b"LOAD", LIB2.as_bytes()]), Reply::Bulk(Some(_))));
        let e = one(&mut c, &["FUNCTION", "LOAD", LIB2]);
        assert!(e.starts_with('-') && e.contains("already exists"), "{io}: {e}");
        assert_eq!(one(&mut c, &["FUNCTION", "FLUSH"]), "OK", "{io}");
        drop(c);
        drop(px);

        // INFO from a fresh proxy: its own clients and commands.
        let px = ClusterProxy::start(&cluster, io, "");
        let mut c = px.client();
        for k in &keys {
            assert_eq!(one(&mut c, &["GET", k]), "v");
        }
        let t = one(&mut c, &["INFO"]);
        assert!(
            t.starts_with("# Proxy\r\nproxy:puerta\r\n") && t.contains("proxy_mode:redis_cluster\r\n"),
            "{io}: {t}"
        );
        assert!(t.contains("\r\ncluster_enabled:1\r\n") && t.contains("redis_version:"), "{io}: {t}");
        assert!(t.contains("\r\nconnected_clients:1\r\n"), "{io}: {t}");
        assert!(t.contains("\r\ntotal_commands_processed:4\r\n"), "{io}: 3 GETs and this INFO: {t}");
        assert!(t.contains("# Keyspace\r\ndb0:keys=3,"), "{io}: summed over the masters: {t}");
        let s = one(&mut c, &["INFO", "cluster"]);
        assert_eq!(s.trim_end(), "# Cluster\r\ncluster_enabled:1", "{io}");
        drop(c);
        drop(px);

        // allow_scripts = false refuses every script command by name.
        let px = ClusterProxy::start(&cluster, io, "allow_scripts = false");
        let mut c = px.client();
        for args in [&["FUNCTION", "LOAD", LIB][..], &["SCRIPT", "FLUSH"], &["FCALL", "cget", "1", "k"]] {
            let e = one(&mut c, args);
            assert!(e.contains(args[0]) && e.contains("allow_scripts = false"), "{io}: {e}");
        }
    }
}
