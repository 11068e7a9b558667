//! The admin port and nutcracker's stats port against hostile clients, on
//! the real binary: idle sockets and a slowloris must not stall probes, the
//! connection cap, `[server] admin_token`, and the cross-origin POST /reload
//! that a web page in the operator's browser could send.
//!
//! The admin thread does not depend on the worker driver, so each test runs
//! one driver (the first `drivers()` gives).
//!
//! "Promptly" below is a socket read timeout on the probe (1 s, 3 s for the
//! 3 MB stats document), a bound on behaviour rather than a speed claim: a
//! sequential loop stalls 2 s per idle socket, 100 s for 50 of them.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use common::*;

const PROMPT: Duration = Duration::from_secs(1);

/// Reads until the server closes, each read within the socket's timeout.
/// A reset after an answer still counts as the close: a server that closes
/// with unread input in its buffer sends RST instead of FIN.
fn read_all(s: &mut TcpStream) -> std::io::Result<String> {
    let (mut out, mut buf) = (Vec::new(), [0u8; 65536]);
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !out.is_empty() => break,
            Err(e) => return Err(e),
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Sends `raw` and reads the whole answer, each read within `timeout`;
/// returns (status, head, body).
fn send(port: u16, raw: &str, timeout: Duration) -> std::io::Result<(u16, String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(timeout))?;
    s.write_all(raw.as_bytes())?;
    let out = read_all(&mut s)?;
    let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    Ok((status, head.to_owned(), body.to_owned()))
}

fn get(port: u16, path: &str, auth: &str) -> (u16, String, String) {
    let raw = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n");
    send(port, &raw, PROMPT).unwrap_or_else(|e| panic!("GET {path} not answered promptly: {e}"))
}

/// `n` connections that send nothing and read nothing.
fn idle(port: u16, n: usize) -> Vec<TcpStream> {
    (0..n).map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap()).collect()
}

fn start(extra_server: &str) -> (Puerta, Proc) {
    let r = redis();
    let p = Puerta::start(&tcp_config(free_port(), &[r.port], "", extra_server), drivers()[0]);
    p.wait_ready();
    // Let the start-up probes' connections finish lingering, so every test
    // starts with no admin connection open.
    thread::sleep(Duration::from_millis(300));
    (p, r)
}

#[test]
fn idle_connections_do_not_stall_probes_and_are_cut_at_the_header_deadline() {
    let (p, _r) = start("");
    let mut idle = idle(p.admin, 50);
    assert_eq!(get(p.admin, "/ready", "").0, 200);
    let (status, _, body) = get(p.admin, "/metrics", "");
    assert_eq!(status, 200);
    assert!(body.contains("puerta_"), "{body}");
    // Each idle socket is closed by the server at the 2 s header deadline,
    // without an answer: it never sent a byte.
    for s in &mut idle {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        assert!(matches!(s.read(&mut buf), Ok(0)), "idle connection closed quietly");
    }
}

#[test]
fn a_slowloris_is_cut_at_the_header_deadline_while_others_are_served() {
    let (p, _r) = start("");
    let head = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut slow = TcpStream::connect(("127.0.0.1", p.admin)).unwrap();
    let mut writer = slow.try_clone().unwrap();
    // One byte per 500 ms: the head would take 40 s to arrive.
    let sender = thread::spawn(move || {
        let mut sent = 0;
        for b in head.bytes() {
            if writer.write_all(&[b]).is_err() {
                break;
            }
            sent += 1;
            thread::sleep(Duration::from_millis(500));
        }
        sent
    });
    thread::sleep(Duration::from_millis(700));
    assert_eq!(get(p.admin, "/ready", "").0, 200, "served while the slowloris trickles");
    slow.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let answer = read_all(&mut slow).expect("an answer, then a close");
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:?}");
    let sent = sender.join().unwrap();
    assert!(sent < head.len(), "cut before the head was complete ({sent} bytes sent)");
}

#[test]
fn connections_over_the_cap_get_503_and_are_closed() {
    let (p, _r) = start("");
    let _held = idle(p.admin, puerta::admin::MAX_CONNECTIONS);
    // The server accepts in order, so the held ones have every slot.
    thread::sleep(Duration::from_millis(200));
    let (status, _, body) = send(p.admin, "GET /healthz HTTP/1.1\r\n\r\n", Duration::from_secs(5))
        .expect("an answer and a close, not a wait");
    assert_eq!((status, body.as_str()), (503, "too many admin connections (limit 64)\n"));
    drop(_held);
    wait_until("slots freed", Duration::from_secs(5), || {
        send(p.admin, "GET /healthz HTTP/1.1\r\n\r\n", PROMPT).is_ok_and(|(s, _, _)| s == 200)
    });
}

