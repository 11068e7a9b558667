//! Tests of redis/memcache pools: nutcracker YAML and Puerta TOML, the
//! defaults, and the exact `file:line: key: problem` errors.

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::hash::HashKind;

fn yaml(src: &str) -> Result<Config, String> {
    parse(src, Path::new("n.yml")).map_err(|e| e.to_string())
}

fn toml(src: &str) -> Result<Config, String> {
    parse(src, Path::new("t.toml")).map_err(|e| e.to_string())
}

const POOL: &str = "alpha:\n  listen: 127.0.0.1:22121\n  redis: true\n  servers:\n   - 127.0.0.1:6379:1\n";

#[test]
fn example_files_parse() {
    for f in ["nutcracker.yml", "redis.toml", "memcache.toml", "rate-limits.toml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config").join(f);
        load(&path).unwrap_or_else(|e| panic!("{e}"));
    }
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config/nutcracker.yml"));
    let c = load(path).unwrap_or_else(|e| panic!("{e}"));
    let (alpha, beta) = (&c.pools[0], &c.pools[1]);
    assert_eq!((alpha.name.as_str(), alpha.mode), ("alpha", Mode::Redis));
    let s = alpha.shard.as_ref().expect("redis pool has shard settings");
    assert_eq!(s.hash_tag, Some(*b"{}"));
    assert_eq!(s.timeout, Some(Duration::from_millis(400)));
    assert_eq!(s.redis_auth.as_deref(), Some("secret"));
    assert!(s.auto_eject_hosts);
    assert_eq!(alpha.servers[1].name, "redis-2");
    assert_eq!(beta.mode, Mode::Memcache);
    assert_eq!(beta.shard.as_ref().map(|s| s.distribution), Some(Distribution::Modula));
    assert_eq!(beta.servers[0].name, "127.0.0.1", "port 11211 drops out of the default name");
    assert_eq!(beta.servers[1].name, "127.0.0.1:11212");
}

#[test]
fn yaml_defaults_are_nutcracker_defaults() {
    let c = yaml(POOL).unwrap();
    let p = &c.pools[0];
    assert_eq!(p.listen, ListenAddr::Tcp("127.0.0.1:22121".parse().unwrap()));
    assert_eq!(p.max_client_connections, None);
    assert_eq!(p.shard, Some(ShardConfig::default()));
    let d = ShardConfig::default();
    assert_eq!((d.hash, d.distribution, d.timeout, d.backlog), (HashKind::Fnv1a64, Distribution::Ketama, None, 512));
    assert_eq!((d.server_connections, d.server_failure_limit), (1, 2));
    assert_eq!(d.server_retry_timeout, Duration::from_secs(30));
    assert_eq!((d.unsupported, d.max_request_bytes), (Unsupported::Close, 512 << 20));
    // No `redis: true` means memcached.
    let c = yaml("m:\n  listen: 127.0.0.1:1\n  servers:\n   - 127.0.0.1:11211:1\n").unwrap();
    assert_eq!(c.pools[0].mode, Mode::Memcache);
}

#[test]
fn yaml_errors_name_file_line_pool_and_key() {
    assert_eq!(
        yaml(&format!("{POOL}  hash: fnv9\n")).unwrap_err(),
        "n.yml:6: alpha.hash: expected one of one_at_a_time, md5, crc16, crc32, crc32a, fnv1_64, \
         fnv1a_64, fnv1_32, fnv1a_32, hsieh, murmur, jenkins, got \"fnv9\""
    );
    assert_eq!(
        yaml(&format!("{POOL}  preconnect: yes\n")).unwrap_err(),
        "n.yml:6: alpha.preconnect: expected true or false, got \"yes\""
    );
    assert_eq!(
        yaml(&format!("{POOL}  backlog: lots\n")).unwrap_err(),
        "n.yml:6: alpha.backlog: expected an integer, got \"lots\""
    );
    assert!(yaml(&format!("{POOL}  hashtag: \"{{}}\"\n"))
        .unwrap_err()
        .starts_with("n.yml:6: alpha.hashtag: unknown key; expected one of listen, hash,"));
    assert_eq!(
        yaml("alpha:\n  listen: 127.0.0.1:1\n  servers:\n   - 127.0.0.1:6379:1\n   - 127.0.0.1:6379:0\n").unwrap_err(),
        "n.yml:5: alpha.servers[1]: expected weight >= 1, got 0 in \"127.0.0.1:6379:0\""
    );
    assert_eq!(
        yaml("alpha:\n  servers:\n   - 127.0.0.1:6379:1\n").unwrap_err(),
        "n.yml:1: alpha.listen: required key is missing; expected host:port like \"127.0.0.1:6380\""
    );
    assert_eq!(
        yaml(&format!("{POOL}  redis: false\n")).unwrap_err(),
        "n.yml:6: alpha.redis: duplicate key (also on line 3)"
    );
    assert_eq!(
        yaml("alpha:\n  listen: 127.0.0.1:1\n  servers: 127.0.0.1:6379:1\n").unwrap_err(),
        "n.yml:3: alpha.servers: expected a sequence of \"host:port:weight [name]\", got a scalar"
    );
    assert!(yaml("alpha:\n  listen: [1, 2\n").unwrap_err().starts_with("n.yml:"));
    assert_eq!(yaml("").unwrap_err(), "n.yml:1: (file): expected at least one pool, got none");
}

