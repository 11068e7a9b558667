//! The per-connection half of the io_uring driver: backend connect with a
//! linked timeout, recv/send completions, and turning a session's intents
//! into SQEs.
//!
//! Owner: the worker's `UringDriver` (this is a second `impl` block of it).
//! Invariant, as in the parent module: every SQE referencing a `Conn` bumps
//! `Conn::ops`, and `maybe_finish` frees the conn only at zero.

use std::time::Instant;

use io_uring::{cqueue, opcode, squeue, types};

use super::tag::Tag;
use super::UringDriver;
use crate::session::{Intent, Side};
use crate::worker::relay::RelayIo;
use crate::worker::relay_tls;
use crate::worker::sys;

impl UringDriver {
    /// Opens a socket to the conn's current backend and submits a connect
    /// linked to its timeout.
    pub(super) fn connect(&mut self, slot: u32) {
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        let addr = c.r.pool.backends[c.r.backend as usize].spec.addr;
        c.r.attempts += 1;
        let fd = match sys::tcp_socket(&addr, true) {
            Ok(fd) => fd,
            Err(e) => {
                c.r.session.handle_connect_failed(e.raw_os_error().unwrap_or(libc::EIO), false);
                return;
            }
        };
        c.fds[1] = fd;
        let (sa, len) = c.set_sockaddr(addr);
        let ts = &*c.connect_ts as *const types::Timespec;
        *c.connect_ts = types::Timespec::from(c.r.pool.cfg.connect_timeout);
        c.ops += 2;
        let gen = c.gen;
        let e = opcode::Connect::new(types::Fd(fd), sa, len)
            .build()
            .flags(squeue::Flags::IO_LINK)
            .user_data(Tag::Connect.ud(slot, gen));
        // SAFETY: `ts` points into the boxed Conn field that lives until ops == 0.
        let t = opcode::LinkTimeout::new(ts).build().user_data(Tag::LinkTimeout.ud(slot, gen));
        self.push(e);
        self.push(t);
    }
    pub(super) fn on_connect(&mut self, slot: u32, gen: u16, res: i32, now: Instant) {
        let Some(c) = self.conns.get_gen(slot, gen) else {
            return;
        };
        c.ops -= 1;
        if c.closing.is_some() {
            return self.maybe_finish(slot);
        }
        if res == 0 {
            c.r.session.handle_connected(now);
            relay_tls::connected(&mut c.r, now, &*self.core.stats);
            c.r.backend_counted = true;
            let (pool, b) = (c.r.pool.clone(), c.r.backend);
            self.core.backend_opened(&pool, b);
        } else {
            // ECANCELED here means the linked timeout fired.
            let errno = if res == -libc::ECANCELED { libc::ETIMEDOUT } else { -res };
            sys::close(c.fds[1]);
            c.fds[1] = -1;
            self.relay_connect_failed(slot, errno, now);
        }
        self.pump(slot, now);
    }
    pub(super) fn on_recv(&mut self, slot: u32, gen: u16, side: Side, res: i32, flags: u32, now: Instant) {
        let bid = cqueue::buffer_select(flags);
        let mut route = None;
        if let Some(c) = self.conns.get_gen(slot, gen) {
            if !cqueue::more(flags) {
                c.recv_armed[side as usize] = false;
                c.cancel_sent[side as usize] = false;
                c.ops -= 1;
            }
            if res > 0 {
                if let Some(bid) = bid {
                    let data = self.bufs.get(bid, res as usize);
                    relay_tls::data(&mut c.r, side, data, now, &*self.core.stats);
                    if c.r.session.is_mongo() {
                        route = c.r.session.take_route();
                        self.core.record_mongo(&c.r.pool, c.r.backend, &mut c.r.session);
                    }
                    let pool = &c.r.pool;
                    match side {
                        Side::Client => {
                            self.core.count_bytes(pool, res as usize, 0);
                            if c.r.session.is_mongo() {
                                self.core.limit_mongo(pool, &mut c.r.session, res as usize, now);
                            }
                        }
                        Side::Backend => {}
                    }
                }
            } else if res == 0 {
                relay_tls::eof(&mut c.r, side, &*self.core.stats);
            } else if res != -libc::ENOBUFS && res != -libc::ECANCELED {
                relay_tls::error(&mut c.r, side, -res, &*self.core.stats);
            }
        }
        if let Some(bid) = bid {
            self.bufs.recycle(bid);
        }
        if let Some(meta) = route {
            self.route_deferred(slot, meta, now);
        }
        self.pump(slot, now);
    }
    pub(super) fn on_send(&mut self, slot: u32, gen: u16, side: Side, res: i32, now: Instant) {
        let Some(c) = self.conns.get_gen(slot, gen) else {
            return;
        };
        c.ops -= 1;
        if res >= 0 {
            relay_tls::sent(&mut c.r, side, res as usize, now);
            if side == Side::Client {
                let pool = c.r.pool.clone();
                self.core.count_bytes(&pool, 0, res as usize);
            }
        } else {
            relay_tls::sent(&mut c.r, side, 0, now);
            if res != -libc::ECANCELED {
                relay_tls::error(&mut c.r, side, -res, &*self.core.stats);
            }
        }
        self.pump(slot, now);
    }
    pub(super) fn op_done(&mut self, slot: u32, gen: u16) {
        if let Some(c) = self.conns.get_gen(slot, gen) {
            c.ops -= 1;
            self.maybe_finish(slot);
        }
    }
    /// Turns the session's intents into SQEs.
    pub(super) fn pump(&mut self, slot: u32, now: Instant) {
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        if c.closing.is_some() {
            return self.maybe_finish(slot);
        }
        let mut close_fds = None;
        while let Some(intent) = c.r.session.poll_intent() {
            match intent {
                Intent::ShutdownWrite(side) => {
                    // A TLS side sends close_notify instead (below).
                    if relay_tls::shutdown_write(&mut c.r, side) {
                        sys::shutdown_write(c.fds[side as usize]);
                    }
                }
                Intent::Close(reason) => {
                    c.closing = Some(reason);
                    close_fds = Some(c.fds);
                    break;
                }
            }
        }
        if let Some(fds) = close_fds {
            // Cancel everything in flight on both sockets; the conn is freed
            // when the last of those completions arrives.
            for fd in fds.into_iter().filter(|&fd| fd >= 0) {
                let e = opcode::AsyncCancel2::new(types::CancelBuilder::fd(types::Fd(fd)).all())
                    .build()
                    .user_data(Tag::Cancel.bare());
                self.push(e);
            }
            self.remove_timer(slot);
            return self.maybe_finish(slot);
        }
        let mut sqes: [Option<squeue::Entry>; 4] = [None, None, None, None];
        let gen = c.gen;
        for side in [Side::Client, Side::Backend] {
            let s = side as usize;
            let fd = c.fds[s];
            if let Some(buf) = relay_tls::transmit_pinned(&mut c.r, side, now) {
                let e = opcode::Send::new(types::Fd(fd), buf.as_ptr(), buf.len() as u32)
                    .flags(libc::MSG_NOSIGNAL)
                    .build()
                    .user_data(Tag::Send(side).ud(slot, gen));
                c.ops += 1;
                sqes[s * 2] = Some(e);
            }
            let wants = relay_tls::wants_read(&c.r, side);
            if wants && !c.recv_armed[s] {
                c.recv_armed[s] = true;
                c.ops += 1;
                let e = opcode::RecvMulti::new(types::Fd(fd), self.bufs.bgid)
                    .build()
                    .user_data(Tag::Recv(side).ud(slot, gen));
                sqes[s * 2 + 1] = Some(e);
            } else if !wants && c.recv_armed[s] && !c.cancel_sent[s] {
                c.cancel_sent[s] = true;
                let target = Tag::Recv(side).ud(slot, gen);
                sqes[s * 2 + 1] = Some(opcode::AsyncCancel::new(target).build().user_data(Tag::Cancel.bare()));
            }
        }
        for e in sqes.into_iter().flatten() {
            self.push(e);
        }
        self.sync_timer(slot, now);
    }
    /// Frees a closing connection once the kernel holds no reference to it.
    pub(super) fn maybe_finish(&mut self, slot: u32) {
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        let Some(reason) = c.closing else { return };
        if c.ops > 0 {
            return;
        }
        let Some(c) = self.conns.remove(slot) else {
            return;
        };
        for fd in c.fds {
            if fd >= 0 {
                sys::close(fd);
            }
        }
        if c.r.backend_counted {
            self.core.backend_closed(&c.r.pool, c.r.backend);
        }
        self.core.client_closed(&c.r.pool, reason);
    }
}

impl RelayIo for UringDriver {
    type Rec = super::conn::Conn;

    #[inline]
    fn relay_parts(&mut self) -> (&mut crate::worker::slab::Slab<Self::Rec>, &mut crate::worker::core::WorkerCore) {
        (&mut self.conns, &mut self.core)
    }

    #[inline]
    fn io_connect(&mut self, slot: u32) {
        self.connect(slot);
    }

    #[inline]
    fn io_pump(&mut self, slot: u32, now: Instant) {
        self.pump(slot, now);
    }
}
