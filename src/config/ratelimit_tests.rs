//! `per_ip` and `on_limit`: TOML and nutcracker YAML, defaults, and the
//! file:line:key errors.

use std::path::Path;

use super::{parse, Config, PerIp, RateLimits};
use crate::limit::{OnLimit, RateSpec};

fn load(src: &str, file: &str) -> Result<Config, String> {
    parse(src, Path::new(file)).map_err(|e| e.to_string())
}

const POOL: &str = "[[pool]]\nname = \"a\"\nlisten = \"127.0.0.1:7000\"\nservers = [\"127.0.0.1:7001\"]\n";

#[test]
fn toml_per_ip_and_on_limit() {
    let src = format!(
        "{POOL}mode = \"redis\"\non_limit = \"error\"\nper_ip = {{ connections = 100, requests = 2000, bytes = \"5mb\", burst = 2.0 }}\n"
    );
    let c = load(&src, "t.toml").unwrap();
    let want = PerIp {
        connections: Some(100),
        rate: RateSpec { requests: Some(2000.0), bytes: Some(5.0 * 1048576.0), burst: 2.0 },
    };
    assert_eq!(c.pools[0].limits, RateLimits { per_ip: Some(want), on_limit: OnLimit::Error });
    // Defaults: no limits, delay; burst 1; an integer burst reads too.
    let c = load(&format!("{POOL}mode = \"memcache\"\nper_ip = {{ requests = 5, burst = 3 }}\n"), "t.toml").unwrap();
    let l = c.pools[0].limits;
    assert_eq!(l.on_limit, OnLimit::Delay);
    assert_eq!(l.per_ip.unwrap().rate, RateSpec { requests: Some(5.0), bytes: None, burst: 3.0 });
    let c = load(&format!("{POOL}mode = \"redis_cluster\"\n"), "t.toml").unwrap();
    assert_eq!(c.pools[0].limits, RateLimits::default());
}

#[test]
fn toml_errors_name_the_line_and_key() {
    let cases = [
        ("mode = \"redis\"\nper_ip = { requests = 0 }\n", "t.toml:6: pool[0].per_ip.requests: expected an integer from 1"),
        ("mode = \"redis\"\nper_ip = { bytes = \"lots\" }\n", "t.toml:6: pool[0].per_ip.bytes: expected bytes"),
        ("mode = \"redis\"\nper_ip = { requests = 1, burst = 0.0 }\n", "t.toml:6: pool[0].per_ip.burst: expected seconds"),
        ("mode = \"redis\"\nper_ip = { reqs = 1 }\n", "pool[0].per_ip.reqs: unknown"),
        ("mode = \"redis\"\nper_ip = { burst = 2.0 }\n", "t.toml:6: pool[0].per_ip: expected at least one of"),
        ("mode = \"redis\"\non_limit = \"drop\"\n", "t.toml:6: pool[0].on_limit: expected one of delay, error, close"),
        (
            "per_ip = { connections = 1 }\n",
            "t.toml:5: pool[0].per_ip: applies only to mode \"redis\", \"memcache\", \"redis_cluster\" or \"mongos\", and this pool is \"tcp\"",
        ),
    ];
    for (body, want) in cases {
        let err = load(&format!("{POOL}{body}"), "t.toml").unwrap_err();
        assert!(err.starts_with(want) || err.contains(want), "{body}: {err}");
    }
}

#[test]
fn nutcracker_yaml_takes_per_ip_and_on_limit() {
    let src = "alpha:\n  listen: 127.0.0.1:22121\n  on_limit: close\n  per_ip:\n    connections: 10\n    \
               requests: 100\n    bytes: 1mb\n    burst: 1.5\n  servers:\n   - 127.0.0.1:11211:1\n";
    let c = load(src, "n.yml").unwrap();
    let want =
        PerIp { connections: Some(10), rate: RateSpec { requests: Some(100.0), bytes: Some(1048576.0), burst: 1.5 } };
    assert_eq!(c.pools[0].limits, RateLimits { per_ip: Some(want), on_limit: OnLimit::Close });
    let bad = "alpha:\n  listen: 127.0.0.1:22121\n  per_ip:\n    reqs: 1\n  servers:\n   - 127.0.0.1:11211:1\n";
    assert_eq!(
        load(bad, "n.yml").unwrap_err(),
        "n.yml:4: alpha.per_ip.reqs: unknown key; expected one of connections, requests, bytes, burst"
    );
    let zero = "alpha:\n  listen: 127.0.0.1:22121\n  per_ip:\n    requests: 0\n  servers:\n   - 127.0.0.1:11211:1\n";
    let err = load(zero, "n.yml").unwrap_err();
    assert!(err.starts_with("n.yml:4: alpha.per_ip.requests: expected an integer from 1"), "{err}");
}
