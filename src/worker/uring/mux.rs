//! The io_uring driver's glue for multiplexed pools (redis, memcache,
//! redis_cluster): client and backend sockets of every `PoolSession` on
//! this worker.
//!
//! Owner: the worker's `UringDriver` (a third `impl` block of it, over its
//! ring, buffer ring and `MuxPools`). How it drives a session:
//! - every socket has one multishot recv drawing from the worker's
//!   provided buffer ring; the bytes go to the session and the buffer
//!   back to the ring at once (clients own no receive buffer, so an idle
//!   client costs a few hundred bytes);
//! - nothing is sent from an event handler: after each batch of
//!   completions `mux_flush` drains the sessions' intents and dirty
//!   connections, so requests of many clients leave in one send per
//!   backend connection and every send of the batch goes out in one
//!   `io_uring_enter`;
//! - a send copies the session's bytes into the socket's own buffer (the
//!   session's slice is only valid until the next call into it) and the
//!   session learns the result at completion; one send per socket is in
//!   flight at a time.
//!
//! Invariant (as for tcp conns): every SQE that names a socket record
//! bumps its `ops`; a record detached from its session (`closing`) is
//! freed, and its fd closed, only when `ops` is back to zero.

use std::os::fd::RawFd;
use std::time::Instant;

use io_uring::{cqueue, opcode, types};

use super::{ud, UringDriver, OP_CANCEL, OP_CONNECT, OP_MUX_TIMER, OP_RECV, OP_SEND, SIDE_MUX};
use crate::route::PoolSnapshot;
use crate::session::mux::{BackendId, ClientClose, ClientId, MuxIntent};
use crate::worker::conn::Generational;
use crate::worker::mux_pools::{MKind, NO_SOCK};
use crate::worker::sys;

/// Send buffers above this are freed after use, so a client that once got
/// a large reply does not keep the memory while idle. Smaller ones are
/// reused send after send; a client's is freed at the periodic tick when
/// no send is in flight (`mux_tick`), so an idle client holds none.
const KEEP_SEND_CAPACITY: usize = 64 * 1024;

/// One socket of a multiplexed pool.
pub(super) struct MSock {
    gen: u16,
    /// Index of its `MuxEntry`.
    entry: u32,
    kind: MKind,
    fd: RawFd,
    /// SQEs in the kernel that name this record.
    ops: u32,
    recv_armed: bool,
    cancel_sent: bool,
    sending: bool,
    /// Backends: the connect completed.
    connected: bool,
    /// Detached from the session; freed once `ops` is zero.
    closing: bool,
    /// Clients: listed in the entry's `paused` (reads held by the session).
    paused: bool,
    /// Backend stat id (gauges), for backends.
    stat_id: usize,
    /// The bytes of the send in flight, owned here until it completes.
    out: Vec<u8>,
    /// The connect op's address (backends).
    sockaddr: Option<Box<(libc::sockaddr_storage, libc::socklen_t)>>,
}

impl Generational for MSock {
    fn gen(&self) -> u16 {
        self.gen
    }
    fn set_gen(&mut self, gen: u16) {
        self.gen = gen;
    }
}

impl MSock {
    fn new(entry: u32, kind: MKind, fd: RawFd) -> MSock {
        MSock {
            gen: 0,
            entry,
            kind,
            fd,
            ops: 0,
            recv_armed: false,
            cancel_sent: false,
            sending: false,
            connected: false,
            closing: false,
            paused: false,
            stat_id: 0,
            out: Vec::new(),
            sockaddr: None,
        }
    }
}

