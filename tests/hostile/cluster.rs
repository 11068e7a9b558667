//! Hostile clients of a Redis Cluster pool (defects 3, 4 and 10): a
//! script whose error reply is a MOVED or ASK to the attacker's address,
//! refused commands inside MULTI, while subscribed and while pinned,
//! `allow_scripts = false`, and MGETs of 60,000 and 100,001 keys.
//!
//! The pool authenticates to the nodes as an ACL user (`puerta`/`secret`,
//! added at runtime; the default user stays open so the harness can read
//! the nodes directly), so a redirect that reached the attacker would
//! hand it the password. Each sub-case gets a fresh Puerta on a shared
//! 3-master cluster and restores anything it changed on the nodes.

use std::net::TcpStream;

use crate::common::cluster::{try_text, Cluster};
use crate::common::cluster_puerta::{cmd, direct_get, owners, ClusterProxy};
use crate::common::drivers;
use crate::common::fake::{Trap, SHORT};
use crate::common::hostile::{attack, named, resp_probe, Cases, Proto, Target, Victim};
use crate::common::twem::{RawResp, Reply};
use crate::RSS_SMALL_MIB;
use puerta::route::keyslot;

const AUTH: &str = "username = \"puerta\"\npassword = \"secret\"\n";

/// 3 masters, no replicas, with the ACL user the pool logs in as.
fn cluster() -> Cluster {
    let c = Cluster::start_with(3, 0, 2000);
    for n in &c.nodes {
        let mut r = RawResp::connect(n.port);
        let ok = r.cmd(&[b"ACL", b"SETUSER", b"puerta", b"on", b">secret", b"~*", b"&*", b"+@all"]);
        assert_eq!(ok, Reply::Status(b"OK".to_vec()), "ACL SETUSER on {}", n.port);
    }
    c
}

fn target<'a>(px: &ClusterProxy, probe: crate::common::hostile::Probe<'a>) -> Target<'a> {
    Target { pid: px.puerta.proc.pid(), port: px.port, probe, rss_mib: RSS_SMALL_MIB }
}

/// 24 good-client keys, all in the slot of hash tag `tag`.
fn tagged(tag: &str) -> Vec<String> {
    (0..24).map(|i| format!("{{{tag}}}:{i}")).collect()
}

/// Sets keys straight on their slot's master.
fn direct_set(c: &Cluster, keys: &[String], val: &str) {
    let table = owners(c);
    for k in keys {
        let mut r = RawResp::connect(table[keyslot(k.as_bytes()) as usize]);
        assert_eq!(r.cmd(&[b"SET", k.as_bytes(), val.as_bytes()]), Reply::Status(b"OK".to_vec()));
    }
}

fn assert_values(c: &Cluster, case: &str, keys: &[String], val: &str) {
    let got = direct_get(c, keys);
    let changed: Vec<String> =
        keys.iter().zip(&got).filter(|(_, g)| g.as_deref() != Some(val)).map(|(k, g)| format!("{k}={g:?}")).collect();
    assert!(changed.is_empty(), "{case}: keys changed on the nodes: {changed:?}");
}

/// `CONFIG GET slowlog-max-len` on every node, read directly.
fn slowlog_lens(c: &Cluster) -> Vec<String> {
    c.nodes.iter().map(|n| try_text(n.port, &["CONFIG", "GET", "slowlog-max-len"]).unwrap_or_default()).collect()
}

