//! One admin connection as a state machine over a non-blocking socket:
//! request head, body, waiting for the control thread, writing the answer,
//! lingering. The loop in `server.rs` calls `advance` on every readiness
//! event and `expire` when the current phase's deadline passes.
//!
//! Owns its socket and buffers, nothing shared. Each phase has a deadline
//! from when it began: sniff (nutcracker's stats port only: the service's
//! window, after which the greeting is written), head (`HEADER_TIMEOUT`,
//! answered 408 if anything arrived, else closed quietly), body (`BODY_TIMEOUT`, 408), waiting (the
//! reload's own deadline, 504), writing (`WRITE_TIMEOUT`, then closed) and
//! a short linger (see `Phase::Linger`).
//!
//! Invariants: nothing a client sends can panic (every index into a buffer
//! is checked); a socket is only read or written until it would block (mio
//! is edge-triggered, so every call drains what it can); one request per
//! connection, and bytes after it are refused (400) rather than taken as a
//! second request.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use mio::net::TcpStream;

use super::http::{self, Response};
use super::server::{Reply, Service};
use super::{AdminError, PendingReload};

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

enum Phase {
    /// The stats port's first moments: a request line starting `GET `
    /// turns the connection into an HTTP one (`Head`); anything else, EOF
    /// or the window's end gets the greeting. `buf` as in `Head`.
    Sniff {
        buf: Vec<u8>,
        filled: usize,
    },
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

pub struct Conn {
    sock: TcpStream,
    local: Option<SocketAddr>,
    phase: Phase,
    deadline: Instant,
}

impl Conn {
    /// A connection that starts by writing `greeting`, or by reading a
    /// request when there is none.
    pub fn new(sock: TcpStream, greeting: Option<Bytes>, now: Instant) -> Self {
        let (phase, deadline) = match greeting {
            Some(doc) => (Phase::Write(doc), now + WRITE_TIMEOUT),
            None => (Phase::Head { buf: vec![0; http::MAX_HEAD], filled: 0 }, now + HEADER_TIMEOUT),
        };
        let local = sock.local_addr().ok();
        Conn { sock, local, phase, deadline }
    }

    /// A connection that waits up to `window` for `GET `: HTTP if it
    /// comes, else the service's greeting (`Service::sniff`).
    pub fn sniffing(sock: TcpStream, window: Duration, now: Instant) -> Self {
        let local = sock.local_addr().ok();
        Conn { sock, local, phase: Phase::Sniff { buf: vec![0; http::MAX_HEAD], filled: 0 }, deadline: now + window }
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Waiting for the control thread, whose answer must be polled.
    pub fn waiting(&self) -> bool {
        matches!(self.phase, Phase::Wait(_))
    }

    pub fn sock_mut(&mut self) -> &mut TcpStream {
        &mut self.sock
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
    pub fn advance(&mut self, service: &mut impl Service, now: Instant) -> bool {
        let mut sink = [0u8; 4096];
        loop {
            let step = match &mut self.phase {
                Phase::Sniff { buf, filled } => match sniff(&mut self.sock, buf, filled) {
                    Sniffed::Blocked => Step::Blocked,
                    Sniffed::Http => {
                        let (buf, filled) = (std::mem::take(buf), *filled);
                        self.phase = Phase::Head { buf, filled };
                        self.deadline = now + HEADER_TIMEOUT;
                        self.parse_buffered(now)
                    }
                    Sniffed::NotHttp => {
                        self.greet(service, now);
                        Step::Again
                    }
                },
                Phase::Head { buf, filled } => match read_head(&mut self.sock, buf, filled) {
                    HeadRead::Step(step) => step,
                    HeadRead::Done { head_len, left } => self.start_body(head_len, left, now),
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
    pub fn expire(&mut self, service: &mut impl Service, now: Instant) -> bool {
        let err = match &self.phase {
            // Nothing asked for HTTP in time: nutcracker's answer.
            Phase::Sniff { .. } => {
                self.greet(service, now);
                return true;
            }
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

    /// Writes the service's greeting, or closes when it has none.
    fn greet(&mut self, service: &mut impl Service, now: Instant) {
        match service.greeting() {
            Some(doc) => {
                self.phase = Phase::Write(doc);
                self.deadline = now + WRITE_TIMEOUT;
            }
            None => self.phase = Phase::Write(Bytes::new()),
        }
    }

    /// A head that may already be whole in the `Head` buffer (sniffing
    /// read it): parse before waiting for the socket, which may have
    /// nothing more to say.
    fn parse_buffered(&mut self, now: Instant) -> Step {
        let Phase::Head { buf, filled } = &mut self.phase else { return Step::Again };
        match parse_buffered(buf, *filled) {
            HeadRead::Step(step) => step,
            HeadRead::Done { head_len, left } => self.start_body(head_len, left, now),
        }
    }

    /// The head is whole (`head_len` bytes of the `Head` buffer): keep it
    /// and wait for `left` bytes of body.
    fn start_body(&mut self, head_len: usize, left: usize, now: Instant) -> Step {
        let Phase::Head { buf, .. } = &mut self.phase else { return Step::Again };
        let mut head = std::mem::take(buf);
        head.truncate(head_len);
        self.phase = Phase::Body { head, left };
        self.deadline = now + BODY_TIMEOUT;
        Step::Again
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
    parse_buffered(buf, *filled)
}

/// Parses the `filled` bytes of `buf` received so far.
fn parse_buffered(buf: &[u8], filled: usize) -> HeadRead {
    let got = buf.get(..filled).unwrap_or_default();
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

/// The request line an HTTP client of the stats port starts with.
const GET: &[u8] = b"GET ";

/// What sniffing has seen so far.
enum Sniffed {
    Blocked,
    /// `GET ` arrived: serve HTTP.
    Http,
    /// Other bytes, or EOF: the greeting.
    NotHttp,
}

/// Reads once and decides whether the connection speaks HTTP.
fn sniff(sock: &mut TcpStream, buf: &mut [u8], filled: &mut usize) -> Sniffed {
    let Some(room) = buf.get_mut(*filled..).filter(|r| !r.is_empty()) else { return Sniffed::NotHttp };
    match io_result(sock.read(room)) {
        Io::Done(n) => *filled = filled.saturating_add(n).min(buf.len()),
        Io::Blocked => return Sniffed::Blocked,
        Io::Eof | Io::Failed => return Sniffed::NotHttp,
    }
    let got = buf.get(..*filled).unwrap_or_default();
    if got.starts_with(GET) {
        Sniffed::Http
    } else if GET.starts_with(got) {
        // `GE` so far: wait for the rest (within the window).
        Sniffed::Blocked
    } else {
        Sniffed::NotHttp
    }
}
