//! Puerta as a drop-in nutcracker: the real `puerta` binary started with
//! nutcracker's command line on a nutcracker YAML file (or a TOML file
//! with `mode = "redis" | "memcache"`), plus readers for its stats port,
//! /metrics and reload.
//!
//! The process is killed when the handle drops, like every `Proc`.

use std::io::Read;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use puerta::route::ShardRing;

use super::twem::Proxy;
use super::{free_port, http, tmpdir, wait_until, Proc};

pub struct PuertaTwem {
    pub proc: Proc,
    pub stats_port: u16,
    pub admin: u16,
    pub conf: PathBuf,
    pub label: String,
}

impl PuertaTwem {
    /// Writes `yaml` (`{listen}` -> a free port) and starts
    /// `puerta -c FILE -s STATS -a 127.0.0.1 --admin ... --io IO --workers 2`,
    /// waiting until the pool port accepts connections.
    pub fn start(yaml: &str, io: &str) -> PuertaTwem {
        Self::start_with(yaml, io, "nutcracker.yml", &[])
    }

    /// As `start`, with the file name (extension picks the format) and
    /// extra arguments.
    pub fn start_with(text: &str, io: &str, file: &str, extra: &[&str]) -> PuertaTwem {
        let (port, stats_port, admin) = (free_port(), free_port(), free_port());
        let dir = tmpdir();
        let conf = dir.join(file);
        let text = text.replace("{listen}", &port.to_string()).replace("{admin}", &admin.to_string());
        std::fs::write(&conf, text).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_puerta"))
            .arg("-c")
            .arg(&conf)
            .args(["-s", &stats_port.to_string(), "-a", "127.0.0.1", "--admin", &format!("127.0.0.1:{admin}")])
            .args(["--io", io, "--workers", "2", "-v", "4"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let p = PuertaTwem { proc: Proc { child, port }, stats_port, admin, conf, label: format!("puerta/{io}") };
        wait_until("puerta to listen", Duration::from_secs(15), || TcpStream::connect(p.proc.addr()).is_ok());
        // The one probe connection that got through is a client too: wait
        // until it was accepted and closed, so tests start from zero clients
        // and settled counters.
        wait_until("the probe client closed", Duration::from_secs(15), || {
            http("GET", p.admin, "/metrics").is_ok()
                && p.metric("puerta_client_connections_total", "") >= 1.0
                && p.metric("puerta_client_connections", "") == 0.0
        });
        p
    }

    pub fn port(&self) -> u16 {
        self.proc.port
    }

    /// The first pool's key placement, as Puerta builds it from the config
    /// file with every server live (config positions, as `pick` answers).
    pub fn ring(&self) -> ShardRing {
        let cfg = puerta::config::load(&self.conf).unwrap_or_else(|e| panic!("{e}"));
        puerta::route::ring::for_pool(&cfg.pools[0], &|_| true).expect("a redis/memcache pool has a ring")
    }

    /// The stats port's JSON document.
    pub fn stats(&self) -> serde_json::Value {
        let mut s = TcpStream::connect(("127.0.0.1", self.stats_port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("stats JSON: {e}: {text}"))
    }

    /// Sum of a metric's samples whose labels contain `labels`.
    pub fn metric(&self, name: &str, labels: &str) -> f64 {
        let (_, body) = http("GET", self.admin, "/metrics").expect("metrics");
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
            .filter(|l| l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum()
    }

    /// Rewrites the config (same `{listen}` port) and reloads it with
    /// POST /reload; panics unless the reload was accepted.
    pub fn reload(&self, text: &str) {
        let text = text.replace("{listen}", &self.port().to_string()).replace("{admin}", &self.admin.to_string());
        std::fs::write(&self.conf, text).unwrap();
        let (status, body) = http("POST", self.admin, "/reload").expect("reload");
        assert_eq!(status, 200, "reload: {body}");
    }

    /// Sends `sig` to the process.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(self.proc.pid() as i32, sig);
        }
    }
}

impl Proxy for PuertaTwem {
    fn port(&self) -> u16 {
        self.proc.port
    }
    fn label(&self) -> &str {
        &self.label
    }
}

/// `n` keys `key:N` that `ring` places on `server`. Tests that need keys on
/// several servers pick them here: a run of similar keys (`key0`..`key39`)
/// hashes into a few narrow arcs under nutcracker's default `fnv1a_64`, so
/// which servers it reaches depends on the (random) server ports.
pub fn keys_on(ring: &ShardRing, server: u32, n: usize) -> Vec<Vec<u8>> {
    (0..).map(|i| format!("key:{i}").into_bytes()).filter(|k| ring.pick(k) == Some(server)).take(n).collect()
}

/// A nutcracker YAML pool named `alpha` over `ports` (`host:port:1`), with
/// extra pool keys (each line indented two spaces, e.g. "  hash: md5\n").
pub fn yaml(redis: bool, ports: &[u16], extra: &str) -> String {
    let mut y = format!("alpha:\n  listen: 127.0.0.1:{{listen}}\n  redis: {redis}\n{extra}  servers:\n");
    for p in ports {
        y.push_str(&format!("   - 127.0.0.1:{p}:1\n"));
    }
    y
}
