//! The epoll fallback driver (mio), running the same sans-IO sessions and
//! the same `WorkerCore` as the io_uring driver.
//!
//! Owner: one worker thread owns the poll instance, its sockets and their
//! buffers. Chosen when io_uring_setup fails or with `io = "epoll"`.
//! Invariants: mio is edge-triggered, so a socket's `readable`/`writable`
//! flag is cleared only by a WouldBlock, and every event handler ends in
//! `drive`, which runs the session until it stops making progress; every
//! socket is registered under its slab key (`token`: slot and generation),
//! so an event for a closed socket never reaches the one that took its
//! slot. Files mirror `uring/`: `listen`, `relay`, `mux`, plus `connect`.

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use crate::route::{Listener, PoolSnapshot};
use crate::session::{CloseReason, TcpSession};
use crate::worker::core::WorkerCore;
use crate::worker::linger::LingerList;
use crate::worker::mux_drive::MuxIo;
use crate::worker::mux_pools::MuxPools;
use crate::worker::relay::{Relay, RelayIo, RelayRec};
use crate::worker::slab::{Generational, Slab};
use crate::worker::sys;

const KIND_CLIENT: usize = 0;
const KIND_BACKEND: usize = 1;
const KIND_LISTENER: usize = 2;
const KIND_WAKE: usize = 3;
/// A socket of a multiplexed (redis/memcache) pool, see `epoll_mux`.
const KIND_MUX: usize = 4;
const TICK: Duration = Duration::from_millis(250);

mod connect;
mod linger;
mod listen;
mod mux;
mod mux_connect;
mod mux_io;
mod relay;

/// A registration's token: three low bits of kind, the slot above them up
/// to bit 31, the slot's generation in bits 47..32 (0 for listeners and
/// the wake fd). An event for a freed record (its slot reused, same batch
/// or later) misses the slab's generation check and is ignored.
fn token(slot: u32, gen: u16, kind: usize) -> Token {
    Token((gen as usize) << 32 | ((slot as usize) << 3 & 0xffff_ffff) | kind)
}

/// The inverse of `token`: (slot, generation, kind).
fn untoken(t: Token) -> (u32, u16, usize) {
    (((t.0 & 0xffff_ffff) >> 3) as u32, (t.0 >> 32) as u16, t.0 & 7)
}

pub(in crate::worker) struct EConn {
    gen: u16,
    /// The pool, backend and session (shared with the io_uring driver).
    r: Relay,
    /// `[client, backend]`.
    socks: [Option<TcpStream>; 2],
    readable: [bool; 2],
    writable: [bool; 2],
    /// The socket's last event reported a read-side close (or an error):
    /// a short read no longer proves it drained (no edge follows the FIN
    /// it already saw), so `drive` reads it until EOF or EAGAIN.
    rdhup: [bool; 2],
}

impl RelayRec for EConn {
    #[inline]
    fn relay(&mut self) -> &mut Relay {
        &mut self.r
    }
}

impl Generational for EConn {
    fn gen(&self) -> u16 {
        self.gen
    }
    fn set_gen(&mut self, gen: u16) {
        self.gen = gen;
    }
}

struct ELis {
    pool: Arc<PoolSnapshot>,
    listener: Arc<Listener>,
}

pub struct EpollDriver {
    poll: Poll,
    core: WorkerCore,
    conns: Slab<EConn>,
    listeners: Vec<Option<ELis>>,
    wake_fd: RawFd,
    scratch: Box<[u8]>,
    /// Sessions of multiplexed pools and their sockets.
    mux: MuxPools,
    msocks: Slab<mux::ESock>,
    /// Mux sockets with an event in this batch.
    mux_ready: Vec<(u32, u16)>,
    mux_sends: Vec<u32>,
    mux_resumes: Vec<u32>,
    /// Lingering TLS clients (slot, generation, deadline), `linger.rs`.
    mux_linger: LingerList,
    /// `[server] busy_poll_us` at start (`poll_events`).
    busy_poll_us: u32,
    /// A client sent requests in this pass (`mux_read`): the pass ends
    /// with `flush_replies_then_reap`.
    pass_requests: bool,
    /// Inside `flush_replies_then_reap`: leave requests queued for the
    /// backends (`MuxParts::hold_backends`).
    hold_backends: bool,
}

