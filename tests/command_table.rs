//! The Redis 7 command table (`protocol::command`) end to end, under both
//! I/O drivers: arity as Redis checks it (`EXPIRE k 100 NX`), keys found by
//! Redis's key specs (numkeys, subcommands), and multi-key commands
//! forwarded when their keys share a server (twemproxy, two real
//! redis-servers) or a slot (a real 3-master cluster), refused otherwise.
//! Error texts are compared with what redis-server itself answers. The
//! checked-in table is compared with a fresh run of its generator.

mod common;

use common::cluster::Cluster;
use common::cluster_puerta::{cmd, text, ClusterProxy};
use common::twem::RawResp;
use common::twem_puerta::PuertaTwem;
use common::{drivers, redis};
use puerta::route::ShardRing;

fn run(c: &mut RawResp, args: &[&str]) -> String {
    text(&c.pipeline(&[cmd(args)]).remove(0))
}

/// The commands whose errors must read exactly as the server's own: wrong
/// arity (the text names `object|encoding` for a subcommand) and a key
/// count the proxy cannot use, which it forwards for the server to refuse.
const SAME_AS_REDIS: &[&[&str]] = &[
    &["GET"],
    &["EXPIRE", "k"],
    &["OBJECT", "ENCODING"],
    &["MEMORY", "USAGE"],
    &["CONFIG", "GET"],
    &["SINTERCARD", "5", "{t}a"],
    &["LMPOP", "x", "{t}a", "LEFT"],
    &["ZINTERCARD", "-1", "{t}a"],
    &["OBJECT", "NOSUCH", "{t}a"],
];

/// EXPIRE NX, GETEX, GETDEL, OBJECT ENCODING, MEMORY USAGE, EXPIRETIME and
/// the numkeys commands on keys that share a `{t}` tag.
fn single_and_tagged(c: &mut RawResp, io: &str) {
    assert_eq!(run(c, &["SET", "{t}s", "12345"]), "OK");
    assert_eq!(run(c, &["EXPIRE", "{t}s", "100", "NX"]), "1", "{io}");
    assert_eq!(run(c, &["EXPIRE", "{t}s", "200", "NX"]), "0", "{io}: NX keeps the first expiry");
    assert!(run(c, &["EXPIRETIME", "{t}s"]).parse::<i64>().unwrap_or(0) > 1_600_000_000, "{io}");
    assert_eq!(run(c, &["OBJECT", "ENCODING", "{t}s"]), "int", "{io}");
    assert!(run(c, &["MEMORY", "USAGE", "{t}s"]).parse::<i64>().unwrap_or(0) > 0, "{io}");
    assert_eq!(run(c, &["GETEX", "{t}s", "PERSIST"]), "12345", "{io}");
    assert_eq!(run(c, &["TTL", "{t}s"]), "-1", "{io}");
    assert_eq!(run(c, &["GETDEL", "{t}s"]), "12345", "{io}");
    assert_eq!(run(c, &["EXISTS", "{t}s"]), "0", "{io}");
    assert_eq!(run(c, &["SADD", "{t}a", "1", "2", "3"]), "3");
    assert_eq!(run(c, &["SADD", "{t}b", "2", "3", "4"]), "3");
    assert_eq!(run(c, &["SINTERCARD", "2", "{t}a", "{t}b"]), "2", "{io}");
    assert_eq!(run(c, &["ZADD", "{t}z1", "1", "a", "2", "b"]), "2");
    assert_eq!(run(c, &["ZADD", "{t}z2", "1", "b"]), "1");
    assert_eq!(run(c, &["ZINTERCARD", "2", "{t}z1", "{t}z2", "LIMIT", "5"]), "1", "{io}");
    assert_eq!(run(c, &["RPUSH", "{t}l2", "x", "y"]), "2");
    assert_eq!(run(c, &["LMPOP", "2", "{t}l1", "{t}l2", "LEFT"]), "[{t}l2,[x]]", "{io}");
    assert_eq!(run(c, &["ZMPOP", "1", "{t}z1", "MIN"]), "[{t}z1,[[a,1]]]", "{io}");
    assert_eq!(run(c, &["MSET", "{t}s1", "ohmytext", "{t}s2", "mynewtext"]), "OK");
    assert_eq!(run(c, &["LCS", "{t}s1", "{t}s2"]), "mytext", "{io}");
    assert_eq!(run(c, &["XADD", "{t}x", "1-1", "f", "v"]), "1-1");
    assert_eq!(run(c, &["XGROUP", "CREATE", "{t}x", "g", "0"]), "OK", "{io}");
    assert_eq!(run(c, &["XAUTOCLAIM", "{t}x", "g", "c", "0", "0"]), "[0-0,[],[]]", "{io}");
    assert!(run(c, &["XINFO", "STREAM", "{t}x"]).starts_with("[length,1,"), "{io}");
}

