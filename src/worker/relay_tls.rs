//! TLS on the two sockets of a tcp/mongos relay, for both drivers: the
//! client side terminates (a pool's `tls`), the backend side originates
//! (a pool's `backend_tls`). Drivers call these instead of the session's
//! `handle_data`/`poll_transmit`/`handle_sent`/`wants_read`; a side
//! without TLS goes straight to the session (one `None` check).
//!
//! Owner: the worker; each relay's `Relay::tls` holds one boxed `TlsSide`
//! per TLS socket (`None` for plaintext sockets, so they pay one pointer).
//! Invariants:
//! - the session sees plaintext only: bytes from a TLS socket are
//!   decrypted before `TcpSession::handle_data` (a mongos tracker parses
//!   them there), and its bytes for a TLS socket are encrypted;
//! - the session's plaintext moves into a TLS queue only while that queue
//!   is under its bound (`TlsConn::has_room`), so a peer that stops reading
//!   leaves the bytes in the session, whose `high_water` then stops reading
//!   the other side (DESIGN §5 rule 4);
//! - ciphertext not yet written is reported to the session
//!   (`TcpSession::set_held`), so a close or half-close waits for it;
//! - a handshake that fails, is cut short by EOF, or outlives its deadline
//!   closes the relay and counts one failure reason; a handshake in
//!   progress keeps its socket read whatever the session wants.

use std::time::Instant;

use crate::route::PoolSnapshot;
use crate::session::{Side, TcpSession};
use crate::stats::tls::TlsStats;
use crate::stats::WorkerStats;
use crate::tls::{backend_name, FailReason, TlsConn, TlsError};
use crate::worker::relay::Relay;
use crate::worker::tls_io;

/// Where a side's handshakes count: a worker's `tls` (clients) or
/// `tls_backend` (backends), shown as `side="client"|"backend"` in
/// /metrics; a lone `TlsStats` (unit tests) counts both.
pub trait SideStats {
    fn side(&self, side: Side) -> &TlsStats;
}

impl SideStats for TlsStats {
    fn side(&self, _: Side) -> &TlsStats {
        self
    }
}

impl SideStats for WorkerStats {
    fn side(&self, side: Side) -> &TlsStats {
        match side {
            Side::Client => &self.tls,
            Side::Backend => &self.tls_backend,
        }
    }
}

/// Copy buffers above this are dropped once their send completed.
const KEEP_COPY: usize = 16 * 1024;

/// One TLS socket of a relay.
pub struct TlsSide {
    conn: TlsConn,
    /// Until the handshake finished: when it must have.
    deadline: Option<Instant>,
    /// io_uring only (`transmit_pinned`): the bytes of the send in flight,
    /// copied out of `conn`, whose queue may grow (and move) meanwhile.
    copy: Vec<u8>,
    in_flight: bool,
}

impl TlsSide {
    fn new(conn: TlsConn, deadline: Instant) -> Box<TlsSide> {
        Box::new(TlsSide { conn, deadline: Some(deadline), copy: Vec::new(), in_flight: false })
    }
}

/// At accept, before admission (a session that cannot start is never
/// counted as a client): a client of a TLS listener (not `plain_listen`)
/// gets its server-side session, for `Relay::tls[Client]`. `Err`: it
/// could not be created (the caller closes the socket).
pub fn accept(pool: &PoolSnapshot, plain: bool, now: Instant, stats: &TlsStats) -> Result<Option<Box<TlsSide>>, ()> {
    let deadline = now + pool.cfg.tls.handshake_timeout;
    Ok(tls_io::accept(pool, plain, now, stats)?.map(|t| TlsSide::new(*t, deadline)))
}

/// The backend connect completed: with `backend_tls`, starts the client
/// side of its handshake (the ClientHello waits in `transmit`). A retried
/// connect starts afresh.
pub fn connected(r: &mut Relay, now: Instant, stats: &impl SideStats) {
    let b = Side::Backend as usize;
    r.tls[b] = None;
    let Some(c) = r.pool.cfg.tls.backend.as_ref() else { return };
    let spec = &r.pool.backends[r.backend as usize].spec;
    let deadline = now + r.pool.cfg.tls.handshake_timeout;
    stats.side(Side::Backend).handshakes.incr();
    match TlsConn::client(&c.config, backend_name(c, &spec.host, spec.addr), deadline) {
        Ok(t) => r.tls[b] = Some(TlsSide::new(t, deadline)),
        Err(err) => {
            tracing::warn!(pool = %r.pool.cfg.name, backend = %spec.name, %err, "cannot start a backend TLS session");
            r.session.handle_error(Side::Backend, libc::EPROTO);
        }
    }
}

/// Bytes read from `side`'s socket.
pub fn data(r: &mut Relay, side: Side, data: &[u8], now: Instant, stats: &impl SideStats) {
    let Relay { tls, session, .. } = r;
    let Some(t) = tls[side as usize].as_deref_mut() else { return session.handle_data(side, data, now) };
    let was_handshaking = t.conn.is_handshaking();
    match t.conn.receive(data, &mut |plain| session.handle_data(side, plain, now)) {
        Ok(()) => {
            if was_handshaking && !t.conn.is_handshaking() {
                t.deadline = None;
                stats.side(side).established(t.conn.version());
            }
            if t.conn.peer_closed() {
                session.handle_eof(side);
            }
        }
        Err(err) => fail(t, session, side, &err, stats),
    }
    // The handshake's answers wait in the queue now.
    session.set_held(side, !t.conn.pending().is_empty());
}

