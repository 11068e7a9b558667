//! The nutcracker command line on the `puerta` binary: `-t`, `-V`, `-D`,
//! `-d -p -o`, the stats port, and SIGHUP / SIGTERM in that mode, checked
//! against the real nutcracker where it has an answer.

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::net::TcpStream;
use std::process::{Command, Output};
use std::time::Duration;

use common::twem::Nutcracker;
use common::*;

fn puerta(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_puerta")).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const BAD_YAML: &str = "alpha:\n  listen: 127.0.0.1:22121\n  hash: fnv9\n  servers:\n   - 127.0.0.1:6379:1\n";

#[test]
fn test_conf_reports_like_nutcracker() {
    let good = "config/nutcracker.yml";
    let o = puerta(&["-t", "-c", good]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), format!("nutcracker: configuration file '{good}' syntax is ok\n"));
    let real = Command::new("nutcracker").args(["-t", "-c", good]).output().unwrap();
    assert_eq!(real.status.code(), Some(0), "the example is valid for nutcracker too");

    let bad = tmpdir().join("bad.yml");
    std::fs::write(&bad, BAD_YAML).unwrap();
    let bad = bad.to_str().unwrap();
    let o = puerta(&["-t", "-c", bad]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("bad.yml:3: alpha.hash: expected one of one_at_a_time,"), "{err}");
    assert!(err.ends_with(&format!("nutcracker: configuration file '{bad}' syntax is invalid\n")), "{err}");
    let real = Command::new("nutcracker").args(["-t", "-c", bad]).output().unwrap();
    assert_eq!(real.status.code(), Some(1), "nutcracker rejects it as well");
}

