//! Today's Redis clients through Puerta at their defaults, under both I/O
//! drivers, against a twemproxy pool (its default `unsupported = "close"`)
//! and a cluster pool: redis-py 8 (RESP3 by default, and at protocol=2)
//! driven by tests/resp3/clients.py, and the `redis` crate with its
//! default settings (and RESP3 asked for in the URL), redis-cli (RESP2 and
//! `-3`) and redis-benchmark.
//!
//! redis-py must not fall back to RESP2 (it logs a warning when HELLO 3
//! fails), HGETALL must come back as a dict, and pub/sub must work over
//! RESP3 pushes. A missing Python package is a failure with instructions,
//! never a silent skip.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use common::cluster::Cluster;
use common::cluster_puerta::ClusterProxy;
use common::twem_puerta::{yaml, PuertaTwem};
use common::{drivers, redis};

/// The venv's python (scripts/test.sh creates `.venv` from
/// tests/requirements.txt), else `python3`; it must import redis-py 8.
fn python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
        let py = if venv.exists() { venv } else { PathBuf::from("python3") };
        let ok = Command::new(&py)
            .args(["-c", "import redis; assert int(redis.__version__.split('.')[0]) == 8"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "{} cannot import redis-py 8: run scripts/test.sh, which creates .venv and installs \
             tests/requirements.txt",
            py.display()
        );
        py
    })
    .clone()
}

/// Runs clients.py against `port`; returns its JSON report.
fn redis_py(port: u16, protocol: &str, mode: &str) -> serde_json::Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/resp3/clients.py");
    let out = Command::new(python()).arg(script).arg(port.to_string()).args([protocol, mode]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "clients.py {protocol} {mode} failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("bad report {text:?}: {e}"))
}

/// What every redis-py run must report, whatever the pool.
fn check_redis_py(r: &serde_json::Value, protocol: &str, what: &str) {
    let want = if protocol == "default" { 3 } else { 2 };
    assert_eq!(r["protocol"], want, "{what}: negotiated protocol: {r}");
    assert_eq!(r["fallback"], false, "{what}: no RESP2 fallback: {r}");
    assert_eq!(r["warnings"], serde_json::json!([]), "{what}: nothing logged at WARNING: {r}");
    assert_eq!(r["ping"], true, "{what}: {r}");
    assert_eq!(r["client_name"], "resp3-test", "{what}: CLIENT SETNAME/GETNAME: {r}");
    assert!(r["client_id"].as_i64().is_some_and(|n| n > 0), "{what}: CLIENT ID: {r}");
    assert_eq!(r["hgetall_type"], "dict", "{what}: {r}");
    assert_eq!(r["hgetall"], serde_json::json!({"f1": "v1", "f2": "v2"}), "{what}: {r}");
    assert_eq!(r["mget"], serde_json::json!(["1", null, "3"]), "{what}: {r}");
    assert_eq!(r["del"], 4, "{what}: {r}");
    assert_eq!(r["smembers_type"], "set", "{what}: {r}");
    assert_eq!(r["incrbyfloat"], 2.5, "{what}: {r}");
    if protocol == "default" {
        assert_eq!(r["hello_server"], "puerta", "{what}: HELLO's map: {r}");
    }
}

/// The `redis` crate: default settings (RESP2), then RESP3 from the URL.
fn redis_crate(port: u16, what: &str) {
    let client = ::redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let mut con = client.get_connection().unwrap_or_else(|e| panic!("{what}: redis crate connects: {e}"));
    let key = format!("crate:{what}");
    let _: () = ::redis::cmd("HSET").arg(&key).arg("f").arg("v").query(&mut con).unwrap();
    let h: std::collections::HashMap<String, String> = ::redis::cmd("HGETALL").arg(&key).query(&mut con).unwrap();
    assert_eq!(h.get("f").map(String::as_str), Some("v"), "{what}");
    let pong: String = ::redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");

    let client = ::redis::Client::open(format!("redis://127.0.0.1:{port}/?protocol=resp3")).unwrap();
    let mut con = client.get_connection().unwrap_or_else(|e| panic!("{what}: redis crate RESP3 connects: {e}"));
    let v: ::redis::Value = ::redis::cmd("HGETALL").arg(&key).query(&mut con).unwrap();
    assert!(matches!(v, ::redis::Value::Map(ref m) if m.len() == 1), "{what}: RESP3 HGETALL is a map: {v:?}");
    let n: i64 = ::redis::cmd("DEL").arg(&key).query(&mut con).unwrap();
    assert_eq!(n, 1, "{what}");
}

/// `redis-cli [extra] -p port args...`: stdout, after checking it exited 0.
fn redis_cli(port: u16, extra: &[&str], args: &[&str]) -> String {
    let out = Command::new("redis-cli").args(extra).args(["-p", &port.to_string()]).args(args).output().unwrap();
    assert!(out.status.success(), "redis-cli {extra:?} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// redis-cli in RESP2 and RESP3 (`-3`: HELLO 3 first), and a short
/// redis-benchmark run (it asks CONFIG GET first and goes on without it).
fn redis_tools(port: u16, what: &str) {
    let key = format!("cli:{what}");
    assert_eq!(redis_cli(port, &[], &["HSET", &key, "f", "v"]).trim(), "1", "{what}");
    assert_eq!(redis_cli(port, &[], &["HGETALL", &key]), "f\nv\n", "{what}");
    let tty = redis_cli(port, &["-3", "--no-raw"], &["HGETALL", &key]);
    assert_eq!(tty.trim(), "1# \"f\" => \"v\"", "{what}: redis-cli -3 prints a map");
    assert_eq!(redis_cli(port, &["-3"], &["DEL", &key]).trim(), "1", "{what}");
    let out = Command::new("redis-benchmark")
        .args(["-p", &port.to_string(), "-n", "2000", "-c", "4", "-t", "set,get", "-q"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{what}: redis-benchmark: {text}");
    for t in ["SET: ", "GET: "] {
        assert!(text.lines().any(|l| l.contains(t) && l.contains("requests per second")), "{what}: {text}");
    }
}

#[test]
fn todays_clients_through_a_twemproxy_pool() {
    let backends = [redis(), redis()];
    let ports: Vec<u16> = backends.iter().map(|b| b.port).collect();
    for io in drivers() {
        // nutcracker's default: an unsupported command closes the client.
        let p = PuertaTwem::start(&yaml(true, &ports, ""), io);
        for protocol in ["default", "2"] {
            let r = redis_py(p.port(), protocol, "twem");
            check_redis_py(&r, protocol, &format!("{io} twem redis-py {protocol}"));
        }
        redis_crate(p.port(), &format!("{io}-twem"));
        redis_tools(p.port(), &format!("{io}-twem"));
    }
}

#[test]
fn todays_clients_through_a_cluster_pool() {
    let cluster = Cluster::start();
    for io in drivers() {
        let px = ClusterProxy::start(&cluster, io, "");
        for protocol in ["default", "2"] {
            let r = redis_py(px.port, protocol, "cluster");
            let what = format!("{io} cluster redis-py {protocol}");
            check_redis_py(&r, protocol, &what);
            assert_eq!(r["subscribe_confirm"], "subscribe", "{what}: {r}");
            assert_eq!(r["pubsub"], "hi", "{what}: a published message arrives: {r}");
            assert_eq!(r["ping_after_pubsub"], true, "{what}: {r}");
        }
        redis_crate(px.port, &format!("{io}-cluster"));
        redis_tools(px.port, &format!("{io}-cluster"));
    }
}
