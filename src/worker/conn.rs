//! Per-connection records for the io_uring driver and the slab that holds
//! them.
//!
//! Owner: one worker. Invariant: a slot's generation changes every time the
//! slot is freed, so a (slot, generation) pair names one connection for its
//! whole life and never a later occupant of the same slot.

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::Arc;

use io_uring::types::Timespec;

use crate::route::PoolSnapshot;
use crate::session::{CloseReason, TcpSession};

/// A client connection and its backend connection.
pub struct Conn {
    pub gen: u16,
    /// The pool as of accept: the session keeps the snapshot it started with.
    pub pool: Arc<PoolSnapshot>,
    /// Client-affinity key (the peer IP) for re-picks after a refused connect.
    pub key: Vec<u8>,
    /// Index into `pool.backends`.
    pub backend: u32,
    /// `backend_opened` was counted, so `backend_closed` must be too.
    pub backend_counted: bool,
    pub attempts: u8,
    /// `[client, backend]`; -1 when not open.
    pub fds: [RawFd; 2],
    pub session: TcpSession,
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
            pool,
            key,
            backend,
            backend_counted: false,
            attempts: 0,
            fds: [client_fd, -1],
            session,
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

/// A record a `Slab` can hold: it carries the generation of its slot.
pub trait Generational {
    fn gen(&self) -> u16;
    fn set_gen(&mut self, gen: u16);
}

impl Generational for Conn {
    fn gen(&self) -> u16 {
        self.gen
    }
    fn set_gen(&mut self, gen: u16) {
        self.gen = gen;
    }
}

/// Slots of connections with generations and a free list.
pub struct Slab<T = Conn> {
    slots: Vec<Option<T>>,
    gens: Vec<u16>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab { slots: Vec::new(), gens: Vec::new(), free: Vec::new(), len: 0 }
    }
}

impl<T: Generational> Slab<T> {
    pub fn insert(&mut self, mut c: T) -> u32 {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                self.gens.push(0);
                (self.slots.len() - 1) as u32
            }
        };
        c.set_gen(self.gens[slot as usize]);
        self.slots[slot as usize] = Some(c);
        self.len += 1;
        slot
    }

    pub fn get_mut(&mut self, slot: u32) -> Option<&mut T> {
        self.slots.get_mut(slot as usize).and_then(|c| c.as_mut())
    }

    /// The conn in `slot` only if it is still generation `gen`.
    pub fn get_gen(&mut self, slot: u32, gen: u16) -> Option<&mut T> {
        self.get_mut(slot).filter(|c| c.gen() == gen)
    }

    pub fn remove(&mut self, slot: u32) -> Option<T> {
        let c = self.slots.get_mut(slot as usize)?.take()?;
        self.gens[slot as usize] = self.gens[slot as usize].wrapping_add(1);
        self.free.push(slot);
        self.len -= 1;
        Some(c)
    }

    /// Occupied slot numbers (a copy, so callers may mutate while iterating).
    pub fn slots(&self) -> Vec<u32> {
        (0..self.slots.len() as u32).filter(|&i| self.slots[i as usize].is_some()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every occupied slot's value.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.slots.iter_mut().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_change_on_reuse() {
        // Only exercises slot bookkeeping; the Conn payload is a placeholder.
        let mut s: Slab = Slab::default();
        assert!(s.is_empty());
        s.slots.push(None);
        s.gens.push(7);
        s.free.push(0);
        assert_eq!(s.gens[0], 7);
        assert!(s.remove(0).is_none(), "removing an empty slot is a no-op");
        assert_eq!(s.gens[0], 7);
    }
}
