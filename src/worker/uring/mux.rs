//! The io_uring driver's glue for multiplexed pools (redis, memcache,
//! redis_cluster): client and backend sockets of every `PoolSession` on
//! this worker.
//!
//! Owner: the worker's `UringDriver` (an `impl` block of it, over its
//! ring, buffer ring and `MuxPools`, and its `MuxIo` implementation: what
//! it does with a session beyond moving bytes is `worker/mux_drive.rs`;
//! the read path is `mux_recv.rs`).
//! How it drives a session:
//! - every client socket (and TLS backend) has one multishot recv drawing
//!   from the worker's provided buffer ring; the bytes go to the session
//!   and the buffer back to the ring at once (clients own no receive
//!   buffer, so an idle client costs a few hundred bytes);
//! - a plaintext backend has one plain recv at a time, into its own
//!   buffer (`MSock::rx`, at least `sys::RX_SPARE` of room, sized by the
//!   session for a large reply): the session frames replies in place, so
//!   a reply is never copied on its way in;
//! - nothing is sent from an event handler: after each batch of
//!   completions `mux_flush` drains the sessions' intents and dirty
//!   connections, so requests of many clients leave in one send per
//!   backend connection and every send of the batch goes out in one
//!   `io_uring_enter`;
//! - a send copies the session's bytes into the socket's own buffer (the
//!   session's slice is only valid until the next call into it), except
//!   a shared block (`Tx::Block`: a reply of 16 KiB or more), which the
//!   record holds instead; the session learns the result at completion;
//!   one send per socket is in flight at a time.
//!
//! Invariant (as for tcp conns): every SQE that names a socket record
//! bumps its `ops`; a record detached from its session (`closing`) is
//! freed, and its fd closed, only when `ops` is back to zero.

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::Instant;

use io_uring::{opcode, types};

use super::conn::MSock;
use super::tag::Tag;
use super::UringDriver;
use crate::route::PoolSnapshot;
use crate::session::mux::BackendId;
use crate::session::outbuf::Tx;
use crate::worker::mux_drive::{MuxIo, MuxParts};
use crate::worker::mux_pools::MKind;
use crate::worker::sys;
use crate::worker::tls_backend;
use crate::worker::tls_io;

/// Send buffers above this are freed after use, so a client that once got
/// a large reply does not keep the memory while idle. Smaller ones are
/// reused send after send; a client's is freed at the periodic tick when
/// no send is in flight (`mux_tick`), so an idle client holds none.
const KEEP_SEND_CAPACITY: usize = 64 * 1024;

impl UringDriver {
    /// A client accepted on a multiplexed pool's listener.
    pub(super) fn mux_accept(&mut self, pool: &PoolSnapshot, fd: RawFd, plain: bool, now: Instant) {
        if !crate::worker::mux_admit::source_admits(pool, plain, || sys::peer_addr(fd)) {
            sys::close(fd);
            return;
        }
        // Before admission: a TLS session that cannot start is never
        // counted as a client.
        let Ok(tls) = tls_io::accept(pool, plain, now, &self.core.stats.tls) else {
            sys::close(fd);
            return;
        };
        let peer = if crate::worker::ip_limits::needs_peer(pool) { sys::peer_addr(fd) } else { None };
        let Some((idx, rate)) = self.mux_admit(pool, peer) else {
            sys::close(fd);
            return;
        };
        sys::mux_client_options(fd, pool.cfg.shard.as_ref().is_some_and(|s| s.tcpkeepalive));
        let Some(e) = self.mux.get_mut(idx) else { return };
        let local = if e.session.wants_local_addr() { sys::local_addr(fd) } else { None };
        let id = e.session.add_client(local);
        if e.session.wants_client_peer() {
            e.session.set_client_peer(id, sys::peer_addr(fd));
        }
        if let Some(rate) = rate {
            e.session.set_client_rate(id, rate);
        }
        let mut sock = MSock::new(idx as u32, MKind::Client(id), fd);
        sock.tls = tls;
        let slot = self.msocks.insert(sock);
        if let Some(old) = e.set_client_sock(id, slot) {
            self.mux_detach(old);
        }
        self.mux_arm_recv(slot);
    }

    pub(super) fn mux_on_send(&mut self, slot: u32, gen: u16, res: i32, now: Instant) {
        let Some(s) = self.msocks.get_gen(slot, gen) else { return };
        s.ops -= 1;
        s.sending = false;
        s.block = None;
        if s.out.capacity() > KEEP_SEND_CAPACITY {
            s.out = Vec::new();
        }
        let (entry, kind) = (s.entry as usize, s.kind);
        if s.closing {
            return self.mux_maybe_free(slot);
        }
        if s.linger {
            return self.mux_linger_on_send(slot, res);
        }
        let n = res.max(0) as usize;
        let Some(e) = self.mux.entries.get_mut(entry).and_then(|e| e.as_mut()) else { return };
        match kind {
            MKind::Client(id) => {
                match s.tls.as_deref_mut() {
                    None => e.session.handle_client_sent(id, n, now),
                    Some(t) => t.advance(n),
                }
                self.core.count_bytes(&e.pool, 0, n);
                if res < 0 && res != -libc::ECANCELED {
                    e.session.handle_client_error(id, -res);
                } else if e.session.wants_client_read(id) {
                    self.mux_arm_recv(slot);
                }
            }
            MKind::Backend(b) => {
                match s.tls.as_deref_mut() {
                    None => e.session.handle_backend_sent(b, n, now),
                    Some(t) => t.advance(n),
                }
                if res < 0 && res != -libc::ECANCELED {
                    return self.mux_backend_gone(slot, entry, b, Some(-res), now);
                }
            }
        }
        // A partial send, or bytes queued meanwhile: try again in the flush.
        self.mux_resend.push(slot);
    }

