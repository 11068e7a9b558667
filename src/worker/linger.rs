//! The driver-independent half of lingering TLS clients: which closed
//! client socket lingers (`should_linger`) and the list of lingering
//! sockets with their deadlines (`LingerList`). A client socket its
//! session closed while ciphertext was still queued in its `TlsConn` (the
//! last reply, a close_notify, a handshake alert) stays open until that is
//! written, a write fails, or `tls_io::LINGER` passes; each driver keeps
//! only the I/O (`epoll::linger`, `uring::linger`).
//!
//! Owner: each driver holds one `LingerList`. Invariants: an entry names
//! a socket by slot and generation, so a slot reused since is never
//! closed by mistake; `expire` forgets entries whose socket no longer
//! lingers and hands back, once, those past their deadline.

use std::time::Instant;

use crate::tls::TlsConn;
use crate::worker::mux_pools::MKind;
use crate::worker::tls_io;

/// Whether a socket of `kind` with TLS session `tls`, which its session
/// just closed, lingers: a TLS client with ciphertext to write (after
/// `tls_io::closing` queued its close_notify). Backend sockets
/// (`backend_tls`) close at once: a session closes one only when nothing
/// is in flight on it, or it failed.
pub fn should_linger(kind: MKind, tls: Option<&mut TlsConn>) -> bool {
    if !matches!(kind, MKind::Client(_)) {
        return false;
    }
    tls.is_some_and(tls_io::closing)
}

/// Lingering sockets: slot, generation and deadline.
#[derive(Debug, Default)]
pub struct LingerList {
    list: Vec<(u32, u16, Instant)>,
}

impl LingerList {
    /// Socket `slot` (generation `gen`) starts lingering at `now`.
    pub fn add(&mut self, slot: u32, gen: u16, now: Instant) {
        self.list.push((slot, gen, now + tls_io::LINGER));
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Periodic: forgets the sockets `lingers(slot, gen)` says are gone,
    /// and returns the slots past their deadline (the caller closes them).
    pub fn expire(&mut self, now: Instant, mut lingers: impl FnMut(u32, u16) -> bool) -> Vec<u32> {
        let mut due = Vec::new();
        self.list.retain(|&(slot, gen, deadline)| {
            if !lingers(slot, gen) {
                return false;
            }
            if now < deadline {
                return true;
            }
            due.push(slot);
            false
        });
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn expire_hands_back_due_sockets_once_and_forgets_gone_ones() {
        let t0 = Instant::now();
        let mut l = LingerList::default();
        l.add(1, 0, t0);
        l.add(2, 0, t0);
        l.add(3, 5, t0 + Duration::from_secs(1));
        // Slot 2 closed meanwhile; nothing is due yet.
        assert!(l.expire(t0, |slot, _| slot != 2).is_empty());
        let later = t0 + tls_io::LINGER;
        assert_eq!(l.expire(later, |_, _| true), [1]);
        assert!(!l.is_empty());
        assert_eq!(l.expire(later + Duration::from_secs(1), |_, _| true), [3]);
        assert!(l.is_empty());
    }
}
