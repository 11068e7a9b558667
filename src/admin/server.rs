//! The connection loop shared by the admin HTTP port and nutcracker's stats
//! port: one thread, one mio poll, every connection served concurrently.
//!
//! Owns the listening socket and the accepted sockets of one port, nothing
//! else; what to answer is the `Service`'s (`mod.rs`, `nutstats.rs`).
//!
//! Why a poll loop: an idle or slow client must not delay a probe. The old
//! sequential loop let each idle socket hold `/ready` for its whole 2 s
//! deadline. Admin traffic is small, so one thread multiplexing at most
//! `MAX_CONNECTIONS` sockets is enough, and admin stays one thread per port.
//!
//! Each connection moves through `Phase`s, each with a deadline from when it
//! began: request head (`HEADER_TIMEOUT`, answered 408 if anything arrived,
//! else closed quietly), body (`BODY_TIMEOUT`, 408), waiting for the control
//! thread (the reload's own deadline, 504), writing the answer
//! (`WRITE_TIMEOUT`, then closed) and a short linger (see `Phase::Linger`).
//!
//! Invariants: nothing a client sends can panic the thread or stop the
//! loop; a socket is only read or written while `advance` runs and only
//! until it would block (mio is edge-triggered, so every call drains what
//! it can); one request per connection, and bytes after it are refused
//! (400) rather than taken as a second request.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use super::http::{self, Request, Response};
use super::{AdminError, PendingReload};

/// Open connections per port. More are answered `Service::busy` and closed
/// at once: a flood must not grow memory or descriptors without bound.
pub const MAX_CONNECTIONS: usize = 64;
/// From accept to a complete request head (cuts a slowloris).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// From a complete head to the end of its body (at most `http::MAX_BODY`).
pub const BODY_TIMEOUT: Duration = Duration::from_secs(5);
/// To write the whole answer; a client that does not read is then closed.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// After answering, how long to drain what the client still sends.
const LINGER: Duration = Duration::from_millis(250);
/// At most this much is drained while lingering.
const LINGER_BYTES: usize = 256 * 1024;
/// Pause after an accept error such as EMFILE, which repeats until some
/// descriptor is closed; retrying at once would spin a core.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How often a pending reload's answer is checked: the control thread
/// answers on a channel, which mio cannot wait on.
const PENDING_POLL: Duration = Duration::from_millis(10);
const LISTENER: Token = Token(usize::MAX);

/// What a port says; the loop does the I/O.
pub trait Service {
    /// Bytes to send as soon as a connection is accepted, reading nothing
    /// (nutcracker's stats port); `None` to read a request first. Called
    /// once per batch of accepts, so a burst shares one document.
    fn greeting(&mut self) -> Option<Bytes>;
    /// Sent, best effort, to a connection over `MAX_CONNECTIONS` before it
    /// is closed; `None` to close it silently.
    fn busy(&self) -> Option<Bytes>;
    /// Answers a complete request. `local` is the address it arrived on.
    fn respond(&mut self, req: &Request<'_>, local: Option<SocketAddr>) -> Reply;
}

/// A `Service`'s answer.
pub enum Reply {
    Now(Response),
    /// Asked the control thread; the answer is polled (see `PENDING_POLL`).
    Later(PendingReload),
}

enum Phase {
    /// `buf` is `http::MAX_HEAD` long, `filled` of it received.
    Head {
        buf: Vec<u8>,
        filled: usize,
    },
    /// `head` is the complete request head; `left` body bytes to discard.
    Body {
        head: Vec<u8>,
        left: usize,
    },
    Wait(PendingReload),
    Write(Bytes),
    /// Write side shut; reading until EOF. Closing with unread input makes
    /// the kernel send an RST, which can destroy an answer still in flight
    /// (e.g. a 431 sent before the rest of a huge head arrived).
    Linger {
        drained: usize,
    },
}

struct Conn {
    sock: TcpStream,
    local: Option<SocketAddr>,
    phase: Phase,
    deadline: Instant,
}

/// One port's loop. Built on the caller's thread so that setup errors reach
/// `main`; `run` then serves forever.
pub struct Server<S> {
    poll: Poll,
    listener: TcpListener,
    conns: Vec<Option<Conn>>,
    live: usize,
    accept_retry: Option<Instant>,
    service: S,
}

impl<S: Service> Server<S> {
    pub fn new(listener: std::net::TcpListener, service: S) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(listener);
        let poll = Poll::new()?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let conns = (0..MAX_CONNECTIONS).map(|_| None).collect();
        Ok(Server { poll, listener, conns, live: 0, accept_retry: None, service })
    }

