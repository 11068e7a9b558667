//! The io_uring driver's lingering TLS clients: a client socket its
//! session closed while ciphertext was still queued in its `TlsConn` (the
//! last reply, a close_notify, a handshake alert) stays open until that is
//! sent, a send fails, or `tls_io::LINGER` passes; then it is detached
//! (`mux_detach`) like any closed socket (which socket lingers, and the
//! list with its deadlines, are `worker::linger`'s).
//!
//! Owner: the worker's `UringDriver` (an `impl` block of it). Invariants:
//! a lingering socket (`MSock::linger`) belongs to no session and never
//! touches its entry (the entry's slot may already serve another pool);
//! it is listed in `mux_linger` with its deadline, and keeps the same
//! `ops` accounting as every socket: one send in flight at a time, and a
//! recv still armed completes into `mux_linger_on_recv`, which drops the
//! bytes and does not re-arm it.

use std::time::Instant;

use io_uring::{opcode, types};

use super::tag::Tag;
use super::UringDriver;
use crate::worker::linger::should_linger;
use crate::worker::slab::Generational;

impl UringDriver {
    /// `io_close` of a client with TLS: starts lingering when ciphertext
    /// waits; `false` means detach now.
    pub(super) fn mux_linger(&mut self, slot: u32) -> bool {
        let Some(s) = self.msocks.get_mut(slot) else { return false };
        if s.linger {
            return true;
        }
        if s.closing || !should_linger(s.kind, s.tls.as_deref_mut()) {
            return false;
        }
        s.linger = true;
        self.mux_linger.add(slot, s.gen(), Instant::now());
        self.mux_linger_send(slot);
        true
    }

    /// Sends the next run of a lingering socket's ciphertext, or detaches
    /// it when none is left.
    fn mux_linger_send(&mut self, slot: u32) {
        let Some(s) = self.msocks.get_mut(slot) else { return };
        if s.sending || s.closing {
            return;
        }
        let pending = s.tls.as_deref().map_or(&[][..], |t| t.pending());
        if pending.is_empty() {
            return self.mux_detach(slot);
        }
        s.out.clear();
        s.out.extend_from_slice(pending);
        s.sending = true;
        s.ops += 1;
        let sqe = opcode::Send::new(types::Fd(s.fd), s.out.as_ptr(), s.out.len() as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(Tag::MuxSend.ud(slot, s.gen));
        self.push(sqe);
    }

    /// A lingering socket's send completed (`ops` and `sending` already
    /// settled by the caller).
    pub(super) fn mux_linger_on_send(&mut self, slot: u32, res: i32) {
        let Some(s) = self.msocks.get_mut(slot) else { return };
        match (res, s.tls.as_deref_mut()) {
            (n, Some(t)) if n >= 0 => t.advance(n as usize),
            _ => return self.mux_detach(slot),
        }
        self.mux_linger_send(slot);
    }

    /// A lingering socket's recv completed (`ops` and `recv_armed` already
    /// settled, and its buffer recycled, by the caller): its bytes are
    /// dropped; an error detaches.
    pub(super) fn mux_linger_on_recv(&mut self, slot: u32, res: i32) {
        if res < 0 && res != -libc::ENOBUFS && res != -libc::ECANCELED {
            self.mux_detach(slot);
        }
    }

    /// Periodic: detaches lingering sockets past their deadline and
    /// forgets the ones already gone.
    pub(super) fn mux_linger_expire(&mut self, now: Instant) {
        let msocks = &mut self.msocks;
        let lingers = |slot, gen| msocks.get_gen(slot, gen).is_some_and(|s| s.linger && !s.closing);
        for slot in self.mux_linger.expire(now, lingers) {
            self.mux_detach(slot);
        }
    }
}
