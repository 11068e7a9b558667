//! The epoll driver's mongos hooks: retiring sessions after a snapshot
//! change and routing deferred (`affinity = "app"`) sessions once their
//! handshake arrived.
//!
//! Owner: the epoll worker (a second `impl` block of `EpollDriver`, as a
//! child module so it sees the driver's private fields).

use std::time::Instant;

use super::super::mongo;
use super::EpollDriver;
use crate::protocol::mongo::HelloMeta;
use crate::session::CloseReason;

impl EpollDriver {
    /// After a snapshot change: mongos sessions whose backend left close at
    /// their next message boundary.
    pub(super) fn retire_sessions(&mut self, now: Instant) {
        for slot in 0..self.conns.len() {
            let Some(c) = self.conns[slot].as_mut().filter(|c| c.session.is_mongo()) else { continue };
            if let Some(deadline) = self.core.retire_check(&c.pool, c.backend, c.session.awaiting_route(), now) {
                c.session.retire(CloseReason::Retired, deadline);
                self.drive(slot, now);
            }
        }
    }

    /// `affinity = "app"`: the handshake arrived; pick and connect.
    pub(super) fn route_deferred(&mut self, slot: usize, meta: Option<HelloMeta>, now: Instant) {
        let Some(c) = self.conns[slot].as_mut() else {
            return;
        };
        let key = mongo::app_key(&c.key, meta.as_ref());
        let pool = c.pool.clone();
        match self.core.route(&pool, &key) {
            Some((pool, b)) => {
                c.pool = pool;
                c.key = key;
                c.backend = b;
                c.session.handle_reconnect(now);
                self.connect(slot);
                if let Some(c) = self.conns[slot].as_mut() {
                    self.core.record_mongo(&c.pool, c.backend, &mut c.session);
                }
            }
            None => c.session.handle_connect_failed(libc::EHOSTUNREACH, false),
        }
    }
}
