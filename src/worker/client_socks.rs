//! The table from a multiplexed session's `ClientId`s to the driver's
//! client socket handles (one per `MuxEntry`).
//!
//! Owner: one worker thread. Invariants:
//! - a slot is indexed by `ClientId::index()` and remembers the full id, so
//!   a slot reused by a newer client never answers for the old id;
//! - a session forgets a client when it closes it, but the driver applies
//!   the `CloseClient` only after the batch; if a client accepted in the
//!   same batch reuses the index, `set` hands back the old client's socket,
//!   which the driver must close at once (nothing else names it any more).

use crate::session::mux::ClientId;

/// A driver socket handle meaning "none".
pub const NO_SOCK: u32 = u32::MAX;

#[derive(Default)]
pub struct ClientSocks {
    slots: Vec<Option<(ClientId, u32)>>,
}

impl ClientSocks {
    /// `id`'s socket, or `NO_SOCK`.
    pub fn get(&self, id: ClientId) -> u32 {
        match self.slots.get(id.index()) {
            Some(&Some((owner, sock))) if owner == id => sock,
            _ => NO_SOCK,
        }
    }

    /// Records `id`'s socket. Returns the socket of an older client that
    /// held the same index (the session closed it; its `CloseClient` is
    /// still queued and will no longer find it here): close it now.
    #[must_use = "a displaced socket must be closed"]
    pub fn set(&mut self, id: ClientId, sock: u32) -> Option<u32> {
        if self.slots.len() <= id.index() {
            self.slots.resize(id.index() + 1, None);
        }
        let old = self.slots[id.index()].replace((id, sock));
        old.filter(|&(owner, s)| owner != id && s != sock).map(|(_, s)| s)
    }

    /// Forgets `id`'s socket (only if the slot still belongs to it).
    pub fn clear(&mut self, id: ClientId) -> u32 {
        let sock = self.get(id);
        if sock != NO_SOCK {
            self.slots[id.index()] = None;
        }
        sock
    }

    /// Every client socket handle.
    pub fn iter(&self) -> impl Iterator<Item = (ClientId, u32)> + '_ {
        self.slots.iter().flatten().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(idx: u32, gen: u32) -> ClientId {
        ClientId { idx, gen }
    }

    #[test]
    fn a_reused_index_hands_back_the_old_clients_socket() {
        let mut t = ClientSocks::default();
        assert_eq!(t.set(id(3, 1), 10), None);
        assert_eq!(t.get(id(3, 1)), 10);
        // The session closed (3,1) and gave index 3 to a new client before
        // the driver applied the close: the old socket comes back.
        assert_eq!(t.set(id(3, 2), 11), Some(10));
        assert_eq!(t.get(id(3, 1)), NO_SOCK, "the old id no longer names a socket");
        assert_eq!(t.clear(id(3, 1)), NO_SOCK, "the late CloseClient finds nothing");
        assert_eq!(t.get(id(3, 2)), 11, "and leaves the new client alone");
        assert_eq!(t.iter().collect::<Vec<_>>(), vec![(id(3, 2), 11)]);
    }

    #[test]
    fn a_closed_slot_displaces_nothing() {
        let mut t = ClientSocks::default();
        assert_eq!(t.set(id(0, 1), 5), None);
        assert_eq!(t.clear(id(0, 1)), 5);
        assert_eq!(t.set(id(0, 2), 5), None);
        assert_eq!(t.set(id(7, 1), 6), None, "a new index grows the table");
        assert_eq!(t.iter().count(), 2);
    }
}