fn fail(t: &TlsSide, session: &mut TcpSession, side: Side, err: &TlsError, stats: &impl SideStats) {
    let reason = FailReason::of(err);
    if t.conn.is_handshaking() {
        stats.side(side).failed(reason);
    }
    tracing::debug!(%err, ?side, reason = reason.name(), "TLS relay closed");
    session.handle_error(side, libc::EPROTO);
}

/// Read EOF from `side`'s socket. Mid-handshake nothing was relayed yet,
/// so the relay closes (and the handshake counts as failed, "closed").
pub fn eof(r: &mut Relay, side: Side, stats: &impl SideStats) {
    if r.tls[side as usize].as_deref().is_some_and(|t| t.conn.is_handshaking()) {
        stats.side(side).failed(FailReason::Closed);
        return r.session.handle_error(side, libc::ECONNRESET);
    }
    r.session.handle_eof(side);
}

/// A socket error on `side` (counted as a failed handshake if one ran).
pub fn error(r: &mut Relay, side: Side, errno: i32, stats: &impl SideStats) {
    if r.tls[side as usize].as_deref().is_some_and(|t| t.conn.is_handshaking()) {
        stats.side(side).failed(FailReason::Closed);
    }
    r.session.handle_error(side, errno);
}

/// Whether the driver should read `side`'s socket: what the session wants,
/// or a handshake in progress there (it needs the peer's records).
pub fn wants_read(r: &Relay, side: Side) -> bool {
    r.session.wants_read(side)
        || (!r.session.is_closed() && r.tls[side as usize].as_deref().is_some_and(|t| t.conn.is_handshaking()))
}

/// Moves the session's plaintext for `side` into the TLS queue while it
/// has room (once the handshake is done).
fn move_plain(t: &mut TlsSide, session: &mut TcpSession, side: Side, now: Instant) {
    if t.conn.is_handshaking() {
        return;
    }
    while t.conn.has_room() {
        let Some(plain) = session.poll_transmit(side) else { break };
        let n = t.conn.send_plain(plain);
        session.handle_sent(side, n, now);
        if n == 0 {
            break;
        }
    }
    session.set_held(side, !t.conn.pending().is_empty());
}

/// The bytes to write to `side` now (epoll: written at once, then `sent`).
pub fn transmit(r: &mut Relay, side: Side, now: Instant) -> Option<&[u8]> {
    let Relay { tls, session, .. } = r;
    let Some(t) = tls[side as usize].as_deref_mut() else { return session.poll_transmit(side) };
    move_plain(t, session, side, now);
    let out = t.conn.pending();
    (!out.is_empty()).then_some(out)
}

/// io_uring: the bytes to send to `side`, pinned until `sent` (the kernel
/// reads them meanwhile). A TLS side's ciphertext is copied out of its
/// queue, which rustls may grow (and so move) while the send runs; `None`
/// while a send is in flight.
pub fn transmit_pinned(r: &mut Relay, side: Side, now: Instant) -> Option<&[u8]> {
    let Relay { tls, session, .. } = r;
    let Some(t) = tls[side as usize].as_deref_mut() else { return session.poll_transmit(side) };
    if t.in_flight {
        return None;
    }
    move_plain(t, session, side, now);
    let out = t.conn.pending();
    if out.is_empty() {
        return None;
    }
    t.copy.clear();
    t.copy.extend_from_slice(out);
    t.in_flight = true;
    Some(&t.copy)
}

/// `n` bytes of what `transmit`/`transmit_pinned` gave were written.
pub fn sent(r: &mut Relay, side: Side, n: usize, now: Instant) {
    let Relay { tls, session, .. } = r;
    let Some(t) = tls[side as usize].as_deref_mut() else { return session.handle_sent(side, n, now) };
    t.in_flight = false;
    t.conn.advance(n);
    if t.copy.capacity() > KEEP_COPY {
        t.copy = Vec::new();
    }
    // `advance` may have let rustls queue more: the next transmit takes it.
    session.set_held(side, !t.conn.pending().is_empty());
}

/// The session half-closes `side`: a TLS side queues close_notify (sent by
/// the next transmit) and keeps its socket open for it; returns whether
/// the driver shuts the socket's write half itself (plaintext sides).
pub fn shutdown_write(r: &mut Relay, side: Side) -> bool {
    let Some(t) = r.tls[side as usize].as_deref_mut() else { return true };
    t.conn.close();
    r.session.set_held(side, !t.conn.pending().is_empty());
    false
}

/// The earliest instant `tick` could change something: the session's
/// deadline or a handshake's.
pub fn next_deadline(r: &Relay, connect_timed: bool) -> Option<Instant> {
    if r.session.is_closed() {
        return None;
    }
    let own = r.session.next_deadline(connect_timed);
    r.tls.iter().flatten().filter_map(|t| t.deadline).chain(own).min()
}

/// Deadlines: a handshake past its own closes the relay ("timeout"); then
/// the session's.
pub fn tick(r: &mut Relay, now: Instant, stats: &impl SideStats) {
    for side in [Side::Client, Side::Backend] {
        let Some(t) = r.tls[side as usize].as_deref_mut() else { continue };
        if t.deadline.is_some_and(|d| now >= d) {
            t.deadline = None;
            if t.conn.is_handshaking() {
                stats.side(side).failed(FailReason::Timeout);
                tracing::debug!(pool = %r.pool.cfg.name, ?side, "TLS handshake timed out");
                r.session.handle_error(side, libc::ETIMEDOUT);
            }
        }
    }
    r.session.handle_tick(now);
}

#[cfg(test)]
#[path = "relay_tls_tests.rs"]
mod tests;
