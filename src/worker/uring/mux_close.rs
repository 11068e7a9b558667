//! The end of the io_uring driver's multiplexed sockets: detaching one
//! from its session (cancelling what is in flight) and freeing its record
//! once the kernel is done with it.
//!
//! Owner: the worker's `UringDriver` (an `impl` block of it, over its
//! `msocks` table). Invariants: a record is freed (and its fd closed) only
//! once it is `closing` and its `ops` are back to zero, so no SQE still
//! points into it; a connected backend is counted closed once, and a TLS
//! handshake still running on it is counted by `tls_backend::abandoned`.

use std::time::Instant;

use io_uring::{opcode, types};

use super::tag::Tag;
use super::UringDriver;
use crate::worker::sys;
use crate::worker::tls_backend;

impl UringDriver {
    /// Detaches a socket from its session: cancels what is in flight and
    /// frees the record (closing the fd) once the kernel is done with it.
    pub(super) fn mux_detach(&mut self, slot: u32) {
        let Some(s) = self.msocks.get_mut(slot) else { return };
        if s.closing {
            return;
        }
        s.closing = true;
        if s.connected {
            s.connected = false;
            self.core.mux_backend_closed(s.stat_id);
            if let Some(t) = s.tls.as_deref() {
                tls_backend::abandoned(t, Instant::now(), &self.core.stats.tls_backend);
            }
        }
        if s.ops > 0 {
            let e = opcode::AsyncCancel2::new(types::CancelBuilder::fd(types::Fd(s.fd)).all())
                .build()
                .user_data(Tag::Cancel.bare());
            self.push(e);
        }
        self.mux_maybe_free(slot);
    }

    pub(super) fn mux_maybe_free(&mut self, slot: u32) {
        if self.msocks.get_mut(slot).is_some_and(|s| s.closing && s.ops == 0) {
            if let Some(s) = self.msocks.remove(slot) {
                sys::close(s.fd);
            }
        }
    }
}