    pub fn run(mut self) {
        let mut events = Events::with_capacity(128);
        loop {
            let timeout = self.next_wake(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::warn!(error = %e, "admin poll failed");
                    std::thread::sleep(ACCEPT_BACKOFF);
                }
                continue;
            }
            let now = Instant::now();
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept_all(now),
                    Token(i) => self.advance(i, now),
                }
            }
            if self.accept_retry.is_some_and(|at| now >= at) {
                self.accept_retry = None;
                self.accept_all(now);
            }
            // Deadlines and pending reloads; at most MAX_CONNECTIONS slots.
            for i in 0..self.conns.len() {
                let Some(c) = &mut self.conns[i] else { continue };
                let due = now >= c.deadline;
                if due && !c.expire(now) {
                    self.close(i);
                } else if due || matches!(c.phase, Phase::Wait(_)) {
                    self.advance(i, now);
                }
            }
        }
    }

    /// How long `poll` may sleep: until the earliest deadline, and briefly
    /// while a reload is pending. `None` (forever) when idle.
    fn next_wake(&self, now: Instant) -> Option<Duration> {
        let mut wake = self.accept_retry;
        for c in self.conns.iter().flatten() {
            let at = match c.phase {
                Phase::Wait(_) => c.deadline.min(now + PENDING_POLL),
                _ => c.deadline,
            };
            wake = Some(wake.map_or(at, |w| w.min(at)));
        }
        wake.map(|w| w.saturating_duration_since(now))
    }

    fn accept_all(&mut self, now: Instant) {
        let mut greeting: Option<Option<Bytes>> = None;
        loop {
            let sock = match self.listener.accept() {
                Ok((sock, _)) => sock,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted) => continue,
                Err(e) => {
                    // EMFILE and the like: the connection stays in the
                    // backlog, and edge-triggered readiness will not fire
                    // again for it, so retry on a timer.
                    tracing::warn!(error = %e, "admin accept failed");
                    self.accept_retry = Some(now + ACCEPT_BACKOFF);
                    return;
                }
            };
            let Some(slot) = self.conns.iter().position(Option::is_none) else {
                if let Some(busy) = self.service.busy() {
                    // Read what already arrived (closing over unread input
                    // would send RST and could destroy the answer), then one
                    // non-blocking write: a new connection's socket buffer
                    // takes a short answer whole.
                    let _ = (&sock).read(&mut [0u8; 2048]);
                    let _ = (&sock).write(&busy);
                    let _ = sock.shutdown(Shutdown::Write);
                }
                tracing::debug!(limit = MAX_CONNECTIONS, "admin connection refused: at the limit");
                continue;
            };
            self.open(slot, sock, &mut greeting, now);
        }
    }

    fn open(&mut self, slot: usize, mut sock: TcpStream, greeting: &mut Option<Option<Bytes>>, now: Instant) {
        if let Err(e) = self.poll.registry().register(&mut sock, Token(slot), Interest::READABLE | Interest::WRITABLE) {
            tracing::warn!(error = %e, "admin cannot watch a connection");
            return;
        }
        let first = greeting.get_or_insert_with(|| self.service.greeting()).clone();
        let (phase, deadline) = match first {
            Some(doc) => (Phase::Write(doc), now + WRITE_TIMEOUT),
            None => (Phase::Head { buf: vec![0; http::MAX_HEAD], filled: 0 }, now + HEADER_TIMEOUT),
        };
        let local = sock.local_addr().ok();
        self.conns[slot] = Some(Conn { sock, local, phase, deadline });
        self.live += 1;
        self.advance(slot, now);
    }

    /// Runs connection `i` as far as it can go now; closes it when done.
    fn advance(&mut self, i: usize, now: Instant) {
        let Some(Some(c)) = self.conns.get_mut(i) else { return };
        if !c.advance(&mut self.service, now) {
            self.close(i);
        }
    }

    fn close(&mut self, i: usize) {
        if let Some(mut c) = self.conns.get_mut(i).and_then(Option::take) {
            let _ = self.poll.registry().deregister(&mut c.sock);
            self.live -= 1;
        }
    }
}

