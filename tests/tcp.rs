//! End-to-end tests of `mode = "tcp"` against real redis-server processes,
//! each run under both the io_uring and the epoll driver.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn traffic_flows_and_spreads_over_backends() {
    for io in drivers() {
        let (r1, r2) = (redis(), redis());
        let listen = free_port();
        let p = Puerta::start(&tcp_config(listen, &[r1.port, r2.port], "", ""), io);
        p.wait_ready();
        for c in 0..16 {
            let mut cl = Resp::connect(listen).unwrap();
            for i in 0..20 {
                let k = format!("k{c}-{i}");
                assert_eq!(cl.cmd(&["SET", &k, &format!("v{i}")]).unwrap(), "OK", "{io}");
                assert_eq!(cl.cmd(&["GET", &k]).unwrap(), format!("v{i}"), "{io}");
            }
        }
        // Round robin per connection: both backends received keys.
        let n1: u64 = Resp::connect(r1.port).unwrap().cmd(&["DBSIZE"]).unwrap().parse().unwrap();
        let n2: u64 = Resp::connect(r2.port).unwrap().cmd(&["DBSIZE"]).unwrap().parse().unwrap();
        assert_eq!(n1 + n2, 320, "{io}: every key landed somewhere");
        assert!(n1 > 0 && n2 > 0, "{io}: both backends used ({n1}/{n2})");
        // A large value crosses many provided buffers and partial sends.
        let big = "x".repeat(3 * 1024 * 1024);
        let mut cl = Resp::connect(listen).unwrap();
        assert_eq!(cl.cmd(&["SET", "big", &big]).unwrap(), "OK");
        assert_eq!(cl.cmd(&["GET", "big"]).unwrap().len(), big.len(), "{io}");
        assert!(p.metric("puerta_bytes_in_total", "pool=\"main\"") > 3_000_000.0, "{io}");
        assert!(p.metric("puerta_client_connections_total", "pool=\"main\"") >= 17.0, "{io}");
    }
}

#[test]
fn metrics_show_driver_and_ready_tracks_health() {
    for io in drivers() {
        let r1 = redis();
        let listen = free_port();
        let p = Puerta::start(&tcp_config(listen, &[r1.port], "", ""), io);
        p.wait_ready();
        let want = if io == "uring" { "io_uring" } else { "epoll" };
        assert_eq!(p.metric("puerta_io_driver", &format!("driver=\"{want}\"")), 1.0, "{io}");
        assert_eq!(p.metric("puerta_backend_up", &format!("127.0.0.1:{}", r1.port)), 1.0);
        let epoch = p.metric("puerta_snapshot_epoch", "");
        assert!(epoch >= 1.0);
        assert_eq!(p.metric("puerta_worker_epoch", "worker=\"1\""), epoch, "{io}: workers run the latest epoch");
        drop(r1); // kill the only backend
        wait_until("ready to turn 503", Duration::from_secs(10), || p.get("/ready").0 == 503);
        assert!(p.get("/ready").1.contains("no healthy backend"), "{io}");
        assert_eq!(p.metric("puerta_backend_up", ""), 0.0, "{io}");
        // With no healthy backend a new client is closed at once, not left hanging.
        let mut c = Resp::connect(listen).unwrap();
        assert!(c.is_closed(), "{io}: client must be closed when no backend is healthy");
        wait_until("no_backend rejection counted", Duration::from_secs(5), || {
            p.metric("puerta_client_rejected_total", "reason=\"no_backend\"") >= 1.0
        });
    }
}

