//! The connection loop shared by the admin HTTP port and nutcracker's stats
//! port: one thread, one mio poll, every connection served concurrently.
//!
//! Owns the listening socket and the accepted connections (`conn.rs`) of one
//! port, nothing else; what to answer is the `Service`'s (`mod.rs`,
//! `nutstats.rs`).
//!
//! Why a poll loop: an idle or slow client must not delay a probe. The old
//! sequential loop let each idle socket hold `/ready` for its whole 2 s
//! deadline. Admin traffic is small, so one thread multiplexing at most
//! `MAX_CONNECTIONS` sockets is enough, and admin stays one thread per port.
//!
//! Invariant: the loop never blocks on a client: sockets are non-blocking,
//! the control thread is asked with `try_send` and its answer polled, and
//! `poll` sleeps at most until the earliest connection deadline.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use super::conn::Conn;
use super::http::{Request, Response};
use super::PendingReload;
use crate::worker::accept_backoff::AcceptBackoff;

/// Open connections per port. More are answered `Service::busy` and closed
/// at once: a flood must not grow memory or descriptors without bound.
pub const MAX_CONNECTIONS: usize = 64;
/// Pause after a failed poll (never expected; keeps a broken poll from spinning).
const POLL_RETRY: Duration = Duration::from_millis(100);
/// How often a pending reload's answer is checked: the control thread
/// answers on a channel, which mio cannot wait on.
const PENDING_POLL: Duration = Duration::from_millis(10);
const LISTENER: Token = Token(usize::MAX);

/// What a port says; the loop does the I/O.
pub trait Service {
    /// Bytes to send as soon as a connection is accepted, reading nothing
    /// (nutcracker's stats port), or once a `sniff` window ends; `None` to
    /// read a request first. Without sniffing it is called once per batch
    /// of accepts, so a burst shares one document.
    fn greeting(&mut self) -> Option<Bytes>;
    /// How long a new connection may take to send `GET ` and be served
    /// as HTTP before it gets the greeting instead (nutcracker's stats
    /// port); `None`: the greeting (or the request) at once.
    fn sniff(&self) -> Option<Duration> {
        None
    }
    /// Sent, best effort, to a connection over `MAX_CONNECTIONS` before it
    /// is closed; `None` to close it silently.
    fn busy(&self) -> Option<Bytes>;
    /// Answers a complete request. `local` is the address it arrived on.
    fn respond(&mut self, req: &Request<'_>, local: Option<SocketAddr>) -> Reply;
}

/// A `Service`'s answer.
pub enum Reply {
    Now(Response),
    /// Asked the control thread; the answer is polled (see `PENDING_POLL`).
    Later(PendingReload),
}

/// One port's loop. Built on the caller's thread so that setup errors reach
/// `main`; `run` then serves forever.
pub struct Server<S> {
    poll: Poll,
    listener: TcpListener,
    /// Slot `i` is the connection with token `i`; `None` is free.
    conns: Vec<Option<Conn>>,
    /// EMFILE and the like: pause accepting, log once a second with a count.
    backoff: AcceptBackoff,
    service: S,
}

impl<S: Service> Server<S> {
    pub fn new(listener: std::net::TcpListener, service: S) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(listener);
        let poll = Poll::new()?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let conns = (0..MAX_CONNECTIONS).map(|_| None).collect();
        Ok(Server { poll, listener, conns, backoff: AcceptBackoff::default(), service })
    }

    pub fn run(mut self) {
        let mut events = Events::with_capacity(128);
        loop {
            let timeout = self.next_wake(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::warn!(error = %e, "admin poll failed");
                    std::thread::sleep(POLL_RETRY);
                }
                continue;
            }
            let now = Instant::now();
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept_all(now),
                    Token(i) => self.advance(i, now),
                }
            }
            if self.backoff.poll_resume(now) {
                self.accept_all(now);
            }
            // Deadlines and pending reloads; at most MAX_CONNECTIONS slots.
            for i in 0..self.conns.len() {
                let Some(c) = &mut self.conns[i] else { continue };
                let due = now >= c.deadline();
                if due && !c.expire(&mut self.service, now) {
                    self.close(i);
                } else if due || c.waiting() {
                    self.advance(i, now);
                }
            }
        }
    }

    /// How long `poll` may sleep: until the earliest deadline, and briefly
    /// while a reload is pending. `None` (forever) when idle.
    fn next_wake(&self, now: Instant) -> Option<Duration> {
        let mut wake = self.backoff.resume_at();
        for c in self.conns.iter().flatten() {
            let at = if c.waiting() { c.deadline().min(now + PENDING_POLL) } else { c.deadline() };
            wake = Some(wake.map_or(at, |w| w.min(at)));
        }
        wake.map(|w| w.saturating_duration_since(now))
    }

    fn accept_all(&mut self, now: Instant) {
        let mut greeting: Option<Option<Bytes>> = None;
        loop {
            if self.backoff.is_paused(now) {
                return;
            }
            let sock = match self.listener.accept() {
                Ok((sock, _)) => {
                    self.backoff.handle_accepted();
                    sock
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted) => continue,
                Err(e) => {
                    // EMFILE and the like: the connection stays in the
                    // backlog, and edge-triggered readiness will not fire
                    // again for it, so retry on a timer (10 ms doubling to 1 s),
                    // logging at most once a second with a count.
                    self.backoff.handle_exhausted(e.raw_os_error().unwrap_or(0), now);
                    if let Some(r) = self.backoff.poll_report(now) {
                        tracing::warn!(error = %e, refused = r.count, pause_ms = r.pause.as_millis() as u64, "admin accept failed; pausing accepts");
                    }
                    return;
                }
            };
            let Some(slot) = self.conns.iter().position(Option::is_none) else {
                if let Some(busy) = self.service.busy() {
                    // Read what already arrived (closing over unread input
                    // would send RST and could destroy the answer), then one
                    // non-blocking write: a new connection's socket buffer
                    // takes a short answer whole.
                    let _ = (&sock).read(&mut [0u8; 2048]);
                    let _ = (&sock).write(&busy);
                    let _ = sock.shutdown(Shutdown::Write);
                }
                tracing::debug!(limit = MAX_CONNECTIONS, "admin connection refused: at the limit");
                continue;
            };
            self.open(slot, sock, &mut greeting, now);
        }
    }

    fn open(&mut self, slot: usize, mut sock: TcpStream, greeting: &mut Option<Option<Bytes>>, now: Instant) {
        if let Err(e) = self.poll.registry().register(&mut sock, Token(slot), Interest::READABLE | Interest::WRITABLE) {
            tracing::warn!(error = %e, "admin cannot watch a connection");
            return;
        }
        let conn = match self.service.sniff() {
            Some(window) => Conn::sniffing(sock, window, now),
            None => Conn::new(sock, greeting.get_or_insert_with(|| self.service.greeting()).clone(), now),
        };
        self.conns[slot] = Some(conn);
        self.advance(slot, now);
    }

    /// Runs connection `i` as far as it can go now; closes it when done.
    fn advance(&mut self, i: usize, now: Instant) {
        let Some(Some(c)) = self.conns.get_mut(i) else { return };
        if !c.advance(&mut self.service, now) {
            self.close(i);
        }
    }

    fn close(&mut self, i: usize) {
        if let Some(mut c) = self.conns.get_mut(i).and_then(Option::take) {
            let _ = self.poll.registry().deregister(c.sock_mut());
        }
    }
}
