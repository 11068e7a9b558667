//! The epoll driver's glue for multiplexed pools (redis, memcache,
//! redis_cluster): the same `PoolSession`s and `MuxPools` as the io_uring driver, on mio.
//!
//! Owner: the epoll worker (a child module of `epoll`, so it sees the
//! driver's private fields), and its `MuxIo` implementation (the shared
//! half is `worker/mux_drive.rs`; the read and write loops are
//! `mux_io.rs`). How it drives a session:
//! - events only set a socket's readable/writable flags and list it;
//!   `mux_pump` then reads each listed socket (into the worker's one
//!   scratch buffer: clients own no receive buffer) and `mux_flush` applies
//!   intents and writes what the sessions queued, once per batch, so
//!   requests of many clients leave in one write per backend connection;
//! - a batch in which clients sent requests writes the replies first, then
//!   takes the events that came meanwhile without waiting, then writes
//!   each backend once (`flush_replies_then_reap`);
//! - writes go straight from the session's slice (a synchronous write
//!   needs no owned copy); a short read ends a socket's read loop unless
//!   the peer hung up (edge-triggered: new data raises a new event).
//!
//! Invariant: a socket is registered under its slab key (slot and
//! generation, see `token`), so a stale event for a closed socket never
//! reaches the socket that took its slot.

use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpStream;
use mio::Interest;

use super::mux_connect::connect_result;
use super::{token, EpollDriver, KIND_MUX};
use crate::route::PoolSnapshot;
use crate::session::mux::{BackendId, ClientClose};
use crate::tls::TlsConn;
use crate::worker::mux_drive::{MuxIo, MuxParts};
use crate::worker::mux_pools::MKind;
use crate::worker::slab::Generational;
use crate::worker::sys;
use crate::worker::tls_backend;
use crate::worker::tls_io;

/// One socket of a multiplexed pool.
pub(super) struct ESock {
    pub(super) gen: u16,
    pub(super) entry: u32,
    pub(super) kind: MKind,
    pub(super) stream: TcpStream,
    pub(super) readable: bool,
    pub(super) writable: bool,
    /// The peer hung up: read until EOF even after a short read.
    pub(super) hup: bool,
    /// Backends: the connect completed.
    pub(super) connected: bool,
    /// Clients: listed in the entry's `paused`.
    pub(super) paused: bool,
    pub(super) stat_id: usize,
    /// Clients of a TLS listener: their TLS session (`worker::tls_io`).
    pub(super) tls: Option<Box<TlsConn>>,
    /// Closed by its session, writing its last ciphertext (`linger.rs`).
    pub(super) linger: bool,
    /// Plaintext backends: the buffer reads land in and the session frames
    /// replies from, without a copy (`PoolSession::handle_backend_rx`).
    pub(super) rx: Option<Box<bytes::BytesMut>>,
    /// Plaintext backends: a read returned data since the last periodic
    /// tick. A backend without one, holding no partial reply, is idle: the
    /// tick releases its `rx` (`mux_io.rs`), the next read takes a new one.
    pub(super) rx_used: bool,
}

impl Generational for ESock {
    fn gen(&self) -> u16 {
        self.gen
    }
    fn set_gen(&mut self, gen: u16) {
        self.gen = gen;
    }
}

