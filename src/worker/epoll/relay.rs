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

use super::{EConn, EpollDriver};
use crate::session::{CloseReason, Intent, Side};
use crate::worker::core::WorkerCore;
use crate::worker::relay::RelayIo;
use crate::worker::relay_tls;
use crate::worker::slab::Slab;

impl EpollDriver {
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
                while c.readable[s] && relay_tls::wants_read(&c.r, side) {
                    let Some(sock) = c.socks[s].as_mut() else {
                        break;
                    };
                    match sock.read(&mut self.scratch) {
                        Ok(0) => {
                            relay_tls::eof(&mut c.r, side, &*self.core.stats);
                            c.readable[s] = false;
                        }
                        Ok(n) => {
                            // A short read drained the socket: edge-triggered
                            // epoll reports the next bytes as a new event, so
                            // the read that would return EAGAIN is skipped
                            // (one syscall per message at pipeline 1; epoll(7)
                            // allows this for stream sockets). Not after a
                            // read-side close: no new edge follows that one.
                            if n < self.scratch.len() && !c.rdhup[s] {
                                c.readable[s] = false;
                            }
                            relay_tls::data(&mut c.r, side, &self.scratch[..n], now, &*self.core.stats);
                            if c.r.session.is_mongo() {
                                route = route.or(c.r.session.take_route());
                                self.core.record_mongo(&c.r.pool, c.r.backend, &mut c.r.session);
                            }
                            if side == Side::Client {
                                self.core.count_bytes(&c.r.pool, n, 0);
                                if c.r.session.is_mongo() {
                                    self.core.limit_mongo(&c.r.pool, &mut c.r.session, n, now);
                                }
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.readable[s] = false,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            relay_tls::error(&mut c.r, side, e.raw_os_error().unwrap_or(libc::EIO), &*self.core.stats)
                        }
                    }
                    progress = true;
                }
                while c.writable[s] {
                    let Some(sock) = c.socks[s].as_mut() else {
                        break;
                    };
                    let Some(buf) = relay_tls::transmit(&mut c.r, side, now) else {
                        break;
                    };
                    match sock.write(buf) {
                        Ok(n) => {
                            relay_tls::sent(&mut c.r, side, n, now);
                            if side == Side::Client {
                                self.core.count_bytes(&c.r.pool, 0, n);
                            }
                            progress = true;
                        }
                        Err(e) => {
                            relay_tls::sent(&mut c.r, side, 0, now);
                            match e.kind() {
                                io::ErrorKind::WouldBlock => c.writable[s] = false,
                                io::ErrorKind::Interrupted => {}
                                _ => relay_tls::error(
                                    &mut c.r,
                                    side,
                                    e.raw_os_error().unwrap_or(libc::EIO),
                                    &*self.core.stats,
                                ),
                            }
                        }
                    }
                }
            }
            while let Some(intent) = c.r.session.poll_intent() {
                progress = true;
                match intent {
                    Intent::ShutdownWrite(side) => {
                        if !relay_tls::shutdown_write(&mut c.r, side) {
                            continue; // close_notify goes out with the next writes
                        }
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

    /// The periodic tick: each relay's deadlines (TLS handshakes, connect,
    /// idle, retire).
    pub(super) fn tick_relays(&mut self, now: Instant) {
        for slot in 0..self.conns.capacity() {
            if let Some(c) = self.conns.get_mut(slot) {
                relay_tls::tick(&mut c.r, now, &*self.core.stats);
                self.drive(slot, now);
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
        if c.r.backend_counted {
            self.core.backend_closed(&c.r.pool, c.r.backend);
        }
        self.core.client_closed(&c.r.pool, reason);
    }
}

impl RelayIo for EpollDriver {
    type Rec = EConn;

    #[inline]
    fn relay_parts(&mut self) -> (&mut Slab<EConn>, &mut WorkerCore) {
        (&mut self.conns, &mut self.core)
    }

    #[inline]
    fn io_connect(&mut self, slot: u32) {
        self.connect(slot);
    }

    #[inline]
    fn io_pump(&mut self, slot: u32, now: Instant) {
        self.drive(slot, now);
    }
}
