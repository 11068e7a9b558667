//! The driver-independent TLS step of multiplexed pools' backend sockets
//! (`backend_tls`: Puerta originates TLS to redis, memcache and cluster
//! nodes): what both drivers do alike between a backend socket's
//! ciphertext and a session's plaintext.
//!
//! Owner: the worker; each driver keeps a backend socket's `TlsConn` boxed
//! in its own socket record (`None` for plaintext pools, whose path is
//! unchanged but for that one check). Invariants:
//! - the TLS handshake is part of connecting: the session hears
//!   `handle_backend_connected` only once it is done, so requests queued
//!   meanwhile wait in the session (and go out right after it), and the
//!   session's connect deadline bounds the handshake too;
//! - the session's plaintext is taken (and `handle_backend_sent` told)
//!   only while the ciphertext queue is under its bound
//!   (`TlsConn::has_room`, DESIGN §5 rule 4); what is not taken stays in
//!   the session, where its own limits see it;
//! - a TLS failure is a backend failure: during the handshake a failed
//!   connect (ejection counts it), afterwards a lost connection; each
//!   failed handshake counts one fixed reason in `tls_backend`, and so
//!   does a TLS 1.3 `certificate_required` alert after it ("no_certificate").

use std::time::Instant;

use crate::route::PoolSnapshot;
use crate::session::mux::BackendId;
use crate::session::PoolSession;
use crate::stats::tls::TlsStats;
use crate::tls::{FailReason, TlsConn, TlsError};

/// The errno a failed TLS session reports to the session (its clients see
/// its strerror text, "Protocol error").
pub const TLS_ERRNO: i32 = libc::EPROTO;

/// What the driver does after feeding a backend socket's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing beyond flushing what is pending.
    Continue,
    /// The TLS session failed while handshaking: a failed connect.
    ConnectFailed,
    /// The TLS session failed, or the peer closed it, once established.
    Lost(Option<i32>),
}

/// Starts the TLS session of a backend connection whose TCP connect just
/// completed: `None` for a plaintext pool; `Err` when it cannot start (a
/// bad `server_name` for this host), which the caller treats as a failed
/// connect. The ClientHello is pending at once.
pub fn connected(
    pool: &PoolSnapshot,
    session: &dyn PoolSession,
    b: BackendId,
    now: Instant,
    stats: &TlsStats,
) -> Result<Option<Box<TlsConn>>, ()> {
    let Some(tls) = pool.cfg.tls.backend.as_ref() else { return Ok(None) };
    stats.handshakes.incr();
    // Cluster nodes are named by their IP, or with `server_name =
    // "announced"` by their announced endpoint's host.
    let named = pool.cfg.cluster.is_none() || tls.wants_announced();
    let ip;
    let host = match session.backend_host(b).filter(|_| named) {
        Some(h) => h,
        None => {
            ip = session.backend_addr(b).map(|a| a.ip().to_string()).unwrap_or_default();
            &ip
        }
    };
    match tls.connect(host, now + pool.cfg.tls.handshake_timeout) {
        Ok(t) => Ok(Some(Box::new(t))),
        Err(err) => {
            stats.failed(FailReason::Negotiation);
            tracing::warn!(pool = %pool.cfg.name, host, %err, "cannot start a TLS session to a backend");
            Err(())
        }
    }
}

/// Ciphertext from backend `b`: its plaintext goes to the session (after
/// `handle_backend_connected`, once the handshake is done).
pub fn data(
    tls: &mut TlsConn,
    session: &mut dyn PoolSession,
    b: BackendId,
    data: &[u8],
    now: Instant,
    stats: &TlsStats,
) -> Step {
    let was_handshaking = tls.is_handshaking();
    // Plaintext can only follow a finished handshake: announce it first.
    let mut announced = !was_handshaking;
    let res = tls.receive(data, &mut |plain| {
        if !announced {
            announced = true;
            session.handle_backend_connected(b);
        }
        session.handle_backend_data(b, plain, now);
    });
    match res {
        Ok(()) => {
            if was_handshaking && !tls.is_handshaking() {
                stats.established(tls.version());
                if !announced {
                    session.handle_backend_connected(b);
                }
            }
            if tls.peer_closed() {
                Step::Lost(None)
            } else {
                Step::Continue
            }
        }
        Err(err) => fail(tls, err, stats),
    }
}

