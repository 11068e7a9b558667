//! The epoll driver's lingering TLS clients: a client socket its session
//! closed while ciphertext was still queued in its `TlsConn` (the last
//! reply, a close_notify, a handshake alert) stays open until that is
//! written, a write fails, or `tls_io::LINGER` passes (which socket
//! lingers, and the list with its deadlines, are `worker::linger`'s).
//!
//! Owner: the epoll worker (a child module of `epoll`). Invariants: a
//! lingering socket (`ESock::linger`) belongs to no session and never
//! touches its entry (the entry's slot may already serve another pool);
//! it is listed in `mux_linger` with its deadline, and closed by
//! `mux_close_sock` like any other; its input is read and dropped, so the
//! close finds no unread bytes (which would turn it into a reset).

use std::io::{self, Read, Write};
use std::time::Instant;

use super::EpollDriver;
use crate::worker::linger::should_linger;
use crate::worker::slab::Generational;

impl EpollDriver {
    /// `io_close` of a client with TLS: starts lingering when ciphertext
    /// waits; `false` means close now.
    pub(super) fn mux_linger(&mut self, slot: u32) -> bool {
        let Some(s) = self.msocks.get_mut(slot) else { return false };
        if s.linger {
            return true;
        }
        if !should_linger(s.kind, s.tls.as_deref_mut()) {
            return false;
        }
        s.linger = true;
        s.writable = true;
        self.mux_linger.add(slot, s.gen(), Instant::now());
        self.mux_linger_service(slot);
        true
    }

    /// A lingering socket's turn: writes ciphertext, drops input, and
    /// closes the socket once all is written or a write fails.
    pub(super) fn mux_linger_service(&mut self, slot: u32) {
        let Some(s) = self.msocks.get_mut(slot) else { return };
        let Some(t) = s.tls.as_deref_mut() else { return self.mux_close_sock(slot) };
        let mut done = false;
        while s.writable && !t.pending().is_empty() {
            match s.stream.write(t.pending()) {
                Ok(n) => t.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => s.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    done = true;
                    break;
                }
            }
        }
        done |= t.pending().is_empty();
        while s.readable {
            match s.stream.read(&mut self.scratch) {
                // The peer may still read after its FIN (a half close).
                Ok(0) => s.readable = false,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => s.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    done = true;
                    break;
                }
            }
        }
        if done {
            self.mux_close_sock(slot);
        }
    }

    /// Periodic: closes lingering sockets past their deadline and forgets
    /// the ones already closed.
    pub(super) fn mux_linger_expire(&mut self, now: Instant) {
        let msocks = &mut self.msocks;
        for slot in self.mux_linger.expire(now, |slot, gen| msocks.get_gen(slot, gen).is_some_and(|s| s.linger)) {
            self.mux_close_sock(slot);
        }
    }
}