/// Each `SAME_AS_REDIS` command answers through the proxy as `direct` does.
fn same_errors_as(c: &mut RawResp, direct: &mut RawResp, io: &str, skip_config: bool) {
    for args in SAME_AS_REDIS {
        if skip_config && args[0] == "CONFIG" {
            continue;
        }
        let want = run(direct, args);
        assert!(want.starts_with("-ERR"), "{args:?}: redis-server said {want}");
        assert_eq!(run(c, args), want, "{io}: {args:?}");
    }
    assert_eq!(run(c, &["PING"]), "PONG", "{io}: the connection stays");
}

#[test]
fn twemproxy_pool_follows_redis_arity_and_key_specs() {
    let backends = [redis(), redis()];
    let ports: Vec<u16> = backends.iter().map(|b| b.port).collect();
    let servers: Vec<String> = ports.iter().map(|p| format!("\"127.0.0.1:{p}:1\"")).collect();
    let toml = format!(
        "[[pool]]\nname = \"alpha\"\nlisten = \"127.0.0.1:{{listen}}\"\nmode = \"redis\"\nhash_tag = \"{{}}\"\n\
         unsupported = \"error\"\nservers = [{}]\n",
        servers.join(", ")
    );
    let mut direct = RawResp::connect(ports[0]);
    for io in drivers() {
        let px = PuertaTwem::start_with(&toml, io, "puerta.toml", &[]);
        let cfg = puerta::config::load(&px.conf).unwrap_or_else(|e| panic!("{e}"));
        let ring: ShardRing = puerta::route::ring::for_pool(&cfg.pools[0], &|_| true).expect("a ring");
        let mut c = RawResp::connect(px.port());
        single_and_tagged(&mut c, io);
        // CONFIG is outside the pool's policy: refused, not checked.
        same_errors_as(&mut c, &mut direct, io, true);
        assert_eq!(run(&mut c, &["CONFIG", "GET", "x"]), "-ERR unsupported command 'CONFIG'", "{io}");
        // Two keys on different servers: refused, naming the command.
        let on = |s: u32| (0..).map(|i| format!("k{i}")).find(|k| ring.pick(k.as_bytes()) == Some(s)).unwrap();
        let (a, b) = (on(0), on(1));
        for (args, name) in [
            (vec!["SINTERCARD", "2", &a, &b], "sintercard"),
            (vec!["LMPOP", "2", &a, &b, "LEFT"], "lmpop"),
            (vec!["ZINTERCARD", "2", &a, &b], "zintercard"),
            (vec!["RENAME", &a, &b], "rename"),
        ] {
            assert_eq!(run(&mut c, &args), format!("-ERR '{name}' keys map to different servers"), "{io}");
        }
        // MGET and DEL still split over the servers.
        assert_eq!(run(&mut c, &["MSET", &a, "1", &b, "2"]), "OK");
        assert_eq!(run(&mut c, &["MGET", &a, &b]), "[1,2]", "{io}");
        assert_eq!(
            run(&mut c, &["DEL", &a, &b, "{t}a", "{t}b", "{t}z1", "{t}z2", "{t}l2", "{t}x", "{t}s1", "{t}s2"]),
            "10",
            "{io}"
        );
    }
}

#[test]
fn cluster_pool_follows_redis_arity_and_key_specs() {
    let cluster = Cluster::start_with(3, 0, 2000);
    let mut direct = RawResp::connect(cluster.any_port());
    for io in drivers() {
        let px = ClusterProxy::start(&cluster, io, "");
        let mut c = px.client();
        single_and_tagged(&mut c, io);
        same_errors_as(&mut c, &mut direct, io, false);
        // "a" and "b" hash to different slots.
        assert_ne!(puerta::route::keyslot(b"a"), puerta::route::keyslot(b"b"));
        let cross = "-CROSSSLOT Keys in request don't hash to the same slot";
        for args in [
            vec!["SINTERCARD", "2", "a", "b"],
            vec!["LMPOP", "2", "a", "b", "LEFT"],
            vec!["ZINTERCARD", "2", "a", "b"],
            vec!["LCS", "a", "b"],
        ] {
            assert_eq!(run(&mut c, &args), cross, "{io}: {args:?}");
        }
        assert_eq!(run(&mut c, &["MSET", "a", "1", "b", "2"]), "OK", "{io}: MSET still splits");
        assert_eq!(run(&mut c, &["MGET", "a", "b"]), "[1,2]", "{io}");
        assert_eq!(
            run(&mut c, &["DEL", "a", "b", "{t}a", "{t}b", "{t}z1", "{t}z2", "{t}l2", "{t}x", "{t}s1", "{t}s2"]),
            "10",
            "{io}"
        );
    }
}

/// `src/protocol/command/table_gen.rs` is what `scripts/gen-command-table.py`
/// makes from the installed redis-server (it starts its own).
#[test]
fn checked_in_table_matches_the_generator() {
    let root = env!("CARGO_MANIFEST_DIR");
    let python = std::process::Command::new("python3").arg("--version").output();
    if python.map(|o| !o.status.success()).unwrap_or(true) {
        eprintln!("skipped: python3 is not installed, so the generator cannot run");
        return;
    }
    let out = std::process::Command::new("python3")
        .arg(format!("{root}/scripts/gen-command-table.py"))
        .arg("--check")
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the checked-in table differs from the generator's output:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
