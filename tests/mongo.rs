//! End-to-end tests of `mode = "mongos"`: pymongo 4 and a raw OP_MSG client
//! through Puerta to mockupdb mongos stand-ins (no mongod can be installed
//! here), each under both the io_uring and the epoll driver.

mod common;
mod mongo_support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bson::doc;
use common::*;
use mongo_support::*;

/// Runs tests/mongo/cursors.py through `port`; returns its JSON report.
fn run_cursors(port: u16) -> serde_json::Value {
    let out = Command::new(python())
        .arg(script("cursors.py"))
        .arg(format!("mongodb://127.0.0.1:{port}/"))
        .args(["--cursors", "40", "--batch", "5"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "cursors.py failed: {text}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("bad report {text:?}: {e}"))
}

#[test]
fn cursors_survive_with_client_ip_and_fail_per_connection() {
    let s = [Standin::start("a"), Standin::start("b"), Standin::start("c")];
    let backends: Vec<(&str, u16)> = s.iter().map(|x| (x.name.as_str(), x.port)).collect();
    for io in drivers() {
        let listen = free_port();
        let p = Puerta::start(&mongos_config(listen, &backends, "affinity = \"client_ip\""), io);
        p.wait_ready();
        let r = run_cursors(listen);
        assert_eq!(r["cursor_not_found"], 0, "{io}: client_ip keeps every cursor on its mongos: {r}");
        assert_eq!(r["other_errors"], 0, "{io}: {r}");
        let done: u64 = r["servers"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
        assert_eq!(done, 40, "{io}: all 40 cursors fetched to the end: {r}");
        assert!(p.metric("puerta_mongo_commands_total", "command=\"getMore\"") >= 40.0 * 9.0, "{io}");
        assert!(p.metric("puerta_mongo_command_duration_seconds_count", "command=\"find\"") >= 40.0, "{io}");
        assert!(p.metric("puerta_mongo_requests_total", "opcode=\"op_msg\"") > 400.0, "{io}");
        drop(p);

        // The same workload with per-connection pinning must fail: this is
        // what proves the test above can fail.
        let listen = free_port();
        let p = Puerta::start(&mongos_config(listen, &backends, "affinity = \"client_ip_port\""), io);
        p.wait_ready();
        let r = run_cursors(listen);
        let lost = r["cursor_not_found"].as_u64().unwrap();
        assert!(lost > 0, "{io}: client_ip_port must scatter getMores and lose cursors: {r}");
        eprintln!("{io}: client_ip_port lost {lost} of 40 cursors");
    }
}

#[test]
fn unhealthy_mongos_is_removed_and_its_clients_move() {
    for io in drivers() {
        let s = [Standin::start("a"), Standin::start("b")];
        let backends: Vec<(&str, u16)> = s.iter().map(|x| (x.name.as_str(), x.port)).collect();
        let listen = free_port();
        let p = Puerta::start(&mongos_config(listen, &backends, ""), io);
        p.wait_ready();
        let mut c = Mongo::connect(listen);
        c.hello("app");
        let first = c.whoami();
        let pinned = s.iter().find(|x| x.name == first).unwrap();
        pinned.stop_answering_hello();
        let t0 = Instant::now();
        let fails = || {
            p.metric(
                "puerta_health_checks_total",
                &format!("backend=\"{first}\",addr=\"127.0.0.1:{}\",result=\"fail\"", pinned.port),
            )
        };
        // fall (2) x check_interval (300ms) plus the last probe's timeout
        // (250ms), plus slack for a loaded 2-core test machine.
        let bound = Duration::from_millis(2 * 300 + 250) + Duration::from_secs(2);
        wait_until("the silent mongos to leave", bound, || {
            p.metric("puerta_backend_up", &format!("backend=\"{first}\"")) == 0.0
        });
        eprintln!("{io}: removed after {:?}", t0.elapsed());
        // Removed by `fall` consecutive failed hellos, not by the first.
        assert!(fails() >= 2.0, "{io}: down only after fall = 2 failed probes, saw {}", fails());
        // The idle client sits at a message boundary: closed at once.
        assert!(c.is_closed(), "{io}: a client pinned to the unhealthy mongos is closed");
        // Counted as the worker frees the session, just after the close.
        wait_until("the boundary close to be counted", Duration::from_secs(5), || {
            p.metric("puerta_mongo_boundary_closes_total", "pool=\"mongo\"") == 1.0
        });
        // Reconnecting lands on the healthy one.
        let mut c = Mongo::connect(listen);
        c.hello("app");
        assert_ne!(c.whoami(), first, "{io}: reconnect goes elsewhere");
        assert_eq!(
            c.command(doc! {"ping": 1, "$db": "admin"})
                .unwrap()
                .get("ok")
                .and_then(|v| v.as_f64().or(v.as_i32().map(f64::from))),
            Some(1.0)
        );
    }
}

#[test]
fn close_on_unhealthy_false_keeps_pinned_clients() {
    for io in drivers() {
        let s = [Standin::start("a"), Standin::start("b")];
        let backends: Vec<(&str, u16)> = s.iter().map(|x| (x.name.as_str(), x.port)).collect();
        let listen = free_port();
        let p = Puerta::start(&mongos_config(listen, &backends, "close_on_unhealthy = false"), io);
        p.wait_ready();
        let mut c = Mongo::connect(listen);
        c.hello("app");
        let first = c.whoami();
        s.iter().find(|x| x.name == first).unwrap().stop_answering_hello();
        wait_until("the silent mongos to leave", Duration::from_secs(10), || {
            p.metric("puerta_backend_up", &format!("backend=\"{first}\"")) == 0.0
        });
        // Left the snapshot (new clients go elsewhere) but its client stays.
        assert_ne!(Mongo::connect(listen).whoami(), first, "{io}: new clients avoid it");
        assert_eq!(c.whoami(), first, "{io}: the pinned client keeps its mongos");
        assert_eq!(p.metric("puerta_mongo_boundary_closes_total", "pool=\"mongo\""), 0.0, "{io}");
    }
}

#[test]
fn restart_is_detected_from_process_id() {
    let dir = tmpdir();
    let a = Standin::start_on("a", 0, &dir.join("stop-a"));
    let port = a.port;
    let listen = free_port();
    let p = Puerta::start(&mongos_config(listen, &[("a", port)], ""), "epoll");
    p.wait_ready();
    wait_until("a few probes", Duration::from_secs(5), || {
        p.metric("puerta_health_checks_total", "result=\"ok\"") >= 2.0
    });
    drop(a);
    let _a2 = Standin::start_on("a", port, &dir.join("stop-a"));
    wait_until("the restart to be seen", Duration::from_secs(10), || {
        p.metric("puerta_mongo_backend_restarts_total", "backend=\"a\"") == 1.0
    });
}

#[test]
fn app_affinity_spreads_apps_and_keeps_each_app_together() {
    let s = [Standin::start("a"), Standin::start("b"), Standin::start("c")];
    let backends: Vec<(&str, u16)> = s.iter().map(|x| (x.name.as_str(), x.port)).collect();
    for io in drivers() {
        let listen = free_port();
        let p = Puerta::start(&mongos_config(listen, &backends, "affinity = \"app\""), io);
        p.wait_ready();
        let place = |app: usize| {
            let mut c = Mongo::connect(listen);
            c.hello(&format!("app-{app}"));
            c.whoami()
        };
        let mut before = Vec::new();
        for app in 0..12 {
            let names: Vec<String> = (0..3).map(|_| place(app)).collect();
            assert!(names.iter().all(|n| n == &names[0]), "{io}: one app, one mongos: {names:?}");
            before.push(names[0].clone());
        }
        let used: std::collections::HashSet<&String> = before.iter().collect();
        assert!(used.len() >= 2, "{io}: different apps from one IP spread: {used:?}");

        // Losing a mongos moves only the apps that were on it.
        let victim = s.iter().find(|x| x.name == before[0]).unwrap();
        victim.stop_answering_hello();
        wait_until("the mongos to leave", Duration::from_secs(10), || {
            p.metric("puerta_backend_up", &format!("backend=\"{}\"", victim.name)) == 0.0
        });
        for (app, old) in before.iter().enumerate() {
            let now = place(app);
            if *old == victim.name {
                assert_ne!(now, victim.name, "{io}: app-{app} left the lost mongos");
            } else {
                assert_eq!(&now, old, "{io}: app-{app} on a surviving mongos did not move");
            }
        }
        std::fs::remove_file(&victim.stop_hello).unwrap(); // healthy again for the next driver
    }
}

/// A fake mongos that expects a PROXY header first, records it, then
/// answers every OP_MSG like a mongos hello.
fn proxy_backend(v2: bool) -> (u16, Arc<Mutex<Vec<Vec<u8>>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rec = seen.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let rec = rec.clone();
            std::thread::spawn(move || {
                let mut hdr = Vec::new();
                if v2 {
                    hdr.resize(16, 0);
                    if c.read_exact(&mut hdr).is_err() {
                        return;
                    }
                    let n = u16::from_be_bytes([hdr[14], hdr[15]]) as usize;
                    hdr.resize(16 + n, 0);
                    if c.read_exact(&mut hdr[16..]).is_err() {
                        return;
                    }
                } else {
                    let mut b = [0u8; 1];
                    while !hdr.ends_with(b"\r\n") {
                        if c.read_exact(&mut b).is_err() {
                            return;
                        }
                        hdr.push(b[0]);
                    }
                }
                rec.lock().unwrap().push(hdr);
                let mut id = 100;
                loop {
                    let mut h = [0u8; 16];
                    if c.read_exact(&mut h).is_err() {
                        return;
                    }
                    let len = i32::from_le_bytes(h[0..4].try_into().unwrap()) as usize;
                    let req = i32::from_le_bytes(h[4..8].try_into().unwrap());
                    let mut body = vec![0u8; len - 16];
                    if c.read_exact(&mut body).is_err() {
                        return;
                    }
                    let mut out = op_msg(id, &doc! {"msg": "isdbgrid", "maxWireVersion": 17, "ok": 1.0});
                    out[8..12].copy_from_slice(&req.to_le_bytes());
                    id += 1;
                    if c.write_all(&out).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, seen)
}

#[test]
fn proxy_protocol_header_comes_first_on_each_backend_connection() {
    for io in drivers() {
        for v2 in [false, true] {
            let (port, seen) = proxy_backend(v2);
            let listen = free_port();
            let version = if v2 { "v2" } else { "v1" };
            let extra = format!("proxy_protocol = \"{version}\"\nrequire_mongos = true");
            let p = Puerta::start(&mongos_config(listen, &[("lb", port)], &extra), io);
            p.wait_ready(); // probes passed: they send the header too
            let mut c = Mongo::connect(listen);
            assert_eq!(
                c.command(doc! {"ping": 1, "$db": "admin"})
                    .unwrap()
                    .get("ok")
                    .and_then(|v| v.as_f64().or(v.as_i32().map(f64::from))),
                Some(1.0)
            );
            let cport = c.s.local_addr().unwrap().port();
            let want = if v2 {
                let mut w = vec![0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];
                w.extend([0x21, 0x11, 0x00, 0x0C, 127, 0, 0, 1, 127, 0, 0, 1]);
                w.extend(cport.to_be_bytes());
                w.extend(listen.to_be_bytes());
                w
            } else {
                format!("PROXY TCP4 127.0.0.1 127.0.0.1 {cport} {listen}\r\n").into_bytes()
            };
            assert!(seen.lock().unwrap().contains(&want), "{io} {version}: client's header not seen");
        }
    }
}

#[test]
fn bad_headers_close_the_client_and_slow_ops_are_counted() {
    let s = Standin::start("a");
    for io in drivers() {
        let listen = free_port();
        let extra = "max_message_bytes = 100000\nslow_op_threshold = \"500ms\"";
        // mockupdb answers nothing else while it sleeps through the slow
        // command below, hellos included: a high `fall` keeps the stand-in
        // healthy (and its client connected) through that second.
        let cfg = mongos_config(listen, &[("a", s.port)], extra).replace("fall = 2", "fall = 10");
        let p = Puerta::start(&cfg, io);
        p.wait_ready();
        // Short: messageLength 8 < 16.
        let mut c = Mongo::connect(listen);
        assert_eq!(
            c.command(doc! {"ping": 1, "$db": "admin"})
                .unwrap()
                .get("ok")
                .and_then(|v| v.as_f64().or(v.as_i32().map(f64::from))),
            Some(1.0)
        );
        let mut bad = op_msg(9, &doc! {"ping": 1, "$db": "admin"});
        bad[0..4].copy_from_slice(&8i32.to_le_bytes());
        c.s.write_all(&bad).unwrap();
        assert!(c.is_closed(), "{io}: short header closes the client");
        wait_until("the short header's log line", Duration::from_secs(5), || {
            p.log().contains("closing mongo client: messageLength 8 is shorter than the 16-byte header")
        });
        // Oversized: announced above max_message_bytes, split mid-header.
        let mut c = Mongo::connect(listen);
        let mut big = op_msg(1, &doc! {"ping": 1, "$db": "admin"});
        big[0..4].copy_from_slice(&200_000i32.to_le_bytes());
        c.s.write_all(&big[..7]).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        c.s.write_all(&big[7..]).unwrap();
        assert!(c.is_closed(), "{io}: oversized header closes the client");
        wait_until("protocol errors counted", Duration::from_secs(5), || {
            p.metric("puerta_mongo_protocol_errors_total", "pool=\"mongo\"") == 2.0
        });
        // A slow command is logged and counted; a fast one is not.
        let mut c = Mongo::connect(listen);
        c.command(doc! {"slow": 1.0, "$db": "admin"}).unwrap();
        c.command(doc! {"ping": 1, "$db": "admin"}).unwrap();
        assert_eq!(p.metric("puerta_mongo_slow_ops_total", "pool=\"mongo\""), 1.0, "{io}");
        // The log line names the command, its database, the mongos and the
        // duration (the stand-in slept 1 s).
        let log = p.log();
        let line = log.lines().find(|l| l.contains("slow operation")).unwrap_or_else(|| panic!("{io}: {log}"));
        assert!(
            line.contains("mongos=a") && line.contains("command=\"slow\"") && line.contains("db=\"admin\""),
            "{line}"
        );
        let ms: f64 =
            line.split("duration_ms=").nth(1).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap();
        assert!(ms >= 1000.0, "{io}: {line}");
        assert_eq!(log.matches("slow operation").count(), 1, "{io}: the fast ping is not logged");
        let (_, stats) = p.get("/stats");
        let v: serde_json::Value = serde_json::from_str(&stats).unwrap();
        let m = &v["pools"][0]["mongo"];
        assert_eq!(m["slow_ops"], 1, "{io}: {m}");
        assert!(m["latency_by_command"]["ping"]["count"].as_u64().unwrap() >= 2, "{io}: {m}");
        assert!(v["pools"][0]["backends"][0]["mongo"]["commands"]["ping"].as_u64().unwrap() >= 2, "{io}");
    }
}

#[test]
fn an_outstanding_request_gets_its_reply_before_the_close() {
    for io in drivers() {
        let s = [Standin::start("a"), Standin::start("b")];
        let backends: Vec<(&str, u16)> = s.iter().map(|x| (x.name.as_str(), x.port)).collect();
        let listen = free_port();
        let p = Puerta::start(&mongos_config(listen, &backends, ""), io);
        p.wait_ready();
        let mut c = Mongo::connect(listen);
        c.s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.hello("app");
        let first = c.whoami();
        // The stand-in answers after 5 s; meanwhile its health checks fail
        // (it stops answering hello) and it leaves the snapshot.
        c.s.write_all(&op_msg(50, &doc! {"slow": 5.0, "$db": "admin"})).unwrap();
        s.iter().find(|x| x.name == first).unwrap().stop_answering_hello();
        wait_until("the busy mongos to leave", Duration::from_millis(4500), || {
            p.metric("puerta_backend_up", &format!("backend=\"{first}\"")) == 0.0
        });
        let (to, reply) = read_msg(&mut c.s).expect("the reply arrives whole");
        assert_eq!(to, 50, "{io}");
        assert!(reply.contains_key("ok"), "{io}: {reply}");
        assert!(c.is_closed(), "{io}: closed right after the reply");
        // Counted as the worker frees the session, just after the close.
        wait_until("the boundary close to be counted", Duration::from_secs(5), || {
            p.metric("puerta_mongo_boundary_closes_total", "pool=\"mongo\"") == 1.0
        });
    }
}

#[test]
fn reload_and_drain_close_mongos_clients_at_boundaries() {
    for io in drivers() {
        let s = [Standin::start("a"), Standin::start("b")];
        let backends: Vec<(&str, u16)> = s.iter().map(|x| (x.name.as_str(), x.port)).collect();
        let listen = free_port();
        let cfg =
            mongos_config(listen, &backends, "").replace("shutdown_timeout = \"5s\"", "shutdown_timeout = \"60s\"");
        let p = Puerta::start(&cfg, io);
        p.wait_ready();
        let mut c = Mongo::connect(listen);
        c.hello("app");
        let first = c.whoami();
        // Reload without the backend this client is on.
        let rest: Vec<(&str, u16)> = backends.iter().copied().filter(|(n, _)| *n != first).collect();
        let text = std::fs::read_to_string(&p.config).unwrap();
        let admin_line = text.lines().find(|l| l.starts_with("admin")).unwrap().to_string();
        let new = mongos_config(listen, &rest, "")
            .replace("admin = \"127.0.0.1:{admin}\"", &admin_line)
            .replace("shutdown_timeout = \"5s\"", "shutdown_timeout = \"60s\"");
        std::fs::write(&p.config, new).unwrap();
        assert_eq!(p.post("/reload").0, 200, "{io}");
        assert!(c.is_closed(), "{io}: a client of a removed mongos is closed");
        let mut c = Mongo::connect(listen);
        c.hello("app");
        assert_eq!(c.whoami(), rest[0].0, "{io}");
        // Drain: idle mongos clients close at once, so the process exits
        // long before shutdown_timeout (60 s).
        let t0 = Instant::now();
        // SAFETY: signalling the child we started.
        unsafe { libc::kill(p.proc.pid() as i32, libc::SIGTERM) };
        assert!(c.is_closed(), "{io}: drained");
        let mut p = p;
        wait_until("puerta to exit", Duration::from_secs(15), || p.proc.child.try_wait().unwrap().is_some());
        eprintln!("{io}: drained and exited in {:?}", t0.elapsed());
    }
}

#[test]
fn affinity_none_balances_by_least_latency_and_round_robin() {
    // "b" answers hello 80 ms late: a distant mongos.
    let s = [Standin::start("a"), Standin::start_slow_hello("b", Duration::from_millis(80))];
    let backends: Vec<(&str, u16)> = s.iter().map(|x| (x.name.as_str(), x.port)).collect();
    for io in drivers() {
        let listen = free_port();
        let extra = "affinity = \"none\"\nbalance = \"least_latency\"";
        let p = Puerta::start(&mongos_config(listen, &backends, extra), io);
        p.wait_ready();
        let rtt = |n: &str| p.metric("puerta_health_check_rtt_seconds", &format!("backend=\"{n}\""));
        wait_until("RTTs from successful probes", Duration::from_secs(10), || {
            let ok = |x: &Standin| format!("addr=\"127.0.0.1:{}\",result=\"ok\"", x.port);
            s.iter().all(|x| p.metric("puerta_health_checks_total", &ok(x)) >= 1.0)
        });
        assert!(rtt("a") > 0.0 && rtt("b") >= 0.08, "{io}: RTT recorded: a {} b {}", rtt("a"), rtt("b"));
        // Every new connection goes to the mongos with the lowest RTT, and
        // the open connections per mongos show in /metrics and /stats.
        let mut held = Vec::new();
        for _ in 0..4 {
            let mut c = Mongo::connect(listen);
            assert_eq!(c.whoami(), "a", "{io}: least_latency picks the near mongos");
            held.push(c);
        }
        assert_eq!(p.metric("puerta_backend_connections", "backend=\"a\""), 4.0, "{io}");
        assert_eq!(p.metric("puerta_backend_connections", "backend=\"b\""), 0.0, "{io}");
        let (_, stats) = p.get("/stats");
        let v: serde_json::Value = serde_json::from_str(&stats).unwrap();
        let conns: Vec<u64> =
            v["pools"][0]["backends"].as_array().unwrap().iter().map(|b| b["connections"].as_u64().unwrap()).collect();
        assert_eq!(conns, vec![4, 0], "{io}: /stats backends[].connections");
        drop(held);
        drop(p);

        // round_robin: each worker alternates, so with 2 workers any 4
        // connections reach both mongos.
        let listen = free_port();
        let p = Puerta::start(&mongos_config(listen, &backends, "affinity = \"none\"\nbalance = \"round_robin\""), io);
        p.wait_ready();
        let seen: std::collections::HashSet<String> = (0..4).map(|_| Mongo::connect(listen).whoami()).collect();
        assert_eq!(seen.len(), 2, "{io}: round robin spreads connections: {seen:?}");
    }
}
