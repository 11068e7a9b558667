//! The epoll driver's backend connects: a non-blocking connect per client,
//! its completion, and the retry on another backend when it is refused,
//! fails or times out.
//!
//! Owner: the epoll worker (a second `impl` block of `EpollDriver`, as a
//! child module so it sees the driver's private fields). Invariants: a
//! failed attempt's socket is deregistered and dropped before the next one
//! opens; a client gets at most `MAX_CONNECT_ATTEMPTS` attempts, and what
//! it sent meanwhile stays buffered in its session for the next one. The
//! io_uring driver does the same with a linked timeout (`uring::relay`);
//! epoll has no per-op timeout, so the worker's tick calls
//! `expire_connects` (connect deadlines are accurate to that tick).

use std::os::fd::FromRawFd;
use std::time::Instant;

use mio::net::TcpStream;
use mio::Interest;

use super::{token, EpollDriver, KIND_BACKEND};
use crate::worker::relay::RelayIo;
use crate::worker::relay_tls;
use crate::worker::sys;

impl EpollDriver {
    /// Opens a non-blocking socket to the conn's current backend and
    /// starts the connect; completion arrives as a backend event.
    pub(super) fn connect(&mut self, slot: u32) {
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        c.r.attempts += 1;
        let addr = c.r.pool.backends[c.r.backend as usize].spec.addr;
        let res = sys::tcp_socket(&addr, false).and_then(|fd| {
            // SAFETY: `fd` is a fresh socket we own.
            let std = unsafe { std::net::TcpStream::from_raw_fd(fd) };
            let mut s = TcpStream::from_std(std);
            match socket2::SockRef::from(&s).connect(&addr.into()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
                Err(e) => return Err(e),
            }
            self.poll.registry().register(
                &mut s,
                token(slot, c.gen, KIND_BACKEND),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            Ok(s)
        });
        match res {
            Ok(s) => c.socks[1] = Some(s),
            Err(e) => c.r.session.handle_connect_failed(e.raw_os_error().unwrap_or(libc::EIO), false),
        }
    }

    /// A backend event before the session is open: the connect finished,
    /// one way or the other.
    pub(super) fn on_connect_event(&mut self, slot: u32, now: Instant) {
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        let Some(s) = c.socks[1].as_ref() else { return };
        let err = match s.take_error() {
            Ok(Some(e)) => Some(e.raw_os_error().unwrap_or(libc::EIO)),
            Err(e) => Some(e.raw_os_error().unwrap_or(libc::EIO)),
            Ok(None) => match s.peer_addr() {
                Ok(_) => None,
                Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => return, // still connecting
                Err(e) => Some(e.raw_os_error().unwrap_or(libc::EIO)),
            },
        };
        match err {
            None => {
                c.r.session.handle_connected(now);
                relay_tls::connected(&mut c.r, now, &*self.core.stats);
                c.r.backend_counted = true;
                let (pool, b) = (c.r.pool.clone(), c.r.backend);
                self.core.backend_opened(&pool, b);
            }
            Some(errno) => self.connect_failed(slot, errno, now),
        }
    }

    /// On the tick: connects still pending past `connect_timeout` fail with
    /// ETIMEDOUT, so they retry elsewhere like a refused one.
    pub(super) fn expire_connects(&mut self, now: Instant) {
        for slot in 0..self.conns.capacity() {
            let expired =
                self.conns.get(slot).is_some_and(|c| c.socks[1].is_some() && c.r.session.connect_expired(now));
            if expired {
                self.connect_failed(slot, libc::ETIMEDOUT, now);
                self.drive(slot, now);
            }
        }
    }

    /// Drops the failed attempt's socket, reports the backend, and retries
    /// on another healthy one while attempts are left (else the session
    /// closes with the error).
    fn connect_failed(&mut self, slot: u32, errno: i32, now: Instant) {
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        if let Some(mut s) = c.socks[1].take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
        c.readable[1] = false;
        c.writable[1] = false;
        c.rdhup[1] = false;
        self.relay_connect_failed(slot, errno, now);
    }
}
