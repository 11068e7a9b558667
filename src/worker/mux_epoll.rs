//! A mio (epoll) loop that runs one `MuxSession` for one sharded pool:
//! the seam through which twemproxy-mode pools reach real sockets.
//!
//! Owner: the thread that calls `run`; it owns the poll instance, the
//! listener, every client and backend socket of the pool, and the session.
//! This loop is deliberately standalone: the config has no `mode = "redis"`
//! yet on this branch, so `MuxPool` is the seam the worker integration fills
//! (listener from the snapshot, `router` = the pool ring's `pick`, `cfg`
//! from the pool keys). Invariants: mio is edge-triggered, so a socket is
//! read until WouldBlock (or until the session pauses it; paused clients are
//! retried after every pass) and written until WouldBlock; the session's
//! `Connect` intents are the only place backend sockets are created.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use crate::session::mux::{BackendId, ClientId, MuxConfig, MuxIntent, MuxSession, Router};

const LISTENER: Token = Token(0);
/// Tokens from here up are clients (`CLIENT_BASE + slot`); below are
/// backends (`1 + backend index`).
const CLIENT_BASE: usize = 1 << 24;
const TICK: Duration = Duration::from_millis(50);

/// Everything one pool needs to run in this loop.
pub struct MuxPool {
    pub listener: std::net::TcpListener,
    /// Backend addresses, indexed like the router's server numbers.
    pub servers: Vec<SocketAddr>,
    pub cfg: MuxConfig,
    pub router: Arc<dyn Router + Send + Sync>,
}

struct Sock {
    stream: TcpStream,
    readable: bool,
}

struct Loop {
    poll: Poll,
    session: MuxSession,
    servers: Vec<SocketAddr>,
    router: Arc<dyn Router + Send + Sync>,
    /// By `ClientId::index()`.
    clients: Vec<Option<(ClientId, Sock)>>,
    /// By backend index (server-major), with whether connect completed.
    backends: Vec<Option<(Sock, bool)>>,
    scratch: Box<[u8]>,
}

/// Runs the pool until `stop` is set.
pub fn run(pool: MuxPool, stop: Arc<AtomicBool>) -> io::Result<()> {
    pool.listener.set_nonblocking(true)?;
    let mut listener = TcpListener::from_std(pool.listener);
    let poll = Poll::new()?;
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
    let n = pool.servers.len() * pool.cfg.server_connections.max(1) as usize;
    let mut lp = Loop {
        poll,
        session: MuxSession::new(pool.cfg),
        servers: pool.servers,
        router: pool.router,
        clients: Vec::new(),
        backends: (0..n).map(|_| None).collect(),
        scratch: vec![0u8; 64 * 1024].into_boxed_slice(),
    };
    let mut events = Events::with_capacity(1024);
    let mut writable: Vec<ClientId> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if let Err(e) = lp.poll.poll(&mut events, Some(TICK)) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        let now = Instant::now();
        for ev in events.iter() {
            match ev.token() {
                LISTENER => lp.accept(&mut listener),
                Token(t) if t >= CLIENT_BASE => {
                    if let Some((id, s)) = lp.clients.get_mut(t - CLIENT_BASE).and_then(|c| c.as_mut()) {
                        s.readable |= ev.is_readable() || ev.is_read_closed() || ev.is_error();
                        if ev.is_writable() {
                            // Bytes left over from a WouldBlock go out now.
                            writable.push(*id);
                        }
                    }
                }
                Token(t) => lp.backend_event(t - 1, ev.is_readable() || ev.is_error(), ev.is_writable(), now),
            }
        }
        let router = lp.router.clone();
        for id in writable.drain(..) {
            lp.write_client(id, now, &*router);
        }
        lp.pump(now);
        lp.session.handle_tick(now, &*router);
        lp.pump(now);
    }
    Ok(())
}