fn pipeline(port: u16, cmds: &[Vec<&str>]) -> String {
    let bytes: Vec<u8> = cmds.iter().flat_map(|c| cmd(c)).collect();
    let (got, _) = attack(port, &bytes, SHORT);
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn d3_cluster_redirect_in_a_script_reply_goes_nowhere() {
    let c = cluster();
    let keys = tagged("vic");
    let slot = keyslot(b"vic");
    let mut cases = Cases::default();
    for io in drivers() {
        for (name, kind, nkeys) in
            [("MOVED, keyed", "MOVED", "1"), ("MOVED, no key", "MOVED", "0"), ("ASK, keyed", "ASK", "1")]
        {
            let case = format!("d3 script error_reply {name} to the attacker ({io})");
            cases.run(&case.clone(), || {
                let px = ClusterProxy::start(&c, io, AUTH);
                let t = target(&px, &resp_probe);
                let trap = Trap::start();
                let v = Victim::start(px.port, Proto::Redis, &keys, 6);
                let script = format!("return redis.error_reply('{kind} {slot} 127.0.0.1:{}')", trap.port());
                let mut eval = vec!["EVAL", script.as_str(), nkeys];
                if nkeys == "1" {
                    eval.push("{vic}:x");
                }
                // Several connections at once, so both workers get one.
                let runs: Vec<_> = (0..6)
                    .map(|_| {
                        let (port, eval) = (px.port, eval.iter().map(|a| a.to_string()).collect::<Vec<_>>());
                        std::thread::spawn(move || pipeline(port, &[eval.iter().map(String::as_str).collect()]))
                    })
                    .collect();
                for r in runs {
                    let got = r.join().unwrap();
                    assert!(!got.starts_with('$') && !got.starts_with('+'), "{case}: the script got {got:?}");
                }
                v.finish(&case);
                trap.assert_untouched(&case);
                t.assert_healthy(&case);
            });
        }
    }
    cases.finish();
}

#[test]
fn d4_cluster_one_command_policy_in_every_state() {
    let c = cluster();
    let canaries = tagged("can");
    let before = slowlog_lens(&c);
    // Commands split on " | ", arguments on spaces.
    let attacks = [
        "MULTI | CONFIG SET slowlog-max-len 4242 | EXEC",
        "MULTI | SET {vic}:m 1 | CONFIG SET slowlog-max-len 4243 | EXEC",
        "MULTI | FLUSHALL | EXEC",
        "MULTI | SET {can}:m 1 | FLUSHALL | FLUSHDB | EXEC",
        "SUBSCRIBE ch | CONFIG SET slowlog-max-len 4244 | FLUSHALL",
        "SUBSCRIBE ch | HELLO 3 | CONFIG SET slowlog-max-len 4245 | FLUSHALL",
        "SUBSCRIBE ch | RESET | CONFIG SET slowlog-max-len 4248 | FLUSHALL",
        // Redis leaves pub/sub at the UNSUBSCRIBE; Puerta learns it only
        // from the reply, so the next commands arrive while it thinks the
        // client is still subscribed.
        "SUBSCRIBE ch | UNSUBSCRIBE ch | CONFIG SET slowlog-max-len 4249 | FLUSHALL",
        "WATCH {can}:0 | CONFIG SET slowlog-max-len 4246 | FLUSHALL | MULTI | CONFIG SET slowlog-max-len 4247 | EXEC",
    ];
    let mut cases = Cases::default();
    for io in drivers() {
        for name in attacks {
            let case = format!("d4 {name}, allow_flush = false ({io})");
            cases.run(&case.clone(), || {
                direct_set(&c, &canaries, "canary");
                let px = ClusterProxy::start(&c, io, &format!("{AUTH}allow_flush = false\n"));
                let t = target(&px, &resp_probe);
                let v = Victim::start(px.port, Proto::Redis, &tagged("vic"), 6);
                let cmds: Vec<Vec<&str>> = name.split(" | ").map(|c| c.split(' ').collect()).collect();
                for _ in 0..3 {
                    pipeline(px.port, &cmds);
                }
                let after = slowlog_lens(&c);
                for n in &c.nodes {
                    let _ = try_text(n.port, &["CONFIG", "SET", "slowlog-max-len", "128"]);
                }
                assert_eq!(after, before, "{case}: CONFIG changed on a node");
                assert_values(&c, &case, &canaries, "canary");
                v.finish(&case);
                t.assert_healthy(&case);
            });
        }
    }
    cases.finish();
}

#[test]
fn d4_cluster_allow_scripts_false_refuses_every_script() {
    let c = cluster();
    let keys = tagged("scr");
    let owner = owners(&c)[keyslot(b"scr") as usize];
    let body = "return redis.call('SET', KEYS[1], 'pwned')";
    let sha = try_text(owner, &["SCRIPT", "LOAD", body]).expect("SCRIPT LOAD");
    let lib =
        "#!lua name=hostile\nredis.register_function('pwn', function(k) return redis.call('SET', k[1], 'pwned') end)";
    for n in &c.nodes {
        try_text(n.port, &["FUNCTION", "LOAD", "REPLACE", lib]).expect("FUNCTION LOAD");
    }
    let attacks: [(&str, Vec<Vec<&str>>); 5] = [
        ("EVAL", vec![vec!["EVAL", body, "1", "{scr}:0"]]),
        ("MULTI; EVAL; EXEC", vec![vec!["MULTI"], vec!["EVAL", body, "1", "{scr}:0"], vec!["EXEC"]]),
        ("EVALSHA", vec![vec!["EVALSHA", sha.as_str(), "1", "{scr}:0"]]),
        ("FCALL", vec![vec!["FCALL", "pwn", "1", "{scr}:0"]]),
        ("EVAL FLUSHALL", vec![vec!["EVAL", "return redis.call('FLUSHALL')", "0"]]),
    ];
    let mut cases = Cases::default();
    for io in drivers() {
        let px = ClusterProxy::start(&c, io, &format!("{AUTH}allow_scripts = false\n"));
        for (name, cmds) in &attacks {
            let case = format!("d4 allow_scripts = false: {name} ({io})");
            cases.run(&case.clone(), || {
                direct_set(&c, &keys, "orig");
                let t = target(&px, &resp_probe);
                let v = Victim::start(px.port, Proto::Redis, &tagged("vic"), 6);
                let got = pipeline(px.port, cmds);
                assert!(got.starts_with('-') || got.starts_with("+OK\r\n-"), "{case}: answered {got:?}");
                assert_values(&c, &case, &keys, "orig");
                v.finish(&case);
                t.assert_healthy(&case);
            });
        }
    }
    cases.finish();
}

#[test]
fn d10_cluster_mget_of_60k_and_100001_keys() {
    let c = cluster();
    let mut cases = Cases::default();
    for io in drivers() {
        let case = format!("d10 cluster MGET of 60,000 and 100,001 keys ({io})");
        cases.run(&case.clone(), || {
            let px = ClusterProxy::start(&c, io, AUTH);
            let t = target(&px, &resp_probe);
            let v = Victim::start(px.port, Proto::Redis, &tagged("vic"), 6);
            let keys: Vec<String> = (0..100_001).map(|i| format!("mk:{i}")).collect();
            direct_set(&c, &keys[..60_000].iter().step_by(4999).cloned().collect::<Vec<_>>(), "x");
            let mget = |n: usize| {
                let mut a = vec!["MGET"];
                a.extend(keys[..n].iter().map(String::as_str));
                cmd(&a)
            };
            let mut r = RawResp::from_stream(TcpStream::connect(("127.0.0.1", px.port)).unwrap());
            match named(&case, "60,000-key MGET", || r.pipeline(&[mget(60_000)]).remove(0)) {
                Reply::Array(Some(items)) => {
                    assert_eq!(items.len(), 60_000, "{case}");
                    for (i, it) in items.iter().enumerate() {
                        let want = if i % 4999 == 0 { Reply::Bulk(Some(b"x".to_vec())) } else { Reply::Bulk(None) };
                        assert_eq!(*it, want, "{case}: item {i}");
                    }
                }
                other => panic!("{case}: 60,000-key MGET answered {other:?}"),
            }
            let mut s = TcpStream::connect(("127.0.0.1", px.port)).unwrap();
            std::io::Write::write_all(&mut s, &mget(100_001)).unwrap();
            let (got, _) = crate::common::hostile::read_until(&mut s, b"\r\n", crate::common::hostile::DIRECT);
            let head = String::from_utf8_lossy(&got).into_owned();
            let names_limit = head.contains("100000") || head.contains("100,000");
            assert!(head.starts_with('-') && names_limit, "{case}: 100,001 keys answered {head:?}");
            v.finish(&case);
            t.assert_healthy(&case);
        });
    }
    cases.finish();
}
