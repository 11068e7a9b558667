//! `mode = "redis_cluster"` keys: defaults, every key parsed, strict errors.

use std::path::Path;
use std::time::Duration;

use crate::config::tests::err;
use crate::config::{parse, ClusterCommands, ClusterConfig, Mode, ReadFrom};

const CLUSTER: &str = "[[pool]]\nname = \"c\"\nlisten = \"127.0.0.1:7000\"\nmode = \"redis_cluster\"\n\
                       servers = [\"127.0.0.1:30001\", \"127.0.0.1:30002\"]\n";

#[test]
fn defaults_and_every_key() {
    let c = parse(CLUSTER, Path::new("t.toml")).unwrap();
    assert_eq!(c.pools[0].mode, Mode::RedisCluster);
    assert_eq!(c.pools[0].cluster, Some(ClusterConfig::default()));
    assert_eq!(c.pools[0].servers.len(), 2, "servers are the seeds");

    let src = format!(
        "{CLUSTER}refresh_interval = \"2s\"\nread_from = \"prefer_replica\"\nusername = \"proxy\"\n\
         password = \"s3cret\"\nmax_redirects = 3\nnode_connections = 2\npinned_connections = 8\n\
         pinned_idle = 2\nclient_auth = {{ default = \"pw\", alice = \"pw2\" }}\n\
         cluster_commands = \"passthrough\"\nallow_flush = false\nallow_scripts = false\nrequest_timeout = \"off\"\n\
         max_retries = 7\nretry_backoff = \"20ms\"\nmax_request_bytes = 1024\n\
         client_reply_limit = 4096\nclient_queue_limit = \"2kb\"\n"
    );
    let c = parse(&src, Path::new("t.toml")).unwrap();
    assert_eq!(
        c.pools[0].cluster,
        Some(ClusterConfig {
            refresh_interval: Duration::from_secs(2),
            read_from: ReadFrom::PreferReplica,
            username: Some("proxy".into()),
            password: Some("s3cret".into()),
            max_redirects: 3,
            node_connections: 2,
            pinned_connections: 8,
            pinned_idle: 2,
            client_auth: vec![("alice".into(), "pw2".into()), ("default".into(), "pw".into())],
            cluster_commands: ClusterCommands::Passthrough,
            allow_flush: false,
            allow_scripts: false,
            request_timeout: None,
            max_retries: 7,
            retry_backoff: Duration::from_millis(20),
            max_request_bytes: 1024,
            client_output_limit: crate::config::OutputLimit::hard(4096),
            client_queue_limit: 2048,
            max_keys_per_request: 100_000,
        })
    );
}

#[test]
fn example_file_parses() {
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config/redis_cluster.toml"));
    let c = crate::config::load(path).unwrap_or_else(|e| panic!("{e}"));
    let p = &c.pools[0];
    assert_eq!(p.mode, Mode::RedisCluster);
    assert_eq!(p.cluster, Some(ClusterConfig::default()), "the example shows every default");
    let summary = c.summary();
    assert!(
        summary.contains("cluster: refresh 5s, read_from master, max_redirects 5, node_connections 1"),
        "{summary}"
    );
}

#[test]
fn strict_errors() {
    assert_eq!(
        err(&format!("{CLUSTER}read_from = \"nearest\"\n")),
        "t.toml:6: pool[0].read_from: expected one of master, replica, prefer_replica, got \"nearest\""
    );
    assert_eq!(
        err(&format!("{CLUSTER}username = \"u\"\n")),
        "t.toml:6: pool[0].username: expected `password` as well: AUTH with a user needs one"
    );
    assert_eq!(
        err(&format!("{CLUSTER}max_redirects = -1\n")),
        "t.toml:6: pool[0].max_redirects: expected an integer >= 0, got -1"
    );
    assert_eq!(
        err(&format!("{CLUSTER}node_connections = 0\n")),
        "t.toml:6: pool[0].node_connections: expected an integer >= 1, got 0"
    );
    assert_eq!(
        err(&format!("{CLUSTER}pinned_connections = 2\npinned_idle = 3\n")),
        "t.toml:7: pool[0].pinned_idle: expected at most pinned_connections (2), got 3"
    );
    assert_eq!(
        err(&format!("{CLUSTER}client_auth = {{ alice = \"\" }}\n")),
        "t.toml:6: pool[0].client_auth.alice: expected a non-empty password"
    );
    assert_eq!(
        err(&format!("{CLUSTER}refresh_interval = 0\n")),
        "t.toml:6: pool[0].refresh_interval: expected a duration > 0, got 0"
    );
    assert_eq!(
        err(&format!("{CLUSTER}cluster_commands = \"hide\"\n")),
        "t.toml:6: pool[0].cluster_commands: expected one of proxy, passthrough, got \"hide\""
    );
    assert_eq!(
        err(&format!("{CLUSTER}balance = \"least_conn\"\n")),
        "t.toml:6: pool[0].balance: applies only to mode \"tcp\"; cluster pools route keys by slot"
    );
    assert_eq!(
        err(&format!("{CLUSTER}hash = \"crc16\"\n")),
        "t.toml:6: pool[0].hash: applies only to mode \"redis\" or \"memcache\", and this pool is \"redis_cluster\""
    );
}

#[test]
fn cluster_keys_only_in_cluster_pools() {
    let tcp = "[[pool]]\nname = \"a\"\nlisten = \"127.0.0.1:7000\"\nservers = [\"127.0.0.1:7001\"]\n";
    assert_eq!(
        err(&format!("{tcp}read_from = \"replica\"\nmax_redirects = 2\n")),
        "t.toml:5: pool[0].read_from: only valid with mode = \"redis_cluster\", got mode = \"tcp\"\n\
         t.toml:6: pool[0].max_redirects: only valid with mode = \"redis_cluster\", got mode = \"tcp\""
    );
    assert_eq!(
        err(&format!("{tcp}allow_scripts = false\n")),
        "t.toml:5: pool[0].allow_scripts: applies only to mode \"redis\" or \"redis_cluster\", and this pool is \"tcp\""
    );
    let memcache = tcp.replace("servers", "mode = \"memcache\"\nservers");
    assert_eq!(
        err(&format!("{memcache}allow_scripts = false\n")),
        "t.toml:6: pool[0].allow_scripts: applies only to mode \"redis\" or \"redis_cluster\", and this pool is \"memcache\""
    );
}
