//! The driver-independent TLS step of multiplexed pools' client sockets:
//! what both drivers do alike between a socket's ciphertext and a
//! session's plaintext, so the io_uring and epoll drivers differ only in
//! how they move the bytes.
//!
//! Owner: the worker; each driver keeps a client socket's `TlsConn` boxed
//! in its own socket record (`None` for plaintext clients, whose path is
//! unchanged but for that one check). Invariants:
//! - plaintext reaches the session only once decrypted, and only after
//!   the session learned the client's certificate names; the session's
//!   plaintext is taken (and `handle_client_sent` told) only while the
//!   ciphertext queue is under its bound (`TlsConn::has_room`), so a
//!   client that stops reading holds the session's buffer, where the
//!   existing output limits see it;
//! - a failed TLS session closes its client through the session (as any
//!   socket error does) and counts one failure reason;
//! - a handshake that outlives its deadline is closed at the next tick;
//! - a TLS client the session closes keeps its socket ("lingers") until
//!   the ciphertext already queued (the session counts those bytes as
//!   sent: a QUIT's +OK, a protocol error's -ERR, a TLS alert) and a
//!   close_notify are written, for at most `LINGER`; a lingering socket
//!   belongs to no session, and its input is read and dropped.

use std::time::{Duration, Instant};

use crate::route::PoolSnapshot;
use crate::session::mux::ClientId;
use crate::session::PoolSession;
use crate::stats::tls::TlsStats;
use crate::tls::{FailReason, TlsConn, TlsError};
use crate::worker::mux_pools::MuxPools;

/// The TLS record for a client accepted on `pool`'s listener: `None` for a
/// plaintext pool or its `plain_listen` socket; `Err` when the session
/// could not be created (the caller closes the client).
pub fn accept(pool: &PoolSnapshot, plain: bool, now: Instant, stats: &TlsStats) -> Result<Option<Box<TlsConn>>, ()> {
    let Some(server) = pool.cfg.tls.server.as_ref().filter(|_| !plain) else { return Ok(None) };
    stats.handshakes.incr();
    match TlsConn::server(&server.config, now + pool.cfg.tls.handshake_timeout) {
        Ok(t) => Ok(Some(Box::new(t))),
        Err(err) => {
            tracing::warn!(pool = %pool.cfg.name, %err, "cannot start a TLS session");
            Err(())
        }
    }
}

/// Ciphertext from client `id`: its plaintext goes to the session. The
/// read that completes the handshake tells the session who the client's
/// certificate names (`set_client_cert`) before any request of it: the
/// plaintext that came with the handshake's last flight waits for that.
pub fn client_data(
    tls: &mut TlsConn,
    session: &mut dyn PoolSession,
    id: ClientId,
    data: &[u8],
    now: Instant,
    stats: &TlsStats,
) {
    let was_handshaking = tls.is_handshaking();
    let mut early = Vec::new();
    let res = if was_handshaking {
        tls.receive(data, &mut |plain| early.extend_from_slice(plain))
    } else {
        tls.receive(data, &mut |plain| session.handle_client_data(id, plain, now))
    };
    match res {
        Ok(()) => {
            if was_handshaking && !tls.is_handshaking() {
                stats.established(tls.version());
                session.set_client_cert(id, tls.peer_names().as_ref());
            }
            if !early.is_empty() {
                session.handle_client_data(id, &early, now);
            }
            if tls.peer_closed() {
                session.handle_client_eof(id);
            }
        }
        Err(err) => fail(tls, session, id, err, stats),
    }
}

/// The client's socket reached EOF or an error: a handshake in progress
/// counts as failed ("closed").
pub fn client_gone(tls: &TlsConn, stats: &TlsStats) {
    if tls.is_handshaking() {
        stats.failed(FailReason::Closed);
    }
}

fn fail(tls: &TlsConn, session: &mut dyn PoolSession, id: ClientId, err: TlsError, stats: &TlsStats) {
    let reason = FailReason::of(&err);
    if tls.is_handshaking() {
        stats.failed(reason);
    }
    tracing::debug!(%err, reason = reason.name(), "TLS client closed");
    session.handle_client_error(id, libc::EPROTO);
}

/// Ciphertext to send to client `id`: moves the session's plaintext into
/// the TLS record first, while the ciphertext queue has room.
pub fn client_transmit<'a>(
    tls: &'a mut TlsConn,
    session: &mut dyn PoolSession,
    id: ClientId,
    now: Instant,
) -> Option<&'a [u8]> {
    while tls.has_room() && !tls.is_handshaking() {
        let Some(plain) = session.poll_client_transmit(id) else { break };
        let n = tls.send_plain(&plain);
        if n == 0 {
            break;
        }
        session.handle_client_sent(id, n, now);
    }
    let out = tls.pending();
    (!out.is_empty()).then_some(out)
}

/// How long a closed TLS client may take to read its last ciphertext
/// before its socket is closed anyway: a client that stopped reading must
/// not hold a descriptor for long.
pub const LINGER: Duration = Duration::from_secs(2);

/// The session closed a TLS client: queues a close_notify (once the
/// handshake is done; a failed handshake's alert is already queued) and
/// says whether ciphertext waits to be written, so the driver lingers
/// (`LINGER`) instead of closing the socket now.
pub fn closing(tls: &mut TlsConn) -> bool {
    if !tls.is_handshaking() {
        tls.close();
    }
    !tls.pending().is_empty()
}

/// Periodic: closes the clients (entry index, client id) whose handshake
/// outlived its deadline (`TlsConn::take_expired`, checked by the driver
/// over its socket records).
pub fn expire_handshakes(pools: &mut MuxPools, expired: &[(usize, ClientId)], stats: &TlsStats) {
    for &(idx, id) in expired {
        if let Some(e) = pools.get_mut(idx) {
            stats.failed(FailReason::Timeout);
            tracing::debug!(pool = %e.pool.cfg.name, "TLS handshake timed out");
            e.session.handle_client_error(id, libc::ETIMEDOUT);
        }
    }
}
