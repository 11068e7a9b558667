//! Event-sequence tests for `TcpSession`, with simulated time.

use std::time::Duration;

use super::*;

fn limits() -> Limits {
    Limits { connect_timeout: Duration::from_secs(1), idle_timeout: Some(Duration::from_secs(10)), high_water: 16 }
}

fn drain(s: &mut TcpSession) -> Vec<Intent> {
    std::iter::from_fn(|| s.poll_intent()).collect()
}

#[test]
fn buffers_client_bytes_until_connected() {
    let t0 = Instant::now();
    let mut s = TcpSession::new(limits(), t0);
    s.handle_data(Side::Client, b"PING\r\n", t0);
    assert_eq!(s.poll_transmit(Side::Backend), None, "nothing sent before connect");
    assert!(!s.wants_read(Side::Backend));
    s.handle_connected(t0);
    assert_eq!(s.poll_transmit(Side::Backend), Some(&b"PING\r\n"[..]));
    s.handle_sent(Side::Backend, 6, t0);
    s.handle_data(Side::Backend, b"+PONG\r\n", t0);
    assert_eq!(s.poll_transmit(Side::Client), Some(&b"+PONG\r\n"[..]));
    assert!(drain(&mut s).is_empty());
}

#[test]
fn connect_retry_keeps_buffered_request() {
    let t0 = Instant::now();
    let mut s = TcpSession::new(limits(), t0);
    s.handle_data(Side::Client, b"GET k\r\n", t0);
    s.handle_connect_failed(libc::ECONNREFUSED, true);
    assert!(drain(&mut s).is_empty(), "a retry must not close");
    s.handle_reconnect(t0);
    s.handle_connected(t0);
    assert_eq!(s.poll_transmit(Side::Backend), Some(&b"GET k\r\n"[..]));
}

#[test]
fn connect_failure_without_retry_closes() {
    let t0 = Instant::now();
    let mut s = TcpSession::new(limits(), t0);
    s.handle_connect_failed(libc::ECONNREFUSED, false);
    assert_eq!(drain(&mut s), vec![Intent::Close(CloseReason::ConnectFailed(libc::ECONNREFUSED))]);
    assert_eq!(s.poll_transmit(Side::Client), None);
}

#[test]
fn connect_timeout_and_idle_timeout() {
    let t0 = Instant::now();
    let mut s = TcpSession::new(limits(), t0);
    s.handle_tick(t0 + Duration::from_millis(999));
    assert!(drain(&mut s).is_empty());
    s.handle_tick(t0 + Duration::from_secs(1));
    assert_eq!(drain(&mut s), vec![Intent::Close(CloseReason::ConnectTimeout)]);

    let mut s = TcpSession::new(limits(), t0);
    s.handle_connected(t0);
    s.handle_data(Side::Client, b"x", t0 + Duration::from_secs(5));
    s.handle_tick(t0 + Duration::from_secs(14));
    assert!(drain(&mut s).is_empty(), "activity at 5s resets idle clock");
    assert_eq!(s.next_deadline(false), Some(t0 + Duration::from_secs(15)));
    s.handle_tick(t0 + Duration::from_secs(15));
    assert_eq!(drain(&mut s), vec![Intent::Close(CloseReason::IdleTimeout)]);
}

#[test]
fn next_deadline_covers_connect_idle_and_retire() {
    let t0 = Instant::now();
    let mut s = TcpSession::new(limits(), t0);
    assert_eq!(s.next_deadline(false), Some(t0 + Duration::from_secs(1)), "connect deadline");
    assert_eq!(s.next_deadline(true), None, "the driver times the connect itself");
    assert!(!s.connect_expired(t0 + Duration::from_millis(999)));
    assert!(s.connect_expired(t0 + Duration::from_secs(1)));
    s.handle_connected(t0);
    assert!(!s.connect_expired(t0 + Duration::from_secs(5)), "connected: nothing to expire");
    assert_eq!(s.next_deadline(true), Some(t0 + Duration::from_secs(10)), "idle deadline once open");
    s.handle_data(Side::Client, b"x", t0 + Duration::from_secs(3));
    assert_eq!(s.next_deadline(true), Some(t0 + Duration::from_secs(13)), "activity moves it later");

    // Without an idle timeout an open session needs no timer at all.
    let no_idle = Limits { idle_timeout: None, ..limits() };
    let mut s = TcpSession::new(no_idle, t0);
    s.handle_connected(t0);
    assert_eq!(s.next_deadline(true), None);
    s.close(CloseReason::Shutdown);
    assert_eq!(s.next_deadline(false), None, "closing: no deadline");
}