impl Loop {
    fn bid(&self, i: usize) -> BackendId {
        let per = self.session.config().server_connections as usize;
        BackendId { server: (i / per) as u32, conn: (i % per) as u32 }
    }

    fn bidx(&self, b: BackendId) -> usize {
        (b.server * self.session.config().server_connections + b.conn) as usize
    }

    fn accept(&mut self, listener: &mut TcpListener) {
        loop {
            let (mut stream, _) = match listener.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return tracing::warn!(err = %e, "accept failed"),
            };
            let _ = stream.set_nodelay(true);
            let id = self.session.add_client();
            let token = Token(CLIENT_BASE + id.index());
            if self.poll.registry().register(&mut stream, token, Interest::READABLE | Interest::WRITABLE).is_err() {
                self.session.close_client(id, crate::session::mux::ClientClose::Shutdown);
                continue;
            }
            if self.clients.len() <= id.index() {
                self.clients.resize_with(id.index() + 1, || None);
            }
            self.clients[id.index()] = Some((id, Sock { stream, readable: true }));
        }
    }

    fn backend_event(&mut self, i: usize, readable: bool, writable: bool, now: Instant) {
        let b = self.bid(i);
        let Some((s, connected)) = self.backends.get_mut(i).and_then(|x| x.as_mut()) else { return };
        s.readable |= readable;
        if *connected || !(readable || writable) {
            return;
        }
        let err = match s.stream.take_error() {
            Ok(Some(e)) | Err(e) => Some(e.raw_os_error().unwrap_or(libc::EIO)),
            Ok(None) => match s.stream.peer_addr() {
                Ok(_) => None,
                Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => return,
                Err(e) => Some(e.raw_os_error().unwrap_or(libc::EIO)),
            },
        };
        match err {
            None => {
                *connected = true;
                self.session.handle_backend_connected(b);
            }
            Some(errno) => {
                self.drop_backend(i);
                let router = self.router.clone();
                self.session.handle_backend_connect_failed(b, errno, now, &*router);
            }
        }
    }

    fn drop_backend(&mut self, i: usize) {
        if let Some((mut s, _)) = self.backends[i].take() {
            let _ = self.poll.registry().deregister(&mut s.stream);
        }
    }

    /// Moves bytes and applies intents until nothing changes.
    fn pump(&mut self, now: Instant) {
        let router = self.router.clone();
        for _ in 0..64 {
            let mut progress = false;
            for i in 0..self.clients.len() {
                progress |= self.read_client(i, now, &*router);
            }
            for i in 0..self.backends.len() {
                progress |= self.read_backend(i, now, &*router);
            }
            progress |= self.apply_intents(now, &*router);
            while let Some(b) = self.session.poll_dirty_backend() {
                self.write_backend(b, now, &*router);
            }
            for i in 0..self.backends.len() {
                let b = self.bid(i);
                self.write_backend(b, now, &*router);
            }
            while let Some(c) = self.session.poll_dirty_client() {
                progress |= self.write_client(c, now, &*router);
            }
            progress |= self.apply_intents(now, &*router);
            if !progress {
                return;
            }
        }
    }

    fn read_client(&mut self, i: usize, now: Instant, router: &dyn Router) -> bool {
        let mut progress = false;
        loop {
            let Some((id, s)) = self.clients[i].as_mut() else { return progress };
            let id = *id;
            if !s.readable || !self.session.wants_client_read(id) {
                return progress;
            }
            match s.stream.read(&mut self.scratch) {
                Ok(0) => {
                    s.readable = false;
                    self.session.handle_client_eof(id);
                    return true;
                }
                Ok(n) => {
                    progress = true;
                    self.session.handle_client_data(id, &self.scratch[..n], now, router);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    s.readable = false;
                    return progress;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.session.handle_client_error(id, e.raw_os_error().unwrap_or(libc::EIO));
                    return true;
                }
            }
        }
    }

    fn write_client(&mut self, id: ClientId, now: Instant, router: &dyn Router) -> bool {
        let mut progress = false;
        while let Some(buf) = self.session.poll_client_transmit(id) {
            let Some((_, s)) = self.clients.get_mut(id.index()).and_then(|c| c.as_mut()) else { return progress };
            let res = s.stream.write(buf);
            let n = match res {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
                Err(e) => {
                    self.session.handle_client_sent(id, 0, now, router);
                    self.session.handle_client_error(id, e.raw_os_error().unwrap_or(libc::EIO));
                    return true;
                }
            };
            self.session.handle_client_sent(id, n, now, router);
            if n == 0 {
                return progress; // the next writable event resumes
            }
            progress = true;
        }
        progress
    }

    fn read_backend(&mut self, i: usize, now: Instant, router: &dyn Router) -> bool {
        let b = self.bid(i);
        let mut progress = false;
        loop {
            let Some((s, connected)) = self.backends[i].as_mut() else { return progress };
            if !*connected || !s.readable {
                return progress;
            }
            match s.stream.read(&mut self.scratch) {
                Ok(0) => {
                    self.drop_backend(i);
                    self.session.handle_backend_closed(b, None, now, router);
                    return true;
                }
                Ok(n) => {
                    progress = true;
                    self.session.handle_backend_data(b, &self.scratch[..n], now, router);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    s.readable = false;
                    return progress;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.drop_backend(i);
                    self.session.handle_backend_closed(b, e.raw_os_error(), now, router);
                    return true;
                }
            }
        }
    }

    fn write_backend(&mut self, b: BackendId, now: Instant, router: &dyn Router) {
        let i = self.bidx(b);
        while let Some(buf) = self.session.poll_backend_transmit(b) {
            let Some((s, _)) = self.backends[i].as_mut() else {
                self.session.handle_backend_sent(b, 0);
                return;
            };
            match s.stream.write(buf) {
                Ok(n) => {
                    self.session.handle_backend_sent(b, n);
                    if n == 0 {
                        return;
                    }
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
                    self.session.handle_backend_sent(b, 0);
                    return;
                }
                Err(e) => {
                    self.session.handle_backend_sent(b, 0);
                    self.drop_backend(i);
                    self.session.handle_backend_closed(b, e.raw_os_error(), now, router);
                    return;
                }
            }
        }
    }

    fn apply_intents(&mut self, now: Instant, router: &dyn Router) -> bool {
        let mut any = false;
        while let Some(intent) = self.session.poll_intent() {
            any = true;
            match intent {
                MuxIntent::Connect(b) => self.connect(b, now, router),
                MuxIntent::CloseBackend(b) => {
                    let i = self.bidx(b);
                    self.drop_backend(i);
                }
                MuxIntent::CloseClient(id, why) => {
                    tracing::trace!(?why, "client closed");
                    if let Some((_, mut s)) = self.clients.get_mut(id.index()).and_then(|c| c.take()) {
                        let _ = self.poll.registry().deregister(&mut s.stream);
                    }
                }
                MuxIntent::ServerFailed { server, errno } => {
                    tracing::debug!(server, err = %io::Error::from_raw_os_error(errno), "backend failed")
                }
            }
        }
        any
    }

    fn connect(&mut self, b: BackendId, now: Instant, router: &dyn Router) {
        let i = self.bidx(b);
        self.drop_backend(i);
        let addr = self.servers[b.server as usize];
        let token = Token(1 + i);
        let res = TcpStream::connect(addr).and_then(|mut s| {
            let _ = s.set_nodelay(true);
            self.poll.registry().register(&mut s, token, Interest::READABLE | Interest::WRITABLE)?;
            Ok(s)
        });
        match res {
            Ok(stream) => self.backends[i] = Some((Sock { stream, readable: false }, false)),
            Err(e) => self.session.handle_backend_connect_failed(b, e.raw_os_error().unwrap_or(libc::EIO), now, router),
        }
    }
}
