//! The io_uring driver: one ring per worker, multishot accept and recv, a
//! provided buffer ring, batched submissions and linked connect timeouts.
//!
//! Owner: one worker thread owns the ring, the buffer ring, every socket it
//! accepted or opened, and each connection's buffers. Invariants:
//! - every SQE that references a connection's memory (send buffers, the
//!   connect sockaddr) is counted in `Conn::ops`; a connection's fds are
//!   closed and its memory freed only when that count is back to zero;
//! - user_data carries the slot *and* its generation, so a late completion
//!   for a freed slot is recognised and ignored (its buffer still recycled);
//! - the snapshot is swapped only at the top of a loop pass.

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use super::bufring::BufRing;
use super::conn::{Conn, Slab};
use super::core::{client_key, WorkerCore};
use super::sys;
use crate::config::Balance;
use crate::route::{Listener, PoolSnapshot};
use crate::session::{CloseReason, Intent, Side, TcpSession};

const OP_ACCEPT: u8 = 1;
const OP_RECV: u8 = 2;
const OP_SEND: u8 = 3;
const OP_CONNECT: u8 = 4;
const OP_LINK_TIMEOUT: u8 = 5;
const OP_CANCEL: u8 = 6;
const OP_WAKE: u8 = 7;
const OP_TICK: u8 = 8;

/// Provided buffers per worker and their size: 1024 x 16 KiB = 16 MiB.
const BUF_ENTRIES: u16 = 1024;
const BUF_SIZE: usize = 16 * 1024;
const TICK: Duration = Duration::from_millis(250);
/// Connect attempts per client (first try plus retries on other backends).
const MAX_CONNECT_ATTEMPTS: u8 = 3;

#[inline]
fn ud(slot: u32, gen: u16, op: u8, side: u8) -> u64 {
    (slot as u64) << 32 | (gen as u64) << 16 | (op as u64) << 8 | side as u64
}

#[inline]
fn ud_parts(u: u64) -> (u32, u16, u8, u8) {
    ((u >> 32) as u32, (u >> 16) as u16, (u >> 8) as u8, u as u8)
}

/// A listener this worker has (or had) a multishot accept armed on.
struct Armed {
    pool: Arc<PoolSnapshot>,
    listener: Arc<Listener>,
    armed: bool,
    /// No longer wanted: cancelled, dropped once its last CQE arrives.
    retired: bool,
}

pub struct UringDriver {
    // Field order matters for Drop: the ring goes before the buffer memory.
    ring: IoUring,
    bufs: BufRing,
    core: WorkerCore,
    conns: Slab,
    listeners: Vec<Option<Armed>>,
    wake_fd: RawFd,
    wake_buf: Box<u64>,
    tick_ts: Box<types::Timespec>,
    cqes: Vec<(u64, i32, u32)>,
}

/// Builds a ring with SINGLE_ISSUER + DEFER_TASKRUN, falling back to a
/// plain ring on kernels without them.
pub fn new_ring() -> io::Result<IoUring> {
    let mut b = IoUring::builder();
    b.setup_single_issuer().setup_defer_taskrun().setup_cqsize(16384).setup_submit_all();
    match b.build(2048) {
        Ok(r) => Ok(r),
        Err(_) => IoUring::builder().setup_cqsize(16384).build(2048),
    }
}

impl UringDriver {
    pub fn new(core: WorkerCore, wake_fd: RawFd) -> io::Result<Self> {
        let ring = new_ring()?;
        let bufs = BufRing::new(&ring, BUF_ENTRIES, BUF_SIZE, 0)?;
        Ok(UringDriver {
            ring,
            bufs,
            core,
            conns: Slab::default(),
            listeners: Vec::new(),
            wake_fd,
            wake_buf: Box::new(0),
            tick_ts: Box::new(types::Timespec::from(TICK)),
            cqes: Vec::with_capacity(1024),
        })
    }

    fn push(&mut self, e: squeue::Entry) {
        // SAFETY: every pointer in `e` refers to memory that outlives the op
        // (see the module invariants).
        unsafe {
            while self.ring.submission().push(&e).is_err() {
                if let Err(err) = self.ring.submit() {
                    tracing::error!(%err, "io_uring submit failed");
                }
            }
        }
    }

