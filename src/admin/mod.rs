//! The admin HTTP port: metrics, liveness, readiness, stats and reload.
//!
//! Owns nothing. It reads `Shared` (the snapshot cell and single-writer
//! counters, loads only) and asks the control thread for reloads with
//! `ControlMsg`; it never writes a counter or publishes a snapshot, and no
//! worker ever waits on it.
//!
//! Serving model: one thread per port (this one and nutcracker's stats
//! port), each a mio poll loop over at most `server::MAX_CONNECTIONS`
//! connections, served concurrently with a deadline per phase (head, body,
//! write); one request per connection (`Connection: close`). A reload is
//! sent to the control thread and its answer polled, so the loop keeps
//! serving probes while control works.
//!
//! Access: `[server] admin_token` guards every endpoint but `/healthz`,
//! `/ready` and the status page's HTML (`/`, which holds no data); a
//! cross-origin browser POST is refused with or without it (`guard`).
//!
//! Invariant: nothing a client sends can panic this thread or stop the loop.
//! Bad input gets a 4xx and the connection is closed.
//!
//! Files: `server` (the poll loop), `conn` (one connection's phases and
//! deadlines), `http` (sans-IO parse/encode), `guard` (token and origin
//! checks), `metrics`, `json`, `ready` (readiness decision), `totals`
//! (cross-worker sums), `mcstats` (memcache pools' local `stats`),
//! `status` (the live page at `/` and its `/api/status` document).

mod cluster;
mod conn;
mod guard;
mod hotkeys;
mod http;
pub mod json;
mod limits;
pub mod mcstats;
pub mod metrics;
mod mongo;
pub mod nutstats;
mod obs;
mod ready;
mod server;
mod slowlog;
pub mod status;
mod tls;
mod totals;
pub mod twem;

#[cfg(test)]
mod fixture;
#[cfg(test)]
mod tests;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{Receiver, TryRecvError, TrySendError};

use crate::control::{ControlMsg, Shared};
use guard::Guard;
use http::{Request, Response};
use server::{Reply, Server, Service};

pub use conn::{BODY_TIMEOUT, HEADER_TIMEOUT, WRITE_TIMEOUT};
pub use ready::readiness;
pub use server::MAX_CONNECTIONS;

/// How long `POST /reload` waits for the control thread's answer.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);

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
    #[error("header {0} given twice")]
    DuplicateHeader(&'static str),
    #[error("one request per connection; bytes follow the request")]
    Pipelined,
    #[error("request body of {length} bytes is over the {limit}-byte limit")]
    BodyTooLarge { length: usize, limit: usize },
    #[error("connection closed after {received} bytes of a request")]
    Truncated { received: usize },
    #[error("request not complete within {timeout:?} ({received} bytes received)")]
    Timeout { received: usize, timeout: Duration },
    #[error("admin token required: send Authorization: Bearer <admin_token>")]
    Unauthorized,
    #[error("cross-origin request refused (a browser sent it for another site)")]
    CrossOrigin,
    #[error("Host does not name this loopback address (DNS rebinding refused)")]
    ForeignHost,
    #[error("stats encoding failed: {0}")]
    Json(#[from] serde_json::Error),
    #[error("control thread is busy; try again")]
    ControlBusy,
    #[error("control thread is not running; cannot reload")]
    ControlGone,
    #[error("control thread dropped the reload without answering")]
    ReloadDropped,
    #[error("no reload result within {0:?}")]
    ReloadTimeout(Duration),
}

impl AdminError {
    /// The status to answer with, or `None` when there is nobody to answer
    /// (a peer that closed without sending a whole request).
    pub fn status(&self) -> Option<u16> {
        match self {
            AdminError::HeadTooLarge { .. } => Some(431),
            AdminError::Incomplete
            | AdminError::Malformed(_)
            | AdminError::BadContentLength
            | AdminError::UnsupportedBody
            | AdminError::DuplicateHeader(_)
            | AdminError::Pipelined => Some(400),
            AdminError::Unauthorized => Some(401),
            AdminError::CrossOrigin | AdminError::ForeignHost => Some(403),
            AdminError::Truncated { received: 0 } => None,
            AdminError::Truncated { .. } => Some(400),
            AdminError::BodyTooLarge { .. } => Some(413),
            AdminError::Timeout { .. } => Some(408),
            AdminError::Json(_) => Some(500),
            AdminError::ControlBusy | AdminError::ControlGone | AdminError::ReloadDropped => Some(503),
            AdminError::ReloadTimeout(_) => Some(504),
        }
    }
}

/// Binds the admin address. `main` calls it before the workers start, so
/// a taken or forbidden port is reported before anything serves, and
/// serves it (`spawn_on`) once they run.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr).map_err(|e| io::Error::new(e.kind(), format!("admin: cannot bind {addr}: {e}")))
}

/// Serves an already bound listener (tests use an ephemeral port).
///
/// The token comes from the startup config: like the admin address, a
/// change to it takes effect at restart.
pub fn spawn_on(listener: TcpListener, shared: Arc<Shared>) -> io::Result<JoinHandle<()>> {
    let guard = Guard::new(shared.cell.load().config.server.admin_token.clone());
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, token = guard.has_token(), "admin listening");
    }
    let server = Server::new(listener, AdminHttp { shared, guard, history: status::history::History::default() })?;
    thread::Builder::new().name("puerta-admin".to_string()).spawn(move || server.run())
}

