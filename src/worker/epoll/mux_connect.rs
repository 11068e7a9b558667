//! The epoll driver's backend connects for multiplexed pools: opening a
//! non-blocking socket toward a backend and reading the connect's outcome
//! when the socket first signals.
//!
//! With `backend_tls`, connecting includes the TLS handshake
//! (`worker::tls_backend`): the session hears it connected only once the
//! handshake is done, and a handshake that fails is a failed connect.
//!
//! Owner: the epoll worker (an `impl` block of `EpollDriver`, over its
//! `msocks` table). Invariants: a backend socket is registered under its
//! slab key before its record is inserted, and is recorded in its entry's
//! `backends` only once both succeeded; a failure is counted once (the
//! socket's `TlsConn` is dropped before the connection is reported).

use std::net::SocketAddr;
use std::os::fd::FromRawFd;
use std::time::Instant;

use mio::net::TcpStream;
use mio::Interest;

use super::mux::ESock;
use super::{token, EpollDriver, KIND_MUX};
use crate::session::mux::BackendId;
use crate::worker::mux_drive::MuxIo;
use crate::worker::mux_pools::MKind;
use crate::worker::sys;
use crate::worker::tls_backend::{self, Step, TLS_ERRNO};

impl EpollDriver {
    /// Opens a non-blocking socket to `addr` for backend `b` of entry
    /// `idx` and starts its connect; completion arrives as an event.
    pub(super) fn start_connect(&mut self, idx: usize, b: BackendId, addr: SocketAddr, sid: usize) -> Result<(), i32> {
        let (slot, gen) = self.msocks.next_key();
        let registry = self.poll.registry();
        let res = sys::tcp_socket(&addr, false).and_then(|fd| {
            // SAFETY: `fd` is a fresh socket we own.
            let mut stream = TcpStream::from_std(unsafe { std::net::TcpStream::from_raw_fd(fd) });
            match socket2::SockRef::from(&stream).connect(&addr.into()) {
                Ok(()) => {}
                Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => {}
                Err(err) => return Err(err),
            }
            registry.register(&mut stream, token(slot, gen, KIND_MUX), Interest::READABLE | Interest::WRITABLE)?;
            Ok(stream)
        });
        let stream = res.map_err(|err| err.raw_os_error().unwrap_or(libc::EIO))?;
        let s = ESock {
            gen,
            entry: idx as u32,
            kind: MKind::Backend(b),
            stream,
            readable: false,
            writable: false,
            hup: false,
            connected: false,
            paused: false,
            stat_id: sid,
            tls: None,
            linger: false,
            rx: None,
            rx_used: false,
        };
        let got = self.msocks.insert(s);
        debug_assert_eq!(got, slot);
        if let Some(e) = self.mux.get_mut(idx) {
            e.backends.insert(b, slot);
        }
        Ok(())
    }

    /// Backend `b`'s TCP connect on `slot` completed: the session hears it
    /// at once, or (with `backend_tls`) once the handshake is done. False
    /// when the TLS session could not start (reported as a failed connect).
    pub(super) fn mux_backend_connected(&mut self, slot: u32, b: BackendId, now: Instant) -> bool {
        let Some(s) = self.msocks.get_mut(slot) else { return false };
        s.connected = true;
        self.core.mux_backend_opened(s.stat_id);
        let (entry, sid) = (s.entry as usize, s.stat_id);
        let Some(e) = self.mux.entries.get_mut(entry).and_then(|e| e.as_mut()) else { return true };
        match tls_backend::connected(&e.pool, &*e.session, b, now, &self.core.stats.tls_backend) {
            Ok(None) => e.session.handle_backend_connected(b),
            Ok(Some(t)) => s.tls = Some(t),
            Err(()) => {
                self.mux_connect_failed(entry, b, sid, TLS_ERRNO, now);
                return false;
            }
        }
        true
    }

    /// Backend `b`'s socket hit EOF (`errno` None) or an error: a lost
    /// connection, or a failed connect while its TLS handshake runs.
    pub(super) fn mux_backend_gone(&mut self, slot: u32, entry: usize, b: BackendId, errno: Option<i32>, now: Instant) {
        let s = self.msocks.get_mut(slot);
        let sid = s.as_ref().map_or(usize::MAX, |s| s.stat_id);
        let act = tls_backend::on_gone(s.map(|s| &mut s.tls), errno, &self.core.stats.tls_backend);
        self.mux_backend_act(entry, b, sid, act, now);
    }

    /// The session closes backend socket `slot` for a passed deadline.
    pub(super) fn mux_backend_timed_out(&mut self, slot: u32) {
        if let Some(s) = self.msocks.get_mut(slot) {
            tls_backend::timed_out(&mut s.tls, &self.core.stats.tls_backend);
        }
    }

    /// Acts on a TLS step of backend `b`; true when the socket is gone.
    pub(super) fn mux_backend_tls_step(
        &mut self,
        slot: u32,
        entry: usize,
        b: BackendId,
        step: Step,
        now: Instant,
    ) -> bool {
        let s = self.msocks.get_mut(slot);
        let sid = s.as_ref().map_or(usize::MAX, |s| s.stat_id);
        let act = tls_backend::on_step(s.map(|s| &mut s.tls), step);
        self.mux_backend_act(entry, b, sid, act, now)
    }
}

/// The outcome of a non-blocking connect once the socket signalled:
/// `None` while still in progress, else success or the errno.
pub(super) fn connect_result(s: &TcpStream) -> Option<Result<(), i32>> {
    match s.take_error() {
        Ok(Some(e)) | Err(e) => Some(Err(e.raw_os_error().unwrap_or(libc::EIO))),
        Ok(None) => match s.peer_addr() {
            Ok(_) => Some(Ok(())),
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => None,
            Err(e) => Some(Err(e.raw_os_error().unwrap_or(libc::EIO))),
        },
    }
}
