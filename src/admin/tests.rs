//! End-to-end tests of the admin port over real sockets on 127.0.0.1:0.
//!
//! Each test runs its own server thread (never joined; it dies with the test
//! process) and plays the control thread through the fixture's receiver.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use super::fixture::{self, Fixture};
use super::*;

fn start() -> (Fixture, SocketAddr) {
    let f = fixture::standard();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    spawn_on(listener, f.shared.clone()).unwrap();
    (f, addr)
}

/// Sends `parts` (pausing between them, to force partial reads) and returns
/// the status code and the whole response.
fn exchange(addr: SocketAddr, parts: &[&[u8]]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            thread::sleep(Duration::from_millis(30));
        }
        s.write_all(part).unwrap();
    }
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text)
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    exchange(addr, &[format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()])
}

fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

#[test]
fn healthz_ready_metrics_and_404() {
    let (f, addr) = start();
    let (status, resp) = get(addr, "/healthz");
    assert_eq!(status, 200);
    assert!(resp.contains("\r\nConnection: close\r\n"), "{resp}");
    assert_eq!(body(&resp), "ok\n");

    let (status, resp) = get(addr, "/ready");
    assert_eq!((status, body(&resp)), (503, "worker 1 runs epoch 3, latest is 4\n"));
    f.shared.workers[1].epoch.set(4);
    let (status, resp) = get(addr, "/ready");
    assert_eq!((status, body(&resp)), (200, "ready\n"));

    f.shared.workers[0].pools[fixture::POOL_STAT].bytes_in.add(40);
    f.shared.workers[1].pools[fixture::POOL_STAT].bytes_in.add(2);
    let (status, resp) = get(addr, "/metrics?x=1");
    assert_eq!(status, 200);
    assert!(resp.contains("Content-Type: text/plain; version=0.0.4"), "{resp}");
    assert!(body(&resp).contains("\npuerta_bytes_in_total{pool=\"redis-a\"} 42\n"), "{resp}");

    let (status, resp) = get(addr, "/stats");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(body(&resp)).unwrap();
    assert_eq!(v["pools"][0]["bytes_in"], 42);

    assert_eq!(get(addr, "/nope").0, 404);
    let (status, resp) = get(addr, "/reload");
    assert_eq!(status, 405);
    assert!(resp.contains("\r\nAllow: POST\r\n"), "{resp}");
    assert_eq!(exchange(addr, &[b"POST /metrics HTTP/1.1\r\n\r\n"]).0, 405);
}

#[test]
fn partial_reads_are_reassembled() {
    let (_f, addr) = start();
    let (status, resp) = exchange(addr, &[b"GE", b"T /heal", b"thz HTTP/1.1\r\nHo", b"st: localhost\r\n", b"\r\n"]);
    assert_eq!((status, body(&resp)), (200, "ok\n"));
}

#[test]
fn bad_requests_get_4xx_and_the_server_survives() {
    let (_f, addr) = start();
    assert_eq!(exchange(addr, &[b"\x00\x01\x02 garbage\r\n\r\n"]).0, 400);
    assert_eq!(exchange(addr, &[b"GET / HTTP/1.1\r\nno colon here\r\n\r\n"]).0, 400);
    // A head that never ends: answered 431 once 8 KiB have arrived.
    let mut huge = b"GET /metrics HTTP/1.1\r\nX-Pad: ".to_vec();
    huge.resize(20_000, b'a');
    assert_eq!(exchange(addr, &[&huge]).0, 431);
    // Closing without sending anything gets no answer and hurts nothing.
    drop(TcpStream::connect(addr).unwrap());
    assert_eq!(get(addr, "/healthz").0, 200);
}

#[test]
fn stalled_request_times_out_with_408() {
    let (_f, addr) = start();
    let (status, _) = exchange(addr, &[b"GET /healthz HTTP/1.1\r\n"]);
    assert_eq!(status, 408);
    assert_eq!(get(addr, "/healthz").0, 200);
}