/// What the driver does with a backend socket after a TLS step or its end
/// (`MuxIo::mux_backend_act` carries it out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing: the socket stays.
    Nothing,
    /// Report a failed connect with this errno.
    ConnectFailed(i32),
    /// Report a lost connection (`None`: EOF).
    Lost(Option<i32>),
}

/// A backend socket hit EOF (`errno` None) or an error. `tls` is its TLS
/// slot (`None` when the socket is no longer in the driver's table). While
/// handshaking this is a failed connect: the failure is counted ("closed")
/// and the `TlsConn` dropped, so closing the socket cannot count it again.
pub fn on_gone(tls: Option<&mut Option<Box<TlsConn>>>, errno: Option<i32>, stats: &TlsStats) -> Outcome {
    let handshaking = tls.is_some_and(|slot| match slot.take() {
        Some(t) if t.is_handshaking() => {
            stats.failed(FailReason::Closed);
            true
        }
        t => {
            *slot = t;
            false
        }
    });
    if handshaking {
        Outcome::ConnectFailed(errno.unwrap_or(libc::ECONNRESET))
    } else {
        Outcome::Lost(errno)
    }
}

/// Acts on a TLS `step` of a backend socket whose TLS slot is `tls`: a
/// step that ends the socket drops its `TlsConn` (the failure is counted
/// already: closing it must not count it again).
pub fn on_step(tls: Option<&mut Option<Box<TlsConn>>>, step: Step) -> Outcome {
    if step == Step::Continue {
        return Outcome::Nothing;
    }
    if let Some(slot) = tls {
        *slot = None;
    }
    match step {
        Step::Continue => Outcome::Nothing,
        Step::ConnectFailed => Outcome::ConnectFailed(TLS_ERRNO),
        Step::Lost(errno) => Outcome::Lost(errno),
    }
}

/// The session closes a backend connection because a deadline passed
/// (`BackendClose::TimedOut`: its connect deadline, which may come before
/// the handshake's own): a handshake still running counts as "timeout",
/// and the `TlsConn` is dropped so closing the socket does not count it
/// again.
pub fn timed_out(tls: &mut Option<Box<TlsConn>>, stats: &TlsStats) {
    if tls.as_ref().is_some_and(|t| t.is_handshaking()) {
        *tls = None;
        stats.failed(FailReason::Timeout);
    }
}

/// The session closed or gave up on a connection still handshaking, for
/// another reason than a deadline: counts "timeout" when the handshake
/// was late all the same, else "closed".
pub fn abandoned(tls: &TlsConn, now: Instant, stats: &TlsStats) {
    if tls.is_handshaking() {
        stats.failed(if tls.handshake_expired(now) { FailReason::Timeout } else { FailReason::Closed });
    }
}

fn fail(tls: &TlsConn, err: TlsError, stats: &TlsStats) -> Step {
    let reason = FailReason::of(&err);
    if tls.is_handshaking() {
        stats.failed(reason);
        tracing::warn!(%err, reason = reason.name(), "TLS handshake with a backend failed");
        Step::ConnectFailed
    } else {
        if reason == FailReason::NoCertificate {
            // TLS 1.3: the server refuses a missing client certificate
            // only after the client's handshake is done (the first read
            // gets a `certificate_required` alert). A handshake failure
            // all the same, though the session already saw it connected.
            stats.failed(reason);
            tracing::warn!(%err, reason = reason.name(), "TLS handshake with a backend failed");
        } else {
            tracing::debug!(%err, reason = reason.name(), "TLS session with a backend failed");
        }
        Step::Lost(Some(TLS_ERRNO))
    }
}

/// Ciphertext to send to backend `b`: moves the session's plaintext into
/// the TLS record first (once the handshake is done, while the ciphertext
/// queue has room).
pub fn transmit<'a>(
    tls: &'a mut TlsConn,
    session: &mut dyn PoolSession,
    b: BackendId,
    now: Instant,
) -> Option<&'a [u8]> {
    while tls.has_room() && !tls.is_handshaking() {
        let Some(plain) = session.poll_backend_transmit(b) else { break };
        let n = tls.send_plain(&plain);
        if n == 0 {
            break;
        }
        session.handle_backend_sent(b, n, now);
    }
    let out = tls.pending();
    (!out.is_empty()).then_some(out)
}