#[test]
fn reload_keeps_connected_clients_working() {
    for io in drivers() {
        let (r1, r2) = (redis(), redis());
        let listen = free_port();
        let p = Puerta::start(&tcp_config(listen, &[r1.port], "", ""), io);
        p.wait_ready();
        let epoch = p.metric("puerta_snapshot_epoch", "");

        // Four clients hammer their own counters from threads while the
        // config is reloaded three times (admin, SIGHUP, a broken file).
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let clients: Vec<_> = (0..4)
            .map(|i| {
                let mut c = Resp::connect(listen).unwrap();
                assert_eq!(c.cmd(&["PING"]).unwrap(), "PONG");
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let key = format!("ctr{i}");
                    let mut n = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        match c.cmd(&["INCR", &key]) {
                            Ok(v) if v == (n + 1).to_string() => n += 1,
                            other => return Err(format!("client {i} after {n} INCRs: {other:?}")),
                        }
                    }
                    Ok(n)
                })
            })
            .collect();
        let write = |cfg: String| std::fs::write(&p.config, cfg.replace("{admin}", &p.admin.to_string())).unwrap();

        // 1. POST /reload: a second pool and a second server for the first.
        let second = free_port();
        let pool2 = format!(
            "[[pool]]\nname = \"second\"\nlisten = \"127.0.0.1:{second}\"\nservers = [\"127.0.0.1:{}\"]\n",
            r2.port
        );
        write(tcp_config(listen, &[r1.port, r2.port], "", "") + &pool2);
        let (code, body) = p.post("/reload");
        assert_eq!(code, 200, "{io}: {body}");
        p.wait_ready();
        let mut c2 = Resp::connect(second).unwrap();
        assert_eq!(c2.cmd(&["PING"]).unwrap(), "PONG", "{io}: new pool serves");

        // 2. SIGHUP: the first pool loses the server every client is on;
        // connected clients finish on the config they started with.
        let before = p.metric("puerta_snapshot_epoch", "");
        write(tcp_config(listen, &[r2.port], "", "") + &pool2);
        // SAFETY: signalling the child we started.
        unsafe { libc::kill(p.proc.pid() as i32, libc::SIGHUP) };
        wait_until("SIGHUP reload", Duration::from_secs(5), || p.metric("puerta_snapshot_epoch", "") > before);
        p.wait_ready();
        let mut fresh = Resp::connect(listen).unwrap();
        assert_eq!(fresh.cmd(&["SET", "fresh", "1"]).unwrap(), "OK");
        let on_r2 = Resp::connect(r2.port).unwrap().cmd(&["EXISTS", "fresh"]).unwrap();
        assert_eq!(on_r2, "1", "{io}: new clients follow the reloaded server list");

        // 3. A broken file is rejected and the running config stays.
        std::fs::write(&p.config, "[[pool]]\nname = 3\n").unwrap();
        let (code, body) = p.post("/reload");
        assert_eq!(code, 400, "{io}");
        assert!(body.contains("puerta.toml:2"), "{io}: reason names file and line: {body}");
        assert_eq!(Resp::connect(second).unwrap().cmd(&["PING"]).unwrap(), "PONG");

        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in clients {
            let n = t.join().unwrap().unwrap_or_else(|e| panic!("{io}: a client was disturbed by a reload: {e}"));
            assert!(n > 0, "{io}");
        }
        assert!(p.metric("puerta_snapshot_epoch", "") >= epoch + 2.0, "{io}");
        let n1: u64 = Resp::connect(r1.port).unwrap().cmd(&["GET", "ctr0"]).unwrap().parse().unwrap_or(0);
        assert!(n1 > 0, "{io}: the old clients kept using their (removed) server");
    }
}

#[test]
fn backend_killed_mid_traffic_affects_only_its_clients() {
    for io in drivers() {
        let (r1, r2) = (redis(), redis());
        let listen = free_port();
        let p = Puerta::start(&tcp_config(listen, &[r1.port, r2.port], "", ""), io);
        p.wait_ready();
        // Open clients until we hold one on each backend.
        let mut clients = Vec::new();
        for i in 0..4 {
            let mut c = Resp::connect(listen).unwrap();
            assert_eq!(c.cmd(&["SET", &format!("owner{i}"), "x"]).unwrap(), "OK");
            clients.push(c);
        }
        let on_r1: Vec<bool> = (0..4)
            .map(|i| Resp::connect(r1.port).unwrap().cmd(&["EXISTS", &format!("owner{i}")]).unwrap() == "1")
            .collect();
        assert!(on_r1.iter().any(|&b| b) && on_r1.iter().any(|&b| !b), "{io}: {on_r1:?}");
        drop(r1);
        for (c, &dead) in clients.iter_mut().zip(&on_r1) {
            if dead {
                assert!(c.cmd(&["PING"]).is_err() || c.is_closed(), "{io}: client of the dead backend is closed");
            } else {
                assert_eq!(c.cmd(&["PING"]).unwrap(), "PONG", "{io}: other clients keep flowing");
            }
        }
        // New clients all land on the survivor, even before health notices.
        for _ in 0..10 {
            let mut c = Resp::connect(listen).unwrap();
            assert_eq!(c.cmd(&["PING"]).unwrap(), "PONG", "{io}: new client retried onto a live backend");
        }
    }
}

