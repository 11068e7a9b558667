//! The epoll driver's tcp/mongos relays: moving a client's and its
//! backend's bytes through the session (`drive`), closing the pair
//! (`finish`), retiring mongos sessions after a snapshot change and routing
//! deferred (`affinity = "app"`) sessions once their handshake arrived.
//!
//! Owner: the epoll worker (an `impl` block of `EpollDriver`, as a child
//! module so it sees the driver's private fields). Invariant: mio is
//! edge-triggered, so every event handler ends in `drive`, which runs the
//! session until it stops making progress.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::Instant;

use super::EpollDriver;
use crate::protocol::mongo::HelloMeta;
use crate::session::{CloseReason, Intent, Side};
use crate::worker::mongo;

impl EpollDriver {
    /// After a snapshot change: mongos sessions whose backend left close at
    /// their next message boundary.
    pub(super) fn retire_sessions(&mut self, now: Instant) {
        for slot in 0..self.conns.capacity() {
            let Some(c) = self.conns.get_mut(slot).filter(|c| c.session.is_mongo()) else { continue };
            if let Some(deadline) = self.core.retire_check(&c.pool, c.backend, c.session.awaiting_route(), now) {
                c.session.retire(CloseReason::Retired, deadline);
                self.drive(slot, now);
            }
        }
    }

    /// `affinity = "app"`: the handshake arrived; pick and connect.
    pub(super) fn route_deferred(&mut self, slot: u32, meta: Option<HelloMeta>, now: Instant) {
        let Some(c) = self.conns.get_mut(slot) else {
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
                if let Some(c) = self.conns.get_mut(slot) {
                    self.core.record_mongo(&c.pool, c.backend, &mut c.session);
                }
            }
            None => c.session.handle_connect_failed(libc::EHOSTUNREACH, false),
        }
    }

    /// Moves bytes and applies intents until nothing changes.
    pub(super) fn drive(&mut self, slot: u32, now: Instant) {
        loop {
            let Some(c) = self.conns.get_mut(slot) else {
                return;
            };
            let mut progress = false;
            let mut route = None;
            for side in [Side::Client, Side::Backend] {
                let s = side as usize;
                while c.readable[s] && c.session.wants_read(side) {
                    let Some(sock) = c.socks[s].as_mut() else {
                        break;
                    };
                    match sock.read(&mut self.scratch) {
                        Ok(0) => {
                            c.session.handle_eof(side);
                            c.readable[s] = false;
                        }
                        Ok(n) => {
                            c.session.handle_data(side, &self.scratch[..n], now);
                            if c.session.is_mongo() {
                                route = route.or(c.session.take_route());
                                self.core.record_mongo(&c.pool, c.backend, &mut c.session);
                            }
                            if side == Side::Client {
                                self.core.count_bytes(&c.pool, n, 0);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.readable[s] = false,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => c.session.handle_error(side, e.raw_os_error().unwrap_or(libc::EIO)),
                    }
                    progress = true;
                }
                while c.writable[s] {
                    let Some(buf) = c.session.poll_transmit(side) else {
                        break;
                    };
                    let Some(sock) = c.socks[s].as_mut() else {
                        break;
                    };
                    match sock.write(buf) {
                        Ok(n) => {
                            c.session.handle_sent(side, n, now);
                            if side == Side::Client {
                                self.core.count_bytes(&c.pool, 0, n);
                            }
                            progress = true;
                        }
                        Err(e) => {
                            c.session.handle_sent(side, 0, now);
                            match e.kind() {
                                io::ErrorKind::WouldBlock => c.writable[s] = false,
                                io::ErrorKind::Interrupted => {}
                                _ => c.session.handle_error(side, e.raw_os_error().unwrap_or(libc::EIO)),
                            }
                        }
                    }
                }
            }
            while let Some(intent) = c.session.poll_intent() {
                progress = true;
                match intent {
                    Intent::ShutdownWrite(side) => {
                        if let Some(s) = c.socks[side as usize].as_ref() {
                            let _ = s.shutdown(Shutdown::Write);
                        }
                    }
                    Intent::Close(reason) => return self.finish(slot, reason),
                }
            }
            if let Some(meta) = route {
                self.route_deferred(slot, meta, now);
                progress = true;
            }
            if !progress {
                return;
            }
        }
    }

    pub(super) fn finish(&mut self, slot: u32, reason: CloseReason) {
        let Some(mut c) = self.conns.remove(slot) else {
            return;
        };
        for s in c.socks.iter_mut().flatten() {
            let _ = self.poll.registry().deregister(s);
        }
        drop(c.socks);
        if c.backend_counted {
            self.core.backend_closed(&c.pool, c.backend);
        }
        self.core.client_closed(&c.pool, reason);
    }
}
