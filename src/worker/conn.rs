//! Per-connection records of the io_uring driver's tcp/mongos relays (held
//! in a `slab::Slab`).
//!
//! Owner: one worker. Invariant: the memory an SQE points into (the connect
//! address, the timespecs) is boxed, so it stays put while the record moves
//! and lives until the record is freed (`Conn::ops` back to zero).

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::Arc;

use io_uring::types::Timespec;

use crate::route::PoolSnapshot;
use crate::session::{CloseReason, TcpSession};
use crate::worker::relay::{Relay, RelayRec};
use crate::worker::slab::Generational;

/// A client connection and its backend connection.
pub struct Conn {
    pub gen: u16,
    /// The pool, backend and session (shared with the epoll driver).
    pub r: Relay,
    /// `[client, backend]`; -1 when not open.
    pub fds: [RawFd; 2],
    pub recv_armed: [bool; 2],
    pub cancel_sent: [bool; 2],
    /// SQEs in the kernel that reference this record.
    pub ops: u32,
    pub closing: Option<CloseReason>,
    /// Stable storage for the connect op's address and timeout.
    sockaddr: Box<(libc::sockaddr_storage, libc::socklen_t)>,
    pub connect_ts: Box<Timespec>,
    /// The session's deadline timer (idle, retire, a deferred route's wait):
    /// the instant it was armed for, while it is in the kernel.
    pub timer_at: Option<std::time::Instant>,
    /// A removal of the armed timer was sent (an earlier deadline replaces
    /// it, or the connection is closing).
    pub timer_removing: bool,
    pub timer_ts: Box<Timespec>,
}

impl Conn {
    pub fn new(pool: Arc<PoolSnapshot>, key: Vec<u8>, backend: u32, client_fd: RawFd, session: TcpSession) -> Self {
        Conn {
            gen: 0,
            r: Relay::new(pool, key, backend, session),
            fds: [client_fd, -1],
            recv_armed: [false; 2],
            cancel_sent: [false; 2],
            ops: 0,
            closing: None,
            // SAFETY: all-zero is a valid sockaddr_storage.
            sockaddr: Box::new((unsafe { std::mem::zeroed() }, 0)),
            connect_ts: Box::new(Timespec::new()),
            timer_at: None,
            timer_removing: false,
            timer_ts: Box::new(Timespec::new()),
        }
    }

    /// Stores `addr` and returns a pointer valid while the conn lives.
    pub fn set_sockaddr(&mut self, addr: SocketAddr) -> (*const libc::sockaddr, libc::socklen_t) {
        let sa = socket2::SockAddr::from(addr);
        let len = sa.len();
        // SAFETY: SockAddr's storage is a sockaddr_storage of `len` valid bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                sa.as_ptr() as *const u8,
                &mut self.sockaddr.0 as *mut _ as *mut u8,
                len as usize,
            );
        }
        self.sockaddr.1 = len;
        ((&self.sockaddr.0 as *const libc::sockaddr_storage).cast(), len)
    }
}

impl RelayRec for Conn {
    #[inline]
    fn relay(&mut self) -> &mut Relay {
        &mut self.r
    }
}

impl Generational for Conn {
    fn gen(&self) -> u16 {
        self.gen
    }
    fn set_gen(&mut self, gen: u16) {
        self.gen = gen;
    }
}
