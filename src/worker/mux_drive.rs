//! The driver-independent half of running multiplexed pools (redis,
//! memcache, redis_cluster): admitting an accepted client, applying a
//! session's intents, flushing what it queued, ticking its deadlines and
//! closing everything at the end of a drain. Each driver implements the
//! four socket operations of `MuxIo` (send, resume a read, close, connect)
//! and inherits the rest, so the io_uring and epoll drivers cannot drift
//! apart in what they do with a session, only in how they move bytes.
//!
//! Owner: the worker's driver (`MuxIo` is implemented by `UringDriver` and
//! `EpollDriver`, on the `MuxPools` they own). Invariants:
//! - a socket slot named by an entry (`backends`, the client map) is live
//!   in the driver's socket table until `io_close` is called for it, and
//!   `io_close` is called once per slot (the entry forgets the slot first);
//! - `mux_flush_entry` loops until a pass makes no progress (bounded at 64
//!   passes, so a session that keeps asking cannot starve the worker);
//! - the trait's provided methods are generic, monomorphised per driver:
//!   no dynamic dispatch on the hot path.

use std::net::SocketAddr;
use std::time::Instant;

use crate::route::PoolSnapshot;
use crate::session::mux::{BackendClose, BackendId, ClientClose, ClientId, MuxIntent};
use crate::session::ratelimit::ClientRate;
use crate::worker::core::WorkerCore;
use crate::worker::mux_pools::{MuxPools, NO_SOCK};
use crate::worker::tls_backend::Outcome;

/// Borrows of the driver's state that the shared logic works on.
pub(super) struct MuxParts<'a> {
    pub pools: &'a mut MuxPools,
    pub core: &'a mut WorkerCore,
    /// Scratch lists, kept to reuse their allocations batch after batch.
    pub sends: &'a mut Vec<u32>,
    pub resumes: &'a mut Vec<u32>,
    /// Leave dirty backends for the next flush: send replies only
    /// (`uring/wait.rs`, `flush_replies_then_reap`).
    pub hold_backends: bool,
}

/// What a driver does with the sockets of multiplexed sessions.
pub(super) trait MuxIo {
    fn mux_parts(&mut self) -> MuxParts<'_>;
    /// Sends (or starts sending) what the session queued for `slot`.
    fn io_send(&mut self, slot: u32, now: Instant);
    /// The session wants a paused client's bytes again: read (or re-arm).
    fn io_resume_read(&mut self, slot: u32, now: Instant);
    /// Detaches `slot` from its session and closes its socket (at once, or
    /// once the kernel is done with it).
    fn io_close(&mut self, slot: u32);
    /// Opens a socket to `addr` for backend `b` of entry `idx` and starts
    /// its connect; records the slot in the entry's `backends`. `sid` is
    /// the backend's stat id. On failure returns the errno; the caller
    /// reports it.
    fn io_connect(&mut self, idx: usize, b: BackendId, addr: SocketAddr, sid: usize) -> Result<(), i32>;
    /// Backend socket `slot` is about to close because a deadline passed:
    /// a TLS handshake still running on it counts as "timeout"
    /// (`tls_backend::timed_out`).
    fn io_backend_timed_out(&mut self, slot: u32);
    /// After the sessions are gone: closes every socket still open.
    fn io_close_remaining(&mut self);

    /// Admission of a client accepted on `pool`'s listener from `peer`
    /// (looked up only when `ip_limits::needs_peer`): the index of its
    /// session and its per-IP limit state, or `None` when it is rejected
    /// (the caller closes it). The per-IP connection count comes first, so
    /// a client it refuses takes nothing else.
    fn mux_admit(&mut self, pool: &PoolSnapshot, peer: Option<SocketAddr>) -> Option<(usize, Option<ClientRate>)> {
        let p = self.mux_parts();
        let rate = p.core.admit_ip(pool, peer).ok()?;
        if let Err(reason) = p.core.admit_mux(pool) {
            tracing::debug!(pool = %pool.cfg.name, ?reason, "client rejected at accept");
            return None;
        }
        let idx = p.pools.live_entry(&pool.cfg.name);
        if idx.is_none() {
            p.core.mux_client_closed(pool, ClientClose::Shutdown);
        }
        Some((idx?, rate))
    }