/// The pools `/stats` lists.
fn pools(p: &Puerta, auth: &str) -> Vec<String> {
    let (status, _, body) = get(p.admin, "/stats", auth);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["pools"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect()
}

/// Adds a pool `second` on a new port to the config file; returns the port.
fn add_second_pool(p: &Puerta, backend: u16) -> u16 {
    let port = free_port();
    let mut text = std::fs::read_to_string(&p.config).unwrap();
    text.push_str(&format!(
        "\n[[pool]]\nname = \"second\"\nlisten = \"127.0.0.1:{port}\"\nmode = \"tcp\"\nservers = [\"127.0.0.1:{backend}\"]\n"
    ));
    std::fs::write(&p.config, text).unwrap();
    port
}

fn post_reload(port: u16, headers: &str, body: &str) -> u16 {
    let raw = format!(
        "POST /reload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    send(port, &raw, Duration::from_secs(15)).expect("reload answered").0
}

#[test]
fn admin_token_guards_everything_but_the_probes() {
    const AUTH: &str = "Authorization: Bearer t0ken-Of-the-admin\r\n";
    let (p, r) = start("admin_token = \"t0ken-Of-the-admin\"");
    assert_eq!(get(p.admin, "/healthz", "").0, 200);
    assert_eq!(get(p.admin, "/ready", "").0, 200);
    for path in ["/metrics", "/stats", "/api/status", "/nope"] {
        let (status, head, _) = get(p.admin, path, "");
        assert_eq!(status, 401, "{path}");
        assert!(head.contains("\r\nWWW-Authenticate: Bearer"), "{head}");
        for wrong in ["Authorization: Bearer t0ken-Of-the-admiN\r\n", "Authorization: Basic dDBrZW4=\r\n"] {
            assert_eq!(get(p.admin, path, wrong).0, 401, "{path} {wrong}");
        }
    }
    assert_eq!(get(p.admin, "/metrics", AUTH).0, 200);
    assert_eq!(get(p.admin, "/nope", AUTH).0, 404);
    // The status page's HTML holds no data: served without the token, and
    // told to ask for it; its data endpoint needs it.
    let (status, head, page) = get(p.admin, "/", "");
    assert_eq!(status, 200);
    assert!(head.contains("Content-Type: text/html"), "{head}");
    assert!(page.contains("<body data-token=\"on\">"), "the page must ask for the token");
    assert!(!page.contains("\"main\""), "no data in the page");
    let (status, _, doc) = get(p.admin, "/api/status", AUTH);
    assert_eq!(status, 200);
    assert!(doc.contains("\"name\":\"main\""), "{doc}");
    let host = format!("GET / HTTP/1.1\r\nHost: evil.example:{}\r\n\r\n", p.admin);
    assert_eq!(send(p.admin, &host, Duration::from_secs(15)).expect("answered").0, 403, "Host check still applies");

    let second = add_second_pool(&p, r.port);
    assert_eq!(post_reload(p.admin, "", ""), 401);
    assert_eq!(post_reload(p.admin, "Authorization: Bearer nope\r\n", ""), 401);
    assert_eq!(pools(&p, AUTH), ["main"], "no reload without the token");
    assert!(TcpStream::connect(("127.0.0.1", second)).is_err());
    assert_eq!(post_reload(p.admin, AUTH, ""), 200);
    assert_eq!(pools(&p, AUTH), ["main", "second"]);
}

#[test]
fn a_cross_origin_browser_post_cannot_reload() {
    let (p, r) = start("");
    let second = add_second_pool(&p, r.port);
    // What a page on another site (or on another local port, or a
    // DNS-rebound name) makes the browser send: a simple POST, no preflight.
    let admin = p.admin;
    let attempts = [
        ("Origin: http://evil.example\r\nContent-Type: text/plain\r\n".to_owned(), "x"),
        ("Origin: null\r\nContent-Type: application/x-www-form-urlencoded\r\n".to_owned(), "a=b"),
        (format!("Origin: http://evil.example:{admin}\r\nSec-Fetch-Site: same-origin\r\n"), ""),
        ("Origin: http://127.0.0.1:8080\r\nSec-Fetch-Site: same-site\r\n".to_owned(), ""),
        ("Sec-Fetch-Site: cross-site\r\nContent-Type: text/plain\r\n".to_owned(), "x"),
    ];
    for (headers, body) in &attempts {
        assert_eq!(post_reload(admin, headers, body), 403, "{headers}");
    }
    assert_eq!(pools(&p, ""), ["main"], "config unchanged");
    assert!(TcpStream::connect(("127.0.0.1", second)).is_err(), "the new pool did not start");
    // Its own origin, and a client that is not a browser (curl), may.
    let own = format!("Origin: http://127.0.0.1:{admin}\r\nSec-Fetch-Site: same-origin\r\n");
    assert_eq!(post_reload(admin, &own, ""), 200);
    assert_eq!(pools(&p, ""), ["main", "second"]);
    assert_eq!(post_reload(admin, "", ""), 200);
}

#[test]
fn a_dns_rebound_page_cannot_read_the_loopback_admin_port() {
    // A page on http://evil.example:PORT whose name now resolves to
    // 127.0.0.1 is same-origin for the browser, so it could read what it
    // fetches; its requests still name evil.example in Host.
    let (p, _r) = start("");
    let admin = p.admin;
    for path in ["/metrics", "/stats", "/healthz"] {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: evil.example:{admin}\r\n\r\n");
        let (status, _, body) = send(admin, &raw, Duration::from_secs(5)).expect("answered");
        assert_eq!(status, 403, "{path}: {body}");
        assert!(!body.contains("puerta_"), "{path} leaked metrics");
    }
    for host in [format!("127.0.0.1:{admin}"), format!("localhost:{admin}")] {
        let raw = format!("GET /metrics HTTP/1.1\r\nHost: {host}\r\n\r\n");
        assert_eq!(send(admin, &raw, Duration::from_secs(5)).expect("answered").0, 200, "{host}");
    }
}

#[test]
fn pipelined_and_garbage_requests_get_400() {
    let (p, _r) = start("");
    let two = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nPOST /reload HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let one_body = "POST /nope HTTP/1.1\r\nContent-Length: 2\r\n\r\nabGET /healthz HTTP/1.1\r\n\r\n";
    for raw in [two, one_body, "\x16\x03\x01\x02\x00\x01\x00\x01\x7f\x03\x03\r\n\r\n", "GET /\x00 HTTP/1.1\r\n\r\n"] {
        let (status, _, _) = send(p.admin, raw, Duration::from_secs(5)).expect("answered and closed");
        assert_eq!(status, 400, "{raw:?}");
    }
    assert_eq!(get(p.admin, "/healthz", "").0, 200);
}

#[test]
fn stats_port_serves_while_readers_stall() {
    // ~3 MB of document: more than the kernel buffers of a client that
    // never reads, so writing it to one blocks.
    let r = redis();
    let servers: Vec<String> =
        (0..1000).map(|i| format!("\"127.0.0.1:{}:1 s{i:04}{}\"", 20000 + i, "x".repeat(3000))).collect();
    let config = format!(
        "[server]\nworkers = 1\nadmin = \"127.0.0.1:{{admin}}\"\n[[pool]]\nname = \"big\"\nlisten = \"127.0.0.1:{}\"\n\
         mode = \"redis\"\ndistribution = \"modula\"\nservers = [{}]\n\n[[pool]]\nname = \"small\"\n\
         listen = \"127.0.0.1:{}\"\nmode = \"redis\"\nservers = [\"127.0.0.1:{}:1\"]\n",
        free_port(),
        servers.join(", "),
        free_port(),
        r.port
    );
    let (stats, admin) = (free_port(), free_port());
    let path = tmpdir().join("big.toml");
    std::fs::write(&path, config.replace("{admin}", &admin.to_string())).unwrap();
    // nutcracker's command line: -s/-a for the stats port.
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_puerta"))
        .arg("-c")
        .arg(&path)
        .args(["-s", &stats.to_string(), "-a", "127.0.0.1", "--io", drivers()[0], "-v", "4"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _p = Proc { child, port: stats };
    wait_until("stats port", Duration::from_secs(10), || TcpStream::connect(("127.0.0.1", stats)).is_ok());
    let _stalled = idle(stats, 50);
    let mut s = TcpStream::connect(("127.0.0.1", stats)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let doc = read_all(&mut s).expect("the document arrives while 50 clients do not read theirs");
    let v: serde_json::Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(v["service"], "nutcracker");
    assert!(v["small"].is_object(), "{}", &doc[..200]);
}