#[test]
fn version_and_describe_stats() {
    let o = puerta(&["-V"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stderr(&o).starts_with("This is puerta-"), "{}", stderr(&o));
    assert!(stderr(&o).contains("nutcracker-0.5.0 compatible"));

    // -D prints nutcracker's description word for word after the version.
    let ours = stderr(&puerta(&["-D"]));
    let theirs = String::from_utf8_lossy(&Command::new("nutcracker").arg("-D").output().unwrap().stderr).into_owned();
    let tail = |s: &str| s[s.find("pool stats:").expect("pool stats section")..].to_owned();
    assert_eq!(tail(&ours), tail(&theirs));
}

#[test]
fn help_explains_nutcracker_flags() {
    let o = puerta(&["-V", "-h"]);
    assert_eq!(o.status.code(), Some(0));
    let h = stderr(&o);
    for flag in ["-t, --test-conf", "-d, --daemonize", "-s, --stats-port=N", "-m, --mbuf-size=N", "TTIN"] {
        assert!(h.contains(flag), "{flag} missing from:\n{h}");
    }
    assert!(h.contains("accepted and ignored"), "-m says what it maps to");
    let plain = String::from_utf8_lossy(&puerta(&["--help"]).stdout).into_owned();
    assert!(plain.contains("nutcracker (twemproxy 0.5.0) flags are accepted too"), "{plain}");
}

fn fetch(port: u16) -> serde_json::Value {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// (top-level scalar keys, pool keys, server keys) of a stats document.
fn shape(v: &serde_json::Value) -> (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>) {
    let top = v.as_object().unwrap();
    let scalars = top.iter().filter(|(_, v)| !v.is_object()).map(|(k, _)| k.clone()).collect();
    let pool = top.values().find_map(|v| v.as_object()).expect("a pool object");
    let pool_keys = pool.iter().filter(|(_, v)| !v.is_object()).map(|(k, _)| k.clone()).collect();
    let server = pool.values().find_map(|v| v.as_object()).expect("a server object");
    (scalars, pool_keys, server.keys().cloned().collect())
}

/// Kills the daemon (found by its pid file) if a test fails midway.
struct Daemon(Option<i32>);

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // SAFETY: signalling a pid we started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

#[test]
fn daemon_writes_pid_file_serves_stats_and_reopens_its_log() {
    let r = redis();
    let dir = tmpdir();
    let (listen, admin, stats) = (free_port(), free_port(), free_port());
    let conf = dir.join("p.toml");
    std::fs::write(&conf, tcp_config(listen, &[r.port], "", "").replace("{admin}", &admin.to_string())).unwrap();
    let (pid_path, log_path) = (dir.join("p.pid"), dir.join("p.log"));
    let o = puerta(&[
        "-d",
        "-c",
        conf.to_str().unwrap(),
        "-p",
        pid_path.to_str().unwrap(),
        "-o",
        log_path.to_str().unwrap(),
        "-s",
        &stats.to_string(),
        "-a",
        "127.0.0.1",
        "-v",
        "6",
    ]);
    assert_eq!(o.status.code(), Some(0), "the foreground process returns at once: {}", stderr(&o));
    // The file can exist before the daemon has written its pid into it.
    let read_pid = || std::fs::read_to_string(&pid_path).ok().and_then(|s| s.trim().parse::<i32>().ok());
    wait_until("pid file with a pid", Duration::from_secs(10), || read_pid().is_some());
    let pid: i32 = read_pid().unwrap();
    let mut daemon = Daemon(Some(pid));
    wait_until("stats port", Duration::from_secs(10), || TcpStream::connect(("127.0.0.1", stats)).is_ok());
    // SAFETY: getsid reads a session id. After setsid and the second fork
    // the daemon is in a new session (that it does not lead).
    let (theirs, ours) = unsafe { (libc::getsid(pid), libc::getsid(0)) };
    assert!(theirs > 0 && theirs != ours && theirs != pid, "session {theirs} vs ours {ours}");

    // The stats document has nutcracker's shape: compare with the real one.
    let ours = fetch(stats);
    let nc = Nutcracker::start(&format!(
        "alpha:\n  listen: 127.0.0.1:{{listen}}\n  redis: true\n  servers:\n   - 127.0.0.1:{}:1\n",
        r.port
    ));
    assert_eq!(shape(&ours), shape(&fetch(nc.stats_port)));
    assert_eq!(ours["service"], "nutcracker");
    assert!(ours["main"].is_object(), "pools are keyed by name: {ours}");
    assert!(ours["main"][format!("127.0.0.1:{}", r.port)].is_object(), "servers by name: {ours}");

    // SIGHUP reopens the log (logrotate moves it first) and reloads.
    wait_until("log line", Duration::from_secs(10), || {
        std::fs::read_to_string(&log_path).is_ok_and(|l| l.contains("puerta started"))
    });
    std::fs::rename(&log_path, dir.join("p.log.1")).unwrap();
    // SAFETY: signalling the daemon we started.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    wait_until("reopened log", Duration::from_secs(10), || {
        std::fs::read_to_string(&log_path).is_ok_and(|l| l.contains("reload applied"))
    });
    // TTIN / TTOU step the level (-v 6 is info).
    unsafe { libc::kill(pid, libc::SIGTTIN) };
    wait_until("TTIN", Duration::from_secs(10), || {
        std::fs::read_to_string(&log_path).is_ok_and(|l| l.contains("SIGTTIN: log level now debug"))
    });
    // One at a time: a signal still pending when the same one arrives is
    // delivered once.
    for level in ["info", "warn"] {
        unsafe { libc::kill(pid, libc::SIGTTOU) };
        wait_until("TTOU", Duration::from_secs(10), || {
            std::fs::read_to_string(&log_path).is_ok_and(|l| l.contains(&format!("SIGTTOU: log level now {level}")))
        });
    }
    // SIGTERM: drains, exits, removes its pid file.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    wait_until("pid file removed", Duration::from_secs(10), || !pid_path.exists());
    wait_until("daemon exit", Duration::from_secs(10), || unsafe { libc::kill(pid, 0) } != 0);
    daemon.0 = None;
}
