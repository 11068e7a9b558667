//! The io_uring driver's backend connects for multiplexed pools: the
//! socket and connect SQE toward a backend, and the connect's completion.
//!
//! With `backend_tls`, connecting includes the TLS handshake
//! (`worker::tls_backend`): the session hears it connected only once the
//! handshake is done, and a handshake that fails is a failed connect.
//!
//! Owner: the worker's `UringDriver` (an `impl` block of it, over its
//! `msocks` table). Invariants: the connect SQE's address lives in the
//! socket's boxed record, which is freed only once `ops` is back to zero;
//! a TLS failure is counted once (the socket's `TlsConn` is dropped before
//! the connection is reported).

use std::net::SocketAddr;
use std::time::Instant;

use io_uring::{opcode, types};

use super::conn::{sockaddr_box, store_sockaddr, MSock};
use super::tag::Tag;
use super::UringDriver;
use crate::session::mux::BackendId;
use crate::worker::mux_drive::MuxIo;
use crate::worker::mux_pools::MKind;
use crate::worker::sys;
use crate::worker::tls_backend::{self, Step, TLS_ERRNO};

impl UringDriver {
    /// Opens a socket to `addr` for backend `b` of entry `idx` and submits
    /// its connect.
    pub(super) fn start_connect(&mut self, idx: usize, b: BackendId, addr: SocketAddr, sid: usize) -> Result<(), i32> {
        let fd = sys::tcp_socket(&addr, true).map_err(|err| err.raw_os_error().unwrap_or(libc::EIO))?;
        let mut s = MSock::new(idx as u32, MKind::Backend(b), fd);
        s.stat_id = sid;
        let (ptr, len) = store_sockaddr(s.sockaddr.insert(sockaddr_box()), addr);
        s.ops = 1;
        let slot = self.msocks.insert(s);
        if let Some(e) = self.mux.get_mut(idx) {
            e.backends.insert(b, slot);
        }
        let gen = self.msocks.get_mut(slot).map_or(0, |s| s.gen);
        // SAFETY (via push): the address lives in the boxed record until ops == 0.
        let sqe = opcode::Connect::new(types::Fd(fd), ptr, len).build().user_data(Tag::MuxConnect.ud(slot, gen));
        self.push(sqe);
        Ok(())
    }

    pub(super) fn mux_on_connect(&mut self, slot: u32, gen: u16, res: i32, now: Instant) {
        let Some(s) = self.msocks.get_gen(slot, gen) else { return };
        s.ops -= 1;
        if s.closing {
            return self.mux_maybe_free(slot);
        }
        let (entry, kind, sid) = (s.entry as usize, s.kind, s.stat_id);
        let MKind::Backend(b) = kind else { return };
        if res == 0 {
            s.connected = true;
            self.core.mux_backend_opened(sid);
            if let Some(e) = self.mux.entries.get_mut(entry).and_then(|e| e.as_mut()) {
                match tls_backend::connected(&e.pool, &*e.session, b, now, &self.core.stats.tls_backend) {
                    Ok(None) => e.session.handle_backend_connected(b),
                    Ok(Some(t)) => s.tls = Some(t),
                    Err(()) => return self.mux_connect_failed(entry, b, sid, TLS_ERRNO, now),
                }
            }
            self.mux_arm_recv(slot);
            // The ClientHello, or requests queued while connecting.
            self.mux_resend.push(slot);
        } else {
            self.mux_connect_failed(entry, b, sid, -res, now);
        }
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
