//! The io_uring driver's read path for multiplexed pools: arming a
//! socket's recv, pausing it while its session holds a client, and
//! handing each completion's bytes to the session.
//!
//! Owner: the worker's `UringDriver` (an `impl` block of it; the rest of
//! the glue is `mux.rs`).
//! Invariants:
//! - a client (and a TLS backend) has at most one multishot recv armed,
//!   drawing from the provided buffer ring; each buffer goes back to the
//!   ring when its completion has been handled;
//! - a plaintext backend has at most one plain `Recv` armed, into its own
//!   `MSock::rx`, which stays in the boxed record, unmoved, until the op
//!   completes (`ops > 0`); the completion sets the buffer's length to
//!   what the kernel wrote, never more than the spare room it was given.

use std::time::Instant;

use io_uring::{cqueue, opcode, types};

use super::tag::Tag;
use super::UringDriver;
use crate::worker::mux_pools::MKind;
use crate::worker::sys;
use crate::worker::tls_backend::{self, Step};
use crate::worker::tls_io;

impl UringDriver {
    pub(super) fn mux_arm_recv(&mut self, slot: u32) {
        let Some(s) = self.msocks.get_mut(slot) else { return };
        if s.recv_armed || s.closing || s.linger {
            return;
        }
        s.recv_armed = true;
        s.cancel_sent = false;
        s.ops += 1;
        let ud = Tag::MuxRecv.ud(slot, s.gen);
        let e = if matches!(s.kind, MKind::Backend(_)) && s.tls.is_none() {
            // A backend's replies land in its own buffer: one recv at a
            // time, re-armed at each completion.
            let rx = s.rx.get_or_insert_with(Default::default);
            if rx.capacity() - rx.len() < sys::RX_SPARE {
                rx.reserve(sys::RX_SPARE);
            }
            let spare = rx.spare_capacity_mut();
            let len = spare.len().min(u32::MAX as usize) as u32;
            // SAFETY (via push): `rx` stays in this boxed record, unmoved
            // and untouched, until this op completes (ops > 0).
            opcode::Recv::new(types::Fd(s.fd), spare.as_mut_ptr().cast(), len).build().user_data(ud)
        } else {
            opcode::RecvMulti::new(types::Fd(s.fd), self.bufs.bgid).build().user_data(ud)
        };
        self.push(e);
    }

    pub(super) fn mux_set_paused(&mut self, slot: u32, paused: bool) {
        if let Some(s) = self.msocks.get_mut(slot) {
            s.paused = paused;
        }
    }

    /// Stops a client's multishot recv while its session pauses it.
    pub(super) fn mux_pause_recv(&mut self, slot: u32) {
        let Some(s) = self.msocks.get_mut(slot) else { return };
        if !s.recv_armed || s.cancel_sent {
            return;
        }
        s.cancel_sent = true;
        let target = Tag::MuxRecv.ud(slot, s.gen);
        self.push(opcode::AsyncCancel::new(target).build().user_data(Tag::Cancel.bare()));
    }

    pub(super) fn mux_on_recv(&mut self, slot: u32, gen: u16, res: i32, flags: u32, now: Instant) {
        let bid = cqueue::buffer_select(flags);
        if let Some(s) = self.msocks.get_gen(slot, gen) {
            if !cqueue::more(flags) {
                s.recv_armed = false;
                s.ops -= 1;
            }
            let (entry, kind, closing, armed, s_paused) = (s.entry as usize, s.kind, s.closing, s.recv_armed, s.paused);
            if closing {
                self.mux_maybe_free(slot);
            } else if s.linger {
                self.mux_linger_on_recv(slot, res);
            } else if let Some(e) = self.mux.entries.get_mut(entry).and_then(|e| e.as_mut()) {
                match kind {
                    MKind::Client(id) => {
                        let tls = self.msocks.get_mut(slot).and_then(|s| s.tls.as_deref_mut());
                        if res > 0 {
                            if let Some(bid) = bid {
                                let data = self.bufs.get(bid, res as usize);
                                match tls {
                                    None => e.session.handle_client_data(id, data, now),
                                    Some(t) => {
                                        tls_io::client_data(t, &mut *e.session, id, data, now, &self.core.stats.tls);
                                        // Handshake records to answer with.
                                        if !t.pending().is_empty() {
                                            self.mux_resend.push(slot);
                                        }
                                    }
                                }
                                self.core.count_bytes(&e.pool, res as usize, 0);
                            }
                        } else if res == 0 {
                            if let Some(t) = tls {
                                tls_io::client_gone(t, &self.core.stats.tls);
                            }
                            e.session.handle_client_eof(id);
                        } else if res != -libc::ENOBUFS && res != -libc::ECANCELED {
                            if let Some(t) = tls {
                                tls_io::client_gone(t, &self.core.stats.tls);
                            }
                            e.session.handle_client_error(id, -res);
                        }
                        if e.session.wants_client_read(id) {
                            // The multishot ended (ENOBUFS, a pause cancel): re-arm.
                            if !armed {
                                self.mux_arm_recv(slot);
                            }
                        } else {
                            // Paused (pending limit, EOF, closing): stop the
                            // recv and re-check after each flush.
                            if !s_paused {
                                e.paused.push(id);
                                self.mux_set_paused(slot, true);
                            }
                            if armed {
                                self.mux_pause_recv(slot);
                            }
                        }
                    }
                    MKind::Backend(b) => {
                        if res > 0 {
                            let (tls, rx) = match self.msocks.get_mut(slot) {
                                Some(s) => (s.tls.as_deref_mut(), s.rx.as_deref_mut()),
                                None => (None, None),
                            };
                            let mut step = Step::Continue;
                            if let (None, Some(rx)) = (bid, rx) {
                                let n = (res as usize).min(rx.capacity() - rx.len());
                                // SAFETY: the kernel wrote `n` bytes into the
                                // spare capacity this recv was given.
                                unsafe { rx.set_len(rx.len() + n) };
                                e.session.handle_backend_rx(b, rx, now);
                            } else if let Some(bid) = bid {
                                let data = self.bufs.get(bid, res as usize);
                                match tls {
                                    None => e.session.handle_backend_data(b, data, now),
                                    Some(t) => {
                                        let stats = &self.core.stats.tls_backend;
                                        step = tls_backend::data(t, &mut *e.session, b, data, now, stats);
                                        // Handshake records, or requests held.
                                        self.mux_resend.push(slot);
                                    }
                                }
                            }
                            if !self.mux_backend_tls_step(slot, entry, b, step, now) && !armed {
                                self.mux_arm_recv(slot);
                            }
                        } else if res == -libc::ENOBUFS {
                            self.mux_arm_recv(slot);
                        } else if res != -libc::ECANCELED {
                            self.mux_backend_gone(slot, entry, b, (res < 0).then_some(-res), now);
                        }
                    }
                }
            }
        }
        if let Some(bid) = bid {
            self.bufs.recycle(bid);
        }
    }
}
