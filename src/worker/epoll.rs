//! The epoll fallback driver (mio), running the same sans-IO sessions and
//! the same `WorkerCore` as the io_uring driver.
//!
//! Owner: one worker thread owns the poll instance, its sockets and their
//! buffers. Chosen when io_uring_setup fails or with `io = "epoll"`.
//! Invariants: mio is edge-triggered, so a socket's `readable`/`writable`
//! flag is cleared only by a WouldBlock, and every event handler ends in
//! `drive`, which runs the session until it stops making progress.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::core::WorkerCore;
use super::mongo;
use super::mux_pools::MuxPools;
use super::sys;
use crate::route::{Listener, PoolSnapshot};
use crate::session::{CloseReason, Intent, Side, TcpSession};

const KIND_CLIENT: usize = 0;
const KIND_BACKEND: usize = 1;
const KIND_LISTENER: usize = 2;
const KIND_WAKE: usize = 3;
/// A socket of a multiplexed (redis/memcache) pool, see `epoll_mux`.
const KIND_MUX: usize = 4;
const TICK: Duration = Duration::from_millis(250);
const MAX_CONNECT_ATTEMPTS: u8 = 3;

#[path = "epoll_connect.rs"]
mod connect_ext;
#[path = "epoll_mongo.rs"]
mod mongo_ext;
#[path = "epoll_mux.rs"]
mod mux_ext;

/// Three low bits of kind, the slot above them.
fn token(slot: usize, kind: usize) -> Token {
    Token(slot << 3 | kind)
}

struct EConn {
    pool: Arc<PoolSnapshot>,
    key: Vec<u8>,
    backend: u32,
    backend_counted: bool,
    attempts: u8,
    /// `[client, backend]`.
    socks: [Option<TcpStream>; 2],
    session: TcpSession,
    readable: [bool; 2],
    writable: [bool; 2],
}

struct ELis {
    pool: Arc<PoolSnapshot>,
    listener: Arc<Listener>,
}

pub struct EpollDriver {
    poll: Poll,
    core: WorkerCore,
    conns: Vec<Option<EConn>>,
    free: Vec<usize>,
    listeners: Vec<Option<ELis>>,
    wake_fd: RawFd,
    scratch: Box<[u8]>,
    /// Sessions of multiplexed pools and their sockets.
    mux: MuxPools,
    msocks: mux_ext::ESocks,
    /// Mux sockets with an event in this batch.
    mux_ready: Vec<u32>,
    mux_sends: Vec<u32>,
    mux_resumes: Vec<u32>,
}

