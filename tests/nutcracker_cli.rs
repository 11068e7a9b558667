//! The nutcracker command line on the `puerta` binary: `-t`, `-V`, `-D`,
//! `-d -p -o`, the stats port, and SIGHUP / SIGTERM in that mode, checked
//! against the real nutcracker where it has an answer.

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::net::TcpStream;
use std::process::{Command, Output};
use std::time::Duration;

use common::daemon::Daemon;
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
    // nutcracker prints its version on stderr, nothing on stdout, exit 0;
    // tools parse the first line's "This is nutcracker-0.5.0".
    let real = Command::new("nutcracker").arg("-V").output().unwrap();
    let real_first = stderr(&real).lines().next().unwrap_or_default().to_owned();
    assert_eq!((real.status.code(), real.stdout.is_empty()), (Some(0), true));
    let o = puerta(&["-V"]);
    assert_eq!((o.status.code(), o.stdout.is_empty()), (Some(0), true), "{}", stderr(&o));
    let first = stderr(&o).lines().next().unwrap_or_default().to_owned();
    assert_eq!(first, format!("This is nutcracker-0.5.0 (puerta {})", env!("CARGO_PKG_VERSION")));
    assert!(first.starts_with(&real_first), "{first:?} vs nutcracker's {real_first:?}");
    assert!(stderr(&o).contains("\nasync event backend: "), "{}", stderr(&o));

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

/// The binary linked as `nutcracker`: nutcracker's mode for every flag,
/// `--version` and `--help` included, which Puerta's own CLI would take.
#[test]
fn a_link_named_nutcracker_is_nutcracker() {
    let dir = tmpdir();
    let link = dir.join("nutcracker");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_puerta"), &link).unwrap();
    let run = |args: &[&str]| Command::new(&link).args(args).output().unwrap();
    for flag in ["--version", "-V"] {
        let o = run(&[flag]);
        assert_eq!((o.status.code(), o.stdout.is_empty()), (Some(0), true), "{flag}");
        assert!(stderr(&o).starts_with("This is nutcracker-0.5.0 (puerta "), "{flag}: {}", stderr(&o));
    }
    let o = run(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("-s, --stats-port=N"), "nutcracker's help on stderr: {}", stderr(&o));
    // A TOML file is no sign of nutcracker's CLI, but the name is.
    let o = run(&["-t", "-c", "config/tcp.toml"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "nutcracker: configuration file 'config/tcp.toml' syntax is ok\n");
    // The same invocation as `puerta` is Puerta's own command line.
    let plain = puerta(&["--version"]);
    assert!(String::from_utf8_lossy(&plain.stdout).starts_with("puerta "), "{plain:?}");
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

#[test]
fn daemon_writes_pid_file_serves_stats_and_reopens_its_log() {
    let r = redis();
    let dir = tmpdir();
    let (listen, admin, stats) = (free_port(), free_port(), free_port());
    let conf = dir.join("p.toml");
    std::fs::write(&conf, tcp_config(listen, &[r.port], "", "").replace("{admin}", &admin.to_string())).unwrap();
    let (pid_path, log_path) = (dir.join("p.pid"), dir.join("p.log"));
    let mut daemon = Daemon::start(
        &[
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
        ],
        &pid_path,
    );
    let pid = daemon.pid();
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
    // Each signal is logged in nutcracker's words (nc_signal.c).
    let logged = |line: &str| std::fs::read_to_string(&log_path).map(|l| l.matches(line).count()).unwrap_or(0);
    assert_eq!(logged("signal 1 (SIGHUP) received, reopening log file"), 1, "in the reopened log");
    // TTIN / TTOU step the level (-v 6 is info).
    unsafe { libc::kill(pid, libc::SIGTTIN) };
    wait_until("TTIN", Duration::from_secs(10), || {
        logged("signal 21 (SIGTTIN) received, up logging level level=\"debug\"") == 1
    });
    // One at a time: a signal still pending when the same one arrives is
    // delivered once.
    for (n, level) in [(1, "info"), (2, "warn")] {
        unsafe { libc::kill(pid, libc::SIGTTOU) };
        wait_until("TTOU", Duration::from_secs(10), || {
            logged(&format!("signal 22 (SIGTTOU) received, down logging level level=\"{level}\"")) == 1
                && logged("signal 22 (SIGTTOU) received, down logging level") == n
        });
    }
    // SIGTERM: logged, drains, exits, removes its pid file.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    wait_until("TERM logged", Duration::from_secs(10), || logged("signal 15 (SIGTERM) received, exiting") == 1);
    wait_until("pid file removed", Duration::from_secs(10), || !pid_path.exists());
    wait_until("daemon exit", Duration::from_secs(10), || unsafe { libc::kill(pid, 0) } != 0);
    daemon.forget();
}

/// SIGSEGV (here sent with kill, as a fault would raise it): the log gets
/// nutcracker's line, written from the handler, and the process then dies
/// of the signal (default action restored and re-raised: a core dump).
#[test]
fn sigsegv_is_logged_then_kills_by_signal_11() {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let r = redis();
    let dir = tmpdir();
    let conf = dir.join("p.yml");
    let listen = free_port();
    let yaml = common::twem_puerta::yaml(true, &[r.port], "").replace("{listen}", &listen.to_string());
    std::fs::write(&conf, yaml).unwrap();
    let log_path = dir.join("p.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_puerta"));
    cmd.args(["-c", conf.to_str().unwrap(), "-o", log_path.to_str().unwrap(), "-s", &free_port().to_string()]).args([
        "-a",
        "127.0.0.1",
        "--workers",
        "1",
    ]);
    // SAFETY: setrlimit in the child before exec: no core file to write.
    unsafe {
        cmd.pre_exec(|| {
            let none = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            libc::setrlimit(libc::RLIMIT_CORE, &none);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    wait_until("puerta to listen", Duration::from_secs(15), || TcpStream::connect(("127.0.0.1", listen)).is_ok());
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGSEGV) };
    let mut status = None;
    wait_until("puerta to die", Duration::from_secs(10), || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    let status = status.unwrap();
    assert_eq!(status.signal(), Some(libc::SIGSEGV), "{status:?}");
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("\nsignal 11 (SIGSEGV) received, core dumping\n"), "{log}");
}