    /// Backend `b` of entry `idx` is gone (EOF, an error): forgets and
    /// closes its socket, then tells the session.
    fn mux_backend_lost(&mut self, idx: usize, b: BackendId, errno: Option<i32>, now: Instant) {
        self.mux_drop_backend(idx, b);
        if let Some(e) = self.mux_parts().pools.get_mut(idx) {
            e.session.handle_backend_closed(b, errno, now);
        }
    }

    /// The connect to backend `b` failed with `errno`.
    fn mux_connect_failed(&mut self, idx: usize, b: BackendId, sid: usize, errno: i32, now: Instant) {
        self.mux_parts().core.mux_connect_failed(sid);
        self.mux_drop_backend(idx, b);
        if let Some(e) = self.mux_parts().pools.get_mut(idx) {
            e.session.handle_backend_connect_failed(b, errno, now);
        }
    }

    /// Carries out what `tls_backend` decided for backend `b` of entry
    /// `idx` (stat id `sid`); true when its socket is gone.
    fn mux_backend_act(&mut self, idx: usize, b: BackendId, sid: usize, act: Outcome, now: Instant) -> bool {
        match act {
            Outcome::Nothing => return false,
            Outcome::ConnectFailed(errno) => self.mux_connect_failed(idx, b, sid, errno, now),
            Outcome::Lost(errno) => self.mux_backend_lost(idx, b, errno, now),
        }
        true
    }

    /// Forgets backend `b`'s socket and closes it.
    fn mux_drop_backend(&mut self, idx: usize, b: BackendId) {
        if let Some(slot) = self.mux_parts().pools.get_mut(idx).and_then(|e| e.backends.remove(&b)) {
            self.io_close(slot);
        }
    }

    /// Opens a connection to backend `b` of entry `idx` (closing the one it
    /// had, if any).
    fn mux_connect(&mut self, idx: usize, b: BackendId, now: Instant) {
        self.mux_drop_backend(idx, b);
        let Some(e) = self.mux_parts().pools.get_mut(idx) else { return };
        let sid = e.session.server_stat_id(b.server).unwrap_or(usize::MAX);
        let Some(addr) = e.session.backend_addr(b) else {
            return e.session.handle_backend_connect_failed(b, libc::EHOSTUNREACH, now);
        };
        if let Err(errno) = self.io_connect(idx, b, addr, sid) {
            let p = self.mux_parts();
            p.core.mux_connect_failed(sid);
            if let Some(e) = p.pools.get_mut(idx) {
                e.session.handle_backend_connect_failed(b, errno, now);
            }
        }
    }

    /// Applies every session's intents and sends what it queued, until
    /// nothing changes.
    fn mux_flush_entries(&mut self, now: Instant) {
        for idx in 0..self.mux_parts().pools.len() {
            self.mux_flush_entry(idx, now);
        }
    }

