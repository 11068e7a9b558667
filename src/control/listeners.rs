//! Binding the per-worker SO_REUSEPORT listeners of a pool.
//!
//! The control thread binds every listener before it publishes a snapshot,
//! so an address in use fails the reload (or startup) cleanly instead of
//! failing inside a worker. Each worker gets its own socket on the port, so
//! the kernel spreads new connections across cores.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};

use super::DriverKind;
use crate::route::Listener;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Listen backlog of tcp and mongos pool listeners (redis/memcache pools
/// use their `backlog` key).
pub const BACKLOG: i32 = 1024;

/// Binds `n` listeners on `addr`. Sockets for the io_uring driver stay
/// blocking (the ring does its own waiting); epoll needs non-blocking ones.
pub fn bind(addr: SocketAddr, n: usize, driver: DriverKind, backlog: i32) -> io::Result<Vec<Arc<Listener>>> {
    (0..n)
        .map(|_| {
            let s = Socket::new(Domain::for_address(addr), Type::STREAM.cloexec(), Some(Protocol::TCP))?;
            s.set_reuse_address(true)?;
            s.set_reuse_port(true)?;
            s.set_nodelay(true)?;
            s.set_nonblocking(driver == DriverKind::Epoll)?;
            s.bind(&addr.into())?;
            s.listen(backlog)?;
            Ok(Arc::new(Listener { id: NEXT_ID.fetch_add(1, Ordering::Relaxed), socket: s }))
        })
        .collect()
}