#[test]
fn backend_eof_flushes_then_closes_client() {
    let t0 = Instant::now();
    let mut s = TcpSession::new(limits(), t0);
    s.handle_connected(t0);
    s.handle_data(Side::Backend, b"-ERR bye\r\n", t0);
    s.handle_eof(Side::Backend);
    assert!(drain(&mut s).is_empty(), "flush first");
    let n = s.poll_transmit(Side::Client).unwrap().len();
    s.handle_sent(Side::Client, n, t0);
    assert_eq!(drain(&mut s), vec![Intent::Close(CloseReason::BackendClosed)]);
}

#[test]
fn client_eof_half_closes_backend_and_waits_for_answer() {
    let t0 = Instant::now();
    let mut s = TcpSession::new(limits(), t0);
    s.handle_connected(t0);
    s.handle_data(Side::Client, b"PING\r\n", t0);
    s.handle_eof(Side::Client);
    assert!(!s.wants_read(Side::Client));
    assert!(drain(&mut s).is_empty(), "request not yet flushed");
    s.poll_transmit(Side::Backend);
    s.handle_sent(Side::Backend, 6, t0);
    assert_eq!(drain(&mut s), vec![Intent::ShutdownWrite(Side::Backend)]);
    s.handle_data(Side::Backend, b"+PONG\r\n", t0);
    s.handle_eof(Side::Backend);
    s.poll_transmit(Side::Client);
    s.handle_sent(Side::Client, 7, t0);
    assert_eq!(drain(&mut s), vec![Intent::Close(CloseReason::Done)]);
}

#[test]
fn backpressure_stops_reading_until_drained() {
    let t0 = Instant::now();
    let mut s = TcpSession::new(limits(), t0);
    s.handle_connected(t0);
    s.handle_data(Side::Client, &[b'a'; 20], t0);
    assert!(!s.wants_read(Side::Client), "over high water");
    assert!(s.wants_read(Side::Backend));
    s.poll_transmit(Side::Backend);
    s.handle_sent(Side::Backend, 20, t0);
    assert!(s.wants_read(Side::Client));
}

#[test]
fn error_closes_once() {
    let t0 = Instant::now();
    let mut s = TcpSession::new(limits(), t0);
    s.handle_connected(t0);
    s.handle_error(Side::Backend, libc::ECONNRESET);
    s.handle_error(Side::Client, libc::EPIPE);
    assert_eq!(drain(&mut s), vec![Intent::Close(CloseReason::Error(Side::Backend, libc::ECONNRESET))]);
    s.handle_data(Side::Client, b"late", t0);
    assert_eq!(s.poll_transmit(Side::Backend), None);
    assert!(drain(&mut s).is_empty());
}

#[test]
fn held_bytes_delay_close_and_half_close() {
    let t0 = Instant::now();
    let mut s = TcpSession::new(limits(), t0);
    s.handle_connected(t0);
    // The backend's last reply went into the client's TLS queue, not yet
    // written: the close waits for it.
    s.handle_data(Side::Backend, b"+BYE\r\n", t0);
    let n = s.poll_transmit(Side::Client).unwrap().len();
    s.handle_sent(Side::Client, n, t0);
    s.set_held(Side::Client, true);
    s.handle_eof(Side::Backend);
    assert!(drain(&mut s).is_empty(), "ciphertext still held for the client");
    s.set_held(Side::Client, false);
    assert_eq!(drain(&mut s), vec![Intent::Close(CloseReason::BackendClosed)]);

    // Likewise the backend's half-close waits for its held bytes.
    let mut s = TcpSession::new(limits(), t0);
    s.handle_connected(t0);
    s.set_held(Side::Backend, true);
    s.handle_eof(Side::Client);
    assert!(drain(&mut s).is_empty());
    s.set_held(Side::Backend, false);
    assert_eq!(drain(&mut s), vec![Intent::ShutdownWrite(Side::Backend)]);
}
