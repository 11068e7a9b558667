//! The sans-IO cluster session against a real 3-master / 3-replica
//! cluster, driven by the test-only std-socket driver
//! (`common::cluster_driver`) until the workers host it.
//!
//! Two clusters: one for scenarios that leave the topology alone (slot
//! routing for 10,000 keys against `redis-cli -c`, fan-out merge order,
//! SCAN, pinned transactions and blocking commands, pub/sub, replica
//! reads, a script's forged redirects and CONFIG inside MULTI), one for scenarios that change it (forced ASK and MOVED with
//! CLUSTER SETSLOT + MIGRATE, `redis-cli --cluster reshard` under load, a
//! master killed under load). Scenarios sharing a cluster run in order
//! inside one test, with their own key prefixes.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::{cli, Cluster, SETTLE};
use common::cluster_driver::Driver;
use common::twem::command;
use common::wait_until;
use puerta::config::{PoolConfig, ReadFrom};
use puerta::control::cluster::ClusterPool;
use puerta::protocol::resp::value::{self, Value};
use puerta::protocol::resp::Reply;
use puerta::route::{keyslot, ClusterReport, SlotMap};
use puerta::session::cluster::ClusterSessionConfig;

/// The cluster pool config for `cluster` (seeds = every node).
fn pool(cluster: &Cluster, extra: &str) -> PoolConfig {
    let seeds: Vec<String> = cluster.seeds().iter().map(|s| format!("\"{s}\"")).collect();
    let src = format!(
        "[[pool]]\nname = \"c\"\nlisten = \"127.0.0.1:7000\"\nmode = \"redis_cluster\"\nservers = [{}]\n{extra}\n",
        seeds.join(", ")
    );
    let mut cfg = puerta::config::parse(&src, Path::new("t.toml")).unwrap();
    cfg.pools.remove(0)
}

/// A session on the current topology, with a real refresh behind it.
fn driver(cluster: &Cluster, extra: &str) -> Driver {
    let p = pool(cluster, extra);
    let mut refresh = ClusterPool::new(&p, Instant::now()).unwrap();
    assert!(refresh.poll_refresh(Instant::now()), "first topology");
    let mut d = Driver::new(ClusterSessionConfig::from_pool(&p).unwrap(), refresh.map());
    d.refresh = Some(refresh);
    d
}

fn cmd(args: &[&str]) -> Vec<u8> {
    let raw: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    command(&raw)
}

fn text(r: &Reply) -> String {
    String::from_utf8_lossy(&r.raw).into_owned()
}