/// What one non-blocking read or write came to.
enum Io {
    Done(usize),
    Eof,
    Blocked,
    Failed,
}

fn io_result(r: io::Result<usize>) -> Io {
    match r {
        Ok(0) => Io::Eof,
        Ok(n) => Io::Done(n),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Io::Blocked,
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Io::Done(0),
        Err(_) => Io::Failed,
    }
}

/// Bytes after a complete request. A bare CRLF is what some clients send
/// after a POST body (RFC 9112 §2.2 lets a server ignore it); anything else
/// would be a second request, which admin does not serve.
fn stray(bytes: &[u8]) -> Result<(), AdminError> {
    if bytes.iter().all(|&b| b == b'\r' || b == b'\n') {
        Ok(())
    } else {
        Err(AdminError::Pipelined)
    }
}

/// Where one turn of `Conn::advance` left the connection.
enum Step {
    /// Progress made: go round again.
    Again,
    /// The socket would block: wait for its next event or deadline.
    Blocked,
    /// Finished or broken: close it.
    Close,
    /// Answer this error (or close, when there is nobody to answer).
    Refuse(AdminError),
}

impl Conn {
    /// Moves through phases until the socket would block; `false` when the
    /// connection is finished and must be closed.
    fn advance(&mut self, service: &mut impl Service, now: Instant) -> bool {
        let mut sink = [0u8; 4096];
        loop {
            let step = match &mut self.phase {
                Phase::Head { buf, filled } => match read_head(&mut self.sock, buf, filled) {
                    HeadRead::Step(step) => step,
                    HeadRead::Done { head_len, left } => {
                        let mut head = std::mem::take(buf);
                        head.truncate(head_len);
                        self.phase = Phase::Body { head, left };
                        self.deadline = now + BODY_TIMEOUT;
                        Step::Again
                    }
                },
                Phase::Body { head, left: 0 } => {
                    let reply = match http::parse_head(head) {
                        Ok(req) => service.respond(&req, self.local),
                        // The same bytes parsed a moment ago; stay total.
                        Err(e) => Reply::Now(Response::error(&e).unwrap_or_else(|| Response::text(400, e.to_string()))),
                    };
                    match reply {
                        Reply::Now(r) => self.answer(&r, now),
                        Reply::Later(p) => {
                            self.deadline = p.deadline();
                            self.phase = Phase::Wait(p);
                        }
                    }
                    Step::Again
                }
                Phase::Body { left, .. } => match io_result(self.sock.read(&mut sink)) {
                    Io::Done(n) if n > *left => match stray(sink.get(*left..n).unwrap_or_default()) {
                        Ok(()) => {
                            *left = 0;
                            Step::Again
                        }
                        Err(e) => Step::Refuse(e),
                    },
                    Io::Done(n) => {
                        *left -= n;
                        Step::Again
                    }
                    // Gone mid-body: nobody to answer.
                    Io::Eof | Io::Failed => Step::Close,
                    Io::Blocked => Step::Blocked,
                },
                Phase::Wait(p) => match p.poll(now) {
                    None => Step::Blocked,
                    Some(Ok(r)) => {
                        self.answer(&r, now);
                        Step::Again
                    }
                    Some(Err(e)) => Step::Refuse(e),
                },
                Phase::Write(out) => match io_result(self.sock.write(out)) {
                    Io::Done(n) => {
                        out.advance(n.min(out.len()));
                        if out.is_empty() {
                            self.phase = Phase::Linger { drained: 0 };
                            self.deadline = now + LINGER;
                            if self.sock.shutdown(Shutdown::Write).is_err() {
                                return false;
                            }
                        }
                        Step::Again
                    }
                    Io::Blocked => Step::Blocked,
                    Io::Eof | Io::Failed => Step::Close,
                },
                Phase::Linger { drained } => match io_result(self.sock.read(&mut sink)) {
                    Io::Done(n) if *drained < LINGER_BYTES => {
                        *drained += n;
                        Step::Again
                    }
                    Io::Blocked => Step::Blocked,
                    Io::Done(_) | Io::Eof | Io::Failed => Step::Close,
                },
            };
            match step {
                Step::Again => {}
                Step::Blocked => return true,
                Step::Close => return false,
                Step::Refuse(e) => {
                    if !self.refuse(&e, now) {
                        return false;
                    }
                }
            }
        }
    }

