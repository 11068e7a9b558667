//! `mode = "mongos"` keys: defaults, every key parsed, strict errors.

use std::path::Path;
use std::time::Duration;

use crate::config::{parse, Affinity, Balance, Mode, MongoConfig};
use crate::protocol::proxy::ProxyVersion;

const MONGO: &str =
    "[[pool]]\nname = \"m\"\nlisten = \"127.0.0.1:7000\"\nmode = \"mongos\"\nservers = [\"127.0.0.1:27017\"]\n";

fn err(src: &str) -> String {
    match parse(src, Path::new("t.toml")) {
        Ok(_) => panic!("expected an error for:\n{src}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn defaults_and_every_key() {
    let c = parse(MONGO, Path::new("t.toml")).unwrap();
    assert_eq!(c.pools[0].mode, Mode::Mongos);
    assert_eq!(c.pools[0].mongo, Some(MongoConfig::default()));
    assert_eq!(c.pools[0].effective_balance(), Balance::ClientIp);

    let src = format!(
        "{MONGO}require_mongos = false\nmin_wire_version = 13\nmax_message_bytes = 1000\n\
         close_on_unhealthy = false\naffinity = \"none\"\nproxy_protocol = \"v2\"\n\
         slow_op_threshold = \"150ms\"\nbalance = \"least_latency\"\n"
    );
    let c = parse(&src, Path::new("t.toml")).unwrap();
    let m = c.pools[0].mongo.unwrap();
    assert_eq!(
        m,
        MongoConfig {
            require_mongos: false,
            min_wire_version: 13,
            max_message_bytes: 1000,
            close_on_unhealthy: false,
            affinity: Affinity::None,
            proxy_protocol: Some(ProxyVersion::V2),
            slow_op_threshold: Some(Duration::from_millis(150)),
        }
    );
    assert_eq!(c.pools[0].effective_balance(), Balance::LeastLatency);
}

#[test]
fn example_file_parses() {
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config/mongos.toml"));
    let c = crate::config::load(path).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.pools.iter().all(|p| p.mode == Mode::Mongos));
    let summary = c.summary();
    assert!(summary.contains("mongos: affinity client_ip, require_mongos true, min_wire_version 9"), "{summary}");
}

#[test]
fn strict_errors() {
    assert_eq!(
        err(&format!("{MONGO}affinity = \"sticky\"\n")),
        "t.toml:6: pool[0].affinity: expected one of client_ip, client_ip_port, app, none, got \"sticky\""
    );
    assert_eq!(
        err(&format!("{MONGO}proxy_protocol = \"v3\"\n")),
        "t.toml:6: pool[0].proxy_protocol: expected one of v1, v2, got \"v3\""
    );
    assert_eq!(
        err(&format!("{MONGO}max_message_bytes = 15\n")),
        "t.toml:6: pool[0].max_message_bytes: expected an integer >= 16, got 15"
    );
    let tcp = MONGO.replace("mode = \"mongos\"\n", "");
    assert_eq!(
        err(&format!("{tcp}affinity = \"app\"\n")),
        "t.toml:5: pool[0].affinity: only valid with mode = \"mongos\", got mode = \"tcp\""
    );
}
