//! The io_uring driver's records, each held in a `slab::Slab`: `Conn` for
//! a tcp/mongos relay (client and backend socket), `MSock` for one socket
//! of a multiplexed pool.
//!
//! Owner: one worker. Invariant: the memory an SQE points into (the connect
//! address, the timespecs) is boxed, so it stays put while the record moves
//! and lives until the record is freed (`ops` back to zero).

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::Arc;

use io_uring::types::Timespec;

use crate::route::PoolSnapshot;
use crate::session::{CloseReason, TcpSession};
use crate::worker::mux_pools::MKind;
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
    sockaddr: SockAddrBox,
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
            sockaddr: sockaddr_box(),
            connect_ts: Box::new(Timespec::new()),
            timer_at: None,
            timer_removing: false,
            timer_ts: Box::new(Timespec::new()),
        }
    }

    /// Stores `addr` and returns a pointer valid while the conn lives.
    pub fn set_sockaddr(&mut self, addr: SocketAddr) -> (*const libc::sockaddr, libc::socklen_t) {
        store_sockaddr(&mut self.sockaddr, addr)
    }
}

/// A connect op's address, boxed so that it stays put while its record
/// moves in the slab.
pub type SockAddrBox = Box<(libc::sockaddr_storage, libc::socklen_t)>;

pub fn sockaddr_box() -> SockAddrBox {
    // SAFETY: all-zero is a valid sockaddr_storage.
    Box::new((unsafe { std::mem::zeroed() }, 0))
}

/// Stores `addr` in `b`; returns the pointer and length a connect SQE
/// takes, valid while `b` lives.
pub fn store_sockaddr(
    b: &mut (libc::sockaddr_storage, libc::socklen_t),
    addr: SocketAddr,
) -> (*const libc::sockaddr, libc::socklen_t) {
    let sa = socket2::SockAddr::from(addr);
    let len = sa.len();
    // SAFETY: SockAddr's storage is a sockaddr_storage of `len` valid bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(sa.as_ptr() as *const u8, &mut b.0 as *mut _ as *mut u8, len as usize);
    }
    b.1 = len;
    ((&b.0 as *const libc::sockaddr_storage).cast(), len)
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

/// One socket of a multiplexed pool.
pub struct MSock {
    pub(super) gen: u16,
    /// Index of its `MuxEntry`.
    pub(super) entry: u32,
    pub(super) kind: MKind,
    pub(super) fd: RawFd,
    /// SQEs in the kernel that name this record.
    pub(super) ops: u32,
    pub(super) recv_armed: bool,
    pub(super) cancel_sent: bool,
    pub(super) sending: bool,
    /// Backends: the connect completed.
    pub(super) connected: bool,
    /// Detached from the session; freed once `ops` is zero.
    pub(super) closing: bool,
    /// Clients: listed in the entry's `paused` (reads held by the session).
    pub(super) paused: bool,
    /// Backend stat id (gauges), for backends.
    pub(super) stat_id: usize,
    /// The bytes of the send in flight, owned here until it completes.
    pub(super) out: Vec<u8>,
    /// Or a shared block in flight instead (a large reply, not copied:
    /// `Tx::Block`), held here until the send completes. Boxed: most
    /// sockets never hold one.
    pub(super) block: Option<Box<bytes::Bytes>>,
    /// Plaintext backends: the buffer a recv writes into directly (no
    /// provided buffer, no copy), and that the session frames replies from
    /// (`PoolSession::handle_backend_rx`). Never touched while a recv is
    /// in flight.
    pub(super) rx: Option<Box<bytes::BytesMut>>,
    /// Plaintext backends: a recv completed with data since the last
    /// periodic tick (a connection without one is idle, see `park`).
    pub(super) rx_used: bool,
    /// Plaintext backends: idle, its recv is being cancelled (`parking`),
    /// or a readiness poll is armed in its place and `rx` is released
    /// (`parked`); see `mux_recv.rs`.
    pub(super) parking: bool,
    pub(super) parked: bool,
    /// The connect op's address (backends).
    pub(super) sockaddr: Option<SockAddrBox>,
    /// Clients of a TLS listener: their TLS session (`worker::tls_io`).
    pub(super) tls: Option<Box<crate::tls::TlsConn>>,
    /// Closed by its session, sending its last ciphertext (`linger.rs`).
    pub(super) linger: bool,
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
    pub(super) fn new(entry: u32, kind: MKind, fd: RawFd) -> MSock {
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
            block: None,
            rx: None,
            rx_used: false,
            parking: false,
            parked: false,
            sockaddr: None,
            tls: None,
            linger: false,
        }
    }
}
