//! The cluster session's commands that Puerta answers itself or fans out
//! (PING, CLUSTER SLOTS/NODES/SHARDS, HELLO, AUTH against the pool's
//! users; DBSIZE, KEYS, INFO, SCAN across every master), with the
//! simulated driver of `tests.rs`.

use super::tests::{addr, cmd, map3, users, H};
use super::*;

#[test]
fn local_commands() {
    let mut h = H::default3();
    let c = h.client();
    for (args, want) in [
        (&["PING"][..], "+PONG\r\n"),
        (&["PING", "hi"][..], "$2\r\nhi\r\n"),
        (&["ECHO", "e"][..], "$1\r\ne\r\n"),
        (&["SELECT", "0"][..], "+OK\r\n"),
        (&["SELECT", "1"][..], "-ERR SELECT is not allowed in cluster mode\r\n"),
        (&["READONLY"][..], "+OK\r\n"),
        (&["CLUSTER", "KEYSLOT", "foo"][..], ":12182\r\n"),
        (&["CLIENT", "SETNAME", "app"][..], "+OK\r\n"),
        (&["CLIENT", "GETNAME"][..], "$3\r\napp\r\n"),
        (&["HELLO", "4"][..], "-NOPROTO unsupported protocol version\r\n"),
        (&["AUTH", "x"][..], "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n"),
        (&["CONFIG", "SET", "x", "y"][..], "-ERR unsupported command 'CONFIG' through Puerta in cluster mode (node administration: connect to the node)\r\n"),
    ] {
        h.send(c, args);
        assert_eq!(h.take_str(c), want, "{args:?}");
    }
    h.send(c, &["HELLO", "2"]);
    let hello = h.take_str(c);
    assert!(
        hello.starts_with("*14\r\n$6\r\nserver\r\n$6\r\npuerta\r\n")
            && hello.contains("$4\r\nmode\r\n$7\r\ncluster\r\n"),
        "{hello}"
    );
    h.send(c, &["CLUSTER", "SLOTS"]);
    let id = local::node_id(addr(7000));
    assert_eq!(h.take_str(c), format!("*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$40\r\n{id}\r\n"));
    h.send(c, &["CLUSTER", "INFO"]);
    assert!(h.take_str(c).contains("cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384"));
    h.send(c, &["CLUSTER", "NODES"]);
    assert!(h.take_str(c).contains(&format!("{id} 127.0.0.1:7000@0 myself,master - 0 0 1 connected 0-16383")));
    h.send(c, &["CLUSTER", "SHARDS"]);
    let shards = crate::protocol::resp::value::parse(&bytes::Bytes::from(h.take(c))).unwrap();
    let shard = shards.as_array().unwrap()[0].as_array().unwrap();
    assert_eq!(shard[0].as_str(), Some("slots"));
    assert_eq!(shard[1].as_array().map(|r| (r[0].as_int(), r[1].as_int())), Some((Some(0), Some(16383))));
    let node = shard[3].as_array().unwrap()[0].as_array().unwrap();
    assert_eq!((node[2].as_str(), node[3].as_int()), (Some("port"), Some(7000)));
    assert_eq!(node.len(), 14);
    // COMMAND is passed through to a master.
    h.send(c, &["COMMAND", "COUNT"]);
    h.send(c, &["QUIT"]);
    let to: Vec<u16> = [1, 2, 3].into_iter().filter(|&p| !h.conns_to(p).is_empty()).collect();
    assert_eq!(to.len(), 1, "one master");
    assert_eq!(h.written_to(to[0]), cmd(&["COMMAND", "COUNT"]));
    h.reply_to(to[0], b":240\r\n");
    assert_eq!(h.take_str(c), ":240\r\n+OK\r\n", "QUIT's +OK after the reply before it, then close");
    assert!(!h.s.wants_client_read(c));
}

#[test]
fn client_auth_gates_everything_until_auth() {
    let mut cfg = H::cfg();
    cfg.users = Some(users(&[("default", "on >pw +@all allkeys"), ("alice", "on >a-pw +@all allkeys")]));
    let mut h = H::new(cfg, map3(true));
    let c = h.client();
    h.send(c, &["GET", "k"]);
    h.send(c, &["AUTH", "nope"]);
    h.send(c, &["AUTH", "pw"]);
    h.send(c, &["AUTH", "alice", "bad"]);
    h.send(c, &["PING"]);
    assert_eq!(
        h.take_str(c),
        "-NOAUTH Authentication required.\r\n\
         -WRONGPASS invalid username-password pair or user is disabled.\r\n+OK\r\n\
         -WRONGPASS invalid username-password pair or user is disabled.\r\n\
         +PONG\r\n",
        "a failed AUTH leaves the client as it was (redis-server 7.0.15 does)"
    );
    let d = h.client();
    h.send(d, &["HELLO", "2", "AUTH", "alice", "a-pw", "SETNAME", "n"]);
    assert!(h.take_str(d).starts_with("*14\r\n"));
    h.send(d, &["CLIENT", "GETNAME"]);
    assert_eq!(h.take_str(d), "$1\r\nn\r\n");
}

