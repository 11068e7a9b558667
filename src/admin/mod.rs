//! The admin HTTP port: metrics, liveness, readiness, stats and reload.
//!
//! Owns nothing. It reads `Shared` (the snapshot cell and single-writer
//! counters, loads only) and asks the control thread for reloads with
//! `ControlMsg`; it never writes a counter or publishes a snapshot, and no
//! worker ever waits on it.
//!
//! Serving model: one thread, one connection at a time, one request per
//! connection (`Connection: close`). Admin traffic is a scraper, a probe and
//! an operator, so a sequential loop is enough, and it keeps admin to at most
//! one busy thread. The cost is that one slow client delays the next; that is
//! bounded by a 2 s deadline for the whole request and 2 s write timeouts
//! (a reload may hold the loop for up to 10 s while control works).
//!
//! Invariant: nothing a client sends can panic this thread or stop the loop.
//! Bad input gets a 4xx and the connection is closed.
//!
//! Files: `http` (sans-IO parse/encode), `metrics`, `json`, `ready`
//! (readiness decision), `totals` (cross-worker sums).

mod cluster;
mod http;
pub mod json;
pub mod metrics;
mod mongo;
pub mod nutstats;
mod ready;
mod totals;
pub mod twem;

#[cfg(test)]
mod fixture;
#[cfg(test)]
mod tests;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, SendTimeoutError};

use crate::control::{ControlMsg, Shared};
use http::Response;

pub use ready::readiness;

/// Deadline for reading a whole request, and the per-write timeout.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// How long `POST /reload` waits for the control thread's answer.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);
/// After responding, how long to keep reading what the client still sends
/// (see `linger_close`).
const LINGER: Duration = Duration::from_millis(250);
/// Pause after an accept error such as EMFILE, which repeats until some
/// descriptor is closed; retrying at once would spin a core.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What can go wrong on the admin port. Each variant knows the status the
/// client should see (`status`), which says who is at fault.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The request head has not fully arrived; read more. Not a failure
    /// unless the peer stops sending.
    #[error("request head incomplete")]
    Incomplete,
    #[error("request head larger than {limit} bytes")]
    HeadTooLarge { limit: usize },
    #[error("malformed request: {0}")]
    Malformed(httparse::Error),
    #[error("invalid Content-Length")]
    BadContentLength,
    #[error("Transfer-Encoding is not supported; send Content-Length")]
    UnsupportedBody,
    #[error("request body of {length} bytes is over the {limit}-byte limit")]
    BodyTooLarge { length: usize, limit: usize },
    #[error("connection closed after {received} bytes of a request")]
    Truncated { received: usize },
    #[error("request not complete within {timeout:?} ({received} bytes received)")]
    Timeout { received: usize, timeout: Duration },
    #[error("admin socket: {0}")]
    Io(#[from] io::Error),
    #[error("stats encoding failed: {0}")]
    Json(#[from] serde_json::Error),
    #[error("control thread is not running; cannot reload")]
    ControlGone,
    #[error("control thread dropped the reload without answering")]
    ReloadDropped,
    #[error("no reload result within {0:?}")]
    ReloadTimeout(Duration),
}

impl AdminError {
    /// The status to answer with, or `None` when there is nobody to answer
    /// (socket failure, or a peer that closed without sending anything).
    pub fn status(&self) -> Option<u16> {
        match self {
            AdminError::HeadTooLarge { .. } => Some(431),
            AdminError::Incomplete
            | AdminError::Malformed(_)
            | AdminError::BadContentLength
            | AdminError::UnsupportedBody => Some(400),
            AdminError::Truncated { received: 0 } | AdminError::Io(_) => None,
            AdminError::Truncated { .. } => Some(400),
            AdminError::BodyTooLarge { .. } => Some(413),
            AdminError::Timeout { .. } => Some(408),
            AdminError::Json(_) => Some(500),
            AdminError::ControlGone | AdminError::ReloadDropped => Some(503),
            AdminError::ReloadTimeout(_) => Some(504),
        }
    }
}

/// Binds `addr`, then serves it on a thread named `puerta-admin`.
///
/// Binding happens here, on the caller's thread, so a taken or forbidden
/// port is reported to `main` before anything else starts.
pub fn spawn(addr: SocketAddr, shared: Arc<Shared>) -> io::Result<JoinHandle<()>> {
    let listener =
        TcpListener::bind(addr).map_err(|e| io::Error::new(e.kind(), format!("admin: cannot bind {addr}: {e}")))?;
    spawn_on(listener, shared)
}

/// Serves an already bound listener (tests use an ephemeral port).
pub fn spawn_on(listener: TcpListener, shared: Arc<Shared>) -> io::Result<JoinHandle<()>> {
    thread::Builder::new().name("puerta-admin".to_string()).spawn(move || serve(listener, &shared))
}

fn serve(listener: TcpListener, shared: &Shared) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "admin listening");
    }
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                if let Err(e) = handle(shared, stream) {
                    tracing::debug!(error = %e, "admin connection");
                }
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted) => {}
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                thread::sleep(ACCEPT_BACKOFF);
            }
        }
    }
}

/// Serves one connection: read one request, answer it, close.
fn handle(shared: &Shared, mut stream: TcpStream) -> Result<(), AdminError> {
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let deadline = Instant::now() + IO_TIMEOUT;
    let response = match read_and_route(shared, &mut stream, deadline) {
        Ok(r) => r,
        Err(e) => match e.status() {
            Some(status) => Response::text(status, e.to_string()),
            None => return Err(e),
        },
    };
    stream.write_all(&response.encode())?;
    linger_close(&mut stream);
    Ok(())
}

