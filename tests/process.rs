//! Process-level behaviour: `puerta check`, startup failures, SO_REUSEPORT
//! listeners per worker, and CPU pinning.

mod common;

use std::process::Command;

use common::*;

fn puerta() -> Command {
    Command::new(env!("CARGO_BIN_EXE_puerta"))
}

#[test]
fn check_accepts_the_example_and_rejects_a_bad_file_precisely() {
    let ok = puerta().args(["check", "-c", "config/tcp.toml"]).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("tcp"));

    let dir = tmpdir();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[[pool]]\nname = \"a\"\nlisten = \"127.0.0.1:7000\"\nservers = [\"127.0.0.1:6379\"]\nbalance = \"fastest\"\n",
    )
    .unwrap();
    let out = puerta().args(["check", "-c", bad.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:5: pool[0].balance:"), "{err}");
    assert!(err.contains("fastest"), "{err}");

    // Running with the same file fails the same way before anything starts.
    let out = puerta().args(["-c", bad.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn busy_listen_port_fails_startup() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tmpdir();
    let cfg = dir.join("p.toml");
    let admin = free_port();
    std::fs::write(&cfg, tcp_config(port, &[6379], "", "").replace("{admin}", &admin.to_string())).unwrap();
    let out = puerta().args(["-c", cfg.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen on"));
}

/// Counts LISTEN sockets on `port` in /proc/net/tcp.
fn listeners_on(port: u16) -> usize {
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let needle = format!(":{port:04X} ");
    tcp.lines()
        .filter(|l| l.split_whitespace().nth(1).is_some_and(|a| format!("{a} ").ends_with(&needle)))
        .filter(|l| l.split_whitespace().nth(3) == Some("0A"))
        .count()
}

#[test]
fn two_workers_share_the_port_and_are_pinned() {
    let r = redis();
    let listen = free_port();
    let p = Puerta::start(&tcp_config(listen, &[r.port], "", ""), drivers()[0]);
    p.wait_ready();
    assert_eq!(listeners_on(listen), 2, "one SO_REUSEPORT listener per worker");
    let ncpu = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut pinned = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{}/task", p.proc.pid())).unwrap() {
        let t = t.unwrap().path();
        let comm = std::fs::read_to_string(t.join("comm")).unwrap();
        if comm.trim().starts_with("puerta-w") {
            let status = std::fs::read_to_string(t.join("status")).unwrap();
            let cpus = status
                .lines()
                .find(|l| l.starts_with("Cpus_allowed_list:"))
                .unwrap()
                .split(':')
                .nth(1)
                .unwrap()
                .trim()
                .to_string();
            pinned.push((comm.trim().to_string(), cpus));
        }
    }
    pinned.sort();
    assert_eq!(pinned.len(), 2, "{pinned:?}");
    if ncpu >= 2 {
        assert!(pinned.iter().all(|(_, c)| !c.contains(',') && !c.contains('-')), "each worker on one CPU: {pinned:?}");
        assert_ne!(pinned[0].1, pinned[1].1, "workers on distinct CPUs: {pinned:?}");
    }
}