#[test]
fn sigterm_drains_open_connections_then_exits_zero() {
    for io in drivers() {
        let r1 = redis();
        let listen = free_port();
        let mut p = Puerta::start(&tcp_config(listen, &[r1.port], "", ""), io);
        p.wait_ready();
        let mut c = Resp::connect(listen).unwrap();
        assert_eq!(c.cmd(&["PING"]).unwrap(), "PONG");
        unsafe { libc::kill(p.proc.pid() as i32, libc::SIGTERM) };
        // Listeners close: new connections are refused...
        wait_until("listener to close", Duration::from_secs(5), || {
            std::net::TcpStream::connect(("127.0.0.1", listen)).is_err()
        });
        // ...while the open client keeps working.
        assert_eq!(c.cmd(&["SET", "k", "v"]).unwrap(), "OK", "{io}");
        assert!(p.proc.child.try_wait().unwrap().is_none(), "{io}: must wait for the open client");
        drop(c);
        let mut status = None;
        wait_until("exit after drain", Duration::from_secs(5), || {
            status = p.proc.child.try_wait().unwrap();
            status.is_some()
        });
        assert!(status.unwrap().success(), "{io}: exit 0 after drain");
    }
}

#[test]
fn sigterm_force_closes_after_shutdown_timeout() {
    for io in drivers() {
        let r1 = redis();
        let listen = free_port();
        let cfg =
            tcp_config(listen, &[r1.port], "", "").replace("shutdown_timeout = \"5s\"", "shutdown_timeout = \"1s\"");
        let mut p = Puerta::start(&cfg, io);
        p.wait_ready();
        let mut c = Resp::connect(listen).unwrap();
        assert_eq!(c.cmd(&["PING"]).unwrap(), "PONG");
        let t0 = std::time::Instant::now();
        // SAFETY: signalling the child we started.
        unsafe { libc::kill(p.proc.pid() as i32, libc::SIGTERM) };
        // The client never leaves: it is closed when shutdown_timeout is up
        // (not before), and the process still exits 0.
        assert!(c.is_closed(), "{io}: open client force-closed at the drain deadline");
        let waited = t0.elapsed();
        assert!(waited >= Duration::from_millis(900), "{io}: closed after {waited:?}, before shutdown_timeout");
        let mut status = None;
        wait_until("exit after the drain deadline", Duration::from_secs(5), || {
            status = p.proc.child.try_wait().unwrap();
            status.is_some()
        });
        assert!(status.unwrap().success(), "{io}: exit 0 after a forced drain");
    }
}

#[test]
fn client_limit_closes_excess_connections() {
    for io in drivers() {
        let r1 = redis();
        let listen = free_port();
        let p = Puerta::start(&tcp_config(listen, &[r1.port], "max_client_connections = 2", ""), io);
        p.wait_ready();
        let mut a = Resp::connect(listen).unwrap();
        let mut b = Resp::connect(listen).unwrap();
        assert_eq!(a.cmd(&["PING"]).unwrap(), "PONG");
        assert_eq!(b.cmd(&["PING"]).unwrap(), "PONG");
        let mut c = Resp::connect(listen).unwrap();
        assert!(c.is_closed(), "{io}: third client is closed");
        assert_eq!(p.metric("puerta_client_rejected_total", "reason=\"max_connections\""), 1.0, "{io}");
        drop(a);
        wait_until("slot freed", Duration::from_secs(5), || {
            Resp::connect(listen).and_then(|mut d| d.cmd(&["PING"])).map(|r| r == "PONG").unwrap_or(false)
        });
        assert_eq!(b.cmd(&["PING"]).unwrap(), "PONG");
    }
}

