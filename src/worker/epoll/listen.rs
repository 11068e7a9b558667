//! The epoll driver's listeners: registering the snapshot's listeners,
//! accepting until a listener's queue is empty, and admitting each client
//! to a tcp/mongos relay (`relay`) or a multiplexed session (`mux`).
//!
//! Owner: the epoll worker (an `impl` block of `EpollDriver`, as a child
//! module so it sees the driver's private fields). Invariant: listeners are
//! edge-triggered, so `on_accept` accepts until WouldBlock (or an accept
//! pause, after which every listener is tried again).

use std::io;
use std::time::Instant;

use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::Interest;

use super::{token, EConn, ELis, EpollDriver, KIND_CLIENT, KIND_LISTENER};
use crate::session::Side;
use crate::worker::relay::Relay;
use crate::worker::{mongo, relay_tls, sys};

impl EpollDriver {
    pub(super) fn sync_listeners(&mut self) {
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
            if let Err(e) = self.poll.registry().register(
                &mut SourceFd(&fd),
                token(idx as u32, 0, KIND_LISTENER),
                Interest::READABLE,
            ) {
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
    pub(super) fn on_accept(&mut self, idx: usize, now: Instant) {
        loop {
            if self.core.accept_paused(now) {
                return; // the resume retries every listener
            }
            let Some(l) = self.listeners.get(idx).and_then(|l| l.as_ref()) else {
                return;
            };
            let (pool, plain) = (l.pool.clone(), l.listener.plain);
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
                self.mux_accept(&pool, sock, peer.as_socket(), plain, now);
                continue;
            }
            let peer = peer.as_socket();
            let Ok(tls) = relay_tls::accept(&pool, plain, now, &self.core.stats.tls) else { continue };
            let key = mongo::balance_key(&pool, peer);
            // Per-IP connections first: a client it refuses takes nothing else.
            let Ok(rate) = self.core.admit_ip(&pool, peer) else { continue };
            let backend = match self.core.admit(&pool, &key) {
                Ok(b) => b,
                Err(reason) => {
                    tracing::debug!(pool = %pool.cfg.name, ?reason, "client rejected at accept");
                    continue; // `sock` drops and closes here.
                }
            };
            let _ = sock.set_nonblocking(true);
            let _ = sock.set_nodelay(true);
            let mut session = self.core.open_session(&pool, peer, || sock.local_addr().ok()?.as_socket(), now);
            if let Some(rate) = rate {
                session.set_rate(rate);
            }
            let deferred = session.awaiting_route();
            let client = TcpStream::from_std(sock.into());
            let (slot, gen) = self.conns.next_key();
            let mut c = EConn {
                gen,
                r: Relay::new(pool, key, backend, session),
                socks: [Some(client), None],
                readable: [true, false],
                writable: [true, false],
                rdhup: [false, false],
            };
            c.r.tls[Side::Client as usize] = tls;
            if let Some(s) = c.socks[0].as_mut() {
                if let Err(e) = self.poll.registry().register(
                    s,
                    token(slot, gen, KIND_CLIENT),
                    Interest::READABLE | Interest::WRITABLE,
                ) {
                    c.r.session.handle_error(Side::Client, e.raw_os_error().unwrap_or(libc::EIO));
                }
            }
            let got = self.conns.insert(c);
            debug_assert_eq!(got, slot);
            if !deferred {
                self.connect(slot);
            }
            self.drive(slot, now);
        }
    }
}