    /// Applies entry `idx`'s intents, sends what it queued and resumes the
    /// clients it wants to read again, until a pass makes no progress.
    fn mux_flush_entry(&mut self, idx: usize, now: Instant) {
        for _ in 0..64 {
            let mut progress = false;
            while let Some(intent) = self.mux_parts().pools.get_mut(idx).and_then(|e| e.session.poll_intent()) {
                progress = true;
                self.mux_intent(idx, intent, now);
            }
            let p = self.mux_parts();
            let hold = p.hold_backends;
            let Some(e) = p.pools.get_mut(idx) else { return };
            let (mut sends, mut resumes) = (std::mem::take(p.sends), std::mem::take(p.resumes));
            while let Some(b) = if hold { None } else { e.session.poll_dirty_backend() } {
                sends.extend(e.backends.get(&b).copied());
            }
            while let Some(c) = e.session.poll_dirty_client() {
                sends.push(e.client_sock(c));
            }
            let mut i = 0;
            while i < e.paused.len() {
                let id = e.paused[i];
                let sock = e.client_sock(id);
                if sock == NO_SOCK || e.session.wants_client_read(id) {
                    e.paused.swap_remove(i);
                    if sock != NO_SOCK {
                        resumes.push(sock);
                    }
                } else {
                    i += 1;
                }
            }
            progress |= !sends.is_empty() || !resumes.is_empty();
            for &slot in sends.iter().filter(|&&s| s != NO_SOCK) {
                self.io_send(slot, now);
            }
            for &slot in &resumes {
                self.io_resume_read(slot, now);
            }
            sends.clear();
            resumes.clear();
            let p = self.mux_parts();
            (*p.sends, *p.resumes) = (sends, resumes);
            if let Some(e) = p.pools.get_mut(idx) {
                e.report_recoveries(p.core);
            }
            if !progress {
                return;
            }
        }
    }

    /// Carries out one intent of entry `idx`'s session.
    fn mux_intent(&mut self, idx: usize, intent: MuxIntent, now: Instant) {
        match intent {
            MuxIntent::Connect(b) => self.mux_connect(idx, b, now),
            MuxIntent::CloseBackend(b, why) => {
                if why == BackendClose::TimedOut {
                    if let Some(&slot) = self.mux_parts().pools.get_mut(idx).and_then(|e| e.backends.get(&b)) {
                        self.io_backend_timed_out(slot);
                    }
                }
                self.mux_drop_backend(idx, b)
            }
            MuxIntent::CloseClient(id, why) => {
                let p = self.mux_parts();
                let Some(e) = p.pools.get_mut(idx) else { return };
                let slot = e.clear_client_sock(id);
                p.core.mux_client_closed(&e.pool, why);
                if slot != NO_SOCK {
                    self.io_close(slot);
                }
            }
            MuxIntent::ServerFailed { server, errno } => {
                let p = self.mux_parts();
                if let Some(e) = p.pools.get_mut(idx) {
                    e.report_failed(p.core, server, errno);
                }
            }
            MuxIntent::Report(report) => {
                let p = self.mux_parts();
                if let Some(e) = p.pools.get_mut(idx) {
                    e.report_cluster(p.core, report);
                }
            }
        }
    }

    /// Checks every session's deadlines; on the periodic tick also copies
    /// their counters to the worker's stats block. The caller flushes.
    fn mux_tick_sessions(&mut self, periodic: bool, now: Instant) {
        let p = self.mux_parts();
        for e in p.pools.entries.iter_mut().flatten() {
            e.session.handle_tick(now);
        }
        if periodic {
            p.pools.export_stats(p.core);
        }
    }

    /// The drain deadline passed (or no client is left): closes every
    /// client and backend socket of every session.
    fn mux_close_all(&mut self, now: Instant) {
        for idx in 0..self.mux_parts().pools.len() {
            let Some(e) = self.mux_parts().pools.get_mut(idx) else { continue };
            let clients: Vec<ClientId> = e.client_socks().map(|(id, _)| id).collect();
            for id in clients {
                e.session.close_client(id, ClientClose::Shutdown);
            }
            self.mux_flush_entry(idx, now);
            let Some(e) = self.mux_parts().pools.get_mut(idx) else { continue };
            let backends: Vec<u32> = e.backends.drain().map(|(_, s)| s).collect();
            for slot in backends {
                self.io_close(slot);
            }
        }
        // The drain is over: drop the sessions, so none opens another
        // connection (a cluster session reconnects to nodes it lost), and
        // close whatever socket is left.
        self.mux_parts().pools.entries.clear();
        self.io_close_remaining();
    }
}