#[test]
fn dbsize_keys_info_and_flush_fan_out_to_every_master() {
    let mut cfg = H::cfg();
    cfg.allow_flush = false;
    let mut h = H::new(cfg, map3(true));
    let c = h.client();
    h.send(c, &["DBSIZE"]);
    for p in [1, 2, 3] {
        assert_eq!(h.written_to(p), cmd(&["DBSIZE"]));
    }
    h.reply_to(3, b":30\r\n");
    h.reply_to(1, b":1\r\n");
    h.reply_to(2, b":200\r\n");
    assert_eq!(h.take_str(c), ":231\r\n");

    h.send(c, &["KEYS", "*"]);
    for p in [1, 2, 3] {
        assert_eq!(h.written_to(p), cmd(&["KEYS", "*"]));
    }
    h.reply_to(2, b"*1\r\n$1\r\nb\r\n");
    h.reply_to(1, b"*2\r\n$1\r\na\r\n$2\r\naa\r\n");
    h.reply_to(3, b"*0\r\n");
    assert_eq!(h.take_str(c), "*3\r\n$1\r\na\r\n$2\r\naa\r\n$1\r\nb\r\n", "master order");

    h.send(c, &["FLUSHALL"]);
    assert_eq!(h.take_str(c), "-ERR FLUSHALL is refused by this Puerta pool (allow_flush = false)\r\n");

    h.send(c, &["INFO"]);
    assert_eq!(h.written_to(1), cmd(&["INFO"]), "the client's INFO to every master");
    let ks = |keys, exp| format!("# Keyspace\r\ndb0:keys={keys},expires={exp},avg_ttl=10\r\n");
    let blk = |t: String| format!("${}\r\n{t}\r\n", t.len());
    let server = "# Server\r\nredis_version:7.0.15\r\n\r\n# Cluster\r\ncluster_enabled:0\r\n\r\n";
    h.reply_to(1, blk(format!("{server}{}", ks(10, 1))).as_bytes());
    h.reply_to(2, blk(ks(20, 2)).as_bytes());
    h.reply_to(3, blk(ks(30, 3)).as_bytes());
    let info = h.take_str(c);
    assert!(info.contains("# Proxy\r\nproxy:puerta\r\n"), "{info}");
    assert!(info.contains("cluster_masters:3\r\ncluster_nodes:6\r\n"), "{info}");
    assert!(info.contains("redis_version:7.0.15") && info.contains("cluster_enabled:1\r\n"), "{info}");
    assert!(info.contains("# Keyspace\r\ndb0:keys=60,expires=6,avg_ttl=10\r\n"), "{info}");
}

#[test]
fn scan_walks_every_master_with_the_shard_in_the_cursor() {
    let mut h = H::default3();
    let c = h.client();
    h.send(c, &["SCAN", "0", "COUNT", "3"]);
    assert_eq!(h.written_to(1), cmd(&["SCAN", "0", "COUNT", "3"]));
    h.reply_to(1, b"*2\r\n$2\r\n12\r\n*1\r\n$1\r\na\r\n");
    assert_eq!(h.take_str(c), "", "a short page goes on within the call");
    assert_eq!(h.written_to(1), cmd(&["SCAN", "12", "COUNT", "3"]), "node 1 again, its own cursor");
    h.reply_to(1, b"*2\r\n$1\r\n0\r\n*0\r\n");
    assert_eq!(h.written_to(2), cmd(&["SCAN", "0", "COUNT", "3"]), "node 1 done: on to the next master");
    h.reply_to(2, b"*2\r\n$1\r\n7\r\n*2\r\n$1\r\nb\r\n$1\r\nc\r\n");
    let cursor = (7u64 << 14) | 5461;
    let want = format!("*2\r\n${}\r\n{cursor}\r\n*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n", cursor.to_string().len());
    assert_eq!(h.take_str(c), want, "COUNT reached: node 2's cursor with its shard");
    h.send(c, &["SCAN", &cursor.to_string(), "COUNT", "2"]);
    assert_eq!(h.written_to(2), cmd(&["SCAN", "7", "COUNT", "2"]));
    h.reply_to(2, b"*2\r\n$1\r\n0\r\n*2\r\n$1\r\nd\r\n$1\r\ne\r\n");
    assert_eq!(h.take_str(c), "*2\r\n$5\r\n10923\r\n*2\r\n$1\r\nd\r\n$1\r\ne\r\n", "node 2 done, COUNT reached");
    h.send(c, &["SCAN", "10923"]);
    h.reply_to(3, b"*2\r\n$1\r\n0\r\n*0\r\n");
    assert_eq!(h.take_str(c), "*2\r\n$1\r\n0\r\n*0\r\n", "the last master done: cursor 0");
    // A small keyspace: one call, every master, cursor 0.
    h.send(c, &["SCAN", "0"]);
    h.reply_to(1, b"*2\r\n$1\r\n0\r\n*1\r\n$1\r\na\r\n");
    h.reply_to(2, b"*2\r\n$1\r\n0\r\n*0\r\n");
    h.reply_to(3, b"*2\r\n$1\r\n0\r\n*1\r\n$1\r\nz\r\n");
    assert_eq!(h.take_str(c), "*2\r\n$1\r\n0\r\n*2\r\n$1\r\na\r\n$1\r\nz\r\n");
    h.send(c, &["SCAN", "x"]);
    assert_eq!(h.take_str(c), "-ERR invalid cursor\r\n");
}