#[test]
fn two_pools_may_not_share_a_listen_address() {
    let src = format!("{POOL}beta:\n  listen: 127.0.0.1:22121\n  servers:\n   - 127.0.0.1:11211:1\n");
    assert_eq!(
        yaml(&src).unwrap_err(),
        "n.yml:7: beta.listen: expected a unique listen address, got 127.0.0.1:22121 (also pool[0].listen)"
    );
}

#[test]
fn unix_socket_listen_is_accepted_in_config() {
    let c = yaml("u:\n  listen: /tmp/puerta-u.sock 0600\n  redis: true\n  servers:\n   - 127.0.0.1:6379:1\n").unwrap();
    assert_eq!(c.pools[0].listen, ListenAddr::Unix { path: "/tmp/puerta-u.sock".into(), perm: Some(0o600) });
    // One path is one socket, whatever the permissions.
    let two = "u:\n  listen: /tmp/u.sock 0600\n  servers:\n   - 127.0.0.1:6379:1\n\
               v:\n  listen: /tmp/u.sock 0666\n  servers:\n   - 127.0.0.1:6380:1\n";
    assert_eq!(
        yaml(two).unwrap_err(),
        "n.yml:6: v.listen: expected a unique listen address, got /tmp/u.sock (also pool[0].listen)"
    );
    // tcp pools (balancing by client address) take host:port only.
    let tcp = "[[pool]]\nname = \"a\"\nlisten = \"/tmp/a.sock\"\nservers = [\"127.0.0.1:7001\"]\n";
    assert_eq!(
        toml(tcp).unwrap_err(),
        "t.toml:3: pool[0].listen: expected host:port; unix socket listeners are served for redis and memcache pools only"
    );
}

#[test]
fn detection_by_extension_or_content() {
    assert!(yaml::is_yaml(Path::new("x.yaml"), ""));
    assert!(yaml::is_yaml(Path::new("nutcracker.conf"), "# c\n\nalpha:\n  listen: x\n"));
    assert!(!yaml::is_yaml(Path::new("p.conf"), "[[pool]]\nname = \"a\"\n"));
    assert!(!yaml::is_yaml(Path::new("p.conf"), "# c\n[server]\n"));
}

const TOML_POOL: &str = "[[pool]]\nname = \"a\"\nlisten = \"127.0.0.1:7000\"\nservers = [\"127.0.0.1:7001\"]\n";