    /// Starts a send on `slot` if the session has bytes for it and none is
    /// in flight.
    fn mux_send(&mut self, slot: u32, now: Instant) {
        let Some(s) = self.msocks.get_mut(slot) else { return };
        if s.sending || s.closing || s.linger {
            return;
        }
        let Some(e) = self.mux.entries.get_mut(s.entry as usize).and_then(|e| e.as_mut()) else { return };
        let buf = match s.kind {
            MKind::Client(id) => match s.tls.as_deref_mut() {
                None => e.session.poll_client_transmit(id),
                Some(t) => tls_io::client_transmit(t, &mut *e.session, id, now).map(Tx::Slice),
            },
            MKind::Backend(b) if s.connected => match s.tls.as_deref_mut() {
                None => e.session.poll_backend_transmit(b),
                Some(t) => tls_backend::transmit(t, &mut *e.session, b, now).map(Tx::Slice),
            },
            MKind::Backend(_) => None,
        };
        // The kernel reads the bytes until the completion: from this
        // record's own copy, or from a block this record holds.
        let (ptr, len) = match buf {
            None => return,
            Some(Tx::Slice(buf)) => {
                s.out.clear();
                s.out.extend_from_slice(buf);
                (s.out.as_ptr(), s.out.len())
            }
            Some(Tx::Block(block)) => {
                let block = s.block.insert(Box::new(block));
                (block.as_ptr(), block.len())
            }
        };
        s.sending = true;
        s.ops += 1;
        // A send is at most u32::MAX bytes; the session learns how many went.
        let sqe = opcode::Send::new(types::Fd(s.fd), ptr, len.min(u32::MAX as usize) as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(Tag::MuxSend.ud(slot, s.gen));
        self.push(sqe);
    }

    /// After a batch: applies every session's intents and starts the sends
    /// it has queued, until nothing changes; then re-arms the deadline timer.
    pub(super) fn mux_flush(&mut self, now: Instant) {
        self.mux.enforce_buffer_cap(&self.core);
        self.mux_flush_entries(now);
        let resend = std::mem::take(&mut self.mux_resend);
        for &slot in &resend {
            self.mux_send(slot, now);
        }
        self.mux_resend = resend;
        self.mux_resend.clear();
        // Sends that completed synchronously above may have queued more.
        self.mux_flush_entries(now);
        self.mux.reap();
        self.mux_arm_timer(now);
    }

    /// Clients' send copies go (at the periodic tick); a busy client
    /// allocates its next one (a few times a second at most).
    pub(super) fn mux_free_send_copies(&mut self) {
        for s in self.msocks.iter_mut() {
            if !s.sending && matches!(s.kind, MKind::Client(_)) && s.out.capacity() > 0 {
                s.out = Vec::new();
            }
        }
    }

    /// Periodic: closes TLS clients whose handshake outlived its deadline.
    pub(super) fn mux_expire_handshakes(&mut self, now: Instant) {
        let mut expired = Vec::new();
        for s in self.msocks.iter_mut() {
            if let (MKind::Client(id), Some(t), false) = (s.kind, s.tls.as_deref_mut(), s.closing || s.linger) {
                if t.take_expired(now) {
                    expired.push((s.entry as usize, id));
                }
            }
        }
        tls_io::expire_handshakes(&mut self.mux, &expired, &self.core.stats.tls);
    }

    pub(super) fn mux_idle(&self) -> bool {
        self.msocks.is_empty()
    }
}

impl MuxIo for UringDriver {
    #[inline]
    fn mux_parts(&mut self) -> MuxParts<'_> {
        MuxParts {
            pools: &mut self.mux,
            core: &mut self.core,
            sends: &mut self.mux_sends,
            resumes: &mut self.mux_resumes,
            hold_backends: self.hold_backends,
        }
    }

    #[inline]
    fn io_send(&mut self, slot: u32, now: Instant) {
        self.mux_send(slot, now);
    }

    #[inline]
    fn io_resume_read(&mut self, slot: u32, _now: Instant) {
        self.mux_set_paused(slot, false);
        self.mux_arm_recv(slot);
    }

    /// A TLS client with ciphertext still queued lingers (`linger.rs`).
    #[inline]
    fn io_close(&mut self, slot: u32) {
        if !self.mux_linger(slot) {
            self.mux_detach(slot);
        }
    }

    fn io_connect(&mut self, idx: usize, b: BackendId, addr: SocketAddr, sid: usize) -> Result<(), i32> {
        self.start_connect(idx, b, addr, sid)
    }

    fn io_backend_timed_out(&mut self, slot: u32) {
        self.mux_backend_timed_out(slot);
    }

    /// Each record is freed as its last op completes, and `mux_idle` turns
    /// true.
    fn io_close_remaining(&mut self) {
        for slot in self.msocks.slots() {
            self.mux_detach(slot);
        }
    }
}
