//! Idle clients hold no buffers: a client's input buffer, reply queue and
//! outbound bytes are released once it has nothing in flight, so the
//! memory of an idle connection is its boxed `Client` and a few table
//! entries (bounded by `tests_size.rs`; measured by
//! `scripts/bench-memory.sh`).
//!
//! Releasing happens at the session tick (every 250 ms), not per request:
//! a client at pipeline 1 reuses its buffers between requests, and only a
//! client that stayed quiet until the tick gives them back. Invariant: a
//! client with buffers to release is listed in `trim` (once:
//! `trim_listed`) by `handle_client_data`, from its first data after a
//! release until a tick finds it idle; a
//! client that is not listed holds no buffer capacity. What was freed goes
//! back to the OS at the next ticks (`crate::purge`).

use super::client::Client;
use super::{client_in, MuxSession};

impl MuxSession {
    /// Releases the buffers of listed clients that are idle now; busy ones
    /// stay listed for the next tick. Closed ones drop out.
    pub(super) fn trim_idle(&mut self) {
        let (clients, before) = (&mut self.clients, self.trim.len());
        self.trim.retain(|&id| {
            let Some(c) = client_in(clients, id) else { return false };
            let released = c.release_idle_buffers();
            c.trim_listed = !released;
            !released
        });
        if self.trim.len() < before {
            crate::purge::released();
        }
        crate::purge::tick();
    }
}

impl Client {
    /// Drops buffer capacity if nothing is buffered, queued or in flight;
    /// returns whether it did.
    pub(super) fn release_idle_buffers(&mut self) -> bool {
        let idle = self.inbuf.is_empty() && self.slots.is_empty() && self.out.is_empty() && !self.out.in_flight();
        if idle {
            self.inbuf = bytes::BytesMut::new();
            self.slots = std::collections::VecDeque::new();
            self.out = Default::default();
        }
        idle
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{b, cmd, route, H};
    use super::super::ClientId;

    /// (input buffer, reply queue) capacity of a live client.
    fn caps(h: &H, id: ClientId) -> Option<(usize, usize)> {
        let c = h.s.clients.get(id.index())?.as_deref()?;
        Some((c.inbuf.capacity(), c.slots.capacity()))
    }

    #[test]
    fn an_idle_client_gives_its_buffers_back_at_the_tick_and_a_busy_one_keeps_them() {
        let mut h = H::redis();
        let (idle, busy) = (h.s.add_client(), h.s.add_client());
        h.send(idle, &cmd(&["GET", "a"]));
        h.intents();
        h.take_backend(b(0));
        h.reply(b(0), b"$1\r\nx\r\n");
        assert_eq!(h.take_client(idle), b"$1\r\nx\r\n");
        h.send(busy, &cmd(&["GET", "b"]));
        h.intents();
        h.take_backend(b(1));
        assert!(caps(&h, idle).is_some_and(|(_, s)| s > 0), "buffers held before the tick");
        h.s.handle_tick(h.now, &route);
        assert_eq!(caps(&h, idle), Some((0, 0)), "idle: released");
        assert!(h.s.clients[idle.index()].as_deref().is_some_and(|c| !c.out.holds_buffers()));
        assert!(caps(&h, busy).is_some_and(|(_, s)| s > 0), "a reply still owed: kept");
        assert_eq!(h.s.trim, vec![busy], "and still listed");
        h.reply(b(1), b"$1\r\ny\r\n");
        assert_eq!(h.take_client(busy), b"$1\r\ny\r\n");
        h.s.handle_tick(h.now, &route);
        assert_eq!(caps(&h, busy), Some((0, 0)), "released once idle");
        assert!(h.s.trim.is_empty());
        // Served as before after a release.
        h.send(idle, &cmd(&["GET", "a"]));
        h.take_backend(b(0));
        h.reply(b(0), b"$1\r\nz\r\n");
        assert_eq!(h.take_client(idle), b"$1\r\nz\r\n");
        assert_eq!(h.s.trim, vec![idle], "listed again by its new data");
    }
}