fn bulk(r: &Reply) -> Option<String> {
    match value::parse(&r.raw).ok()? {
        Value::Bulk(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        _ => None,
    }
}

/// Runs `lines` through `redis-cli -c` (a cluster-aware client that
/// follows MOVED/ASK itself) and returns its output lines without its
/// "-> Redirected" notes.
fn redis_cli_c(port: u16, lines: &[String]) -> Vec<String> {
    let mut child = Command::new("redis-cli")
        .args(["-c", "-p", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let input = lines.join("\n") + "\n";
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("-> Redirected"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn routing_fanout_scan_pinned_and_replica_reads_on_a_real_cluster() {
    let cluster = Cluster::start();
    let mut d = driver(&cluster, "");
    let c = d.client();

    // Slot routing for 10,000 keys: every SET lands on its slot's master
    // the first time (no MOVED), and a direct cluster client reads them.
    let n = 10_000;
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let cmds: Vec<Vec<u8>> = chunk.iter().map(|i| cmd(&["SET", &format!("rk:{i}"), &format!("v{i}")])).collect();
        for r in d.pipeline(c, &cmds) {
            assert_eq!(text(&r), "+OK\r\n");
        }
    }
    assert_eq!(d.s.stats().moved, 0, "routed right the first time");
    let gets: Vec<String> = (0..n).map(|i| format!("GET rk:{i}")).collect();
    let got = redis_cli_c(cluster.any_port(), &gets);
    let want: Vec<String> = (0..n).map(|i| format!("v{i}")).collect();
    assert_eq!(got, want, "redis-cli -c reads back every value Puerta's session wrote");
    for m in cluster.master_ports() {
        let keys = common::twem::RawResp::connect(m).keys();
        assert!(!keys.is_empty());
        for k in keys {
            assert_eq!(cluster.owner_of(keyslot(&k)), m, "{} sits on its slot's master", String::from_utf8_lossy(&k));
        }
    }
    // And the other way: keys written by the direct client, read by Puerta.
    let sets: Vec<String> = (0..1000).map(|i| format!("SET wk:{i} w{i}")).collect();
    assert!(redis_cli_c(cluster.any_port(), &sets).iter().all(|l| l == "OK"));
    let mget: Vec<String> = (0..1000).map(|i| format!("wk:{i}")).collect();
    let args: Vec<&str> = std::iter::once("MGET").chain(mget.iter().map(String::as_str)).collect();
    let r = d.pipeline(c, &[cmd(&args)]).remove(0);
    let values: Vec<String> =
        r.elements().iter().map(|e| String::from_utf8_lossy(&e[4..e.len() - 2]).into_owned()).collect();
    assert_eq!(values.len(), 1000);
    assert!(values.iter().enumerate().all(|(i, v)| v.ends_with(&format!("w{i}"))), "MGET merged in key order");

    // Fan-out merge order with missing keys interleaved; DEL / EXISTS sums.
    let mut rng = fastrand::Rng::with_seed(3);
    let picks: Vec<usize> = (0..300).map(|_| rng.usize(0..n)).collect();
    let names: Vec<String> = picks
        .iter()
        .enumerate()
        .map(|(j, i)| if j % 3 == 0 { format!("missing:{j}") } else { format!("rk:{i}") })
        .collect();
    let args: Vec<&str> = std::iter::once("MGET").chain(names.iter().map(String::as_str)).collect();
    let r = d.pipeline(c, &[cmd(&args)]).remove(0);
    let els = r.elements();
    assert_eq!(els.len(), names.len());
    for (j, (e, i)) in els.iter().zip(&picks).enumerate() {
        let want = if j % 3 == 0 { "$-1\r\n".to_owned() } else { format!("${}\r\nv{i}\r\n", format!("v{i}").len()) };
        assert_eq!(String::from_utf8_lossy(e), want, "element {j}");
    }
    assert_eq!(d.cmd(c, &["EXISTS", "rk:1", "rk:2", "nope", "rk:1"]), ":3\r\n");
    assert_eq!(d.cmd(c, &["MSET", "m:a", "1", "m:b", "2", "m:c", "3"]), "+OK\r\n");
    assert_eq!(d.cmd(c, &["DEL", "m:a", "m:b", "m:zz", "m:c"]), ":3\r\n");

    // SCAN through every master returns every key exactly once.
    let mut cursor = "0".to_owned();
    let mut seen = std::collections::HashMap::new();
    loop {
        let r = d.pipeline(c, &[cmd(&["SCAN", &cursor, "MATCH", "rk:*", "COUNT", "500"])]).remove(0);
        let Ok(Value::Array(items)) = value::parse(&r.raw) else { panic!("SCAN reply {}", text(&r)) };
        cursor = items[0].as_str().unwrap().to_owned();
        for k in items[1].as_array().unwrap() {
            *seen.entry(k.as_str().unwrap().to_owned()).or_insert(0) += 1;
        }
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len(), n, "every key");
    assert!(seen.values().all(|&v| v == 1), "exactly once");
    assert_eq!(d.cmd(c, &["DBSIZE"]), format!(":{}\r\n", n + 1000));
    let keys = d.pipeline(c, &[cmd(&["KEYS", "wk:*"])]).remove(0);
    assert_eq!(keys.elements().len(), 1000);
    let info = bulk(&d.pipeline(c, &[cmd(&["INFO"])]).remove(0)).unwrap();
    assert!(info.contains(&format!("db0:keys={},", n + 1000)), "{info}");

    // Transactions and blocking commands on pinned connections.
    let c2 = d.client();
    assert_eq!(d.cmd(c, &["MULTI"]), "+OK\r\n");
    assert_eq!(d.cmd(c, &["SET", "{t}a", "1"]), "+QUEUED\r\n");
    assert_eq!(d.cmd(c, &["INCR", "{t}a"]), "+QUEUED\r\n");
    assert_eq!(d.cmd(c, &["EXEC"]), "*2\r\n+OK\r\n:2\r\n");
    assert_eq!(d.cmd(c, &["WATCH", "{t}a"]), "+OK\r\n");
    assert_eq!(d.cmd(c2, &["SET", "{t}a", "changed"]), "+OK\r\n");
    assert_eq!(d.cmd(c, &["MULTI"]), "+OK\r\n");
    assert_eq!(d.cmd(c, &["SET", "{t}a", "mine"]), "+QUEUED\r\n");
    assert_eq!(d.cmd(c, &["EXEC"]), "*-1\r\n", "the WATCH saw the other client's write");
    assert_eq!(d.cmd(c, &["WATCH", "{t}a"]), "+OK\r\n");
    assert_eq!(d.cmd(c, &["MULTI"]), "+OK\r\n");
    assert_eq!(d.cmd(c, &["SET", "{t}a", "mine"]), "+QUEUED\r\n");
    assert_eq!(d.cmd(c, &["EXEC"]), "*1\r\n+OK\r\n");
    assert!(d.s.stats().pinned_reused >= 1, "the second WATCH reused the pooled connection");
    d.send(c, &cmd(&["BLPOP", "{q}list", "10"]));
    d.run_for(Duration::from_millis(100));
    assert_eq!(d.cmd(c2, &["LPUSH", "{q}list", "x"]), ":1\r\n");
    assert_eq!(text(&d.replies(c, 1)[0]), "*2\r\n$7\r\n{q}list\r\n$1\r\nx\r\n");

    // Pub/sub on a pinned connection.
    d.send(c, &cmd(&["SUBSCRIBE", "news"]));
    assert_eq!(text(&d.replies(c, 1)[0]), "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n");
    assert_eq!(d.cmd(c2, &["PUBLISH", "news", "hi"]), ":1\r\n", "published where Puerta subscribed it");
    assert_eq!(text(&d.replies(c, 1)[0]), "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n");
    d.send(c, &cmd(&["UNSUBSCRIBE"]));
    assert_eq!(text(&d.replies(c, 1)[0]), "*3\r\n$11\r\nunsubscribe\r\n$4\r\nnews\r\n:0\r\n");
    assert_eq!(d.cmd(c, &["GET", "rk:7"]), "$2\r\nv7\r\n", "back to normal routing");

    // read_from = replica: reads show up in the replicas' commandstats.
    for m in cluster.master_ports() {
        for r in cluster.replica_ports(m) {
            let (mk, rk) = (common::twem::RawResp::connect(m).keys().len(), r);
            wait_until("replica to catch up", SETTLE, || common::twem::RawResp::connect(rk).keys().len() == mk);
        }
    }
    let mut rd = driver(&cluster, "read_from = \"replica\"");
    assert_eq!(rd.s.config().read_from, ReadFrom::Replica);
    let rc = rd.client();
    let masters = cluster.master_ports();
    let replicas: Vec<u16> = masters.iter().flat_map(|&m| cluster.replica_ports(m)).collect();
    let before: Vec<u64> = masters.iter().chain(&replicas).map(|&p| cluster.calls(p, "get")).collect();
    let cmds: Vec<Vec<u8>> = (0..300).map(|i| cmd(&["GET", &format!("rk:{i}")])).collect();
    for (i, r) in rd.pipeline(rc, &cmds).iter().enumerate() {
        assert_eq!(bulk(r), Some(format!("v{i}")));
    }
    let after: Vec<u64> = masters.iter().chain(&replicas).map(|&p| cluster.calls(p, "get")).collect();
    let delta: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(&delta[..3], [0, 0, 0], "no GET reached a master: {delta:?}");
    assert_eq!(delta[3..].iter().sum::<u64>(), 300, "every GET was served by a replica: {delta:?}");
    assert!(delta[3..].iter().all(|&n| n > 0), "each replica served its shard: {delta:?}");
    assert_eq!(rd.cmd(rc, &["SET", "rk:0", "w"]), "+OK\r\n", "writes still go to masters");

    forged_redirects_and_config_in_multi(&cluster);
}

/// A script's forged MOVED / ASK moves nothing for another client and
/// connects nowhere (a listener on the forged port sees no connection);
/// CONFIG SET inside MULTI never reaches a node.
fn forged_redirects_and_config_in_multi(cluster: &Cluster) {
    let mut d = driver(cluster, "max_retries = 2\nretry_backoff = \"10ms\"");
    let (a, v) = (d.client(), d.client());
    let forged = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    forged.set_nonblocking(true).unwrap();
    let port = forged.local_addr().unwrap().port();
    let k = "trust:k";
    let (slot, owner) = (keyslot(k.as_bytes()), cluster.owner_of(keyslot(k.as_bytes())));
    assert_eq!(d.cmd(v, &["SET", k, "v"]), "+OK\r\n");
    for word in ["MOVED", "ASK"] {
        let script = format!("return redis.error_reply('{word} {slot} 127.0.0.1:{port}')");
        let want = format!("-ERR {word} {slot} 127.0.0.1:{port} not followed: not a node of the cluster topology\r\n");
        assert_eq!(d.cmd(a, &["EVAL", &script, "1", k]), want);
        let before = cluster.calls(owner, "get");
        for _ in 0..20 {
            assert_eq!(d.cmd(v, &["GET", k]), "$1\r\nv\r\n", "{word}");
        }
        assert_eq!(cluster.calls(owner, "get") - before, 20, "{word}: every GET reached the owner");
    }
    assert!(forged.accept().is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock), "nothing connected");
    assert!(d.reports.contains(&ClusterReport::UnknownNode { slot }), "a refresh was asked for: {:?}", d.reports);
    assert!(!d.reports.iter().any(|r| matches!(r, ClusterReport::Moved { .. })), "no MOVED reported");
    assert_eq!(d.s.stats().moved, 0);

    let lens: Vec<String> =
        cluster.master_ports().iter().map(|&p| cli(p, &["CONFIG", "GET", "slowlog-max-len"])).collect();
    let set = cmd(&["CONFIG", "SET", "slowlog-max-len", "4242"]);
    let replies = d.pipeline(a, &[cmd(&["MULTI"]), set, cmd(&["EXEC"])]);
    assert!(text(&replies[1]).starts_with("-ERR unsupported command 'CONFIG'"), "{}", text(&replies[1]));
    assert_eq!(text(&replies[2]), "-EXECABORT Transaction discarded because of previous errors.\r\n");
    let after: Vec<String> =
        cluster.master_ports().iter().map(|&p| cli(p, &["CONFIG", "GET", "slowlog-max-len"])).collect();
    assert_eq!(after, lens, "no node's config changed");
}

#[test]
fn ask_moved_reshard_and_failover_on_a_real_cluster() {
    let mut cluster = Cluster::start();
    let mut d = driver(&cluster, "");
    let c = d.client();

    // Forced ASK: slot of {mig} half migrated to another master.
    let slot = keyslot(b"mig");
    let from = cluster.owner_of(slot);
    let to = *cluster.master_ports().iter().find(|&&p| p != from).unwrap();
    let keys: Vec<String> = (0..20).map(|i| format!("{{mig}}{i}")).collect();
    for k in &keys {
        assert_eq!(d.cmd(c, &["SET", k, &format!("val-{k}")]), "+OK\r\n");
    }
    assert_eq!(cluster.begin_migration(slot, to), from);
    let moved: Vec<&[u8]> = keys[..10].iter().map(|k| k.as_bytes()).collect();
    cluster.migrate_keys(from, to, &moved);
    for k in &keys {
        assert_eq!(
            d.pipeline(c, &[cmd(&["GET", k])]).iter().map(bulk).next().flatten(),
            Some(format!("val-{k}")),
            "{k}"
        );
    }
    assert_eq!(d.s.stats().ask, 10, "one ASK per migrated key; the others served by the old owner");
    assert_eq!(d.s.stats().moved, 0, "ASK does not change the map");
    assert_eq!(d.cmd(c, &["SET", "{mig}new", "n"]), "+OK\r\n", "a new key during the migration goes via ASK");
    let rest: Vec<&[u8]> = keys[10..].iter().map(|k| k.as_bytes()).chain([&b"{mig}new"[..]]).collect();
    let left: Vec<&[u8]> = rest
        .into_iter()
        .filter(|k| common::twem::RawResp::connect(from).cmd(&[b"EXISTS", k]) == common::twem::Reply::Int(1))
        .collect();
    if !left.is_empty() {
        cluster.migrate_keys(from, to, &left);
    }
    cluster.finish_migration(slot, to);

    // MOVED: the session follows, reports, and the refresh takes the new map.
    for k in &keys {
        assert_eq!(d.pipeline(c, &[cmd(&["GET", k])]).iter().map(bulk).next().flatten(), Some(format!("val-{k}")));
    }
    assert!(d.s.stats().moved >= 1);
    assert!(d
        .reports
        .iter()
        .any(|r| matches!(r, ClusterReport::Moved { slot: s, addr } if *s == slot && addr.port() == to)));
    wait_until("the refreshed map in the session", SETTLE, || {
        d.pump();
        let v: &Arc<SlotMap> = d.s.topology();
        v.master_of(slot).and_then(|i| v.node(i)).is_some_and(|n| n.addr.port() == to)
    });

    // Reshard under load: a writer and a reader through the session see no
    // error, and every key ends with its last written value.
    let masters = cluster.master_ports();
    let (src, dst) = (masters[0], masters[2]);
    let seeds_port = cluster.any_port();
    let reshard = {
        let src_id = cluster.node_id(src);
        let dst_id = cluster.node_id(dst);
        std::thread::spawn(move || {
            Command::new("redis-cli")
                .args(["--cluster", "reshard", &format!("127.0.0.1:{seeds_port}")])
                .args(["--cluster-from", &src_id, "--cluster-to", &dst_id, "--cluster-slots", "300", "--cluster-yes"])
                .args(["--cluster-pipeline", "5"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .status()
                .unwrap()
        })
    };
    let (w, r) = (d.client(), d.client());
    let nkeys = 2000;
    let mut last = vec![0u32; nkeys];
    let mut round = 0u32;
    let mut errors = Vec::new();
    while !reshard.is_finished() || round < 3 {
        round += 1;
        for chunk in (0..nkeys).collect::<Vec<_>>().chunks(200) {
            let sets: Vec<Vec<u8>> =
                chunk.iter().map(|&i| cmd(&["SET", &format!("rs:{i}"), &format!("{round}")])).collect();
            let gets: Vec<Vec<u8>> = chunk.iter().map(|&i| cmd(&["GET", &format!("rs:{i}")])).collect();
            d.send(w, &sets.concat());
            d.send(r, &gets.concat());
            for (&i, rep) in chunk.iter().zip(d.replies(w, sets.len())) {
                if text(&rep) == "+OK\r\n" {
                    last[i] = round;
                } else {
                    errors.push(format!("SET rs:{i}: {}", text(&rep)));
                }
            }
            for (&i, rep) in chunk.iter().zip(d.replies(r, gets.len())) {
                if rep.is_error() {
                    errors.push(format!("GET rs:{i}: {}", text(&rep)));
                }
            }
        }
    }
    assert!(reshard.join().unwrap().success(), "redis-cli --cluster reshard");
    assert!(errors.is_empty(), "no client errors during resharding: {:?}", &errors[..errors.len().min(5)]);
    let gets: Vec<String> = (0..nkeys).map(|i| format!("GET rs:{i}")).collect();
    let finals = redis_cli_c(cluster.any_port(), &gets);
    let want: Vec<String> = last.iter().map(|v| v.to_string()).collect();
    assert_eq!(finals, want, "every key holds its last written value");
    eprintln!(
        "reshard under load: {round} rounds, moved {} ask {} retried {}",
        d.s.stats().moved,
        d.s.stats().ask,
        d.s.stats().retried
    );

    // A master killed under load: only requests already sent to it may
    // fail, with a clear error; its slots come back on the promoted replica.
    let victim = cluster.master_ports()[1];
    let heir = cluster.replica_ports(victim)[0];
    let vkeys: Vec<String> = (0..)
        .map(|i| format!("fo:{i}"))
        .filter(|k| cluster.owner_of(keyslot(k.as_bytes())) == victim)
        .take(50)
        .collect();
    let killed = Instant::now();
    let mut in_flight_errors = 0;
    let mut first_ok_after = None;
    cluster.kill(victim);
    while first_ok_after.is_none() {
        let sets: Vec<Vec<u8>> = vkeys.iter().map(|k| cmd(&["SET", k, "x"])).collect();
        d.send(w, &sets.concat());
        let reps = d.replies(w, sets.len());
        for rep in &reps {
            if rep.is_error() {
                let t = text(rep);
                assert!(t.starts_with("-ERR ") && !t.contains("MOVED"), "a clear error: {t}");
                in_flight_errors += 1;
            }
        }
        if reps.iter().all(|r| !r.is_error()) {
            first_ok_after = Some(killed.elapsed());
        }
        assert!(killed.elapsed() < SETTLE, "recovered");
    }
    cluster.wait_master(heir);
    eprintln!(
        "failover under load: {in_flight_errors} errors, writes succeed again after {:?}",
        first_ok_after.unwrap()
    );
    assert!(in_flight_errors <= vkeys.len(), "only the first batch (in flight at the kill) may fail");
    // The old master comes back as a replica of its heir.
    cluster.restart(victim);
    cluster.wait_healthy();
    assert_eq!(cluster.replica_ports(heir), [victim]);
    for k in &vkeys {
        assert_eq!(d.cmd(w, &["GET", k]), "$1\r\nx\r\n");
    }
}