/// Plays the control thread for one message, answering a reload with `answer`.
fn answer_one_reload(f: &Fixture, answer: Result<String, String>) -> thread::JoinHandle<()> {
    let rx = f.control.clone();
    thread::spawn(move || match rx.recv_timeout(Duration::from_secs(5)) {
        Ok(ControlMsg::Reload { reply: Some(tx) }) => tx.send(answer).unwrap(),
        other => panic!("expected a reload with a reply channel, got {other:?}"),
    })
}

#[test]
fn reload_relays_the_control_answer() {
    let (f, addr) = start();
    let control = answer_one_reload(&f, Ok("reloaded: epoch 5, 1 pool".into()));
    let post = b"POST /reload HTTP/1.1\r\nContent-Length: 4\r\n\r\n";
    let (status, resp) = exchange(addr, &[post, b"body"]);
    control.join().unwrap();
    assert_eq!((status, body(&resp)), (200, "reloaded: epoch 5, 1 pool\n"));

    let control = answer_one_reload(&f, Err("test.toml:3: pool.listen: invalid address".into()));
    let (status, resp) = exchange(addr, &[b"POST /reload HTTP/1.0\r\n\r\n"]);
    control.join().unwrap();
    assert_eq!((status, body(&resp)), (400, "test.toml:3: pool.listen: invalid address\n"));
}

#[test]
fn probes_are_served_while_a_reload_waits_for_control() {
    let (f, addr) = start();
    let mut post = TcpStream::connect(addr).unwrap();
    post.write_all(b"POST /reload HTTP/1.1\r\n\r\n").unwrap();
    // Control has the message but has not answered.
    let Ok(ControlMsg::Reload { reply: Some(tx) }) = f.control.recv_timeout(Duration::from_secs(5)) else {
        panic!("a reload with a reply channel")
    };
    let mut probe = TcpStream::connect(addr).unwrap();
    probe.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    probe.write_all(b"GET /healthz HTTP/1.1\r\n\r\n").unwrap();
    let mut answer = String::new();
    probe.read_to_string(&mut answer).expect("answered while the reload is pending");
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    tx.send(Ok("reloaded".into())).unwrap();
    post.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = String::new();
    post.read_to_string(&mut answer).unwrap();
    assert_eq!(body(&answer), "reloaded\n");
}

#[test]
fn a_body_that_stops_arriving_is_408() {
    let (_f, addr) = start();
    // Head complete, 3 of 10 body bytes, then nothing: cut at BODY_TIMEOUT.
    let (status, _) = exchange(addr, &[b"POST /reload HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"]);
    assert_eq!(status, 408);
}

#[test]
fn reload_timeout_and_missing_control() {
    let f = fixture::standard();
    let t0 = Instant::now();
    // Nobody answers: nothing yet, then 504 once the deadline passed.
    let p = start_reload(&f.shared, t0, Duration::from_millis(20)).unwrap();
    assert!(p.poll(t0).is_none());
    let err = p.poll(t0 + Duration::from_millis(20)).unwrap().unwrap_err();
    assert_eq!(err.status(), Some(504));
    // The message was sent all the same; dropping it unanswered is a 503.
    let Ok(ControlMsg::Reload { reply: Some(tx) }) = f.control.try_recv() else { panic!("a reload was sent") };
    drop(tx);
    assert!(matches!(p.poll(t0), Some(Err(AdminError::ReloadDropped))));
    // Control thread gone entirely: 503 at once.
    let Fixture { shared, control } = f;
    drop(control);
    let err = start_reload(&shared, t0, Duration::from_secs(5)).err().unwrap();
    assert!(matches!(err, AdminError::ControlGone));
}

#[test]
fn bind_reports_bind_errors_to_the_caller() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let err = bind(taken.local_addr().unwrap()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
}