#[test]
fn idle_clients_are_closed() {
    for io in drivers() {
        let r1 = redis();
        let listen = free_port();
        let p = Puerta::start(&tcp_config(listen, &[r1.port], "idle_timeout = \"300ms\"", ""), io);
        p.wait_ready();
        let mut c = Resp::connect(listen).unwrap();
        assert_eq!(c.cmd(&["PING"]).unwrap(), "PONG");
        // A client with traffic more often than idle_timeout stays open for
        // several idle periods (its deadline moves; the timer re-arms)...
        let mut busy = Resp::connect(listen).unwrap();
        for i in 0..12 {
            std::thread::sleep(Duration::from_millis(100));
            assert_eq!(busy.cmd(&["PING"]).unwrap(), "PONG", "{io}: busy client still open after {i} pings");
        }
        // ...while the silent one was closed.
        assert!(c.is_closed(), "{io}: idle client closed");
        assert!(busy.is_closed(), "{io}: and the busy one once it falls silent");
        wait_until("idle closes counted", Duration::from_secs(3), || p.metric("puerta_idle_closed_total", "") >= 2.0);
    }
}

/// A backend whose accept queue is full: the kernel drops new SYNs, so a
/// connect to it neither succeeds nor fails until the caller gives up.
fn blackhole() -> (socket2::Socket, std::net::TcpStream, u16) {
    let l = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    l.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
    l.listen(0).unwrap();
    let port = l.local_addr().unwrap().as_socket().unwrap().port();
    // Backlog 0 holds one connection; this one fills it.
    let filler = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    (l, filler, port)
}

#[test]
fn connect_timeout_retries_on_another_backend() {
    for io in drivers() {
        let (_hole, _filler, hole) = blackhole();
        let r = redis();
        let listen = free_port();
        // The black hole is first, so each worker's first client (round
        // robin from index 0) is sent there; a high `fall` keeps it in the
        // pool although its probes time out too.
        let cfg =
            tcp_config(listen, &[hole, r.port], "connect_timeout = \"300ms\"", "").replace("fall = 1", "fall = 100");
        let p = Puerta::start(&cfg, io);
        p.wait_ready();
        for _ in 0..4 {
            let t0 = std::time::Instant::now();
            let mut c = Resp::connect(listen).unwrap();
            assert_eq!(c.cmd(&["PING"]).unwrap(), "PONG", "{io}: retried on the live backend, request kept");
            eprintln!("{io}: answered after {:?}", t0.elapsed());
        }
        let failures = p.metric("puerta_backend_connect_failures_total", &format!("127.0.0.1:{hole}"));
        assert!(failures >= 1.0, "{io}: the timed-out attempt is counted against the black hole");
    }
}

/// Bytes followed at once by a close, in both directions: the client sends
/// a request and shuts down its write side, the backend answers and closes.
/// Each side's data and its EOF often arrive in one readiness event (the
/// epoll driver then must read past a short read to see the EOF); neither
/// may be lost or left hanging.
#[test]
fn data_then_close_arrives_whole_both_ways() {
    use std::io::{Read, Write};
    let backend = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bport = backend.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in backend.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                // Health probes connect and leave: answer only a request.
                let mut got = Vec::new();
                let mut buf = [0u8; 64];
                while !got.ends_with(b"\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(format!("re:{}", String::from_utf8_lossy(&got)).as_bytes());
            });
        }
    });
    for io in drivers() {
        let listen = free_port();
        let p = Puerta::start(&tcp_config(listen, &[bport], "", ""), io);
        p.wait_ready();
        for i in 0..50 {
            let mut c = std::net::TcpStream::connect(("127.0.0.1", listen)).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let req = format!("hello {i}\n");
            c.write_all(req.as_bytes()).unwrap();
            c.shutdown(std::net::Shutdown::Write).unwrap();
            let mut reply = String::new();
            c.read_to_string(&mut reply).unwrap_or_else(|e| panic!("{io} #{i}: reply and EOF within 5 s: {e}"));
            assert_eq!(reply, format!("re:{req}"), "{io} #{i}");
        }
    }
}