/// The admin HTTP port as a `Service`.
struct AdminHttp {
    shared: Arc<Shared>,
    guard: Guard,
    /// The status page's per-second samples (rates, last-minute windows).
    history: status::history::History,
}

impl Service for AdminHttp {
    fn greeting(&mut self) -> Option<Bytes> {
        None
    }

    fn busy(&self) -> Option<Bytes> {
        let text = format!("too many admin connections (limit {MAX_CONNECTIONS})");
        Some(Response::text(503, text).encode().into())
    }

    fn respond(&mut self, req: &Request<'_>, local: Option<SocketAddr>) -> Reply {
        route(&self.shared, &self.guard, &mut self.history, req, local).unwrap_or_else(|e| {
            // Every error raised after a whole request arrived has a status.
            Reply::Now(Response::error(&e).unwrap_or_else(|| Response::text(500, e.to_string())))
        })
    }
}

/// Maps a request to its endpoint. Only `path` decides 404; a known path
/// with the wrong method is 405 with `Allow`. Probes (`/healthz`, `/ready`)
/// stay open so an orchestrator needs no secret, and so does the status
/// page's HTML (it holds no data; its script sends the token); the rest
/// need the token.
fn route(
    shared: &Shared,
    guard: &Guard,
    history: &mut status::history::History,
    req: &Request<'_>,
    local: Option<SocketAddr>,
) -> Result<Reply, AdminError> {
    let (method, path) = (req.method, req.path);
    guard::loopback_host(req, local)?;
    if !matches!(path, "/healthz" | "/ready" | "/") {
        guard.authorize(req)?;
    }
    let get_only = |make: &dyn Fn() -> Result<Response, AdminError>| {
        if method == "GET" {
            make().map(Reply::Now)
        } else {
            Ok(Reply::Now(Response::method_not_allowed("GET")))
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
        "/hotkeys" => get_only(&|| Ok(Response::new(200, http::JSON, hotkeys::render(shared)?))),
        "/slowlog" => get_only(&|| Ok(Response::new(200, http::JSON, slowlog::render(shared)?))),
        "/" => get_only(&|| Ok(status::page(guard.has_token()))),
        // Not `get_only`: rendering records a sample in `history`.
        "/api/status" if method == "GET" => {
            Ok(Reply::Now(Response::new(200, http::JSON, status::render(shared, history, Instant::now())?)))
        }
        "/api/status" => Ok(Reply::Now(Response::method_not_allowed("GET"))),
        "/reload" if method == "POST" => {
            guard::same_origin(req, local)?;
            start_reload(shared, Instant::now(), RELOAD_TIMEOUT).map(Reply::Later)
        }
        "/reload" => Ok(Reply::Now(Response::method_not_allowed("POST"))),
        _ => Ok(Reply::Now(Response::text(404, "not found"))),
    }
}

/// nutcracker's stats port, when a request arrives instead of the JSON
/// being read: `/metrics` only, behind the same checks as on the admin
/// port (token, loopback `Host`), answered by the same code.
fn route_stats_port(shared: &Shared, guard: &Guard, req: &Request<'_>, local: Option<SocketAddr>) -> Reply {
    let reply = match req.path {
        // Only /metrics: the status history stays the admin port's.
        "/metrics" => route(shared, guard, &mut status::history::History::default(), req, local),
        _ => Ok(Reply::Now(Response::text(
            404,
            "the stats port serves /metrics, or nutcracker's JSON to a silent client",
        ))),
    };
    reply.unwrap_or_else(|e| Reply::Now(Response::error(&e).unwrap_or_else(|| Response::text(500, e.to_string()))))
}

/// A reload the control thread has been asked for; its answer is polled.
pub struct PendingReload {
    rx: Receiver<Result<String, String>>,
    deadline: Instant,
    wait: Duration,
}

/// Asks the control thread to reload, without waiting for it.
fn start_reload(shared: &Shared, now: Instant, wait: Duration) -> Result<PendingReload, AdminError> {
    // Capacity 1: if we give up waiting and drop `rx`, control's late reply
    // fails at once instead of blocking the control thread.
    let (tx, rx) = crossbeam_channel::bounded(1);
    // `try_send`: the admin loop must never block; a full control channel
    // (1024 messages queued) means control is far behind.
    match shared.control.try_send(ControlMsg::Reload { reply: Some(tx) }) {
        Ok(()) => Ok(PendingReload { rx, deadline: now + wait, wait }),
        Err(TrySendError::Full(_)) => Err(AdminError::ControlBusy),
        Err(TrySendError::Disconnected(_)) => Err(AdminError::ControlGone),
    }
}

impl PendingReload {
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The answer once control gave it (or gave up, or time ran out).
    pub fn poll(&self, now: Instant) -> Option<Result<Response, AdminError>> {
        match self.rx.try_recv() {
            Ok(Ok(summary)) => Some(Ok(Response::text(200, summary))),
            // A config that does not validate is the operator's to fix: 400.
            Ok(Err(reason)) => Some(Ok(Response::text(400, reason))),
            Err(TryRecvError::Disconnected) => Some(Err(AdminError::ReloadDropped)),
            Err(TryRecvError::Empty) if now >= self.deadline => Some(Err(AdminError::ReloadTimeout(self.wait))),
            Err(TryRecvError::Empty) => None,
        }
    }
}