impl EpollDriver {
    pub fn new(core: WorkerCore, wake_fd: RawFd) -> io::Result<Self> {
        let poll = Poll::new()?;
        sys::set_nonblocking(wake_fd);
        poll.registry().register(&mut SourceFd(&wake_fd), token(0, KIND_WAKE), Interest::READABLE)?;
        Ok(EpollDriver {
            poll,
            core,
            conns: Vec::new(),
            free: Vec::new(),
            listeners: Vec::new(),
            wake_fd,
            scratch: vec![0u8; 64 * 1024].into_boxed_slice(),
            mux: MuxPools::default(),
            msocks: mux_ext::ESocks::default(),
            mux_ready: Vec::new(),
            mux_sends: Vec::new(),
            mux_resumes: Vec::new(),
        })
    }

    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        self.apply_snapshot(Instant::now());
        let mut next_tick = Instant::now() + TICK;
        loop {
            // A worker that cannot go on says so; `main` then exits.
            if let Some(e) = self.core.fatal.take() {
                return Err(e);
            }
            let now = Instant::now();
            if self.core.refresh(now) {
                self.apply_snapshot(now);
            }
            if self.core.drain_done(now) {
                self.for_each_conn(|s| s.close(CloseReason::Shutdown));
                self.mux_close_all(now);
                if self.conns.iter().all(Option::is_none) && self.msocks.is_empty() {
                    return Ok(());
                }
            }
            // Wake for the periodic tick, the earliest mux deadline or the
            // end of an accept pause.
            let wake = [self.mux.next_deadline(), self.core.accept_resume_at()]
                .into_iter()
                .flatten()
                .fold(next_tick, Instant::min);
            let timeout = wake.saturating_duration_since(now);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            let now = Instant::now();
            // A snapshot published while we waited (a reload answered just
            // before a client connected) must route this batch's accepts.
            if self.core.refresh(now) {
                self.apply_snapshot(now);
            }
            // Out of descriptors a moment ago: try every listener again
            // (edge-triggered, its queued connections raise no new event).
            if self.core.poll_accept_resume(now) {
                for idx in 0..self.listeners.len() {
                    self.on_accept(idx, now);
                }
            }
            for ev in events.iter() {
                let (slot, kind) = (ev.token().0 >> 3, ev.token().0 & 7);
                match kind {
                    KIND_WAKE => sys::eventfd_drain(self.wake_fd),
                    KIND_LISTENER => self.on_accept(slot, now),
                    KIND_MUX => self.mux_event(slot, ev),
                    _ => {
                        let Some(c) = self.conns.get_mut(slot).and_then(|c| c.as_mut()) else {
                            continue;
                        };
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            c.readable[kind] = true;
                        }
                        if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                            c.writable[kind] = true;
                        }
                        if kind == KIND_BACKEND && !c.session.is_open() {
                            self.on_connect_event(slot, now);
                        }
                        self.drive(slot, now);
                    }
                }
            }
            self.mux_pump(now);
            self.msocks.end_batch();
            let periodic = now >= next_tick;
            if periodic {
                next_tick = now + TICK;
                // Timed-out connects first: they retry on another backend,
                // where `handle_tick` alone would close the client.
                self.expire_connects(now);
                self.for_each_conn(|s| s.handle_tick(now));
            }
            if periodic || self.mux.next_deadline().is_some_and(|d| d <= now) {
                self.mux_tick(periodic, now);
            }
        }
    }

    /// A new snapshot: listeners, mongos retirements, multiplexed sessions.
    fn apply_snapshot(&mut self, now: Instant) {
        // Sessions first: arming a listener may accept at once (epoll takes
        // what queued before it registered), and a client needs its session.
        self.mux.sync(&self.core, now);
        self.sync_listeners();
        self.retire_sessions(now);
        self.mux_flush(now);
    }

    fn for_each_conn(&mut self, mut f: impl FnMut(&mut TcpSession)) {
        let now = Instant::now();
        for slot in 0..self.conns.len() {
            if let Some(c) = self.conns[slot].as_mut() {
                f(&mut c.session);
                self.drive(slot, now);
            }
        }
    }

    fn sync_listeners(&mut self) {
        let wanted = self.core.wanted_listeners();
        for i in 0..self.listeners.len() {
            let Some(l) = self.listeners[i].as_mut() else {
                continue;
            };
            match wanted.iter().find(|(_, x)| x.id == l.listener.id) {
                Some((p, _)) => l.pool = p.clone(),
                None => {
                    let fd = sys::raw(&*l.listener);
                    let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
                    self.listeners[i] = None;
                }
            }
        }
        for (p, l) in wanted {
            if self.listeners.iter().flatten().any(|x| x.listener.id == l.id) {
                continue;
            }
            let idx = self.listeners.iter().position(Option::is_none).unwrap_or(self.listeners.len());
            if idx == self.listeners.len() {
                self.listeners.push(None);
            }
            let fd = sys::raw(&*l);
            if let Err(e) =
                self.poll.registry().register(&mut SourceFd(&fd), token(idx, KIND_LISTENER), Interest::READABLE)
            {
                tracing::error!(pool = %p.cfg.name, err = %e, "cannot watch listener");
                continue;
            }
            self.listeners[idx] = Some(ELis { pool: p, listener: l });
            // Connections may have queued before we registered.
            self.on_accept(idx, Instant::now());
        }
    }

    /// Accepts until the listener's queue is empty, or until descriptors
    /// run out (accepting then pauses, see `WorkerCore::handle_accept_error`).
    fn on_accept(&mut self, idx: usize, now: Instant) {
        loop {
            if self.core.accept_paused(now) {
                return; // the resume retries every listener
            }
            let Some(l) = self.listeners.get(idx).and_then(|l| l.as_ref()) else {
                return;
            };
            let pool = l.pool.clone();
            let (sock, peer) = match l.listener.socket.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let errno = e.raw_os_error().unwrap_or(libc::EIO);
                    self.core.handle_accept_error(&pool.cfg.name, errno, now);
                    // A connection that died in the queue costs only itself:
                    // accept the next one (edge-triggered, nothing else
                    // would come back for it).
                    if matches!(errno, libc::ECONNABORTED | libc::EPROTO | libc::EPERM) {
                        continue;
                    }
                    return;
                }
            };
            self.core.handle_accepted();
            if crate::worker::mux_pools::is_mux(&pool) {
                self.mux_accept(&pool, sock);
                continue;
            }
            let peer = peer.as_socket();
            let key = mongo::balance_key(&pool, peer);
            let backend = match self.core.admit(&pool, &key) {
                Ok(b) => b,
                Err(reason) => {
                    tracing::debug!(pool = %pool.cfg.name, ?reason, "client rejected at accept");
                    continue; // `sock` drops and closes here.
                }
            };
            let _ = sock.set_nonblocking(true);
            let _ = sock.set_nodelay(true);
            let session = self.core.open_session(&pool, peer, || sock.local_addr().ok()?.as_socket(), now);
            let deferred = session.awaiting_route();
            let client = TcpStream::from_std(sock.into());
            let slot = self.free.pop().unwrap_or_else(|| {
                self.conns.push(None);
                self.conns.len() - 1
            });
            let mut c = EConn {
                pool,
                key,
                backend,
                backend_counted: false,
                attempts: 0,
                socks: [Some(client), None],
                session,
                readable: [true, false],
                writable: [true, false],
            };
            if let Some(s) = c.socks[0].as_mut() {
                if let Err(e) =
                    self.poll.registry().register(s, token(slot, KIND_CLIENT), Interest::READABLE | Interest::WRITABLE)
                {
                    c.session.handle_error(Side::Client, e.raw_os_error().unwrap_or(libc::EIO));
                }
            }
            self.conns[slot] = Some(c);
            if !deferred {
                self.connect(slot);
            }
            self.drive(slot, now);
        }
    }

    /// Moves bytes and applies intents until nothing changes.
    fn drive(&mut self, slot: usize, now: Instant) {
        loop {
            let Some(c) = self.conns.get_mut(slot).and_then(|c| c.as_mut()) else {
                return;
            };
            let mut progress = false;
            let mut route = None;
            for side in [Side::Client, Side::Backend] {
                let s = side as usize;
                while c.readable[s] && c.session.wants_read(side) {
                    let Some(sock) = c.socks[s].as_mut() else {
                        break;
                    };
                    match sock.read(&mut self.scratch) {
                        Ok(0) => {
                            c.session.handle_eof(side);
                            c.readable[s] = false;
                        }
                        Ok(n) => {
                            c.session.handle_data(side, &self.scratch[..n], now);
                            if c.session.is_mongo() {
                                route = route.or(c.session.take_route());
                                self.core.record_mongo(&c.pool, c.backend, &mut c.session);
                            }
                            if side == Side::Client {
                                self.core.count_bytes(&c.pool, n, 0);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.readable[s] = false,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => c.session.handle_error(side, e.raw_os_error().unwrap_or(libc::EIO)),
                    }
                    progress = true;
                }
                while c.writable[s] {
                    let Some(buf) = c.session.poll_transmit(side) else {
                        break;
                    };
                    let Some(sock) = c.socks[s].as_mut() else {
                        break;
                    };
                    match sock.write(buf) {
                        Ok(n) => {
                            c.session.handle_sent(side, n, now);
                            if side == Side::Client {
                                self.core.count_bytes(&c.pool, 0, n);
                            }
                            progress = true;
                        }
                        Err(e) => {
                            c.session.handle_sent(side, 0, now);
                            match e.kind() {
                                io::ErrorKind::WouldBlock => c.writable[s] = false,
                                io::ErrorKind::Interrupted => {}
                                _ => c.session.handle_error(side, e.raw_os_error().unwrap_or(libc::EIO)),
                            }
                        }
                    }
                }
            }
            while let Some(intent) = c.session.poll_intent() {
                progress = true;
                match intent {
                    Intent::ShutdownWrite(side) => {
                        if let Some(s) = c.socks[side as usize].as_ref() {
                            let _ = s.shutdown(Shutdown::Write);
                        }
                    }
                    Intent::Close(reason) => return self.finish(slot, reason),
                }
            }
            if let Some(meta) = route {
                self.route_deferred(slot, meta, now);
                progress = true;
            }
            if !progress {
                return;
            }
        }
    }

    fn finish(&mut self, slot: usize, reason: CloseReason) {
        let Some(mut c) = self.conns[slot].take() else {
            return;
        };
        for s in c.socks.iter_mut().flatten() {
            let _ = self.poll.registry().deregister(s);
        }
        drop(c.socks);
        if c.backend_counted {
            self.core.backend_closed(&c.pool, c.backend);
        }
        self.core.client_closed(&c.pool, reason);
        self.free.push(slot);
    }
}
