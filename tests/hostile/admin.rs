//! Attacks on the process as a whole (defects 5 and 9): clients past
//! RLIMIT_NOFILE, idle sockets on the admin and nutcracker stats ports,
//! admin endpoints without the token, and a cross-origin browser POST to
//! /reload.

use std::io::Read;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::time::Duration;

use super::memcache::mc_pool;
use super::redis::{redis_pool, start};
use crate::common::fake::http_raw;
use crate::common::hostile::{cpu_seconds, mc_probe, resp_probe, Proto, Target, Victim};
use crate::common::twem::memcached;
use crate::common::{drivers, free_port, redis, wait_until, Puerta};
use crate::{numbered, RSS_SMALL_MIB};

/// A `[server]` section with 2 workers and the admin port, then `pool`
/// (a twem pool with `{listen}`) on `listen`.
fn config(server_extra: &str, pool: &str, listen: u16) -> String {
    format!(
        "[server]\nworkers = 2\nadmin = \"127.0.0.1:{{admin}}\"\nshutdown_timeout = \"2s\"\n{server_extra}\n{}",
        pool.replace("{listen}", &listen.to_string())
    )
}

#[test]
fn d5_accept_with_no_fds_left_backs_off() {
    let m = memcached();
    for io in drivers() {
        let case = format!("d5 60 idle clients under RLIMIT_NOFILE 48 ({io})");
        let listen = free_port();
        let p = Puerta::start_with(&config("", &mc_pool(&[m.port], ""), listen), &["--io", io], |cmd| {
            // SAFETY: setrlimit is async-signal-safe; the child only.
            unsafe {
                cmd.pre_exec(|| {
                    let lim = libc::rlimit { rlim_cur: 48, rlim_max: 48 };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        });
        let pid = p.proc.pid();
        let idle: Vec<TcpStream> = (0..60).map(|_| TcpStream::connect(("127.0.0.1", listen)).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(500));
        let (log0, cpu0) = (p.log().len(), cpu_seconds(pid));
        std::thread::sleep(Duration::from_secs(3));
        let (log1, cpu1) = (p.log().len(), cpu_seconds(pid));
        // A spinning accept loop burns both cores (6 s of CPU in 3 s) and
        // logs megabytes; a back-off logs a line per interval.
        assert!(log1 - log0 < 64 * 1024, "{case}: {} bytes logged in 3 s", log1 - log0);
        assert!(cpu1 - cpu0 < 1.0, "{case}: {:.2} s of CPU in 3 s of wall time", cpu1 - cpu0);
        drop(idle);
        let probe = mc_probe("hostile:probe");
        wait_until("a new client to be served", Duration::from_secs(10), || probe(listen).is_ok());
        let v = Victim::start(listen, Proto::Memcache, &numbered("d5v", 24), 6);
        v.finish(&case);
        Target { pid, port: listen, probe: &probe, rss_mib: RSS_SMALL_MIB }.assert_healthy(&case);
    }
}

/// GET `path` with `headers`; (status, body) within 3 s, or panics.
fn get(port: u16, path: &str, headers: &str, case: &str) -> (u16, String) {
    http_raw(port, &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1{headers}"), "", Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("{case}: GET {path} got no answer within 3 s: {e}"))
}

fn post_reload(port: u16, headers: &str, case: &str) -> u16 {
    let head = format!("POST /reload HTTP/1.1\r\nHost: 127.0.0.1{headers}");
    http_raw(port, &head, "x", Duration::from_secs(10)).unwrap_or_else(|e| panic!("{case}: POST /reload: {e}")).0
}

#[test]
fn d9_admin_and_stats_ports_serve_past_50_idle_sockets() {
    let r = redis();
    for io in drivers() {
        let case = format!("d9 50 idle sockets on the admin and stats ports ({io})");
        let px = start(&[r.port], "", io);
        let t = Target { pid: px.proc.pid(), port: px.port(), probe: &resp_probe, rss_mib: RSS_SMALL_MIB };
        let v = Victim::start(px.port(), Proto::Redis, &numbered("d9v", 24), 6);
        let idle: Vec<TcpStream> = (0..50).map(|_| TcpStream::connect(("127.0.0.1", px.admin)).unwrap()).collect();
        assert_eq!(get(px.admin, "/ready", "", &case).0, 200, "{case}: /ready");
        let (status, body) = get(px.admin, "/metrics", "", &case);
        assert!(status == 200 && body.contains("puerta_"), "{case}: /metrics {status}");
        drop(idle);
        let idle: Vec<TcpStream> = (0..50).map(|_| TcpStream::connect(("127.0.0.1", px.stats_port)).unwrap()).collect();
        let mut s = TcpStream::connect(("127.0.0.1", px.stats_port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut text = String::new();
        let read = s.read_to_string(&mut text);
        assert!(read.is_ok(), "{case}: the stats port gave no answer within 3 s: {read:?}");
        let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{case}: {e}: {text}"));
        assert!(json["alpha"].is_object(), "{case}: stats {text}");
        drop(idle);
        v.finish(&case);
        t.assert_healthy(&case);
    }
}

/// Starts Puerta on a redis pool with `server_extra`; returns it, the
/// pool port and a port that a reload would open (a second pool).
fn with_reload_probe(r: u16, server_extra: &str, io: &str) -> (Puerta, u16, u16) {
    let (listen, second) = (free_port(), free_port());
    let p = Puerta::start(&config(server_extra, &redis_pool(&[r], ""), listen), io);
    // The file on disk now names a second pool: a reload that runs opens it.
    let more = format!(
        "{}\n{}",
        std::fs::read_to_string(&p.config).unwrap(),
        redis_pool(&[r], "").replace("\"alpha\"", "\"beta\"").replace("{listen}", &second.to_string())
    );
    std::fs::write(&p.config, more).unwrap();
    (p, listen, second)
}

fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn d9_admin_token_guards_every_endpoint_but_health() {
    let r = redis();
    for io in drivers() {
        let case = format!("d9 admin_token ({io})");
        let (p, listen, second) = with_reload_probe(r.port, "admin_token = \"t\"", io);
        let t = Target { pid: p.proc.pid(), port: listen, probe: &resp_probe, rss_mib: RSS_SMALL_MIB };
        let v = Victim::start(listen, Proto::Redis, &numbered("d9t", 24), 6);
        assert_eq!(get(p.admin, "/ready", "", &case).0, 200, "{case}: /ready needs no token");
        assert_eq!(get(p.admin, "/metrics", "", &case).0, 401, "{case}: /metrics without the token");
        assert_eq!(get(p.admin, "/metrics", "\r\nAuthorization: Bearer u", &case).0, 401, "{case}: a wrong token");
        assert_eq!(get(p.admin, "/stats", "", &case).0, 401, "{case}: /stats without the token");
        assert_eq!(get(p.admin, "/metrics", "\r\nAuthorization: Bearer t", &case).0, 200, "{case}: the token");
        assert_eq!(post_reload(p.admin, "", &case), 401, "{case}: POST /reload without the token");
        std::thread::sleep(Duration::from_millis(300));
        assert!(!listening(second), "{case}: the reload ran without the token");
        assert_eq!(post_reload(p.admin, "\r\nAuthorization: Bearer t", &case), 200, "{case}: reload with the token");
        wait_until("the reloaded pool", Duration::from_secs(10), || listening(second));
        v.finish(&case);
        t.assert_healthy(&case);
    }
}

#[test]
fn d9_cross_origin_post_to_reload_is_refused() {
    let r = redis();
    for io in drivers() {
        let case = format!("d9 cross-origin POST /reload ({io})");
        let (p, listen, second) = with_reload_probe(r.port, "", io);
        let t = Target { pid: p.proc.pid(), port: listen, probe: &resp_probe, rss_mib: RSS_SMALL_MIB };
        let browser = "\r\nOrigin: http://evil.example\r\nContent-Type: text/plain";
        assert_eq!(post_reload(p.admin, browser, &case), 403, "{case}: a browser's cross-origin POST");
        std::thread::sleep(Duration::from_millis(300));
        assert!(!listening(second), "{case}: the cross-origin POST reloaded");
        assert_eq!(post_reload(p.admin, "", &case), 200, "{case}: a POST without Origin (curl) still reloads");
        wait_until("the reloaded pool", Duration::from_secs(10), || listening(second));
        let v = Victim::start(listen, Proto::Redis, &numbered("d9o", 24), 6);
        v.finish(&case);
        t.assert_healthy(&case);
    }
}
