//! One bench connection: a nonblocking mio socket, its write and read
//! buffers, its reply decoder and the FIFO of requests it has in flight.
//!
//! Owns the connection's life: connecting, up, or down awaiting a retry
//! (with backoff after failed connects). It never decides what to send;
//! the engine does. Invariant: replies arrive in request order, so the
//! head of `inflight` is what the next reply answers.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use super::codec::Decoder;
use super::workload::Op;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Connecting,
    Up,
    Down,
}

/// A request written to a connection and not yet answered.
#[derive(Debug, Clone, Copy)]
pub struct InFlight {
    pub op: Op,
    /// From the pacer (open loop) or the send time (closed loop).
    pub intended: Instant,
    pub sent: Instant,
    /// MongoDB requestID.
    pub req_id: i32,
    /// Redirects followed so far (Redis Cluster).
    pub redirects: u8,
    /// False for an `ASKING` that precedes a redirected request.
    pub measured: bool,
}

#[derive(Debug)]
pub struct Conn {
    pub addr: SocketAddr,
    pub lane: usize,
    pub sock: Option<TcpStream>,
    pub state: State,
    pub wbuf: Vec<u8>,
    pub wpos: usize,
    pub rbuf: BytesMut,
    pub dec: Decoder,
    pub inflight: VecDeque<InFlight>,
    /// When the connect started (Connecting).
    pub since: Instant,
    /// When to reconnect (Down).
    pub retry_at: Instant,
    /// Consecutive failed connects.
    pub failures: u32,
    /// Registered for WRITABLE (output is backed up).
    pub want_write: bool,
    pub last_error: Option<String>,
    next_req_id: i32,
}

/// What a read pass saw.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadResult {
    /// Bytes appended (maybe none).
    Data(usize),
    /// The peer closed (after `usize` more bytes).
    Eof(usize),
    Failed(String),
}

impl Conn {
    pub fn new(addr: SocketAddr, lane: usize, dec: Decoder, now: Instant) -> Conn {
        Conn {
            addr,
            lane,
            sock: None,
            state: State::Down,
            wbuf: Vec::with_capacity(16 << 10),
            wpos: 0,
            rbuf: BytesMut::with_capacity(64 << 10),
            dec,
            inflight: VecDeque::new(),
            since: now,
            retry_at: now,
            failures: 0,
            want_write: false,
            last_error: None,
            next_req_id: 1,
        }
    }

    pub fn next_req_id(&mut self) -> i32 {
        let id = self.next_req_id;
        self.next_req_id = self.next_req_id.wrapping_add(1).max(1);
        id
    }

    /// Starts a nonblocking connect; on an immediate failure the
    /// connection goes down and the error is returned.
    pub fn connect(&mut self, reg: &Registry, token: Token, now: Instant) -> Result<(), String> {
        self.since = now;
        let res = TcpStream::connect(self.addr).and_then(|mut s| {
            reg.register(&mut s, token, Interest::READABLE | Interest::WRITABLE)?;
            Ok(s)
        });
        match res {
            Ok(s) => {
                self.sock = Some(s);
                self.state = State::Connecting;
                self.want_write = true;
                Ok(())
            }
            Err(e) => Err(self.connect_failed(reg, now, e.to_string())),
        }
    }

    /// Called on any event while connecting: `Some(Ok)` once up,
    /// `Some(Err)` if the connect failed, `None` if still in progress.
    pub fn check_connected(&mut self, reg: &Registry, now: Instant) -> Option<Result<(), String>> {
        let s = self.sock.as_ref()?;
        if let Ok(Some(e)) | Err(e) = s.take_error() {
            return Some(Err(self.connect_failed(reg, now, e.to_string())));
        }
        match s.peer_addr() {
            Ok(_) => {
                let _ = s.set_nodelay(true);
                self.state = State::Up;
                self.failures = 0;
                self.last_error = None;
                Some(Ok(()))
            }
            Err(e) if e.kind() == ErrorKind::NotConnected => None,
            Err(e) => Some(Err(self.connect_failed(reg, now, e.to_string()))),
        }
    }

    /// Backoff after `failures` consecutive failed connects: 50 ms doubling to 1 s.
    fn backoff(failures: u32) -> Duration {
        Duration::from_millis((50u64 << failures.saturating_sub(1).min(5)).min(1000))
    }

    pub fn connect_failed(&mut self, reg: &Registry, now: Instant, why: String) -> String {
        self.failures += 1;
        self.close(reg);
        self.retry_at = now + Self::backoff(self.failures);
        self.last_error = Some(why.clone());
        why
    }

    /// Drops the socket; the caller settles what was in flight.
    pub fn close(&mut self, reg: &Registry) {
        if let Some(mut s) = self.sock.take() {
            let _ = reg.deregister(&mut s);
        }
        self.state = State::Down;
        self.wbuf.clear();
        self.wpos = 0;
        self.rbuf.clear();
        self.want_write = false;
    }

    /// Writes what is buffered; registers for WRITABLE when the socket is
    /// full and drops that interest once drained. Returns bytes written.
    pub fn flush(&mut self, reg: &Registry, token: Token) -> Result<usize, String> {
        let Some(s) = self.sock.as_mut() else { return Ok(0) };
        let mut n = 0;
        while self.wpos < self.wbuf.len() {
            match s.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err("write returned 0".into()),
                Ok(k) => {
                    self.wpos += k;
                    n += k;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.to_string()),
            }
        }
        let backed_up = self.wpos < self.wbuf.len();
        if !backed_up {
            self.wbuf.clear();
            self.wpos = 0;
        }
        if backed_up != self.want_write {
            let interest = if backed_up { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
            reg.reregister(s, token, interest).map_err(|e| e.to_string())?;
            self.want_write = backed_up;
        }
        Ok(n)
    }

    /// Reads everything available into `rbuf` (edge-triggered: until
    /// WouldBlock), through `scratch`.
    pub fn read(&mut self, scratch: &mut [u8]) -> ReadResult {
        let Some(s) = self.sock.as_mut() else { return ReadResult::Data(0) };
        let mut n = 0;
        loop {
            match s.read(scratch) {
                Ok(0) => return ReadResult::Eof(n),
                Ok(k) => {
                    self.rbuf.extend_from_slice(&scratch[..k]);
                    n += k;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return ReadResult::Data(n),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return ReadResult::Failed(e.to_string()),
            }
        }
    }
}
