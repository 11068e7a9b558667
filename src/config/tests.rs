//! End-to-end tests of `config::parse`: text in, exact error text out.
//!
//! These pin the user-facing contract, `file:line: key: problem`, so a
//! change in wording or line attribution is a deliberate, visible diff.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::*;

/// A minimal valid pool, for tests that break one thing elsewhere.
const POOL: &str = "[[pool]]\nname = \"a\"\nlisten = \"127.0.0.1:7000\"\nservers = [\"127.0.0.1:7001\"]\n";

/// The error text for `src` (shared by the per-mode config tests).
pub(super) fn err(src: &str) -> String {
    match parse(src, Path::new("t.toml")) {
        Ok(_) => panic!("expected an error for:\n{src}"),
        Err(e) => e.to_string(),
    }
}

fn ok(src: &str) -> Config {
    parse(src, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address literal")
}

#[test]
fn example_file_parses() {
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config/tcp.toml"));
    let c = load(path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.source, path);
    assert_eq!(c.server.workers, Workers::Auto);
    assert_eq!(c.server.admin, addr("127.0.0.1:9090"));
    assert_eq!(c.pools.len(), 2);
    let (rr, sticky) = (&c.pools[0], &c.pools[1]);
    assert_eq!(rr.listen, ListenAddr::Tcp(addr("127.0.0.1:6390")));
    assert_eq!(rr.balance, Balance::RoundRobin);
    assert_eq!(rr.servers[1].addr, addr("127.0.0.1:6381"));
    assert_eq!(rr.servers[1].name, "redis-2");
    assert_eq!(rr.idle_timeout, None);
    assert_eq!(sticky.listen, ListenAddr::Tcp(addr("127.0.0.1:6391")));
    assert_eq!(sticky.balance, Balance::ClientIp);
    assert_eq!(sticky.max_client_connections, Some(1000));
}

#[test]
fn defaults_fill_everything_optional() {
    let c = ok(POOL);
    assert_eq!(
        c.server,
        ServerSettings {
            workers: Workers::Auto,
            cpus: None,
            io: IoMode::Auto,
            admin: addr("127.0.0.1:9090"),
            admin_token: None,
            log: "info".into(),
            shutdown_timeout: Duration::from_secs(30),
            max_buffered_bytes: Some(2 << 30),
            metrics_detail: Default::default(),
            wait: Default::default(),
        }
    );
    let p = &c.pools[0];
    assert_eq!((p.mode, p.balance), (Mode::Tcp, Balance::RoundRobin));
    assert_eq!(p.connect_timeout, Duration::from_secs(1));
    assert_eq!((p.idle_timeout, p.max_client_connections), (None, None));
    assert_eq!(
        p.health,
        HealthConfig {
            check_interval: Duration::from_secs(2),
            check_timeout: Duration::from_secs(1),
            rise: 2,
            fall: 2,
        }
    );
    assert_eq!(p.servers[0].weight, 1);
    assert_eq!(p.servers[0].name, "127.0.0.1:7001");
}

#[test]
fn explicit_values_are_typed() {
    let src = format!(
        "[server]\nworkers = 2\ncpus = [3, 1]\nio = \"epoll\"\nshutdown_timeout = 0\n{POOL}\
         idle_timeout = 1500\nmax_client_connections = 5\ncheck_interval = \"1.5s\"\n"
    );
    let c = ok(&src);
    assert_eq!(c.server.workers, Workers::Count(2));
    assert_eq!(c.server.cpus, Some(vec![3, 1]));
    assert_eq!(c.server.io, IoMode::Epoll);
    assert_eq!(c.server.shutdown_timeout, Duration::ZERO);
    let p = &c.pools[0];
    assert_eq!(p.idle_timeout, Some(Duration::from_millis(1500)));
    assert_eq!(p.max_client_connections, Some(5));
    assert_eq!(p.health.check_interval, Duration::from_millis(1500));
}

#[test]
fn admin_token_is_checked_and_never_printed() {
    let c = ok(&format!("[server]\nadmin_token = \"s3cret\"\n{POOL}"));
    assert_eq!(c.server.admin_token.as_ref().map(|t| t.as_bytes()), Some(&b"s3cret"[..]));
    assert!(!format!("{c:?}").contains("s3cret"), "Debug hides the token");
    for bad in ["", "two words", "caf\u{e9}"] {
        let e = err(&format!("[server]\nadmin_token = {bad:?}\n{POOL}"));
        assert!(e.starts_with("t.toml:2: server.admin_token: expected 1 to 1024 visible ASCII characters"), "{e}");
    }
}

#[test]
fn unknown_key_in_a_pool() {
    let src = format!("{POOL}blance = \"round_robin\"\n");
    assert_eq!(
        err(&src),
        "t.toml:5: pool[0].blance: unknown key; expected one of name, listen, mode, servers, \
         balance, connect_timeout, idle_timeout, max_client_connections, check_interval, \
         check_timeout, rise, fall, require_mongos, min_wire_version, max_message_bytes, \
         close_on_unhealthy, affinity, proxy_protocol, slow_op_threshold, slowlog_max_len, slowlog_keys, hot_keys, hash, hash_tag, distribution, timeout, backlog, \
         client_connections, redis_auth, redis_db, preconnect, server_connections, auto_eject_hosts, \
         server_retry_timeout, server_failure_limit, tcpkeepalive, reuseport, unsupported, max_request_bytes, client_reply_limit, \
         client_queue_limit, client_output_limit, \
         max_item_bytes, max_keys_per_request, \
         refresh_interval, read_from, username, password, max_redirects, node_connections, pinned_connections, \
         pinned_idle, client_auth, cluster_commands, allow_flush, allow_scripts, request_timeout, max_retries, retry_backoff, \
         tls, plain_listen, tls_handshake_timeout, backend_tls, per_ip, on_limit"
    );
}

#[test]
fn unknown_top_level_table() {
    assert_eq!(err(&format!("{POOL}[srever]\n")), "t.toml:5: srever: unknown key; expected one of server, pool, user");
}

#[test]
fn wrong_toml_type() {
    assert_eq!(
        err(&format!("{POOL}rise = \"two\"\n")),
        "t.toml:5: pool[0].rise: expected an integer, got string \"two\""
    );
    assert_eq!(
        err(&format!("[server]\nworkers = true\n{POOL}")),
        "t.toml:2: server.workers: expected a string or an integer, got boolean `true`"
    );
}

#[test]
fn bad_enum_value() {
    assert_eq!(
        err(&format!("{POOL}balance = \"fastest\"\n")),
        "t.toml:5: pool[0].balance: expected one of round_robin, least_conn, client_ip, least_latency, weighted, got \"fastest\""
    );
    assert_eq!(
        err(&format!("[server]\nio = \"kqueue\"\n{POOL}")),
        "t.toml:2: server.io: expected one of auto, uring, epoll, got \"kqueue\""
    );
}

#[test]
fn unknown_mode_lists_every_mode() {
    assert_eq!(
        err(&format!("{POOL}mode = \"redis-cluster\"\n")),
        "t.toml:5: pool[0].mode: expected one of tcp, redis, memcache, mongos, redis_cluster, got \"redis-cluster\""
    );
}

#[test]
fn bad_duration() {
    assert_eq!(
        err(&format!("{POOL}connect_timeout = \"10 parsecs\"\n")),
        "t.toml:5: pool[0].connect_timeout: expected a duration like \"500ms\", \"10s\", \"5m\", \
         \"1h\" or integer milliseconds, got \"10 parsecs\""
    );
    assert_eq!(
        err(&format!("{POOL}connect_timeout = 0\n")),
        "t.toml:5: pool[0].connect_timeout: expected a duration > 0, got 0"
    );
    assert_eq!(
        err(&format!("{POOL}idle_timeout = \"never\"\n")),
        "t.toml:5: pool[0].idle_timeout: expected a duration like \"500ms\", \"10s\", \"5m\", \
         \"1h\" or integer milliseconds or \"off\", got \"never\""
    );
}

#[test]
fn bad_server_syntax() {
    let src = "[[pool]]\nname = \"a\"\nlisten = \"127.0.0.1:7000\"\nservers = [\n  \
               \"127.0.0.1\",\n  \"127.0.0.1:6379:0\",\n]\n";
    assert_eq!(
        err(src),
        "t.toml:5: pool[0].servers[0]: expected host:port[:weight] [name], got \"127.0.0.1\"\n\
         t.toml:6: pool[0].servers[1]: expected weight >= 1, got 0 in \"127.0.0.1:6379:0\""
    );
}

#[test]
fn duplicate_server_names_within_a_pool() {
    let src = "[[pool]]\nname = \"a\"\nlisten = \"127.0.0.1:7000\"\n\
               servers = [\"127.0.0.1:1 r\", \"127.0.0.1:2 r\"]\n";
    assert_eq!(err(src), "t.toml:4: pool[0].servers[1]: expected a unique server name, got \"r\" (also servers[0])");
}

#[test]
fn duplicate_pool_names_and_listen_addresses() {
    let src = format!("{POOL}\n{POOL}");
    assert_eq!(
        err(&src),
        "t.toml:7: pool[1].name: expected a unique pool name, got \"a\" (also pool[0].name)\n\
         t.toml:8: pool[1].listen: expected a unique listen address, got 127.0.0.1:7000 \
         (also pool[0].listen)"
    );
}

#[test]
fn listen_may_not_take_the_admin_address() {
    let src = POOL.replace("127.0.0.1:7000", "localhost:9090");
    assert_eq!(
        err(&src),
        "t.toml:3: pool[0].listen: expected a unique listen address, got 127.0.0.1:9090 \
         (also server.admin)"
    );
}

#[test]
fn missing_pools() {
    assert_eq!(err("[server]\nworkers = 2\n"), "t.toml:1: pool: expected at least one [[pool]] table, got none");
}

#[test]
fn missing_required_keys_point_at_the_pool_header() {
    assert_eq!(
        err("# pools\n\n[[pool]]\nname = \"a\"\n"),
        "t.toml:3: pool[0].listen: required key is missing; expected host:port like \"127.0.0.1:6380\"\n\
         t.toml:3: pool[0].servers: required key is missing; expected a list like [\"127.0.0.1:6379\"]"
    );
}

#[test]
fn toml_syntax_error_line() {
    let e = err("[server]\nworkers = 2\nio = \"auto\n");
    assert!(e.starts_with("t.toml:3: (syntax): "), "{e}");
    let e = err("[server]\n\n[server]\n");
    assert!(e.starts_with("t.toml:3: (syntax): "), "{e}");
}

#[test]
fn multiple_errors_are_collected_in_file_order() {
    let src = format!(
        "{POOL}balance = \"fastest\"\nrise = 0\ncheck_timeout = \"5s\"\n\
         [server]\nworkers = 4\ncpus = [0, -1]\n"
    );
    assert_eq!(
        err(&src),
        "t.toml:5: pool[0].balance: expected one of round_robin, least_conn, client_ip, least_latency, weighted, got \"fastest\"\n\
         t.toml:6: pool[0].rise: expected an integer >= 1, got 0\n\
         t.toml:7: pool[0].check_timeout: expected at most check_interval (2s), got 5s\n\
         t.toml:10: server.cpus[1]: expected a CPU index >= 0, got -1\n\
         t.toml:10: server.cpus: expected at least 4 CPUs for workers = 4, got 2"
    );
}

#[test]
fn errors_are_many_only_when_more_than_one() {
    let one = parse(&format!("{POOL}rise = 0\n"), Path::new("t.toml"));
    assert!(matches!(one, Err(ConfigError::Invalid { line: 5, .. })), "{one:?}");
    let two = parse(&format!("{POOL}rise = 0\nfall = 0\n"), Path::new("t.toml"));
    assert!(matches!(two, Err(ConfigError::Many(ref v)) if v.len() == 2), "{two:?}");
}

#[test]
fn unreadable_file_is_an_io_error() {
    let e = load(Path::new("/nonexistent/puerta.toml")).expect_err("no such file");
    assert!(matches!(e, ConfigError::Io { .. }));
    assert!(e.to_string().starts_with("/nonexistent/puerta.toml: cannot read: "), "{e}");
}

#[test]
fn summary_shows_resolved_settings() {
    let c = ok(&format!("{POOL}balance = \"least_conn\"\nidle_timeout = \"90s\"\n"));
    assert_eq!(
        c.summary(),
        "config t.toml\n\
         server: io auto, workers auto, cpus any, admin 127.0.0.1:9090, log \"info\", shutdown 30s\n\
         1 pool(s):\n  \
         pool a: tcp listen 127.0.0.1:7000, balance least_conn, 1 server(s)\n    \
         127.0.0.1:7001 weight 1 name \"127.0.0.1:7001\"\n    \
         timeouts: connect 1s, idle 90s; max clients unlimited\n    \
         health: every 2s, timeout 1s, rise 2, fall 2\n"
    );
}