impl EpollDriver {
    /// A client accepted on a multiplexed pool's listener.
    pub(super) fn mux_accept(
        &mut self,
        pool: &PoolSnapshot,
        sock: socket2::Socket,
        peer: Option<SocketAddr>,
        plain: bool,
        now: Instant,
    ) {
        // A rejected client's socket drops, and closes, here.
        if !crate::worker::mux_admit::source_admits(pool, plain, || sock.peer_addr().ok().and_then(|a| a.as_socket())) {
            return;
        }
        // Before admission: a TLS session that cannot start is never
        // counted as a client.
        let Ok(tls) = tls_io::accept(pool, plain, now, &self.core.stats.tls) else { return };
        let Some((idx, rate)) = self.mux_admit(pool, peer) else { return };
        let _ = sock.set_nonblocking(true);
        sys::mux_client_options(sys::raw(&sock), pool.cfg.shard.as_ref().is_some_and(|s| s.tcpkeepalive));
        // A unix socket client rides in a TcpStream too: the driver only
        // reads, writes and shuts it down, the same syscalls on AF_UNIX.
        let mut stream = TcpStream::from_std(sock.into());
        let Some(e) = self.mux.get_mut(idx) else { return };
        let local = if e.session.wants_local_addr() { stream.local_addr().ok() } else { None };
        let id = e.session.add_client(local);
        if e.session.wants_client_peer() {
            e.session.set_client_peer(id, stream.peer_addr().ok());
        }
        if let Some(rate) = rate {
            e.session.set_client_rate(id, rate);
        }
        let (slot, gen) = self.msocks.next_key();
        let interest = Interest::READABLE | Interest::WRITABLE;
        if self.poll.registry().register(&mut stream, token(slot, gen, KIND_MUX), interest).is_err() {
            e.session.close_client(id, ClientClose::Error(libc::EIO));
            return;
        }
        let s = ESock {
            gen,
            entry: idx as u32,
            kind: MKind::Client(id),
            stream,
            readable: true,
            writable: true,
            hup: false,
            connected: true,
            paused: false,
            stat_id: 0,
            tls,
            linger: false,
            rx: None,
            rx_used: false,
        };
        let got = self.msocks.insert(s);
        debug_assert_eq!(got, slot);
        if let Some(old) = e.set_client_sock(id, slot) {
            self.mux_close_sock(old);
        }
        self.mux_ready.push((slot, gen));
    }

    /// A readiness event on socket `slot`.
    pub(super) fn mux_event(&mut self, slot: u32, gen: u16, ev: &mio::event::Event) {
        let Some(s) = self.msocks.get_gen(slot, gen) else { return };
        s.readable |= ev.is_readable() || ev.is_read_closed() || ev.is_error();
        s.writable |= ev.is_writable() || ev.is_write_closed() || ev.is_error();
        s.hup |= ev.is_read_closed() || ev.is_error();
        self.mux_ready.push((slot, gen));
    }

    /// Reads every socket that had an event (the caller flushes).
    pub(super) fn mux_pump(&mut self, now: Instant) {
        let ready = std::mem::take(&mut self.mux_ready);
        for &(slot, gen) in &ready {
            // A socket closed earlier in the batch may have lent its slot.
            if self.msocks.get_gen(slot, gen).is_some() {
                self.mux_service(slot, now);
            }
        }
        self.mux_ready = ready;
        self.mux_ready.clear();
    }

    /// Ends a pass in which clients sent requests, as the io_uring driver
    /// does (`uring/wait.rs`): writes the replies (and any other client
    /// output) first, holding the requests queued for the backends; takes
    /// the events that came meanwhile without waiting and reads those
    /// sockets; the caller's `mux_flush` then writes each backend
    /// everything queued for it in one write.
    pub(super) fn flush_replies_then_reap(&mut self, events: &mut mio::Events, now: Instant) {
        self.hold_backends = true;
        self.mux_flush(now);
        self.hold_backends = false;
        match self.poll.poll(events, Some(std::time::Duration::ZERO)) {
            Ok(()) => self.dispatch_events(events, now),
            // Nothing lost: edge-triggered readiness stays pending for the
            // next wait.
            Err(e) => tracing::trace!(worker = self.core.id, err = %e, "epoll: reap between flushes"),
        }
        self.mux_pump(now);
        // What the reap read goes out with the caller's flush: the next
        // pass reaps again only if it reads requests of its own.
        self.pass_requests = false;
    }