    /// Runs until the worker has drained after shutdown.
    pub fn run(mut self) -> io::Result<()> {
        self.arm_wake();
        self.arm_tick();
        self.sync_listeners();
        loop {
            let now = Instant::now();
            if self.core.refresh(now) {
                self.sync_listeners();
            }
            if self.core.drain_done(now) {
                self.close_all(CloseReason::Shutdown);
                if self.conns.is_empty() {
                    return Ok(());
                }
            }
            self.bufs.publish();
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) || e.raw_os_error() == Some(libc::EBUSY) => {}
                Err(e) => return Err(e),
            }
            self.cqes.clear();
            self.cqes.extend(self.ring.completion().map(|c| (c.user_data(), c.result(), c.flags())));
            let now = Instant::now();
            for i in 0..self.cqes.len() {
                let (u, res, flags) = self.cqes[i];
                self.dispatch(u, res, flags, now);
            }
        }
    }

    fn dispatch(&mut self, u: u64, res: i32, flags: u32, now: Instant) {
        let (slot, gen, op, side) = ud_parts(u);
        match op {
            OP_ACCEPT => self.on_accept(slot as usize, res, flags, now),
            OP_RECV => self.on_recv(slot, gen, side, res, flags, now),
            OP_SEND => self.on_send(slot, gen, side, res, now),
            OP_CONNECT => self.on_connect(slot, gen, res, now),
            OP_LINK_TIMEOUT => self.op_done(slot, gen),
            OP_WAKE => self.arm_wake(),
            OP_TICK => self.on_tick(now),
            _ => {} // OP_CANCEL: nothing to do.
        }
    }

    fn arm_wake(&mut self) {
        let buf = (&mut *self.wake_buf) as *mut u64 as *mut u8;
        let e = opcode::Read::new(types::Fd(self.wake_fd), buf, 8).build().user_data(ud(0, 0, OP_WAKE, 0));
        self.push(e);
    }

    fn arm_tick(&mut self) {
        let e = opcode::Timeout::new(&*self.tick_ts).build().user_data(ud(0, 0, OP_TICK, 0));
        self.push(e);
    }

    /// Arms accepts on listeners the snapshot wants and cancels the rest.
    fn sync_listeners(&mut self) {
        let wanted = self.core.wanted_listeners();
        for i in 0..self.listeners.len() {
            let Some(a) = self.listeners[i].as_mut() else {
                continue;
            };
            match wanted.iter().find(|(_, l)| l.id == a.listener.id) {
                Some((p, _)) => a.pool = p.clone(), // same socket, newer pool view
                None if !a.retired => {
                    a.retired = true;
                    let target = ud(i as u32, 0, OP_ACCEPT, 0);
                    let e = opcode::AsyncCancel::new(target).build().user_data(ud(0, 0, OP_CANCEL, 0));
                    self.push(e);
                }
                None => {}
            }
        }
        for (p, l) in wanted {
            if !self.listeners.iter().flatten().any(|a| a.listener.id == l.id) {
                let a = Armed { pool: p, listener: l, armed: false, retired: false };
                let idx = match self.listeners.iter().position(Option::is_none) {
                    Some(i) => {
                        self.listeners[i] = Some(a);
                        i
                    }
                    None => {
                        self.listeners.push(Some(a));
                        self.listeners.len() - 1
                    }
                };
                self.arm_accept(idx);
            }
        }
    }

    fn arm_accept(&mut self, idx: usize) {
        let Some(a) = self.listeners[idx].as_mut() else {
            return;
        };
        a.armed = true;
        let fd = types::Fd(sys::raw(&*a.listener));
        let e =
            opcode::AcceptMulti::new(fd).flags(libc::SOCK_CLOEXEC).build().user_data(ud(idx as u32, 0, OP_ACCEPT, 0));
        self.push(e);
    }

    fn on_accept(&mut self, idx: usize, res: i32, flags: u32, now: Instant) {
        let Some(a) = self.listeners.get_mut(idx).and_then(|a| a.as_mut()) else {
            if res >= 0 {
                sys::close(res);
            }
            return;
        };
        let pool = a.pool.clone();
        let retired = a.retired;
        if !cqueue::more(flags) {
            a.armed = false;
            if retired {
                self.listeners[idx] = None;
            }
        }
        if res < 0 {
            if res != -libc::ECANCELED {
                tracing::warn!(pool = %pool.cfg.name, err = %io::Error::from_raw_os_error(-res), "accept failed");
            }
        } else if retired {
            sys::close(res);
        } else {
            self.start_session(pool, res, now);
        }
        if let Some(a) = self.listeners.get(idx).and_then(|a| a.as_ref()) {
            if !a.armed && !a.retired {
                self.arm_accept(idx);
            }
        }
    }

    fn start_session(&mut self, pool: Arc<PoolSnapshot>, fd: RawFd, now: Instant) {
        let key = if pool.cfg.balance == Balance::ClientIp { client_key(sys::peer_addr(fd)) } else { Vec::new() };
        let backend = match self.core.admit(&pool, &key) {
            Ok(b) => b,
            Err(reason) => {
                tracing::debug!(pool = %pool.cfg.name, ?reason, "client rejected at accept");
                sys::close(fd);
                return;
            }
        };
        sys::set_nodelay(fd);
        let session = TcpSession::new(WorkerCore::limits(&pool), now);
        let slot = self.conns.insert(Conn::new(pool, key, backend, fd, session));
        self.connect(slot);
        self.pump(slot, now);
    }

    /// Opens a socket to the conn's current backend and submits a connect
    /// linked to its timeout.
    fn connect(&mut self, slot: u32) {
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        let addr = c.pool.backends[c.backend as usize].spec.addr;
        c.attempts += 1;
        let fd = match sys::tcp_socket(&addr, true) {
            Ok(fd) => fd,
            Err(e) => {
                c.session.handle_connect_failed(e.raw_os_error().unwrap_or(libc::EIO), false);
                return;
            }
        };
        c.fds[1] = fd;
        let (sa, len) = c.set_sockaddr(addr);
        let ts = &*c.connect_ts as *const types::Timespec;
        *c.connect_ts = types::Timespec::from(c.pool.cfg.connect_timeout);
        c.ops += 2;
        let gen = c.gen;
        let e = opcode::Connect::new(types::Fd(fd), sa, len)
            .build()
            .flags(squeue::Flags::IO_LINK)
            .user_data(ud(slot, gen, OP_CONNECT, 1));
        // SAFETY: `ts` points into the boxed Conn field that lives until ops == 0.
        let t = opcode::LinkTimeout::new(ts).build().user_data(ud(slot, gen, OP_LINK_TIMEOUT, 1));
        self.push(e);
        self.push(t);
    }

    fn on_connect(&mut self, slot: u32, gen: u16, res: i32, now: Instant) {
        let Some(c) = self.conns.get_gen(slot, gen) else {
            return;
        };
        c.ops -= 1;
        if c.closing.is_some() {
            return self.maybe_finish(slot);
        }
        if res == 0 {
            c.session.handle_connected(now);
            c.backend_counted = true;
            let (pool, b) = (c.pool.clone(), c.backend);
            self.core.backend_opened(&pool, b);
        } else {
            // ECANCELED here means the linked timeout fired.
            let errno = if res == -libc::ECANCELED { libc::ETIMEDOUT } else { -res };
            sys::close(c.fds[1]);
            c.fds[1] = -1;
            let (pool, key, failed, attempts) = (c.pool.clone(), std::mem::take(&mut c.key), c.backend, c.attempts);
            let next = self.core.repick(&pool, &key, failed).filter(|_| attempts < MAX_CONNECT_ATTEMPTS);
            let Some(c) = self.conns.get_gen(slot, gen) else {
                return;
            };
            c.key = key;
            c.session.handle_connect_failed(errno, next.is_some());
            if let Some(b) = next {
                tracing::debug!(pool = %pool.cfg.name, errno, "connect failed, retrying on another backend");
                c.backend = b;
                c.session.handle_reconnect(now);
                self.connect(slot);
            } else {
                tracing::warn!(pool = %pool.cfg.name, backend = %pool.backends[failed as usize].spec.name,
                    err = %io::Error::from_raw_os_error(errno), "backend connect failed");
            }
        }
        self.pump(slot, now);
    }

    fn on_recv(&mut self, slot: u32, gen: u16, side: u8, res: i32, flags: u32, now: Instant) {
        let bid = cqueue::buffer_select(flags);
        let side = if side == 0 { Side::Client } else { Side::Backend };
        if let Some(c) = self.conns.get_gen(slot, gen) {
            if !cqueue::more(flags) {
                c.recv_armed[side as usize] = false;
                c.cancel_sent[side as usize] = false;
                c.ops -= 1;
            }
            if res > 0 {
                if let Some(bid) = bid {
                    let data = self.bufs.get(bid, res as usize);
                    c.session.handle_data(side, data, now);
                    let pool = &c.pool;
                    match side {
                        Side::Client => self.core.count_bytes(pool, res as usize, 0),
                        Side::Backend => {}
                    }
                }
            } else if res == 0 {
                c.session.handle_eof(side);
            } else if res != -libc::ENOBUFS && res != -libc::ECANCELED {
                c.session.handle_error(side, -res);
            }
        }
        if let Some(bid) = bid {
            self.bufs.recycle(bid);
        }
        self.pump(slot, now);
    }

    fn on_send(&mut self, slot: u32, gen: u16, side: u8, res: i32, now: Instant) {
        let Some(c) = self.conns.get_gen(slot, gen) else {
            return;
        };
        c.ops -= 1;
        let side = if side == 0 { Side::Client } else { Side::Backend };
        if res >= 0 {
            c.session.handle_sent(side, res as usize, now);
            if side == Side::Client {
                let pool = c.pool.clone();
                self.core.count_bytes(&pool, 0, res as usize);
            }
        } else {
            c.session.handle_sent(side, 0, now);
            if res != -libc::ECANCELED {
                c.session.handle_error(side, -res);
            }
        }
        self.pump(slot, now);
    }

    fn op_done(&mut self, slot: u32, gen: u16) {
        if let Some(c) = self.conns.get_gen(slot, gen) {
            c.ops -= 1;
            self.maybe_finish(slot);
        }
    }

    fn on_tick(&mut self, now: Instant) {
        for slot in self.conns.slots() {
            if let Some(c) = self.conns.get_mut(slot) {
                c.session.handle_tick(now);
                self.pump(slot, now);
            }
        }
        self.arm_tick();
    }

    fn close_all(&mut self, reason: CloseReason) {
        let now = Instant::now();
        for slot in self.conns.slots() {
            if let Some(c) = self.conns.get_mut(slot) {
                c.session.close(reason);
                self.pump(slot, now);
            }
        }
    }

    /// Turns the session's intents into SQEs.
    fn pump(&mut self, slot: u32, _now: Instant) {
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        if c.closing.is_some() {
            return self.maybe_finish(slot);
        }
        let mut close_fds = None;
        while let Some(intent) = c.session.poll_intent() {
            match intent {
                Intent::ShutdownWrite(side) => sys::shutdown_write(c.fds[side as usize]),
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
                    .user_data(ud(0, 0, OP_CANCEL, 0));
                self.push(e);
            }
            return self.maybe_finish(slot);
        }
        let mut sqes: [Option<squeue::Entry>; 4] = [None, None, None, None];
        let gen = c.gen;
        for side in [Side::Client, Side::Backend] {
            let s = side as usize;
            let fd = c.fds[s];
            if let Some(buf) = c.session.poll_transmit(side) {
                let e = opcode::Send::new(types::Fd(fd), buf.as_ptr(), buf.len() as u32)
                    .flags(libc::MSG_NOSIGNAL)
                    .build()
                    .user_data(ud(slot, gen, OP_SEND, s as u8));
                c.ops += 1;
                sqes[s * 2] = Some(e);
            }
            let wants = c.session.wants_read(side);
            if wants && !c.recv_armed[s] {
                c.recv_armed[s] = true;
                c.ops += 1;
                let e = opcode::RecvMulti::new(types::Fd(fd), self.bufs.bgid)
                    .build()
                    .user_data(ud(slot, gen, OP_RECV, s as u8));
                sqes[s * 2 + 1] = Some(e);
            } else if !wants && c.recv_armed[s] && !c.cancel_sent[s] {
                c.cancel_sent[s] = true;
                let target = ud(slot, gen, OP_RECV, s as u8);
                sqes[s * 2 + 1] = Some(opcode::AsyncCancel::new(target).build().user_data(ud(0, 0, OP_CANCEL, 0)));
            }
        }
        for e in sqes.into_iter().flatten() {
            self.push(e);
        }
    }

    /// Frees a closing connection once the kernel holds no reference to it.
    fn maybe_finish(&mut self, slot: u32) {
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
        if c.backend_counted {
            self.core.backend_closed(&c.pool, c.backend);
        }
        self.core.client_closed(&c.pool, reason);
    }
}
