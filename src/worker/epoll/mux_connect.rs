//! The epoll driver's backend connects for multiplexed pools: opening a
//! non-blocking socket toward a backend and reading the connect's outcome
//! when the socket first signals.
//!
//! Owner: the epoll worker (an `impl` block of `EpollDriver`, over its
//! `msocks` table). Invariant: a backend socket is registered under its
//! slab key before its record is inserted, and is recorded in its entry's
//! `backends` only once both succeeded.

use std::net::SocketAddr;
use std::os::fd::FromRawFd;

use mio::net::TcpStream;
use mio::Interest;

use super::mux::ESock;
use super::{token, EpollDriver, KIND_MUX};
use crate::session::mux::BackendId;
use crate::worker::mux_pools::MKind;
use crate::worker::sys;

impl EpollDriver {
    /// Opens a non-blocking socket to `addr` for backend `b` of entry
    /// `idx` and starts its connect; completion arrives as an event.
    pub(super) fn start_connect(&mut self, idx: usize, b: BackendId, addr: SocketAddr, sid: usize) -> Result<(), i32> {
        let (slot, gen) = self.msocks.next_key();
        let registry = self.poll.registry();
        let res = sys::tcp_socket(&addr, false).and_then(|fd| {
            // SAFETY: `fd` is a fresh socket we own.
            let mut stream = TcpStream::from_std(unsafe { std::net::TcpStream::from_raw_fd(fd) });
            match socket2::SockRef::from(&stream).connect(&addr.into()) {
                Ok(()) => {}
                Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => {}
                Err(err) => return Err(err),
            }
            registry.register(&mut stream, token(slot, gen, KIND_MUX), Interest::READABLE | Interest::WRITABLE)?;
            Ok(stream)
        });
        let stream = res.map_err(|err| err.raw_os_error().unwrap_or(libc::EIO))?;
        let s = ESock {
            gen,
            entry: idx as u32,
            kind: MKind::Backend(b),
            stream,
            readable: false,
            writable: false,
            hup: false,
            connected: false,
            paused: false,
            stat_id: sid,
            tls: None,
        };
        let got = self.msocks.insert(s);
        debug_assert_eq!(got, slot);
        if let Some(e) = self.mux.get_mut(idx) {
            e.backends.insert(b, slot);
        }
        Ok(())
    }
}

/// The outcome of a non-blocking connect once the socket signalled:
/// `None` while still in progress, else success or the errno.
pub(super) fn connect_result(s: &TcpStream) -> Option<Result<(), i32>> {
    match s.take_error() {
        Ok(Some(e)) | Err(e) => Some(Err(e.raw_os_error().unwrap_or(libc::EIO))),
        Ok(None) => match s.peer_addr() {
            Ok(_) => Some(Ok(())),
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => None,
            Err(e) => Some(Err(e.raw_os_error().unwrap_or(libc::EIO))),
        },
    }
}