impl UringDriver {
    /// A client accepted on a multiplexed pool's listener.
    pub(super) fn mux_accept(&mut self, pool: &PoolSnapshot, fd: RawFd) {
        if let Err(reason) = self.core.admit_mux(pool) {
            tracing::debug!(pool = %pool.cfg.name, ?reason, "client rejected at accept");
            sys::close(fd);
            return;
        }
        let Some(idx) = self.mux.live_entry(&pool.cfg.name) else {
            sys::close(fd);
            self.core.mux_client_closed(pool, ClientClose::Shutdown);
            return;
        };
        sys::mux_client_options(fd, pool.cfg.shard.as_ref().is_some_and(|s| s.tcpkeepalive));
        let Some(e) = self.mux.get_mut(idx) else { return };
        let local = if e.session.wants_local_addr() { sys::local_addr(fd) } else { None };
        let id = e.session.add_client(local);
        let slot = self.msocks.insert(MSock::new(idx as u32, MKind::Client(id), fd));
        if let Some(old) = e.set_client_sock(id, slot) {
            self.mux_detach(old);
        }
        self.mux_arm_recv(slot);
    }

    fn mux_arm_recv(&mut self, slot: u32) {
        let Some(s) = self.msocks.get_mut(slot) else { return };
        if s.recv_armed || s.closing {
            return;
        }
        s.recv_armed = true;
        s.cancel_sent = false;
        s.ops += 1;
        let e = opcode::RecvMulti::new(types::Fd(s.fd), self.bufs.bgid)
            .build()
            .user_data(ud(slot, s.gen, OP_RECV, SIDE_MUX));
        self.push(e);
    }

    fn mux_set_paused(&mut self, slot: u32, paused: bool) {
        if let Some(s) = self.msocks.get_mut(slot) {
            s.paused = paused;
        }
    }

