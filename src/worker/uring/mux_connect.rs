//! The io_uring driver's backend connects for multiplexed pools: the
//! socket and connect SQE toward a backend, and the connect's completion.
//!
//! Owner: the worker's `UringDriver` (an `impl` block of it, over its
//! `msocks` table). Invariant: the connect SQE's address lives in the
//! socket's boxed record, which is freed only once `ops` is back to zero.

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
            if let Some(e) = self.mux.get_mut(entry) {
                e.session.handle_backend_connected(b);
            }
            self.mux_arm_recv(slot);
            self.mux_resend.push(slot);
        } else {
            self.mux_connect_failed(entry, b, sid, -res, now);
        }
    }
}
