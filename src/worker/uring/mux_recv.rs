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
//!   what the kernel wrote, never more than the spare room it was given;
//! - such a backend that got nothing between two periodic ticks, with no
//!   partial reply held, is parked: its recv is cancelled, its buffer
//!   released, and a one-shot readiness poll (`Tag::MuxPark`) armed in
//!   its place; readiness re-arms the recv with a new buffer. So an idle
//!   backend connection, like an idle client, holds no receive buffer.

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
                            self.pass_requests = true;
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
                        let parking = self.msocks.get_mut(slot).is_some_and(|s| {
                            s.rx_used |= res > 0;
                            std::mem::take(&mut s.parking)
                        });
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
                        } else if res == -libc::ECANCELED && parking {
                            self.mux_park(slot);
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

    /// At the periodic tick: cancels the recv of every plaintext backend
    /// that got nothing since the last tick and holds no partial reply;
    /// its completion (`ECANCELED`) parks it (`mux_park`).
    pub(super) fn mux_park_idle_backends(&mut self) {
        let mut cancel = Vec::new();
        for (slot, s) in self.msocks.iter_slots_mut() {
            if !matches!(s.kind, MKind::Backend(_)) || s.tls.is_some() || s.closing || s.linger {
                continue;
            }
            if std::mem::take(&mut s.rx_used) || !s.recv_armed || s.parking || s.parked {
                continue;
            }
            if s.rx.as_deref().is_some_and(|rx| rx.is_empty()) {
                s.parking = true;
                cancel.push(Tag::MuxRecv.ud(slot, s.gen));
            }
        }
        for target in cancel {
            self.push(opcode::AsyncCancel::new(target).build().user_data(Tag::Cancel.bare()));
        }
    }

    /// An idle backend's recv was cancelled: releases its buffer and arms a
    /// readiness poll in its place.
    fn mux_park(&mut self, slot: u32) {
        let Some(s) = self.msocks.get_mut(slot) else { return };
        if s.rx.as_deref().is_some_and(|rx| !rx.is_empty()) {
            return self.mux_arm_recv(slot);
        }
        s.rx = None;
        crate::purge::released();
        s.parked = true;
        s.recv_armed = true;
        s.ops += 1;
        let e =
            opcode::PollAdd::new(types::Fd(s.fd), libc::POLLIN as u32).build().user_data(Tag::MuxPark.ud(slot, s.gen));
        self.push(e);
    }

    /// A parked backend is readable (data, EOF or an error): its recv goes
    /// back, with a new buffer, and reports what it finds.
    pub(super) fn mux_on_park(&mut self, slot: u32, gen: u16) {
        let Some(s) = self.msocks.get_gen(slot, gen) else { return };
        s.ops -= 1;
        s.recv_armed = false;
        s.parked = false;
        if s.closing {
            self.mux_maybe_free(slot);
        } else {
            self.mux_arm_recv(slot);
        }
    }
}