    /// Stops a client's multishot recv while its session pauses it.
    fn mux_pause_recv(&mut self, slot: u32) {
        let Some(s) = self.msocks.get_mut(slot) else { return };
        if !s.recv_armed || s.cancel_sent {
            return;
        }
        s.cancel_sent = true;
        let target = ud(slot, s.gen, OP_RECV, SIDE_MUX);
        self.push(opcode::AsyncCancel::new(target).build().user_data(ud(0, 0, OP_CANCEL, 0)));
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
            } else if let Some(e) = self.mux.entries.get_mut(entry).and_then(|e| e.as_mut()) {
                match kind {
                    MKind::Client(id) => {
                        if res > 0 {
                            if let Some(bid) = bid {
                                e.session.handle_client_data(id, self.bufs.get(bid, res as usize), now);
                                self.core.count_bytes(&e.pool, res as usize, 0);
                            }
                        } else if res == 0 {
                            e.session.handle_client_eof(id);
                        } else if res != -libc::ENOBUFS && res != -libc::ECANCELED {
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
                            if let Some(bid) = bid {
                                e.session.handle_backend_data(b, self.bufs.get(bid, res as usize), now);
                            }
                            if !armed {
                                self.mux_arm_recv(slot);
                            }
                        } else if res == -libc::ENOBUFS {
                            self.mux_arm_recv(slot);
                        } else if res != -libc::ECANCELED {
                            let errno = (res < 0).then_some(-res);
                            e.backends.remove(&b);
                            self.mux_detach(slot);
                            let Some(e) = self.mux.get_mut(entry) else { return };
                            e.session.handle_backend_closed(b, errno, now);
                        }
                    }
                }
            }
        }
        if let Some(bid) = bid {
            self.bufs.recycle(bid);
        }
    }

    pub(super) fn mux_on_send(&mut self, slot: u32, gen: u16, res: i32, now: Instant) {
        let Some(s) = self.msocks.get_gen(slot, gen) else { return };
        s.ops -= 1;
        s.sending = false;
        if s.out.capacity() > KEEP_SEND_CAPACITY {
            s.out = Vec::new();
        }
        let (entry, kind) = (s.entry as usize, s.kind);
        if s.closing {
            return self.mux_maybe_free(slot);
        }
        let n = res.max(0) as usize;
        let Some(e) = self.mux.get_mut(entry) else { return };
        match kind {
            MKind::Client(id) => {
                e.session.handle_client_sent(id, n, now);
                self.core.count_bytes(&e.pool, 0, n);
                if res < 0 && res != -libc::ECANCELED {
                    e.session.handle_client_error(id, -res);
                } else if e.session.wants_client_read(id) {
                    self.mux_arm_recv(slot);
                }
            }
            MKind::Backend(b) => {
                e.session.handle_backend_sent(b, n, now);
                if res < 0 && res != -libc::ECANCELED {
                    e.backends.remove(&b);
                    self.mux_detach(slot);
                    let Some(e) = self.mux.get_mut(entry) else { return };
                    e.session.handle_backend_closed(b, Some(-res), now);
                    return;
                }
            }
        }
        // A partial send, or bytes queued meanwhile: try again in the flush.
        self.mux_resend.push(slot);
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
            self.core.mux_connect_failed(sid);
            if let Some(e) = self.mux.get_mut(entry) {
                e.backends.remove(&b);
            }
            self.mux_detach(slot);
            if let Some(e) = self.mux.get_mut(entry) {
                e.session.handle_backend_connect_failed(b, -res, now);
            }
        }
    }

    /// Detaches a socket from its session: cancels what is in flight and
    /// frees the record (closing the fd) once the kernel is done with it.
    fn mux_detach(&mut self, slot: u32) {
        let Some(s) = self.msocks.get_mut(slot) else { return };
        if s.closing {
            return;
        }
        s.closing = true;
        if s.connected {
            s.connected = false;
            self.core.mux_backend_closed(s.stat_id);
        }
        if s.ops > 0 {
            let e = opcode::AsyncCancel2::new(types::CancelBuilder::fd(types::Fd(s.fd)).all())
                .build()
                .user_data(ud(0, 0, OP_CANCEL, 0));
            self.push(e);
        }
        self.mux_maybe_free(slot);
    }

    fn mux_maybe_free(&mut self, slot: u32) {
        if self.msocks.get_mut(slot).is_some_and(|s| s.closing && s.ops == 0) {
            if let Some(s) = self.msocks.remove(slot) {
                sys::close(s.fd);
            }
        }
    }

    /// Opens a socket to backend `b` of entry `idx` and submits its connect.
    fn mux_connect(&mut self, idx: usize, b: BackendId, now: Instant) {
        let Some(e) = self.mux.get_mut(idx) else { return };
        if let Some(old) = e.backends.remove(&b) {
            self.mux_detach(old);
        }
        let Some(e) = self.mux.get_mut(idx) else { return };
        let addr = e.session.backend_addr(b);
        let sid = e.session.server_stat_id(b.server).unwrap_or(usize::MAX);
        let fd = match addr.map(|a| sys::tcp_socket(&a, true)) {
            Some(Ok(fd)) => fd,
            Some(Err(err)) => {
                self.core.mux_connect_failed(sid);
                return e.session.handle_backend_connect_failed(b, err.raw_os_error().unwrap_or(libc::EIO), now);
            }
            None => return e.session.handle_backend_connect_failed(b, libc::EHOSTUNREACH, now),
        };
        let Some(addr) = addr else { return };
        let mut s = MSock::new(idx as u32, MKind::Backend(b), fd);
        s.stat_id = sid;
        let sa = socket2::SockAddr::from(addr);
        // SAFETY: all-zero is a valid sockaddr_storage; SockAddr holds `len`
        // valid bytes of one.
        let mut stored: Box<(libc::sockaddr_storage, libc::socklen_t)> = Box::new((unsafe { std::mem::zeroed() }, 0));
        unsafe {
            std::ptr::copy_nonoverlapping(
                sa.as_ptr() as *const u8,
                &mut stored.0 as *mut _ as *mut u8,
                sa.len() as usize,
            );
        }
        stored.1 = sa.len();
        let ptr = (&stored.0 as *const libc::sockaddr_storage).cast::<libc::sockaddr>();
        let len = stored.1;
        s.sockaddr = Some(stored);
        s.ops = 1;
        let slot = self.msocks.insert(s);
        e.backends.insert(b, slot);
        let gen = self.msocks.get_mut(slot).map_or(0, |s| s.gen);
        // SAFETY (via push): the address lives in the boxed record until ops == 0.
        let sqe = opcode::Connect::new(types::Fd(fd), ptr, len).build().user_data(ud(slot, gen, OP_CONNECT, SIDE_MUX));
        self.push(sqe);
    }

    /// Starts a send on `slot` if the session has bytes for it and none is
    /// in flight.
    fn mux_send(&mut self, slot: u32) {
        let Some(s) = self.msocks.get_mut(slot) else { return };
        if s.sending || s.closing {
            return;
        }
        let Some(e) = self.mux.entries.get_mut(s.entry as usize).and_then(|e| e.as_mut()) else { return };
        let buf = match s.kind {
            MKind::Client(id) => e.session.poll_client_transmit(id),
            MKind::Backend(b) if s.connected => e.session.poll_backend_transmit(b),
            MKind::Backend(_) => None,
        };
        let Some(buf) = buf else { return };
        s.out.clear();
        s.out.extend_from_slice(buf);
        s.sending = true;
        s.ops += 1;
        let sqe = opcode::Send::new(types::Fd(s.fd), s.out.as_ptr(), s.out.len() as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(ud(slot, s.gen, OP_SEND, SIDE_MUX));
        self.push(sqe);
    }

    /// After a batch: applies every session's intents and starts the sends
    /// it has queued, until nothing changes; then re-arms the deadline timer.
    pub(super) fn mux_flush(&mut self, now: Instant) {
        self.mux.enforce_buffer_cap(&self.core);
        for idx in 0..self.mux.len() {
            self.mux_flush_entry(idx, now);
        }
        let resend = std::mem::take(&mut self.mux_resend);
        for &slot in &resend {
            self.mux_send(slot);
        }
        self.mux_resend = resend;
        self.mux_resend.clear();
        // Sends that completed synchronously above may have queued more.
        for idx in 0..self.mux.len() {
            self.mux_flush_entry(idx, now);
        }
        self.mux.reap();
        self.mux_arm_timer(now);
    }

    fn mux_flush_entry(&mut self, idx: usize, now: Instant) {
        for _ in 0..64 {
            let mut progress = false;
            while let Some(intent) = self.mux.get_mut(idx).and_then(|e| e.session.poll_intent()) {
                progress = true;
                self.mux_intent(idx, intent, now);
            }
            let Some(e) = self.mux.get_mut(idx) else { return };
            let (mut sends, mut resumes) = (std::mem::take(&mut self.mux_sends), std::mem::take(&mut self.mux_resumes));
            while let Some(b) = e.session.poll_dirty_backend() {
                sends.extend(e.backends.get(&b).copied());
            }
            while let Some(c) = e.session.poll_dirty_client() {
                sends.push(e.client_sock(c));
            }
            let mut i = 0;
            while i < e.paused.len() {
                let id = e.paused[i];
                let sock = e.client_sock(id);
                if sock == NO_SOCK || e.session.wants_client_read(id) {
                    e.paused.swap_remove(i);
                    if sock != NO_SOCK {
                        resumes.push(sock);
                    }
                } else {
                    i += 1;
                }
            }
            progress |= !sends.is_empty() || !resumes.is_empty();
            for &slot in sends.iter().filter(|&&s| s != NO_SOCK) {
                self.mux_send(slot);
            }
            for &slot in &resumes {
                self.mux_set_paused(slot, false);
                self.mux_arm_recv(slot);
            }
            sends.clear();
            resumes.clear();
            (self.mux_sends, self.mux_resumes) = (sends, resumes);
            if let Some(e) = self.mux.entries.get_mut(idx).and_then(|e| e.as_mut()) {
                e.report_recoveries(&self.core);
            }
            if !progress {
                return;
            }
        }
    }

    fn mux_intent(&mut self, idx: usize, intent: MuxIntent, now: Instant) {
        match intent {
            MuxIntent::Connect(b) => self.mux_connect(idx, b, now),
            MuxIntent::CloseBackend(b) => {
                if let Some(slot) = self.mux.get_mut(idx).and_then(|e| e.backends.remove(&b)) {
                    self.mux_detach(slot);
                }
            }
            MuxIntent::CloseClient(id, why) => {
                let Some(e) = self.mux.get_mut(idx) else { return };
                let slot = e.clear_client_sock(id);
                let pool = e.pool.clone();
                self.core.mux_client_closed(&pool, why);
                if slot != NO_SOCK {
                    self.mux_detach(slot);
                }
            }
            MuxIntent::ServerFailed { server, errno } => {
                if let Some(e) = self.mux.entries.get_mut(idx).and_then(|e| e.as_mut()) {
                    e.report_failed(&self.core, server, errno);
                }
            }
            MuxIntent::Report(report) => {
                if let Some(e) = self.mux.entries.get(idx).and_then(|e| e.as_ref()) {
                    e.report_cluster(&self.core, report);
                }
            }
        }
    }

    /// Arms a one-shot timeout for the earliest session deadline, unless one
    /// at least as early is armed already.
    fn mux_arm_timer(&mut self, now: Instant) {
        let Some(d) = self.mux.next_deadline() else { return };
        if self.mux_timer.is_some_and(|(t, _)| t <= d) {
            return;
        }
        let seq = self.mux_timer.map_or(0, |(_, s)| s.wrapping_add(1));
        self.mux_timer = Some((d, seq));
        let wait = d.saturating_duration_since(now);
        *self.mux_ts = types::Timespec::from(wait);
        let sqe = opcode::Timeout::new(&*self.mux_ts).build().user_data(ud(seq, 0, OP_MUX_TIMER, 0));
        self.push(sqe);
    }

    /// The deadline timer (`seq`) or the periodic tick fired: check every
    /// session's deadlines.
    pub(super) fn mux_tick(&mut self, seq: Option<u32>, now: Instant) {
        if let (Some(seq), Some((_, armed))) = (seq, self.mux_timer) {
            if seq == armed {
                self.mux_timer = None;
            }
        }
        for e in self.mux.entries.iter_mut().flatten() {
            e.session.handle_tick(now);
        }
        if seq.is_none() {
            self.mux.export_stats(&self.core);
            // Clients' send copies go; a busy client allocates its next
            // one (a few times a second at most).
            for s in self.msocks.iter_mut() {
                if !s.sending && matches!(s.kind, MKind::Client(_)) && s.out.capacity() > 0 {
                    s.out = Vec::new();
                }
            }
        }
        self.mux_flush(now);
    }

    /// The drain deadline passed (or no client is left): closes every
    /// client and backend socket of every session.
    pub(super) fn mux_close_all(&mut self, now: Instant) {
        for idx in 0..self.mux.len() {
            let Some(e) = self.mux.get_mut(idx) else { continue };
            let clients: Vec<ClientId> = e.client_socks().map(|(id, _)| id).collect();
            for id in clients {
                e.session.close_client(id, ClientClose::Shutdown);
            }
            self.mux_flush_entry(idx, now);
            let Some(e) = self.mux.get_mut(idx) else { continue };
            let backends: Vec<u32> = e.backends.drain().map(|(_, s)| s).collect();
            for slot in backends {
                self.mux_detach(slot);
            }
        }
        // The drain is over: drop the sessions, so none opens another
        // connection (a cluster session reconnects to nodes it lost), and
        // detach whatever socket is left. Each record is freed as its last
        // op completes, and `mux_idle` turns true.
        self.mux.entries.clear();
        for slot in self.msocks.slots() {
            self.mux_detach(slot);
        }
    }

    pub(super) fn mux_idle(&self) -> bool {
        self.msocks.is_empty()
    }
}