fn read_and_route(shared: &Shared, stream: &mut TcpStream, deadline: Instant) -> Result<Response, AdminError> {
    let mut buf = [0u8; http::MAX_HEAD];
    let filled = read_head(stream, &mut buf, deadline)?;
    let req = http::parse_head(&buf[..filled])?;
    let body_have = filled - req.head_len;
    discard(stream, req.content_length.saturating_sub(body_have), deadline)?;
    route(shared, req.method, req.path)
}

/// Reads until `buf[..n]` holds a complete head; returns `n`.
fn read_head(stream: &mut TcpStream, buf: &mut [u8; http::MAX_HEAD], deadline: Instant) -> Result<usize, AdminError> {
    let mut filled = 0;
    loop {
        // Parse first: the previous read may have completed the head. The
        // buffer is exactly MAX_HEAD, so a full buffer is answered 431 by
        // the parser rather than read into.
        match http::parse_head(&buf[..filled]) {
            Ok(_) => return Ok(filled),
            Err(AdminError::Incomplete) => {}
            Err(e) => return Err(e),
        }
        match read_by(stream, &mut buf[filled..], deadline) {
            Ok(0) => return Err(AdminError::Truncated { received: filled }),
            Ok(n) => filled += n,
            Err(e) => return Err(io_to_admin(e, filled)),
        }
    }
}

/// Reads and throws away `left` body bytes, under the same deadline.
fn discard(stream: &mut TcpStream, mut left: usize, deadline: Instant) -> Result<(), AdminError> {
    let mut sink = [0u8; 4096];
    while left > 0 {
        let want = left.min(sink.len());
        match read_by(stream, &mut sink[..want], deadline) {
            Ok(0) => return Err(AdminError::Truncated { received: 0 }),
            Ok(n) => left -= n,
            Err(e) => return Err(io_to_admin(e, 0)),
        }
    }
    Ok(())
}

/// One `read` that returns by `deadline`. A per-read timeout alone would let
/// a client trickling a byte a second hold the loop indefinitely.
fn read_by(stream: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        // `set_read_timeout(Some(0))` is an error; `left` is non-zero here.
        stream.set_read_timeout(Some(left))?;
        match stream.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

fn io_to_admin(e: io::Error, received: usize) -> AdminError {
    match e.kind() {
        // A timed-out read reports WouldBlock on Linux, TimedOut elsewhere.
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => AdminError::Timeout { received, timeout: IO_TIMEOUT },
        _ => AdminError::Io(e),
    }
}

/// Half-closes, then reads briefly before dropping the socket. Closing with
/// unread input makes the kernel send an RST, which can destroy a response
/// still in flight (e.g. a 431 sent before the rest of a huge head).
fn linger_close(stream: &mut TcpStream) {
    if stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER;
    let mut sink = [0u8; 4096];
    for _ in 0..16 {
        match read_by(stream, &mut sink, deadline) {
            Ok(n) if n > 0 => {}
            _ => return,
        }
    }
}

/// Maps a request to its endpoint. Only `path` decides 404; a known path
/// with the wrong method is 405 with `Allow`.
fn route(shared: &Shared, method: &str, path: &str) -> Result<Response, AdminError> {
    let get_only = |make: &dyn Fn() -> Result<Response, AdminError>| {
        if method == "GET" {
            make()
        } else {
            Ok(Response::method_not_allowed("GET"))
        }
    };
    match path {
        "/metrics" => get_only(&|| Ok(Response::new(200, http::PROMETHEUS, metrics::render(shared)))),
        "/healthz" => get_only(&|| Ok(Response::text(200, "ok"))),
        "/ready" => get_only(&|| {
            Ok(match ready::readiness(shared) {
                Ok(()) => Response::text(200, "ready"),
                Err(reasons) => Response::text(503, reasons.join("\n")),
            })
        }),
        "/stats" => get_only(&|| Ok(Response::new(200, http::JSON, json::render(shared)?))),
        "/reload" if method == "POST" => reload(shared, RELOAD_TIMEOUT),
        "/reload" => Ok(Response::method_not_allowed("POST")),
        _ => Ok(Response::text(404, "not found")),
    }
}

/// Asks the control thread to reload and relays its answer.
fn reload(shared: &Shared, wait: Duration) -> Result<Response, AdminError> {
    // Capacity 1: if we give up waiting and drop `rx`, control's late reply
    // fails at once instead of blocking the control thread.
    let (tx, rx) = crossbeam_channel::bounded(1);
    // `send_timeout`: should the control channel ever be bounded and full,
    // the admin loop must still come back.
    let sent_at = Instant::now();
    match shared.control.send_timeout(ControlMsg::Reload { reply: Some(tx) }, wait) {
        Ok(()) => {}
        Err(SendTimeoutError::Timeout(_)) => return Err(AdminError::ReloadTimeout(wait)),
        Err(SendTimeoutError::Disconnected(_)) => return Err(AdminError::ControlGone),
    }
    match rx.recv_timeout(wait.saturating_sub(sent_at.elapsed())) {
        Ok(Ok(summary)) => Ok(Response::text(200, summary)),
        // A config that does not validate is the operator's to fix: 400.
        Ok(Err(reason)) => Ok(Response::text(400, reason)),
        Err(RecvTimeoutError::Timeout) => Err(AdminError::ReloadTimeout(wait)),
        Err(RecvTimeoutError::Disconnected) => Err(AdminError::ReloadDropped),
    }
}