#[test]
fn toml_redis_pool_takes_every_nutcracker_key() {
    let c = toml(&format!(
        "{TOML_POOL}mode = \"redis\"\nhash = \"murmur\"\nhash_tag = \"::\"\ndistribution = \"modula\"\n\
         timeout = \"2s\"\nbacklog = 64\nclient_connections = 10\nredis_auth = \"pw\"\nredis_db = 3\n\
         preconnect = true\nserver_connections = 2\nauto_eject_hosts = true\nserver_retry_timeout = 500\n\
         server_failure_limit = 5\ntcpkeepalive = true\nreuseport = true\nunsupported = \"error\"\n\
         max_request_bytes = 1024\nclient_queue_limit = \"1mb\"\n\
         client_output_limit = {{ hard = \"64mb\", soft = 4096, soft_seconds = 5 }}\nallow_scripts = false\n"
    ))
    .unwrap();
    let p = &c.pools[0];
    assert_eq!(p.max_client_connections, Some(10));
    assert_eq!(
        p.shard,
        Some(ShardConfig {
            hash: HashKind::Murmur,
            hash_tag: Some(*b"::"),
            distribution: Distribution::Modula,
            timeout: Some(Duration::from_secs(2)),
            backlog: 64,
            redis_auth: Some("pw".into()),
            redis_db: 3,
            preconnect: true,
            server_connections: 2,
            auto_eject_hosts: true,
            server_retry_timeout: Duration::from_millis(500),
            server_failure_limit: 5,
            tcpkeepalive: true,
            reuseport: true,
            unsupported: Unsupported::Error,
            max_request_bytes: 1024,
            client_output_limit: OutputLimit { hard: 64 << 20, soft: 4096, soft_for: Duration::from_secs(5) },
            client_queue_limit: 1 << 20,
            allow_scripts: false,
            allow_flush: false,
            max_item_bytes: 1 << 20,
            max_keys_per_request: 100_000,
        })
    );
    let c = yaml(&format!("{POOL}  allow_scripts: false\n")).unwrap();
    assert_eq!(c.pools[0].shard.as_ref().map(|s| s.allow_scripts), Some(false), "the YAML takes it too");
}

#[test]
fn allow_flush_is_a_memcache_and_cluster_key_defaulting_to_false_for_memcache() {
    let flush = |c: &Config| c.pools[0].shard.as_ref().map(|s| s.allow_flush);
    let mc = format!("{TOML_POOL}mode = \"memcache\"\n");
    assert_eq!(flush(&toml(&mc).unwrap()), Some(false), "nutcracker refuses flush_all");
    assert_eq!(flush(&toml(&format!("{mc}allow_flush = true\n")).unwrap()), Some(true));
    let y = POOL.replace("redis: true", "redis: false");
    assert_eq!(flush(&yaml(&format!("{y}  allow_flush: true\n")).unwrap()), Some(true), "the YAML takes it");
    assert_eq!(
        yaml(&format!("{y}  allow_flush: maybe\n")).unwrap_err(),
        "n.yml:6: alpha.allow_flush: expected true or false, got \"maybe\""
    );
    assert_eq!(
        toml(&format!("{TOML_POOL}mode = \"redis\"\nallow_flush = true\n")).unwrap_err(),
        "t.toml:6: pool[0].allow_flush: applies only to mode \"memcache\" or \"redis_cluster\", and this pool is \"redis\""
    );
    assert_eq!(
        yaml(&format!("{POOL}  allow_flush: true\n")).unwrap_err(),
        "n.yml:6: alpha.allow_flush: applies only to mode \"memcache\" or \"redis_cluster\", and this pool is \"redis\""
    );
    assert!(toml(&format!("{TOML_POOL}allow_flush = false\n")).unwrap_err().contains("this pool is \"tcp\""));
}

#[test]
fn toml_mode_mismatches_are_errors() {
    assert_eq!(
        toml(&format!("{TOML_POOL}hash = \"md5\"\n")).unwrap_err(),
        "t.toml:5: pool[0].hash: applies only to mode \"redis\" or \"memcache\", and this pool is \"tcp\""
    );
    assert_eq!(
        toml(&format!("{TOML_POOL}mode = \"memcache\"\nredis_db = 1\n")).unwrap_err(),
        "t.toml:6: pool[0].redis_db: applies only to mode \"redis\", and this pool is \"memcache\""
    );
    assert!(toml(&format!("{TOML_POOL}mode = \"redis\"\nbalance = \"least_conn\"\n"))
        .unwrap_err()
        .starts_with("t.toml:6: pool[0].balance: applies only to mode \"tcp\""));
    assert_eq!(
        toml(&format!("{TOML_POOL}mode = \"redis\"\nhash_tag = \"{{\"\n")).unwrap_err(),
        "t.toml:6: pool[0].hash_tag: expected two characters like \"{}\", got \"{\""
    );
    assert_eq!(
        toml(&format!("{TOML_POOL}mode = \"redis\"\nclient_connections = 1\nmax_client_connections = 2\n"))
            .unwrap_err(),
        "t.toml:6: pool[0].client_connections: expected only one of client_connections and max_client_connections"
    );
}