    /// The deadline of the current phase has passed; `false` to close now.
    fn expire(&mut self, now: Instant) -> bool {
        let err = match &self.phase {
            // An idle connection that never sent a byte is closed quietly,
            // as is one that does not read its answer.
            Phase::Head { filled: 0, .. } | Phase::Write(_) | Phase::Linger { .. } => return false,
            Phase::Head { filled, .. } => AdminError::Timeout { received: *filled, timeout: HEADER_TIMEOUT },
            Phase::Body { .. } => AdminError::Timeout { received: 0, timeout: BODY_TIMEOUT },
            // `PendingReload::poll` answers 504 past its own deadline.
            Phase::Wait(_) => return true,
        };
        self.refuse(&err, now)
    }

    fn answer(&mut self, r: &Response, now: Instant) {
        self.phase = Phase::Write(Bytes::from(r.encode()));
        self.deadline = now + WRITE_TIMEOUT;
    }

    /// Switches to writing the answer to `e`; `false` when there is nobody
    /// to answer and the connection should just close.
    fn refuse(&mut self, e: &AdminError, now: Instant) -> bool {
        tracing::debug!(error = %e, "admin request refused");
        match Response::error(e) {
            Some(r) => {
                self.answer(&r, now);
                true
            }
            None => false,
        }
    }
}

/// What one read toward a request head came to.
enum HeadRead {
    Step(Step),
    /// The head is `buf[..head_len]`; `left` body bytes are still to come.
    Done {
        head_len: usize,
        left: usize,
    },
}

/// Reads once into `buf[filled..]` and parses what has arrived.
fn read_head(sock: &mut TcpStream, buf: &mut [u8], filled: &mut usize) -> HeadRead {
    let Some(room) = buf.get_mut(*filled..).filter(|r| !r.is_empty()) else {
        // Unreachable: the parser answers 431 once the buffer is full. But a
        // read into nothing would return 0 and look like EOF.
        return HeadRead::Step(Step::Refuse(AdminError::HeadTooLarge { limit: http::MAX_HEAD }));
    };
    match io_result(sock.read(room)) {
        Io::Done(n) => *filled = filled.saturating_add(n).min(buf.len()),
        // Closed without sending anything: nobody to answer.
        Io::Eof if *filled == 0 => return HeadRead::Step(Step::Close),
        Io::Eof => return HeadRead::Step(Step::Refuse(AdminError::Truncated { received: *filled })),
        Io::Blocked => return HeadRead::Step(Step::Blocked),
        Io::Failed => return HeadRead::Step(Step::Close),
    }
    let got = buf.get(..*filled).unwrap_or_default();
    match http::parse_head(got) {
        Ok(req) => {
            let body = got.get(req.head_len..).unwrap_or_default();
            if let Some(after) = body.get(req.content_length..) {
                if let Err(e) = stray(after) {
                    return HeadRead::Step(Step::Refuse(e));
                }
            }
            HeadRead::Done { head_len: req.head_len, left: req.content_length.saturating_sub(body.len()) }
        }
        // Read more.
        Err(AdminError::Incomplete) => HeadRead::Step(Step::Again),
        Err(e) => HeadRead::Step(Step::Refuse(e)),
    }
}
