//! Hostile clients of a redis_cluster pool, through the real `puerta`
//! binary under both I/O drivers, against a real 3-master / 3-replica
//! cluster (DESIGN §5):
//! - a script's forged MOVED / ASK (`EVAL "return
//!   redis.error_reply('MOVED ...')"`) moves nothing for anyone else and
//!   connects nowhere: a listener the test opens on the forged port never
//!   sees a connection, and another client's GETs still reach the owner;
//! - one command policy in every state: CONFIG SET inside MULTI or behind
//!   an UNSUBSCRIBE never reaches a node (CONFIG GET before and after),
//!   FLUSHALL inside MULTI under `allow_flush = false` deletes nothing, and
//!   `allow_scripts = false` refuses scripts, inside MULTI too.

mod common;

use std::io::ErrorKind;
use std::net::TcpListener;

use common::cluster::{cli, Cluster};
use common::cluster_puerta::{cmd, text, ClusterProxy};
use common::drivers;
use common::twem::RawResp;
use puerta::route::keyslot;

const EXECABORT: &str = "-EXECABORT Transaction discarded because of previous errors.";

fn one(c: &mut RawResp, args: &[&str]) -> String {
    text(&c.pipeline(&[cmd(args)]).remove(0))
}

/// `slowlog-max-len` on every master.
fn slowlog_lens(cluster: &Cluster) -> Vec<String> {
    cluster.master_ports().iter().map(|&p| cli(p, &["CONFIG", "GET", "slowlog-max-len"])).collect()
}

#[test]
fn forged_redirects_and_the_command_policy_hold_on_a_real_cluster() {
    let cluster = Cluster::start();
    let lens = slowlog_lens(&cluster);
    assert!(lens.iter().all(|l| !l.contains("4242")), "{lens:?}");
    for io in drivers() {
        // Waiting for a refresh that names the forged node is short here.
        let px = ClusterProxy::start(&cluster, io, "allow_flush = false\nmax_retries = 2\nretry_backoff = \"10ms\"");
        let forged = TcpListener::bind("127.0.0.1:0").unwrap();
        forged.set_nonblocking(true).unwrap();
        let forged_port = forged.local_addr().unwrap().port();
        let (mut attacker, mut victim) = (px.client(), px.client());
        let k = format!("{io}:victim");
        let slot = keyslot(k.as_bytes());
        let owner = cluster.owner_of(slot);
        assert_eq!(one(&mut victim, &["SET", &k, "v"]), "OK");

        for word in ["MOVED", "ASK"] {
            let script = format!("return redis.error_reply('{word} {slot} 127.0.0.1:{forged_port}')");
            assert_eq!(
                one(&mut attacker, &["EVAL", &script, "1", &k]),
                format!("-ERR {word} {slot} 127.0.0.1:{forged_port} not followed: not a node of the cluster topology"),
                "{io}"
            );
            let before = cluster.calls(owner, "get");
            let gets: Vec<Vec<u8>> = (0..50).map(|_| cmd(&["GET", &k])).collect();
            assert!(victim.pipeline(&gets).iter().all(|r| text(r) == "v"), "{io}: {word}");
            assert_eq!(cluster.calls(owner, "get") - before, 50, "{io}: {word}: every GET reached the slot's owner");
        }
        match forged.accept() {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            other => panic!("{io}: something connected to the forged address: {other:?}"),
        }
        assert_eq!(px.counter("moved"), 0.0, "{io}: no redirect was followed");

        // CONFIG SET inside MULTI is refused and aborts the transaction.
        let replies = attacker.pipeline(&[
            cmd(&["MULTI"]),
            cmd(&["CONFIG", "SET", "slowlog-max-len", "4242"]),
            cmd(&["SET", &k, "x"]),
            cmd(&["EXEC"]),
        ]);
        let got: Vec<String> = replies.iter().map(text).collect();
        assert!(got[1].starts_with("-ERR unsupported command 'CONFIG'"), "{io}: {got:?}");
        assert_eq!([&got[0], &got[2], &got[3]], ["OK", "QUEUED", EXECABORT], "{io}");

        // FLUSHALL inside MULTI under allow_flush = false.
        let replies = attacker.pipeline(&[cmd(&["MULTI"]), cmd(&["FLUSHALL"]), cmd(&["EXEC"])]);
        let got: Vec<String> = replies.iter().map(text).collect();
        assert_eq!(
            got,
            ["OK", "-ERR FLUSHALL is refused by this Puerta pool (allow_flush = false)", EXECABORT],
            "{io}"
        );
        assert_eq!(one(&mut victim, &["GET", &k]), "v", "{io}: nothing was flushed or set");

        // Subscribed: what follows an UNSUBSCRIBE in the same write may
        // reach a connection that is no longer subscribed; it is filtered.
        let mut sub = px.client();
        let replies = sub.pipeline(&[
            cmd(&["SUBSCRIBE", "ch"]),
            cmd(&["UNSUBSCRIBE", "ch"]),
            cmd(&["CONFIG", "SET", "slowlog-max-len", "4242"]),
            cmd(&["FLUSHALL"]),
        ]);
        let got: Vec<String> = replies.iter().map(text).collect();
        assert!(got.iter().any(|r| r.starts_with("-ERR unsupported command 'CONFIG'")), "{io}: {got:?}");
        assert!(got.iter().any(|r| r.starts_with("-ERR FLUSHALL is refused")), "{io}: {got:?}");
        assert_eq!(slowlog_lens(&cluster), lens, "{io}: no node's config changed");
        assert_eq!(one(&mut victim, &["GET", &k]), "v", "{io}");
    }

    // allow_scripts = false: a script could flush behind allow_flush.
    for io in drivers() {
        let px = ClusterProxy::start(&cluster, io, "allow_flush = false\nallow_scripts = false");
        let mut c = px.client();
        let k = format!("{io}:victim");
        let refused = "-ERR EVAL is refused by this Puerta pool (allow_scripts = false)";
        assert_eq!(one(&mut c, &["EVAL", "redis.call('FLUSHALL')", "0"]), refused, "{io}");
        let replies =
            c.pipeline(&[cmd(&["MULTI"]), cmd(&["EVAL", "redis.call('DEL', KEYS[1])", "1", &k]), cmd(&["EXEC"])]);
        let got: Vec<String> = replies.iter().map(text).collect();
        assert_eq!(got, ["OK", refused, EXECABORT], "{io}");
        assert_eq!(one(&mut c, &["GET", &k]), "v", "{io}: the key survived");
    }
}
