//! The driver-independent half of a tcp/mongos relay (one client socket,
//! one backend socket, one `TcpSession`): the record both drivers keep per
//! client (`Relay`), and what they do alike with it through `RelayIo`:
//! retrying a failed connect on another backend, routing a deferred
//! (`affinity = "app"`) session once its handshake arrived, and retiring
//! mongos sessions after a snapshot change.
//!
//! Owner: the worker's driver; each keeps its relays in a `slab::Slab` of
//! its own record type (`uring::conn::Conn`, `epoll::EConn`), which holds a
//! `Relay`. Invariants: a client gets at most `MAX_CONNECT_ATTEMPTS`
//! connects, and what it sent meanwhile stays buffered in its session for
//! the next one; `backend_counted` is set exactly when `backend_opened`
//! was counted, so `backend_closed` is counted once for it.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use crate::protocol::mongo::HelloMeta;
use crate::route::PoolSnapshot;
use crate::session::{CloseReason, TcpSession};
use crate::worker::core::WorkerCore;
use crate::worker::mongo;
use crate::worker::relay_tls::TlsSide;
use crate::worker::slab::{Generational, Slab};

/// Connect attempts per client (first try plus retries on other backends).
pub const MAX_CONNECT_ATTEMPTS: u8 = 3;

/// What both drivers keep per relayed client.
pub struct Relay {
    /// The pool as of accept: the session keeps the snapshot it started with.
    pub pool: Arc<PoolSnapshot>,
    /// Client-affinity key (the peer IP) for re-picks after a refused connect.
    pub key: Vec<u8>,
    /// Index into `pool.backends`.
    pub backend: u32,
    /// `backend_opened` was counted, so `backend_closed` must be too.
    pub backend_counted: bool,
    pub attempts: u8,
    pub session: TcpSession,
    /// `[client, backend]`: the TLS of each socket, `None` for plaintext
    /// (`worker::relay_tls`).
    pub tls: [Option<Box<TlsSide>>; 2],
}

impl Relay {
    pub fn new(pool: Arc<PoolSnapshot>, key: Vec<u8>, backend: u32, session: TcpSession) -> Relay {
        Relay { pool, key, backend, backend_counted: false, attempts: 0, session, tls: [None, None] }
    }
}

/// A driver's per-client record: it holds a `Relay`.
pub(super) trait RelayRec: Generational {
    fn relay(&mut self) -> &mut Relay;
}

/// What a driver does with a relay's sockets.
pub(super) trait RelayIo {
    type Rec: RelayRec;
    fn relay_parts(&mut self) -> (&mut Slab<Self::Rec>, &mut WorkerCore);
    /// Opens a socket to the relay's current backend and starts the connect.
    fn io_connect(&mut self, slot: u32);
    /// Runs the session until it stops making progress (bytes, intents).
    fn io_pump(&mut self, slot: u32, now: Instant);

    /// The connect of relay `slot` failed with `errno` (its socket is
    /// already closed): reports it to the session and, while attempts are
    /// left and another backend is healthy, connects there.
    fn relay_connect_failed(&mut self, slot: u32, errno: i32, now: Instant) {
        let (conns, core) = self.relay_parts();
        let Some(c) = conns.get_mut(slot) else { return };
        let r = c.relay();
        let (pool, failed, attempts) = (r.pool.clone(), r.backend, r.attempts);
        let next = core.repick(&pool, &r.key, failed).filter(|_| attempts < MAX_CONNECT_ATTEMPTS);
        r.session.handle_connect_failed(errno, next.is_some());
        match next {
            Some(b) => {
                tracing::debug!(pool = %pool.cfg.name, errno, "connect failed, retrying on another backend");
                r.backend = b;
                r.session.handle_reconnect(now);
                self.io_connect(slot);
            }
            None => {
                tracing::warn!(pool = %pool.cfg.name, backend = %pool.backends[failed as usize].spec.name,
                    err = %io::Error::from_raw_os_error(errno), "backend connect failed")
            }
        }
    }

    /// `affinity = "app"`: the handshake arrived; pick and connect.
    fn route_deferred(&mut self, slot: u32, meta: Option<HelloMeta>, now: Instant) {
        let (conns, core) = self.relay_parts();
        let Some(c) = conns.get_mut(slot) else { return };
        let r = c.relay();
        let key = mongo::app_key(&r.key, meta.as_ref());
        match core.route(&r.pool, &key) {
            Some((pool, b)) => {
                r.pool = pool;
                r.key = key;
                r.backend = b;
                r.session.handle_reconnect(now);
                self.io_connect(slot);
                let (conns, core) = self.relay_parts();
                if let Some(c) = conns.get_mut(slot) {
                    let r = c.relay();
                    core.record_mongo(&r.pool, r.backend, &mut r.session);
                }
            }
            None => r.session.handle_connect_failed(libc::EHOSTUNREACH, false),
        }
    }

    /// After a snapshot change: mongos sessions whose backend left close at
    /// their next message boundary.
    fn retire_sessions(&mut self, now: Instant) {
        for slot in self.relay_parts().0.slots() {
            let (conns, core) = self.relay_parts();
            let Some(c) = conns.get_mut(slot) else { continue };
            let r = c.relay();
            if !r.session.is_mongo() {
                continue;
            }
            if let Some(deadline) = core.retire_check(&r.pool, r.backend, r.session.awaiting_route(), now) {
                r.session.retire(CloseReason::Retired, deadline);
                self.io_pump(slot, now);
            }
        }
    }
}