impl EpollDriver {
    pub fn new(core: WorkerCore, wake_fd: RawFd) -> io::Result<Self> {
        let poll = Poll::new()?;
        sys::set_nonblocking(wake_fd);
        poll.registry().register(&mut SourceFd(&wake_fd), token(0, 0, KIND_WAKE), Interest::READABLE)?;
        let busy_poll_us = core.snap.config.server.wait.busy_poll_us;
        Ok(EpollDriver {
            busy_poll_us,
            pass_requests: false,
            hold_backends: false,
            poll,
            core,
            conns: Slab::default(),
            listeners: Vec::new(),
            wake_fd,
            scratch: vec![0u8; 64 * 1024].into_boxed_slice(),
            mux: MuxPools::default(),
            msocks: Slab::default(),
            mux_ready: Vec::new(),
            mux_sends: Vec::new(),
            mux_resumes: Vec::new(),
            mux_linger: LingerList::default(),
        })
    }

    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        self.apply_snapshot(Instant::now());
        let mut next_tick = Instant::now() + TICK;
        loop {
            // A worker that cannot go on says so; `main` then exits.
            if let Some(e) = self.core.fatal.take() {
                return Err(e);
            }
            let now = Instant::now();
            if self.core.refresh(now) {
                self.apply_snapshot(now);
            }
            if self.core.drain_done(now) {
                self.for_each_conn(|s| s.close(CloseReason::Shutdown));
                self.mux_close_all(now);
                if self.conns.is_empty() && self.msocks.is_empty() {
                    return Ok(());
                }
            }
            // Wake for the periodic tick, the earliest mux deadline or the
            // end of an accept pause.
            let wake = [self.mux.next_deadline(), self.core.accept_resume_at()]
                .into_iter()
                .flatten()
                .fold(next_tick, Instant::min);
            let timeout = wake.saturating_duration_since(now);
            if let Err(e) = poll_events(&mut self.poll, &mut events, timeout, self.busy_poll_us) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            let now = Instant::now();
            // A snapshot published while we waited (a reload answered just
            // before a client connected) must route this batch's accepts.
            if self.core.refresh(now) {
                self.apply_snapshot(now);
            }
            // Out of descriptors a moment ago: try every listener again
            // (edge-triggered, its queued connections raise no new event).
            if self.core.poll_accept_resume(now) {
                for idx in 0..self.listeners.len() {
                    self.on_accept(idx, now);
                }
            }
            self.dispatch_events(&events, now);
            self.mux_pump(now);
            if std::mem::take(&mut self.pass_requests) {
                self.flush_replies_then_reap(&mut events, now);
            }
            self.mux_flush(now);
            let periodic = now >= next_tick;
            if periodic {
                next_tick = now + TICK;
                // Timed-out connects first: they retry on another backend,
                // where `handle_tick` alone would close the client.
                self.expire_connects(now);
                self.tick_relays(now);
            }
            if periodic || self.mux.next_deadline().is_some_and(|d| d <= now) {
                self.mux_tick(periodic, now);
            }
        }
    }

    /// Handles one batch of readiness events: accepts, relay sockets, and
    /// the multiplexed sockets' flags (`mux_event`; `mux_pump` reads them).
    fn dispatch_events(&mut self, events: &Events, now: Instant) {
        for ev in events.iter() {
            let (slot, gen, kind) = untoken(ev.token());
            match kind {
                KIND_WAKE => sys::eventfd_drain(self.wake_fd),
                KIND_LISTENER => self.on_accept(slot as usize, now),
                KIND_MUX => self.mux_event(slot, gen, ev),
                _ => {
                    let Some(c) = self.conns.get_gen(slot, gen) else {
                        continue;
                    };
                    if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                        c.readable[kind] = true;
                    }
                    c.rdhup[kind] |= ev.is_read_closed() || ev.is_error();
                    if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                        c.writable[kind] = true;
                    }
                    if kind == KIND_BACKEND && !c.r.session.is_open() {
                        self.on_connect_event(slot, now);
                    }
                    self.drive(slot, now);
                }
            }
        }
    }

    /// A new snapshot: listeners, mongos retirements, multiplexed sessions.
    fn apply_snapshot(&mut self, now: Instant) {
        // Sessions first: arming a listener may accept at once (epoll takes
        // what queued before it registered), and a client needs its session.
        self.mux.sync(&self.core, now);
        self.sync_listeners();
        self.retire_sessions(now);
        self.mux_flush(now);
    }

    fn for_each_conn(&mut self, mut f: impl FnMut(&mut TcpSession)) {
        let now = Instant::now();
        for slot in 0..self.conns.capacity() {
            if let Some(c) = self.conns.get_mut(slot) {
                f(&mut c.r.session);
                self.drive(slot, now);
            }
        }
    }
}

/// Waits up to `timeout` for events; with `busy_us` > 0 (`[server]
/// busy_poll_us`), first polls without sleeping for up to that long, so an
/// event that comes soon is taken without the thread (and its CPU) going to
/// sleep and being woken.
fn poll_events(poll: &mut Poll, events: &mut Events, timeout: Duration, busy_us: u32) -> io::Result<()> {
    if busy_us > 0 {
        let busy = Duration::from_micros(u64::from(busy_us)).min(timeout);
        let start = Instant::now();
        loop {
            poll.poll(events, Some(Duration::ZERO))?;
            if !events.is_empty() {
                return Ok(());
            }
            if start.elapsed() >= busy {
                break;
            }
            std::hint::spin_loop();
        }
        return poll.poll(events, Some(timeout.saturating_sub(start.elapsed())));
    }
    poll.poll(events, Some(timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_slot_generation_and_kind() {
        for kind in [KIND_CLIENT, KIND_BACKEND, KIND_LISTENER, KIND_WAKE, KIND_MUX] {
            for (slot, gen) in [(0, 0), (1, 7), ((1 << 29) - 1, u16::MAX)] {
                assert_eq!(untoken(token(slot, gen, kind)), (slot, gen, kind));
            }
        }
    }
}
