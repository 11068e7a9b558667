//! Several nutcracker-mode instances on one host, as deployments run one
//! nutcracker per pool set: each started `-d -c X -o LOG -p PID -s PORT`.
//! None opens the admin port (not even the one its TOML names, shared by
//! all three here, which would make the second fail with "Address already
//! in use"), and each stats port answers both nutcracker's JSON and
//! Prometheus `/metrics` (behind `[server] admin_token`, as on the admin
//! port).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::daemon::Daemon;
use common::twem::{RawResp, Reply};
use common::*;

/// What a silent client of the stats port reads: nutcracker's JSON.
fn stats_json(port: u16) -> serde_json::Value {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// `[server] admin_token`: guards `/metrics` on the stats port as on the
/// admin port.
const TOKEN: &str = "stats-port-token";

/// `GET /metrics` with `Authorization: Bearer <token>`; (status, body).
fn metrics(port: u16, token: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
}

struct Instance {
    daemon: Daemon,
    listen: u16,
    stats: u16,
}

fn start(dir: &std::path::Path, i: usize, io: &str, backend: u16, admin: u16) -> Instance {
    let (listen, stats) = (free_port(), free_port());
    let conf = dir.join(format!("i{i}.toml"));
    let toml = format!(
        "[server]\nadmin = \"127.0.0.1:{admin}\"\nadmin_token = \"{TOKEN}\"\nio = \"{io}\"\nworkers = 1\n\n\
         [[pool]]\nname = \"p{i}\"\nlisten = \"127.0.0.1:{listen}\"\nmode = \"redis\"\n\
         servers = [\"127.0.0.1:{backend}:1\"]\n"
    );
    std::fs::write(&conf, toml).unwrap();
    let (pid, log) = (dir.join(format!("i{i}.pid")), dir.join(format!("i{i}.log")));
    let args = ["-d", "-c", conf.to_str().unwrap(), "-o", log.to_str().unwrap(), "-p", pid.to_str().unwrap()];
    let daemon = Daemon::start(&[&args[..], &["-s", &stats.to_string()]].concat(), &pid);
    wait_until("pool port", Duration::from_secs(15), || TcpStream::connect(("127.0.0.1", listen)).is_ok());
    Instance { daemon, listen, stats }
}

#[test]
fn three_instances_serve_at_once_each_with_its_stats_port() {
    let r = redis();
    let dir = tmpdir();
    let admin = free_port();
    let drivers = drivers();
    let instances: Vec<Instance> = (0..3).map(|i| start(&dir, i, drivers[i % drivers.len()], r.port, admin)).collect();
    for inst in &instances {
        assert!(inst.daemon.pid() > 0);
    }
    assert!(TcpStream::connect(("127.0.0.1", admin)).is_err(), "no instance opened the admin port");

    // Redis traffic through all three at once.
    let workers: Vec<_> = instances
        .iter()
        .enumerate()
        .map(|(i, inst)| {
            let port = inst.listen;
            std::thread::spawn(move || {
                let mut c = RawResp::connect(port);
                for n in 0..300 {
                    let (key, value) = (format!("i{i}:k{n}"), format!("v{i}.{n}"));
                    assert_eq!(c.cmd(&[b"SET", key.as_bytes(), value.as_bytes()]), Reply::Status(b"OK".to_vec()));
                    assert_eq!(c.cmd(&[b"GET", key.as_bytes()]), Reply::Bulk(Some(value.into_bytes())));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }

    for (i, inst) in instances.iter().enumerate() {
        // A silent client gets the JSON, naming this instance's pool and
        // counting its own traffic (copied there on the worker's tick).
        let requests = |v: &serde_json::Value| v[format!("p{i}")][format!("127.0.0.1:{}", r.port)]["requests"].as_u64();
        let v = stats_json(inst.stats);
        assert_eq!(v["service"], "nutcracker");
        assert!(requests(&v).is_some(), "{v}");
        wait_until("the pool's requests in the JSON", Duration::from_secs(10), || {
            requests(&stats_json(inst.stats)) >= Some(600)
        });
        // An HTTP client gets Prometheus metrics from the same port, behind
        // the admin port's token check.
        assert_eq!(http("GET", inst.stats, "/metrics").unwrap().0, 401, "no token");
        assert_eq!(metrics(inst.stats, "wrong").0, 401);
        let (status, body) = metrics(inst.stats, TOKEN);
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(&format!("pool=\"p{i}\"")), "{body}");
        assert_eq!(http("GET", inst.stats, "/stats").unwrap().0, 404, "only /metrics is served there");
    }

    // A client that sends something else than `GET ` still gets JSON.
    let mut s = TcpStream::connect(("127.0.0.1", instances[0].stats)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("{\"service\":\"nutcracker\""), "{body}");
}