    /// Completes a connect, reads what is readable, writes what is queued.
    fn mux_service(&mut self, slot: u32, now: Instant) {
        let Some(s) = self.msocks.get_mut(slot) else { return };
        if s.linger {
            return self.mux_linger_service(slot);
        }
        if let MKind::Backend(b) = s.kind {
            if !s.connected {
                if !(s.readable || s.writable) {
                    return;
                }
                match connect_result(&s.stream) {
                    None => return, // still connecting
                    Some(Ok(())) => {
                        if !self.mux_backend_connected(slot, b, now) {
                            return;
                        }
                    }
                    Some(Err(errno)) => {
                        let (entry, sid) = (s.entry as usize, s.stat_id);
                        return self.mux_connect_failed(entry, b, sid, errno, now);
                    }
                }
            }
        }
        self.mux_read(slot, now);
        self.mux_write(slot, now);
    }

    pub(super) fn mux_close_sock(&mut self, slot: u32) {
        let Some(mut s) = self.msocks.remove(slot) else { return };
        let _ = self.poll.registry().deregister(&mut s.stream);
        if s.connected && matches!(s.kind, MKind::Backend(_)) {
            self.core.mux_backend_closed(s.stat_id);
            if let Some(t) = s.tls.as_deref() {
                tls_backend::abandoned(t, Instant::now(), &self.core.stats.tls_backend);
            }
        }
    }

    /// Applies every session's intents and writes what it queued, until
    /// nothing changes.
    pub(super) fn mux_flush(&mut self, now: Instant) {
        self.mux.enforce_buffer_cap(&self.core);
        self.mux_flush_entries(now);
        self.mux.reap();
    }

    /// Deadlines (and, on the periodic tick, stats export and TLS
    /// handshake timeouts).
    pub(super) fn mux_tick(&mut self, periodic: bool, now: Instant) {
        if periodic && self.core.any_tls() {
            let mut expired = Vec::new();
            for slot in 0..self.msocks.capacity() {
                let Some(s) = self.msocks.get_mut(slot) else { continue };
                if let (MKind::Client(id), Some(t), false) = (s.kind, s.tls.as_deref_mut(), s.linger) {
                    if t.take_expired(now) {
                        expired.push((s.entry as usize, id));
                    }
                }
            }
            tls_io::expire_handshakes(&mut self.mux, &expired, &self.core.stats.tls);
        }
        if periodic && !self.mux_linger.is_empty() {
            self.mux_linger_expire(now);
        }
        if periodic {
            self.mux_release_idle_rx();
        }
        self.mux_tick_sessions(periodic, now);
        self.mux_flush(now);
    }
}

impl MuxIo for EpollDriver {
    #[inline]
    fn mux_parts(&mut self) -> MuxParts<'_> {
        MuxParts {
            pools: &mut self.mux,
            core: &mut self.core,
            sends: &mut self.mux_sends,
            resumes: &mut self.mux_resumes,
            hold_backends: self.hold_backends,
        }
    }

    #[inline]
    fn io_send(&mut self, slot: u32, now: Instant) {
        self.mux_write(slot, now);
    }

    #[inline]
    fn io_resume_read(&mut self, slot: u32, now: Instant) {
        if let Some(s) = self.msocks.get_mut(slot) {
            s.paused = false;
        }
        self.mux_read(slot, now);
    }

    /// A TLS client with ciphertext still queued lingers (`linger.rs`).
    #[inline]
    fn io_close(&mut self, slot: u32) {
        if !self.mux_linger(slot) {
            self.mux_close_sock(slot);
        }
    }

    fn io_connect(&mut self, idx: usize, b: BackendId, addr: SocketAddr, sid: usize) -> Result<(), i32> {
        self.start_connect(idx, b, addr, sid)
    }

    fn io_backend_timed_out(&mut self, slot: u32) {
        self.mux_backend_timed_out(slot);
    }

    fn io_close_remaining(&mut self) {
        for slot in 0..self.msocks.capacity() {
            self.mux_close_sock(slot);
        }
    }
}
